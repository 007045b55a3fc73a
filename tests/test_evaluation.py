"""Evaluation: real-word rates of generated text; bits per character against n-gram and
compressor baselines; calibration; multiple-choice scoring by likelihood, with intervals."""

import doctest
import gzip
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import minillm_lib.evaluation
from minillm_lib.config import GPTConfig
from minillm_lib.evaluation import (
    PROMPTS,
    ChoiceItem,
    NGramModel,
    Vocabulary,
    bits_per_char,
    calibration,
    choice_accuracy,
    compressed_bits_per_char,
    next_line_task,
    ngram_baseline,
    real_word_rate,
    sample_quality,
    sample_texts,
    score_choices,
    token_logprobs,
    top_predictions,
    wilson_interval,
    words_of,
)
from minillm_lib.model import GPT
from minillm_lib.sampling import generate
from minillm_lib.tokenizers import BPETokenizer, CharTokenizer

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


# ---------------------------------------------------------------- chapter "Is it any good?"

TRAIN = "abracadabra, cadabra abba! a bar, a car; abracadabra."
HELD_OUT = "a cab, a bra; abba cabra!"


def test_the_docstring_examples_hold():
    assert doctest.testmod(minillm_lib.evaluation).failed == 0


def occurrences(text: str, s: str) -> int:
    """Overlapping occurrences of s in text, counted one start at a time."""
    return sum(text.startswith(s, i) for i in range(len(text)))


def left_neighbours(text: str, s: str) -> int:
    """N(. s): how many distinct characters come right before an occurrence of s."""
    return len({text[i - 1] for i in range(1, len(text)) if text.startswith(s, i)})


def kneser_ney_by_hand(train: str, vocab: list[str], history: str, w: str, D: float,
                       top: bool = True) -> float:
    """Interpolated Kneser-Ney, straight from the definition, recursively: raw counts at the
    top order, distinct left neighbours below it, uniform below order 1."""
    lower = 1 / len(vocab) if history == "" else kneser_ney_by_hand(train, vocab, history[1:], w,
                                                                     D, top=False)
    count = occurrences if top else left_neighbours
    counts = {x: count(train, history + x) for x in vocab}
    total = sum(counts.values())
    if total == 0:
        return lower
    types = sum(c > 0 for c in counts.values())
    return (max(counts[w] - D, 0) + D * types * lower) / total


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("D", [0.75, 0.4, 1.0])
def test_kneser_ney_matches_the_definition_by_hand(order, D):
    lm = NGramModel(order, discount=D).fit(TRAIN, vocab="xyz")  # x, y, z never seen
    vocab = sorted(set(TRAIN) | set("xyz"))
    text = HELD_OUT + "zax"
    got = np.exp(lm.log_probs(text, start=1))
    for t in range(1, len(text)):
        history = text[max(0, t - order + 1):t]
        expected = kneser_ney_by_hand(TRAIN, vocab, history, text[t], D)
        assert got[t - 1] == pytest.approx(expected, rel=1e-12), (t, history, text[t])


@pytest.mark.parametrize("order", [1, 2, 3])
def test_add_k_matches_the_counts(order):
    lm = NGramModel(order, smoothing="add-k", k=0.5).fit(TRAIN)
    V = len(set(TRAIN))
    got = np.exp(lm.log_probs(HELD_OUT, start=0))
    for t in range(len(HELD_OUT)):
        history = HELD_OUT[max(0, t - order + 1):t]
        total = sum(occurrences(TRAIN, history + x) for x in set(TRAIN))
        expected = (occurrences(TRAIN, history + HELD_OUT[t]) + 0.5) / (total + 0.5 * V)
        assert got[t] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "add-k"])
@pytest.mark.parametrize("context", ["", "a", "ab", "zzz", "abra"])
def test_next_character_probabilities_sum_to_one(smoothing, context):
    lm = NGramModel(3, smoothing=smoothing).fit(TRAIN, vocab="z")
    probs = lm.next_char_probs(context)
    assert set(probs) == set(TRAIN) | {"z"}
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
    assert min(probs.values()) > 0


def test_ngram_bits_per_char_is_the_mean_surprise():
    lm = NGramModel(3).fit(TRAIN)
    surprise = [-math.log2(lm.next_char_probs(HELD_OUT[:t])[HELD_OUT[t]])
                for t in range(1, len(HELD_OUT))]
    assert lm.bits_per_char(HELD_OUT) == pytest.approx(sum(surprise) / len(surprise), rel=1e-12)
    assert ngram_baseline(TRAIN, HELD_OUT, 3) == lm.bits_per_char(HELD_OUT)
    # more context fits the training text better; a unigram model knows only the letter shares
    assert NGramModel(4).fit(TRAIN).bits_per_char(TRAIN) < NGramModel(1).fit(TRAIN).bits_per_char(TRAIN)


