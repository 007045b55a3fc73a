"""The model in the page (chapters 9, 10, 12, 13 and 16): a GPT and its tokenizer packed into
one JavaScript file, and the Python twin of the page's sampler.

The page runs ``viz/static/gpt.js``, a line-by-line JavaScript twin of ``model.py`` (with the
tokenizers of ``tokenizers.js`` and the filters of ``sampling.js``), on weights it reads from a
*weight script*: one ``.js`` file that registers the model when it runs::

    window.minillmModels["shakespeare-fp16-1a2b3c4d5e6f"] = {format, name, key, config,
        tokenizer, dtype, tensors: {name: {dtype, shape, offset, scale?}}, data: "<base64>"}

A script, not a ``fetch``: a page opened from ``file://`` may run ``<script src>`` but may not
fetch a local file, and a script works offline and over http alike. (The same reason rules out
onnxruntime-web, whose WebAssembly must be fetched; and a twin in plain JavaScript lets the
reader see the same GPT in a second language.)

Weights travel as base64 of compact binary, never as lists of numbers:

- ``dtype="float16"``: every tensor as IEEE half floats, 2 bytes a number;
- ``dtype="int8"``: every matrix (embeddings included) as ``quantize.quantize_int8`` makes it
  (int8 per row, one float32 scale per row: chapter 12); norms and biases in float32.

A tied lm_head is the embedding matrix, stored once. All numbers are little-endian, packed back
to back: a tensor is at ``offset`` bytes into the decoded data; an int8 matrix's float32 scales
are at ``scale``. The page turns everything into float32 when it loads (``shipped_model`` is the
same float32 model in PyTorch, so both compute on identical weights). The key ends in a hash of
the content: the same weights always get the same key (and file name), changed ones a new one.

Sharing one weight file: an explorer either inlines its weight script (Jupyter, Colab, a single
page) or loads it by URL. ``SharedWeights(folder, url)`` writes each weight script once into
``folder`` (as ``<key>.js``) and makes explorers load ``url + <key>.js``; the browser then caches
it for every page that uses it. The book build sets two environment variables (see the
Makefile), which ``SharedWeights.from_env()`` reads when an explorer is not told otherwise:
``MINILLM_WEB_DIR`` (the folder, inside the book's static files) and ``MINILLM_WEB_URL`` (the
same folder as the chapter pages see it, e.g. ``../_static/models/``).

Seeded sampling has a twin here: ``PageRandom`` is the page's random generator (Mulberry32, by
Tommy Ettinger: 32-bit integer arithmetic that JavaScript and Python compute alike) and
``page_generate`` samples as the page does: the library's filter chain
(``SamplingOptions.filter_logits``), a float64 softmax, and one uniform number per token drawn
by inverse CDF (the first token whose cumulative probability exceeds it). The same seed gives
the same text in the page and in Python, unless a draw lands within about 1e-6 of the edge
between two tokens' shares (the page's float32 logits differ from PyTorch's by about that much).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._checks import is_int
from ..checkpoint import _tensors_to_save
from ..files import atomic_write_text
from ..model import GPT
from ..quantize import dequantize_int8, quantize_int8
from ..sampling import SamplingOptions
from ..tokenizers import SPLIT_PATTERNS, BPETokenizer, CharTokenizer, Tokenizer
from .outputs import json_for_script

FORMAT_VERSION = 1
DTYPES = ("float16", "int8")
WEB_DIR_ENV = "MINILLM_WEB_DIR"
WEB_URL_ENV = "MINILLM_WEB_URL"
_LITTLE_ENDIAN = {"float16": "<f2", "int8": "i1", "float32": "<f4"}  # numpy dtypes of the data

# Python's ``regex`` \s, exactly (JavaScript's \s differs: it has U+FEFF, not U+0085).
_WS = r"\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The split patterns of tokenizers.SPLIT_PATTERNS for JavaScript's RegExp (flags "gu"):
# the same splits (tests/test_web_browser.py checks them on text and on every code point).
# JavaScript has no possessive quantifiers (++, ?+): they only skip backtracking that cannot
# succeed in these patterns, so plain ones split alike. GPT-4's (?i:...) is spelt out (the
# long s, U+017F, is an s when case is ignored).
JS_SPLIT_PATTERNS: dict[str, str] = {
    "gpt2": (rf"'(?:[sdmt]|ll|ve|re)| ?\p{{L}}+| ?\p{{N}}+| ?[^{_WS}\p{{L}}\p{{N}}]+|[{_WS}]+$"
             rf"|[{_WS}]+(?![^{_WS}])|[{_WS}]"),
    "gpt4": (rf"'(?:[sdmtSDMT\u017f]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{{L}}\p{{N}}]?\p{{L}}+"
             rf"|\p{{N}}{{1,3}}| ?[^{_WS}\p{{L}}\p{{N}}]+[\r\n]*|[{_WS}]+$|[{_WS}]*[\r\n]"
             rf"|[{_WS}]+(?![^{_WS}])|[{_WS}]"),
}


# ---------------------------------------------------------------- what the page computes with


def tokenizer_spec(tokenizer: Tokenizer) -> dict[str, Any]:
    """The tokenizer as ``tokenizers.js`` reads it (JSON-ready)."""
    if isinstance(tokenizer, CharTokenizer):
        return {"type": "char", "chars": tokenizer.chars, "special_tokens": tokenizer.special_tokens,
                "unk_token": tokenizer.unk_token}
    if isinstance(tokenizer, BPETokenizer):
        name = next((k for k, v in SPLIT_PATTERNS.items() if v == tokenizer.pattern), None)
        if name is None:
            raise ValueError(f"the page knows the split patterns {sorted(JS_SPLIT_PATTERNS)}; this "
                             f"tokenizer splits with a custom one, {tokenizer.pattern!r}")
        return {"type": "bpe", "pattern": JS_SPLIT_PATTERNS[name], "merges": tokenizer.merges,
                "special_tokens": tokenizer.special_tokens}
    raise TypeError(f"tokenizer must be a CharTokenizer or BPETokenizer, got {type(tokenizer).__name__}")


def _check_dtype(dtype: str) -> None:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")


def _page_tensors(model: GPT, dtype: str) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """name -> (stored values, int8 scales or None): what the weight script holds, each
    tensor once (a tied lm_head is left out: it is the embedding)."""
    _check_dtype(dtype)
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a minillm_lib GPT, got {type(model).__name__}")
    with torch.device("meta"):
        expected = set(_tensors_to_save(GPT(model.config)))
    state = _tensors_to_save(model)
    if set(state) != expected:
        odd = sorted(set(state) ^ expected)
        raise ValueError(f"the page runs a plain GPT, but this model's tensors differ from one: {odd} "
                         "(merge LoRA layers, and export the float model, not a quantized one)")
    stored = {}
    for name, t in state.items():
        w = t.detach().float().cpu()
        if dtype == "int8" and w.ndim == 2:
            stored[name] = quantize_int8(w)
        elif dtype == "int8":
            stored[name] = (w.contiguous(), None)
        else:
            stored[name] = (w.half().contiguous(), None)
    return stored


def shipped_model(model: GPT, dtype: str = "float16") -> GPT:
    """A copy of ``model`` (float32, CPU, eval mode) holding exactly the weights the page
    computes with: the stored float16 or int8 values, turned back into float32."""
    stored = _page_tensors(model, dtype)
    copied = copy.deepcopy(model).float().cpu().eval()
    with torch.no_grad():
        state = copied.state_dict()  # shares storage with the parameters (tied ones too)
        for name, (values, scale) in stored.items():
            state[name].copy_(values.float() if scale is None else dequantize_int8(values, scale))
    return copied


@dataclass(frozen=True)
class WeightScript:
    """One model's weight script: ``text`` registers it as ``window.minillmModels[key]``."""

    key: str
    text: str

    @property
    def nbytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def file_name(self) -> str:
        return f"{self.key}.js"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][\w-]*", name):
        raise ValueError(f"name must be letters, digits, _ and - (it names a file), got {name!r}")


