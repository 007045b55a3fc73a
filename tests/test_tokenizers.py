"""Tests for minillm_lib.tokenizers: CharTokenizer and BPETokenizer (tiktoken parity lives in
tests/test_reference_tiktoken.py)."""

import json
import re
from collections import Counter
from itertools import pairwise

import pytest
import regex
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minillm_lib.data import load_corpus
from minillm_lib.tokenizers import SPLIT_PATTERNS, BPETokenizer, CharTokenizer, load_tokenizer

EOT = "<|endoftext|>"
PAD = "<|pad|>"

# derandomize: the same examples on every run (tests are seeded); deadline=None: no timing.
HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def corpus() -> str:
    return load_corpus("shakespeare")[:200_000]


@pytest.fixture(scope="module")
def bpe(corpus: str) -> BPETokenizer:
    return BPETokenizer.train(corpus, 512, special_tokens=[EOT, PAD])


@pytest.fixture(scope="module")
def chars(corpus: str) -> CharTokenizer:
    return CharTokenizer.from_text(corpus, special_tokens=[EOT])


# ---------------------------------------------------------------------------------------------
# CharTokenizer
# ---------------------------------------------------------------------------------------------


def test_char_vocabulary_is_sorted_characters_then_specials():
    tok = CharTokenizer.from_text("hello world", special_tokens=[EOT, PAD])
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.special_tokens == {EOT: 8, PAD: 9}
    assert tok.vocab_size == 10


def test_char_round_trip_on_corpus(chars, corpus):
    ids = chars.encode(corpus)
    assert len(ids) == len(corpus)
    assert chars.decode(ids) == corpus


@HYPOTHESIS
@given(st.text(alphabet="abc xyzé\n😀"))
def test_char_round_trip_property(text):
    tok = CharTokenizer.from_text("abc xyzé\n😀")
    assert tok.decode(tok.encode(text)) == text


def test_char_decode_accepts_tensor(chars):
    ids = chars.encode("To be, or not to be")
    assert chars.decode(torch.tensor(ids)) == "To be, or not to be"


def test_char_unknown_character_names_character_and_position():
    tok = CharTokenizer.from_text("abc", special_tokens=[EOT])
    with pytest.raises(ValueError, match=r"'é' at position 3"):
        tok.encode("abcé")
    # the position counts from the start of the whole text, special tokens included
    with pytest.raises(ValueError, match=r"'z' at position 15"):
        tok.encode(f"ab{EOT}z", allowed_special="all")


def test_char_unk_token_maps_unknown_characters():
    tok = CharTokenizer.from_text("abc", unk_token="<unk>")
    unk = tok.special_tokens["<unk>"]
    assert unk == 3
    assert tok.encode("abzc") == [0, 1, unk, 2]
    assert tok.decode(tok.encode("abzc")) == "ab<unk>c"


def test_char_special_tokens_allowed_and_disallowed():
    tok = CharTokenizer.from_text("ab", special_tokens=[EOT, PAD])
    eot, pad = tok.special_tokens[EOT], tok.special_tokens[PAD]
    with pytest.raises(ValueError, match=re.escape(repr(EOT))):
        tok.encode(f"a{EOT}b")
    assert tok.encode(f"a{EOT}b{PAD}", allowed_special="all") == [0, eot, 1, pad]
    assert tok.encode(f"a{EOT}b", allowed_special={EOT}) == [0, eot, 1]
    with pytest.raises(ValueError, match=re.escape(repr(PAD))):
        tok.encode(f"a{EOT}b{PAD}", allowed_special={EOT})


def test_char_save_load_round_trip(tmp_path):
    tok = CharTokenizer.from_text("hello wörld 😀", special_tokens=[EOT], unk_token="<unk>")
    path = tmp_path / "char.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "char"
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.special_tokens == tok.special_tokens
        text = f"hello?{EOT}😀 wörld"
        assert loaded.encode(text, allowed_special="all") == tok.encode(text, "all")


def test_char_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_text("")
    with pytest.raises(TypeError, match="bytes"):
        CharTokenizer.from_text(b"abc")
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(TypeError, match="int"):
        tok.encode(123)
    with pytest.raises(ValueError, match=r"token id 3 "):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match=r"token id -1 "):
        tok.decode([-1])
    with pytest.raises(ValueError, match="duplicates"):
        CharTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="'ab'"):
        CharTokenizer(["ab"])
    with pytest.raises(ValueError, match="distinct"):
        CharTokenizer.from_text("abc", special_tokens=[EOT, EOT])
    with pytest.raises(TypeError, match=re.escape(repr(EOT))):
        CharTokenizer.from_text("abc", special_tokens=EOT)
    with pytest.raises(ValueError, match="'al'"):
        tok.encode("abc", allowed_special="al")


