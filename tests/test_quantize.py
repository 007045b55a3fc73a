"""Weight-only quantization: error bounds, int4 packing, QuantizedLinear, whole models, memory."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minillm_lib.config import GPTConfig
from minillm_lib.model import GPT
from minillm_lib.quantize import (
    QuantizedLinear,
    dequantize_int4,
    dequantize_int8,
    model_size_bytes,
    pack_int4,
    quantize_int4,
    quantize_int8,
    quantize_model,
    unpack_int4,
)

# Rounding to the nearest level errs by at most half a step. Computing w * (1 / scale) in
# float32 may land a hair past a half-way point, so allow a relative 1e-6 on top.
SLACK = 1 + 1e-6


def weights(out_features: int = 48, in_features: int = 128, seed: int = 0) -> torch.Tensor:
    """Gaussian weights with a few large outliers, like trained ones; row scales vary."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=g) * torch.rand(out_features, 1, generator=g)
    w[torch.rand(w.shape, generator=g) < 0.01] *= 8
    return w


def tiny_gpt(seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=64, bias=True)
    return GPT(GPTConfig.from_preset("baby", **{**cfg, **overrides})).eval()


# ---------------------------------------------------------------- int8


def test_int8_error_is_at_most_half_a_step_per_channel():
    w = weights()
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape and scale.shape == (w.shape[0],)
    torch.testing.assert_close(scale, w.abs().amax(dim=1) / 127, rtol=0, atol=0)
    error = (w - dequantize_int8(q, scale)).abs().amax(dim=1)  # (out,)
    assert torch.all(error <= scale / 2 * SLACK)
    assert torch.all(error > scale / 4)  # the bound is tight-ish: not a loose guarantee
    # Each row's largest weight becomes exactly +-127, and nothing leaves -127..127.
    assert torch.all(q.abs().amax(dim=1) == 127) and q.min() >= -127


def test_int8_dequantize_is_q_times_scale():
    q = torch.tensor([[-127, 0, 5], [1, 2, 127]], dtype=torch.int8)
    scale = torch.tensor([0.5, 0.25])
    expected = torch.tensor([[-63.5, 0.0, 2.5], [0.25, 0.5, 31.75]])
    torch.testing.assert_close(dequantize_int8(q, scale), expected, rtol=0, atol=0)


def test_int8_zero_row_and_exact_values():
    w = torch.zeros(3, 4)
    w[1] = torch.tensor([1.27, -0.5, 0.0, 0.01])
    q, scale = quantize_int8(w)
    assert torch.isfinite(scale).all() and torch.all(q[0] == 0) and torch.all(q[2] == 0)
    assert q[1].tolist() == [127, -50, 0, 1]  # 1.27 / 127 = 0.01 per step
    assert torch.all(dequantize_int8(q, scale)[[0, 2]] == 0)


# ---------------------------------------------------------------- int4 packing


def test_pack_unpack_round_trips_all_16_by_16_pairs():
    low, high = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    pairs = torch.stack((low.flatten(), high.flatten()), dim=1).to(torch.uint8)  # (256, 2)
    packed = pack_int4(pairs)
    assert packed.shape == (256, 1) and packed.dtype == torch.uint8
    assert sorted(packed.flatten().tolist()) == list(range(256))  # every byte value used once
    assert torch.equal(unpack_int4(packed), pairs)


def test_pack_layout_low_nibble_first():
    values = torch.tensor([[1, 2, 15, 0, 0, 15]], dtype=torch.uint8)
    assert pack_int4(values).tolist() == [[0x21, 0x0F, 0xF0]]


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="0..15.*16"):
        pack_int4(torch.tensor([16, 0], dtype=torch.uint8))
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.tensor([1, 2, 3], dtype=torch.uint8))
    with pytest.raises(ValueError, match="int64"):
        pack_int4(torch.tensor([1, 2]))


