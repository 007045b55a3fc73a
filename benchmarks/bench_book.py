"""How long each chapter takes to execute top to bottom, against its budget.

Each chapter must run in under 3 minutes on a 2-core CPU and the whole book in under 15. The
"peer" column is the budget itself, so a ratio below 1 means within budget. Chapters run in
order, in one fresh kernel each, with the course-model cache warm (as in a book build after
the first chapter that trains it).

    python -m benchmarks.bench_book [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from benchmarks._timing import command_line, row

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_BUDGET_S = 180.0
BOOK_BUDGET_S = 900.0


def execute(path: Path) -> tuple[float, str | None]:
    """Seconds to run the notebook top to bottom, and the error that stopped it (or None)."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    except CellExecutionError as err:  # report it in the table instead of losing the whole run
        return time.perf_counter() - start, str(err).strip().splitlines()[-1]
    return time.perf_counter() - start, None


def run(quick: bool = False) -> list[dict]:
    chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if quick:
        chapters = chapters[:1]
    rows, total = [], 0.0
    for path in chapters:
        seconds, error = execute(path)
        total += seconds
        result = row(f"chapter {path.stem}", seconds, CHAPTER_BUDGET_S, "s (peer = budget)", 1.0)
        if error is not None:
            result.update(met=False, error=error)
        rows.append(result)
    if not quick:
        rows.append(row("whole book", total, BOOK_BUDGET_S, "s (peer = budget)", 1.0))
    return rows


if __name__ == "__main__":
    command_line(run, __doc__)
