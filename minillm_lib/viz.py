"""Interactive explorers that keep working in the static book: HTML + a little JavaScript + data.

Each explorer is computed once, in Python, by the real library (the model's logits, its
attention maps, the sinusoidal table, the learning-rate schedule), embedded as JSON in one
HTML output, and drawn by a few kilobytes of plain JavaScript (SVG and <canvas>, no external
script, style sheet or CDN). The same output works in three places:

* the rendered book with no kernel (the output's inline scripts run when the page loads),
* live Jupyter (once the notebook is trusted, which running the cell makes it),
* Colab.

Nothing in the library imports this module; notebooks do::

    from minillm_lib.viz import sampling_explorer
    sampling_explorer(model, tokenizer, ["ROMEO:\\n"])   # the last expression of a cell

Every function returns an ``Explorer`` (it has ``_repr_html_``, so Jupyter and the book show
it). Its element id is ``minillm-<kind>-<n>``, n counting the explorers built in this process,
so a notebook run from the top gives the same page every time (pass ``element_id=`` to choose
it). Several explorers on one page do not interfere: each script finds its own root element.

DOM hooks (stable: the book's browser tests use them)
-----------------------------------------------------
Every explorer's root is ``<div class="mlv" data-explorer="KIND" id=...>`` and carries
``data-state``: JSON of what it shows right now (listed per explorer below), rewritten on
every change. ``[data-testid="caption"]`` is its one-line caption. Range sliders hold the
INDEX of a grid value (0, 1, ...) unless said otherwise; ``[data-testid="NAME-value"]`` is
the <output> that shows the value itself.

``sampling`` (``sampling_explorer``)
    controls: select ``prompt``; sliders ``temperature``, ``top-k``, ``top-p`` (grid indices).
    ``svg[data-testid="bars"]`` holds one ``g[data-testid="bar"]`` per shown token with
    ``data-token-id``, ``data-prob`` (probability after all filters, renormalised),
    ``data-prob-before`` (after temperature only) and ``data-kept`` ("1"/"0").
    ``[data-testid="continuation"]``: the precomputed sample for these settings.
    state: prompt (index), temperature, top_k (null = off), top_p, ids (every embedded token
    id, most likely first), probs (aligned with ids), kept (ids that can be sampled).
``attention`` (``attention_explorer``)
    controls: selects ``layer``, ``head``; slider ``query`` (a token position, not an index
    into a grid); ``[data-testid="token"]`` spans (``data-index``), a click picks the query.
    ``canvas[data-testid="heatmap"]`` has ``data-checksum`` = sum over the shown (T, T) map
    of weight * (query * T + key), 4 decimals; ``[data-testid="text"]`` has ``data-row``,
    JSON of the query's attention weights over keys 0..query.
    state: layer, head, query, checksum.
``position`` (``position_explorer``)
    slider ``position`` (a position); ``canvas[data-testid="heatmap"]`` (hover readout);
    ``svg[data-testid="vector"]``, ``svg[data-testid="similarity"]``.
    state: position, cosine (similarity of that position to every position, 4 decimals).
``lr-schedule`` (``lr_schedule_explorer``)
    sliders ``warmup`` (warmup_iters itself) and ``min-lr`` (min_lr / lr, itself);
    ``svg[data-testid="curve"]``, whose ``rect[data-testid="hover"]`` gives the (step, lr)
    readout in the caption. state: warmup_iters, min_lr, points ([step, lr] pairs
    drawn, every step when max_iters <= 2000). ``window.minillmViz.lrAt(step, cfg)`` is the
    JavaScript twin of ``minillm_lib.train.lr_at`` (cfg: the TrainConfig fields by name).

Sizes: floats are rounded to 4 significant digits; attention weights and the sinusoidal
table are stored as integers in units of 1e-4 (``SCALE``). ``Explorer.nbytes`` tells an
output's size; the course model's explorers stay well under 200 kB each.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .generate import generate
from .layers import sinusoidal_positions
from .model import GPT
from .tokenizers import Tokenizer
from .train import TrainConfig

SCALE = 10_000  # attention weights and the sinusoidal table are stored as round(value * SCALE)
MAX_TABLE_VALUES = 200_000  # position_explorer refuses bigger tables: the page would be too heavy

# The sampling explorer's default grid: 1 greedy + 4 * 3 * 3 = 37 runs of generate per prompt.
TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.5)
TOP_KS = (3, 10, None)  # None = off
TOP_PS = (0.5, 0.9, 1.0)  # 1.0 = off

_ids = itertools.count(1)  # explorers built in this process: deterministic element ids


@dataclass(frozen=True)
class Explorer:
    """One explorer's complete HTML (markup, style, data and script), shown by Jupyter and the book."""

    kind: str
    element_id: str
    html: str

    def _repr_html_(self) -> str:
        return self.html

    @property
    def nbytes(self) -> int:
        """Size of the output in bytes (UTF-8)."""
        return len(self.html.encode("utf-8"))

    def __repr__(self) -> str:
        return f"<{self.kind} explorer {self.element_id}: {self.nbytes / 1000:.1f} kB>"


# ---------------------------------------------------------------- small helpers


def _round(x: float, digits: int = 4) -> float:
    """x rounded to ``digits`` significant digits (keeps the JSON short)."""
    return float(f"{x:.{digits}g}")


def _quantize(values: torch.Tensor) -> list[int]:
    """Values -> integers in units of 1 / SCALE (a flat list)."""
    return (values.double() * SCALE).round().long().flatten().tolist()


def _check_element_id(element_id: str | None, kind: str) -> str:
    if element_id is None:
        return f"minillm-{kind}-{next(_ids)}"
    if not isinstance(element_id, str) or not re.fullmatch(r"[A-Za-z][\w-]*", element_id):
        raise ValueError(f"element_id must be a letter followed by letters, digits, _ or -, got {element_id!r}")
    return element_id


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no "</script>" can end it.
    <, > and & only occur inside JSON strings, where \\u escapes mean the same characters."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _device(model: GPT) -> torch.device:
    return next(model.parameters()).device


def _encode(tokenizer: Tokenizer, text: str, what: str) -> list[int]:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} must be a non-empty string, got {text!r}")
    ids = tokenizer.encode(text)
    if not ids:
        raise ValueError(f"{what} {text!r} encodes to no tokens")
    return ids


def _token_piece(tokenizer: Tokenizer, token_id: int) -> str:
    """The text of one token (a BPE token that is part of a character decodes to U+FFFD)."""
    return tokenizer.decode([token_id])


def _select(testid: str, label: str, options: Sequence[str], selected: int) -> str:
    opts = "".join(
        f'<option value="{i}"{" selected" if i == selected else ""}>{html.escape(text)}</option>'
        for i, text in enumerate(options)
    )
    return f'<label>{label} <select data-testid="{testid}">{opts}</select></label>'


def _slider(testid: str, label: str, n_values: int, value: float, readout: str, *, step: float = 1) -> str:
    """A labelled range input over 0, step, ..., (n_values - 1) * step, and its readout."""
    return (
        f'<label>{label} <input type="range" data-testid="{testid}" min="0" max="{(n_values - 1) * step:g}" '
        f'step="{step:g}" value="{value:g}"><output data-testid="{testid}-value">'
        f"{html.escape(readout)}</output></label>"
    )


