"""Small fixes to the rendered book, so every page loads without a JavaScript error.

- sphinx-thebe registers its inline configuration script twice (once for sphinx-book-theme's
  settings, once for its own), and the second copy redeclares ``const THEBE_JS_URL``: a
  SyntaxError on every page. We keep the first script that declares a given constant.
- The pydata theme logs an error on a first visit unless ``default_mode`` is set.
- The ipywidgets HTML manager calls MathJax 2's ``MathJax.Hub.Queue``; the book loads
  MathJax 3. ``_static/mathjax_hub_shim.js`` (loaded before MathJax) bridges the two.

And one service to the tests: after a chapter executes without an error, it stamps the executed
copy (``scripts/nbtools.py``), so the reproducibility check (``scripts/nbval_book.py``) knows it
may compare a new run with it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import nbtools  # noqa: E402

_CONST = re.compile(r"\bconst\s+(\w+)\s*=")


def _drop_redeclaring_scripts(app, pagename, templatename, context: dict[str, Any], doctree) -> None:
    declared: set[str] = set()
    kept = []
    for script in context.get("script_files", []):
        names = set(_CONST.findall(getattr(script, "attributes", {}).get("body", "")))
        if names & declared:
            continue  # a second copy: running it would throw "already been declared"
        declared |= names
        kept.append(script)
    context["script_files"] = kept


def _stamp_executed_chapter(app, doctree) -> None:
    docname = app.env.docname
    if not docname.startswith("notebooks/"):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{docname}.ipynb"
    exec_data = getattr(app.env, "nb_metadata", {}).get(docname, {}).get("exec_data")
    if exec_data and exec_data["succeeded"] and executed.is_file():
        nbtools.write_stamp(ROOT / f"{docname}.ipynb", executed, exec_data.get("runtime"))
    else:
        nbtools.remove_stamp(executed)


def _set_default_mode(app, config) -> None:
    config.html_context.setdefault("default_mode", "auto")


def setup(app) -> dict[str, Any]:
    app.connect("config-inited", _set_default_mode)
    # priority 1: a plain script that runs before the deferred MathJax and widget scripts
    app.add_js_file("mathjax_hub_shim.js", priority=1)
    app.connect("html-page-context", _drop_redeclaring_scripts, priority=900)
    app.connect("doctree-read", _stamp_executed_chapter)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