# ---------------------------------------------------------------- int4 per group


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group_size", [16, 32, 128])
def test_int4_error_is_at_most_half_a_step_per_group(symmetric, group_size):
    w = weights()
    packed, scale, zero_point = quantize_int4(w, group_size, symmetric)
    n_groups = w.shape[1] // group_size
    assert packed.shape == (w.shape[0], w.shape[1] // 2) and packed.dtype == torch.uint8
    assert scale.shape == (w.shape[0], n_groups)
    error = (w - dequantize_int4(packed, scale, zero_point)).abs()
    error = error.view(w.shape[0], n_groups, group_size).amax(dim=-1)  # (out, G)
    assert torch.all(error <= scale / 2 * SLACK)
    if symmetric:
        assert zero_point is None
        torch.testing.assert_close(scale, w.view(48, n_groups, group_size).abs().amax(-1) / 7, rtol=0, atol=0)
        assert unpack_int4(packed).min() >= 1  # -7..7 stored as 1..15; 0 (= -8) unused
    else:
        assert zero_point.shape == (w.shape[0], n_groups) and zero_point.dtype == torch.uint8
        assert zero_point.max() <= 15


def test_int4_asymmetric_keeps_zero_exact_and_uses_all_levels_for_one_sided_groups():
    w = torch.rand(4, 32) + 0.1  # all positive: symmetric int4 wastes the 7 negative levels
    w[:, 5] = 0.0
    packed, scale, zero_point = quantize_int4(w, 32, symmetric=False)
    assert torch.all(zero_point == 0)
    assert torch.all(dequantize_int4(packed, scale, zero_point)[:, 5] == 0)
    err_asym = (w - dequantize_int4(packed, scale, zero_point)).abs().mean()
    err_sym = (w - dequantize_int4(*quantize_int4(w, 32, symmetric=True))).abs().mean()
    assert err_asym < 0.7 * err_sym  # 16 levels over the range instead of 8


def test_smaller_groups_err_less():
    w = weights(seed=1)
    errors = [(w - dequantize_int4(*quantize_int4(w, g))).pow(2).mean() for g in (16, 32, 64, 128)]
    assert errors == sorted(errors) and errors[0] < 0.8 * errors[-1]


def test_int4_bad_group_size_names_the_values():
    with pytest.raises(ValueError, match="group_size 48 does not divide in_features 128"):
        quantize_int4(weights(), group_size=48)
    with pytest.raises(ValueError, match="positive integer, got 0"):
        quantize_int4(weights(), group_size=0)
    with pytest.raises(ValueError, match="in_features must be even, got 5"):
        quantize_int4(torch.randn(4, 5), group_size=5)
    with pytest.raises(ValueError, match=r"2-D float weight.*\(8,\)"):
        quantize_int4(torch.randn(8))
    with pytest.raises(ValueError, match="2-D float weight"):
        quantize_int8(torch.ones(2, 2, dtype=torch.long))


# ---------------------------------------------------------------- QuantizedLinear


@pytest.mark.parametrize("bits, group_size, symmetric", [(8, None, True), (4, 32, True), (4, 64, False)])
def test_quantized_linear_is_f_linear_with_the_dequantized_weight(bits, group_size, symmetric):
    torch.manual_seed(0)
    linear = nn.Linear(128, 48)
    layer = QuantizedLinear(linear, bits=bits, group_size=group_size, symmetric=symmetric)
    if bits == 8:
        w_hat = layer.weight_q.float() * layer.scale[:, None]
    else:  # unpack by hand: low nibble = even column, high nibble = odd column
        nibbles = torch.stack((layer.weight_q & 15, layer.weight_q >> 4), dim=-1).view(48, 128).float()
        zero = 8.0 if symmetric else layer.zero_point.float().repeat_interleave(group_size, dim=1)
        w_hat = (nibbles - zero) * layer.scale.repeat_interleave(group_size, dim=1)
    x = torch.randn(5, 7, 128)
    torch.testing.assert_close(layer.dequantized_weight(), w_hat, rtol=0, atol=0)
    torch.testing.assert_close(layer(x), F.linear(x, w_hat, linear.bias), rtol=0, atol=0)
    # ... and close to the float layer it replaces (int8 much closer than int4).
    relative = (layer(x) - linear(x)).norm() / linear(x).norm()
    assert relative < (0.01 if bits == 8 else 0.15)
    assert not any(True for _ in layer.parameters())  # inference only: buffers, no parameters
    assert f"in_features=128, out_features=48, int{bits}" in repr(layer)


def test_quantized_linear_without_bias_and_bad_arguments():
    layer = QuantizedLinear(nn.Linear(32, 8, bias=False), bits=4, group_size=16)
    assert layer.bias is None and layer(torch.randn(2, 32)).shape == (2, 8)
    with pytest.raises(ValueError, match="bits must be 4 or 8, got 3"):
        QuantizedLinear(nn.Linear(32, 8), bits=3)
    with pytest.raises(ValueError, match="group_size=32 with bits=8"):
        QuantizedLinear(nn.Linear(32, 8), bits=8, group_size=32)
    with pytest.raises(ValueError, match="symmetric=False needs bits=4"):
        QuantizedLinear(nn.Linear(32, 8), bits=8, symmetric=False)
    with pytest.raises(TypeError, match="Embedding"):
        QuantizedLinear(nn.Embedding(8, 32))


# ---------------------------------------------------------------- whole models and memory


def test_quantize_model_replaces_untied_linears_and_stays_close():
    model = tiny_gpt()
    original = copy.deepcopy(model)
    names = quantize_model(model, bits=8)
    assert len(names) == 8 and "lm_head" not in names
    assert all(isinstance(model.get_submodule(n), QuantizedLinear) for n in names)
    assert type(model.lm_head) is nn.Linear and model.lm_head.weight is model.transformer.wte.weight
    assert type(model.transformer.wte) is nn.Embedding
    x = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(1))
    logits, reference = model(x)[0], original(x)[0]
    assert (logits - reference).abs().max() < 0.05 * reference.abs().max()


