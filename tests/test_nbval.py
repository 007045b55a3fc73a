"""The reproducibility check itself (scripts/nbval_book.py, tests/nbval_sanitize.cfg), on two
small fixture notebooks: what the sanitizer hides, that a seeded notebook passes, that an
unseeded generator fails, and that a notebook without a current build runs lax and says so."""

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbval.plugin import get_sanitize_patterns

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbtools  # noqa: E402

SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
FIXTURES = ROOT / "tests" / "fixtures" / "nbval"
PATTERNS = get_sanitize_patterns(SANITIZE.read_text())


def _sanitize(text: str) -> str:
    for regex, replace in PATTERNS:
        text = re.sub(regex, replace, text)
    return text


# Pairs of outputs from real runs of the chapters that differ only in what may vary.
SAME = [
    ("200 merges in 4.3 s", "200 merges in 12.0 s"),
    ("N =   4,464: 4,999 steps in 248.7 s, val loss 2.135", "N =   4,464: 4,999 steps in  17.5 s, val loss 2.135"),
    ("   eager:   0.2 s for 10 steps; steps 6-10  16.2 ms", "   eager:  10.1 s for 10 steps; steps 6-10   6.7 ms"),
    ("LoRA r=8   1.887   2.099    65,536   (20 s)", "LoRA r=8   1.887   2.099    65,536   (9 s)"),
    ("600 steps in 103 s, 14,782 tokens per second", "600 steps in 28 s, 18,490 tokens per second"),
    ("100%|##########| 600/600 [00:28<00:00, 21.0it/s]", "100%|##########| 600/600 [01:02<00:00,  9.6it/s]"),
    ("<GPT object at 0x7f3a2c1b9d60>", "<GPT object at 0x7f00aa1b0010>"),
    ("saved in /tmp/minillm-ch14-k2j3h4/run", "saved in /tmp/minillm-ch14-0a9s8d/run"),
    ("/a/.venv/lib/python3.11/site-packages/torch/nn/x.py:812: UserWarning: w",
     "/a/.cache/colab-venv/lib/python3.11/site-packages/torch/nn/x.py:799: UserWarning: w"),
    ("/home/me/minillm/minillm_lib/zoo.py:90: UserWarning: w",
     "/a/.cache/colab-venv/lib/python3.11/site-packages/minillm_lib/zoo.py:90: UserWarning: w"),
]
# ... and pairs that must stay different: the numbers the book teaches.
DIFFERENT = [
    ("val loss 2.135 nats = 3.08 bits/char", "val loss 2.136 nats = 3.08 bits/char"),
    ("4,999 steps in 17.5 s", "4,998 steps in 17.5 s"),
    ("losses 4.3503 ... 3.5174", "losses 4.3503 ... 3.5175"),
    ("tensor([0.1000, 0.2000])", "tensor([0.1000, 0.2001])"),
    ("ROMEO: the king is dead", "ROMEO: the king is here"),
    ("[0.25 0.75]", "[0.75 0.25]"),
    ("12 layers, 4 heads, 64 steps", "12 layers, 4 heads, 65 steps"),
]


@pytest.mark.parametrize(("one", "other"), SAME)
def test_the_sanitizer_hides_what_varies_from_run_to_run(one, other):
    assert one != other and _sanitize(one) == _sanitize(other)


@pytest.mark.parametrize(("one", "other"), DIFFERENT)
def test_the_sanitizer_keeps_the_numbers_the_book_teaches(one, other):
    assert _sanitize(one) != _sanitize(other)


def _build(path: Path, reference_dir: Path) -> Path:
    """Execute ``path`` as the book build does (nbclient, in the notebook's folder), keep the
    executed copy where the build would, and stamp it."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    executed = nbtools.executed_copy(path, reference_dir)
    executed.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, executed)
    nbtools.write_stamp(path, executed, runtime=1.0)
    return executed


def _check(path: Path, reference_dir: Path, *options: str) -> subprocess.CompletedProcess:
    """The check as `make test` runs it, on one notebook."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(SANITIZE), "--nbval-reference-dir", str(reference_dir),
         *options, str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_seeded_notebook_gives_the_builds_outputs_again(tmp_path):
    executed = _build(FIXTURES / "seeded.ipynb", tmp_path)
    code = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
    assert all(cell.outputs for cell in code)  # every cell has an output to compare
    run = _check(FIXTURES / "seeded.ipynb", tmp_path, "--nbval-require-reference")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 passed" in run.stdout
    assert "seconds in the book build and in this run" in run.stdout


def test_an_unseeded_generator_fails_the_check(tmp_path):
    _build(FIXTURES / "unseeded.ipynb", tmp_path)
    run = _check(FIXTURES / "unseeded.ipynb", tmp_path, "--nbval-require-reference")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Cell outputs differ" in run.stdout
    failed = sorted(line.split(" - ")[0] for line in run.stdout.splitlines() if line.startswith("FAILED"))
    # The cells that print random numbers; the one with a timing and a temporary path passes.
    assert failed == [f"FAILED tests/fixtures/nbval/unseeded.ipynb::Cell {i}" for i in (0, 2)]


def test_without_a_current_build_the_check_runs_lax_and_says_so(tmp_path):
    notebook = FIXTURES / "unseeded.ipynb"  # would fail if it were compared
    lax = _check(notebook, tmp_path)
    assert lax.returncode == 0, lax.stdout + lax.stderr
    assert "LAX: these notebooks were only run, not compared" in lax.stdout
    assert "no executed copy from a book build" in lax.stdout

    required = _check(notebook, tmp_path, "--nbval-require-reference")
    assert required.returncode == 1
    assert "unseeded.ipynb: no executed copy from a book build; run `make book` first" in required.stdout

    executed = _build(notebook, tmp_path)
    stamp = nbtools.stamp_file(executed)
    stamp.write_text(json.dumps({**json.loads(stamp.read_text()), "inputs": "0" * 64}))
    stale = _check(notebook, tmp_path)  # as if the library had changed since the build
    assert stale.returncode == 0 and "the build's executed copy is stale" in stale.stdout