def _render(kind: str, element_id: str, title: str, body: str, data: dict[str, Any]) -> Explorer:
    """Wrap one explorer: root div, style, markup (hidden until its script runs), data, script."""
    script = f"{_COMMON_JS}\n{_KIND_JS[kind]}\nwindow.minillmViz.start({json.dumps(kind)}, document.currentScript, {json.dumps(element_id)});"
    page = (
        f'<div class="mlv" id="{element_id}" data-explorer="{kind}" data-state="{{}}">'
        f"<style>{_CSS}</style>"
        f'<div class="mlv-title">{html.escape(title)}</div>'
        '<div class="mlv-fallback">This interactive explorer needs JavaScript: it runs in the '
        "rendered book, in Jupyter (trusted notebooks) and in Colab.</div>"
        f'<div class="mlv-body" style="display:none">{body}'
        '<div class="mlv-caption" data-testid="caption" aria-live="polite"></div></div>'
        f'<script type="application/json" class="mlv-data">{_json_for_script(data)}</script>'
        f"<script>{script}</script></div>"
    )
    return Explorer(kind, element_id, page)


# ---------------------------------------------------------------- 1. sampling


def _grid(values: Sequence[Any], name: str) -> list[Any]:
    """Distinct grid values in increasing order (None, meaning "no filter", last)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of values, got {values!r}")
    return sorted({v for v in values if v is not None}) + ([None] if None in values else [])


def sampling_data(
    model: GPT,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    temperatures: Sequence[float] = TEMPERATURES,
    top_ks: Sequence[int | None] = TOP_KS,
    top_ps: Sequence[float] = TOP_PS,
    n_new: int = 80,
    seed: int = 0,
    n_show: int = 20,
    max_logits: int = 1024,
) -> dict[str, Any]:
    """The data ``sampling_explorer`` embeds: next-token logits and precomputed samples.

    For each prompt: the logits (V,) of the next token, minus the largest one (the softmax
    does not change) and rounded to 4 significant digits, sorted most likely first (ties in
    token-id order) with their token ids; and, for every grid point (temperature, top_k,
    top_p), the continuation that ``generate`` samples with a fresh
    ``torch.Generator().manual_seed(seed)``. Every grid point uses the same seed, so two
    settings differ only through the settings. top_k None and top_p 1.0 mean "off";
    temperature 0 is greedy.

    A vocabulary larger than ``max_logits`` keeps only the ``max_logits`` most likely tokens
    plus, per temperature, the log of the softmax denominator over the whole vocabulary
    (``lse``), so the probabilities shown stay exact (except when top-p's nucleus reaches
    past those tokens: the rest then counts as kept whole); top_k must be <= max_logits.

    Returns a JSON-ready dict: vocab_size, temperatures, top_ks, top_ps, n_show, n_new, seed,
    and prompts: a list of {text, ids, labels (of the first n_show ids), logits, lse (only
    when the vocabulary was cut), samples (distinct continuations), grid (flat list of indices
    into samples; grid point (i, j, k) is at (i * len(top_ks) + j) * len(top_ps) + k)}.
    """
    temperatures = _grid(temperatures, "temperatures")
    top_ks = _grid(top_ks, "top_ks")
    top_ps = _grid(top_ps, "top_ps")
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    for name, value in (("n_show", n_show), ("max_logits", max_logits)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    vocab_size = model.config.vocab_size
    n_logits = min(vocab_size, max_logits)
    too_big = [k for k in top_ks if k is not None and n_logits < k < vocab_size]
    if too_big:
        raise ValueError(f"top_ks {too_big} exceed max_logits={max_logits}: the explorer keeps only the "
                         f"{max_logits} most likely tokens of {vocab_size}")
    device = _device(model)
    block_size = model.config.block_size
    was_training = model.training
    model.eval()
    try:
        out = []
        for text in prompts:
            ids = _encode(tokenizer, text, "prompt")
            idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
            with torch.no_grad():
                logits, _ = model(idx[:, -block_size:])  # (1, T, V)
            last = logits[0, -1].double().cpu()  # (V,)
            shifted = last - last.max()  # the largest is 0: small numbers keep their digits
            order = torch.sort(shifted, descending=True, stable=True).indices[:n_logits]  # (n,)
            item: dict[str, Any] = {
                "text": text,
                "ids": order.tolist(),
                "labels": [_token_piece(tokenizer, i) for i in order[:n_show].tolist()],
                "logits": [_round(x) for x in shifted[order].tolist()],
            }
            if n_logits < vocab_size:
                item["lse"] = [0.0 if t == 0 else _round(torch.logsumexp(shifted / t, 0).item(), 8)
                               for t in temperatures]
            samples: dict[str, int] = {}
            grid = []
            greedy = None
            for t, k, p in itertools.product(temperatures, top_ks, top_ps):
                if t == 0 and greedy is not None:
                    sample = greedy  # greedy decoding ignores top_k and top_p
                else:
                    generator = torch.Generator(device=device).manual_seed(seed)
                    new = generate(model, idx, n_new, temperature=t, top_k=k, top_p=p,
                                   generator=generator)[0, len(ids):]  # (n_new,)
                    sample = tokenizer.decode(new.tolist())
                    greedy = sample if t == 0 else greedy
                grid.append(samples.setdefault(sample, len(samples)))
            item["samples"] = list(samples)
            item["grid"] = grid
            out.append(item)
    finally:
        model.train(was_training)
    return {
        "vocab_size": vocab_size, "temperatures": temperatures, "top_ks": top_ks, "top_ps": top_ps,
        "n_show": n_show, "n_new": n_new, "seed": seed, "prompts": out,
    }


def _prompt_label(text: str, width: int = 32) -> str:
    shown = text.replace("\n", "↵")
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def _start_index(values: list[Any], wanted: Any) -> int:
    return values.index(wanted) if wanted in values else len(values) // 2


def sampling_explorer(
    model: GPT,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    *,
    temperatures: Sequence[float] = TEMPERATURES,
    top_ks: Sequence[int | None] = TOP_KS,
    top_ps: Sequence[float] = TOP_PS,
    n_new: int = 80,
    seed: int = 0,
    n_show: int = 20,
    max_logits: int = 1024,
    element_id: str | None = None,
) -> Explorer:
    """Temperature, top-k and top-p on the model's real next-token distribution.

    The page applies temperature -> top-k -> top-p to the embedded logits exactly as
    ``minillm_lib.generate`` does (ties in top-k all kept, top-p always keeps the most
    likely token, ties cut in token-id order) and draws the ``n_show`` most likely tokens:
    kept ones in colour at their renormalised probability (a dashed outline marks their
    probability before renormalising), filtered ones in grey. Below it, the continuation
    that ``generate`` sampled for these settings (precomputed at every grid point, so the
    sliders snap to the grid). Cost: one ``generate`` of ``n_new`` tokens per grid point
    and prompt (greedy once per prompt). Data: see ``sampling_data``.
    """
    element_id = _check_element_id(element_id, "sampling")
    data = sampling_data(model, tokenizer, prompts, temperatures=temperatures, top_ks=top_ks,
                         top_ps=top_ps, n_new=n_new, seed=seed, n_show=n_show, max_logits=max_logits)
    ti = _start_index(data["temperatures"], 1.0)
    ki, pi = len(data["top_ks"]) - 1, len(data["top_ps"]) - 1  # the filters start off (or loosest)
    show_k = "off" if data["top_ks"][ki] is None else str(data["top_ks"][ki])
    body = (
        '<div class="mlv-controls">'
        + _select("prompt", "Prompt", [_prompt_label(p["text"]) for p in data["prompts"]], 0)
        + "</div><div class=\"mlv-controls\">"
        + _slider("temperature", "Temperature", len(data["temperatures"]), ti, f"{data['temperatures'][ti]:g}")
        + _slider("top-k", "top-k", len(data["top_ks"]), ki, show_k)
        + _slider("top-p", "top-p", len(data["top_ps"]), pi, f"{data['top_ps'][pi]:g}")
        + "</div>"
        '<svg data-testid="bars" viewBox="0 0 680 250" width="680" height="250" role="img" '
        'aria-label="next-token probabilities"></svg>'
        '<div class="mlv-legend"><span class="mlv-swatch" style="background:#2f7ed8"></span> can be sampled '
        "(after the filters) &nbsp; "
        '<span class="mlv-swatch mlv-outline"></span> before renormalising &nbsp; '
        '<span class="mlv-swatch" style="background:rgba(140,140,140,.45)"></span> filtered out</div>'
        '<div class="mlv-sample mlv-mono" data-testid="continuation"></div>'
    )
    title = f"Next-token sampling: {model.config.vocab_size} tokens, {n_new} sampled per setting"
    return _render("sampling", element_id, title, body, data)


# ---------------------------------------------------------------- 2. attention


def attention_data(model: GPT, tokenizer: Tokenizer, text: str) -> dict[str, Any]:
    """The data ``attention_explorer`` embeds: every layer's and head's attention map.

    Returns a JSON-ready dict: tokens (the text of each token), ids, n_layer, n_head, scale
    (= SCALE) and weights[layer][head]: the causal (T, T) map's lower triangle, row by row
    (query q holds keys 0..q, so row q starts at q * (q + 1) / 2), as integers in units of
    1 / scale. The text must fit the model's block_size.
    """
    ids = _encode(tokenizer, text, "text")
    block_size = model.config.block_size
    if len(ids) > block_size:
        raise ValueError(f"text is {len(ids)} tokens long, more than the model's block_size={block_size}")
    idx = torch.tensor([ids], dtype=torch.long, device=_device(model))  # (1, T)
    was_training = model.training
    model.eval()  # no dropout in the maps
    try:
        maps = model.attention_maps(idx)[:, 0].cpu()  # (n_layer, n_head, T, T)
    finally:
        model.train(was_training)
    T = len(ids)
    rows, cols = torch.tril_indices(T, T)  # the causal lower triangle, row by row
    lower = maps[:, :, rows, cols]  # (n_layer, n_head, T * (T + 1) / 2)
    return {
        "tokens": [_token_piece(tokenizer, i) for i in ids],
        "ids": ids,
        "n_layer": maps.size(0),
        "n_head": maps.size(1),
        "scale": SCALE,
        "weights": [[_quantize(head) for head in layer] for layer in lower],
    }


def attention_explorer(
    model: GPT,
    tokenizer: Tokenizer,
    text: str,
    *,
    layer: int = 0,
    head: int = 0,
    query: int | None = None,
    element_id: str | None = None,
) -> Explorer:
    """Which earlier tokens each token attends to, for every layer and head of ``model``.

    Left: the (T, T) attention map of the chosen layer and head (rows = queries, columns =
    keys; the upper triangle is empty because of the causal mask), the query's row
    outlined. Right: the text, each token shaded by the weight the query gives it (relative
    to the query's largest weight). Pick the query with the slider or by clicking a token
    or a row of the map; hovering shows the exact weights. ``query`` None = the last token.
    """
    element_id = _check_element_id(element_id, "attention")
    data = attention_data(model, tokenizer, text)
    T, n_layer, n_head = len(data["ids"]), data["n_layer"], data["n_head"]
    query = T - 1 if query is None else query
    for name, value, size in (("layer", layer, n_layer), ("head", head, n_head), ("query", query, T)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
            raise ValueError(f"{name} must be an integer in [0, {size - 1}], got {value!r}")
    data["start"] = {"layer": layer, "head": head, "query": query}
    body = (
        '<div class="mlv-controls">'
        + _select("layer", "Layer", [str(i) for i in range(n_layer)], layer)
        + _select("head", "Head", [str(i) for i in range(n_head)], head)
        + _slider("query", "Query position", T, query, str(query))
        + "</div>"
        '<div class="mlv-row"><div class="mlv-map">'
        '<canvas data-testid="heatmap" class="mlv-pixels"></canvas><svg class="mlv-axes"></svg></div>'
        '<div class="mlv-side"><div class="mlv-text mlv-mono" data-testid="text"></div>'
        '<div class="mlv-legend">Each token is shaded by the weight the query (outlined) gives it, '
        "relative to the largest; later tokens are masked. Click a token or a row of the map to "
        "make it the query.</div></div></div>"
    )
    title = f"Attention maps: {n_layer} layers x {n_head} heads over {T} tokens"
    return _render("attention", element_id, title, body, data)


# ---------------------------------------------------------------- 3. positions


def position_data(block_size: int, n_embd: int, base: float = 10000.0) -> dict[str, Any]:
    """The data ``position_explorer`` embeds: ``sinusoidal_positions(block_size, n_embd, base)``,
    row-major (position, channel), as integers in units of 1 / scale (= SCALE)."""
    for name, value in (("block_size", block_size), ("n_embd", n_embd)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if block_size * n_embd > MAX_TABLE_VALUES:
        raise ValueError(f"block_size * n_embd = {block_size * n_embd} is more than {MAX_TABLE_VALUES} "
                         "values: too heavy for a page; show a smaller table")
    table = sinusoidal_positions(block_size, n_embd, base)  # (T, C)
    return {"block_size": block_size, "n_embd": n_embd, "base": base, "scale": SCALE,
            "table": _quantize(table)}


def position_explorer(
    block_size: int = 64,
    n_embd: int = 128,
    *,
    base: float = 10000.0,
    position: int | None = None,
    element_id: str | None = None,
) -> Explorer:
    """The sinusoidal position table of ``minillm_lib.layers.sinusoidal_positions``.

    Top: the (block_size, n_embd) table as a heatmap (hover for position, channel, value and
    its formula). Below, for the position on the slider: its encoding vector across the
    channels, and its cosine similarity to every position (high for near neighbours,
    falling with distance: what makes relative positions readable). ``position`` None = 10
    (or the last position of a shorter block).
    """
    element_id = _check_element_id(element_id, "position")
    data = position_data(block_size, n_embd, base)
    position = min(10, block_size - 1) if position is None else position
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < block_size:
        raise ValueError(f"position must be an integer in [0, {block_size - 1}], got {position!r}")
    data["start"] = position
    body = (
        '<div class="mlv-controls">'
        + _slider("position", "Position", block_size, position, str(position))
        + "</div>"
        '<div class="mlv-map mlv-wide"><canvas data-testid="heatmap" class="mlv-pixels"></canvas>'
        '<svg class="mlv-axes"></svg></div>'
        '<div class="mlv-row">'
        '<svg data-testid="vector" viewBox="0 0 315 190" width="315" height="190"></svg>'
        '<svg data-testid="similarity" viewBox="0 0 315 190" width="315" height="190"></svg></div>'
    )
    title = f"Sinusoidal positions: block_size={block_size}, n_embd={n_embd}, base={base:g}"
    return _render("position", element_id, title, body, data)


# ---------------------------------------------------------------- 4. learning-rate schedule


def lr_schedule_data(cfg: TrainConfig) -> dict[str, Any]:
    """The data ``lr_schedule_explorer`` embeds: the TrainConfig fields ``lr_at`` reads."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    return {"lr": cfg.lr, "min_lr": cfg.min_lr, "warmup_iters": cfg.warmup_iters,
            "max_iters": cfg.max_iters, "lr_decay_iters": cfg.lr_decay_iters}


