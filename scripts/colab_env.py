"""Build the environment of the reproducibility check: Colab's packages, then the course library
installed exactly the way every chapter's Colab cell installs it.

    python scripts/colab_env.py .cache/colab-venv

1. A fresh virtual environment holding exactly Colab's versions (``tests/colab_constraints.txt``).
   When ``venv`` holds them already (same constraints file, same Python: recorded in
   ``venv/colab-freeze.json``), it is reused: only what steps 2 and 3 added is uninstalled, and
   the environment must then freeze exactly as Colab's again.
2. The Colab cell's own ``%pip install`` lines (``scripts/nbtools.py``), run with that
   environment's pip, with the GitHub URL replaced by this checkout.
3. The check's tools (pytest, nbval, pytest-xdist), constrained to what is installed already.

After steps 2 and 3 it compares ``pip freeze`` with the one taken after step 1: a package of
Colab's that changed version or disappeared is an error that names it. It prints what was
added and how long each step took. ``make test`` then runs the book in this environment
(``pytest --nbval``, see ``scripts/nbval_book.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import nbtools

CONSTRAINTS = nbtools.ROOT / "tests" / "colab_constraints.txt"
CHECK_TOOLS = ["pytest>=8", "nbval>=0.11", "pytest-xdist>=3.5"]


def colab_cell_installs(root: Path = nbtools.ROOT) -> list[list[str]]:
    """The pip arguments of each ``%pip install`` line of the Colab cell, with the repository
    URL (``git+<url>``) replaced by the checkout ``root`` (a ``file://`` URL)."""
    url = nbtools.repository_url()
    installs = []
    for line in nbtools.setup_cell_source().splitlines():
        line = line.strip()
        if line.startswith("%pip install"):
            args = shlex.split(line.removeprefix("%pip"))
            installs.append([a.replace(f"git+{url}", root.resolve().as_uri()) for a in args])
    return installs


def parse_freeze(text: str) -> dict[str, str]:
    """``pip freeze`` output -> {normalised name: version} (or ``@ <url>`` for a direct URL)."""
    packages = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            parts = re.split(r"\s*(==|@)\s*", line.strip(), maxsplit=1)
            name, sep, rest = (parts + ["", ""])[:3]
            packages[re.sub(r"[-_.]+", "-", name).lower()] = rest if sep == "==" else f"@ {rest}"
    return packages


def changed_packages(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Packages of ``before`` that ``after`` lacks or holds at another version, as
    ``"name: old -> new"``."""
    return [f"{name}: {version} -> {after.get(name, 'removed')}"
            for name, version in sorted(before.items()) if after.get(name) != version]


def _run(python: Path, *args: str) -> str:
    done = subprocess.run([str(python), *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"colab_env: `{' '.join(args)}` failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _freeze(python: Path) -> dict[str, str]:
    return parse_freeze(_run(python, "-m", "pip", "freeze", "--all"))


def _check_unchanged(colab: dict[str, str], now: dict[str, str], step: str) -> None:
    changed = changed_packages(colab, now)
    if changed:
        sys.exit(f"colab_env: {step} changed Colab's packages: " + "; ".join(changed))


def _colab_key() -> str:
    """What the Colab packages of an environment depend on: the constraints file, the Python."""
    return hashlib.sha256(CONSTRAINTS.read_bytes() + sys.version.encode()).hexdigest()


def _reuse(venv: Path) -> dict[str, str] | None:
    """Colab's freeze, if ``venv`` was built from the current constraints and, once what was
    added on top is uninstalled, freezes exactly so again; otherwise None."""
    python, record = venv / "bin" / "python", venv / "colab-freeze.json"
    if not (python.is_file() and record.is_file()):
        return None
    try:
        saved = json.loads(record.read_text())
    except ValueError:  # cut short while written: build afresh
        return None
    if saved.get("key") != _colab_key():
        return None
    colab = saved["freeze"]
    added = sorted(set(_freeze(python)) - set(colab))
    if added:
        _run(python, "-m", "pip", "uninstall", "--yes", "--quiet", *added)
    return colab if _freeze(python) == colab else None


def build(venv: Path) -> None:
    python = venv / "bin" / "python"
    started = time.perf_counter()

    def done(step: str) -> None:
        print(f"colab_env: {step} ({time.perf_counter() - started:.0f} s so far)", flush=True)

    colab = _reuse(venv)
    if colab is not None:
        done(f"Colab's {len(colab)} packages reused from {venv}")
    else:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "-r", str(CONSTRAINTS))
        colab = _freeze(python)
        (venv / "colab-freeze.json").write_text(json.dumps({"key": _colab_key(), "freeze": colab}))
        done(f"Colab's {len(colab)} packages installed from {CONSTRAINTS.name}")

    for args in colab_cell_installs():
        _run(python, "-m", "pip", *args, "--disable-pip-version-check")
    with_library = _freeze(python)
    _check_unchanged(colab, with_library, "the Colab cell")
    added = sorted(set(with_library) - set(colab))
    done(f"the Colab cell added {', '.join(added)} and changed nothing of Colab's")

    pins = venv / "installed-constraints.txt"
    pins.write_text("".join(f"{name}=={version}\n" for name, version in with_library.items()
                            if not version.startswith("@")))
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(pins), *CHECK_TOOLS)
    _check_unchanged(with_library, _freeze(python), "installing the check's tools")
    done(f"the check's tools installed ({', '.join(CHECK_TOOLS)}); Colab's packages unchanged")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    build(Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
