"""Linear CKA and matched-row cosine on analytic cases and against independent formulas."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visdepth.metrics import linear_cka, mean_cosine

FAST = settings(max_examples=20, deadline=None)


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _hsic_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """CKA through the centring matrix H, without centring the features first (Kornblith et al. eq. 3-4)."""
    n = X.shape[0]
    H = torch.eye(n, dtype=torch.float64) - 1.0 / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return float(torch.trace(A @ H @ B @ H))

    return hsic(K, L) / math.sqrt(hsic(K, K) * hsic(L, L))


# Shapes on both sides of the Gram/feature switch: wide (N < d) and tall (N > d).
SHAPES = st.sampled_from([(5, 40, 30), (8, 20, 3), (200, 3, 4), (60, 10, 10), (3, 2, 2)])


@FAST
@given(seed=st.integers(0, 2**31 - 1), shape=SHAPES, scale=st.floats(1e-3, 1e3))
def test_cka_is_one_for_rotation_scale_translation(seed, shape, scale):
    n, d1, _ = shape
    X = _randn(seed, n, d1)
    R = torch.linalg.qr(_randn(seed + 1, d1, d1))[0]
    assert linear_cka(X, scale * X @ R + _randn(seed + 2, d1)) == pytest.approx(1.0, abs=1e-9)


@FAST
@given(seed=st.integers(0, 2**31 - 1), shape=SHAPES)
def test_cka_bounds_symmetry_and_reference(seed, shape):
    n, d1, d2 = shape
    X, Y = _randn(seed, n, d1), _randn(seed + 1, n, d2)
    c = linear_cka(X, Y)
    assert -1e-12 <= c <= 1.0 + 1e-12
    assert linear_cka(Y, X) == pytest.approx(c, abs=1e-12)
    assert c == pytest.approx(_hsic_cka(X, Y), abs=1e-9)


def test_cka_of_single_features_is_squared_correlation():
    x = _randn(0, 50)
    y = 0.5 * x + _randn(1, 50)
    r = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    assert linear_cka(x[:, None], y[:, None]) == pytest.approx(r**2, rel=1e-10)


def test_cka_of_independent_data_is_small():
    assert linear_cka(_randn(0, 3000, 3), _randn(1, 3000, 3)) < 0.02


def test_cka_not_invariant_to_anisotropic_scaling():
    X = _randn(0, 100, 5)
    D = torch.diag(torch.tensor([10.0, 1.0, 1.0, 1.0, 0.1], dtype=torch.float64))
    assert linear_cka(X, X @ D) < 0.99


def test_cka_degenerate_and_bad_shapes():
    assert math.isnan(linear_cka(torch.ones(6, 3), _randn(0, 6, 2)))
    assert math.isnan(linear_cka(_randn(0, 1, 3), _randn(1, 1, 3)))
    with pytest.raises(ValueError, match="same items"):
        linear_cka(_randn(0, 6, 3), _randn(1, 7, 3))


def test_mean_cosine_analytic_cases():
    X = _randn(0, 10, 6)
    assert mean_cosine(X, X) == pytest.approx(1.0, abs=1e-12)
    assert mean_cosine(X, -X) == pytest.approx(-1.0, abs=1e-12)
    scales = torch.rand(10, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.1
    assert mean_cosine(X, scales * X) == pytest.approx(1.0, abs=1e-12)
    e = torch.eye(2, dtype=torch.float64)
    assert mean_cosine(e, e.flip(0)) == pytest.approx(0.0, abs=1e-12)
    # Rows 0 and 1 agree, row 2 is opposed: mean (1 + 1 - 1) / 3.
    Y = X[:3].clone()
    Y[2] = -Y[2]
    assert mean_cosine(X[:3], Y) == pytest.approx(1 / 3, abs=1e-12)
    assert mean_cosine(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])) == pytest.approx(math.sqrt(0.5))


def test_mean_cosine_skips_zero_rows_and_checks_shapes():
    X = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    Y = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    assert mean_cosine(X, Y) == pytest.approx(1.0)
    assert math.isnan(mean_cosine(torch.zeros(2, 3), torch.ones(2, 3)))
    with pytest.raises(ValueError, match="same shape"):
        mean_cosine(torch.ones(2, 3), torch.ones(3, 3))
