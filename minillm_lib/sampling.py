"""Sampling text from a GPT: logit filters, ``generate`` and ``stream`` (chapter 9; the KV
cache that makes it fast: chapter 10).

One decoding step turns the logits of the last position into the next token::

    logits (B, V) -> repetition_penalty -> temperature_scale -> top_k_filter
                  -> top_p_filter -> min_p_filter -> softmax -> sample one token

Each filter is a small pure function on logits of shape (..., V): it returns new logits
and never changes its input. A filter removes a token by setting its logit to -inf, so
its probability after the softmax is exactly 0. Temperature 0 means greedy decoding
(always the most likely token).

``generate`` runs the model once on the prompt and then once per new token, feeding only
that token and reusing the keys and values of the earlier ones from a KV cache
(``attention.KVCache``, made by ``GPT.new_kv_cache``).

``generate``, ``stream`` and ``GPT.generate`` take the same keyword options, defined once
in ``SamplingOptions``. This module never imports the model (it only calls it), so
``model.py`` can offer ``GPT.generate`` without an import cycle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ._checks import is_int

if TYPE_CHECKING:  # for type hints only: at run time sampling never imports the model
    from .model import GPT


def _check_temperature(temperature: float) -> None:
    if not temperature >= 0:  # also catches NaN
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")


def _check_top_k(top_k: int) -> None:
    if not is_int(top_k, 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")


def _check_probability(name: str, value: float) -> None:
    if not 0 < value <= 1:  # also catches NaN
        raise ValueError(f"{name} must be in (0, 1], got {value}")


def _check_repetition_penalty(penalty: float) -> None:
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1 = off), got {penalty}")


def temperature_scale(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide logits (..., V) by ``temperature``: < 1 sharpens the distribution, > 1 flattens it.

    Temperature 0 is the limit of ever sharper distributions: only the most likely token
    keeps its logit (the first one if several tie), every other becomes -inf.
    """
    _check_temperature(temperature)
    if temperature == 0:
        best = logits.argmax(dim=-1, keepdim=True)  # (..., 1)
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, best, True)
        return logits.masked_fill(~keep, float("-inf"))
    return logits / temperature


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the ``top_k`` largest logits of (..., V), set the others to -inf.

    Tokens tied with the k-th largest logit are all kept (so a tie may keep more than k),
    which makes the result independent of how a sort orders equal values.
    """
    _check_top_k(top_k)
    if top_k >= logits.size(-1):
        return logits
    kth_largest = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus sampling (Holtzman et al., 2019): keep the smallest set of most likely
    tokens whose probability mass reaches ``top_p``; set the others to -inf.

    The most likely token is always kept. Among tokens of equal probability the lower
    token id counts as more likely, so ties are cut the same way every time.
    ``top_p=1`` keeps every token.
    """
    _check_probability("top_p", top_p)
    if top_p == 1:
        return logits  # skip the sort: rounding in the cumulative sum could drop a tail token
    probs = F.softmax(logits.float(), dim=-1)
    # A stable sort keeps equal probabilities in token-id order.
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True, stable=True)  # (..., V)
    # Mass of all strictly more likely tokens: an exclusive cumulative sum, 0 for the first.
    mass_before = F.pad(sorted_probs.cumsum(dim=-1)[..., :-1], (1, 0))  # (..., V)
    drop_sorted = mass_before >= top_p  # the set had already reached top_p without this token
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Min-p sampling (Nguyen et al., 2024): keep tokens whose probability is at least
    ``min_p`` times the top token's probability; set the others to -inf.

    The cut adapts to the model's confidence: a confident step keeps few tokens, an
    uncertain one keeps many. The most likely token is always kept.
    """
    _check_probability("min_p", min_p)
    probs = F.softmax(logits.float(), dim=-1)
    threshold = min_p * probs.amax(dim=-1, keepdim=True)  # (..., 1)
    return logits.masked_fill(probs < threshold, float("-inf"))


def repetition_penalty(logits: torch.Tensor, previous: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens that already occur in ``previous`` less likely (Keskar et al., 2019, CTRL).

    logits: (..., V); previous: (..., T) token ids of the prompt and the text so far.
    A positive logit is divided by ``penalty``, a negative one multiplied by it, so with
    penalty > 1 a seen token always loses probability (dividing a negative logit would
    raise it). penalty = 1 changes nothing; a token seen several times is penalised once.
    """
    _check_repetition_penalty(penalty)
    if penalty == 1:
        return logits
    seen = logits.gather(-1, previous)  # (..., T) logits of the tokens seen so far
    seen = torch.where(seen > 0, seen / penalty, seen * penalty)
    return logits.scatter(-1, previous, seen)


