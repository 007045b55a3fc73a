"""Is it any good? Measures of a language model beyond the training loss (chapters 9 and 16;
the chapter "Is it any good? Evaluating a language model" of Part 3 is in preparation).

Likelihood. ``bits_per_char`` is the model's exact held-out loss in bits per character (the
unit that compares models with different tokenizers, and with compressors). Its yardsticks:
a uniform guess (log2 of the alphabet size), an ``NGramModel`` counted from the training text
(order 1 is the unigram model; interpolated Kneser-Ney smoothing), and a general-purpose
compressor (``compressed_bits_per_char``: lzma or gzip on the same held-out text).

Calibration. When a model says 70 %, is it right 70 % of the time? ``top_predictions`` takes
each next-token guess and its probability, ``calibration`` bins them into a reliability
diagram and the expected calibration error.

Scoring by likelihood, as benchmark suites score multiple-choice questions: ``score_choices``
gives each candidate continuation its (summed or mean) log-probability, the best is the
answer. ``next_line_task`` builds such a test offline from a corpus (which of four lines comes
next?), ``choice_accuracy`` scores a model on it, with ``wilson_interval``'s 95 % interval.

Generated text. ``real_word_rate`` asks the simplest question a reader asks of a character
model: are its words real words? It is the share of the words of a text that occur in a word
list built from the training split (and, for ``pairs=True``, the share of its pairs of
neighbouring words that occur there as neighbours). Real held-out Shakespeare scores well
below 1 on pairs: writers combine words in new ways. ``sample_quality`` is the fixed
protocol the course reports: ten prompts, 200 characters each, T = 0.8, top-p 0.95, seeded.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from statistics import NormalDist

import numpy as np
import regex
import torch
import torch.nn.functional as F

from ._checks import is_int, is_number
from .data import iter_eval_batches
from .model import GPT
from .sampling import generate
from .tokenizers import Tokenizer
from .training import evaluate

# A word: letters, with inner apostrophes ("o'er", "'tis" keeps its "tis"); case ignored.
WORD = regex.compile(r"\p{L}+(?:'\p{L}+)*")

# The fixed protocol: the speaker headings of ten characters of the complete works.
PROMPTS = ("ROMEO.\n", "JULIET.\n", "HAMLET.\n", "KING LEAR.\n", "MACBETH.\n", "OTHELLO.\n",
           "PORTIA.\n", "FALSTAFF.\n", "PROSPERO.\n", "ROSALIND.\n")


def words_of(text: str) -> list[str]:
    """The words of ``text``, lower-cased, in order.

    >>> words_of("O Romeo, Romeo! wherefore art thou Romeo? 'Tis o'er.")
    ['o', 'romeo', 'romeo', 'wherefore', 'art', 'thou', 'romeo', 'tis', "o'er"]
    """
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class Vocabulary:
    """The words and the pairs of neighbouring words of a reference text."""

    words: frozenset[str]
    pairs: frozenset[tuple[str, str]]

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        found = words_of(text)
        return cls(frozenset(found), frozenset(pairwise(found)))


def real_word_rate(text: str | Iterable[str], reference: Vocabulary | str, *,
                   pairs: bool = False) -> float:
    """Share of the words of ``text`` (one string, or several counted together) that occur
    in ``reference`` (a Vocabulary, or a text to build one from). With ``pairs=True``: the
    share of neighbouring word pairs that occur as neighbours in the reference.

    >>> real_word_rate("the king is deaad", "The king is dead. Long live the king!")
    0.75
    """
    vocabulary = reference if isinstance(reference, Vocabulary) else Vocabulary.from_text(reference)
    texts = [text] if isinstance(text, str) else list(text)
    items = [item for t in texts
             for item in (pairwise(words_of(t)) if pairs else words_of(t))]
    if not items:
        raise ValueError(f"no {'word pairs' if pairs else 'words'} to score in {texts!r}")
    known = vocabulary.pairs if pairs else vocabulary.words
    return sum(item in known for item in items) / len(items)


def sample_texts(model: GPT, tokenizer: Tokenizer, prompts: Sequence[str] = PROMPTS, *,
                 n_chars: int = 200, temperature: float = 0.8, top_p: float = 0.95,
                 seed: int = 0) -> list[str]:
    """The course's sampling protocol: ``n_chars`` new tokens after each prompt (characters,
    for a character model), with a generator seeded ``seed + i`` for prompt i."""
    texts = []
    for i, prompt in enumerate(prompts):
        idx = torch.tensor([tokenizer.encode(prompt)], device=model.device)
        out = generate(model, idx, n_chars, temperature=temperature, top_p=top_p,
                       generator=torch.Generator(device=model.device).manual_seed(seed + i))
        texts.append(tokenizer.decode(out[0, idx.size(1):].tolist()))
    return texts


def sample_quality(model: GPT, tokenizer: Tokenizer, reference: Vocabulary | str,
                   **protocol) -> dict[str, float]:
    """Real-word rates of the protocol's samples (``sample_texts``; keyword arguments are
    passed to it): {"words": ..., "word_pairs": ...}."""
    texts = sample_texts(model, tokenizer, **protocol)
    vocabulary = reference if isinstance(reference, Vocabulary) else Vocabulary.from_text(reference)
    return {"words": real_word_rate(texts, vocabulary),
            "word_pairs": real_word_rate(texts, vocabulary, pairs=True)}


# ---------------------------------------------------------------- likelihood: bits per character

IGNORE_INDEX = -100  # a target the model's loss leaves out (PyTorch's cross-entropy default)


def token_logprobs(model: GPT, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p(y[n, t] | x[n, :t+1]) for every position: x, y (N, T) -> (N, T) in float32,
    0 where y is IGNORE_INDEX (-100). Gradients flow (wrap in torch.no_grad() to score)."""
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"x and y must have the same (N, T) shape, "
                         f"got {tuple(x.shape)} and {tuple(y.shape)}")
    logits, _ = model(x)  # (N, T, V)
    logp = F.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (N, T)
    return picked * (y != IGNORE_INDEX)