# ---------------------------------------------------------------------------------------------
# BPETokenizer: training
# ---------------------------------------------------------------------------------------------


def test_bpe_first_256_ids_are_the_bytes(bpe):
    for i in range(256):
        assert bpe.token_bytes(i) == bytes([i])
        assert bpe.mergeable_ranks[bytes([i])] == i
    assert bpe.encode_ordinary("\x00\x7f") == [0, 127]


def test_bpe_vocabulary_layout(bpe):
    assert bpe.vocab_size == 512
    assert len(bpe.merges) == 512 - 256 - 2
    assert bpe.special_tokens == {EOT: 510, PAD: 511}
    assert len(bpe.mergeable_ranks) == 510  # bytes + merges, every token once
    for k, (a, b) in enumerate(bpe.merges):
        assert a < 256 + k and b < 256 + k  # a merge joins tokens that already exist
        assert bpe.token_bytes(256 + k) == bpe.token_bytes(a) + bpe.token_bytes(b)
        assert bpe.mergeable_ranks[bpe.token_bytes(256 + k)] == 256 + k
    # a pair is merged when it is the most frequent: counts can only go down
    counts = bpe.merge_counts
    assert all(earlier >= later for earlier, later in pairwise(counts))


def test_bpe_hand_worked_example():
    # "aaabdaaabac" (the Wikipedia example) is one chunk. Pair counts: aa 4, ab 2, rest 1.
    # 1. (a, a) -> 256: [256, a, b, d, 256, a, b, a, c]
    # 2. (256, a) and (a, b) both occur twice; the lower pair (97, 98) wins -> 257 "ab"
    # 3. (256, 257) twice -> 258 "aaab": [258, d, 258, a, c]
    # 4. all pairs once; lowest is (a, c) -> 259
    tok = BPETokenizer.train("aaabdaaabac", 260)
    assert tok.merges == [(97, 97), (97, 98), (256, 257), (97, 99)]
    assert tok.merge_counts == [4, 2, 2, 1]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 259]


def naive_train(text: str, n_merges: int, pattern: str) -> tuple[list, list]:
    """Textbook BPE: recount every pair of every chunk occurrence before each merge."""
    words = [list(chunk.encode("utf-8")) for chunk in regex.findall(pattern, text)]
    merges, counts = [], []
    for k in range(n_merges):
        pair_counts = Counter(pair for word in words for pair in pairwise(word))
        best = max(pair_counts, key=lambda pair: (pair_counts[pair], -pair[0], -pair[1]))
        merges.append(best)
        counts.append(pair_counts[best])
        words = [merge_naive(word, best, 256 + k) for word in words]
    return merges, counts


