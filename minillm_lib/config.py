"""GPTConfig and the presets: every number that defines a model, and named recipes
(chapter 7 for the model, chapter 8 for the training recipes).

A config is validated when it is built, so a bad combination (say 7 heads for a width
of 128) fails here with a message naming the field, not later inside a matmul.

Named starting points live in ``PRESETS`` as plain dicts you can read and copy::

    cfg = GPTConfig.from_preset("baby", vocab_size=tokenizer.vocab_size)

Beside each model preset, ``TRAIN_PRESETS`` holds its training recipe (the TrainConfig fields
that differ from the defaults): ``training.TrainConfig.from_preset("cpu-5min")``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ._checks import is_int, is_number

POS_ENCODINGS = ("learned", "sinusoidal", "rope", "none")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "gelu_tanh", "relu", "swiglu", "moe")
# Mixture-of-experts defaults (mlp="moe"): Mixtral's 8 experts, 2 per token, and the
# Switch Transformer's balancing-loss coefficient (Fedus et al., 2021).
MOE_DEFAULTS: dict[str, Any] = dict(n_expert=8, n_expert_per_token=2, moe_aux_loss_coef=0.01)

# Presets are plain dicts so a learner can read them at a glance. Those without a
# vocab_size take it from the tokenizer: GPTConfig.from_preset("baby", vocab_size=65).
PRESETS: dict[str, dict[str, Any]] = {
    # nanoGPT's "baby GPT" that trains on a laptop CPU in minutes.
    "baby": dict(
        block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
        pos_encoding="learned", norm="layernorm", mlp="gelu", tie_weights=True,
    ),
    # The 124M-parameter GPT-2 (Radford et al., 2019); loads OpenAI's weights.
    "gpt2": dict(
        vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, dropout=0.0,
        bias=True, pos_encoding="learned", norm="layernorm", mlp="gelu_tanh", tie_weights=True,
    ),
    # GPT-2's recipe at a size a CPU can train (vocab_size from your tokenizer).
    "gpt2-small-cpu": dict(
        block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.0, bias=True,
        pos_encoding="learned", norm="layernorm", mlp="gelu_tanh", tie_weights=True,
    ),
    # The modern (Llama-style) recipe at GPT-2 small's size: RoPE, RMSNorm, SwiGLU,
    # grouped-query attention (12 query heads share 4 key/value heads), no biases.
    "llama": dict(
        block_size=1024, n_layer=12, n_head=12, n_kv_head=4, n_embd=768, dropout=0.0,
        bias=False, pos_encoding="rope", rope_theta=10000.0, norm="rmsnorm", norm_eps=1e-5,
        mlp="swiglu", tie_weights=False,
    ),
    # The recommended CPU preset: the baby's size with the modern parts (RoPE, RMSNorm,
    # SwiGLU, tied embeddings). With its training recipe, TRAIN_PRESETS["cpu-5min"], it won the
    # equal-wall-time recipe search on 2 CPU threads (benchmarks/bench_recipes.py, chapter 8);
    # it is the course model's shape (zoo.RECIPES).
    "cpu-5min": dict(
        block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
        pos_encoding="rope", rope_theta=10000.0, norm="rmsnorm", norm_eps=1e-5, mlp="swiglu",
        tie_weights=True,
    ),
    # The same recipe at the baby GPT's size, for side-by-side CPU experiments.
    "baby-llama": dict(
        block_size=64, n_layer=4, n_head=4, n_kv_head=2, n_embd=128, dropout=0.0,
        bias=False, pos_encoding="rope", rope_theta=10000.0, norm="rmsnorm", norm_eps=1e-5,
        mlp="swiglu", tie_weights=False,
    ),
}


# Training recipes for the model presets above that have one of their own: plain dicts of the
# training.TrainConfig fields that differ from its defaults (nanoGPT's baby recipe).
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    "baby": {},
    # The winner of the recipe search (benchmarks/bench_recipes.py): Muon for the blocks'
    # matrices at twice AdamW's best peak lr, warm-up 2% of the steps, cosine to lr / 10.
    # 6,000 steps take about 5 minutes on 2 CPU threads (~47 ms a step).
    "cpu-5min": dict(batch_size=12, max_iters=6000, lr=4e-3, min_lr=4e-4, warmup_iters=120,
                     optimizer="muon"),
}


def swiglu_hidden(n_embd: int, multiple_of: int = 8) -> int:
    """Default SwiGLU width: 2/3 of 4*n_embd (same parameter count as a 4x GELU MLP,
    because SwiGLU has three matrices instead of two), rounded up to a multiple of 8
    as Llama does (with 256) for friendlier matmul shapes. n_embd=768 -> 2048."""
    hidden = int(8 * n_embd / 3)
    return multiple_of * math.ceil(hidden / multiple_of)


@dataclass
class GPTConfig:
    """Shape and recipe of a GPT. ``n_kv_head`` and ``mlp_hidden`` may be given as None
    and are filled in by ``__post_init__`` (n_head, and 4*n_embd or ``swiglu_hidden``).

    The four ``moe`` fields belong to ``mlp="moe"`` (a mixture of SwiGLU experts, each
    ``mlp_hidden`` wide: chapter "Mixture of experts", ``moe.py``). With another MLP they
    stay None; with "moe", None gets ``MOE_DEFAULTS`` (capacity None: no token dropped).
    """

    vocab_size: int | None = None  # required: comes from the tokenizer
    block_size: int = 1024         # longest sequence (context length) the model sees
    n_layer: int = 12
    n_head: int = 12               # query heads
    n_kv_head: int | None = None   # key/value heads: n_head = MHA, 1 = MQA, between = GQA
    n_embd: int = 768              # residual stream width C
    dropout: float = 0.0
    bias: bool = True              # biases in Linear layers and LayerNorm
    pos_encoding: str = "learned"  # "learned" | "sinusoidal" | "rope" | "none"
    rope_theta: float = 10000.0    # RoPE base; only used with pos_encoding="rope"
    norm: str = "layernorm"        # "layernorm" | "rmsnorm"
    norm_eps: float = 1e-5
    mlp: str = "gelu"              # "gelu" | "gelu_tanh" | "relu" | "swiglu" | "moe"
    mlp_hidden: int | None = None  # MLP inner width (of each expert, with "moe")
    tie_weights: bool = True       # lm_head shares the token embedding matrix
    n_expert: int | None = None    # "moe": experts per layer
    n_expert_per_token: int | None = None  # "moe": experts each token is sent to (top-k)
    moe_capacity_factor: float | None = None  # "moe": tokens an expert takes per batch, as a
    #   multiple of an even share (None = no limit; else those over it are dropped in training)
    moe_aux_loss_coef: float | None = None  # "moe": weight of the load-balancing loss

    def __post_init__(self) -> None:
        if self.vocab_size is None:
            raise ValueError(
                "vocab_size is required (got None): pass your tokenizer's vocab_size, "
                "e.g. GPTConfig.from_preset('baby', vocab_size=tok.vocab_size)"
            )
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.mlp_hidden is None:
            gated = self.mlp in ("swiglu", "moe")
            self.mlp_hidden = swiglu_hidden(self.n_embd) if gated else 4 * self.n_embd
        if self.mlp == "moe":
            for name, value in MOE_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        self._validate()

    def _validate(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "mlp_hidden"):
            value = getattr(self, name)
            if not is_int(value, 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if not is_number(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name, options in (("pos_encoding", POS_ENCODINGS), ("norm", NORMS), ("mlp", MLPS)):
            if getattr(self, name) not in options:
                raise ValueError(f"{name} must be one of {list(options)}, got {getattr(self, name)!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets n_embd // n_head channels"
            )
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(
                f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.n_kv_head}): "
                "each key/value head serves the same number of query heads"
            )
        self._validate_moe()
        if self.pos_encoding == "rope" and self.head_dim % 2 != 0:
            raise ValueError(
                f"head size n_embd // n_head = {self.head_dim} must be even with "
                "pos_encoding='rope': RoPE rotates channels in pairs"
            )

    def _validate_moe(self) -> None:
        moe_fields = ("n_expert", "n_expert_per_token", "moe_capacity_factor", "moe_aux_loss_coef")
        if self.mlp != "moe":
            for name in moe_fields:
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}={getattr(self, name)!r} needs mlp='moe' "
                                     f"(this config has mlp={self.mlp!r}); leave it None")
            return
        if not is_int(self.n_expert, 1):
            raise ValueError(f"n_expert must be a positive integer, got {self.n_expert!r}")
        if not is_int(self.n_expert_per_token, 1, self.n_expert):
            raise ValueError(f"n_expert_per_token must be an integer in 1..n_expert "
                             f"({self.n_expert}), got {self.n_expert_per_token!r}")
        capacity = self.moe_capacity_factor
        if capacity is not None and (not is_number(capacity) or capacity <= 0):
            raise ValueError(f"moe_capacity_factor must be a positive number or None "
                             f"(no limit), got {capacity!r}")
        if not is_number(self.moe_aux_loss_coef) or self.moe_aux_loss_coef < 0:
            raise ValueError(f"moe_aux_loss_coef must be a number >= 0, "
                             f"got {self.moe_aux_loss_coef!r}")

    @property
    def head_dim(self) -> int:
        """Channels per attention head, n_embd // n_head."""
        return self.n_embd // self.n_head

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """Build a config from ``PRESETS[name]``, replacing any field with ``overrides``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        """Inverse of ``to_dict``; unknown keys are an error rather than silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**d)
