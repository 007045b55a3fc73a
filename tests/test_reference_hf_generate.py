"""Our decoding against Hugging Face transformers: greedy generate and the logit processors."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.generation.logits_process import (  # noqa: E402
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from minillm_lib.interop import from_hf  # noqa: E402
from minillm_lib.sampling import (  # noqa: E402
    generate,
    min_p_filter,
    repetition_penalty,
    temperature_scale,
    top_k_filter,
    top_p_filter,
)

VOCAB = 96


def random_hf_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=4,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # larger logits than the default init: clear argmax margins
        model.lm_head.weight.mul_(10)
    return model


def test_greedy_100_tokens_match_transformers_token_for_token():
    hf = random_hf_gpt2()
    ours = from_hf(hf).eval()
    prompt = torch.tensor([[5, 17, 42, 8, 77, 3], [9, 9, 1, 60, 2, 11]])
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=100,
            min_new_tokens=100, do_sample=False, eos_token_id=None, pad_token_id=0,
        )
    got = generate(ours, prompt, 100, temperature=0)
    assert expected.shape == got.shape == (2, 106)
    assert torch.equal(got, expected)


def test_greedy_with_repetition_penalty_matches_transformers():
    hf = random_hf_gpt2(seed=1)
    ours = from_hf(hf).eval()
    prompt = torch.tensor([[4, 8, 15, 16, 23, 42]])
    with torch.no_grad():
        expected = hf.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=40, min_new_tokens=40,
            do_sample=False, repetition_penalty=1.5, eos_token_id=None, pad_token_id=0,
        )
    assert torch.equal(generate(ours, prompt, 40, temperature=0, repetition_penalty=1.5), expected)


@pytest.fixture
def scores():
    # Continuous random logits: no exact ties, so every implementation cuts at the same place.
    return torch.randn(8, VOCAB, generator=torch.Generator().manual_seed(0)) * 3


@pytest.mark.parametrize("temperature", [0.3, 1.0, 1.7])
def test_temperature_matches_transformers(scores, temperature):
    expected = TemperatureLogitsWarper(temperature)(None, scores.clone())
    torch.testing.assert_close(temperature_scale(scores, temperature), expected)


@pytest.mark.parametrize("top_k", [1, 5, 50])
def test_top_k_matches_transformers(scores, top_k):
    expected = TopKLogitsWarper(top_k)(None, scores.clone())
    assert torch.equal(top_k_filter(scores, top_k), expected)


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_matches_transformers(scores, top_p):
    expected = TopPLogitsWarper(top_p)(None, scores.clone())
    assert torch.equal(top_p_filter(scores, top_p), expected)


@pytest.mark.parametrize("min_p", [0.01, 0.1, 0.5])
def test_min_p_matches_transformers(scores, min_p):
    expected = MinPLogitsWarper(min_p)(None, scores.clone())
    assert torch.equal(min_p_filter(scores, min_p), expected)


@pytest.mark.parametrize("penalty", [0.7, 1.3, 2.0])
def test_repetition_penalty_matches_transformers(scores, penalty):
    previous = torch.randint(VOCAB, (8, 20), generator=torch.Generator().manual_seed(1))
    expected = RepetitionPenaltyLogitsProcessor(penalty)(previous, scores.clone())
    assert torch.equal(repetition_penalty(scores, previous, penalty), expected)