def merge_naive(word: list, pair: tuple, new_id: int) -> list:
    """Replace occurrences of ``pair``, scanning left to right (so "aaa" -> [aa, a])."""
    out, i = [], 0
    while i < len(word):
        if tuple(word[i : i + 2]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4"])
def test_bpe_incremental_training_matches_naive_recount(corpus, pattern):
    text = corpus[:8000]
    tok = BPETokenizer.train(text, 256 + 80, pattern=pattern)
    merges, counts = naive_train(text, 80, SPLIT_PATTERNS[pattern])
    assert tok.merges == merges
    assert tok.merge_counts == counts


def test_bpe_training_is_deterministic(corpus):
    first = BPETokenizer.train(corpus[:50_000], 400)
    second = BPETokenizer.train(corpus[:50_000], 400)
    assert first.merges == second.merges


def test_bpe_special_tokens_are_cut_out_of_training_text():
    # "hello" needs 4 merges, " world" 5 (no pair in common): 9 in all, never across EOT
    text = ("hello world" + EOT) * 50
    tok = BPETokenizer.train(text, 256 + 9 + 1, special_tokens=[EOT])
    assert tok.encode(text, allowed_special="all")[:3] == [
        tok.mergeable_ranks[b"hello"],
        tok.mergeable_ranks[b" world"],
        tok.special_tokens[EOT],
    ]
    with pytest.raises(ValueError, match="after 9 merges.*at most 266"):
        BPETokenizer.train(text, 256 + 10 + 1, special_tokens=[EOT])


def test_bpe_custom_pattern():
    # split on single characters: no merge can ever happen
    with pytest.raises(ValueError, match="after 0 merges"):
        BPETokenizer.train("hello hello", 257, pattern=r"(?s).")
    tok = BPETokenizer.train("ab ab ab", 257, pattern=r"\S+|\s+")
    assert tok.pattern == r"\S+|\s+"
    assert tok.merges == [(97, 98)]


# ---------------------------------------------------------------------------------------------
# BPETokenizer: encoding and decoding
# ---------------------------------------------------------------------------------------------


def test_bpe_round_trip_on_corpus(bpe, corpus):
    ids = bpe.encode(corpus)
    assert len(ids) < 0.6 * len(corpus)  # 254 merges already compress English a lot
    assert bpe.decode(ids) == corpus


@HYPOTHESIS
@given(st.text(max_size=300))
def test_bpe_round_trip_property(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@HYPOTHESIS
@given(st.lists(st.text(max_size=50), min_size=1, max_size=5))
def test_bpe_round_trip_with_special_tokens(bpe, parts):
    text = EOT.join(parts)
    ids = bpe.encode(text, allowed_special="all")
    assert ids.count(bpe.special_tokens[EOT]) == text.count(EOT)
    assert bpe.decode(ids) == text


def test_bpe_special_tokens_allowed_and_disallowed(bpe):
    eot, pad = bpe.special_tokens[EOT], bpe.special_tokens[PAD]
    text = f"Thou art{EOT} a villain{PAD}"
    with pytest.raises(ValueError, match=re.escape(repr(EOT))):
        bpe.encode(text)
    expected = bpe.encode("Thou art") + [eot] + bpe.encode(" a villain") + [pad]
    assert bpe.encode(text, allowed_special="all") == expected
    with pytest.raises(ValueError, match=re.escape(repr(PAD))):
        bpe.encode(text, allowed_special={EOT})
    assert bpe.encode(text.replace(PAD, ""), allowed_special={EOT}) == expected[:-1]
    with pytest.raises(ValueError, match=re.escape("'<|nope|>'")):
        bpe.encode(text, allowed_special={EOT, "<|nope|>"})
    # encode_ordinary: special tokens are plain text
    ordinary = bpe.encode_ordinary(text)
    assert eot not in ordinary and pad not in ordinary
    assert bpe.decode(ordinary) == text
    assert bpe.decode([eot]) == EOT


def test_bpe_decode_invalid_utf8_uses_replacement_character(bpe):
    emoji = bpe.encode("😀")  # 4 bytes; no merge covers them in a Shakespeare vocabulary
    assert bpe.decode_bytes(emoji) == "😀".encode()
    assert bpe.decode(emoji[:2]) == "\ufffd"
    assert bpe.decode([0xFF, *bpe.encode("ok")]) == "\ufffdok"


def test_bpe_decode_accepts_tensor(bpe):
    ids = bpe.encode("Now is the winter of our discontent")
    assert bpe.decode(torch.tensor(ids)) == "Now is the winter of our discontent"


def test_bpe_encode_is_the_same_with_a_warm_cache(corpus):
    tok = BPETokenizer.train(corpus[:20_000], 300)
    text = corpus[100_000:110_000]
    cold = tok.encode(text)
    assert tok.encode(text) == cold
    assert BPETokenizer(tok.merges, tok.pattern).encode(text) == cold


# ---------------------------------------------------------------------------------------------
# BPETokenizer: save / load
# ---------------------------------------------------------------------------------------------


def test_bpe_save_load_round_trip(bpe, corpus, tmp_path):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "bpe"
    assert data["pattern"] == SPLIT_PATTERNS["gpt4"]
    assert data["special_tokens"] == {EOT: 510, PAD: 511}
    assert [tuple(pair) for pair in data["merges"]] == bpe.merges
    text = corpus[150_000:160_000] + f"{EOT}naïve café 😀 日本語"
    for loaded in (BPETokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.mergeable_ranks == bpe.mergeable_ranks
        assert loaded.special_tokens == bpe.special_tokens
        assert loaded.encode(text, allowed_special="all") == bpe.encode(text, "all")


def test_load_rejects_wrong_or_corrupt_files(bpe, tmp_path):
    bpe_path = tmp_path / "bpe.json"
    bpe.save(bpe_path)
    with pytest.raises(ValueError, match="'bpe'"):
        CharTokenizer.load(bpe_path)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"type": "wordpiece"}))
    with pytest.raises(ValueError, match="'wordpiece'"):
        load_tokenizer(unknown)
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(json.dumps({"type": "bpe", "pattern": "gpt4", "merges": [[97, 300]]}))
    with pytest.raises(ValueError, match=r"merge 0 is \(97, 300\)"):
        load_tokenizer(corrupt)
    duplicate = tmp_path / "duplicate.json"
    duplicate.write_text(json.dumps({"type": "bpe", "pattern": "gpt4", "merges": [[97, 98]] * 2}))
    with pytest.raises(ValueError, match=r"merge 1 \(97, 98\) gives b'ab', the bytes of token 256"):
        load_tokenizer(duplicate)
    gap = tmp_path / "gap.json"
    gap.write_text(
        json.dumps({"type": "bpe", "pattern": "gpt4", "merges": [], "special_tokens": {EOT: 300}})
    )
    with pytest.raises(ValueError, match="300"):
        load_tokenizer(gap)


