"""The book's house rules, checked on every chapter notebook (no execution needed)."""

import importlib
import json
import re
import sys
from functools import reduce
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import nbtools  # noqa: E402

NOTEBOOKS = nbtools.notebooks()


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 1


def test_every_chapter_is_in_the_toc_in_order():
    listed = [f for f in _toc_files() if f.startswith("notebooks/")]
    assert listed == [f"notebooks/{p.stem}" for p in NOTEBOOKS]


def test_every_toc_entry_exists():
    for entry in _toc_files():
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_cell_and_no_outputs(path):
    assert nbtools.problems(path) == []


def test_colab_cell_follows_the_repository_url():
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f"git+{url}" in nbtools.setup_cell_source()
    installs = [line for line in nbtools.setup_cell_source().splitlines() if "pip install" in line]
    assert installs and not any(re.search(r"\btorch\b", line) for line in installs)
    assert all(line.startswith("    ") for line in installs), "installs only inside the Colab branch"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_shape(path):
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert markdown.startswith(f"# Chapter {int(path.stem[:2])}:"), "title"
    assert "**Learning goals**" in markdown or "## Learning goals" in markdown
    assert "## Summary" in markdown
    assert "## Exercises" in markdown
    solutions = len(re.findall(r":class: dropdown", markdown))
    assert 2 <= solutions <= 4, f"{solutions} hidden solutions (want 2-4)"
    assert "{cite}" in markdown, "cites at least one reference"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_has_a_caption(path):
    """A code cell that draws a figure is followed by a markdown cell with a caption."""
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type == "code" and re.search(r"plt\.show\(\)|fig\.show\(\)", cell.source):
            following = next((c for c in cells[i + 1 :] if c.cell_type == "markdown"), None)
            assert following is not None and re.match(r"\*\*Figure \d+\.\d+", following.source), (
                f"cell {i} draws a figure without a '**Figure N.M.**' caption after it"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_checks_itself_against_the_library(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "minillm_lib" in code
    assert re.search(r"assert_close|assert .*==", code), "no check against the library"


def _executed_copy_of(path, tmp_path, run):
    """A stand-in for the book build's executed copy of ``path``: its code cells run by ``run``."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    for count, cell in enumerate(code, start=1):
        cell.execution_count, cell.outputs = run(count, cell)
    executed = tmp_path / "jupyter_execute" / "notebooks" / path.name
    executed.parent.mkdir(parents=True)
    nbformat.write(nb, executed)
    return executed


def test_a_stamped_clean_run_is_recognised_and_any_change_voids_it(tmp_path):
    path = NOTEBOOKS[0]
    executed = _executed_copy_of(path, tmp_path, lambda count, cell: (count, []))
    assert nbtools.executed_by_book(path, tmp_path) is None  # not stamped yet
    nbtools.write_stamp(path, executed)
    assert nbtools.executed_by_book(path, tmp_path) == executed
    assert nbtools.execution_problems(executed) == []
    stamp = executed.with_suffix(".stamp.json")
    record = json.loads(stamp.read_text())
    stamp.write_text(json.dumps({**record, "inputs": "0" * 64}))  # the library changed since
    assert nbtools.executed_by_book(path, tmp_path) is None
    stamp.write_text(json.dumps(record))
    executed.write_text(executed.read_text().replace('"execution_count": 1', '"execution_count": 7'))
    assert nbtools.executed_by_book(path, tmp_path) is None  # the copy changed after stamping
    nbtools.remove_stamp(executed)
    assert not stamp.exists()


def test_execution_problems_names_failed_and_skipped_cells(tmp_path):
    def run(count, cell):
        if count == 2:
            return count, [nbformat.v4.new_output("error", ename="ValueError", evalue="bad lr -1",
                                                  traceback=[])]
        return (None, []) if count == 3 else (count, [])

    found = nbtools.execution_problems(_executed_copy_of(NOTEBOOKS[0], tmp_path, run))
    assert any("did not all run" in problem for problem in found)
    assert any("code cell 1 raised ValueError: bad lr -1" in problem for problem in found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_summary_links_the_library_names_to_the_api_page(path):
    """The d2l habit: a chapter's summary links the library names it built to the API page
    (the build's nitpicky mode fails on a link whose target does not exist)."""
    nb = nbformat.read(path, as_version=4)
    summary = next(c.source for c in nb.cells if c.cell_type == "markdown" and "## Summary" in c.source)
    summary = summary.split("## Summary", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"\{py:(?:func|class|meth)\}`[^`<]+<(minillm_lib\.[\w.]+)>`", summary)
    assert "API reference <../book/api>" in summary and links
    for target in links:
        module, _, name = target.partition(".")[2].partition(".")
        assert reduce(getattr, name.split("."), importlib.import_module(f"minillm_lib.{module}"))
