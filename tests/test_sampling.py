"""Tests for minillm_lib.sampling: logit filters on hand-made distributions, generate, stream."""

import math

import pytest
import torch

from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.sampling import (
    SamplingOptions,
    generate,
    min_p_filter,
    repetition_penalty,
    stream,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)

INF = float("inf")


def kept(logits: torch.Tensor) -> list[int]:
    """Token ids a filter left alive (finite logit), for a 1-D logits vector."""
    return torch.isfinite(logits).nonzero().flatten().tolist()


def logits_of(probs: list[float]) -> torch.Tensor:
    return torch.tensor(probs).log()


def tiny_model(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
    return GPT(GPTConfig.from_preset("baby", **{**cfg, **overrides})).eval()


# ---------------------------------------------------------------- filters


def test_temperature_divides_logits_and_zero_keeps_only_the_first_argmax():
    logits = torch.tensor([1.0, 3.0, 3.0, -2.0])
    assert torch.equal(temperature_scale(logits, 2.0), logits / 2)
    assert torch.equal(temperature_scale(logits, 1.0), logits)
    assert kept(temperature_scale(logits, 0.0)) == [1]  # tie between 1 and 2: the first wins
    # Lower temperature sharpens: the top token's probability grows.
    p_hot = temperature_scale(logits, 2.0).softmax(-1)[1]
    p_cold = temperature_scale(logits, 0.5).softmax(-1)[1]
    assert p_cold > p_hot


def test_top_k_keeps_the_k_largest():
    logits = torch.tensor([1.0, 4.0, 2.0, 3.0, 0.5])
    assert kept(top_k_filter(logits, 2)) == [1, 3]
    assert kept(top_k_filter(logits, 1)) == [1]
    out = top_k_filter(logits, 3)
    assert torch.equal(out[[1, 2, 3]], logits[[1, 2, 3]])  # survivors keep their logits
    assert kept(top_k_filter(logits, 5)) == [0, 1, 2, 3, 4]
    assert kept(top_k_filter(logits, 100)) == [0, 1, 2, 3, 4]  # k > V keeps everything


def test_top_k_keeps_every_token_tied_with_the_kth():
    logits = torch.tensor([2.0, 1.0, 2.0, 2.0, 0.0])
    assert kept(top_k_filter(logits, 1)) == [0, 2, 3]
    assert kept(top_k_filter(logits, 4)) == [0, 1, 2, 3]


def test_top_k_works_row_by_row():
    logits = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    out = top_k_filter(logits, 1)
    assert kept(out[0]) == [2] and kept(out[1]) == [0]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = logits_of([0.1, 0.5, 0.3, 0.1])  # sorted: token 1 (0.5), 2 (0.3), then 0 and 3
    assert kept(top_p_filter(logits, 0.4)) == [1]        # 0.5 alone reaches 0.4
    assert kept(top_p_filter(logits, 0.7)) == [1, 2]     # 0.5 + 0.3 = 0.8 >= 0.7
    assert kept(top_p_filter(logits, 0.85)) == [0, 1, 2]  # needs a third token; tie -> lower id
    assert kept(top_p_filter(logits, 0.95)) == [0, 1, 2, 3]


def test_top_p_always_keeps_at_least_the_top_token():
    logits = logits_of([0.02, 0.9, 0.08])
    assert kept(top_p_filter(logits, 1e-6)) == [1]


def test_top_p_cuts_ties_by_token_id_whatever_their_position():
    uniform = torch.zeros(4)
    assert kept(top_p_filter(uniform, 0.5)) == [0, 1]
    assert kept(top_p_filter(uniform, 0.6)) == [0, 1, 2]
    logits = logits_of([0.1, 0.3, 0.3, 0.3])  # the tie is among tokens 1, 2, 3
    assert kept(top_p_filter(logits, 0.5)) == [1, 2]


def test_top_p_one_keeps_everything_even_tiny_tails():
    logits = torch.tensor([0.0, -40.0, -45.0, 30.0])  # tail probabilities below float32's epsilon
    assert torch.equal(top_p_filter(logits, 1.0), logits)


def test_top_p_leaves_kept_logits_and_input_unchanged():
    logits = logits_of([0.6, 0.3, 0.1])
    before = logits.clone()
    out = top_p_filter(logits, 0.8)
    assert torch.equal(logits, before)
    assert torch.equal(out[:2], logits[:2]) and out[2] == -INF


def test_min_p_keeps_tokens_above_a_fraction_of_the_top_probability():
    logits = logits_of([0.5, 0.3, 0.15, 0.05])
    assert kept(min_p_filter(logits, 0.25)) == [0, 1, 2]  # threshold 0.125
    assert kept(min_p_filter(logits, 0.5)) == [0, 1]      # threshold 0.25
    assert kept(min_p_filter(logits, 1.0)) == [0]
    assert kept(min_p_filter(logits, 0.05)) == [0, 1, 2, 3]
    # The cut scales with confidence: a flat distribution keeps all at the same min_p.
    assert kept(min_p_filter(torch.zeros(4), 0.5)) == [0, 1, 2, 3]


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    previous = torch.tensor([[0, 1, 1]])  # token 1 seen twice: penalised once
    out = repetition_penalty(logits, previous, 2.0)
    assert torch.equal(out, torch.tensor([[1.0, -4.0, 1.0, 0.5]]))
    # Either way a seen token loses probability relative to unseen ones.
    assert out.softmax(-1)[0, 0] < logits.softmax(-1)[0, 0]
    assert torch.equal(repetition_penalty(logits, previous, 1.0), logits)
    # A penalty below 1 rewards repetition instead.
    assert torch.equal(repetition_penalty(logits, previous, 0.5), torch.tensor([[4.0, -1.0, 1.0, 0.5]]))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: temperature_scale(x, -0.5), "temperature.*-0.5"),
        (lambda x: temperature_scale(x, math.nan), "temperature.*nan"),
        (lambda x: top_k_filter(x, 0), "top_k.*0"),
        (lambda x: top_k_filter(x, 2.5), "top_k.*2.5"),
        (lambda x: top_p_filter(x, 0.0), "top_p.*0.0"),
        (lambda x: top_p_filter(x, 1.5), "top_p.*1.5"),
        (lambda x: min_p_filter(x, 0.0), "min_p.*0.0"),
        (lambda x: min_p_filter(x, 2.0), "min_p.*2.0"),
        (lambda x: repetition_penalty(x, torch.tensor([0]), 0.0), "repetition_penalty.*0.0"),
        (lambda x: repetition_penalty(x, torch.tensor([0]), -1.0), "repetition_penalty.*-1.0"),
    ],
)
def test_bad_filter_values_raise_value_errors_naming_them(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.zeros(5))


