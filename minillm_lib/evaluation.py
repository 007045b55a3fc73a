"""Is the text any good? Measures of generated text beyond the loss (chapters 9 and 16).

The validation loss is the measure of progress, but a reader judges a model by what it
writes. ``real_word_rate`` asks the simplest question a reader asks of a character model:
are its words real words? It is the share of the words of a text that occur in a word list
built from the training split (and, for ``pairs=True``, the share of its pairs of
neighbouring words that occur there as neighbours). Real held-out Shakespeare scores well
below 1 on pairs: writers combine words in new ways. ``sample_quality`` is the fixed
protocol the course reports: ten prompts, 200 characters each, T = 0.8, top-p 0.95, seeded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import regex
import torch

from .sampling import generate

if TYPE_CHECKING:  # type hints only: evaluation never imports the model
    from .model import GPT
    from .tokenizers import Tokenizer

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
