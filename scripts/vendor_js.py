"""Fetch the JavaScript the rendered book needs from the npm registry, so the site is offline.

By default a Jupyter Book page loads MathJax, require.js and the Jupyter widget manager from
public CDNs; offline, maths shows as raw TeX and widgets stay blank. This script downloads pinned
versions with ``npm pack`` (the registry's normal client) into ``book/_static/vendor/`` (not
committed), and ``_config.yml`` points the build at those copies. Plotly's JavaScript ships
inside the ``plotly`` Python package and is copied from there.

    python scripts/vendor_js.py          # idempotent: does nothing when the versions are there
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "book" / "_static" / "vendor"
# The widget manager loads its icon fonts from "@jupyter-widgets/html-manager/dist/" relative
# to the page; every page with widgets is a chapter under notebooks/, so the fonts go there
# (copied into the site root by html_extra_path).
WIDGET_FONTS = ROOT / "book" / "_extra" / "notebooks" / "@jupyter-widgets" / "html-manager" / "dist"
FONT_SUFFIXES = (".woff", ".woff2", ".ttf", ".eot", ".svg")

# package spec -> {path inside the package: destination under VENDOR}
PACKAGES: dict[str, dict[str, str]] = {
    "mathjax@3.2.2": {"es5": "mathjax"},
    "requirejs@2.3.8": {"require.js": "require.js"},
    "@jupyter-widgets/html-manager@1.0.15": {"dist": "html-manager"},
}


def plotly_js() -> Path:
    """The plotly.js bundle that the installed ``plotly`` package ships."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def wanted() -> dict:
    import plotly

    return {"npm": PACKAGES, "plotly": plotly.__version__}


def main() -> int:
    stamp = VENDOR / "versions.json"
    if stamp.exists() and json.loads(stamp.read_text()) == wanted() and WIDGET_FONTS.exists():
        return 0
    if shutil.which("npm") is None:
        print("vendor_js: npm is needed to fetch MathJax and the widget manager "
              "(apt-get install npm, or install Node.js)", file=sys.stderr)
        return 1
    staging = VENDOR.with_name("vendor.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", "--silent", *PACKAGES], cwd=tmp, check=True,
            stdout=subprocess.DEVNULL,
        )
        for spec, files in PACKAGES.items():
            name, version = spec.rsplit("@", 1)
            tarball = Path(tmp) / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
            with tarfile.open(tarball) as tar:
                tar.extractall(Path(tmp) / name, filter="data")
            for source, dest in files.items():
                src = Path(tmp) / name / "package" / source
                if src.is_dir():
                    shutil.copytree(src, staging / dest)
                else:
                    shutil.copy2(src, staging / dest)
    shutil.copy2(plotly_js(), staging / "plotly.min.js")
    (staging / "versions.json").write_text(json.dumps(wanted(), indent=1))
    shutil.rmtree(VENDOR, ignore_errors=True)
    staging.rename(VENDOR)  # swap in whole: a failed run never leaves half a vendor folder
    shutil.rmtree(WIDGET_FONTS, ignore_errors=True)
    WIDGET_FONTS.mkdir(parents=True)
    for font in (VENDOR / "html-manager").iterdir():
        if font.suffix in FONT_SUFFIXES:
            shutil.copy2(font, WIDGET_FONTS / font.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