def lr_schedule_explorer(cfg: TrainConfig | None = None, *, element_id: str | None = None) -> Explorer:
    """Warm-up + cosine decay (``minillm_lib.train.lr_at``) for ``cfg`` (default: TrainConfig()).

    Sliders change warmup_iters (0 to half the decay length) and min_lr as a fraction of
    lr; the page recomputes the curve with a line-by-line JavaScript copy of ``lr_at`` and
    keeps the configured schedule as a dashed line. Hover for (step, lr).
    """
    element_id = _check_element_id(element_id, "lr-schedule")
    cfg = TrainConfig() if cfg is None else cfg
    data = lr_schedule_data(cfg)
    decay_iters = cfg.max_iters if cfg.lr_decay_iters is None else cfg.lr_decay_iters
    max_warmup = max(cfg.warmup_iters, min(decay_iters, cfg.max_iters) // 2, 1)
    ratio = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0
    body = (
        '<div class="mlv-controls">'
        + _slider("warmup", "warmup_iters", max_warmup + 1, cfg.warmup_iters, str(cfg.warmup_iters))
        + _slider("min-lr", "min_lr / lr", 101, round(ratio, 2), f"{ratio:.2f}", step=0.01)
        + "</div>"
        '<svg data-testid="curve" viewBox="0 0 680 270" width="680" height="270" role="img" '
        'aria-label="learning rate per step"></svg>'
    )
    title = f"Learning-rate schedule: lr={cfg.lr:g}, {cfg.max_iters} steps"
    return _render("lr-schedule", element_id, title, body, data)


# ---------------------------------------------------------------- style and scripts

_CSS = """
.mlv{box-sizing:border-box;max-width:720px;margin:.6em 0;padding:10px 14px 8px;border:1px solid rgba(128,128,128,.35);
border-radius:8px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:inherit;overflow-x:auto}
.mlv *{box-sizing:border-box}
.mlv-title{font-weight:600;margin:0 0 6px}
.mlv-fallback{font-style:italic;opacity:.75}
.mlv-controls{display:flex;flex-wrap:wrap;gap:6px 18px;align-items:center;margin:0 0 8px}
.mlv-controls label{display:inline-flex;align-items:center;gap:6px;white-space:nowrap;margin:0;font-weight:normal}
.mlv input[type=range]{width:100px;margin:0;accent-color:#2f7ed8}
.mlv select{font:inherit;color:inherit;background:transparent;border:1px solid rgba(128,128,128,.55);border-radius:4px;padding:1px 4px;max-width:300px}
.mlv select option{color:#111;background:#fff}
.mlv output{display:inline-block;min-width:2.4em;font-weight:600;font-variant-numeric:tabular-nums}
.mlv svg{display:block;max-width:100%;height:auto;overflow:visible}
.mlv svg text{fill:currentColor;font-size:11px}
.mlv-mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
.mlv-caption{min-height:1.45em;margin-top:6px;font-size:13px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.mlv-legend{font-size:12px;opacity:.85;margin:2px 0 6px}
.mlv-swatch{display:inline-block;width:11px;height:11px;vertical-align:-1px;border-radius:2px}
.mlv-outline{border:1px dashed currentColor;opacity:.7}
.mlv-sample{white-space:pre-wrap;font-size:13px;padding:6px 8px;border-radius:6px;background:rgba(128,128,128,.1);min-height:3em;max-height:9em;overflow:auto}
.mlv-sample .mlv-prompt{opacity:.6}
.mlv-sample .mlv-new{font-weight:600}
.mlv-row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.mlv-map{position:relative;flex:none}
.mlv-map .mlv-axes{position:absolute;left:0;top:0;pointer-events:none;max-width:none}
.mlv-pixels{position:absolute;image-rendering:pixelated;cursor:crosshair}
.mlv-side{flex:1 1 260px;min-width:240px;max-width:420px}
.mlv-text{white-space:pre-wrap;font-size:14px;line-height:1.75;padding-top:4px;margin-bottom:8px}
.mlv-tok{cursor:pointer;border-radius:2px;padding:1px 0}
.mlv-tok.mlv-future{opacity:.35}
.mlv-tok.mlv-query{outline:2px solid currentColor;outline-offset:0}
"""

# Shared by every explorer (defined once per page, whichever output comes first).
_COMMON_JS = r"""
(function () {
  var V = window.minillmViz = window.minillmViz || {};
  if (V.start) return;
  var NS = "http://www.w3.org/2000/svg";
  V.svg = function (tag, attrs, parent, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  };
  V.clear = function (node) { while (node.firstChild) node.removeChild(node.firstChild); };
  // Short number text: 3 significant digits, no trailing zeros.
  V.fmt = function (x, digits) {
    if (x === 0) return "0";
    var s = Number(x).toPrecision(digits || 3);
    if (s.indexOf("e") < 0 && s.indexOf(".") >= 0) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s;
  };
  // Whitespace and control characters made visible (for labels).
  V.visible = function (s) {
    return s.replace(/\n/g, "\u21b5").replace(/ /g, "\u2423").replace(/\t/g, "\u21e5")
      .replace(/[\x00-\x1f\x7f]/g, function (c) { return "\\x" + ("0" + c.charCodeAt(0).toString(16)).slice(-2); });
  };
  V.viridis = [[68,1,84],[71,44,122],[59,81,139],[44,113,142],[33,144,140],[39,173,129],[92,200,99],[170,220,50],[253,231,37]];
  V.rdbu = [[33,102,172],[67,147,195],[146,197,222],[209,229,240],[247,247,247],[253,219,199],[244,165,130],[214,96,77],[178,24,43]];
  // Colour at t in [0, 1] along the stops, as [r, g, b].
  V.ramp = function (stops, t) {
    t = Math.min(1, Math.max(0, t)) * (stops.length - 1);
    var i = Math.min(stops.length - 2, Math.floor(t)), f = t - i, a = stops[i], b = stops[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  };
  V.css = function (c) { return "rgb(" + Math.round(c[0]) + "," + Math.round(c[1]) + "," + Math.round(c[2]) + ")"; };
  // A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) for about n ticks over range.
  V.niceStep = function (range, n) {
    var raw = range / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10) * mag;
  };
  // Axes in box {x, y, w, h} for x in [x0, x1], y in [y0, y1]; returns the two scales.
  V.axes = function (svg, box, x0, x1, y0, y1, o) {
    o = o || {};
    var sx = function (v) { return box.x + (v - x0) / (x1 - x0 || 1) * box.w; };
    var sy = function (v) { return box.y + box.h - (v - y0) / (y1 - y0 || 1) * box.h; };
    var g = V.svg("g", {}, svg), s, v;
    s = V.niceStep(y1 - y0, o.yTicks || 4);
    for (v = Math.ceil(y0 / s - 1e-9) * s; v <= y1 + 1e-12; v += s) {
      V.svg("line", {x1: box.x, x2: box.x + box.w, y1: sy(v), y2: sy(v), stroke: "currentColor", "stroke-opacity": Math.abs(v) < 1e-12 ? .5 : .13}, g);
      V.svg("text", {x: box.x - 5, y: sy(v) + 3.5, "text-anchor": "end"}, g, (o.fmtY || V.fmt)(Math.abs(v) < 1e-12 ? 0 : v));
    }
    s = Math.max(o.xMinStep || 0, V.niceStep(x1 - x0, o.xTicks || 6));
    for (v = Math.ceil(x0 / s - 1e-9) * s; !o.noXTicks && v <= x1 + 1e-9; v += s) {
      V.svg("line", {x1: sx(v), x2: sx(v), y1: box.y + box.h, y2: box.y + box.h + 4, stroke: "currentColor", "stroke-opacity": .5}, g);
      V.svg("text", {x: sx(v), y: box.y + box.h + 15, "text-anchor": "middle"}, g, V.fmt(v, 4));
    }
    V.svg("line", {x1: box.x, x2: box.x + box.w, y1: box.y + box.h, y2: box.y + box.h, stroke: "currentColor", "stroke-opacity": .5}, g);
    if (o.xLabel) V.svg("text", {x: box.x + box.w / 2, y: box.y + box.h + 30, "text-anchor": "middle", "font-size": 12}, g, o.xLabel);
    if (o.yLabel) V.svg("text", {x: box.x, y: box.y - 8, "text-anchor": "start", "font-size": 12}, g, o.yLabel);
    return {x: sx, y: sy};
  };
  V.polyline = function (svg, xs, ys, sc, attrs) {
    var pts = [];
    for (var i = 0; i < xs.length; i++) pts.push(sc.x(xs[i]).toFixed(2) + "," + sc.y(ys[i]).toFixed(2));
    attrs.points = pts.join(" ");
    attrs.fill = "none";
    return V.svg("polyline", attrs, svg);
  };
  V.setState = function (root, state) { root.setAttribute("data-state", JSON.stringify(state)); };
  V.start = function (kind, script, id) {
    var root = (script && script.closest && script.closest(".mlv")) || document.getElementById(id);
    if (!root || root.getAttribute("data-ready")) return;  // already running (an output shown twice)
    root.setAttribute("data-ready", "1");
    var data = JSON.parse(root.querySelector("script.mlv-data").textContent);
    root.querySelector(".mlv-fallback").style.display = "none";
    root.querySelector(".mlv-body").style.display = "";
    V[kind](root, data);
  };
  // minillm_lib.train.lr_at, line by line (same operations in the same order).
  V.lrAt = function (step, cfg) {
    var decayIters = cfg.lr_decay_iters === null || cfg.lr_decay_iters === undefined ? cfg.max_iters : cfg.lr_decay_iters;
    if (step < cfg.warmup_iters) return cfg.lr * (step + 1) / cfg.warmup_iters;
    if (step >= decayIters) return cfg.min_lr;
    var progress = (step - cfg.warmup_iters) / (decayIters - cfg.warmup_iters);
    return cfg.min_lr + 0.5 * (1.0 + Math.cos(Math.PI * progress)) * (cfg.lr - cfg.min_lr);
  };
})();
"""

_SAMPLING_JS = r"""
(function () {
  var V = window.minillmViz;
  if (V.sampling) return;
  var BLUE = "#2f7ed8", GREY = "rgba(140,140,140,.45)";
  // temperature -> top-k -> top-p on one prompt's sorted logits, as minillm_lib.generate does.
  V.samplingFilter = function (d, pr, ti, k, p) {
    var l = pr.logits, n = l.length, t = d.temperatures[ti], before = [], keep = [], i;
    var tail = 0, tailKept = false;
    if (t === 0) {  // greedy: only the most likely token; the lowest id among ties comes first
      for (i = 0; i < n; i++) { before.push(i === 0 ? 1 : 0); keep.push(i === 0); }
    } else {
      // softmax(l / t), subtracting the largest (l[0]) first; a cut vocabulary brings the
      // log of its denominator (lse) from Python, the tail's mass is what is left over
      var m = l[0] / t, z = 0, total = 0;
      if (pr.lse) { m = pr.lse[ti]; z = 1; }
      else for (i = 0; i < n; i++) z += Math.exp(l[i] / t - m);
      for (i = 0; i < n; i++) { before.push(Math.exp(l[i] / t - m) / z); keep.push(true); total += before[i]; }
      if (pr.lse) { tail = Math.max(0, 1 - total); tailKept = true; }
      if (k !== null && k < d.vocab_size) {  // top-k: every token tied with the k-th largest stays
        var kth = l[k - 1] / t;
        for (i = 0; i < n; i++) keep[i] = l[i] / t >= kth;
        tailKept = false;
      }
      if (p < 1) {  // top-p over the top-k survivors, renormalised; most likely first
        var zk = tailKept ? tail : 0, mass = 0;
        for (i = 0; i < n; i++) if (keep[i]) zk += before[i];
        for (i = 0; i < n; i++) {
          var q = keep[i] ? before[i] / zk : 0;
          if (mass >= p) keep[i] = false;  // the set had reached top_p without this token
          mass += q;
        }
        tailKept = tailKept && mass < p;  // (approximation: the whole tail stays)
      }
    }
    var kept = tailKept ? tail : 0, probs = [];
    for (i = 0; i < n; i++) if (keep[i]) kept += before[i];
    for (i = 0; i < n; i++) probs.push(keep[i] ? before[i] / kept : 0);
    return {before: before, probs: probs, keep: keep, keptMass: kept};
  };
  V.sampling = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var sel = $('[data-testid="prompt"]'), sT = $('[data-testid="temperature"]'),
        sK = $('[data-testid="top-k"]'), sP = $('[data-testid="top-p"]');
    var svg = $('[data-testid="bars"]'), cont = $('[data-testid="continuation"]'), cap = $('[data-testid="caption"]');
    var box = {x: 44, y: 22, w: 630, h: 170};
    function kText(k) { return k === null ? "off" : String(k); }
    function draw() {
      var pi = +sel.value, ti = +sT.value, ki = +sK.value, ppi = +sP.value;
      var pr = d.prompts[pi], t = d.temperatures[ti], k = d.top_ks[ki], p = d.top_ps[ppi];
      $('[data-testid="temperature-value"]').textContent = String(t);
      $('[data-testid="top-k-value"]').textContent = kText(k);
      $('[data-testid="top-p-value"]').textContent = String(p);
      var f = V.samplingFilter(d, pr, ti, k, p), n = Math.min(d.n_show, pr.logits.length), top = 0, i;
      for (i = 0; i < n; i++) top = Math.max(top, f.before[i], f.probs[i]);
      var ymax = Math.min(1, Math.ceil(top / V.niceStep(top, 4)) * V.niceStep(top, 4));
      V.clear(svg);
      var sc = V.axes(svg, box, 0, n, 0, ymax, {yTicks: 4, noXTicks: true,
        fmtY: function (v) { return Math.round(v * 100) + "%"; }, yLabel: "probability of the next token"});
      var bw = box.w / n, gap = Math.min(6, bw * .2);
      for (i = 0; i < n; i++) {
        var x = sc.x(i) + gap / 2, w = bw - gap, id = pr.ids[i];
        var g = V.svg("g", {"data-testid": "bar", "data-token-id": id, "data-prob": f.probs[i],
                            "data-prob-before": f.before[i], "data-kept": f.keep[i] ? "1" : "0"}, svg);
        var hb = sc.y(0) - sc.y(f.before[i]), hp = sc.y(0) - sc.y(f.probs[i]);
        if (f.keep[i]) {
          V.svg("rect", {x: x, y: sc.y(f.probs[i]), width: w, height: hp, fill: BLUE}, g);
          V.svg("rect", {x: x + .5, y: sc.y(f.before[i]), width: w - 1, height: hb, fill: "none",
                         stroke: "currentColor", "stroke-opacity": .6, "stroke-dasharray": "3 2"}, g);
          if (f.probs[i] >= .01) V.svg("text", {x: x + w / 2, y: sc.y(f.probs[i]) - 4, "text-anchor": "middle",
                                                "font-size": 10}, g, V.fmt(100 * f.probs[i], 2) + "%");
        } else {
          V.svg("rect", {x: x, y: sc.y(f.before[i]), width: w, height: hb, fill: GREY}, g);
        }
        var label = V.visible(pr.labels[i]);
        V.svg("text", {x: x + w / 2, y: box.y + box.h + 17, "text-anchor": "middle", "font-size": 13,
                       "class": "mlv-mono", opacity: f.keep[i] ? 1 : .5},
              g, label.length > 6 ? label.slice(0, 5) + "\u2026" : label);
        V.svg("title", {}, g, "token " + id + " " + JSON.stringify(pr.labels[i]) + ": " +
              V.fmt(100 * f.before[i]) + "% after temperature, " + V.fmt(100 * f.probs[i]) + "% after the filters");
      }
      V.svg("text", {x: box.x + box.w, y: box.y + box.h + 36, "text-anchor": "end", "font-size": 11, opacity: .75},
            svg, "the " + n + " most likely of " + d.vocab_size + " tokens");
      var sample = pr.samples[pr.grid[(ti * d.top_ks.length + ki) * d.top_ps.length + ppi]];
      V.clear(cont);
      var a = document.createElement("span"); a.className = "mlv-prompt"; a.textContent = pr.text; cont.appendChild(a);
      var b = document.createElement("span"); b.className = "mlv-new"; b.textContent = sample; cont.appendChild(b);
      var kept = [], nKept = 0;
      for (i = 0; i < pr.ids.length; i++) if (f.keep[i]) { kept.push(pr.ids[i]); nKept++; }
      cap.textContent = t === 0
        ? "Temperature 0 is greedy decoding: always the single most likely token, " +
          JSON.stringify(pr.labels[0]) + " here."
        : "Temperature " + t + ", top-k " + kText(k) + ", top-p " + p + ": " + nKept + " of " + d.vocab_size +
          " tokens kept, holding " + V.fmt(100 * f.keptMass, 3) + "% of the probability.";
      V.setState(root, {prompt: pi, temperature: t, top_k: k, top_p: p, ids: pr.ids, probs: f.probs, kept: kept});
    }
    [sel, sT, sK, sP].forEach(function (c) { c.addEventListener("input", draw); c.addEventListener("change", draw); });
    draw();
  };
})();
"""

_ATTENTION_JS = r"""
(function () {
  var V = window.minillmViz;
  if (V.attention) return;
  V.attention = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var T = d.tokens.length, PAD = 34, SIZE = Math.max(T, Math.min(320, Math.floor(320 / T) * T || 320));
    var sL = $('[data-testid="layer"]'), sH = $('[data-testid="head"]'), sQ = $('[data-testid="query"]');
    var canvas = $('[data-testid="heatmap"]'), axes = $(".mlv-axes"), text = $('[data-testid="text"]');
    var cap = $('[data-testid="caption"]'), ctx = canvas.getContext("2d");
    canvas.width = T; canvas.height = T;  // one pixel per (query, key); CSS scales it up
    canvas.style.left = PAD + "px"; canvas.style.top = "4px";
    canvas.style.width = SIZE + "px"; canvas.style.height = SIZE + "px";
    var box = {x: PAD, y: 4, w: SIZE, h: SIZE}, cell = SIZE / T;
    axes.setAttribute("width", PAD + SIZE + 6); axes.setAttribute("height", SIZE + 62);
    canvas.parentNode.style.width = (PAD + SIZE + 6) + "px"; canvas.parentNode.style.height = (SIZE + 62) + "px";
    var st = {layer: d.start.layer, head: d.start.head, query: d.start.query}, highlight;
    function w(q, k) { return d.weights[st.layer][st.head][q * (q + 1) / 2 + k] / d.scale; }
    function tok(i) { return JSON.stringify(d.tokens[i]); }
    // static axes: ticks, titles, colour bar
    (function () {
      var step = T <= 16 ? 1 : T <= 40 ? 5 : 10, i;
      for (i = 0; i < T; i += step) {
        V.svg("text", {x: box.x + (i + .5) * cell, y: box.y + box.h + 13, "text-anchor": "middle", "font-size": 10}, axes, i);
        V.svg("text", {x: box.x - 4, y: box.y + (i + .5) * cell + 3.5, "text-anchor": "end", "font-size": 10}, axes, i);
      }
      V.svg("text", {x: box.x + box.w / 2, y: box.y + box.h + 27, "text-anchor": "middle", "font-size": 11}, axes, "key position (attended to)");
      V.svg("text", {transform: "translate(9," + (box.y + box.h / 2) + ") rotate(-90)", "text-anchor": "middle", "font-size": 11}, axes, "query position");
      V.svg("rect", {x: box.x - .5, y: box.y - .5, width: box.w + 1, height: box.h + 1, fill: "none", stroke: "currentColor", "stroke-opacity": .3}, axes);
      var grad = V.svg("linearGradient", {id: root.id + "-grad"}, V.svg("defs", {}, axes));
      for (i = 0; i <= 8; i++) V.svg("stop", {offset: i / 8, "stop-color": V.css(V.ramp(V.viridis, i / 8))}, grad);
      var y = box.y + box.h + 36, bw = Math.min(200, box.w - 60);
      V.svg("rect", {x: box.x, y: y, width: bw, height: 9, fill: "url(#" + root.id + "-grad)"}, axes);
      [0, .1, .25, .5, 1].forEach(function (v) {
        V.svg("text", {x: box.x + Math.sqrt(v) * bw, y: y + 21, "text-anchor": "middle", "font-size": 9}, axes, v);
      });
      V.svg("text", {x: box.x + bw + 6, y: y + 8, "font-size": 10}, axes, "weight (\u221a scale)");
      highlight = V.svg("rect", {x: box.x - 1, width: box.w + 2, height: cell + 2, fill: "none", stroke: "currentColor", "stroke-width": 1.5}, axes);
    })();
    var spans = d.tokens.map(function (s, i) {
      var span = document.createElement("span");
      span.className = "mlv-tok"; span.setAttribute("data-testid", "token"); span.setAttribute("data-index", i);
      span.textContent = s === "\n" ? "\u21b5\n" : s;
      span.title = "position " + i + " " + tok(i) + " (click: make it the query)";
      span.addEventListener("click", function () { setQuery(i); });
      span.addEventListener("mouseenter", function () { describe(st.query, i); });
      span.addEventListener("mouseleave", function () { describe(st.query, null); });
      text.appendChild(span);
      return span;
    });
    function describe(q, k) {
      var where = "Layer " + st.layer + ", head " + st.head + ": ";
      if (k === null) {
        var best = 0, j;
        for (j = 1; j <= q; j++) if (w(q, j) > w(q, best)) best = j;
        cap.textContent = where + "query " + q + " " + tok(q) + " attends most to position " + best + " " +
          tok(best) + " (weight " + V.fmt(w(q, best)) + ").";
      } else if (k > q) {
        cap.textContent = where + "position " + k + " " + tok(k) + " comes after query " + q + ": masked, weight 0.";
      } else {
        cap.textContent = where + "query " + q + " " + tok(q) + " \u2192 key " + k + " " + tok(k) + ": weight " + V.fmt(w(q, k), 3) + ".";
      }
    }
    function draw() {
      var img = ctx.createImageData(T, T), px = img.data, q, k, sum = 0;
      for (q = 0; q < T; q++) for (k = 0; k <= q; k++) {
        var v = w(q, k), c = V.ramp(V.viridis, Math.sqrt(v)), o = 4 * (q * T + k);
        px[o] = c[0]; px[o + 1] = c[1]; px[o + 2] = c[2]; px[o + 3] = 255;
        sum += v * (q * T + k);
      }
      ctx.putImageData(img, 0, 0);
      var checksum = sum.toFixed(4);
      canvas.setAttribute("data-checksum", checksum);
      highlight.setAttribute("y", box.y + st.query * cell - 1);
      var row = [], top = 0;
      for (k = 0; k <= st.query; k++) { row.push(+w(st.query, k).toFixed(4)); top = Math.max(top, row[k]); }
      spans.forEach(function (span, i) {
        span.classList.toggle("mlv-query", i === st.query);
        span.classList.toggle("mlv-future", i > st.query);
        span.style.backgroundColor = i <= st.query ? "rgba(255,140,0," + (0.85 * row[i] / (top || 1)).toFixed(3) + ")" : "";
      });
      text.setAttribute("data-row", JSON.stringify(row));
      sQ.value = st.query;
      $('[data-testid="query-value"]').textContent = st.query + " " + tok(st.query);
      describe(st.query, null);
      V.setState(root, {layer: st.layer, head: st.head, query: st.query, checksum: checksum});
    }
    function setQuery(q) { st.query = q; draw(); }
    function cellAt(e) {
      var r = canvas.getBoundingClientRect();
      return [Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)), Math.min(T - 1, Math.floor((e.clientX - r.left) / r.width * T))];
    }
    canvas.addEventListener("mousemove", function (e) { var c = cellAt(e); describe(c[0], c[1]); });
    canvas.addEventListener("mouseleave", function () { describe(st.query, null); });
    canvas.addEventListener("click", function (e) { setQuery(cellAt(e)[0]); });
    sL.addEventListener("change", function () { st.layer = +sL.value; draw(); });
    sH.addEventListener("change", function () { st.head = +sH.value; draw(); });
    sQ.addEventListener("input", function () { setQuery(+sQ.value); });
    draw();
  };
})();
"""

_POSITION_JS = r"""
(function () {
  var V = window.minillmViz;
  if (V.position) return;
  V.position = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var T = d.block_size, C = d.n_embd, PAD = 40, W = 600, H = Math.round(Math.min(300, Math.max(140, W * T / C)));
    var canvas = $('[data-testid="heatmap"]'), axes = $(".mlv-axes"), slider = $('[data-testid="position"]');
    var cap = $('[data-testid="caption"]'), vec = $('[data-testid="vector"]'), sim = $('[data-testid="similarity"]');
    var table = d.table.map(function (v) { return v / d.scale; });
    function at(p, c) { return table[p * C + c]; }
    canvas.width = C; canvas.height = T;
    canvas.style.left = PAD + "px"; canvas.style.top = "4px"; canvas.style.width = W + "px"; canvas.style.height = H + "px";
    canvas.parentNode.style.width = (PAD + W + 10) + "px"; canvas.parentNode.style.height = (H + 40) + "px";
    axes.setAttribute("width", PAD + W + 10); axes.setAttribute("height", H + 40);
    var img = canvas.getContext("2d").createImageData(C, T), p, c, i;
    for (p = 0; p < T; p++) for (c = 0; c < C; c++) {
      var col = V.ramp(V.rdbu, (at(p, c) + 1) / 2), o = 4 * (p * C + c);
      img.data[o] = col[0]; img.data[o + 1] = col[1]; img.data[o + 2] = col[2]; img.data[o + 3] = 255;
    }
    canvas.getContext("2d").putImageData(img, 0, 0);
    var box = {x: PAD, y: 4, w: W, h: H};
    var xs = V.niceStep(C, 8), ys = V.niceStep(T, 6);
    for (c = 0; c < C; c += xs) V.svg("text", {x: box.x + (c + .5) * W / C, y: box.y + H + 13, "text-anchor": "middle", "font-size": 10}, axes, c);
    for (p = 0; p < T; p += ys) V.svg("text", {x: box.x - 4, y: box.y + (p + .5) * H / T + 3.5, "text-anchor": "end", "font-size": 10}, axes, p);
    V.svg("text", {x: box.x + W / 2, y: box.y + H + 28, "text-anchor": "middle", "font-size": 11}, axes, "channel (even = sin, odd = cos; slower to the right) \u00b7 \u22121 blue, 0 white, +1 red");
    V.svg("text", {transform: "translate(10," + (box.y + H / 2) + ") rotate(-90)", "text-anchor": "middle", "font-size": 11}, axes, "position");
    var band = V.svg("rect", {x: box.x - 1, width: W + 2, height: H / T + 2, fill: "none", stroke: "currentColor", "stroke-width": 1.5}, axes);
    var cur = d.start;
    function formula(p, c) {
      var i2 = c - c % 2;
      return (c % 2 ? "cos" : "sin") + "(" + p + " / " + V.fmt(d.base) + "^(" + i2 + "/" + C + ")) = " + at(p, c).toFixed(4);
    }
    function idle() { cap.textContent = "Position " + cur + ": its vector and its cosine similarity to every position. Hover the table for values."; }
    function draw() {
      band.setAttribute("y", box.y + cur * H / T - 1);
      var xe = [], ye = [], xo = [], yo = [], cos = [], q, nc = 0;
      for (c = 0; c < C; c++) {
        if (c % 2) { xo.push(c); yo.push(at(cur, c)); } else { xe.push(c); ye.push(at(cur, c)); }
        nc += at(cur, c) * at(cur, c);
      }
      for (q = 0; q < T; q++) {
        var dot = 0, nq = 0;
        for (c = 0; c < C; c++) { dot += at(cur, c) * at(q, c); nq += at(q, c) * at(q, c); }
        cos.push(+(dot / Math.sqrt(nc * nq || 1)).toFixed(4));
      }
      V.clear(vec); V.clear(sim);
      var bx = {x: 40, y: 22, w: 265, h: 120};
      var s1 = V.axes(vec, bx, 0, C - 1, -1, 1, {yTicks: 4, xTicks: 5, xMinStep: 1, xLabel: "channel", yLabel: "position " + cur + "'s vector"});
      V.polyline(vec, xe, ye, s1, {stroke: "#2f7ed8", "stroke-width": 1.5});
      V.polyline(vec, xo, yo, s1, {stroke: "#e08a00", "stroke-width": 1.5});
      V.svg("text", {x: bx.x + bx.w, y: bx.y - 8, "text-anchor": "end", style: "fill:#2f7ed8"}, vec, "sin (even)");
      V.svg("text", {x: bx.x + bx.w - 62, y: bx.y - 8, "text-anchor": "end", style: "fill:#e08a00"}, vec, "cos (odd)");
      var pos = [];
      for (q = 0; q < T; q++) pos.push(q);
      var lo = Math.min(0, Math.min.apply(null, cos));
      var s2 = V.axes(sim, bx, 0, T - 1, lo, 1, {yTicks: 4, xTicks: 5, xMinStep: 1, xLabel: "position", yLabel: "cosine similarity to position " + cur});
      V.polyline(sim, pos, cos, s2, {stroke: "#d6604d", "stroke-width": 1.5});
      V.svg("circle", {cx: s2.x(cur), cy: s2.y(1), r: 3.5, fill: "#d6604d"}, sim);
      $('[data-testid="position-value"]').textContent = cur;
      idle();
      V.setState(root, {position: cur, cosine: cos});
    }
    canvas.addEventListener("mousemove", function (e) {
      var r = canvas.getBoundingClientRect();
      var p = Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)), c = Math.min(C - 1, Math.floor((e.clientX - r.left) / r.width * C));
      cap.textContent = "position " + p + ", channel " + c + ": " + formula(p, c);
    });
    canvas.addEventListener("mouseleave", idle);
    canvas.addEventListener("click", function (e) {
      var r = canvas.getBoundingClientRect();
      cur = Math.min(T - 1, Math.floor((e.clientY - r.top) / r.height * T)); slider.value = cur; draw();
    });
    slider.addEventListener("input", function () { cur = +slider.value; draw(); });
    draw();
  };
})();
"""

_LR_JS = r"""
(function () {
  var V = window.minillmViz;
  if (V["lr-schedule"]) return;
  V["lr-schedule"] = function (root, d) {
    var $ = function (s) { return root.querySelector(s); };
    var sW = $('[data-testid="warmup"]'), sM = $('[data-testid="min-lr"]'), svg = $('[data-testid="curve"]');
    var cap = $('[data-testid="caption"]'), box = {x: 60, y: 26, w: 610, h: 190};
    var cfg = {lr: d.lr, min_lr: d.min_lr, warmup_iters: d.warmup_iters, max_iters: d.max_iters, lr_decay_iters: d.lr_decay_iters};
    var configured = Object.assign({}, cfg), ratio = d.lr > 0 ? d.min_lr / d.lr : 0;
    // the steps drawn: every step of training, or 2000 evenly spread ones plus the corners
    var steps = [], i, n = d.max_iters;
    if (n <= 2000) for (i = 0; i < n; i++) steps.push(i);
    else for (i = 0; i < 2000; i++) steps.push(Math.round(i * (n - 1) / 1999));
    function withCorners(c) {
      var extra = [c.warmup_iters - 1, c.warmup_iters, c.lr_decay_iters === null ? c.max_iters - 1 : c.lr_decay_iters - 1];
      var all = steps.concat(extra.filter(function (s) { return s >= 0 && s < n; }));
      return all.sort(function (a, b) { return a - b; }).filter(function (s, j) { return j === 0 || s !== all[j - 1]; });
    }
    var fmtLr = function (v) { return v === 0 ? "0" : v.toExponential(1).replace("e-", "e\u2212"); };
    var sc, dot, guide, pts;
    function draw() {
      V.clear(svg);
      sc = V.axes(svg, box, 0, n, 0, d.lr * 1.08 || 1, {yTicks: 5, xTicks: 8, xMinStep: 1, fmtY: fmtLr,
        xLabel: "optimizer step", yLabel: "learning rate"});
      var ref = withCorners(configured);
      V.polyline(svg, ref, ref.map(function (s) { return V.lrAt(s, configured); }), sc,
                 {stroke: "currentColor", "stroke-opacity": .45, "stroke-width": 1.2, "stroke-dasharray": "5 4"});
      var xs = withCorners(cfg), ys = xs.map(function (s) { return V.lrAt(s, cfg); });
      V.polyline(svg, xs, ys, sc, {stroke: "#2f7ed8", "stroke-width": 2});
      pts = xs.map(function (s, j) { return [s, ys[j]]; });
      V.svg("line", {x1: box.x + box.w - 150, x2: box.x + box.w - 126, y1: box.y + 4, y2: box.y + 4, stroke: "#2f7ed8", "stroke-width": 2}, svg);
      V.svg("text", {x: box.x + box.w - 120, y: box.y + 8}, svg, "these settings");
      V.svg("line", {x1: box.x + box.w - 150, x2: box.x + box.w - 126, y1: box.y + 20, y2: box.y + 20, stroke: "currentColor", "stroke-opacity": .45, "stroke-dasharray": "5 4"}, svg);
      V.svg("text", {x: box.x + box.w - 120, y: box.y + 24}, svg, "as configured");
      guide = V.svg("line", {y1: box.y, y2: box.y + box.h, stroke: "currentColor", "stroke-opacity": .35, visibility: "hidden"}, svg);
      dot = V.svg("circle", {r: 4, fill: "#2f7ed8", visibility: "hidden"}, svg);
      V.svg("rect", {x: box.x, y: box.y, width: box.w, height: box.h, fill: "transparent", "data-testid": "hover"}, svg)
        .addEventListener("mousemove", hover);
      svg.lastChild.addEventListener("mouseleave", idle);
      $('[data-testid="warmup-value"]').textContent = cfg.warmup_iters;
      $('[data-testid="min-lr-value"]').textContent = ratio.toFixed(2);
      idle();
      V.setState(root, {warmup_iters: cfg.warmup_iters, min_lr: cfg.min_lr, points: pts});
    }
    function idle() {
      guide.setAttribute("visibility", "hidden"); dot.setAttribute("visibility", "hidden");
      cap.textContent = "Warm-up over " + cfg.warmup_iters + " steps to lr " + V.fmt(cfg.lr) + ", cosine down to min_lr " +
        V.fmt(cfg.min_lr) + " at step " + (cfg.lr_decay_iters === null ? cfg.max_iters : cfg.lr_decay_iters) + ". Hover the curve.";
    }
    function hover(e) {
      var r = svg.getBoundingClientRect(), x = (e.clientX - r.left) * 680 / r.width;
      var step = Math.max(0, Math.min(n - 1, Math.round((x - box.x) / box.w * n))), lr = V.lrAt(step, cfg);
      guide.setAttribute("x1", sc.x(step)); guide.setAttribute("x2", sc.x(step)); guide.setAttribute("visibility", "visible");
      dot.setAttribute("cx", sc.x(step)); dot.setAttribute("cy", sc.y(lr)); dot.setAttribute("visibility", "visible");
      cap.textContent = "step " + step + ": lr = " + lr.toPrecision(4) + (step < cfg.warmup_iters ? " (warming up)" : "");
    }
    sW.addEventListener("input", function () { cfg.warmup_iters = parseInt(sW.value, 10); draw(); });
    sM.addEventListener("input", function () { ratio = parseFloat(sM.value); cfg.min_lr = ratio * cfg.lr; draw(); });
    draw();
  };
})();
"""

_KIND_JS = {"sampling": _SAMPLING_JS, "attention": _ATTENTION_JS, "position": _POSITION_JS,
            "lr-schedule": _LR_JS}
