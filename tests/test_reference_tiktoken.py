"""Our BPE against outside references.

1. tiktoken: an ``Encoding`` built from our ``pattern``/``mergeable_ranks``/``special_tokens``
   must give identical ids on any text, for both split patterns.
2. Hugging Face ``tokenizers``: its BPE trainer (byte-level, GPT-2 split) must learn the same
   merges as ours.
"""

import argparse
import difflib
import inspect
import json
from itertools import groupby

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from minillm_lib.data import load_corpus
from minillm_lib.tokenizers import BPETokenizer

EOT = "<|endoftext|>"
PAD = "<|pad|>"
HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True)

MULTILINGUAL = """\
Le cœur a ses raisons que la raison ne connaît point. Ça va très bien, merci !
Der Fluß fließt unter der Straße; das Mädchen misst die Größe.
Быстрая коричневая лиса прыгает через ленивую собаку.
日本語のテキストと中文的文字，还有한국어 문장도 있습니다。
العربية تُكتب من اليمين إلى اليسار.
हिन्दी में लिखा गया एक वाक्य।
Emoji: 👋🏽 👨‍👩‍👧‍👦 🇫🇷 🐍 ❤️ 1️⃣ 😀😀😀
Math: ∑ᵢ xᵢ² ≤ ∞, π ≈ 3.14159, naïve café résumé e\u0301 a\u0308
"""

TEXTS = {
    "python": inspect.getsource(difflib),
    "unicode": MULTILINGUAL + "🙂 Ünïcödé ñ ß 漢字かなカナ 😀👍🏿 🏳️‍🌈 Ω≠ω 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 Z̤͔ͧ̑̓ä͖̭̈̇",
    "whitespace": "a  b   c\t\td\n\n\n   e \r\n\r\n f    \n  \t \u00a0\u3000x   \n\n  ",
    "only_spaces": "     ",
    "numbers": "0 1 12 123 1234 12345 3.14159 1,000,000 -42 1e-9 0x1F 2024-11-24 ١٢٣ ４５６ ½ Ⅻ",
    "contractions": "I'M you'LL they've He'd she's It'S we'Re don't 'tis o'er rock'n'roll",
    "empty": "",
}


def training_text() -> str:
    """Shakespeare plus code plus many scripts, so merges cover multi-byte characters too."""
    shakespeare = load_corpus("shakespeare")[:200_000]
    return shakespeare + inspect.getsource(argparse) + MULTILINGUAL * 20


@pytest.fixture(scope="module", params=["gpt2", "gpt4"])
def pair(request) -> tuple[BPETokenizer, tiktoken.Encoding]:
    """Our tokenizer and the tiktoken Encoding made from it."""
    ours = BPETokenizer.train(
        training_text(), 1024, pattern=request.param, special_tokens=[EOT, PAD]
    )
    reference = tiktoken.Encoding(
        name=f"minillm-{request.param}",
        pat_str=ours.pattern,
        mergeable_ranks=ours.mergeable_ranks,
        special_tokens=ours.special_tokens,
    )
    return ours, reference


def test_the_vocabulary_has_multibyte_merges(pair):
    ours, _ = pair
    merged = [ours.token_bytes(i) for i in range(256, 256 + len(ours.merges))]
    assert "а".encode() in merged  # Cyrillic a: 2 bytes, one token
    assert any(b"    " in piece for piece in merged)  # code indentation


def test_identical_ids_on_shakespeare(pair):
    ours, reference = pair
    held_out = load_corpus("shakespeare")[1_000_000:1_100_000]  # not in the training text
    assert ours.encode(held_out) == reference.encode(held_out)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_identical_ids_on_varied_text(pair, name):
    ours, reference = pair
    text = TEXTS[name]
    ids = ours.encode(text)
    assert ids == reference.encode(text)
    assert ours.decode(ids) == reference.decode(ids) == text


@HYPOTHESIS
@given(text=st.text(max_size=200))
def test_identical_ids_on_any_text(pair, text):
    ours, reference = pair
    assert ours.encode(text) == reference.encode(text)


def test_identical_ids_with_special_tokens(pair):
    ours, reference = pair
    text = f"{EOT}First document.{EOT}Second one, {PAD}{PAD}padded.\n{EOT}"
    assert ours.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")
    only_eot = text.replace(PAD, "")
    assert ours.encode(only_eot, allowed_special={EOT}) == reference.encode(
        only_eot, allowed_special={EOT}
    )
    # encode_ordinary: special tokens are plain text for both
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    # both refuse special tokens that are not allowed
    with pytest.raises(ValueError, match="<\\|pad\\|>"):
        reference.encode(text, allowed_special={EOT})
    with pytest.raises(ValueError, match="<\\|pad\\|>"):
        ours.encode(text, allowed_special={EOT})


@HYPOTHESIS
@given(data=st.data())
def test_identical_decoding_of_any_ids(pair, data):
    ours, reference = pair
    ids = data.draw(st.lists(st.integers(0, ours.vocab_size - 1), max_size=30))
    assert ours.decode_bytes(ids) == reference.decode_bytes(ids)
    assert ours.decode(ids) == reference.decode(ids)  # both replace invalid UTF-8 by U+FFFD


# ---------------------------------------------------------------------------------------------
# Hugging Face tokenizers: the same training algorithm
# ---------------------------------------------------------------------------------------------


def gpt2_byte_to_char() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which HF's byte-level BPE uses in its vocab:
    printable Latin-1 bytes stand for themselves, the others for characters from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    others = [b for b in range(256) if b not in printable]
    return {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(others)}


def test_same_merges_as_huggingface_trainer():
    text = load_corpus("shakespeare")[:1_000_000]
    ours = BPETokenizer.train(text, 512, pattern="gpt2")

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # GPT-2's split regex
    trainer = trainers.BpeTrainer(
        vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    hf.train_from_iterator([text], trainer=trainer)
    char_to_byte = {c: b for b, c in gpt2_byte_to_char().items()}
    hf_merges = json.loads(hf.to_str())["model"]["merges"]
    hf_tokens = [bytes(char_to_byte[c] for c in left + right) for left, right in hf_merges]

    our_tokens = [ours.token_bytes(256 + k) for k in range(len(ours.merges))]
    assert len(hf_tokens) == len(our_tokens) == 256
    # Both pick the most frequent pair, but break ties between equally frequent pairs by their
    # own ids, and HF numbers the 256 bytes in the order of the characters above (space comes
    # after "z"). So compare the merges group by group of equal count: same tokens in each.
    position = 0
    for count, group in groupby(ours.merge_counts):
        size = len(list(group))
        assert set(our_tokens[position : position + size]) == set(
            hf_tokens[position : position + size]
        ), f"merges {position}..{position + size - 1} (count {count}) differ"
        position += size
    assert our_tokens[:3] == hf_tokens[:3] == [b" t", b"he", b" a"]
