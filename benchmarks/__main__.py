"""Run every benchmark, print one table, write ``benchmarks/results.json``.

    python -m benchmarks            # full run (minutes)
    python -m benchmarks --quick    # tiny sizes: a smoke run that proves nothing about speed
    python -m benchmarks --only tokenizer
    python -m benchmarks --only hardware --update   # re-measure one, keep the other rows

Each benchmark module ``bench_<name>.py`` has ``run(quick: bool) -> list[dict]``; a row holds
name, ours, peer, unit, ratio, target and met. Timings on shared 2-core machines drift by up
to 1.4x, so each benchmark alternates ours and the peer in the same run and reports ratios.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
BENCHMARKS = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
FIELDS = ("name", "ours", "peer", "unit", "ratio", "target", "met")


def run_all(names: list[str], quick: bool, recorded: bool = False) -> list[dict]:
    rows = []
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        # --recorded: the recipe search reports its progress file and runs nothing new.
        options = {"recorded": True} if recorded and name == "recipes" else {}
        for row in module.run(quick=quick, **options):
            missing = [f for f in FIELDS if f not in row]
            if missing:
                raise ValueError(f"benchmark {name} returned a row without {missing}: {row}")
            rows.append({"benchmark": name, **row})
    return rows


def format_table(rows: list[dict]) -> str:
    def cell(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = ("benchmark",) + FIELDS
    table = [header] + [tuple(cell(row.get(f, "")) for f in header) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run only these")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--update", action="store_true",
                        help="replace only the rows of the benchmarks run in the existing --out file")
    parser.add_argument("--recorded", action="store_true",
                        help="the recipe search reports the runs it recorded, runs nothing new")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    names = args.only or BENCHMARKS
    rows = run_all(names, args.quick, args.recorded)
    if args.update and args.out.is_file():
        kept = [r for r in json.loads(args.out.read_text())["results"]  # rows of a benchmark
                if r["benchmark"] in BENCHMARKS and r["benchmark"] not in names]  # now removed go
        rows = sorted(kept + rows, key=lambda r: BENCHMARKS.index(r["benchmark"]))  # stable sort
    print(format_table(rows))
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
        },
        "quick": args.quick,
        "results": rows,
    }
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, args.out)  # atomic: a crash never leaves half a results file
    return 0


if __name__ == "__main__":
    sys.exit(main())
