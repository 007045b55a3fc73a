"""The package as a whole: public names, one-way imports, chapters named, files that ship."""

from __future__ import annotations

import ast
import inspect
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import minillm_lib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minillm_lib"


def module_files() -> dict[str, Path]:
    """Every module of the package: "model" -> minillm_lib/model.py, "viz" -> viz/__init__.py."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"
        found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(name: str, path: Path) -> set[str]:
    """The package modules that ``name`` imports when it runs: at the top and inside functions
    (lazy imports count), but not under ``if TYPE_CHECKING:`` (never executed)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y, from .. import y
                base = package.split(".") if package not in ("", "__init__") else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
                candidates = [target] if node.module else [
                    ".".join(base + [alias.name]) for alias in node.names]
            elif node.module and node.module.startswith("minillm_lib"):
                target = node.module.removeprefix("minillm_lib").lstrip(".")
                candidates = [target]
            else:
                candidates = []
            found.update(c for c in candidates if c)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("minillm_lib."):
                    found.add(alias.name.removeprefix("minillm_lib."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: {m for m in imported_modules(name, path) if m in files} - {name}
            for name, path in files.items() if name != "__init__"}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def test_imports_form_no_cycle():
    graph = import_graph()
    assert graph["model"] <= {"_checks", "config", "positions", "layers", "attention", "moe",
                              "sampling"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    # the same check on a graph that has one, so the test above cannot pass by accident
    graph = import_graph()
    graph["sampling"] = graph["sampling"] | {"model"}
    assert find_cycle(graph) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_lower_floors_never_import_upper_ones():
    graph = import_graph()
    for torch_free in ("_checks", "files", "tokenizers"):
        assert graph[torch_free] <= {"_checks", "files"}, torch_free
    def is_viz(name: str) -> bool:
        return name == "viz" or name.startswith("viz.")

    importers_of_viz = {name for name, targets in graph.items() if not is_viz(name) and any(map(is_viz, targets))}
    assert importers_of_viz == {"cli"}  # only notebooks and the CLI's web export use it


def test_importing_the_model_loads_nothing_above_it():
    code = ("import sys, minillm_lib.model; "
            "print(' '.join(m for m in sys.modules if m.startswith('minillm_lib')))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert {"minillm_lib.model", "minillm_lib.attention"} <= loaded
    above = {"checkpoint", "interop", "sampling", "training", "zoo", "viz", "cli"}
    assert not loaded & {f"minillm_lib.{m}" for m in above}


def test_public_names_are_what_they_say():
    for name in ("generate", "stream", "train", "train_step", "evaluate", "load_model"):
        assert inspect.isfunction(getattr(minillm_lib, name)), name
    assert inspect.isclass(minillm_lib.GPT) and inspect.isclass(minillm_lib.SamplingOptions)
    for name in minillm_lib.__all__:
        value = getattr(minillm_lib, name)
        assert not inspect.ismodule(value), f"minillm_lib.{name} is a module"
    assert set(minillm_lib.__all__) <= set(dir(minillm_lib))
    with pytest.raises(AttributeError, match="no attribute 'genrate'"):
        minillm_lib.genrate  # noqa: B018


def test_no_module_is_named_like_a_function_it_exports():
    for name, path in module_files().items():
        exported = {node.name for node in ast.parse(path.read_text()).body
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        assert name.rpartition(".")[2] not in exported, name


def test_every_module_names_its_chapter():
    for name, path in module_files().items():
        if name in ("__init__", "__main__", "_checks"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text()))
        first = doc.split("\n\n")[0] if doc else ""
        assert "chapter" in first.lower(), f"{name}: {first!r}"


def test_browser_code_lives_in_static_files():
    for path in (PACKAGE / "viz").glob("*.py"):
        viz = path.read_text()
        for marker in ("function (", "addEventListener", "querySelector", "{display:", "var V"):
            assert marker not in viz, (path.name, marker)
    static = sorted(p.name for p in (PACKAGE / "viz" / "static").iterdir())
    assert {"common.js", "explorers.css"} <= set(static)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (a build in place would leave build/ here)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "minillm_lib", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(out), str(source)], check=True)
    (found,) = out.glob("minillm_lib-*.whl")
    return found


def test_the_wheel_holds_the_static_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    static = {Path(n).name for n in names if n.startswith("minillm_lib/viz/static/")}
    on_disk = {p.name for p in (PACKAGE / "viz" / "static").iterdir() if p.suffix in (".js", ".css")}
    assert on_disk and static == on_disk


def test_an_explorer_renders_from_a_venv_that_installed_the_wheel(wheel, tmp_path):
    """A real venv with the wheel installed (not editable); torch and the other dependencies
    come from this environment's site-packages through a path entry, without its editable
    minillm_lib (a .pth file in a directory added that way is not processed)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = next(p for p in sys.path if p.endswith("site-packages"))
    Path(site, "parent_env.pth").write_text(ours + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--quiet", str(wheel)], check=True)
    code = ("import minillm_lib, minillm_lib.viz as viz; print(minillm_lib.__file__); "
            "ex = viz.position_explorer(8, 4); print('window.minillmViz' in ex.html, ex.nbytes)")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                         cwd=tmp_path).stdout.split()
    assert out[0].startswith(str(env_dir)) and out[1] == "True" and int(out[2]) > 1000