# ---------------------------------------------------------------- generate and stream


@pytest.mark.parametrize(
    "option, value",
    [("temperature", -1.0), ("top_k", 0), ("top_p", 1.01), ("min_p", -0.1), ("repetition_penalty", 0.0)],
)
def test_generate_and_stream_reject_bad_options_before_running(option, value):
    model = tiny_model()
    idx = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=option):
        generate(model, idx, 5, **{option: value})
    with pytest.raises(ValueError, match=option):
        stream(model, idx, 5, **{option: value})  # at the call, not at the first token


def test_generate_rejects_bad_prompts():
    model = tiny_model()
    with pytest.raises(ValueError, match="idx"):
        generate(model, torch.zeros(3, dtype=torch.long), 5)  # not (B, T)
    with pytest.raises(ValueError, match="idx"):
        generate(model, torch.zeros(1, 3), 5)  # float ids
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="shape"):
        stream(model, torch.zeros(2, 3, dtype=torch.long), 5)


def test_generate_appends_max_new_tokens_after_the_prompt():
    model = tiny_model()
    idx = torch.randint(32, (3, 4), generator=torch.Generator().manual_seed(0))
    out = generate(model, idx, 7, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 11)
    assert torch.equal(out[:, :4], idx)
    assert ((out >= 0) & (out < 32)).all()
    assert torch.equal(generate(model, idx, 0), idx)


def test_greedy_picks_the_argmax_of_the_model_at_every_step():
    model = tiny_model()
    idx = torch.tensor([[3, 1, 4]])
    out = generate(model, idx, 5, temperature=0)
    with torch.no_grad():
        for t in range(3, 8):
            logits, _ = model(out[:, :t])
            assert out[0, t] == logits[0, -1].argmax()


