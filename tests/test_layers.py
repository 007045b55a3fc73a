"""Norms and MLPs against torch references and the papers' formulas."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from minillm_lib.config import GPTConfig
from minillm_lib.layers import MLP, LayerNorm, RMSNorm, make_norm


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_formula_and_torch(bias):
    ln = LayerNorm(32, bias=bias, eps=1e-5)
    with torch.no_grad():
        ln.weight.normal_()
        if bias:
            ln.bias.normal_()
    x = torch.randn(3, 5, 32) * 4 + 2
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True, unbiased=False)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * ln.weight + (ln.bias if bias else 0)
    torch.testing.assert_close(ln(x), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ln(x), F.layer_norm(x, (32,), ln.weight, ln.bias, 1e-5))
    assert (ln.bias is None) == (not bias)
    assert len(list(ln.parameters())) == (2 if bias else 1)


def test_rmsnorm_matches_torch_and_formula():
    norm = RMSNorm(48, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    reference = nn.RMSNorm(48, eps=1e-6)
    with torch.no_grad():
        reference.weight.copy_(norm.weight)
    x = torch.randn(2, 7, 48) * 3
    torch.testing.assert_close(norm(x), reference(x))
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)


def test_rmsnorm_keeps_low_precision_dtype():
    x = torch.randn(4, 16).to(torch.bfloat16)
    assert RMSNorm(16).to(torch.bfloat16)(x).dtype == torch.bfloat16


def test_make_norm_follows_config():
    cfg = GPTConfig(vocab_size=10, n_embd=16, n_head=2, norm="rmsnorm", norm_eps=1e-6)
    assert isinstance(make_norm(cfg), RMSNorm) and make_norm(cfg).eps == 1e-6
    cfg = GPTConfig(vocab_size=10, n_embd=16, n_head=2, bias=False)
    norm = make_norm(cfg)
    assert isinstance(norm, LayerNorm) and norm.bias is None


def _identity_mlp(kind: str, n: int = 8) -> MLP:
    """An MLP whose linear layers are identities, so MLP(x) = activation(x)."""
    mlp = MLP(GPTConfig(vocab_size=10, n_embd=n, n_head=1, mlp=kind, mlp_hidden=n, bias=True))
    with torch.no_grad():
        for lin in (mlp.c_fc, mlp.c_proj):
            lin.weight.zero_()
            lin.bias.zero_()
        mlp.c_fc.weight[:n].copy_(torch.eye(n))
        mlp.c_proj.weight.copy_(torch.eye(n))
    return mlp


def test_gelu_tanh_is_gpt2s_tanh_approximation():
    x = torch.linspace(-6, 6, 96).view(12, 8)
    tanh_formula = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(_identity_mlp("gelu_tanh")(x), tanh_formula)
    torch.testing.assert_close(_identity_mlp("gelu_tanh")(x), F.gelu(x, approximate="tanh"))


def test_gelu_and_relu_activations():
    x = torch.linspace(-6, 6, 96).view(12, 8)
    exact_gelu = x * 0.5 * (1 + torch.erf(x / math.sqrt(2)))  # x * Phi(x)
    torch.testing.assert_close(_identity_mlp("gelu")(x), exact_gelu)
    torch.testing.assert_close(_identity_mlp("relu")(x), x.clamp(min=0))


def test_swiglu_is_silu_gate_times_up():
    cfg = GPTConfig(vocab_size=10, n_embd=16, n_head=2, mlp="swiglu", mlp_hidden=24, bias=False)
    mlp = MLP(cfg)
    assert mlp.c_fc.weight.shape == (48, 16) and mlp.c_proj.weight.shape == (16, 24)
    # Shazeer (2020): FFN_SwiGLU(x) = (Swish(x W) * x V) W2, with W = first half of c_fc (the gate).
    W, V = mlp.c_fc.weight[:24], mlp.c_fc.weight[24:]
    x = torch.randn(3, 4, 16)
    gate, up = x @ W.T, x @ V.T
    expected = (gate * torch.sigmoid(gate) * up) @ mlp.c_proj.weight.T
    torch.testing.assert_close(mlp(x), expected)
