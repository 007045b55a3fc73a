"""Interactive explorers that keep working in the static book (chapters 3, 4, 8, 9):
HTML + a little JavaScript + data.

Each explorer is computed once, in Python, by the real library (the model's logits, its
attention maps, the sinusoidal table, the learning-rate schedule), embedded as JSON in one
HTML output, and drawn by a few kilobytes of plain JavaScript (SVG and <canvas>, no external
script, style sheet or CDN). The JavaScript and CSS are real files in ``viz/static/``,
shipped with the package and inlined into each output. The same output works in three places:

* the rendered book with no kernel (the output's inline scripts run when the page loads),
* live Jupyter (once the notebook is trusted, which running the cell makes it),
* Colab.

Nothing in the library imports this module; notebooks do (and the CLI's ``export --web``)::

    from minillm_lib.viz import sampling_explorer
    sampling_explorer(model, tokenizer, ["ROMEO:\\n"])   # the last expression of a cell

The explorers here replay what Python computed. Those of ``viz.live`` run the model itself in
the page (``viz/static/gpt.js``, weights packed by ``viz.web``), on whatever the reader types.

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
    JavaScript twin of ``minillm_lib.training.lr_at`` (cfg: the TrainConfig fields by name).

Sizes: floats are rounded to 4 significant digits; attention weights and the sinusoidal
table are stored as integers in units of 1e-4 (``SCALE``). ``Explorer.nbytes`` tells an
output's size; the course model's explorers stay well under 200 kB each.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from .._checks import is_int
from ..model import GPT
from ..positions import sinusoidal_positions
from ..sampling import generate
from ..tokenizers import Tokenizer
from ..training import TrainConfig
from .outputs import Explorer, check_element_id, render, select, slider

SCALE = 10_000  # attention weights and the sinusoidal table are stored as round(value * SCALE)
MAX_TABLE_VALUES = 200_000  # position_explorer refuses bigger tables: the page would be too heavy

# The sampling explorer's default grid: 1 greedy + 4 * 3 * 3 = 37 runs of generate per prompt.
TEMPERATURES = (0.0, 0.5, 0.8, 1.0, 1.5)
TOP_KS = (3, 10, None)  # None = off
TOP_PS = (0.5, 0.9, 1.0)  # 1.0 = off


# ---------------------------------------------------------------- small helpers


def _round(x: float, digits: int = 4) -> float:
    """x rounded to ``digits`` significant digits (keeps the JSON short)."""
    return float(f"{x:.{digits}g}")


def _quantize(values: torch.Tensor) -> list[int]:
    """Values -> integers in units of 1 / SCALE (a flat list)."""
    return (values.double() * SCALE).round().long().flatten().tolist()


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
) -> dict[str, Any]:
    """The data ``sampling_explorer`` embeds: next-token logits and precomputed samples.

    For each prompt: the logits (V,) of the next token, minus the largest one (the softmax
    does not change) and rounded to 4 significant digits, sorted most likely first (ties in
    token-id order) with their token ids; and, for every grid point (temperature, top_k,
    top_p), the continuation that ``generate`` samples with a fresh
    ``torch.Generator().manual_seed(seed)``. Every grid point uses the same seed, so two
    settings differ only through the settings. top_k None and top_p 1.0 mean "off";
    temperature 0 is greedy.

    Returns a JSON-ready dict: vocab_size, temperatures, top_ks, top_ps, n_show, n_new, seed,
    and prompts: a list of {text, ids, labels (of the first n_show ids), logits, samples
    (distinct continuations), grid (flat list of indices
    into samples; grid point (i, j, k) is at (i * len(top_ks) + j) * len(top_ps) + k)}.
    """
    temperatures = _grid(temperatures, "temperatures")
    top_ks = _grid(top_ks, "top_ks")
    top_ps = _grid(top_ps, "top_ps")
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    if not is_int(n_show, 1):
        raise ValueError(f"n_show must be an integer >= 1, got {n_show!r}")
    vocab_size = model.config.vocab_size
    device = model.device
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
            order = torch.sort(shifted, descending=True, stable=True).indices  # (V,)
            item: dict[str, Any] = {
                "text": text,
                "ids": order.tolist(),
                "labels": [_token_piece(tokenizer, i) for i in order[:n_show].tolist()],
                "logits": [_round(x) for x in shifted[order].tolist()],
            }
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
    element_id: str | None = None,
) -> Explorer:
    """Temperature, top-k and top-p on the model's real next-token distribution.

    The page applies temperature -> top-k -> top-p to the embedded logits exactly as
    ``minillm_lib.sampling.generate`` does (ties in top-k all kept, top-p always keeps the most
    likely token, ties cut in token-id order) and draws the ``n_show`` most likely tokens:
    kept ones in colour at their renormalised probability (a dashed outline marks their
    probability before renormalising), filtered ones in grey. Below it, the continuation
    that ``generate`` sampled for these settings (precomputed at every grid point, so the
    sliders snap to the grid). Cost: one ``generate`` of ``n_new`` tokens per grid point
    and prompt (greedy once per prompt). Data: see ``sampling_data``.
    """
    element_id = check_element_id(element_id, "sampling")
    data = sampling_data(model, tokenizer, prompts, temperatures=temperatures, top_ks=top_ks,
                         top_ps=top_ps, n_new=n_new, seed=seed, n_show=n_show)
    ti = _start_index(data["temperatures"], 1.0)
    ki, pi = len(data["top_ks"]) - 1, len(data["top_ps"]) - 1  # the filters start off (or loosest)
    show_k = "off" if data["top_ks"][ki] is None else str(data["top_ks"][ki])
    body = (
        '<div class="mlv-controls">'
        + select("prompt", "Prompt", [_prompt_label(p["text"]) for p in data["prompts"]], 0)
        + "</div><div class=\"mlv-controls\">"
        + slider("temperature", "Temperature", len(data["temperatures"]), ti, f"{data['temperatures'][ti]:g}")
        + slider("top-k", "top-k", len(data["top_ks"]), ki, show_k)
        + slider("top-p", "top-p", len(data["top_ps"]), pi, f"{data['top_ps'][pi]:g}")
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
    return render("sampling", element_id, title, body, data, ["sampling_replay.js"])


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
    idx = torch.tensor([ids], dtype=torch.long, device=model.device)  # (1, T)
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
    element_id = check_element_id(element_id, "attention")
    data = attention_data(model, tokenizer, text)
    T, n_layer, n_head = len(data["ids"]), data["n_layer"], data["n_head"]
    query = T - 1 if query is None else query
    for name, value, size in (("layer", layer, n_layer), ("head", head, n_head), ("query", query, T)):
        if not is_int(value, 0, size - 1):
            raise ValueError(f"{name} must be an integer in [0, {size - 1}], got {value!r}")
    data["start"] = {"layer": layer, "head": head, "query": query}
    body = (
        '<div class="mlv-controls">'
        + select("layer", "Layer", [str(i) for i in range(n_layer)], layer)
        + select("head", "Head", [str(i) for i in range(n_head)], head)
        + slider("query", "Query position", T, query, str(query))
        + "</div>"
        '<div class="mlv-row"><div class="mlv-map">'
        '<canvas data-testid="heatmap" class="mlv-pixels"></canvas><svg class="mlv-axes"></svg></div>'
        '<div class="mlv-side"><div class="mlv-text mlv-mono" data-testid="text"></div>'
        '<div class="mlv-legend">Each token is shaded by the weight the query (outlined) gives it, '
        "relative to the largest; later tokens are masked. Click a token or a row of the map to "
        "make it the query.</div></div></div>"
    )
    title = f"Attention maps: {n_layer} layers x {n_head} heads over {T} tokens"
    return render("attention", element_id, title, body, data, ["attention.js"])


# ---------------------------------------------------------------- 3. positions


def position_data(block_size: int, n_embd: int, base: float = 10000.0) -> dict[str, Any]:
    """The data ``position_explorer`` embeds: ``sinusoidal_positions(block_size, n_embd, base)``,
    row-major (position, channel), as integers in units of 1 / scale (= SCALE)."""
    for name, value in (("block_size", block_size), ("n_embd", n_embd)):
        if not is_int(value, 1):
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
    """The sinusoidal position table of ``minillm_lib.positions.sinusoidal_positions``.

    Top: the (block_size, n_embd) table as a heatmap (hover for position, channel, value and
    its formula). Below, for the position on the slider: its encoding vector across the
    channels, and its cosine similarity to every position (high for near neighbours,
    falling with distance: what makes relative positions readable). ``position`` None = 10
    (or the last position of a shorter block).
    """
    element_id = check_element_id(element_id, "position")
    data = position_data(block_size, n_embd, base)
    position = min(10, block_size - 1) if position is None else position
    if not is_int(position, 0, block_size - 1):
        raise ValueError(f"position must be an integer in [0, {block_size - 1}], got {position!r}")
    data["start"] = position
    body = (
        '<div class="mlv-controls">'
        + slider("position", "Position", block_size, position, str(position))
        + "</div>"
        '<div class="mlv-map mlv-wide"><canvas data-testid="heatmap" class="mlv-pixels"></canvas>'
        '<svg class="mlv-axes"></svg></div>'
        '<div class="mlv-row">'
        '<svg data-testid="vector" viewBox="0 0 315 190" width="315" height="190"></svg>'
        '<svg data-testid="similarity" viewBox="0 0 315 190" width="315" height="190"></svg></div>'
    )
    title = f"Sinusoidal positions: block_size={block_size}, n_embd={n_embd}, base={base:g}"
    return render("position", element_id, title, body, data, ["position.js"])


# ---------------------------------------------------------------- 4. learning-rate schedule


def lr_schedule_data(cfg: TrainConfig) -> dict[str, Any]:
    """The data ``lr_schedule_explorer`` embeds: the TrainConfig fields ``lr_at`` reads."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    return {"lr": cfg.lr, "min_lr": cfg.min_lr, "warmup_iters": cfg.warmup_iters,
            "max_iters": cfg.max_iters, "lr_decay_iters": cfg.lr_decay_iters,
            "schedule": cfg.schedule, "decay_fraction": cfg.decay_fraction}


