"""LoRA: fine-tune a big model by training two small matrices per layer (chapter 11;
Hu et al., 2022).

A frozen linear layer computes y = x W^T + b with W of shape (out, in). LoRA learns a
correction of low rank r instead of a new W:

    y = x W^T + b + (x A^T B^T) * alpha / r,     A: (r, in),  B: (out, r)

B starts at zero, so the wrapped model starts out *identical* to the original, and only
r * (in + out) numbers per layer are trained instead of in * out. After training,
``merge`` folds the correction into one plain nn.Linear with W' = W + (alpha / r) B A:
no extra cost at inference time.

Typical use::

    names = apply_lora(model, rank=8, alpha=16)   # wraps every c_attn, c_proj, c_fc
    ... train: only the adapters require grad ...
    save_lora(model, "adapter.safetensors")       # a few hundred KB, not the whole model
    merge_lora(model)                             # back to plain nn.Linear layers

Shapes: in = in_features, out = out_features, r = rank, (..., in) = any leading dims.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
import torch.nn as nn
from safetensors.torch import save as safetensors_bytes

from ._checks import is_int, is_number
from .checkpoint import read_safetensors
from .files import atomic_write_bytes

DEFAULT_TARGETS = ("c_attn", "c_proj", "c_fc")  # every Linear in the blocks; never lm_head


def _check_lora_args(rank: int, alpha: float, dropout: float) -> None:
    if not is_int(rank, 1):
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    if not is_number(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
    if not is_number(dropout) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank correction (alpha / r) * B A.

    Args:
        base: the layer to adapt; its weight (and bias) are frozen, not copied.
        rank: r, the rank of the correction (1 <= r; LoRA uses 1 to 64).
        alpha: the correction is scaled by alpha / r, so changing r does not change how
            big the initial updates are (keep alpha fixed and tune the learning rate once).
        dropout: dropout on the adapter's input only (the frozen path never sees it).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        _check_lora_args(rank, alpha, dropout)
        self.base = base.requires_grad_(False)
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        factory = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **factory))   # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))  # (out, r)
        # A random, B zero: the product B A is 0 (the model starts unchanged) but B's
        # gradient, which is proportional to A, is not, so training can move off zero.
        # The bound 1/sqrt(in) is nn.Linear's own initialisation.
        bound = 1.0 / math.sqrt(base.in_features)
        nn.init.uniform_(self.lora_A, -bound, bound)
        self.dropout = nn.Dropout(dropout)

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in) -> (..., out)."""
        # Two thin matmuls, (..., in) -> (..., r) -> (..., out): never build the (out, in) B A.
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., out)
        return self.base(x) + update * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """The correction as a full matrix, (alpha / r) * B A: (out, in)."""
        return (self.lora_B @ self.lora_A) * self.scaling

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A new plain nn.Linear computing the same function: W + (alpha / r) B A, same bias.
        Its parameters are frozen like the base's (merging is for inference)."""
        merged = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                           device=self.base.weight.device, dtype=self.base.weight.dtype)
        merged.weight.copy_(self.base.weight + self.delta_weight())
        if self.base.bias is not None:
            merged.bias.copy_(self.base.bias)
        return merged.requires_grad_(False)

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, scaling={self.scaling:g}"


