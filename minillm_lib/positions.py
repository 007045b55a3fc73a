"""Where each token is: learned, sinusoidal and rotary positions (chapter 3).

Attention by itself ignores order: shuffle the tokens and each one gets the same output.
A model learns order only from what these functions add:

- a learned table ``wpe`` (block_size, C) added to the token embeddings (GPT-2; it lives in
  ``model.GPT``);
- ``sinusoidal_positions``: a fixed table of sines and cosines (Vaswani et al., 2017);
- ``rope_cos_sin`` + ``apply_rope``: rotary embeddings (Su et al., 2021), which turn queries
  and keys by an angle proportional to their position (Llama; used in ``attention.py``).

Shapes: T = positions (block_size), C = n_embd, B = batch, H = heads, D = head_dim.
"""

from __future__ import annotations

import torch


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