def test_sampling_is_reproducible_with_a_generator():
    model = tiny_model()
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])
    options = dict(temperature=1.3, top_k=20, top_p=0.95, min_p=0.01, repetition_penalty=1.2)
    a = generate(model, idx, 30, generator=torch.Generator().manual_seed(7), **options)
    b = generate(model, idx, 30, generator=torch.Generator().manual_seed(7), **options)
    c = generate(model, idx, 30, generator=torch.Generator().manual_seed(8), **options)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_filters_that_keep_one_token_sample_like_greedy():
    model = tiny_model()
    idx = torch.tensor([[5, 6, 7]])
    greedy = generate(model, idx, 12, temperature=0)
    for option in (dict(top_k=1), dict(top_p=1e-6), dict(min_p=1.0)):
        sampled = generate(model, idx, 12, temperature=1.0, generator=torch.Generator().manual_seed(0), **option)
        assert torch.equal(sampled, greedy), option


def test_sampling_follows_the_model_distribution():
    # One step from one prompt, many times: the counts match the model's probabilities.
    model = tiny_model()
    idx = torch.tensor([[1, 2]]).expand(4000, 2)
    with torch.no_grad():
        probs = model(idx[:1])[0][0, -1].softmax(-1)
    out = generate(model, idx, 1, temperature=1.0, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(out[:, -1], minlength=32).float() / 4000
    assert (freq - probs).abs().max() < 0.03


def test_stream_yields_the_tokens_generate_returns():
    model = tiny_model()
    idx = torch.tensor([[9, 8, 7]])
    expected = generate(model, idx, 20, top_k=10, generator=torch.Generator().manual_seed(3))
    streamed = list(stream(model, idx, 20, top_k=10, generator=torch.Generator().manual_seed(3)))
    assert all(isinstance(t, int) for t in streamed)
    assert streamed == expected[0, 3:].tolist()


def test_generation_stops_at_eos_and_pads_finished_rows():
    model = tiny_model()
    idx = torch.tensor([[1, 2, 3], [20, 21, 22]])
    free = generate(model, idx, 12, temperature=0)  # no eos: the reference continuation
    eos = int(free[0, 3 + 4])  # row 0 produces this token at its fifth step
    stops = []
    for row in free[:, 3:]:
        hits = (row == eos).nonzero().flatten()
        stops.append(int(hits[0]) + 1 if len(hits) else 12)
    out = generate(model, idx, 12, temperature=0, eos_id=eos)
    assert out.shape[1] == 3 + max(stops)
    for row, stop in enumerate(stops):
        assert torch.equal(out[row, : 3 + stop], free[row, : 3 + stop])
        assert (out[row, 3 + stop :] == eos).all()
    streamed = list(stream(model, idx[:1], 12, temperature=0, eos_id=eos))
    assert streamed == free[0, 3 : 3 + stops[0]].tolist() and streamed[-1] == eos


@pytest.mark.parametrize("pos_encoding", ["learned", "sinusoidal", "rope"])
def test_kv_cache_gives_the_same_tokens_as_recomputing(pos_encoding):
    model = tiny_model(pos_encoding=pos_encoding)
    idx = torch.randint(32, (2, 5), generator=torch.Generator().manual_seed(1))
    # 5 + 25 tokens > block_size 16: also covers the steps after the cache is full.
    greedy_cached = generate(model, idx, 25, temperature=0, use_cache=True)
    greedy_plain = generate(model, idx, 25, temperature=0, use_cache=False)
    assert torch.equal(greedy_cached, greedy_plain)
    sampled = [generate(model, idx, 25, top_p=0.9, generator=torch.Generator().manual_seed(2), use_cache=c)
               for c in (True, False)]
    assert torch.equal(*sampled)


def test_after_block_size_each_step_sees_the_last_block_size_tokens():
    model = tiny_model()
    idx = torch.randint(32, (1, 10), generator=torch.Generator().manual_seed(4))
    out = generate(model, idx, 20, temperature=0)
    with torch.no_grad():
        for t in (16, 20, 29):  # positions beyond block_size 16
            logits, _ = model(out[:, t - 16 : t])
            assert out[0, t] == logits[0, -1].argmax()


def test_prompts_longer_than_block_size_are_cropped_to_the_last_block_size_tokens():
    model = tiny_model()
    long_prompt = torch.randint(32, (2, 40), generator=torch.Generator().manual_seed(5))
    out = generate(model, long_prompt, 6, temperature=0)
    cropped = generate(model, long_prompt[:, -16:], 6, temperature=0)
    assert out.shape == (2, 46)
    assert torch.equal(out[:, :40], long_prompt)  # the prompt comes back whole
    assert torch.equal(out[:, 40:], cropped[:, 16:])


def test_sampling_runs_without_dropout_and_restores_training_mode():
    model = tiny_model(dropout=0.5).train()
    idx = torch.tensor([[1, 2, 3]])
    a = generate(model, idx, 10, temperature=0)
    b = generate(model, idx, 10, temperature=0)
    assert model.training
    assert torch.equal(a, b)
    assert torch.equal(a, generate(model.eval(), idx, 10, temperature=0))


def test_generate_applies_the_repetition_penalty_to_everything_seen_so_far():
    model = tiny_model(seed=3)
    idx = torch.tensor([[1, 2, 3]])
    out = generate(model, idx, 8, temperature=0, repetition_penalty=3.0)
    with torch.no_grad():
        for t in range(3, 11):
            logits, _ = model(out[:, :t])
            expected = repetition_penalty(logits[:, -1], out[:, :t], 3.0).argmax()
            assert out[0, t] == expected
    assert not torch.equal(out, generate(model, idx, 8, temperature=0))


# ---------------------------------------------------------------- one set of options


def test_gpt_generate_is_the_library_generate():
    model = tiny_model()
    idx = torch.tensor([[1, 2, 3]])
    options = dict(temperature=0.9, top_k=5, top_p=0.8)
    a = model.generate(idx, 12, generator=torch.Generator().manual_seed(4), **options)
    b = generate(model, idx, 12, generator=torch.Generator().manual_seed(4), **options)
    assert torch.equal(a, b) and a.shape == (1, 15)


def test_generate_and_stream_take_the_same_options():
    model = tiny_model()
    idx = torch.tensor([[5, 6]])
    options = dict(temperature=1.2, min_p=0.05, repetition_penalty=1.3)
    streamed = list(stream(model, idx, 10, generator=torch.Generator().manual_seed(2), **options))
    generated = generate(model, idx, 10, generator=torch.Generator().manual_seed(2), **options)
    assert streamed == generated[0, 2:].tolist()


@pytest.mark.parametrize("call", [generate, stream])
def test_an_unknown_option_is_named(call):
    with pytest.raises(ValueError, match=r"unknown sampling option\(s\) \['topk'\]"):
        call(tiny_model(), torch.tensor([[1]]), 3, topk=5)


def test_sampling_options_are_checked_once_when_built():
    assert SamplingOptions().temperature == 1.0 and SamplingOptions().use_cache
    with pytest.raises(ValueError, match="top_p must be in"):
        SamplingOptions(top_p=1.5)


def test_filter_logits_is_the_chain_next_token_samples_from():
    torch.manual_seed(0)
    logits = torch.randn(2, 40) * 3
    previous = torch.tensor([[1, 2, 2, 7], [0, 39, 5, 5]])
    options = SamplingOptions(temperature=0.7, top_k=12, top_p=0.8, min_p=0.05, repetition_penalty=1.4)
    by_hand = min_p_filter(top_p_filter(top_k_filter(temperature_scale(
        repetition_penalty(logits, previous, 1.4), 0.7), 12), 0.8), 0.05)
    assert torch.equal(options.filter_logits(logits, previous), by_hand)
    # next_token draws from the softmax of exactly these logits: the same generator, the same draw
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    sampled = SamplingOptions(temperature=0.7, top_k=12, top_p=0.8, min_p=0.05, repetition_penalty=1.4,
                              generator=g1).next_token(logits, previous)
    expected = torch.multinomial(torch.softmax(by_hand, dim=-1), 1, generator=g2)
    assert torch.equal(sampled, expected)
    # temperature 0: only the most likely token after the penalty is left, and next_token takes it
    greedy = SamplingOptions(temperature=0, repetition_penalty=1.4)
    left = greedy.filter_logits(logits, previous)
    assert (torch.isfinite(left).sum(-1) == 1).all()
    assert torch.equal(left.argmax(-1, keepdim=True), greedy.next_token(logits, previous))
