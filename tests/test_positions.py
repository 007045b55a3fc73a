"""Positional encodings against the papers' formulas: sinusoidal (Vaswani et al.) and RoPE."""

import math

import pytest
import torch

from minillm_lib.positions import apply_rope, rope_cos_sin, sinusoidal_positions


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_sinusoidal_positions_follow_vaswani_et_al():
    C = 16
    pe = sinusoidal_positions(50, C)
    assert pe.shape == (50, C)
    # Position 0: sin(0) = 0 on even channels, cos(0) = 1 on odd ones.
    assert torch.equal(pe[0, 0::2], torch.zeros(C // 2)) and torch.equal(pe[0, 1::2], torch.ones(C // 2))
    for pos, i in [(1, 0), (5, 2), (49, 7), (17, 3)]:
        angle = pos / 10000 ** (2 * i / C)
        assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_positions(8, 7).shape == (8, 7)  # odd widths are trimmed, not rejected


def test_rope_tables_shape_and_frequencies():
    cos, sin = rope_cos_sin(32, 8, theta=10000.0)
    assert cos.shape == sin.shape == (32, 8)
    # Channel j and j + D/2 share the frequency theta^(-2j/D).
    pos, j = 7, 1
    angle = pos * 10000.0 ** (-2 * j / 8)
    assert cos[pos, j].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert sin[pos, j + 4].item() == pytest.approx(math.sin(angle), abs=1e-6)


def test_rope_dot_product_depends_only_on_offset():
    D, T = 16, 64
    cos, sin = rope_cos_sin(T, D, theta=100.0)
    q, k = torch.randn(D, dtype=torch.float64), torch.randn(D, dtype=torch.float64)
    cos, sin = cos.double(), sin.double()

    def rotated_dot(m: int, n: int) -> float:
        qm = apply_rope(q, cos[m], sin[m])
        kn = apply_rope(k, cos[n], sin[n])
        return (qm @ kn).item()

    for offset in (0, 3, 10):
        values = [rotated_dot(n + offset, n) for n in (0, 5, 20, 40)]
        assert max(values) - min(values) < 1e-5
    assert abs(rotated_dot(3, 0) - rotated_dot(10, 0)) > 1e-3  # ...but it does depend on the offset


def test_rope_is_a_rotation():
    cos, sin = rope_cos_sin(16, 8)
    x = torch.randn(2, 3, 16, 8)
    y = apply_rope(x, cos, sin)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))  # lengths preserved
    torch.testing.assert_close(y[:, :, 0], x[:, :, 0])  # position 0 is not rotated
