"""Explorers that run the model in the page (chapters 4, 5, 9, 10, 12, 13 and 16): whatever
the reader types goes through the GPT itself, computed by ``viz/static/gpt.js``, with no kernel
and no server. They work in the rendered book, in Jupyter and in Colab (plain HTML and
JavaScript outputs, no ipywidgets).

    from minillm_lib.viz import live
    live.sampling_explorer(model, tokenizer, "ROMEO:", name="shakespeare")

Every builder returns an ``Explorer`` (``viz/outputs.py``) and takes ``weights``: where the page
finds the model (see ``viz/web.py``). ``None`` (the default) means ``SharedWeights.from_env()``
when the book build sets its variables, else ``"inline"``: the weight script goes into the
output itself (Jupyter, Colab). A ``SharedWeights`` writes it once into the book's static
folder and the output loads it by URL, so all chapter pages share one cached file. ``name``
starts the model's key (and file name); dtype "float16" unless said otherwise.

DOM hooks (stable: tests/test_web_browser.py drives them)
---------------------------------------------------------
As for every explorer (see ``minillm_lib.viz``): root ``div.mlv[data-explorer=KIND]`` with
``data-state`` (JSON, rewritten on every change) and ``[data-testid="caption"]``. The root gets
``data-model="ready"`` once the model is loaded (``"failed"``, and a caption saying why, if
not). Sliders here hold the VALUE itself (not a grid index).

``live-sampling`` (``sampling_explorer``)
    controls: textarea ``prompt``; sliders ``temperature`` (0-2), ``top-k`` (0 = off),
    ``top-p`` (1 = off), ``min-p`` (0 = off), ``repetition-penalty`` (1 = off), ``new-tokens``;
    number input ``seed``. Any change restarts the generation, which streams into
    ``[data-testid="output"]``: a span per prompt and one ``[data-testid="token"]`` span per
    new token (``data-step``); clicking one shows the distribution it was drawn from in
    ``svg[data-testid="bars"]`` (``g[data-testid="bar"]``: ``data-token-id``, ``data-prob``,
    ``data-kept``), else the latest step's. state: prompt, temperature, top_k, top_p, min_p,
    repetition_penalty (null = off), seed, n_new, prompt_ids, new_ids, text (the new text),
    done, step (the step shown), probs (what its token was drawn from, every token id), before
    (after the penalty and temperature only), error (a message, or null).
``live-attention`` (``attention_explorer``)
    controls: textarea ``input``; selects ``layer``, ``head``; slider ``query``; token spans
    (``data-index``) and heatmap as in the replay attention explorer. state: text, ids,
    layer, head, query, checksum (sum of weight * (query * T + key), 4 decimals), row (the
    query's weights), cropped (tokens cut from the front to fit block_size), error.
``kv-cache`` (``kv_cache_explorer``)
    controls: textarea ``prompt``; slider ``new-tokens``; buttons ``run-cache``,
    ``run-no-cache``. Greedy generation either way; ``svg[data-testid="positions"]`` shows the
    positions cached and computed at the latest step, ``svg[data-testid="times"]`` the time
    of every token. state: prompt_ids, runs: {cache, no-cache}, each null or {new_ids,
    computed (positions computed at each step), cached (positions in the cache after it),
    ms (per token), done}, same (both runs done and equal).
``chat`` (``chat_explorer``)
    controls: input ``message``, button ``send``; sliders ``temperature``, ``top-k``;
    ``seed``. ``[data-testid="log"]`` holds the turns. state: prompt, prompt_ids (the chat
    template's ids), reply_ids (the closing ``<|end|>`` included if written), reply, done, error.
``int8`` (``int8_explorer``)
    controls: textarea ``prompt``; slider ``new-tokens``. Greedy continuations of the float16
    and the int8 model in ``[data-testid="float-output"]`` and ``[data-testid="int8-output"]``,
    and the next-token distributions of both in ``svg[data-testid="bars"]``. state:
    prompt_ids, float_ids, int8_ids, first_difference (index into the new tokens, or null),
    max_abs_logit_difference, kl (KL(float || int8) of the next token, nats), bytes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._checks import is_int
from ..finetune import CHAT_SPECIAL_TOKENS, END
from ..model import GPT
from ..sampling import SamplingOptions
from ..tokenizers import Tokenizer
from .outputs import Explorer, check_element_id, render, select, slider, static_text
from .web import SharedWeights, WeightScript, weight_script

ENGINE = ("gpt.js", "tokenizers.js", "sampling.js")  # the model in the page, before any explorer
Weights = SharedWeights | Literal["inline", "page"] | None


@dataclass(frozen=True)
class _Source:
    """How one output reaches a model: its key, the URL of its weight script (None: it is on
    the page), the HTML to put before the explorer's script, and the script's size."""

    key: str
    url: str | None
    before: str
    nbytes: int

    def data(self) -> dict[str, Any]:
        return {"key": self.key, "url": self.url, "nbytes": self.nbytes}


def _source(script: WeightScript, weights: Weights) -> _Source:
    if weights is None:
        weights = SharedWeights.from_env() or "inline"
    if isinstance(weights, SharedWeights):
        return _Source(script.key, weights.place(script), "", script.nbytes)
    if weights == "inline":
        return _Source(script.key, None, f"<script>{script.text}</script>", script.nbytes)
    if weights == "page":  # web_page puts the weight script on the page once, before the explorers
        return _Source(script.key, None, "", script.nbytes)
    raise ValueError(f"weights must be None, 'inline' or a SharedWeights, got {weights!r}")


def _render_live(kind: str, element_id: str, title: str, body: str, data: dict[str, Any],
                 sources: Sequence[_Source], scripts: Sequence[str] = ()) -> Explorer:
    """render() with the engine, the explorer's own script (after ``scripts`` it builds on)
    and its models: data["models"] lists each {key, url, nbytes}."""
    data = {**data, "models": [s.data() for s in sources]}
    shared = sum(s.nbytes for s in sources if s.url is not None)
    return render(kind, element_id, title, body, data, [*ENGINE, *scripts, f"{kind.replace('-', '_')}.js"],
                  before="".join(s.before for s in sources), shared_bytes=shared)


def _check_text(tokenizer: Tokenizer, text: str, what: str) -> None:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} must be a non-empty string, got {text!r}")
    tokenizer.encode(text)  # ValueError for a character the tokenizer does not know


def _check_count(name: str, value: int, low: int, high: int) -> None:
    if not is_int(value, low, high):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _textarea(testid: str, label: str, text: str, rows: int = 2) -> str:
    # HTML drops a newline right after <textarea>: the one written here, so the text keeps its own.
    return (f'<label class="mlv-grow">{label} <textarea data-testid="{testid}" rows="{rows}" '
            f'spellcheck="false" class="mlv-mono">\n{html.escape(text)}</textarea></label>')


def _number(testid: str, label: str, value: int) -> str:
    return f'<label>{label} <input type="number" data-testid="{testid}" min="0" step="1" value="{value}"></label>'


def _sampling_sliders(options: SamplingOptions, vocab_size: int, with_penalties: bool = True) -> str:
    """Sliders for the sampling options; off filters sit at their "off" end."""
    t = options.temperature
    k = options.top_k or 0
    parts = [
        slider("temperature", "temperature", 201, t, f"{t:g}", step=0.01),
        slider("top-k", "top-k", vocab_size + 1, k, str(k) if k else "off"),
    ]
    if with_penalties:
        p = options.top_p or 1.0
        m = options.min_p or 0.0
        r = options.repetition_penalty
        parts += [
            slider("top-p", "top-p", 100, p, f"{p:g}" if p < 1 else "off", step=0.01, low=0.01),
            slider("min-p", "min-p", 101, m, f"{m:g}" if m else "off", step=0.01),
            slider("repetition-penalty", "repetition penalty", 101, r, f"{r:g}" if r != 1 else "off",
                   step=0.01, low=1.0),
        ]
    return "".join(parts)


def _check_sliders(options: SamplingOptions, vocab_size: int) -> None:
    """The sliders reach 0-2 for temperature and 1-2 for the repetition penalty."""
    if options.temperature > 2:
        raise ValueError(f"temperature must be at most 2 (the slider's end), got {options.temperature}")
    if not 1 <= options.repetition_penalty <= 2:
        raise ValueError(f"repetition_penalty must be in [1, 2] (the slider's range), got {options.repetition_penalty}")
    if options.top_k is not None and options.top_k > vocab_size:
        raise ValueError(f"top_k must be at most vocab_size={vocab_size}, got {options.top_k}")


# ---------------------------------------------------------------- sampling (chapter 9)


def sampling_explorer(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str = "\n",
    *,
    n_new: int = 200,
    max_new: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float = 1.0,
    seed: int = 0,
    n_show: int = 20,
    name: str = "model",
    weights: Weights = None,
    element_id: str | None = None,
) -> Explorer:
    """Sample from the model in the page: type a prompt, move the sliders (temperature, top-k,
    top-p, min-p, repetition penalty), pick a seed; the text streams as it is sampled, and the
    bars show the distribution each token was drawn from (the latest, or the token you click).

    The page samples as ``minillm_lib.generate`` does (same filters, same order, same ties,
    KV cache), drawing with the seeded generator of ``web.PageRandom``:
    ``web.page_generate(web.shipped_model(model), ids, n_new, seed=seed, ...)`` gives the same
    tokens in Python.
    """
    element_id = check_element_id(element_id, "live-sampling")
    options = SamplingOptions(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                              repetition_penalty=repetition_penalty)
    vocab_size = model.config.vocab_size
    _check_sliders(options, vocab_size)
    _check_text(tokenizer, prompt, "prompt")
    _check_count("max_new", max_new, 1, 10_000)
    _check_count("n_new", n_new, 1, max_new)
    _check_count("seed", seed, 0, 2**32 - 1)
    _check_count("n_show", n_show, 1, vocab_size)
    source = _source(weight_script(model, tokenizer, name=name), weights)
    body = (
        '<div class="mlv-controls">' + _textarea("prompt", "Prompt", prompt) + "</div>"
        '<div class="mlv-controls">' + _sampling_sliders(options, vocab_size)
        + slider("new-tokens", "new tokens", max_new, n_new, str(n_new), low=1)
        + _number("seed", "seed", seed) + "</div>"
        '<div class="mlv-sample mlv-mono" data-testid="output"></div>'
        '<svg data-testid="bars" viewBox="0 0 680 250" width="680" height="250" role="img" '
        'aria-label="next-token probabilities"></svg>'
        '<div class="mlv-legend"><span class="mlv-swatch" style="background:#2f7ed8"></span> could be drawn '
        '(after the filters) &nbsp; <span class="mlv-swatch mlv-outline"></span> before the filters &nbsp; '
        '<span class="mlv-swatch" style="background:rgba(140,140,140,.45)"></span> filtered out &nbsp; '
        '<span class="mlv-swatch mlv-drawn"></span> drawn. Click a generated token to see its step.</div>'
    )
    title = f"Sampling, live: the model runs in this page ({model.num_params():,} parameters)"
    return _render_live("live-sampling", element_id, title, body, {"n_show": n_show}, [source])


# ---------------------------------------------------------------- attention (chapters 4 and 5)


def attention_explorer(
    model: GPT,
    tokenizer: Tokenizer,
    text: str,
    *,
    layer: int = 0,
    head: int = 0,
    name: str = "model",
    weights: Weights = None,
    element_id: str | None = None,
) -> Explorer:
    """The attention maps of whatever the reader types, any layer and head, computed in the page
    (``GPT.attention_maps``). A text longer than block_size keeps its last block_size tokens.
    Pick the query with the slider or by clicking a token or a row of the map."""
    element_id = check_element_id(element_id, "live-attention")
    cfg = model.config
    _check_text(tokenizer, text, "text")
    _check_count("layer", layer, 0, cfg.n_layer - 1)
    _check_count("head", head, 0, cfg.n_head - 1)
    source = _source(weight_script(model, tokenizer, name=name), weights)
    body = (
        '<div class="mlv-controls">' + _textarea("input", "Text", text) + "</div>"
        '<div class="mlv-controls">'
        + select("layer", "Layer", [str(i) for i in range(cfg.n_layer)], layer)
        + select("head", "Head", [str(i) for i in range(cfg.n_head)], head)
        + slider("query", "Query position", 1, 0, "0")
        + "</div>"
        '<div class="mlv-row"><div class="mlv-map">'
        '<canvas data-testid="heatmap" class="mlv-pixels"></canvas><svg class="mlv-axes"></svg></div>'
        '<div class="mlv-side"><div class="mlv-text mlv-mono" data-testid="text"></div>'
        '<div class="mlv-legend">Each token is shaded by the weight the query (outlined) gives it, '
        "relative to the largest; later tokens are masked. Click a token or a row of the map to "
        "make it the query. Type to change the text.</div></div></div>"
    )
    title = f"Attention, live: {cfg.n_layer} layers x {cfg.n_head} heads of the model in this page"
    return _render_live("live-attention", element_id, title, body, {"start": {"layer": layer, "head": head}},
                        [source], ["attention.js"])


# ---------------------------------------------------------------- the KV cache (chapter 10)


def kv_cache_explorer(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str = "\n",
    *,
    n_new: int | None = None,
    name: str = "model",
    weights: Weights = None,
    element_id: str | None = None,
) -> Explorer:
    """The KV cache at work: generate greedily with it (each step computes one new position and
    reuses the cached ones) and without it (each step recomputes the whole context), see which
    positions are cached and how long every token takes. Past block_size both recompute the
    last block_size tokens (as ``generate`` does). n_new: default block_size."""
    element_id = check_element_id(element_id, "kv-cache")
    block_size = model.config.block_size
    n_new = block_size if n_new is None else n_new
    _check_text(tokenizer, prompt, "prompt")
    _check_count("n_new", n_new, 1, 4 * block_size)
    source = _source(weight_script(model, tokenizer, name=name), weights)
    body = (
        '<div class="mlv-controls">' + _textarea("prompt", "Prompt", prompt, rows=1) + "</div>"
        '<div class="mlv-controls">'
        + slider("new-tokens", "new tokens", 4 * block_size, n_new, str(n_new), low=1)
        + '<button type="button" data-testid="run-cache">Generate with the cache</button>'
        '<button type="button" data-testid="run-no-cache">Generate without it</button></div>'
        f'<svg data-testid="positions" viewBox="0 0 680 64" width="680" height="64" role="img" '
        f'aria-label="positions in the KV cache (block_size {block_size})"></svg>'
        '<svg data-testid="times" viewBox="0 0 680 200" width="680" height="200" role="img" '
        'aria-label="milliseconds per token"></svg>'
        '<div class="mlv-sample mlv-mono" data-testid="output"></div>'
    )
    title = f"The KV cache, live: greedy generation with and without it (block_size {block_size})"
    return _render_live("kv-cache", element_id, title, body, {"start": {"n_new": n_new}}, [source])


# ---------------------------------------------------------------- chat (chapter 13)


def chat_explorer(
    model: GPT,
    tokenizer: Tokenizer,
    message: str = "Hello!",
    *,
    max_new_tokens: int = 100,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 0,
    name: str = "model",
    weights: Weights = None,
    element_id: str | None = None,
) -> Explorer:
    """Talk to an instruction-tuned model in the page. Each message is sent alone in the chat
    template of ``finetune.format_chat`` (``<|user|>message<|end|><|assistant|>``), and the reply
    streams until the model writes ``<|end|>`` or max_new_tokens: what
    ``finetune.generate_reply`` does (temperature 0 = greedy; else seeded as in
    ``web.page_generate``)."""
    element_id = check_element_id(element_id, "chat")
    missing = [t for t in CHAT_SPECIAL_TOKENS if t not in tokenizer.special_tokens]
    if missing:
        raise ValueError(f"the tokenizer has no special token {missing[0]!r}: chat needs a model "
                         "extended with finetune.add_special_tokens and instruction-tuned")
    options = SamplingOptions(temperature=temperature, top_k=top_k)
    _check_sliders(options, model.config.vocab_size)
    _check_text(tokenizer, message, "message")
    _check_count("max_new_tokens", max_new_tokens, 1, 10_000)
    _check_count("seed", seed, 0, 2**32 - 1)
    source = _source(weight_script(model, tokenizer, name=name), weights)
    body = (
        '<div class="mlv-chat" data-testid="log"></div>'
        '<div class="mlv-controls"><label class="mlv-grow">You <input type="text" data-testid="message" '
        f'class="mlv-mono" value="{html.escape(message)}"></label>'
        '<button type="button" data-testid="send">Send</button></div>'
        '<div class="mlv-controls">' + _sampling_sliders(options, model.config.vocab_size, with_penalties=False)
        + _number("seed", "seed", seed) + "</div>"
    )
    ids = {token: tokenizer.special_tokens[token] for token in CHAT_SPECIAL_TOKENS}
    title = "Chat, live: the instruction-tuned model in this page"
    return _render_live("chat", element_id, title, body,
                        {"chat": ids, "end": END, "max_new_tokens": max_new_tokens}, [source])


# ---------------------------------------------------------------- int8 against float (chapter 12)


def int8_explorer(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str = "\n",
    *,
    n_new: int = 100,
    name: str = "model",
    weights: Weights = None,
    element_id: str | None = None,
) -> Explorer:
    """The model with int8 weights (``quantize.quantize_int8``, one scale per row) against the
    same model in float16, side by side in the page, on the prompt the reader types: both
    greedy continuations (where they part), both next-token distributions, their KL
    divergence and the bytes of each weight file."""
    element_id = check_element_id(element_id, "int8")
    _check_text(tokenizer, prompt, "prompt")
    _check_count("n_new", n_new, 1, 1000)
    sources = [_source(weight_script(model, tokenizer, name=name, dtype=dtype), weights)
               for dtype in ("float16", "int8")]
    body = (
        '<div class="mlv-controls">' + _textarea("prompt", "Prompt", prompt, rows=1)
        + slider("new-tokens", "new tokens", 1000, n_new, str(n_new), low=1) + "</div>"
        '<div class="mlv-row"><div class="mlv-half"><div class="mlv-legend" data-testid="float-label"></div>'
        '<div class="mlv-sample mlv-mono" data-testid="float-output"></div></div>'
        '<div class="mlv-half"><div class="mlv-legend" data-testid="int8-label"></div>'
        '<div class="mlv-sample mlv-mono" data-testid="int8-output"></div></div></div>'
        '<svg data-testid="bars" viewBox="0 0 680 250" width="680" height="250" role="img" '
        'aria-label="next-token probabilities, int8 and float16"></svg>'
        '<div class="mlv-legend"><span class="mlv-swatch" style="background:#2f7ed8"></span> int8 &nbsp; '
        '<span class="mlv-swatch mlv-outline"></span> float16 &nbsp; underlined: where the int8 text '
        "parts from the float one</div>"
    )
    title = "int8 against float16: the same model, quantized, side by side in this page"
    return _render_live("int8", element_id, title, body, {"start": {"n_new": n_new}}, sources)


# ---------------------------------------------------------------- a whole page (chapter 16)


def web_page(model: GPT, tokenizer: Tokenizer, *, title: str = "minillm", prompt: str | None = None,
             name: str = "model") -> str:
    """One self-contained HTML page (weights inlined, nothing fetched: it opens from disk,
    offline) with a sampling explorer and an attention explorer on ``model``, both starting
    from ``prompt`` (default: a newline, or the first token's text if the tokenizer has no
    newline): what ``minillm export RUN --web OUT.html`` writes."""
    if prompt is None:
        try:
            prompt = "\n" if tokenizer.encode("\n") else tokenizer.decode([0])
        except ValueError:
            prompt = tokenizer.decode([0])
    script = weight_script(model, tokenizer, name=name)
    explorers = [sampling_explorer(model, tokenizer, prompt, name=name, weights="page"),
                 attention_explorer(model, tokenizer, prompt, name=name, weights="page")]
    cfg = model.config
    about = (f"{model.num_params():,} parameters: {cfg.n_layer} layers, {cfg.n_head} heads, "
             f"{cfg.n_embd} wide, {cfg.block_size} tokens of context, {tokenizer.vocab_size} tokens "
             "in the vocabulary. Everything runs in this page: no server, no network.")
    body = "".join(f"<section>{ex.html}</section>" for ex in explorers)
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{static_text('page.css')}</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(about)}</p>"
        f"<script>{script.text}</script>{body}</body></html>\n"
    )
