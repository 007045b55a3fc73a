"""The reproducibility check: ``pytest --nbval`` compares each chapter with the book build.

The book build executes every chapter and keeps the executed copy
(``_build/jupyter_execute/notebooks/*.ipynb``), stamped with a fingerprint of what the run
depended on: the notebook, the library, the requirements (``scripts/nbtools.py``). Under strict
``--nbval`` this plugin (loaded by the root ``conftest.py``) hands nbval that executed copy as
the reference for each notebook it runs. nbval then executes the notebook again from the top in
a fresh kernel, in the notebook's own folder as the build did, and compares every text output of
every code cell with the build's, after both went through the sanitizer file
(``tests/nbval_sanitize.cfg``: timings, addresses, temporary paths). Images are not compared
(nbval leaves out ``image/png``), nor the outputs of the few cells tagged
``nbval-ignore-output`` (``tests/test_book.py`` lists them).

A notebook without a current executed copy (no build yet, or the notebook, the library or the
requirements changed since) has no reference: nbval then only runs it (a cell without an
execution count is not compared) and the summary says so in red. With
``--nbval-require-reference`` (CI) that is a failure instead.

The summary also lists each notebook's time: in the build, and in this run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import nbformat
import nbtools
import pytest

_MISSING = "no executed copy from a book build"
_STALE = "the build's executed copy is stale (the notebook, library or requirements changed since)"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("nbval")
    group.addoption(
        "--nbval-reference-dir", default=None, metavar="DIR",
        help="where the book build keeps its executed copies: notebook <root>/X.ipynb is "
             "compared with DIR/X.ipynb (default: <root>/_build/jupyter_execute)")
    group.addoption(
        "--nbval-require-reference", action="store_true",
        help="fail a notebook that has no current executed copy, instead of running it lax")


def _strict(config) -> bool:
    return bool(getattr(config.option, "nbval", False))


def _reference_dir(config) -> Path:
    given = config.getoption("nbval_reference_dir")
    return Path(given).resolve() if given else nbtools.ROOT / "_build" / "jupyter_execute"


def reference_problem(path: Path, reference_dir: Path) -> str | None:
    """Why notebook ``path`` has no usable reference in ``reference_dir`` (None when it has)."""
    if nbtools.executed_by_book(path, reference_dir) is not None:
        return None
    return _STALE if nbtools.executed_copy(path, reference_dir).is_file() else _MISSING


def pytest_collection_modifyitems(config, items) -> None:
    """Give each notebook cell the build's executed cell (its outputs) as the reference."""
    if not _strict(config):
        return
    from nbval.plugin import IPyNbCell

    cells: dict[Path, list[IPyNbCell]] = defaultdict(list)
    for item in items:
        if isinstance(item, IPyNbCell):
            cells[Path(item.path)].append(item)
    unchecked = []
    for path, notebook_cells in cells.items():
        executed = nbtools.executed_by_book(path, _reference_dir(config))
        if executed is None:
            if config.getoption("nbval_require_reference"):
                # The first cell fails and says why; the others would only repeat it.
                problem = reference_problem(path, _reference_dir(config))
                notebook_cells[0].add_marker(pytest.mark.nbval_no_reference(problem))
                unchecked += notebook_cells[1:]
            continue
        reference = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"]
        for item in notebook_cells:
            built = reference[item.cell_num] if item.cell_num < len(reference) else None
            if built is None or built.source != item.cell.source:
                raise pytest.UsageError(
                    f"{executed}: code cell {item.cell_num} is not that of {path}, though its stamp "
                    "is current; rebuild the book (make book)")
            item.cell = built
    if unchecked:
        config.hook.pytest_deselected(items=unchecked)
        items[:] = [item for item in items if item not in set(unchecked)]


def pytest_runtest_setup(item) -> None:
    mark = item.get_closest_marker("nbval_no_reference")
    if mark is not None:
        pytest.fail(f"{Path(item.path).name}: {mark.args[0]}; run `make book` first, "
                    "or leave out --nbval-require-reference to run it lax", pytrace=False)


class _Timings:
    """Seconds each notebook took in this run (setup, that is the kernel start, included)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report) -> None:
        path = report.location[0] if report.location else ""
        if path.endswith(".ipynb"):
            self.seconds[path] += report.duration


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "nbval_no_reference(why): the notebook has no reference")
    if _strict(config):
        config.pluginmanager.register(_Timings(), "nbval_book_timings")


def _build_seconds(path: Path, reference_dir: Path) -> float | None:
    stamp = nbtools.stamp_file(nbtools.executed_copy(path, reference_dir))
    if not stamp.is_file():
        return None
    return json.loads(stamp.read_text()).get("runtime")


def pytest_terminal_summary(terminalreporter, config) -> None:
    timings = config.pluginmanager.get_plugin("nbval_book_timings")
    if timings is None or not timings.seconds:
        return
    reference_dir = _reference_dir(config)
    write = terminalreporter.write_line
    terminalreporter.section("notebooks: seconds in the book build and in this run")
    build_total = 0.0
    lax = {}
    for name, seconds in sorted(timings.seconds.items()):
        path = Path(config.rootpath) / name
        build = _build_seconds(path, reference_dir)
        build_total += build or 0.0
        write(f"{name:<48} {'-' if build is None else f'{build:6.1f}':>8} {seconds:8.1f}")
        if (problem := reference_problem(path, reference_dir)) is not None:
            lax[name] = problem
    write(f"{'total (this run: summed over workers)':<48} {build_total:8.1f} "
          f"{sum(timings.seconds.values()):8.1f}")
    if lax and not config.getoption("nbval_require_reference"):
        terminalreporter.section("LAX: these notebooks were only run, not compared", red=True)
        for name, problem in lax.items():
            write(f"{name}: {problem}", red=True, bold=True)
        write("Their outputs were NOT checked against the book. Build it first (make book), "
              "then run the check again.", red=True, bold=True)