def test_ngram_errors_name_the_problem():
    with pytest.raises(ValueError, match="order must be a positive integer, got 0"):
        NGramModel(0)
    with pytest.raises(ValueError, match="smoothing must be one of"):
        NGramModel(2, smoothing="witten-bell")
    with pytest.raises(ValueError, match=r"discount must be in \(0, 1\], got 1.5"):
        NGramModel(2, discount=1.5)
    with pytest.raises(ValueError, match="has not been fitted"):
        NGramModel(2).log_probs("abc")
    with pytest.raises(ValueError, match="character 'q' is not in the n-gram model's vocabulary"):
        NGramModel(2).fit(TRAIN).bits_per_char("aqa")
    with pytest.raises(ValueError, match="too large to count"):
        NGramModel(40).fit(TRAIN)


def tiny_char_model(text: str, block_size: int = 16, seed: int = 0) -> tuple[GPT, CharTokenizer]:
    tok = CharTokenizer.from_text(text)
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_preset("cpu-5min", vocab_size=tok.vocab_size, n_layer=1,
                                      n_embd=32, n_head=2, block_size=block_size)).eval()
    return model, tok


def test_bits_per_char_is_the_summed_surprise_of_every_window():
    model, tok = tiny_char_model(TRAIN + HELD_OUT)
    ids = torch.tensor(tok.encode(HELD_OUT))
    bits = 0.0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, 16):  # consecutive windows of block_size targets
            x, y = ids[start:start + 16], ids[start + 1:start + 17]
            logits, _ = model(x[: len(y)][None])
            bits += F.cross_entropy(logits[0], y, reduction="sum").item() / math.log(2)
    assert bits_per_char(model, tok, HELD_OUT) == pytest.approx(bits / (len(ids) - 1), rel=1e-5)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        bits_per_char(model, tok, "a")


def test_bits_per_char_divides_by_characters_with_bpe():
    text = (TRAIN + " ") * 20
    tok = BPETokenizer.train(text, vocab_size=270)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("cpu-5min", vocab_size=tok.vocab_size, n_layer=1,
                                      n_embd=32, n_head=2, block_size=16)).eval()
    ids = tok.encode(HELD_OUT)
    assert len(ids) < len(HELD_OUT) - 3  # merges happened
    x, y = torch.tensor([ids[:-1]]), torch.tensor([ids[1:]])
    with torch.no_grad():
        nats = -token_logprobs(model, x, y).sum().item()
    chars = len(tok.decode(ids[1:]))  # the characters of the predicted tokens
    assert bits_per_char(model, tok, HELD_OUT) == pytest.approx(nats / math.log(2) / chars, rel=1e-5)


def test_compressors_count_the_bytes_and_the_given_text_helps_within_their_window():
    rng = random.Random(0)
    # Random letters: 4 bits of entropy each, so only remembering the very text saves bits.
    train = "".join(rng.choice("abcdefghijklmnop") for _ in range(150_000))
    held_out = train[:3000]  # seen in training, but more than gzip's 32 KiB ago
    alone = compressed_bits_per_char(held_out, method="gzip")
    assert alone == 8 * len(gzip.compress(held_out.encode(), 9, mtime=0)) / len(held_out)
    assert alone > 4  # random letters do not compress below their entropy
    lzma_given = compressed_bits_per_char(held_out, method="lzma", given=train)
    gzip_given = compressed_bits_per_char(held_out, method="gzip", given=train)
    assert lzma_given < 0.1 * compressed_bits_per_char(held_out, method="lzma")  # remembered
    assert gzip_given > 0.9 * alone  # out of gzip's window: no memory of it
    recent = train[-3000:]  # within gzip's window of the given text
    assert compressed_bits_per_char(recent, method="gzip", given=train) < 0.1 * alone
    with pytest.raises(ValueError, match="method must be one of"):
        compressed_bits_per_char("abc", method="zip")
    with pytest.raises(ValueError, match="non-empty string"):
        compressed_bits_per_char("")


def test_calibration_against_a_hand_computation():
    probs = [0.05, 0.15, 0.35, 0.45, 0.5, 0.95, 1.0, 0.62]
    outcomes = [0, 0, 1, 0, 1, 1, 1, 0]
    c = calibration(probs, outcomes, n_bins=4)  # bins [0, .25) [.25, .5) [.5, .75) [.75, 1]
    assert c.edges.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert c.count.tolist() == [2, 2, 2, 2]
    expected_conf = [0.1, 0.4, 0.56, 0.975]
    expected_acc = [0.0, 0.5, 0.5, 1.0]
    assert c.confidence.tolist() == pytest.approx(expected_conf)
    assert c.accuracy.tolist() == pytest.approx(expected_acc)
    ece = sum(2 / 8 * abs(a - p) for a, p in zip(expected_acc, expected_conf, strict=True))
    assert c.ece == pytest.approx(ece)
    empty = calibration([0.1, 0.9], [False, True], n_bins=5)
    assert math.isnan(empty.accuracy[2]) and empty.count.tolist() == [1, 0, 0, 0, 1]


