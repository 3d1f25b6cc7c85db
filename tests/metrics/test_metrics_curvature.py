"""Curvature across depth and along the sequence: straight, reversed and orthogonal trajectories."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visdepth.metrics import depth_curvature, sequence_curvature

FAST = settings(max_examples=20, deadline=None)


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _staircase(n_steps: int, d: int) -> torch.Tensor:
    """Points 0, e_1, e_1 + e_2, ...: every step orthogonal to the previous one."""
    steps = torch.eye(d, dtype=torch.float64)[:n_steps]
    return torch.cat([torch.zeros(1, d, dtype=torch.float64), steps.cumsum(0)])


# ---- depth_curvature ------------------------------------------------------------------------------------


def test_straight_trajectory_has_zero_curvature():
    L, N, d = 6, 4, 8
    a, v = _randn(0, N, d), _randn(1, N, d)
    speeds = torch.tensor([0.0, 1.0, 3.0, 3.5, 7.0, 8.0, 20.0], dtype=torch.float64)  # uneven but forward
    states = a + speeds[:, None, None] * v
    c = depth_curvature(states)
    assert c.shape == (L + 1,) and c.dtype == torch.float64
    assert torch.isnan(c[:2]).all()
    assert torch.allclose(c[2:], torch.zeros(L - 1, dtype=torch.float64), atol=1e-6)


def test_reversal_has_curvature_pi():
    a, v = _randn(0, 3, 5), _randn(1, 3, 5)
    states = torch.stack([a + (layer % 2) * v for layer in range(6)])  # back and forth
    c = depth_curvature(states)
    assert torch.allclose(c[2:], torch.full((4,), math.pi, dtype=torch.float64), atol=1e-6)


def test_orthogonal_turns_have_curvature_half_pi():
    states = _staircase(5, 7)[:, None, :] @ torch.linalg.qr(_randn(2, 7, 7))[0]
    c = depth_curvature(states)
    assert torch.allclose(c[2:], torch.full((4,), math.pi / 2, dtype=torch.float64), atol=1e-12)


def test_known_angle_and_mean_over_tokens():
    # Token 0 turns by 60 degrees at layer 2; token 1 reverses. Mean = (pi/3 + pi) / 2.
    h0 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.5, math.sqrt(3) / 2]])
    h1 = torch.tensor([[0.0, 0.0], [0.0, 2.0], [0.0, 1.0]])
    c = depth_curvature(torch.stack([h0, h1], dim=1))
    assert c[2].item() == pytest.approx((math.pi / 3 + math.pi) / 2, abs=1e-6)
    assert depth_curvature(h0)[2].item() == pytest.approx(math.pi / 3, abs=1e-6)  # 2-D input = one token


def test_tokens_with_zero_update_are_skipped():
    moving = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])  # turns pi/2, then straight
    stalled = torch.tensor([[5.0, 5.0], [5.0, 5.0], [5.0, 6.0], [5.0, 5.0]])  # no update at layer 1
    c = depth_curvature(torch.stack([moving, stalled], dim=1))
    assert c[2].item() == pytest.approx(math.pi / 2, abs=1e-12)  # only the moving token counts
    assert c[3].item() == pytest.approx((0.0 + math.pi) / 2, abs=1e-6)
    frozen = torch.zeros(4, 2, 3)
    assert torch.isnan(depth_curvature(frozen)).all()


def test_short_inputs():
    assert torch.isnan(depth_curvature(_randn(0, 2, 3, 4))).all()
    assert depth_curvature(_randn(0, 2, 3, 4)).shape == (2,)
    with pytest.raises(ValueError, match="layers, tokens, features"):
        depth_curvature(_randn(0, 2, 3, 4, 5))


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    L=st.integers(2, 8),
    n=st.integers(1, 6),
    d=st.integers(2, 10),
    scale=st.floats(1e-2, 1e2),
)
def test_depth_curvature_invariances_and_range(seed, L, n, d, scale):
    states = _randn(seed, L + 1, n, d)
    c = depth_curvature(states)
    assert ((c[2:] >= 0) & (c[2:] <= math.pi)).all()
    R = torch.linalg.qr(_randn(seed + 1, d, d))[0]
    moved = scale * states @ R + _randn(seed + 2, d)
    assert torch.allclose(depth_curvature(moved)[2:], c[2:], atol=1e-6)


# ---- sequence_curvature ---------------------------------------------------------------------------------


def test_sequence_straight_reversal_orthogonal():
    a, v = _randn(3, 6), _randn(4, 6)
    line = a + torch.arange(7, dtype=torch.float64)[:, None] * v
    assert sequence_curvature(line) == pytest.approx(0.0, abs=1e-6)
    zigzag = a + (torch.arange(7) % 2).to(torch.float64)[:, None] * v
    assert sequence_curvature(zigzag) == pytest.approx(math.pi, abs=1e-6)
    assert sequence_curvature(_staircase(5, 8)) == pytest.approx(math.pi / 2, abs=1e-12)


def test_sequence_curvature_mean_and_degenerate_cases():
    # Steps (1,0), (1,0), (0,1): angles 0 and pi/2.
    Z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 1.0]])
    assert sequence_curvature(Z) == pytest.approx(math.pi / 4, abs=1e-6)
    # A repeated token makes a zero step; pairs involving it are left out.
    Zr = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [2.0, 1.0]])
    assert sequence_curvature(Zr) == pytest.approx(math.pi / 2, abs=1e-12)
    assert math.isnan(sequence_curvature(torch.randn(2, 4)))
    assert math.isnan(sequence_curvature(torch.ones(5, 4)))


def test_sequence_and_depth_curvature_differ():
    # Each layer is a straight sequence, but every layer reverses the previous update.
    line = torch.arange(5, dtype=torch.float64)[:, None] * torch.tensor([[1.0, 0.0, 0.0]])
    shift = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    states = torch.stack([line + (layer % 2) * shift for layer in range(4)])
    assert sequence_curvature(states[1]) == pytest.approx(0.0, abs=1e-6)
    assert depth_curvature(states)[2].item() == pytest.approx(math.pi, abs=1e-6)


@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 12), d=st.integers(2, 10), normalize=st.booleans())
def test_sequence_curvature_range_and_rotation(seed, n, d, normalize):
    Z = _randn(seed, n, d)
    c = sequence_curvature(Z, center_and_normalize=normalize)
    assert 0.0 <= c <= math.pi
    R = torch.linalg.qr(_randn(seed + 1, d, d))[0]
    assert sequence_curvature(3.0 * Z @ R, center_and_normalize=normalize) == pytest.approx(c, abs=1e-6)