def bits_per_char(model: GPT, tokenizer: Tokenizer, text: str, *, batch_size: int = 16) -> float:
    """The model's exact loss on ``text``, in bits per character: every next-token prediction
    of the text (all but the first token; ``training.evaluate``'s windows of block_size),
    summed in bits and divided by the characters predicted.

    A uniform guess over V characters costs log2(V) bits; English text costs around 1 bit
    per character to a strong model (Shannon, 1951, estimated 0.6 to 1.3 for people).
    """
    ids = tokenizer.encode(text)
    if len(ids) < 2:
        raise ValueError(f"text must hold at least 2 tokens to predict one, got {len(ids)}")
    data = torch.tensor(ids, dtype=torch.long)
    return evaluate(model, data, batch_size, tokenizer=tokenizer)["bits_per_char"]


_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "lzma": lambda data: lzma.compress(data, preset=6),  # 8 MiB dictionary
    "gzip": lambda data: gzip.compress(data, compresslevel=9, mtime=0),  # 32 KiB window
    "bz2": lambda data: bz2.compress(data, compresslevel=9),  # 900 kB blocks
}


def compressed_bits_per_char(text: str, *, method: str = "lzma", given: str | None = None) -> float:
    """Bits per character that a general-purpose compressor spends on ``text`` (UTF-8).

    given=None: 8 * len(compress(text)) / len(text), the file's size, header included: what
    the text costs a compressor that learns only from the text itself, as it goes.
    given=training text: 8 * (len(compress(given + text)) - len(compress(given))) / len(text),
    the extra bytes the text costs after the compressor has read ``given``: the fair match for
    a model trained on that text. A compressor only remembers its window, though: gzip the
    last 32 KiB, bz2 its 900 kB block, lzma (preset 6) the last 8 MiB.

    >>> round(compressed_bits_per_char("to be or not to be " * 50, method="gzip"), 3)
    0.379
    """
    if method not in _COMPRESSORS:
        raise ValueError(f"method must be one of {sorted(_COMPRESSORS)}, got {method!r}")
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty string, got {text!r:.40}")
    compress = _COMPRESSORS[method]
    if given is None:
        n_bytes = len(compress(text.encode()))
    else:
        n_bytes = len(compress((given + text).encode())) - len(compress(given.encode()))
    return 8 * n_bytes / len(text)


