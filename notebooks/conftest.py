"""How ``make test`` tests the chapters: each must run top to bottom without an error.

nbval executes every chapter again in a fresh kernel. But ``make`` has just built the book, and
the build executes every chapter too (and stamps the ones that ran cleanly, see
``scripts/nbtools.py``). A chapter whose stamp is current (same notebook, same library, same
requirements) is checked from the build's executed copy instead: every code cell ran, in
order, and none raised (``nbtools.execution_problems``). Any other chapter, or every chapter
with ``MINILLM_RERUN_NOTEBOOKS=1``, runs under nbval as before. After ``make``, this spares
``make test`` a second execution of every chapter.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbtools  # noqa: E402


def _executed_copy(path: Path) -> Path | None:
    if os.environ.get("MINILLM_RERUN_NOTEBOOKS") or path.parent.resolve() != ROOT / "notebooks":
        return None
    return nbtools.executed_by_book(path)


class ExecutedChapter(pytest.File):
    def collect(self):
        yield ExecutedChapterItem.from_parent(self, name="executed by the book build")


class ExecutedChapterItem(pytest.Item):
    def runtest(self) -> None:
        executed = _executed_copy(self.path)
        assert executed is not None, f"the book build's stamp for {self.path.name} went stale"
        assert nbtools.execution_problems(executed) == []

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: executed by the book build"


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".ipynb" and _executed_copy(file_path) is not None:
        return ExecutedChapter.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config, items) -> None:
    """Leave out nbval's cells of the chapters checked from their executed copy."""
    checked = {item.path for item in items if isinstance(item, ExecutedChapterItem)}
    rerun = [item for item in items
             if item.path in checked and not isinstance(item, ExecutedChapterItem)]
    if rerun:
        config.hook.pytest_deselected(items=rerun)
        items[:] = [item for item in items if item not in rerun]
