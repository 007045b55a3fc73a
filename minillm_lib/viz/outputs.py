"""How an explorer becomes one HTML output (chapters 3, 4, 8, 9, 10, 12, 13): markup, style,
data and script in one string that the static book, Jupyter and Colab all show.

``render`` wraps an explorer's markup in a root ``<div class="mlv" data-explorer=KIND>``,
inlines the style sheet and the scripts it needs (real files in ``viz/static/``, read once per
process), embeds its data as JSON and starts it. The result is an ``Explorer``: it has
``_repr_html_``, so it is the last expression of a notebook cell, and ``nbytes`` tells its
size. Explorers that run the model in the page (``viz/live.py``) also say how many bytes of
shared weight files they load (``shared_bytes``, see ``viz/web.py``).
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

_ids = itertools.count(1)  # explorers built in this process: deterministic element ids


@dataclass(frozen=True)
class Explorer:
    """One explorer's complete HTML (markup, style, data and script), shown by Jupyter and the book.

    ``shared_bytes``: bytes of the weight files the output loads by URL (0 when the weights
    are inlined, or when it runs no model); a page that shows it loads ``nbytes +
    shared_bytes`` the first time, and the browser caches the shared files for other pages.
    """

    kind: str
    element_id: str
    html: str
    shared_bytes: int = 0

    def _repr_html_(self) -> str:
        return self.html

    @property
    def nbytes(self) -> int:
        """Size of the output in bytes (UTF-8)."""
        return len(self.html.encode("utf-8"))

    def __repr__(self) -> str:
        shared = f" + {self.shared_bytes / 1000:.1f} kB of shared weights" if self.shared_bytes else ""
        return f"<{self.kind} explorer {self.element_id}: {self.nbytes / 1000:.1f} kB{shared}>"


@functools.cache
def static_text(name: str) -> str:
    """The text of ``viz/static/<name>`` (a .js or .css file of the package)."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def check_element_id(element_id: str | None, kind: str) -> str:
    """``element_id`` checked, or a fresh ``minillm-<kind>-<n>`` when it is None."""
    if element_id is None:
        return f"minillm-{kind}-{next(_ids)}"
    if not isinstance(element_id, str) or not re.fullmatch(r"[A-Za-z][\w-]*", element_id):
        raise ValueError(f"element_id must be a letter followed by letters, digits, _ or -, got {element_id!r}")
    return element_id


def json_for_script(data: Any) -> str:
    """JSON that is safe inside <script>: no "</script>" can end it. <, > and & only occur
    inside JSON strings, where \\u escapes mean the same characters."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def select(testid: str, label: str, options: Sequence[str], selected: int) -> str:
    """A labelled <select> whose option values are 0, 1, ..."""
    opts = "".join(
        f'<option value="{i}"{" selected" if i == selected else ""}>{html.escape(text)}</option>'
        for i, text in enumerate(options)
    )
    return f'<label>{label} <select data-testid="{testid}">{opts}</select></label>'


def slider(testid: str, label: str, n_values: int, value: float, readout: str, *, step: float = 1,
           low: float = 0) -> str:
    """A labelled range input over low, low + step, ..., low + (n_values - 1) * step, and its readout."""
    return (
        f'<label>{label} <input type="range" data-testid="{testid}" min="{low:g}" '
        f'max="{low + (n_values - 1) * step:g}" step="{step:g}" value="{value:g}">'
        f'<output data-testid="{testid}-value">{html.escape(readout)}</output></label>'
    )


def render(
    kind: str,
    element_id: str,
    title: str,
    body: str,
    data: dict[str, Any],
    scripts: Sequence[str],
    *,
    before: str = "",
    shared_bytes: int = 0,
) -> Explorer:
    """Wrap one explorer: root div, style, markup (hidden until its script runs), data, script.

    scripts: the ``viz/static`` files it runs, in order (common.js comes first by itself);
    before: HTML placed before the script (the weight script of an inlined model).
    """
    start = f"window.minillmViz.start({json.dumps(kind)}, document.currentScript, {json.dumps(element_id)});"
    code = "\n".join(static_text(name) for name in ("common.js", *scripts))
    page = (
        f'<div class="mlv" id="{element_id}" data-explorer="{kind}" data-state="{{}}">'
        f"<style>{static_text('explorers.css')}</style>"
        f'<div class="mlv-title">{html.escape(title)}</div>'
        '<div class="mlv-fallback">This interactive explorer needs JavaScript: it runs in the '
        "rendered book, in Jupyter (trusted notebooks) and in Colab.</div>"
        f'<div class="mlv-body" style="display:none">{body}'
        '<div class="mlv-caption" data-testid="caption" aria-live="polite"></div></div>'
        f'<script type="application/json" class="mlv-data">{json_for_script(data)}</script>'
        f"{before}<script>{code}\n{start}</script></div>"
    )
    return Explorer(kind, element_id, page, shared_bytes)
