"""Weight-only quantization from scratch (chapter 12): int8 per output channel, int4 per group.

A weight matrix W (out, in) in float32 costs 4 bytes a number. Quantization stores small
integers q and a few float scales instead, and rebuilds W ~ (q - zero_point) * scale when
it is needed:

- **int8, per channel, symmetric (absmax)**: each row (output channel) gets one scale,
  max|row| / 127, and q = round(w / scale) in -127..127. 1 byte a weight.
- **int4, per group**: each run of ``group_size`` consecutive weights in a row gets its
  own scale, so one large weight only coarsens its own group. Symmetric: q in -7..7,
  scale = max|group| / 7. Asymmetric: q in 0..15 with a zero point per group, so a
  lopsided group (all positive, say) uses all 16 levels. Two 4-bit values are packed into
  one uint8 byte, so the weights really take half a byte each (plus the scales).

``QuantizedLinear`` keeps only the packed integers and scales and dequantizes the weight
on the fly in every forward. That saves memory, not time: without special int8/int4
matmul kernels the extra dequantize step makes it *slower* than a float32 nn.Linear on a
CPU. Quantization pays off where moving the weights costs more than the arithmetic:
decoding one token at a time with a big model on a GPU or a phone (Dettmers et al., 2022).

Only the weights are quantized; activations, norms and embeddings stay in float.
Shapes: out = out_features, in = in_features, G = in // group_size groups per row.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import is_int
from .lora import replace_module, weight_owners

INT8_MAX = 127     # symmetric int8 uses -127..127 (not -128, so that -q is always valid)
INT4_SYM_MAX = 7   # symmetric int4 uses -7..7, stored with an offset of 8 as 1..15
INT4_LEVELS = 15   # asymmetric int4 uses 0..15
BITS = (4, 8)
DEFAULT_GROUP_SIZE = 64  # int4 group size when none is given


def _check_weight(w: torch.Tensor) -> None:
    if not isinstance(w, torch.Tensor) or w.ndim != 2 or not w.is_floating_point():
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"expected a 2-D float weight (out_features, in_features), got {shape}")


def _min_scale(dtype: torch.dtype) -> float:
    """Smallest scale allowed: an all-zero row or group would otherwise divide by 0.
    (The machine epsilon, as PyTorch's quantization observers use.)"""
    return torch.finfo(dtype).eps


# ---------------------------------------------------------------- int8, per channel


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax quantization, one scale per output channel (row).

    w: (out, in) float -> q: (out, in) int8 in -127..127, scale: (out,) in w's dtype,
    with ``w ~ q * scale[:, None]`` and ``|w - q * scale| <= scale / 2`` (rounding to nearest).
    """
    _check_weight(w)
    scale = (w.abs().amax(dim=1) / INT8_MAX).clamp(min=_min_scale(w.dtype))  # (out,)
    # One division per row, then a multiplication per weight (as PyTorch's kernels do).
    q = torch.round(w * (1.0 / scale)[:, None]).clamp(-INT8_MAX, INT8_MAX)  # (out, in)
    return q.to(torch.int8), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q: (out, in) int8, scale: (out,) -> w: (out, in) in scale's dtype."""
    return q.to(scale.dtype) * scale[:, None]


# ---------------------------------------------------------------- int4, per group


def pack_int4(nibbles: torch.Tensor) -> torch.Tensor:
    """Pack pairs of 4-bit values (uint8 in 0..15) into bytes: (..., n) -> (..., n // 2).

    Byte j holds value 2j in its low 4 bits and value 2j + 1 in its high 4 bits.
    """
    if nibbles.dtype != torch.uint8 or nibbles.size(-1) % 2 != 0:
        raise ValueError(f"pack_int4 needs uint8 values with an even last dimension, "
                         f"got dtype {nibbles.dtype} and shape {tuple(nibbles.shape)}")
    if nibbles.numel() and int(nibbles.max()) > 15:
        raise ValueError(f"pack_int4 values must be in 0..15, got a maximum of {int(nibbles.max())}")
    return nibbles[..., 0::2] | (nibbles[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_int4: (..., m) uint8 -> (..., 2m) uint8 values in 0..15."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack((low, high), dim=-1).flatten(-2)  # (..., m, 2) -> (..., 2m)


def _check_group_size(in_features: int, group_size: int) -> None:
    if not is_int(group_size, 1):
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    if in_features % group_size != 0:
        raise ValueError(f"group_size {group_size} does not divide in_features {in_features}: "
                         "every group must be full")
    if in_features % 2 != 0:
        raise ValueError(f"int4 packs two values per byte: in_features must be even, got {in_features}")


def quantize_int4(
    w: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE, symmetric: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Group-wise 4-bit quantization of w (out, in), packed two values per byte.

    Returns (packed, scale, zero_point)::

        packed: (out, in // 2) uint8, two stored 4-bit values per byte (see pack_int4);
        scale: (out, G) in w's dtype, one per group of ``group_size`` weights in a row;
        zero_point: (out, G) uint8 in 0..15 (asymmetric), or None (symmetric: q is
            stored as q + 8, a fixed zero point of 8).

    Either way w ~ (stored - zero_point) * scale, with an error <= scale / 2.
    """
    _check_weight(w)
    out_features, in_features = w.shape
    _check_group_size(in_features, group_size)
    groups = w.reshape(out_features, in_features // group_size, group_size)  # (out, G, group_size)
    eps = _min_scale(w.dtype)
    if symmetric:
        scale = (groups.abs().amax(dim=-1) / INT4_SYM_MAX).clamp(min=eps)  # (out, G)
        q = torch.round(groups * (1.0 / scale)[..., None]).clamp(-INT4_SYM_MAX, INT4_SYM_MAX)
        stored = q + (INT4_SYM_MAX + 1)  # -7..7 -> 1..15
        zero_point = None
    else:
        # The range always includes 0, so a weight of exactly 0 stays exactly 0.
        w_min = groups.amin(dim=-1).clamp(max=0)  # (out, G)
        w_max = groups.amax(dim=-1).clamp(min=0)
        scale = ((w_max - w_min) / INT4_LEVELS).clamp(min=eps)
        zero = torch.round(-w_min / scale).clamp(0, INT4_LEVELS)  # the level that means 0.0
        stored = (torch.round(groups * (1.0 / scale)[..., None]) + zero[..., None]).clamp(0, INT4_LEVELS)
        zero_point = zero.to(torch.uint8)
    nibbles = stored.to(torch.uint8).reshape(out_features, in_features)  # (out, G, gs) -> (out, in)
    return pack_int4(nibbles), scale, zero_point


def dequantize_int4(
    packed: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None
) -> torch.Tensor:
    """Inverse of quantize_int4: packed (out, in // 2), scale (out, G), zero_point
    (out, G) or None -> w (out, in) in scale's dtype. The group size is in // G."""
    nibbles = unpack_int4(packed)  # (out, in)
    out_features, in_features = nibbles.shape
    n_groups = scale.size(1)
    groups = nibbles.view(out_features, n_groups, in_features // n_groups).to(scale.dtype)  # (out, G, gs)
    zero = INT4_SYM_MAX + 1 if zero_point is None else zero_point.to(scale.dtype)[..., None]
    return ((groups - zero) * scale[..., None]).reshape(out_features, in_features)


# ---------------------------------------------------------------- a quantized layer


def _check_scheme(bits: int, group_size: int | None, symmetric: bool) -> None:
    if not is_int(bits) or bits not in BITS:
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    if bits == 8 and group_size is not None:
        raise ValueError(f"int8 uses one scale per output channel: group_size applies to bits=4 "
                         f"only, got group_size={group_size!r} with bits=8")
    if bits == 8 and not symmetric:
        raise ValueError("int8 quantization here is symmetric (absmax): symmetric=False needs bits=4")


class QuantizedLinear(nn.Module):
    """Inference-only stand-in for an nn.Linear that stores its weight in int8 or int4.

    Built from a trained layer: ``QuantizedLinear(linear, bits=4, group_size=32)``.
    Buffers (they move with .to() and appear in state_dict, but are not trained)::

        weight_q: int8 (out, in) for bits=8; packed uint8 (out, in // 2) for bits=4;
        scale: (out,) for bits=8, (out, G) for bits=4;
        zero_point: (out, G) uint8, only for asymmetric int4;
        bias: the float bias, unchanged (or None).

    Each forward dequantizes the whole weight and calls F.linear: exactly the output of a
    Linear holding the dequantized weight, at the cost of the dequantize step.
    """

    def __init__(self, linear: nn.Linear, bits: int = 8, group_size: int | None = None,
                 symmetric: bool = True) -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"QuantizedLinear quantizes an nn.Linear, got {type(linear).__name__}")
        _check_scheme(bits, group_size, symmetric)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bits = bits
        self.group_size = group_size if bits == 8 else (group_size or DEFAULT_GROUP_SIZE)
        self.symmetric = symmetric
        weight = linear.weight.detach()
        zero_point = None
        if bits == 8:
            weight_q, scale = quantize_int8(weight)
        else:
            weight_q, scale, zero_point = quantize_int4(weight, self.group_size, symmetric)
        self.register_buffer("weight_q", weight_q)
        self.register_buffer("scale", scale)
        self.register_buffer("zero_point", zero_point)
        bias = linear.bias.detach().clone() if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The weight this layer computes with: (out, in), in the scales' dtype."""
        if self.bits == 8:
            return dequantize_int8(self.weight_q, self.scale)
        return dequantize_int4(self.weight_q, self.scale, self.zero_point)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., in) -> (..., out)."""
        return F.linear(x, self.dequantized_weight().to(x.dtype), self.bias)

    def extra_repr(self) -> str:
        kind = "int8 per channel" if self.bits == 8 else (
            f"int4 groups of {self.group_size}, {'symmetric' if self.symmetric else 'asymmetric'}")
        return f"in_features={self.in_features}, out_features={self.out_features}, {kind}"


def quantize_model(
    model: nn.Module,
    bits: int = 8,
    group_size: int | None = None,
    symmetric: bool = True,
    include_tied: bool = False,
) -> list[str]:
    """Replace every nn.Linear of ``model`` by a QuantizedLinear, in place; return their names.

    Args:
        bits: 8 (per channel) or 4 (per group of ``group_size``, default
            DEFAULT_GROUP_SIZE = 64).
        include_tied: also quantize a Linear whose weight is shared with another module.
            By default GPT's lm_head, tied to the token embedding, stays float: the
            embedding lookup needs the float matrix anyway, so a quantized lm_head would
            be an extra copy (smaller, but added to the float one rather than replacing it).

    Embeddings and norms are never quantized. Everything is checked (bits, group sizes
    of every layer) before the first layer is replaced.
    """
    _check_scheme(bits, group_size, symmetric)
    owners = weight_owners(model)  # id(parameter) -> the modules holding it
    chosen = [name for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and (include_tied or len(owners[id(m.weight)]) == 1)]
    if not chosen:
        raise ValueError("the model has no (untied) nn.Linear layers to quantize")
    if bits == 4:
        for name in chosen:
            try:
                _check_group_size(model.get_submodule(name).in_features, group_size or DEFAULT_GROUP_SIZE)
            except ValueError as err:
                raise ValueError(f"cannot quantize {name!r}: {err}") from None
    for name in chosen:
        linear = model.get_submodule(name)
        replace_module(model, name, QuantizedLinear(linear, bits, group_size, symmetric))
    return chosen


def model_size_bytes(model: nn.Module) -> int:
    """Bytes of memory held by the model's parameters and buffers, each storage counted
    once (a tied weight is one matrix; packed int4 is half a byte per weight)."""
    storages: dict[int, int] = {}
    for t in [*model.parameters(), *model.buffers()]:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())
