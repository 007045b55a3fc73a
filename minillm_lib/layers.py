"""The small building blocks of a transformer: norms, MLPs and positional encodings.

Shapes: B = batch, T = time (sequence length), C = n_embd, H = heads, D = head_dim.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GPTConfig


class LayerNorm(nn.Module):
    """LayerNorm (Ba et al., 2016) with an optional bias (PyTorch's ``nn.LayerNorm``
    always has one; GPT-2 uses it, nanoGPT's ``bias=False`` drops it).

    y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias, over the last dim.
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., C) -> (..., C)."""
        # One fused kernel computes the formula above (faster than writing it out).
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich, 2019), used by Llama: rescale only, no centring, no bias.

    y = x / sqrt(mean(x^2) + eps) * weight, over the last dim.
    """

    def __init__(self, ndim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., C) -> (..., C)."""
        # Compute the statistic in float32 (as Llama does) so bf16 inputs stay accurate.
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def make_norm(config: GPTConfig) -> nn.Module:
    """The norm layer the config asks for (width n_embd)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd, eps=config.norm_eps)
    return LayerNorm(config.n_embd, bias=config.bias, eps=config.norm_eps)


class MLP(nn.Module):
    """Position-wise feed-forward network: C -> hidden -> C.

    - "gelu" / "gelu_tanh" / "relu": c_fc (C -> hidden), activation, c_proj (hidden -> C).
      "gelu_tanh" is GPT-2's tanh approximation of GELU (HF calls it "gelu_new").
    - "swiglu" (Shazeer, 2020; Llama): c_fc computes gate and up together (C -> 2*hidden),
      then c_proj(silu(gate) * up). The gate is the FIRST half of c_fc's output.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.kind = config.mlp
        hidden = config.mlp_hidden
        fc_out = 2 * hidden if self.kind == "swiglu" else hidden
        self.c_fc = nn.Linear(config.n_embd, fc_out, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        h = self.c_fc(x)  # (B, T, hidden) or (B, T, 2*hidden) for swiglu
        if self.kind == "swiglu":
            gate, up = h.chunk(2, dim=-1)  # 2 x (B, T, hidden)
            h = F.silu(gate) * up
        elif self.kind == "gelu_tanh":
            h = F.gelu(h, approximate="tanh")
        elif self.kind == "gelu":
            h = F.gelu(h)
        else:
            h = F.relu(h)
        return self.dropout(self.c_proj(h))


def sinusoidal_positions(block_size: int, n_embd: int, base: float = 10000.0) -> torch.Tensor:
    """Fixed sinusoidal position table of Vaswani et al. (2017), shape (T, C) = (block_size, n_embd).

    PE[pos, 2i] = sin(pos / base^(2i / C)),  PE[pos, 2i+1] = cos(pos / base^(2i / C)).
    """
    pos = torch.arange(block_size, dtype=torch.float32)[:, None]           # (T, 1)
    two_i = torch.arange(0, n_embd, 2, dtype=torch.float32)                # (ceil(C/2),)
    angle = pos / base ** (two_i / n_embd)                                  # (T, ceil(C/2))
    table = torch.zeros(block_size, n_embd + n_embd % 2)                    # even width, trimmed below
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle)
    return table[:, :n_embd]                                                # (T, C)


def rope_cos_sin(block_size: int, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding tables (Su et al., 2021), each (T, D) = (block_size, head_dim).

    Channel pair (j, j + D/2) of a head is rotated by the angle pos * theta^(-2j/D): the
    "half-split" layout of Hugging Face's Llama, so its q/k weights load unchanged.
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (D/2,)
    angle = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)             # (T, D/2)
    angle = torch.cat((angle, angle), dim=-1)                                                # (T, D)
    return angle.cos(), angle.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dim: a 90 degree turn of each pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys by their position.

    x: (B, H, T, D); cos, sin: (T, D) for the positions of x's T tokens. Returns (B, H, T, D).
    Because rotations compose, q_m . k_n after RoPE depends only on the offset m - n.
    """
    # Match x's dtype (as HF does) so bf16 activations under autocast stay bf16.
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin

