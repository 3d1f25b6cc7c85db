"""Matrix entropy on analytic cases: rank one, isotropic, invariances, Renyi order, normalisation, presets."""

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from visdepth.errors import ConfigError
from visdepth.metrics import entropy_choices, matrix_entropy, skean_entropy, skean_entropy_choices

FAST = settings(max_examples=20, deadline=None)
ALPHAS = [0.5, 1.0, 2.0, math.inf]


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _orthogonal(seed: int, d: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(_randn(seed, d, d))
    return q


@pytest.mark.parametrize("alpha", ALPHAS)
def test_points_on_a_line_have_zero_entropy(alpha):
    # After centring, points a + t_i b span one direction: a single non-zero eigenvalue.
    a, b = _randn(0, 16), _randn(1, 16)
    t = _randn(2, 9)
    Z = a + t[:, None] * b
    assert matrix_entropy(Z, alpha=alpha) == pytest.approx(0.0, abs=1e-10)
    # Uncentred rank one (rows t_i b through the origin) is zero too.
    assert matrix_entropy(t[:, None] * b, alpha=alpha, center=False) == pytest.approx(0.0, abs=1e-10)


def test_two_directions_are_not_zero():
    a, b, c = _randn(0, 16), _randn(1, 16), _randn(3, 16)
    t, s = _randn(2, 9), _randn(4, 9)
    Z = a + t[:, None] * b + s[:, None] * c
    assert matrix_entropy(Z) > 0.1


def test_identical_tokens_give_nan_after_centring():
    Z = torch.ones(5, 3) * torch.tensor([1.0, -2.0, 0.5])
    assert math.isnan(matrix_entropy(Z))
    # Without centring they are one direction: zero entropy.
    assert matrix_entropy(Z, center=False) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n", [3, 5, 8])
def test_regular_simplex_is_maximal(n, alpha):
    # e_1..e_n centred form a regular simplex: n - 1 equal eigenvalues, entropy log(n - 1) for every alpha.
    d = n + 4
    Z = torch.zeros(n, d, dtype=torch.float64)
    Z[:, :n] = torch.eye(n, dtype=torch.float64)
    Z = Z @ _orthogonal(7, d)
    assert matrix_entropy(Z, alpha=alpha) == pytest.approx(math.log(n - 1), rel=1e-10)
    assert matrix_entropy(Z, alpha=alpha, normalize="log_min") == pytest.approx(1.0, rel=1e-10)
    assert matrix_entropy(Z, alpha=alpha, normalize="log_min_nd") == pytest.approx(
        math.log(n - 1) / math.log(n), rel=1e-10
    )
    # Orthonormal rows without centring: n equal eigenvalues.
    assert matrix_entropy(Z, alpha=alpha, center=False) == pytest.approx(math.log(n), rel=1e-10)
    assert matrix_entropy(Z, alpha=alpha, center=False, normalize="log_min") == pytest.approx(1.0, rel=1e-10)


def test_isotropic_wide_cloud_is_near_maximal_and_below_it():
    Z = _randn(3, 4000, 6)  # N >> d: the d x d side is used, max is log 6
    s = matrix_entropy(Z, normalize="log_min")
    assert 0.99 < s <= 1.0 + 1e-12


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(3, 12),
    d=st.integers(2, 12),
    scale=st.floats(1e-3, 1e3),
    alpha=st.sampled_from(ALPHAS),
)
def test_invariant_to_rotation_and_scale(seed, n, d, scale, alpha):
    Z = _randn(seed, n, d)
    R = _orthogonal(seed + 1, d)
    ref = matrix_entropy(Z, alpha=alpha)
    assert matrix_entropy(scale * Z @ R, alpha=alpha) == pytest.approx(ref, rel=1e-8, abs=1e-10)
    # Translation as well, because of the centring.
    assert matrix_entropy(Z + _randn(seed + 2, d), alpha=alpha) == pytest.approx(ref, rel=1e-8, abs=1e-10)


@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 12), d=st.integers(2, 12))
def test_renyi_order_continuity_and_monotonicity(seed, n, d):
    Z = _randn(seed, n, d)
    s1 = matrix_entropy(Z, alpha=1.0)
    assert matrix_entropy(Z, alpha=1.0001) == pytest.approx(s1, abs=1e-3)
    assert matrix_entropy(Z, alpha=0.9999) == pytest.approx(s1, abs=1e-3)
    values = [matrix_entropy(Z, alpha=a) for a in (0.5, 1.0, 2.0, 5.0, math.inf)]
    assert all(x >= y - 1e-12 for x, y in zip(values, values[1:], strict=False))


@FAST
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(3, 30),
    d=st.integers(2, 30),
    normalize=st.sampled_from(["log_n", "log_d", "log_min", "log_min_nd"]),
    center=st.booleans(),
    alpha=st.sampled_from(ALPHAS),
)
def test_normalised_entropy_in_unit_interval(seed, n, d, normalize, center, alpha):
    s = matrix_entropy(_randn(seed, n, d), alpha=alpha, normalize=normalize, center=center)
    assert -1e-12 <= s <= 1.0 + 1e-12