class NGramModel:
    """A character n-gram model: p(next character | the order - 1 before it), from counts.

    ``fit(text)`` counts every substring of 1 to ``order`` characters. Counts alone give 0 to
    anything unseen, and one 0 makes the loss infinite, so the counts are smoothed:

    - "kneser-ney" (interpolated, one discount D; Kneser & Ney, 1995; Chen & Goodman, 1999):
      take D off every count and share what was taken over a lower-order estimate,
      p(w | h) = (max(c(h w) - D, 0) + D * N(h .) * p_lower(w | h')) / c(h), where h' is h
      without its first character, c(h) = sum over w of c(h w) and N(h .) the number of
      distinct w seen after h (with c(h) = 0: p_lower alone). The lower orders count not
      occurrences but distinct left neighbours, N(. h w): how many contexts w ends up in
      (Kneser-Ney's idea); below order 1 is the uniform 1 / V.
    - "add-k" (k = 1: Laplace): p(w | h) = (c(h w) + k) / (c(h) + k * V), on the top order only.

    A position with fewer than order - 1 characters before it (the text's start) uses those
    it has as its context (raw counts at that order). V is the vocabulary: the characters of
    the training text, plus any passed as ``vocab`` (a character outside it is an error).

    >>> lm = NGramModel(2, smoothing="add-k", k=1.0).fit("abab")
    >>> round(lm.next_char_probs("a")["b"], 4)  # (c("ab") + 1) / (c("a.") + 1 * 2) = 3/4
    0.75
    """

    SMOOTHINGS = ("kneser-ney", "add-k")

    def __init__(self, order: int = 3, *, smoothing: str = "kneser-ney", discount: float = 0.75,
                 k: float = 1.0) -> None:
        if not is_int(order, 1):
            raise ValueError(f"order must be a positive integer, got {order!r}")
        if smoothing not in self.SMOOTHINGS:
            raise ValueError(f"smoothing must be one of {list(self.SMOOTHINGS)}, got {smoothing!r}")
        if not is_number(discount) or not 0 < discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {discount!r}")
        if not is_number(k) or k <= 0:
            raise ValueError(f"k must be a number > 0, got {k!r}")
        self.order, self.smoothing, self.discount, self.k = order, smoothing, discount, k
        self.chars: list[str] = []

    # -------------------------------------------------------------- counting

    def fit(self, text: str, vocab: Iterable[str] = ()) -> NGramModel:
        """Count the n-grams of ``text`` (orders 1 to ``order``); returns self."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty string, got {text!r:.40}")
        self.chars = sorted(set(text) | set(vocab))
        V = len(self.chars)
        if V ** self.order >= 2 ** 62:
            raise ValueError(f"order {self.order} with {V} characters is too large to count "
                             f"(V ** order must stay below 2 ** 62)")
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        ids = self._encode(text)
        # raw[m]: counts of the m-grams; continuation[m]: N(. s), distinct characters seen
        # before each m-gram s (from the distinct (m+1)-grams, keyed by their last m characters).
        self._raw: dict[int, _Counts] = {}
        self._continuation: dict[int, _Counts] = {}
        for m in range(1, self.order + 1):
            keys, counts = np.unique(_gram_codes(ids, m, V), return_counts=True)
            self._raw[m] = _Counts(keys, counts, V)
            if m > 1:
                suffixes, left_neighbours = np.unique(keys % V ** (m - 1), return_counts=True)
                self._continuation[m - 1] = _Counts(suffixes, left_neighbours, V)
        return self

    def _encode(self, text: str) -> np.ndarray:
        """Characters -> indices into self.chars (sorted by code point)."""
        codepoints = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        ids = np.searchsorted(self._codepoints, codepoints)
        unknown = (ids >= len(self.chars)) | (self._codepoints[np.minimum(ids, len(self.chars) - 1)]
                                              != codepoints)
        if unknown.any():
            bad = chr(codepoints[np.argmax(unknown)])
            raise ValueError(f"character {bad!r} is not in the n-gram model's vocabulary "
                             "(pass vocab= to fit)")
        return ids.astype(np.int64)

    # -------------------------------------------------------------- probabilities

    def log_probs(self, text: str, start: int = 1) -> np.ndarray:
        """ln p(text[t] | the characters before it in ``text``) for t = start .. len(text) - 1."""
        if not self.chars:
            raise ValueError("the n-gram model has not been fitted: call fit(text) first")
        if not is_int(start, 0, len(text)):
            raise ValueError(f"start must be in 0..{len(text)}, got {start!r}")
        ids = self._encode(text)
        V, n = len(self.chars), self.order
        targets = np.arange(start, len(ids))  # positions t whose character is predicted
        top = np.minimum(targets, n - 1) + 1  # the order used at t: its history is top - 1 long
        p = np.full(len(targets), 1.0 / V)  # order 0: uniform
        for m in range(1, n + 1):
            at = targets >= m - 1  # positions with m - 1 characters of history
            grams = np.zeros(len(targets), dtype=np.int64)
            grams[at] = _gram_codes(ids, m, V)[targets[at] - (m - 1)]  # m-gram ending at t
            is_top = at & (top == m)
            if self.smoothing == "add-k":
                counts, totals, _ = self._raw[m].lookup(grams)
                p = np.where(is_top, (counts + self.k) / (totals + self.k * V), p)
                continue
            raw, continuation = self._raw[m].lookup(grams), self._continuation_lookup(m, grams)
            counts, totals, types = (np.where(is_top, r, c) for r, c in zip(raw, continuation,
                                                                              strict=True))
            D = self.discount
            smoothed = (np.maximum(counts - D, 0) + D * types * p) / np.maximum(totals, 1)
            p = np.where(at & (totals > 0), smoothed, p)
        return np.log(p)

    def _continuation_lookup(self, m: int, grams: np.ndarray) -> tuple[np.ndarray, ...]:
        if m not in self._continuation:  # m = order: never a lower order
            zeros = np.zeros(len(grams), dtype=np.int64)
            return zeros, zeros, zeros
        return self._continuation[m].lookup(grams)

    def next_char_probs(self, context: str) -> dict[str, float]:
        """The whole distribution of the character after ``context``: {char: p}, summing to 1."""
        context = context[-(self.order - 1):] if self.order > 1 else ""
        return {c: float(np.exp(self.log_probs(context + c, start=len(context))[0]))
                for c in self.chars}

    def bits_per_char(self, text: str) -> float:
        """Mean -log2 p of text[1:] (the first character is given, as in ``bits_per_char``)."""
        if len(text) < 2:
            raise ValueError(f"text must hold at least 2 characters, got {len(text)}")
        return float(-self.log_probs(text, start=1).mean() / math.log(2))

    def score_choices(self, context: str, choices: Sequence[str], *,
                      normalize: str = "mean") -> torch.Tensor:
        """``score_choices`` for the n-gram model: (n_choices,) log-probabilities in nats."""
        if not context:
            raise ValueError("context must not be empty: the first character needs one before it")
        totals = [float(self.log_probs(context + c, start=len(context)).sum()) for c in choices]
        lengths = [len(c) for c in choices]  # a character is a token here
        return _normalized(totals, lengths, lengths, normalize)


class _Counts:
    """One order's table: sorted n-gram codes with their counts, and per context (the code
    without its last character, code // V): the total count and the number of distinct next
    characters."""

    def __init__(self, keys: np.ndarray, counts: np.ndarray, V: int) -> None:
        self.keys, self.counts, self.V = keys, counts.astype(np.int64), V
        self.contexts, first, self.types = np.unique(keys // V, return_index=True,
                                                     return_counts=True)
        self.totals = np.add.reduceat(self.counts, first) if len(keys) else self.counts

    def lookup(self, grams: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count of each gram, total count of its context, distinct characters after it)."""
        count = _find(self.keys, self.counts, grams)
        contexts = grams // self.V
        return count, _find(self.contexts, self.totals, contexts), _find(self.contexts, self.types,
                                                                         contexts)


