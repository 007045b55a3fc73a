"""Our quantizers against PyTorch's own: the observers of torch.ao.quantization choose the
scales and zero points, torch.quantize_per_channel rounds. Same integers, same scales.

Group-wise int4 is per-channel quantization of the weight cut into groups: reshaping
(out, in) to (out * G, group_size) turns every group into a "channel" for PyTorch.
"""

import pytest
import torch

from minillm_lib.quantize import dequantize_int8, quantize_int4, quantize_int8, unpack_int4

observer = pytest.importorskip("torch.ao.quantization.observer")
if not hasattr(torch, "quantize_per_channel"):
    pytest.skip("this torch has no torch.quantize_per_channel", allow_module_level=True)

# PyTorch deprecates its quantized tensor types (in favour of torchao); they still compute.
pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor, torch.quantize_per_channel")


def weights(out_features: int, in_features: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=g) * torch.rand(out_features, 1, generator=g)
    w[0] = 0.0  # an all-zero row: both must avoid dividing by zero the same way
    w[1] = w[1].abs()  # one-sided rows: the asymmetric zero point moves
    w[2] = -w[2].abs()
    return w


def torch_per_channel(w: torch.Tensor, qscheme, dtype, quant_min: int, quant_max: int):
    """(integers, scales, zero points) as PyTorch's per-channel observer + quantizer make them."""
    obs = observer.PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=qscheme,
                                            quant_min=quant_min, quant_max=quant_max)
    obs(w)
    scale, zero_point = obs.calculate_qparams()
    q = torch.quantize_per_channel(w, scale, zero_point, 0, dtype)
    return q, scale, zero_point


@pytest.mark.parametrize("seed", range(8))
def test_int8_per_channel_matches_torch(seed):
    # Big enough that w / scale and w * (1 / scale) round differently somewhere (seeds 4-6):
    # PyTorch multiplies by the reciprocal, and so must we for the very same integers.
    w = weights(512, 1024, seed)
    q_ref, scale_ref, zero_ref = torch_per_channel(w, torch.per_channel_symmetric, torch.qint8, -127, 127)
    q, scale = quantize_int8(w)
    assert torch.all(zero_ref == 0)
    torch.testing.assert_close(scale, scale_ref, rtol=0, atol=0)
    assert torch.equal(q, q_ref.int_repr())
    torch.testing.assert_close(dequantize_int8(q, scale), q_ref.dequantize(), rtol=0, atol=0)


@pytest.mark.parametrize("group_size", [32, 128])
def test_int4_symmetric_groups_match_torch(group_size):
    w = weights(64, 256, seed=7)
    groups = w.reshape(-1, group_size)  # (out * G, group_size): one "channel" per group
    q_ref, scale_ref, _ = torch_per_channel(groups, torch.per_channel_symmetric, torch.qint8, -7, 7)
    packed, scale, zero_point = quantize_int4(w, group_size, symmetric=True)
    assert zero_point is None
    torch.testing.assert_close(scale.flatten(), scale_ref, rtol=0, atol=0)
    stored = unpack_int4(packed).to(torch.int64) - 8  # undo the offset: back to -7..7
    assert torch.equal(stored.reshape(-1, group_size), q_ref.int_repr().to(torch.int64))


@pytest.mark.parametrize("group_size", [32, 128])
def test_int4_asymmetric_groups_match_torch(group_size):
    w = weights(64, 256, seed=8)
    groups = w.reshape(-1, group_size)
    q_ref, scale_ref, zero_ref = torch_per_channel(groups, torch.per_channel_affine, torch.quint8, 0, 15)
    packed, scale, zero_point = quantize_int4(w, group_size, symmetric=False)
    torch.testing.assert_close(scale.flatten(), scale_ref, rtol=0, atol=0)
    assert torch.equal(zero_point.flatten().to(torch.int64), zero_ref.to(torch.int64))
    # quint8 clamps to 0..255, our 4 bits to 0..15 (a value may round to 16 at the top).
    expected = q_ref.int_repr().to(torch.int64).clamp(0, 15)
    assert torch.equal(unpack_int4(packed).to(torch.int64).reshape(-1, group_size), expected)