def test_a_calibrated_source_has_a_small_ece():
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(200_000, generator=gen)
    outcomes = torch.rand(200_000, generator=gen) < probs  # true with the stated probability
    assert calibration(probs, outcomes).ece < 0.01
    assert calibration(probs, ~outcomes).ece > 0.4


@pytest.mark.parametrize("probs, outcomes, message", [
    ([0.5, 1.2], [1, 0], r"probs must lie in \[0, 1\]"),
    ([0.5], [1, 0], "one length"),
    ([], [], "non-empty"),
    ([0.5, 0.2], [2, 0], "outcomes must be True/False"),
])
def test_bad_calibration_input_is_named(probs, outcomes, message):
    with pytest.raises(ValueError, match=message):
        calibration(probs, outcomes)


def test_top_predictions_are_the_argmax_and_its_probability():
    model, tok = tiny_char_model(TRAIN)
    ids = torch.tensor(tok.encode(TRAIN))
    confidence, correct = top_predictions(model, ids, batch_size=2)
    assert confidence.shape == correct.shape == (len(ids) - 1,)
    with torch.no_grad():
        probs = torch.cat([F.softmax(model(ids[s:s + 16][None])[0][0], -1)
                           for s in range(0, len(ids) - 1, 16)])[: len(ids) - 1]
    torch.testing.assert_close(confidence, probs.max(-1).values)
    assert torch.equal(correct, probs.argmax(-1) == ids[1:])


def choice_logprob_by_hand(model: GPT, tok: CharTokenizer, context: str, choice: str) -> float:
    """Sum of log-softmax over the choice's characters, one full forward per choice."""
    ids = tok.encode(context + choice)[-(model.config.block_size + 1):]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids[:-1]]))[0][0], dim=-1)
    n = len(choice)
    return sum(logp[len(ids) - 1 - n + i, ids[len(ids) - n + i]].item() for i in range(n))


def test_score_choices_against_log_softmax_by_hand():
    model, tok = tiny_char_model(TRAIN + HELD_OUT)
    context, choices = "abra", ["cadabra", "b", "a car; a bar", "xbba"[1:]]
    by_hand = [choice_logprob_by_hand(model, tok, context, c) for c in choices]
    got = score_choices(model, tok, context, choices, normalize="sum")
    assert got.tolist() == pytest.approx(by_hand, rel=1e-5)
    mean = score_choices(model, tok, context, choices, normalize="mean")
    assert mean.tolist() == pytest.approx([s / len(c) for s, c in zip(by_hand, choices, strict=True)],
                                          rel=1e-5)
    assert torch.equal(score_choices(model, tok, context, choices, normalize="char"), mean)
    # a context longer than block_size loses its start
    long_context = TRAIN
    got = score_choices(model, tok, long_context, ["cab"], normalize="sum")
    assert got.item() == pytest.approx(choice_logprob_by_hand(model, tok, long_context, "cab"),
                                       rel=1e-5)


def test_score_choices_matches_transformers_on_the_exported_model():
    transformers = pytest.importorskip("transformers")
    from minillm_lib.interop import to_hf

    model, tok = tiny_char_model(TRAIN + HELD_OUT, seed=3)
    with torch.no_grad():  # a trained-looking model: far from uniform
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    hf_model = to_hf(model).eval()
    assert isinstance(hf_model, transformers.LlamaForCausalLM)
    context, choices = "a bar, ", ["a car", "abba!", "cadabra"]
    expected = []
    for choice in choices:
        ids = torch.tensor([tok.encode(context + choice)])
        with torch.no_grad():
            logp = torch.log_softmax(hf_model(ids).logits[0, :-1], dim=-1)  # predicts ids[1:]
        targets = ids[0, 1:]
        picked = logp[torch.arange(len(targets)), targets][-len(choice):]
        expected.append(picked.sum().item())
    got = score_choices(model, tok, context, choices, normalize="sum")
    assert got.tolist() == pytest.approx(expected, abs=1e-4)
    assert len({round(v, 2) for v in expected}) == 3  # the choices really differ


def test_score_choices_refuses_what_it_cannot_score():
    model, tok = tiny_char_model(TRAIN)
    with pytest.raises(ValueError, match="context must encode to at least one token"):
        score_choices(model, tok, "", ["abc"])
    with pytest.raises(ValueError, match="longer than the model's block_size 16"):
        score_choices(model, tok, "a", ["a" * 17])
    with pytest.raises(ValueError, match="normalize must be one of"):
        score_choices(model, tok, "a", ["b"], normalize="max")
    with pytest.raises(ValueError, match="at least one character"):
        score_choices(model, tok, "a", ["b", ""])