def weight_owners(model: nn.Module) -> dict[int, list[str]]:
    """id(parameter) -> the names of the modules that hold it directly (2+ = tied).
    Quantization (chapter 12) uses it too, to leave tied layers alone."""
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules():
        for p in module.parameters(recurse=False):
            owners.setdefault(id(p), []).append(name)
    return owners


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule called ``name`` ("transformer.h.0.attn.c_attn") is.
    The layer swap of LoRA, and of quantization in chapter 12."""
    parent_name, _, child_name = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child_name, new)


def _matches(name: str, target: str) -> bool:
    """"c_proj" matches "transformer.h.0.attn.c_proj"; a full dotted name matches itself."""
    return name == target or name.endswith("." + target)


def apply_lora(
    model: nn.Module,
    rank: int = 8,
    alpha: float = 16,
    targets: Sequence[str] = DEFAULT_TARGETS,
    dropout: float = 0.0,
) -> list[str]:
    """Wrap the nn.Linear layers named in ``targets`` in LoRALinear, in place, and freeze
    every other parameter of ``model``. Returns the names of the wrapped layers.

    A target matches a module whose name is the target or ends with "." + target, so
    "c_proj" wraps both the attention and the MLP output projections, and
    "transformer.h.3.mlp.c_fc" wraps just one layer.

    Raises ValueError for a bad rank/alpha/dropout, a target that matches no nn.Linear,
    a layer that already has LoRA, or a layer whose weight is tied to another module
    (GPT's lm_head shares the token embedding: merging a correction into it would untie
    them, and saving a tied model keeps only the embedding). Nothing is changed then.
    """
    _check_lora_args(rank, alpha, dropout)
    if isinstance(targets, str):
        targets = (targets,)  # a single name, not its characters
    if not targets:
        raise ValueError(f"targets must name at least one layer, got {targets!r}")
    modules = dict(model.named_modules())
    chosen = [name for name, m in modules.items() if any(_matches(name, t) for t in targets)]
    linear_names = sorted({name.rpartition(".")[2] for name, m in modules.items()
                           if isinstance(m, nn.Linear) and not name.endswith(".base")})
    unknown = [t for t in targets if not any(_matches(name, t) for name in chosen)]
    if unknown:
        raise ValueError(f"LoRA targets {unknown} match no module of the model; "
                         f"its nn.Linear layers are named {linear_names}")
    owners = weight_owners(model)
    for name in chosen:
        module = modules[name]
        if isinstance(module, LoRALinear):
            raise ValueError(f"{name!r} already has LoRA (apply_lora was called twice?)")
        if not isinstance(module, nn.Linear):
            raise ValueError(f"LoRA target {name!r} is a {type(module).__name__}, not an nn.Linear")
        tied = [other for other in owners[id(module.weight)] if other != name]
        if tied:
            raise ValueError(f"{name!r} shares its weight with {tied} (weight tying): "
                             "LoRA on it would untie them when merged; leave it out of targets")

    model.requires_grad_(False)  # everything frozen; the new A and B below are trainable
    for name in chosen:
        replace_module(model, name, LoRALinear(modules[name], rank, alpha, dropout))
    return chosen


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every LoRALinear in ``model``, by name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> list[str]:
    """Replace every LoRALinear in ``model`` by its merged nn.Linear, in place.
    Returns the merged names; ValueError if there is none. Everything stays frozen
    (``model.requires_grad_(True)`` makes it trainable again)."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRALinear layers to merge (call apply_lora first)")
    for name, layer in layers.items():
        replace_module(model, name, layer.merge())
    return list(layers)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter tensors ("<layer>.lora_A", "<layer>.lora_B"), detached: the small
    part of the model that fine-tuning changed."""
    return {name: t for name, t in model.state_dict().items()
            if name.endswith((".lora_A", ".lora_B"))}


def save_lora(model: nn.Module, path: str | os.PathLike) -> None:
    """Write the adapter tensors to a safetensors file (atomically), with rank and alpha
    of each layer in its metadata."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in lora_state_dict(model).items()}
    if not tensors:
        raise ValueError("the model has no LoRA adapters to save (call apply_lora first)")
    metadata = {name: f"rank={m.rank},alpha={m.alpha}" for name, m in lora_layers(model).items()}
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))


@torch.no_grad()
def load_lora(model: nn.Module, path: str | os.PathLike) -> None:
    """Load adapter tensors saved by ``save_lora`` into a model prepared with the same
    ``apply_lora`` call. Every missing, unexpected or wrongly shaped tensor is listed in
    one ValueError (and nothing is loaded)."""
    tensors = read_safetensors(path)
    expected = lora_state_dict(model)
    problems = [f"missing {name!r}" for name in expected if name not in tensors]
    problems += [f"unexpected {name!r}" for name in tensors if name not in expected]
    problems += [f"{name!r} has shape {tuple(t.shape)}, the model {tuple(expected[name].shape)}"
                 for name, t in tensors.items() if name in expected and t.shape != expected[name].shape]
    if problems:
        raise ValueError(f"adapter {str(path)!r} does not fit the model: " + "; ".join(problems))
    for name, t in tensors.items():
        expected[name].copy_(t)  # state_dict tensors share storage with the parameters


def count_trainable(model: nn.Module) -> int:
    """Number of parameters that require grad (a shared Parameter counts once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