def _find(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == query (keys sorted), 0 where the query is not a key."""
    if not len(keys):
        return np.zeros(len(queries), dtype=np.int64)
    i = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[i] == queries, values[i], 0)


def _gram_codes(ids: np.ndarray, m: int, V: int) -> np.ndarray:
    """The code of every m-gram of ids, by start position: sum of ids[s + j] * V ** (m - 1 - j)."""
    n = len(ids) - m + 1
    codes = np.zeros(max(n, 0), dtype=np.int64)
    for j in range(m):
        codes = codes * V + ids[j:j + n]
    return codes


def ngram_baseline(train_text: str, text: str, order: int = 3, **smoothing) -> float:
    """Bits per character of ``text`` under an ``NGramModel`` of ``order`` fitted on
    ``train_text`` (keyword arguments: smoothing, discount, k)."""
    return NGramModel(order, **smoothing).fit(train_text, vocab=text).bits_per_char(text)


# ---------------------------------------------------------------- calibration


@torch.no_grad()
def top_predictions(model: GPT, data: torch.Tensor, *,
                    batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """For every next-token prediction of ``data`` (N,) (``training.evaluate``'s windows):
    the probability of the model's top guess and whether it was right, two (N - 1,) tensors
    (float, bool), ready for ``calibration``."""
    was_training = model.training
    model.eval()
    confidence, correct = [], []
    try:
        for x, y in iter_eval_batches(data, batch_size, model.config.block_size):
            x, y = x.to(model.device), y.to(model.device)
            probs = F.softmax(model(x)[0].float(), dim=-1)  # (b, t, V)
            top, guess = probs.max(dim=-1)
            confidence.append(top.flatten().cpu())
            correct.append((guess == y).flatten().cpu())
    finally:
        model.train(was_training)
    return torch.cat(confidence), torch.cat(correct)


@dataclass(frozen=True)
class Calibration:
    """A reliability diagram: predictions binned by their probability.

    edges (n_bins + 1,): the bins [edges[i], edges[i + 1]), the last one closed;
    count (n_bins,): predictions per bin; confidence (n_bins,): their mean probability;
    accuracy (n_bins,): the share that came true (both NaN for an empty bin);
    ece: expected calibration error, sum over bins of count / N * abs(accuracy - confidence).
    """

    edges: torch.Tensor
    count: torch.Tensor
    confidence: torch.Tensor
    accuracy: torch.Tensor
    ece: float


def calibration(probs: torch.Tensor | Sequence[float], outcomes: torch.Tensor | Sequence[bool],
                n_bins: int = 10) -> Calibration:
    """Bin predicted probabilities (N,) and what happened (N,) (True / 1 = it came true) into
    ``n_bins`` equal-width bins of [0, 1] (Guo et al., 2017, for the top guess's probability).

    A calibrated model's bins lie on the diagonal: of the predictions made with 0.7, 70 % come
    true. The expected calibration error (ECE) is the mean distance from it, bins weighted by
    their counts (0 = calibrated).

    >>> c = calibration([0.9, 0.9, 0.8, 0.3], [True, False, True, False], n_bins=2)
    >>> c.count.tolist(), c.accuracy.tolist(), round(c.ece, 4)
    ([1, 3], [0.0, 0.6666666666666666], 0.225)
    """
    probs = torch.as_tensor(probs, dtype=torch.float64).flatten()
    outcomes = torch.as_tensor(outcomes).flatten().to(torch.float64)
    if probs.shape != outcomes.shape or probs.numel() == 0:
        raise ValueError(f"probs and outcomes must be two non-empty sequences of one length, "
                         f"got {probs.numel()} and {outcomes.numel()}")
    if not ((probs >= 0) & (probs <= 1)).all():
        raise ValueError(f"probs must lie in [0, 1], got values from {probs.min().item()} "
                         f"to {probs.max().item()}")
    if not ((outcomes == 0) | (outcomes == 1)).all():
        raise ValueError("outcomes must be True/False (or 1/0)")
    if not is_int(n_bins, 1):
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    bins = (probs * n_bins).long().clamp(max=n_bins - 1)  # a probability of 1.0: the last bin
    count = torch.bincount(bins, minlength=n_bins)
    safe = count.clamp(min=1).double()
    confidence = torch.bincount(bins, probs, minlength=n_bins) / safe
    accuracy = torch.bincount(bins, outcomes, minlength=n_bins) / safe
    ece = (count / probs.numel() * (accuracy - confidence).abs()).sum().item()
    empty = count == 0
    return Calibration(torch.linspace(0, 1, n_bins + 1, dtype=torch.float64), count,
                       confidence.masked_fill(empty, math.nan),
                       accuracy.masked_fill(empty, math.nan), ece)


# ---------------------------------------------------------------- scoring by likelihood

NORMALIZATIONS = ("sum", "mean", "char")


def _normalized(totals: Sequence[float], n_tokens: Sequence[int], n_chars: Sequence[int],
                normalize: str) -> torch.Tensor:
    """Summed log-probabilities as they are ("sum"), per token ("mean") or per character."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {list(NORMALIZATIONS)}, got {normalize!r}")
    if any(n == 0 for n in n_chars):
        raise ValueError("every choice must hold at least one character (got an empty one)")
    total = torch.tensor(totals, dtype=torch.float64)
    if normalize == "sum":
        return total
    return total / torch.tensor(n_tokens if normalize == "mean" else n_chars, dtype=torch.float64)


@torch.no_grad()
def score_choices(model: GPT, tokenizer: Tokenizer, context: str, choices: Sequence[str], *,
                  normalize: str = "mean") -> torch.Tensor:
    """How likely the model finds each choice as the continuation of ``context``: (n_choices,)
    log-probabilities in nats, as benchmark suites score multiple-choice questions (the
    highest is the model's answer).

    normalize: "sum": log p(choice | context), the sum over its tokens (favours short
    choices); "mean": that sum per token; "char": per character (lm-evaluation-harness's
    acc_norm divides by bytes), which compares tokenizers.

    Context and choice are encoded apart and joined (a choice's tokens never merge with the
    context's). A context longer than block_size loses its start; a choice longer than
    block_size tokens is an error. All choices run in one batch (padded at the end).
    """
    context_ids = tokenizer.encode(context)
    if not context_ids:
        raise ValueError("context must encode to at least one token: the first token of a "
                         "choice is predicted from the one before it")
    block_size = model.config.block_size
    rows, n_tokens = [], []
    for choice in choices:
        ids = tokenizer.encode(choice)
        if len(ids) > block_size:
            raise ValueError(f"choice {choice[:30]!r}... is {len(ids)} tokens, longer than the "
                             f"model's block_size {block_size}")
        seq = (context_ids + ids)[-(block_size + 1):]  # the last block_size + 1 tokens
        target = [IGNORE_INDEX] * (len(seq) - 1 - len(ids)) + ids  # score the choice only
        rows.append((seq[:-1], target))
        n_tokens.append(len(ids))
    if not rows:
        raise ValueError("choices is empty: give at least one")
    width = max(len(x) for x, _ in rows)
    x = torch.tensor([x + [0] * (width - len(x)) for x, _ in rows], device=model.device)
    y = torch.tensor([y + [IGNORE_INDEX] * (width - len(y)) for _, y in rows], device=model.device)
    was_training = model.training
    model.eval()
    try:
        totals = token_logprobs(model, x, y).double().sum(-1).tolist()
    finally:
        model.train(was_training)
    return _normalized(totals, n_tokens, [len(c) for c in choices], normalize)


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice question: the context, the choices, the index of the right one."""

    context: str
    choices: tuple[str, ...]
    answer: int


def next_line_task(text: str, n_items: int = 200, *, n_choices: int = 4, context_lines: int = 4,
                   min_chars: int = 20, max_chars: int | None = None,
                   seed: int = 0) -> list[ChoiceItem]:
    """A multiple-choice test built from a text (use a held-out split): given a passage of
    ``context_lines`` lines, which of ``n_choices`` lines comes next?

    Answers are lines of at least ``min_chars`` characters (after stripping) and at most
    ``max_chars`` (None: no limit; a model's block_size keeps every choice scorable) with
    ``context_lines`` lines before them; the context is those lines, each ending in "\\n".
    The wrong choices are other lines of the same length rule, drawn from elsewhere in the
    text (farther than ``context_lines`` lines from the answer, and not the same words).
    Everything is drawn with ``random.Random(seed)``: one seed, one test. Choices hold their
    lines without the final "\\n".
    """
    for name, value, low in (("n_items", n_items, 1), ("n_choices", n_choices, 2),
                             ("context_lines", context_lines, 0), ("min_chars", min_chars, 1)):
        if not is_int(value, low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if max_chars is not None and not is_int(max_chars, min_chars):
        raise ValueError(f"max_chars must be None or an integer >= min_chars ({min_chars}), "
                         f"got {max_chars!r}")
    lines = text.split("\n")
    eligible = [i for i, line in enumerate(lines) if len(line.strip()) >= min_chars
                and (max_chars is None or len(line) <= max_chars)]
    answers = [i for i in eligible if i >= context_lines]
    if len(answers) < n_items or len(eligible) < 2 * n_choices:
        longest = "" if max_chars is None else f" and <= {max_chars}"
        raise ValueError(f"the text has {len(answers)} lines of >= {min_chars}{longest} "
                         f"characters after {context_lines} others: too few for {n_items} items")
    rng = random.Random(seed)
    items = []
    for i in sorted(rng.sample(answers, n_items)):
        answer = lines[i]
        choices = [answer]
        for _ in range(1000 * n_choices):  # draws until enough lines qualify
            j = rng.choice(eligible)
            if abs(j - i) > context_lines and lines[j].strip() not in {c.strip() for c in choices}:
                choices.append(lines[j])
                if len(choices) == n_choices:
                    break
        else:
            raise ValueError(f"found fewer than {n_choices - 1} distinct lines far from line "
                             f"{i} to serve as wrong choices: the text repeats itself too much")
        rng.shuffle(choices)
        context = "".join(line + "\n" for line in lines[i - context_lines:i])
        items.append(ChoiceItem(context, tuple(choices), choices.index(answer)))
    return items


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval (1927) for a success rate seen as successes / n.

    It stays inside [0, 1] and is honest for small n and rates near 0 or 1, unlike
    p +- z * sqrt(p (1 - p) / n). With z the normal quantile (1.96 for 95 %)::

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    >>> [round(v, 4) for v in wilson_interval(30, 100)]
    [0.2189, 0.3958]
    """
    if not is_int(n, 1) or not is_int(successes, 0, n):
        raise ValueError(f"need 0 <= successes <= n and n >= 1 (integers), "
                         f"got successes={successes!r}, n={n!r}")
    if not is_number(confidence) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def choice_accuracy(items: Sequence[ChoiceItem],
                    scorer: Callable[[str, Sequence[str]], torch.Tensor]) -> dict[str, float]:
    """Score every item with ``scorer(context, choices)`` (e.g. ``lambda c, ch:
    score_choices(model, tok, c, ch)``); the highest score is the answer (a tie goes to
    the first choice listed). Returns accuracy, correct, n, its 95 % Wilson interval
    (low, high), and chance (the mean of 1 / n_choices)."""
    if not items:
        raise ValueError("items is empty: nothing to score")
    correct = sum(int(torch.as_tensor(scorer(item.context, item.choices)).argmax()) == item.answer
                  for item in items)
    low, high = wilson_interval(correct, len(items))
    return {"accuracy": correct / len(items), "correct": correct, "n": len(items), "low": low,
            "high": high, "chance": sum(1 / len(item.choices) for item in items) / len(items)}