# ---------------------------------------------------------------------------------------------
# BPETokenizer: bad input
# ---------------------------------------------------------------------------------------------


def test_bpe_train_bad_inputs():
    with pytest.raises(ValueError, match="vocab_size=255"):
        BPETokenizer.train("hello", 255)
    with pytest.raises(ValueError, match="vocab_size=256.*257"):
        BPETokenizer.train("hello", 256, special_tokens=[EOT])
    # "aaabdaaabac" can be merged 7 times before it is a single token
    with pytest.raises(ValueError, match="vocab_size=264.*after 7 merges.*at most 263"):
        BPETokenizer.train("aaabdaaabac", 264)
    assert BPETokenizer.train("aaabdaaabac", 263).encode("aaabdaaabac") == [262]
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train("", 300)
    with pytest.raises(TypeError, match="bytes"):
        BPETokenizer.train(b"hello", 300)
    with pytest.raises(TypeError, match="'300'"):
        BPETokenizer.train("hello", "300")
    with pytest.raises(TypeError, match="300.0"):
        BPETokenizer.train("hello", 300.0)
    with pytest.raises(ValueError, match="'gpt3'"):
        BPETokenizer.train("hello", 260, pattern="gpt3")
    with pytest.raises(ValueError, match=r"'\(' is not a valid regex"):
        BPETokenizer.train("hello", 260, pattern="(")
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer.train("hello", 260, special_tokens=[EOT, EOT])
    with pytest.raises(ValueError, match="''"):
        BPETokenizer.train("hello", 260, special_tokens=[""])


def test_bpe_encode_decode_bad_inputs(bpe):
    with pytest.raises(TypeError, match="NoneType"):
        bpe.encode(None)
    with pytest.raises(TypeError, match="list"):
        bpe.encode_ordinary(["hello"])
    with pytest.raises(ValueError, match="token id 512 "):
        bpe.decode([10, 512])
    with pytest.raises(ValueError, match="token id -1 "):
        bpe.decode([-1])
    with pytest.raises(ValueError, match="token id 'a' "):
        bpe.decode(["a"])
    with pytest.raises(ValueError, match="token id 1000000 "):
        bpe.token_bytes(1_000_000)
    with pytest.raises(ValueError, match="'everything'"):
        bpe.encode("hello", allowed_special="everything")


def test_training_and_encoding_cut_overlapping_special_tokens_alike():
    # "<|end|>x" contains "<|end|>": both must be found longest first, when training as when
    # encoding. Every "x" of this text belongs to "<|end|>x", so no merge may contain it.
    specials = ["<|end|>", "<|end|>x"]
    text = ("ab<|end|>xab<|end|>ab" * 40)
    tok = BPETokenizer.train(text, vocab_size=256 + 2 + 1, special_tokens=specials)
    assert tok.merges == [(ord("a"), ord("b"))]
    ab, end, end_x = 256, tok.special_tokens["<|end|>"], tok.special_tokens["<|end|>x"]
    assert tok.encode("ab<|end|>xab<|end|>", allowed_special="all") == [ab, end_x, ab, end]
    more = BPETokenizer.train(text, vocab_size=256 + 2 + 2, special_tokens=specials)
    assert all(ord("x") not in more.token_bytes(i) for i in range(256, 258))
