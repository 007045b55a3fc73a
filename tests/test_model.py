"""GPT: forward/loss, KV-cache decoding, limits, init, tying, counts, attention maps."""

import math

import pytest
import torch
import torch.nn.functional as F

from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT

V = 37


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def small_gpt(**overrides) -> GPT:
    fields = dict(vocab_size=V, block_size=16, n_layer=2, n_head=4, n_embd=32, bias=True)
    return GPT(GPTConfig(**{**fields, **overrides})).eval()


def test_forward_shapes_and_loss_is_optional():
    model = small_gpt()
    idx = torch.randint(0, V, (3, 10))
    logits, loss = model(idx)
    assert logits.shape == (3, 10, V) and loss is None
    _, loss = model(idx, idx)
    assert loss.ndim == 0
    # An untrained model predicts roughly uniformly: loss near ln(V).
    assert abs(loss.item() - math.log(V)) < 0.5


def test_loss_ignores_minus_100_targets():
    model = small_gpt()
    idx = torch.randint(0, V, (2, 12))
    targets = torch.randint(0, V, (2, 12))
    targets[0, :5] = -100
    targets[1, 9:] = -100
    logits, loss = model(idx, targets)
    keep = targets != -100
    expected = F.cross_entropy(logits[keep], targets[keep])  # only the kept positions, plain mean
    torch.testing.assert_close(loss, expected)


CACHE_CASES = [
    dict(pos_encoding="learned"),
    dict(pos_encoding="sinusoidal"),
    dict(pos_encoding="none"),
    dict(pos_encoding="rope", norm="rmsnorm", mlp="swiglu", bias=False),
    dict(pos_encoding="rope", n_kv_head=2),
    dict(pos_encoding="rope", n_kv_head=1, mlp="swiglu"),
    dict(pos_encoding="learned", n_kv_head=1),
]


