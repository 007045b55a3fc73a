"""GPT: a decoder-only transformer, from GPT-2 to Llama-style, in one readable module
(``Block``: chapter 6; ``GPT``: chapter 7).

Layer names follow GPT-2 (transformer.wte, transformer.h[i].attn.c_attn, ...), so
checkpoints map onto Hugging Face's models one tensor at a time (see interop.py).

This module imports only the layers below it (config, positions, layers, attention, moe).
Saving and loading live in ``checkpoint.py``, Hugging Face in ``interop.py`` and sampling in
``sampling.py``; each of them imports this module, never the other way round.

Shapes: B = batch, T = sequence length, C = n_embd, V = vocab_size.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import CausalSelfAttention, KVCache
from .config import GPTConfig
from .layers import MLP, make_norm
from .moe import MoE, moe_layers
from .positions import rope_cos_sin, sinusoidal_positions


class Block(nn.Module):
    """One transformer layer, pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x)).

    Normalising the input of each sub-layer (not its output, as in the 2017 paper)
    keeps a clean residual path from embedding to output, which trains stably.
    """

    def __init__(self, config: GPTConfig, layer_idx: int = 0) -> None:
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = make_norm(config)
        self.mlp = MoE(config) if config.mlp == "moe" else MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x: (B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln_1(x), rope, kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """Token embedding -> n_layer Blocks -> final norm -> lm_head (logits over the vocabulary).

    With ``mlp="moe"`` each forward also sets ``aux_loss``: the routers' load-balancing loss,
    averaged over the layers (``moe.load_balancing_loss``); None for a dense model.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.aux_loss: torch.Tensor | None = None
        C = config.n_embd
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, C),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
            ln_f=make_norm(config),
        ))
        if config.pos_encoding == "learned":
            self.transformer.wpe = nn.Embedding(config.block_size, C)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        if config.tie_weights:
            # Weight tying (Press & Wolf, 2017): reading a token in and writing it out
            # use the same (V, C) matrix, saving V*C parameters.
            self.lm_head.weight = self.transformer.wte.weight

        # Fixed tables are computed once; persistent=False keeps them out of checkpoints.
        if config.pos_encoding == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_positions(config.block_size, C), persistent=False)
        if config.pos_encoding == "rope":
            cos, sin = rope_cos_sin(config.block_size, config.head_dim, config.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, head_dim)
            self.register_buffer("rope_sin", sin, persistent=False)

        self.apply(self._init_weights)
        # GPT-2: each residual projection is scaled by 1/sqrt(2 * n_layer), because every
        # block adds two of them to the residual stream and its variance grows with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2 initialisation: N(0, 0.02) weights, zero biases (norms keep ones/zeros)."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx: (B, T) token ids -> (logits (B, T, V), loss or None).

        targets: (B, T) next-token ids; -100 marks positions left out of the loss.
        kv_cache: idx holds only the NEW tokens; their positions start at kv_cache.seq_len.
        In training mode an MoE model's loss adds moe_aux_loss_coef * self.aux_loss; in eval
        mode the loss is the cross-entropy alone (what ``evaluate`` reports).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, T) token ids, got shape {tuple(idx.shape)}; "
                             "for one sequence use idx[None]")
        B, T = idx.shape
        start = 0 if kv_cache is None else kv_cache.seq_len
        if start + T > self.config.block_size:
            where = f"{start} cached + {T} new tokens" if kv_cache is not None else f"sequence length {T}"
            raise ValueError(
                f"{where} exceeds block_size {self.config.block_size}: crop the context "
                "to the last block_size tokens"
            )
        if kv_cache is not None:
            kv_cache.check_room(T)  # the cache may hold fewer than block_size tokens
            if kv_cache.batch_size != B:
                raise ValueError(f"batch size {B} does not match the KV cache's "
                                 f"batch size {kv_cache.batch_size}")

        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        pos_encoding = self.config.pos_encoding
        if pos_encoding == "learned":
            x = x + self.transformer.wpe.weight[start:start + T]  # (T, C) broadcasts over B
        elif pos_encoding == "sinusoidal":
            x = x + self.pos_table[start:start + T]
        elif pos_encoding == "rope":  # applied to q and k inside attention instead
            rope = (self.rope_cos[start:start + T], self.rope_sin[start:start + T])
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, rope, kv_cache)
        x = self.transformer.ln_f(x)
        if kv_cache is not None:
            kv_cache.advance(T)
        logits = self.lm_head(x)  # (B, T, V)

        moe = moe_layers(self) if self.config.mlp == "moe" else []
        self.aux_loss = torch.stack([m.aux_loss for m in moe]).mean() if moe else None

        loss = None
        if targets is not None:
            # Flatten (B, T, V) -> (B*T, V): cross-entropy wants one row per prediction.
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
            if self.aux_loss is not None and self.training:
                loss = loss + self.config.moe_aux_loss_coef * self.aux_loss
        return logits, loss

    def new_kv_cache(
        self,
        batch_size: int,
        *,
        capacity: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences, holding up to ``capacity`` tokens
        (default block_size; pass less to save memory with long-context models).
        Device and dtype default to the model's."""
        cfg = self.config
        capacity = cfg.block_size if capacity is None else capacity
        if not 0 < capacity <= cfg.block_size:
            raise ValueError(f"capacity must be in 1..block_size ({cfg.block_size}), got {capacity}")
        weight = self.transformer.wte.weight
        return KVCache(
            cfg.n_layer, batch_size, cfg.n_kv_head, capacity, cfg.head_dim,
            device=device or weight.device, dtype=dtype or weight.dtype,
        )

    @property
    def explicit_attention(self) -> bool:
        """True: every layer computes softmax(QK^T/sqrt(D))V by hand (slower, keeps weights)."""
        return self.transformer.h[0].attn.explicit

    @explicit_attention.setter
    def explicit_attention(self, value: bool) -> None:
        for block in self.transformer.h:
            block.attn.explicit = value

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Attention weights of every layer and head for idx (B, T): (n_layer, B, n_head, T, T).
        Runs the explicit path once; call model.eval() first to avoid dropout noise."""
        was_explicit = self.explicit_attention
        self.explicit_attention = True
        try:
            self(idx)
            maps = torch.stack([block.attn.att for block in self.transformer.h])
        finally:
            self.explicit_attention = was_explicit
            for block in self.transformer.h:
                block.attn.att = None  # free (B, H, T, T) per layer
        return maps

    def num_params(self, non_embedding: bool = False, active: bool = False) -> int:
        """Parameter count (a tied matrix counts once).

        non_embedding=True leaves out the lookup tables (wpe, and wte unless it is tied to
        lm_head, whose matmul every token pays for): the N of the scaling-law papers.
        active=True counts only the parameters one token uses: in an MoE layer, k of the E
        experts (the same as the full count for a dense model).
        """
        n = sum(p.numel() for p in self.parameters())
        if active:
            n -= sum(m.inactive_params() for m in moe_layers(self))
        if non_embedding:
            if self.config.pos_encoding == "learned":
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_weights:
                n -= self.transformer.wte.weight.numel()
        return n

    def flops_per_token(self) -> int:
        """Estimated training FLOPs (forward + backward) per token at full context.

        6N for the weight matmuls (2 per multiply-add, x3 for the backward pass; Kaplan
        et al., 2020; N counts only the experts a token uses, in an MoE) plus 12 * n_layer * n_head * head_dim * block_size for QK^T and
        att @ V (PaLM, Chowdhery et al., 2022, appendix B). Norms, softmax and the
        causal mask's savings are ignored: an estimate for MFU, not a count.
        """
        cfg = self.config
        attention = 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * cfg.block_size
        return 6 * self.num_params(non_embedding=True, active=True) + attention

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on."""
        return self.transformer.wte.weight.device

    def generate(self, idx: torch.Tensor, max_new_tokens: int, **options: Any) -> torch.Tensor:
        """Continue each prompt in idx (B, T) by up to ``max_new_tokens`` tokens: the same
        as ``minillm_lib.generate(model, idx, max_new_tokens, **options)`` (options:
        temperature, top_k, top_p, min_p, repetition_penalty, eos_id, generator, use_cache)."""
        from .sampling import generate  # sampling builds on the model, not the other way round

        return generate(self, idx, max_new_tokens, **options)
