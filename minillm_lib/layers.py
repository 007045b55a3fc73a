"""The small parts of a transformer block: norms and the MLP (chapter 6).

``Block`` (in ``model.py``) wraps attention and the MLP between two norms; this module holds
those norms (``LayerNorm``, ``RMSNorm``) and the position-wise feed-forward ``MLP``.
Positions are in ``positions.py`` (chapter 3), attention in ``attention.py`` (chapters 4-5).

Shapes: B = batch, T = time (sequence length), C = n_embd.
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

    ``kind`` overrides config.mlp: the experts of ``mlp="moe"`` (``moe.py``) are "swiglu" MLPs.
    """

    def __init__(self, config: GPTConfig, kind: str | None = None) -> None:
        super().__init__()
        self.kind = kind or config.mlp
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