def weight_script(model: GPT, tokenizer: Tokenizer, *, name: str = "model", dtype: str = "float16") -> WeightScript:
    """Pack ``model`` and ``tokenizer`` into one weight script (see the module docstring).

    name: the start of the key (letters, digits, _ and -); the key adds the dtype and 12 hex
    digits of the content's hash.
    """
    _check_name(name)
    stored = _page_tensors(model, dtype)
    spec = tokenizer_spec(tokenizer)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                         f"{model.config.vocab_size}: they do not belong together")
    chunks: list[bytes] = []
    tensors: dict[str, dict[str, Any]] = {}
    offset = 0
    for tensor_name, (values, scale) in stored.items():
        kind = str(values.dtype).removeprefix("torch.")  # float16, int8 or float32
        entry: dict[str, Any] = {"dtype": kind, "shape": list(values.shape), "offset": offset}
        raw = values.numpy().astype(_LITTLE_ENDIAN[kind]).tobytes()
        chunks.append(raw)
        offset += len(raw)
        if scale is not None:
            entry["scale"] = offset
            raw = scale.float().numpy().astype("<f4").tobytes()
            chunks.append(raw)
            offset += len(raw)
        tensors[tensor_name] = entry
    data = b"".join(chunks)
    head = {"format": FORMAT_VERSION, "name": name, "config": model.config.to_dict(),
            "tokenizer": spec, "dtype": dtype, "tensors": tensors, "nbytes": len(data)}
    digest = hashlib.sha256(json_for_script(head).encode() + data).hexdigest()[:12]
    key = f"{name}-{dtype}-{digest}"
    body = json_for_script({**head, "key": key})[:-1] + ',"data":"' + base64.b64encode(data).decode("ascii") + '"}'
    text = (f"// minillm weights {key}: {model.num_params():,} parameters as {dtype} "
            "(written by minillm_lib.viz.web; read by viz/static/gpt.js)\n"
            f"(window.minillmModels = window.minillmModels || {{}})[{json_for_script(key)}] = {body};\n")
    return WeightScript(key, text)