@pytest.mark.parametrize("overrides", CACHE_CASES, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_kv_cache_decoding_matches_full_forward(overrides):
    model = small_gpt(**overrides)
    idx = torch.randint(0, V, (2, 16))
    with torch.no_grad():
        for length in (1, 7, 16):  # up to block_size
            full, _ = model(idx[:, :length])
            # One token at a time.
            cache = model.new_kv_cache(2)
            steps = torch.cat([model(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(length)], dim=1)
            torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
            assert cache.seq_len == length
            # Prefill a prompt, then single steps, then a multi-token chunk.
            cache.reset()
            prefill = max(1, length // 2)
            pieces = [model(idx[:, :prefill], kv_cache=cache)[0]]
            t = prefill
            while t < length:
                n = 1 if t < prefill + 2 else length - t
                pieces.append(model(idx[:, t:t + n], kv_cache=cache)[0])
                t += n
            torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_new_kv_cache_shape():
    model = small_gpt(n_kv_head=2)
    cache = model.new_kv_cache(3)
    assert cache.k[0].shape == (3, 2, 16, 8) and len(cache.k) == 2
    assert cache.capacity == 16
    assert model.new_kv_cache(1, dtype=torch.float64).k[0].dtype == torch.float64


def test_smaller_cache_capacity():
    model = small_gpt()
    cache = model.new_kv_cache(1, capacity=8)
    assert cache.k[0].shape == (1, 4, 8, 8)
    with torch.no_grad():
        model(torch.zeros(1, 8, dtype=torch.long), kv_cache=cache)
        with pytest.raises(ValueError, match="capacity 8"):
            model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match=r"capacity must be in 1..block_size \(16\), got 17"):
        model.new_kv_cache(1, capacity=17)


def test_cache_decoding_under_bf16_autocast():
    model = small_gpt(pos_encoding="rope", n_kv_head=2)
    idx = torch.randint(0, V, (1, 10))
    cache = model.new_kv_cache(1)  # float32 buffers, bf16 activations
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        full, _ = model(idx)
        steps = torch.cat([model(idx[:, :6], kv_cache=cache)[0]]
                          + [model(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(6, 10)], dim=1)
    torch.testing.assert_close(steps.float(), full.float(), atol=0.1, rtol=0.05)


def test_too_long_sequence_is_a_clear_error():
    model = small_gpt()
    with pytest.raises(ValueError, match="sequence length 17 exceeds block_size 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


def test_one_dimensional_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"idx must be \(B, T\) token ids, got shape \(5,\)"):
        small_gpt()(torch.zeros(5, dtype=torch.long))


def test_cache_past_block_size_is_a_clear_error():
    model = small_gpt()
    cache = model.new_kv_cache(1)
    with torch.no_grad():
        model(torch.zeros(1, 14, dtype=torch.long), kv_cache=cache)
        model(torch.zeros(1, 2, dtype=torch.long), kv_cache=cache)
        with pytest.raises(ValueError, match="16 cached \\+ 1 new tokens exceeds block_size 16"):
            model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache)
    assert cache.seq_len == 16  # the failed call stored nothing


def test_cache_batch_size_mismatch_is_a_clear_error():
    model = small_gpt()
    with pytest.raises(ValueError, match="batch size 2 does not match the KV cache's batch size 1"):
        model(torch.zeros(2, 3, dtype=torch.long), kv_cache=model.new_kv_cache(1))


def test_gpt2_initialisation():
    model = GPT(GPTConfig(vocab_size=2000, block_size=64, n_layer=8, n_head=4, n_embd=256, bias=True))
    std = 0.02
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert p.std().item() == pytest.approx(std / math.sqrt(2 * 8), rel=0.05), name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert p.std().item() == pytest.approx(std, rel=0.05), name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
        elif "ln_" in name:
            assert torch.all(p == 1), name


def test_weight_tying_on_and_off():
    tied, untied = small_gpt(tie_weights=True), small_gpt(tie_weights=False)
    assert tied.lm_head.weight is tied.transformer.wte.weight
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert untied.num_params() - tied.num_params() == V * 32


def test_num_params_by_hand():
    C, T, L = 128, 64, 4
    model = GPT(GPTConfig.from_preset("baby", vocab_size=65))  # no biases, tied, learned positions
    per_block = 2 * C + C * 3 * C + C * C + C * 4 * C + 4 * C * C  # ln_1, ln_2, c_attn, c_proj, c_fc, c_proj
    assert model.num_params() == 65 * C + T * C + L * per_block + C
    assert model.num_params(non_embedding=True) == 65 * C + L * per_block + C  # tied wte still used by lm_head

    model = small_gpt(pos_encoding="rope", norm="rmsnorm", mlp="swiglu", mlp_hidden=40, n_kv_head=2,
                      bias=False, tie_weights=False)
    C, D = 32, 8
    per_block = 2 * C + C * (4 + 2 * 2) * D + C * C + C * 2 * 40 + 40 * C
    assert model.num_params() == 2 * V * C + 2 * per_block + C
    assert model.num_params(non_embedding=True) == V * C + 2 * per_block + C


def test_flops_per_token_estimate():
    model = GPT(GPTConfig.from_preset("baby", vocab_size=65))
    N = model.num_params(non_embedding=True)
    # PaLM appendix B: 6N + 12 * L * H * Q * T.
    assert model.flops_per_token() == 6 * N + 12 * 4 * 4 * 32 * 64


@pytest.mark.parametrize("n_kv_head", [4, 1])
def test_explicit_and_fast_paths_give_the_same_logits(n_kv_head):
    model = small_gpt(n_kv_head=n_kv_head, pos_encoding="rope")
    idx = torch.randint(0, V, (2, 16))
    with torch.no_grad():
        fast, _ = model(idx)
        model.explicit_attention = True
        assert all(block.attn.explicit for block in model.transformer.h)
        explicit, _ = model(idx)
        model.explicit_attention = False
    torch.testing.assert_close(explicit, fast, atol=1e-5, rtol=1e-5)


def test_attention_maps():
    model = small_gpt(n_kv_head=2)
    maps = model.attention_maps(torch.randint(0, V, (3, 9)))
    assert maps.shape == (2, 3, 4, 9, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 3, 4, 9))
    assert torch.all(maps.triu(diagonal=1) == 0)
    assert model.explicit_attention is False  # restored
    assert all(block.attn.att is None for block in model.transformer.h)  # memory released


def test_dropout_is_active_only_in_training():
    model = small_gpt(dropout=0.3)
    idx = torch.randint(0, V, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], model(idx)[0])
        model.train()
        assert not torch.allclose(model(idx)[0], model(idx)[0])


def test_a_few_steps_overfit_one_batch():
    model = small_gpt(pos_encoding="rope", n_kv_head=2).train()
    idx = torch.randint(0, V, (4, 16))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        _, loss = model(x, y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