def test_quantize_model_include_tied_and_errors_leave_model_untouched():
    model = tiny_gpt()
    assert "lm_head" in quantize_model(model, bits=4, group_size=32, include_tied=True)
    assert isinstance(model.lm_head, QuantizedLinear)
    assert isinstance(model.transformer.wte, nn.Embedding)  # the lookup keeps its float matrix

    model = tiny_gpt()
    with pytest.raises(ValueError, match="bits must be 4 or 8, got 16"):
        quantize_model(model, bits=16)
    # c_fc has in_features 64 but c_proj 256: 96 divides neither; the first bad layer is named.
    with pytest.raises(ValueError, match="transformer.h.0.attn.c_attn.*group_size 96 does not divide in_features 64"):
        quantize_model(model, bits=4, group_size=96)
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())
    quantize_model(model, bits=8)
    with pytest.raises(ValueError, match="no \\(untied\\) nn.Linear"):
        quantize_model(model, bits=8)


def test_model_size_counts_each_storage_once():
    model = tiny_gpt()
    unique = {id(p): p for p in model.parameters()}  # tied weight once
    assert model_size_bytes(model) == 4 * sum(p.numel() for p in unique.values()) == 4 * model.num_params()
    untied = tiny_gpt(tie_weights=False)
    assert model_size_bytes(untied) - model_size_bytes(model) == 4 * 40 * 64  # a second (V, C) matrix


@pytest.mark.parametrize("bits, group_size, symmetric, expected", [
    # out * in weights (1 byte or half a byte) + float32 scales (+ uint8 zero points) + float32 bias
    (8, None, True, 48 * 128 + 4 * 48 + 4 * 48),
    (4, 32, True, 48 * 128 // 2 + 4 * 48 * 4 + 4 * 48),
    (4, 32, False, 48 * 128 // 2 + 4 * 48 * 4 + 1 * 48 * 4 + 4 * 48),
    (4, 128, True, 48 * 128 // 2 + 4 * 48 * 1 + 4 * 48),
])
def test_quantized_memory_is_real(bits, group_size, symmetric, expected):
    linear = nn.Linear(128, 48)
    assert model_size_bytes(linear) == 4 * (48 * 128 + 48)
    layer = QuantizedLinear(linear, bits=bits, group_size=group_size, symmetric=symmetric)
    assert model_size_bytes(layer) == expected
