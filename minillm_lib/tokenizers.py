"""Tokenizers (chapter 1): turn text into a list of integer ids and back.

Two tokenizers, from the simplest to the one GPT-2/GPT-4 use:

- ``CharTokenizer``: one id per character. Tiny vocabulary, long sequences.
- ``BPETokenizer``: byte-level byte-pair encoding (BPE). Starts from the 256 byte values and
  learns "merges" of frequent neighbouring tokens, so common words become single ids.

Both share the special-token rules of tiktoken: a special token such as ``<|endoftext|>`` that
appears in the text is an error unless the caller allows it (``allowed_special``), because text
from users must not be able to inject control tokens by accident.

A trained ``BPETokenizer`` exposes ``pattern``, ``mergeable_ranks`` and ``special_tokens`` in
exactly the form ``tiktoken.Encoding`` takes, and its ``encode`` follows tiktoken's algorithm, so
both give identical ids on any text (tests/test_reference_tiktoken.py checks this).
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence, Set
from functools import cached_property
from itertools import chain, pairwise
from typing import Any, Literal

import regex

from ._checks import is_int
from .files import atomic_write_text, read_json, sha256_hex

# Pre-tokenization: BPE never merges across the boundaries of these chunks, so a token cannot
# glue the end of one word to the start of the next. Both are the regexes tiktoken ships
# (``++``, ``?+``: possessive, i.e. no backtracking; the same splits, found faster).
SPLIT_PATTERNS: dict[str, str] = {
    # GPT-2 (tiktoken's "r50k_base", equivalent to the regex of GPT-2's encoder.py):
    # contractions, words with one leading space, numbers, punctuation runs, whitespace.
    "gpt2": r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""",
    # GPT-4 (tiktoken's "cl100k_base"): case-insensitive contractions, numbers of at most 3
    # digits, newlines kept apart from other whitespace.
    "gpt4": r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
}

AllowedSpecial = Literal["none", "all"] | Set[str]