def test_second_order_matches_frobenius_formula():
    # Independent route: S_2 = -log sum(lambda^2) = -log ||K / tr K||_F^2, no eigendecomposition.
    Z = _randn(11, 7, 20)
    Zc = Z - Z.mean(0)
    Zc = Zc / Zc.norm(dim=1, keepdim=True)
    K = Zc @ Zc.T
    expected = -math.log(float((K / torch.trace(K)).pow(2).sum()))
    assert matrix_entropy(Z, alpha=2.0) == pytest.approx(expected, rel=1e-10)


def test_gram_side_does_not_matter():
    Z = _randn(5, 10, 4)  # N > d: the feature side is used
    padded = torch.cat([Z, torch.zeros(10, 16, dtype=torch.float64)], dim=1)  # N < d: the token side
    for alpha in ALPHAS:
        assert matrix_entropy(padded, alpha=alpha) == pytest.approx(matrix_entropy(Z, alpha=alpha), rel=1e-10)


def test_zero_rows_are_ignored_without_centring():
    Z = _randn(6, 6, 9)
    with_zero = torch.cat([Z, torch.zeros(1, 9, dtype=torch.float64)])
    assert matrix_entropy(with_zero, center=False) == pytest.approx(
        matrix_entropy(Z, center=False), rel=1e-12
    )


def test_row_normalisation_matters():
    # Two groups of tokens along orthogonal axes, one with much larger norms: without row normalisation the
    # large group dominates the spectrum.
    Z = torch.zeros(6, 4, dtype=torch.float64)
    Z[:3, 0] = torch.tensor([1.0, 2.0, 3.0]) * 100
    Z[3:, 1] = torch.tensor([1.0, 2.0, 3.0])
    assert matrix_entropy(Z, center=False) == pytest.approx(math.log(2), rel=1e-10)
    assert matrix_entropy(Z, center=False, row_normalize=False) < 0.01


def test_input_dtype_and_result_type():
    Z = _randn(1, 8, 5)
    s32 = matrix_entropy(Z.float())
    assert isinstance(s32, float)
    assert s32 == pytest.approx(matrix_entropy(Z), rel=1e-5)
    assert matrix_entropy(Z.to(torch.bfloat16)) == pytest.approx(matrix_entropy(Z), rel=5e-2)


def test_skean_preset_hand_case():
    # Two tokens: after centring and normalising they are u and -u. Gram [[1, -1], [-1, 1]] has rank one,
    # entropy 0; the reference code clamps negative entries, giving the identity: entropy log 2.
    Z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]])
    assert skean_entropy(Z, normalized=False, clamp_gram=False) == pytest.approx(0.0, abs=1e-12)
    assert skean_entropy(Z, normalized=False) == pytest.approx(math.log(2), rel=1e-12)
    assert skean_entropy(Z) == pytest.approx(1.0, rel=1e-12)  # divided by min(log 2, log 3)


@FAST
@given(
    seed=st.integers(0, 2**31 - 1), n=st.integers(3, 20), d=st.integers(2, 20), alpha=st.sampled_from(ALPHAS)
)
def test_skean_without_clamp_equals_matrix_entropy(seed, n, d, alpha):
    Z = _randn(seed, n, d)
    raw = matrix_entropy(Z, alpha=alpha)
    assert skean_entropy(Z, alpha=alpha, normalized=False, clamp_gram=False) == pytest.approx(raw, abs=1e-9)
    expected = raw / min(math.log(n), math.log(d))
    assert skean_entropy(Z, alpha=alpha, clamp_gram=False) == pytest.approx(expected, abs=1e-9)
    normalised = matrix_entropy(Z, alpha=alpha, normalize="log_min_nd")
    assert skean_entropy(Z, alpha=alpha, clamp_gram=False) == pytest.approx(normalised, abs=1e-9)


def test_choices_are_recorded_and_json_ready():
    c = entropy_choices(alpha=2.0, normalize="log_min")
    assert c["alpha"] == 2.0 and c["normalize"] == "log_min" and c["center"] and c["row_normalize"]
    assert c["normalize_divisor"] == "log min(N-1, d)"
    assert entropy_choices(normalize="log_min", center=False)["normalize_divisor"] == "log min(N, d)"
    s = skean_entropy_choices()
    assert s["function"].endswith("skean_entropy") and s["clamp_gram"] and s["normalize"] == "log_min_nd"
    assert skean_entropy_choices(normalized=False, clamp_gram=False)["normalize"] == "raw"
    assert set(s) == set(c)
    json.dumps(c)
    json.dumps(entropy_choices(alpha=math.inf), allow_nan=True)


@pytest.mark.parametrize("alpha", [0, -1, float("nan"), "x"])
def test_bad_alpha_is_a_config_error(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        matrix_entropy(_randn(0, 4, 3), alpha=alpha)


def test_bad_options_and_shapes():
    with pytest.raises(ConfigError, match="normalize"):
        matrix_entropy(_randn(0, 4, 3), normalize="log2")
    with pytest.raises(ConfigError, match="normalize"):
        entropy_choices(normalize="max")
    with pytest.raises(ConfigError, match="alpha"):
        skean_entropy_choices(alpha=-2)
    with pytest.raises(ValueError, match="2-D"):
        matrix_entropy(_randn(0, 2, 4, 3))
    with pytest.raises(ValueError, match="NaN"):
        matrix_entropy(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