@dataclass(frozen=True)
class SamplingOptions:
    """The keyword options of ``generate``, ``stream`` and ``GPT.generate``, checked once.

    Attributes:
        temperature: 0 = greedy (argmax); otherwise logits are divided by it and sampled.
        top_k: keep the k most likely tokens (None = off).
        top_p: keep the smallest set of tokens whose mass reaches top_p (None = off).
        min_p: keep tokens at least min_p times as likely as the top one (None = off).
        repetition_penalty: > 1 makes tokens already in the text less likely (1 = off).
        eos_id: a sequence stops at this token (kept in the output); finished sequences
            are padded with it until all are done, and then generation stops.
        generator: a torch.Generator on the model's device makes sampling reproducible.
        use_cache: reuse keys/values of earlier tokens (KV cache). Once prompt + output
            exceed block_size, every further step recomputes the last block_size tokens.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    eos_id: int | None = None
    generator: torch.Generator | None = None
    use_cache: bool = True

    def __post_init__(self) -> None:
        _check_temperature(self.temperature)
        if self.top_k is not None:
            _check_top_k(self.top_k)
        if self.top_p is not None:
            _check_probability("top_p", self.top_p)
        if self.min_p is not None:
            _check_probability("min_p", self.min_p)
        _check_repetition_penalty(self.repetition_penalty)

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> SamplingOptions:
        """Options given as keyword arguments; an unknown name is a ValueError naming it."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown sampling option(s) {unknown}; the options are {known}")
        return cls(**options)

    def filter_logits(self, logits: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """The whole filter chain: logits (B, V), previous (B, t) ids -> the logits (B, V)
        that the next token is sampled from (softmax of them), -inf where a filter removed
        a token. Temperature 0 keeps only the most likely token."""
        if self.repetition_penalty != 1:
            logits = repetition_penalty(logits, previous, self.repetition_penalty)
        logits = temperature_scale(logits, self.temperature)
        if self.temperature == 0:  # greedy: the other filters all keep the top token anyway
            return logits
        if self.top_k is not None:
            logits = top_k_filter(logits, self.top_k)
        if self.top_p is not None:
            logits = top_p_filter(logits, self.top_p)
        if self.min_p is not None:
            logits = min_p_filter(logits, self.min_p)
        return logits

    def next_token(self, logits: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """logits (B, V) of the last position, previous (B, t) ids -> next ids (B, 1)."""
        if self.temperature == 0:  # greedy: the most likely token after the penalty
            if self.repetition_penalty != 1:
                logits = repetition_penalty(logits, previous, self.repetition_penalty)
            return logits.argmax(dim=-1, keepdim=True)
        probs = F.softmax(self.filter_logits(logits, previous).float(), dim=-1)  # (B, V)
        return torch.multinomial(probs, num_samples=1, generator=self.generator)  # (B, 1)


def _check_prompt(idx: torch.Tensor, max_new_tokens: int) -> None:
    if idx.ndim != 2 or idx.size(1) == 0 or idx.dtype != torch.long:
        raise ValueError(
            f"idx must be a (B, T) tensor of token ids (dtype long, T >= 1), "
            f"got shape {tuple(idx.shape)} and dtype {idx.dtype}"
        )
    if not is_int(max_new_tokens, 0):
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")


@torch.inference_mode()
def _decode(
    model: GPT, idx: torch.Tensor, max_new_tokens: int, sampling: SamplingOptions
) -> Iterator[torch.Tensor]:
    """Yield the next token of every sequence, (B, 1), ``max_new_tokens`` times (fewer
    when every sequence has produced ``eos_id``; finished ones are padded with it)."""
    block_size = model.config.block_size
    B, T = idx.shape
    # Prompt and generated tokens in one buffer, allocated once; the repetition penalty
    # reads the history from it and the no-cache path its last block_size tokens.
    tokens = torch.empty(B, T + max_new_tokens, dtype=torch.long, device=idx.device)
    tokens[:, :T] = idx
    n = T  # tokens written so far
    finished = torch.zeros(B, dtype=torch.bool, device=idx.device)
    # The model never saw more than block_size tokens (learned positions stop there):
    # a longer prompt is cropped to its last block_size tokens.
    context = idx[:, -block_size:]  # (B, <= block_size)
    # Room for the prompt and the new tokens, at most block_size (the last new token is
    # never fed back, hence the - 1).
    capacity = min(block_size, context.size(1) + max_new_tokens - 1)
    cache = model.new_kv_cache(B, capacity=max(capacity, 1)) if sampling.use_cache else None

    was_training = model.training
    model.eval()  # no dropout while sampling
    try:
        for _ in range(max_new_tokens):
            if cache is not None and cache.seq_len + context.size(1) > cache.capacity:
                # The cache is full. Dropping its oldest token would shift the position
                # of every other one and change all their keys and values, so from here
                # on each step recomputes the last block_size tokens, exactly as without
                # a cache.
                cache = None
                context = tokens[:, max(0, n - block_size) : n]  # (B, <= block_size)
            logits, _ = model(context, kv_cache=cache)  # (B, t, V)
            next_id = sampling.next_token(logits[:, -1, :], tokens[:, :n])  # (B, 1)
            if sampling.eos_id is not None:
                next_id = next_id.masked_fill(finished[:, None], sampling.eos_id)
                finished |= next_id[:, 0] == sampling.eos_id
            tokens[:, n : n + 1] = next_id
            n += 1
            yield next_id
            if sampling.eos_id is not None and bool(finished.all()):
                return
            # With a cache only the new token goes in; without one, the last block_size.
            context = next_id if cache is not None else tokens[:, max(0, n - block_size) : n]
    finally:
        model.train(was_training)


def generate(model: GPT, idx: torch.Tensor, max_new_tokens: int, **options: Any) -> torch.Tensor:
    """Continue each prompt in idx (B, T) by up to ``max_new_tokens`` tokens.

    Options (keyword arguments, see ``SamplingOptions``): temperature=1.0, top_k, top_p,
    min_p, repetition_penalty=1.0, eos_id, generator, use_cache=True.

    Returns:
        (B, T + n) token ids, the prompt followed by n <= max_new_tokens new tokens.

    The model is put in eval mode while it samples (no dropout), then restored.
    """
    sampling = SamplingOptions.from_kwargs(options)
    _check_prompt(idx, max_new_tokens)
    new = list(_decode(model, idx, max_new_tokens, sampling))
    return torch.cat([idx, *new], dim=1)


def stream(model: GPT, idx: torch.Tensor, max_new_tokens: int, **options: Any) -> Iterator[int]:
    """Like ``generate`` for one prompt idx (1, T), but yield each new token id as soon as
    it is sampled (``eos_id`` is yielded, then the stream ends). Same options."""
    sampling = SamplingOptions.from_kwargs(options)
    _check_prompt(idx, max_new_tokens)
    if idx.size(0) != 1:
        raise ValueError(f"stream takes one prompt of shape (1, T), got shape {tuple(idx.shape)}")
    # Checked above, before the first token is asked for; the generator below is lazy.
    return (int(next_id) for next_id in _decode(model, idx, max_new_tokens, sampling))
