"""How long each chapter takes to execute top to bottom, against its budget.

Each chapter must run in under 3 minutes on a 2-core CPU and the whole book in under 15. The
"peer" column is the budget itself, so a ratio below 1 means within budget. Chapters run in
order, in one fresh kernel each, with the course-model cache warm (as in a book build after
the first chapter that trains it).

    python -m benchmarks.bench_book [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from benchmarks._timing import row

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_BUDGET_S = 180.0
BOOK_BUDGET_S = 900.0


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def run(quick: bool = False) -> list[dict]:
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if quick:
        chapters = chapters[:1]
    rows, total = [], 0.0
    for path in chapters:
        seconds = execute(path)
        total += seconds
        rows.append(row(f"chapter {path.stem}", seconds, CHAPTER_BUDGET_S, "s (peer = budget)", 1.0))
    if not quick:
        rows.append(row("whole book", total, BOOK_BUDGET_S, "s (peer = budget)", 1.0))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    for r in run(parser.parse_args().quick):
        print(r)
