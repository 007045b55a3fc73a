"""Causal self-attention (chapters 4-5: multi-head, grouped-query, multi-query) and the KV
cache (chapter 10).

The KV cache has three pieces, one per file, that work together:

- ``KVCache`` (here): the buffers, one (B, Hkv, capacity, D) pair per layer;
- ``CausalSelfAttention.forward`` (here): writes the new tokens' keys/values into the cache
  and attends over everything cached so far;
- ``GPT.new_kv_cache`` and ``GPT.forward(..., kv_cache=)`` (``model.py``): size the cache and
  place new tokens after the cached ones; ``sampling.generate`` drives the loop.

Shapes: B = batch, T = new tokens, S = all tokens attended to (past + new), C = n_embd,
H = n_head query heads, Hkv = n_kv_head key/value heads, D = head_dim = C // H.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GPTConfig
from .positions import apply_rope


class KVCache:
    """Keys and values of the tokens seen so far, so generation computes each token once.

    Buffers are allocated up front, one (B, Hkv, capacity, D) pair per layer, and new
    entries are written in place: no concatenation (and no reallocation) per step.
    The model writes every layer at positions [seq_len, seq_len + T), then calls
    ``advance(T)``. Made by ``GPT.new_kv_cache``, filled by ``CausalSelfAttention.forward``,
    driven token by token by ``sampling.generate``.
    """

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        capacity: int,
        head_dim: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (batch_size, n_kv_head, capacity, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.seq_len = 0  # tokens stored so far

    @property
    def capacity(self) -> int:
        """Most tokens the cache can hold (the model's block_size)."""
        return self.k[0].size(2)

    @property
    def batch_size(self) -> int:
        return self.k[0].size(0)

    def check_room(self, n_new: int) -> None:
        """Raise ValueError if ``n_new`` more tokens would not fit."""
        if self.seq_len + n_new > self.capacity:
            raise ValueError(
                f"KV cache is full: {self.seq_len} cached + {n_new} new tokens = "
                f"{self.seq_len + n_new} > capacity {self.capacity} (block_size); "
                "reset() the cache and re-run a cropped context"
            )

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store new keys/values (B, Hkv, T, D) of ``layer``; return all of them so far,
        (B, Hkv, seq_len + T, D) each (views into the buffers, no copy)."""
        end = self.seq_len + k.size(2)
        self.k[layer][:, :, self.seq_len:end] = k
        self.v[layer][:, :, self.seq_len:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n_new: int) -> None:
        """Mark ``n_new`` tokens as stored (called once per forward, after every layer)."""
        self.seq_len += n_new

    def reset(self) -> None:
        """Forget everything (the buffers are reused, not freed)."""
        self.seq_len = 0


def causal_mask(T: int, S: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, S) bool mask, True = may attend. The T new tokens sit at the END of the S
    positions (the first S - T are cached), so query i may see keys 0 .. S - T + i."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with grouped-query attention (GQA).

    ``c_attn`` projects to H query heads and Hkv key/value heads in one matmul; each
    key/value head is shared by H // Hkv query heads (Hkv = H: classic multi-head,
    Hkv = 1: multi-query). Two interchangeable paths compute the same thing:

    - explicit (``self.explicit = True``): softmax(Q K^T / sqrt(D) + mask) V written out,
      keeping the attention weights in ``self.att`` (B, H, T, S) for plots;
    - fast (default): PyTorch's fused ``scaled_dot_product_attention``.
    """

    def __init__(self, config: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_kv_head = config.n_kv_head
        self.head_dim = config.head_dim
        self.layer_idx = layer_idx  # which KV-cache slot is ours
        qkv_dim = (config.n_head + 2 * config.n_kv_head) * config.head_dim
        self.c_attn = nn.Linear(config.n_embd, qkv_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.explicit = False
        self.att: torch.Tensor | None = None  # (B, H, T, S) from the last explicit forward

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C). ``rope``: (cos, sin), each (T, D), for these T
        positions. With ``kv_cache`` the keys/values of earlier tokens come from the cache."""
        B, T, C = x.shape
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([H * D, Hkv * D, Hkv * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)    # (B, H, T, D)
        k = k.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, Hkv, S, D), S = past + T
            if k.dtype != q.dtype:  # under autocast q may be bf16, the cache float32
                k, v = k.to(q.dtype), v.to(q.dtype)

        if self.explicit:
            y = self._explicit_attention(q, k, v)
        else:
            S = k.size(2)
            # No past tokens: the ordinary causal triangle. One new token: it may see
            # everything. Several new tokens after a cache: an offset triangle.
            mask = None if S == T or T == 1 else causal_mask(T, S, x.device)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=S == T,
                dropout_p=self.dropout if self.training else 0.0,
                enable_gqa=Hkv != H,
            )  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, H, T, D) -> (B, T, H*D = C)
        return self.resid_dropout(self.c_proj(y))

    def _explicit_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, H, T, D); k, v: (B, Hkv, S, D) -> (B, H, T, D). Saves weights in self.att."""
        T, S = q.size(2), k.size(2)
        if self.n_kv_head != self.n_head:
            # Query head h uses key/value head h // (H // Hkv): repeat each kv head in place.
            n_rep = self.n_head // self.n_kv_head
            k = k.repeat_interleave(n_rep, dim=1)  # (B, H, S, D)
            v = v.repeat_interleave(n_rep, dim=1)  # (B, H, S, D)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, T, S)
        att = att.masked_fill(~causal_mask(T, S, q.device), float("-inf"))
        att = F.softmax(att, dim=-1)
        self.att = att.detach()
        return self.attn_dropout(att) @ v  # (B, H, T, S) @ (B, H, S, D) -> (B, H, T, D)
