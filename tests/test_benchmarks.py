"""Smoke test: every benchmark runs at tiny sizes and writes a well-formed results table.

Speed is never asserted here (benchmarks report ratios; tests must not time things), but the
correctness side of each benchmark is: identical tokens, identical tokenizer ids, same losses.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_run_quick_and_write_results(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    names = {row["benchmark"] for row in report["results"]}
    expected = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert names == expected
    for row in report["results"]:
        assert row["ours"] > 0 and row["peer"] > 0
        assert abs(row["ratio"] - row["ours"] / row["peer"]) < 1e-3 * max(1.0, row["ratio"])
        assert isinstance(row["met"], bool)
        assert "error" not in row, row  # e.g. a chapter that raised
        for flag in ("identical_tokens", "same_losses", "identical_ids"):
            if flag in row:
                assert row[flag] is True, (row["name"], flag)
    assert "ratio" in done.stdout  # the printed table
