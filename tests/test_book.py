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


def test_a_stamped_clean_run_is_recognised_and_any_change_voids_it(tmp_path):
    path = NOTEBOOKS[0]
    executed = nbtools.executed_copy(path, tmp_path)
    assert executed == tmp_path / "notebooks" / path.name  # where Jupyter Book writes it
    executed.parent.mkdir(parents=True)
    executed.write_text(path.read_text())
    assert nbtools.executed_by_book(path, tmp_path) is None  # not stamped yet
    nbtools.write_stamp(path, executed, runtime=12.5)
    assert nbtools.executed_by_book(path, tmp_path) == executed
    stamp = nbtools.stamp_file(executed)
    record = json.loads(stamp.read_text())
    assert record["runtime"] == 12.5
    stamp.write_text(json.dumps({**record, "inputs": "0" * 64}))  # the library changed since
    assert nbtools.executed_by_book(path, tmp_path) is None
    stamp.write_text(json.dumps(record))
    executed.write_text(executed.read_text() + " ")
    assert nbtools.executed_by_book(path, tmp_path) is None  # the copy changed after stamping
    nbtools.remove_stamp(executed)
    assert not stamp.exists()


# The cells whose output the reproducibility check does not compare (tag nbval-ignore-output),
# with the reason each one gives in its first line. Keep this short: every entry is output that
# nobody checks. A new entry (in nbtools.IGNORED_OUTPUTS, which `nbtools.py sync` applies) needs
# a reason that no pattern of tests/nbval_sanitize.cfg can fix, and a line here.
IGNORED_OUTPUTS = {
    "04_self_attention": ["a widget panel: the build keeps its output in the widget"],
    "09_sampling": ["a widget panel: the build keeps its output in the widget"],
    "10_kv_cache": ["wall-clock timings, different on every run"],
    "12_quantization": ["wall-clock timings, different on every run"],
}
IGNORE_COMMENT = re.compile(r"\A# Output not checked \(nbval\): (.+)$", re.MULTILINE)


def test_cells_whose_output_is_not_compared_are_few_and_say_why():
    found = {}
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            tagged = "nbval-ignore-output" in cell.metadata.get("tags", [])
            reason = IGNORE_COMMENT.search(cell.source) if cell.cell_type == "code" else None
            assert tagged == bool(reason), f"{path.name}: the tag and its comment go together:\n{cell.source}"
            if tagged:
                found.setdefault(path.stem, []).append(reason.group(1))
    assert found == IGNORED_OUTPUTS


def test_sync_moves_the_ignore_tag_with_its_cell_and_names_a_lost_one(tmp_path):
    """After a merge, sync tags the cell that holds the identifying text, wherever it moved, and
    untags every other; check names an entry whose text no cell holds any more."""
    path = tmp_path / "10_kv_cache.ipynb"
    nb = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    timed = next(c for c in code if "nbval-ignore-output" in c.metadata.get("tags", []))
    plain = code[-1]
    plain.metadata["tags"] = ["nbval-ignore-output", "hide-input"]  # a stale tag elsewhere
    nb.cells.remove(timed)
    nb.cells.append(timed)  # the benchmark cell moved to the end
    timed.source = timed.source.split("\n", 1)[1]  # and lost its comment in the merge
    nbformat.write(nb, path)
    assert any("nbval-ignore-output" in p for p in nbtools.problems(path))
    nbtools.sync(path)
    assert nbtools.problems(path) == []
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert code[-1].source.startswith("# Output not checked (nbval): wall-clock timings")
    assert code[-1].metadata["tags"] == ["nbval-ignore-output"]
    assert code[-2].metadata["tags"] == ["hide-input"] and "(nbval)" not in code[-2].source
    nbformat.write(nbformat.v4.new_notebook(cells=code[:-1]), path)  # the benchmark is gone
    assert nbtools.problems(path)[-1] == ("IGNORED_OUTPUTS: 0 code cells (want 1) contain "
                                          "'ms_no_cache, ms_cached = [], []'")


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
