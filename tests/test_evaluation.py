"""Real-word rates: words and word pairs of a text against a reference text's lists."""

import pytest
import torch

from minillm_lib.config import GPTConfig
from minillm_lib.evaluation import (
    PROMPTS,
    Vocabulary,
    real_word_rate,
    sample_quality,
    sample_texts,
    words_of,
)
from minillm_lib.model import GPT
from minillm_lib.sampling import generate
from minillm_lib.tokenizers import CharTokenizer

REFERENCE = "The king is dead. Long live the king! O'er the hills, 'tis the KING."


def test_words_are_lower_case_letters_with_inner_apostrophes():
    assert words_of("O'er the hills, 'tis THE king--and 3 more") == [
        "o'er", "the", "hills", "tis", "the", "king", "and", "more"]


def test_the_rate_counts_every_occurrence():
    # "the king is deaad": 4 words, 3 of them in the reference
    assert real_word_rate("the king is deaad", REFERENCE) == 3 / 4
    # pairs: (the, king) yes, (king, is) yes, (is, deaad) no
    assert real_word_rate("the king is deaad", REFERENCE, pairs=True) == 2 / 3
    # several texts count together, not as a mean of rates
    assert real_word_rate(["king", "deaad xx yy"], REFERENCE) == 1 / 4


def test_pairs_do_not_cross_text_boundaries():
    vocabulary = Vocabulary.from_text(REFERENCE)
    assert ("long", "live") in vocabulary.pairs and ("live", "long") not in vocabulary.pairs
    with pytest.raises(ValueError, match="no word pairs"):
        real_word_rate(["the", "king"], vocabulary, pairs=True)  # one word each: no pairs


def test_a_text_without_words_is_an_error():
    with pytest.raises(ValueError, match="no words"):
        real_word_rate("123 ... !", REFERENCE)


def test_sample_texts_follow_the_protocol():
    text = "ROMEO.\nJULIET.\nHAMLET.\nKING LEAR.\nMACBETH.\nOTHELLO.\nPORTIA.\nFALSTAFF.\n" \
           "PROSPERO.\nROSALIND.\nthe king is dead"
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("baby", vocab_size=tok.vocab_size, n_layer=1, n_embd=32,
                                      n_head=2, block_size=16)).eval()
    texts = sample_texts(model, tok, n_chars=12)
    assert len(texts) == len(PROMPTS) == 10
    for i, (prompt, sample) in enumerate(zip(PROMPTS, texts, strict=True)):
        idx = torch.tensor([tok.encode(prompt)])
        out = generate(model, idx, 12, temperature=0.8, top_p=0.95,
                       generator=torch.Generator().manual_seed(i))
        assert sample == tok.decode(out[0, idx.size(1):].tolist())
    quality = sample_quality(model, tok, text, n_chars=12)
    assert quality["words"] == real_word_rate(texts, text)
    assert quality["word_pairs"] == real_word_rate(texts, text, pairs=True)