def test_ngram_scores_choices_like_its_probabilities():
    lm = NGramModel(3).fit(TRAIN)
    context, choices = "abra", ["cad", "a", "bba"]
    got = lm.score_choices(context, choices, normalize="sum")
    for value, choice in zip(got.tolist(), choices, strict=True):
        text = context + choice
        expected = sum(math.log(lm.next_char_probs(text[:t])[text[t]])
                       for t in range(len(context), len(text)))
        assert value == pytest.approx(expected, rel=1e-12)


SCENE = "\n".join(f"Line {i} of the play, spoken {'loud' if i % 3 else 'soft'}ly by the {i % 7}th lord."
                  if i % 5 else f"SPEAKER {i}." for i in range(200))


def test_next_line_task_asks_for_the_true_next_line():
    items = next_line_task(SCENE, 40, seed=1)
    assert items == next_line_task(SCENE, 40, seed=1)  # one seed, one test
    assert items != next_line_task(SCENE, 40, seed=2)
    lines = SCENE.split("\n")
    answers = [item.answer for item in items]
    assert len(set(answers)) > 1  # the right answer is not always in one place
    for item in items:
        assert len(item.choices) == 4 and len(set(item.choices)) == 4
        assert item.context.endswith("\n") and item.context.count("\n") == 4
        assert (item.context + item.choices[item.answer] + "\n") in SCENE + "\n"
        position = lines.index(item.choices[item.answer])
        for choice in item.choices:
            assert choice in lines and len(choice.strip()) >= 20
            if choice != item.choices[item.answer]:
                assert abs(lines.index(choice) - position) > 4


def test_next_line_task_keeps_its_lines_within_max_chars():
    lines = SCENE.split("\n")
    short = [line for line in lines if 20 <= len(line.strip()) and len(line) <= 51]
    assert 20 < len(short) < len([line for line in lines if len(line.strip()) >= 20])
    items = next_line_task(SCENE, 20, max_chars=51, seed=3)
    assert all(choice in short for item in items for choice in item.choices)
    with pytest.raises(ValueError, match="max_chars must be None or an integer >= min_chars"):
        next_line_task(SCENE, 5, max_chars=10)
    with pytest.raises(ValueError, match=r"lines of >= 20 and <= 45 characters"):
        next_line_task(SCENE, 100, max_chars=45)


def test_next_line_task_refuses_a_text_too_short():
    with pytest.raises(ValueError, match="too few for 500 items"):
        next_line_task(SCENE, 500)
    with pytest.raises(ValueError, match="n_choices must be an integer >= 2, got 1"):
        next_line_task(SCENE, 5, n_choices=1)
    with pytest.raises(ValueError, match="the text repeats itself too much"):
        next_line_task("\n".join(["The same line, spoken again and again."] * 50), 5)


def test_wilson_interval_against_the_formula_and_known_values():
    z = 1.959963984540054
    for k, n in [(0, 10), (3, 10), (10, 10), (37, 120), (500, 1000)]:
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        low, high = wilson_interval(k, n)
        assert low == pytest.approx(max(0, centre - half), abs=1e-12)
        assert high == pytest.approx(min(1, centre + half), abs=1e-12)
    # 0 of 10: the upper end is z^2 / (n + z^2) (the "rule of three" region), 0.2775
    assert wilson_interval(0, 10) == pytest.approx((0.0, z**2 / (10 + z**2)))
    low99, high99 = wilson_interval(37, 120, confidence=0.99)
    low95, high95 = wilson_interval(37, 120)
    assert low99 < low95 < 37 / 120 < high95 < high99
    with pytest.raises(ValueError, match="successes=11, n=10"):
        wilson_interval(11, 10)


def test_choice_accuracy_counts_the_argmax_and_gives_the_interval():
    items = [ChoiceItem("a", ("x", "y", "z"), answer) for answer in (0, 1, 2, 2)]
    scores = {0: [0.0, -1.0, -2.0], 1: [0.0, 0.0, -1.0], 2: [-3.0, -2.0, -1.0]}
    calls = iter(range(4))

    def scorer(context, choices):
        i = next(calls)
        return torch.tensor(scores[min(i, 2)])

    result = choice_accuracy(items, scorer)  # right: item 0, not item 1 (tie -> first), 2, 3
    assert (result["correct"], result["n"], result["accuracy"]) == (3, 4, 0.75)
    assert (result["low"], result["high"]) == wilson_interval(3, 4)
    assert result["chance"] == pytest.approx(1 / 3)