@dataclass(frozen=True)
class SharedWeights:
    """Where explorers put weight scripts so that every page loads the same file.

    folder: the directory the ``<key>.js`` files are written to (created if needed);
    url: the same directory as the pages see it, ending in "/" (relative to the page, e.g.
    "../_static/models/", or absolute).
    """

    folder: Path
    url: str

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.endswith("/"):
            raise ValueError(f"url must be a string ending in '/', got {self.url!r}")

    @classmethod
    def from_env(cls) -> SharedWeights | None:
        """From $MINILLM_WEB_DIR and $MINILLM_WEB_URL (the book build sets both); None if unset."""
        folder, url = os.environ.get(WEB_DIR_ENV), os.environ.get(WEB_URL_ENV)
        if not folder and not url:
            return None
        if not folder or not url:
            raise ValueError(f"set both {WEB_DIR_ENV} and {WEB_URL_ENV} (or neither), got "
                             f"{WEB_DIR_ENV}={folder!r} and {WEB_URL_ENV}={url!r}")
        return cls(Path(folder), url)

    def place(self, script: WeightScript) -> str:
        """Write ``script`` as ``folder/<key>.js`` unless it is there already (the key names
        its content); return the URL a page loads it from."""
        path = self.folder / script.file_name
        if not path.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, script.text)
        return self.url + script.file_name


# ---------------------------------------------------------------- the page's sampler, in Python


class PageRandom:
    """The page's random generator (Mulberry32): ``random()`` gives the same floats in [0, 1)
    as ``new minillm.Random(seed).random()`` in ``sampling.js``. seed: an integer in
    0 .. 2**32 - 1. Fine for sampling text; not for cryptography."""

    MASK = 0xFFFFFFFF

    def __init__(self, seed: int) -> None:
        if not is_int(seed, 0, self.MASK):
            raise ValueError(f"seed must be an integer in 0..{self.MASK}, got {seed!r}")
        self.state = seed

    @staticmethod
    def _imul(a: int, b: int) -> int:
        """JavaScript's Math.imul: the low 32 bits of a * b."""
        return (a * b) & PageRandom.MASK

    def random(self) -> float:
        mask = self.MASK
        self.state = a = (self.state + 0x6D2B79F5) & mask
        t = self._imul(a ^ (a >> 15), a | 1)
        t = ((t + self._imul(t ^ (t >> 7), t | 61)) & mask) ^ t
        return ((t ^ (t >> 14)) & mask) / 2**32


def page_softmax(logits: Sequence[float]) -> list[float]:
    """Softmax as the page computes it: float64, largest logit subtracted, summed in order
    (-inf logits get probability 0)."""
    top = max(logits)
    weights = [math.exp(x - top) for x in logits]
    total = sum(weights)
    return [w / total for w in weights]


def draw(probs: Sequence[float], u: float) -> int:
    """Inverse-CDF draw: the first token whose cumulative probability exceeds u in [0, 1)
    (the last token with probability > 0 if rounding leaves u above the total)."""
    total = 0.0
    for i, p in enumerate(probs):
        total += p
        if u < total:
            return i
    return max(i for i, p in enumerate(probs) if p > 0)


@torch.no_grad()
def page_generate(model: GPT, prompt_ids: Sequence[int], max_new_tokens: int, *, seed: int = 0,
                  **options: Any) -> list[int]:
    """The new token ids the page's sampler gives for this prompt, seed and options (those
    of ``generate``: temperature, top_k, top_p, min_p, repetition_penalty, eos_id; no
    generator). Run it on ``shipped_model(model)`` to compute with the page's weights.

    Each step: the logits of the last position (context cropped to block_size), the
    library's filters (``SamplingOptions.filter_logits``), then greedy argmax at
    temperature 0, else ``draw(page_softmax(logits), random.random())``. Stops after eos_id.
    """
    if "generator" in options:
        raise ValueError("page_generate draws with PageRandom(seed): pass seed=, not generator=")
    sampling = SamplingOptions.from_kwargs(options)
    if not is_int(max_new_tokens, 0):
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    tokens = list(prompt_ids)
    if not tokens:
        raise ValueError("prompt_ids is empty: give at least one token")
    random = PageRandom(seed)
    block_size = model.config.block_size
    device = model.device
    new: list[int] = []
    was_training = model.training
    model.eval()  # no dropout
    try:
        for _ in range(max_new_tokens):
            context = torch.tensor([tokens[-block_size:]], dtype=torch.long, device=device)
            logits = model(context)[0][:, -1, :].float()  # (1, V)
            previous = torch.tensor([tokens], dtype=torch.long, device=device)
            filtered = sampling.filter_logits(logits, previous)[0]  # (V,)
            if sampling.temperature == 0:
                next_id = int(filtered.argmax())
            else:
                next_id = draw(page_softmax(filtered.double().tolist()), random.random())
            tokens.append(next_id)
            new.append(next_id)
            if next_id == sampling.eos_id:
                break
    finally:
        model.train(was_training)
    return new