def lr_schedule_explorer(cfg: TrainConfig | None = None, *, element_id: str | None = None) -> Explorer:
    """Warm-up + cosine decay (``minillm_lib.training.lr_at``) for ``cfg`` (default: TrainConfig()).

    Sliders change warmup_iters (0 to half the decay length) and min_lr as a fraction of
    lr; the page recomputes the curve with a line-by-line JavaScript copy of ``lr_at`` and
    keeps the configured schedule as a dashed line. Hover for (step, lr).
    """
    element_id = check_element_id(element_id, "lr-schedule")
    cfg = TrainConfig() if cfg is None else cfg
    data = lr_schedule_data(cfg)
    decay_iters = cfg.max_iters if cfg.lr_decay_iters is None else cfg.lr_decay_iters
    max_warmup = max(cfg.warmup_iters, min(decay_iters, cfg.max_iters) // 2, 1)
    ratio = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0
    body = (
        '<div class="mlv-controls">'
        + slider("warmup", "warmup_iters", max_warmup + 1, cfg.warmup_iters, str(cfg.warmup_iters))
        + slider("min-lr", "min_lr / lr", 101, round(ratio, 2), f"{ratio:.2f}", step=0.01)
        + "</div>"
        '<svg data-testid="curve" viewBox="0 0 680 270" width="680" height="270" role="img" '
        'aria-label="learning rate per step"></svg>'
    )
    title = f"Learning-rate schedule: lr={cfg.lr:g}, {cfg.max_iters} steps"
    return render("lr-schedule", element_id, title, body, data, ["lr_schedule.js"])