class Tokenizer:
    """What both tokenizers share: special tokens, ``encode``, ``vocab_size``, JSON save/load.

    Subclasses set ``special_tokens`` (name -> id) and implement ``_encode_ordinary`` (text
    without special tokens -> ids), ``decode``, ``vocab_size`` and ``_to_dict``/``_from_dict``.
    """

    type_name: str = ""
    special_tokens: dict[str, int]

    def encode(self, text: str, allowed_special: AllowedSpecial = "none") -> list[int]:
        """Encode ``text`` into a list of ids.

        allowed_special: "none" (a special token in the text raises ValueError), "all", or a set
        of special-token names to encode as their single id; any other special token raises.
        """
        ids: list[int] = []
        for offset, piece, special_id in self._split_special(text, allowed_special):
            if special_id is None:
                ids.extend(self._encode_ordinary(piece, offset))
            else:
                ids.append(special_id)
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` ignoring special tokens: ``<|endoftext|>`` is just characters here."""
        _check_text(text)
        return self._encode_ordinary(text, 0)

    def _encode_ordinary(self, text: str, offset: int) -> list[int]:
        # offset: where ``text`` starts in the caller's text, for error messages
        raise NotImplementedError

    def decode(self, ids: Iterable[int]) -> str:
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def _split_special(
        self, text: str, allowed_special: AllowedSpecial
    ) -> list[tuple[int, str, int | None]]:
        """Cut ``text`` at special tokens: a list of (offset, piece, special id or None)."""
        _check_text(text)
        allowed = self._allowed_set(allowed_special)
        if not self.special_tokens:
            return [(0, text, None)]
        pieces: list[tuple[int, str, int | None]] = []
        start = 0
        for match in self._special_regex.finditer(text):
            token = match.group()
            if token not in allowed:
                raise ValueError(
                    f"text contains the special token {token!r} at position {match.start()}, "
                    f"which is not allowed; pass allowed_special={{{token!r}}} (or 'all') to "
                    "encode it as one special id, or use encode_ordinary() to encode it as text"
                )
            if match.start() > start:
                pieces.append((start, text[start : match.start()], None))
            pieces.append((match.start(), token, self.special_tokens[token]))
            start = match.end()
        if start < len(text) or not pieces:
            pieces.append((start, text[start:], None))
        return pieces

    def _allowed_set(self, allowed_special: AllowedSpecial) -> Set[str]:
        if allowed_special == "none":
            return frozenset()
        if allowed_special == "all":
            return self.special_tokens.keys()
        if isinstance(allowed_special, str) or not isinstance(allowed_special, Iterable):
            raise ValueError(
                f"allowed_special must be 'none', 'all' or a set of special tokens, "
                f"got {allowed_special!r}"
            )
        allowed = set(allowed_special)
        unknown = sorted(allowed - self.special_tokens.keys())
        if unknown:
            raise ValueError(
                f"allowed_special names unknown special tokens {unknown}; this tokenizer has "
                f"{sorted(self.special_tokens)}"
            )
        return allowed

    @cached_property
    def _special_regex(self) -> regex.Pattern:
        return special_token_regex(self.special_tokens)

    def _id_error(self, token_id: Any) -> ValueError:
        return ValueError(
            f"token id {token_id!r} is not valid for this tokenizer "
            f"(ids are ints in 0..{self.vocab_size - 1})"
        )

    # --- save / load: a readable JSON file, never pickle ---

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to ``path`` as JSON (``{"type": ..., ...}``)."""
        data = {"type": self.type_name, **self._to_dict()}
        atomic_write_text(path, _to_json(data))  # a crash never leaves half a tokenizer file

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        """Read a tokenizer written by ``save``; the file's "type" must match this class."""
        tokenizer = load_tokenizer(path)
        if not isinstance(tokenizer, cls):
            raise ValueError(
                f"{os.fspath(path)!r} holds a tokenizer of type {tokenizer.type_name!r}, not "
                f"{cls.type_name!r}; use load_tokenizer() to load any type"
            )
        return tokenizer

    def fingerprint(self) -> str:
        """SHA-256 of the tokenizer's canonical JSON (sorted keys, no spaces): equal for
        equal vocabularies, different if a single token differs. A model saved with its
        tokenizer records it, so a swapped or edited tokenizer.json is caught on load."""
        data = {"type": self.type_name, **self._to_dict()}
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return sha256_hex(text.encode("utf-8"))

    def _to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        raise NotImplementedError


class CharTokenizer(Tokenizer):
    """One id per character: ids 0..n-1 are the sorted distinct characters of the training
    text, then the special tokens in the order given (the unk token, if any, is one of them).

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.encode("hole")  # vocabulary: e h l o
    [1, 3, 2, 0]
    """

    type_name = "char"

    def __init__(
        self,
        chars: Sequence[str],
        special_tokens: Sequence[str] = (),
        unk_token: str | None = None,
    ) -> None:
        chars = list(chars)
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        if len(set(chars)) != len(chars):
            duplicates = sorted({ch for ch in chars if chars.count(ch) > 1})
            raise ValueError(f"vocabulary characters must be distinct, got duplicates {duplicates}")
        names = _check_special_names(special_tokens)
        if unk_token is not None:
            if not isinstance(unk_token, str) or not unk_token:
                raise ValueError(f"unk_token must be a non-empty string or None, got {unk_token!r}")
            if unk_token not in names:
                names.append(unk_token)  # the unk token is a special token like any other
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}
        self.special_tokens = {name: len(chars) + i for i, name in enumerate(names)}
        self.unk_token = unk_token
        self.unk_id = None if unk_token is None else self.special_tokens[unk_token]
        # id -> string, specials included, so decode is one dict lookup per id
        self.itos = dict(enumerate(chars)) | {i: name for name, i in self.special_tokens.items()}

    @classmethod
    def from_text(
        cls, text: str, special_tokens: Sequence[str] = (), unk_token: str | None = None
    ) -> CharTokenizer:
        """Build the vocabulary from the sorted distinct characters of ``text``."""
        _check_text(text)
        if not text:
            raise ValueError("cannot build a CharTokenizer from empty text")
        return cls(sorted(set(text)), special_tokens, unk_token)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def _encode_ordinary(self, text: str, offset: int) -> list[int]:
        stoi = self.stoi
        if self.unk_id is not None:
            unk_id = self.unk_id
            return [stoi.get(ch, unk_id) for ch in text]
        try:
            return [stoi[ch] for ch in text]
        except KeyError as error:
            ch = error.args[0]
            raise ValueError(
                f"character {ch!r} at position {offset + text.index(ch)} is not in the "
                "vocabulary (build the tokenizer with an unk_token to map unknown characters)"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. ids: list of ints, or a 1-D tensor/array."""
        itos = self.itos
        ids = _as_id_list(ids)
        try:
            return "".join([itos[i] for i in ids])
        except (KeyError, TypeError):
            raise self._id_error(_first_bad_id(ids, itos)) from None

    def _to_dict(self) -> dict[str, Any]:
        names = [name for name in self.special_tokens if name != self.unk_token]
        return {"chars": self.chars, "special_tokens": names, "unk_token": self.unk_token}

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> CharTokenizer:
        return cls(data["chars"], data.get("special_tokens", ()), data.get("unk_token"))

    def __repr__(self) -> str:
        return (
            f"CharTokenizer(vocab_size={self.vocab_size}, "
            f"special_tokens={list(self.special_tokens)})"
        )


class BPETokenizer(Tokenizer):
    """Byte-level BPE, as in GPT-2/GPT-4.

    Ids 0..255 are the raw bytes in byte order; id 256 + k is the k-th learned merge (the
    concatenation of the two tokens in ``merges[k]``); special tokens come after the merges.

    Encoding (tiktoken's algorithm): split the text into chunks with ``pattern``; a chunk that is
    a whole token becomes that token; otherwise start from its bytes and repeatedly join the
    adjacent pair whose joined bytes have the lowest id (the earliest merge), leftmost on ties.
    """

    type_name = "bpe"

    # Chunks remembered across encode calls (chunk -> ids); the bound keeps memory in check.
    cache_size = 100_000

    def __init__(
        self,
        merges: Sequence[tuple[int, int]],
        pattern: str = "gpt4",
        special_tokens: Sequence[str] = (),
    ) -> None:
        self.pattern = _resolve_pattern(pattern)
        self.merges = [(int(a), int(b)) for a, b in merges]
        # token_bytes[i]: the bytes that token i stands for; mergeable_ranks: the reverse
        token_bytes = [bytes([i]) for i in range(256)]
        self.mergeable_ranks = {piece: i for i, piece in enumerate(token_bytes)}
        for k, (a, b) in enumerate(self.merges):
            if not (0 <= a < len(token_bytes) and 0 <= b < len(token_bytes)):
                raise ValueError(
                    f"merge {k} is ({a}, {b}), but a merge may only join existing tokens "
                    f"0..{len(token_bytes) - 1}"
                )
            piece = token_bytes[a] + token_bytes[b]
            if piece in self.mergeable_ranks:  # encoding looks tokens up by their bytes
                raise ValueError(
                    f"merge {k} ({a}, {b}) gives {piece!r}, the bytes of token "
                    f"{self.mergeable_ranks[piece]}; every token must have distinct bytes"
                )
            self.mergeable_ranks[piece] = len(token_bytes)
            token_bytes.append(piece)
        n_tokens = len(token_bytes)
        names = _check_special_names(special_tokens)
        self.special_tokens = {name: n_tokens + i for i, name in enumerate(names)}
        self._id_to_bytes = dict(enumerate(token_bytes)) | {
            i: name.encode("utf-8") for name, i in self.special_tokens.items()
        }
        self._chunk_regex = regex.compile(self.pattern)
        self._cache: dict[str, list[int]] = {}
        # How often each merged pair occurred in the training text when it was merged; set by
        # train() (a training statistic, so not saved: None after load()).
        self.merge_counts: list[int] | None = None

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        pattern: str = "gpt4",
        special_tokens: Sequence[str] = (),
    ) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        vocab_size counts everything (bytes, merges, special tokens), so it is the size of the
        model's embedding table. pattern: "gpt2", "gpt4" or a regex. Special tokens in ``text``
        are cut out first: no merge ever spans one.

        Each step merges the most frequent adjacent pair (pairs are counted inside chunks, all
        occurrences, overlapping ones included, then merged left to right); ties go to the pair
        with the lowest ids (lowest first id, then lowest second id), so training is
        deterministic.
        """
        _check_text(text)
        if not text:
            raise ValueError("cannot train a BPETokenizer on empty text")
        if not is_int(vocab_size):
            raise TypeError(f"vocab_size must be an int, got {vocab_size!r}")
        names = _check_special_names(special_tokens)
        n_merges = vocab_size - 256 - len(names)
        if n_merges < 0:
            raise ValueError(
                f"vocab_size={vocab_size} is too small: it must be at least 256 (one token per "
                f"byte) + {len(names)} special tokens = {256 + len(names)}"
            )
        chunk_regex = regex.compile(_resolve_pattern(pattern))
        # Cut exactly where encode() will cut: the same regex, longest special token first.
        pieces = special_token_regex(names).split(text) if names else [text]
        # Training only needs each distinct chunk once, with its number of occurrences.
        chunk_counts: Counter[str] = Counter()
        for piece in pieces:
            chunk_counts.update(chunk_regex.findall(piece))
        byte_counts = {chunk.encode("utf-8"): count for chunk, count in chunk_counts.items()}
        merges, merge_counts = _learn_merges(byte_counts, n_merges)
        if len(merges) < n_merges:
            raise ValueError(
                f"vocab_size={vocab_size} is too large for this text: it has no pairs left to "
                f"merge after {len(merges)} merges, so vocab_size can be at most "
                f"{256 + len(merges) + len(names)}"
            )
        tokenizer = cls(merges, pattern, names)
        tokenizer.merge_counts = merge_counts
        return tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self._id_to_bytes)

    def _encode_ordinary(self, text: str, offset: int) -> list[int]:
        chunks = self._chunk_regex.findall(text)
        # Text repeats its words a lot: run BPE once per distinct chunk, then look the rest up.
        cache = self._cache
        chunk_ids = {}
        for chunk in set(chunks):
            ids = cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk.encode("utf-8"))
                if len(cache) < self.cache_size:
                    cache[chunk] = ids
            chunk_ids[chunk] = ids
        return list(chain.from_iterable(map(chunk_ids.__getitem__, chunks)))

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """BPE on one chunk, exactly as tiktoken does it."""
        ranks = self.mergeable_ranks
        whole = ranks.get(chunk)
        if whole is not None:
            return [whole]
        parts = [chunk[i : i + 1] for i in range(len(chunk))]
        # pair_ranks[i]: id of parts[i] + parts[i + 1] if that is a token, else _NO_RANK
        pair_ranks = [ranks.get(a + b, _NO_RANK) for a, b in pairwise(parts)]
        while len(parts) > 1:
            best = min(pair_ranks)
            if best == _NO_RANK:
                break
            i = pair_ranks.index(best)  # leftmost of the lowest, like tiktoken
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
            # Only the pairs touching the new part changed: recompute those two.
            del pair_ranks[i]
            if i > 0:
                pair_ranks[i - 1] = ranks.get(parts[i - 1] + parts[i], _NO_RANK)
            if i < len(pair_ranks):
                pair_ranks[i] = ranks.get(parts[i] + parts[i + 1], _NO_RANK)
        return [ranks[part] for part in parts]

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> the raw bytes they stand for (may be cut in the middle of a UTF-8 character)."""
        id_to_bytes = self._id_to_bytes
        ids = _as_id_list(ids)
        try:
            return b"".join([id_to_bytes[i] for i in ids])
        except (KeyError, TypeError):
            raise self._id_error(_first_bad_id(ids, id_to_bytes)) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text. Bytes that are not valid UTF-8 (e.g. half of an emoji) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token, e.g. for showing each token of a text in its own colour."""
        try:
            return self._id_to_bytes[token_id]
        except (KeyError, TypeError):
            raise self._id_error(token_id) from None

    def _to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "special_tokens": self.special_tokens,
            "merges": [list(pair) for pair in self.merges],
        }

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> BPETokenizer:
        merges = data["merges"]
        if not isinstance(merges, list) or not all(
            isinstance(pair, list) and len(pair) == 2 and all(is_int(i, 0) for i in pair)
            for pair in merges
        ):
            raise ValueError("'merges' must be a list of [id, id] pairs of integers >= 0")
        special_tokens: dict[str, int] = data.get("special_tokens", {})
        if not isinstance(special_tokens, dict) or not all(
            is_int(i) for i in special_tokens.values()
        ):
            raise ValueError("'special_tokens' must map token names to integer ids")
        # Ids of special tokens are not free: they follow the merges, in order.
        names = sorted(special_tokens, key=special_tokens.__getitem__)
        expected = {name: 256 + len(merges) + i for i, name in enumerate(names)}
        if special_tokens != expected:
            raise ValueError(
                f"special token ids {special_tokens} must be consecutive right after the "
                f"{256 + len(merges)} byte and merge tokens"
            )
        return cls(merges, data["pattern"], names)

    def __repr__(self) -> str:
        name = next((k for k, v in SPLIT_PATTERNS.items() if v == self.pattern), "custom")
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, pattern={name!r}, "
            f"special_tokens={list(self.special_tokens)})"
        )


def load_tokenizer(path: str | os.PathLike) -> CharTokenizer | BPETokenizer:
    """Load a tokenizer saved by either class, choosing the class from the file's "type".

    Raises FileNotFoundError or ValueError naming the file for a missing, garbled or
    incomplete file (never a KeyError or TypeError from deep inside).
    """
    data = read_json(path)
    classes = {cls.type_name: cls for cls in (CharTokenizer, BPETokenizer)}
    kind = data.get("type") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in classes:
        raise ValueError(
            f"{os.fspath(path)!r} has tokenizer type {kind!r}; expected one of {sorted(classes)}"
        )
    try:
        return classes[kind]._from_dict(data)
    except KeyError as err:
        raise ValueError(f"{os.fspath(path)!r} is not a whole {kind} tokenizer: it has no "
                         f"{err.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise ValueError(f"{os.fspath(path)!r} holds an invalid {kind} tokenizer: {err}") from None


# ---------------------------------------------------------------------------------------------
# BPE training
# ---------------------------------------------------------------------------------------------

Pair = tuple[int, int]
_NO_RANK = float("inf")


def _learn_merges(chunk_counts: dict[bytes, int], n_merges: int) -> tuple[list[Pair], list[int]]:
    """Learn up to ``n_merges`` merges from distinct chunks and their counts.

    Recounting every pair after each merge costs a pass over the whole corpus per merge.
    Instead we keep the counts up to date: a merge of (a, b) only changes the pairs inside the
    chunks that contain (a, b), so we remember which chunks hold each pair and revisit only those.
    The most frequent pair comes from a heap; when a count drops, its old heap entry is left in
    place and fixed when it reaches the top ("lazy deletion").
    Returns the merges and how often each merged pair occurred when it was merged; fewer than
    ``n_merges`` merges if the text runs out of pairs.
    """
    words = [list(chunk) for chunk in chunk_counts]  # each chunk as a list of token ids
    weights = list(chunk_counts.values())  # how often each chunk occurs in the text
    pair_counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)  # pair -> indices of words that contain it
    for index, (word, weight) in enumerate(zip(words, weights, strict=True)):
        for pair in pairwise(word):
            pair_counts[pair] += weight
            where[pair].add(index)
    # Python's heap is a min-heap: store -count. On equal counts the lower pair comes first.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[Pair] = []
    merge_counts: list[int] = []
    while len(merges) < n_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        count = pair_counts[pair]
        if count != -negative_count:  # stale entry: the count has dropped since it was pushed
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        new_id = 256 + len(merges)
        merges.append(pair)
        merge_counts.append(count)

        new_pairs: set[Pair] = set()
        for index in where.pop(pair):
            word = words[index]
            merged = _merge_pair(word, pair, new_id)
            if len(merged) == len(word):  # stale index: a later merge broke up this (a, b)
                continue
            weight = weights[index]
            for old in pairwise(word):
                pair_counts[old] -= weight
            for new in pairwise(merged):
                pair_counts[new] += weight
                if new_id in new:  # only pairs with the new token are new to this word
                    where[new].add(index)
                    new_pairs.add(new)
            words[index] = merged
        del pair_counts[pair]
        for new in new_pairs:  # push once, with the final count
            heapq.heappush(heap, (-pair_counts[new], new))
    return merges, merge_counts


def _merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right)."""
    first, second = pair
    merged = []
    i = 0
    last = len(ids) - 1
    while i <= last:
        if ids[i] == first and i < last and ids[i + 1] == second:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def special_token_regex(names: Iterable[str]) -> regex.Pattern:
    """One regex that finds any of the special tokens ``names``, the longest first, so that
    with both ``"<|end|>"`` and ``"<|end|>x"`` the text ``"<|end|>x"`` is one token, not
    ``"<|end|>"`` + ``"x"``. Training and encoding cut the text with it, so both cut in the
    same places.

    >>> special_token_regex(["<|end|>", "<|end|>x"]).findall("a<|end|>xb<|end|>")
    ['<|end|>x', '<|end|>']
    """
    ordered = sorted(names, key=len, reverse=True)
    return regex.compile("|".join(regex.escape(name) for name in ordered))


def _check_text(text: Any) -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")


def _check_special_names(special_tokens: Sequence[str]) -> list[str]:
    if isinstance(special_tokens, str):  # a lone "<|endoftext|>" would be split into characters
        raise TypeError(f"special_tokens must be a sequence of strings, got {special_tokens!r}")
    names = list(special_tokens)
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"special tokens must be non-empty strings, got {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"special tokens must be distinct, got {names}")
    return names


def _resolve_pattern(pattern: str) -> str:
    """A pattern name ("gpt2", "gpt4") -> its regex; any other string must be a valid regex."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, got {type(pattern).__name__}")
    if pattern in SPLIT_PATTERNS:
        return SPLIT_PATTERNS[pattern]
    if pattern.isalnum():  # looks like a misspelt name, not a regex
        raise ValueError(
            f"unknown pattern name {pattern!r}; use one of {sorted(SPLIT_PATTERNS)} or a regex"
        )
    try:
        regex.compile(pattern)
    except regex.error as error:
        raise ValueError(f"pattern {pattern!r} is not a valid regex: {error}") from None
    return pattern


def _as_id_list(ids: Iterable[int]) -> list[int]:
    # Tensors and arrays: take plain ints (a 0-d tensor is not a valid dict key for its value).
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)


def _first_bad_id(ids: list[Any], table: dict[int, Any]) -> Any:
    return next(i for i in ids if not (isinstance(i, int) and i in table))


def _to_json(data: dict[str, Any]) -> str:
    """JSON with one line per list item, so merges read as ``[101, 32],`` lines."""
    lines = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n".join("    " + json.dumps(item, ensure_ascii=False) for item in value)
            lines.append(f"  {json.dumps(key)}: [\n{items}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"
