"""Intrinsic dimension: points filling a d-dimensional subspace, duplicates, tiny inputs, determinism."""

import json
import math

import pytest
import torch

from visdepth.errors import ConfigError
from visdepth.metrics import intrinsic_dimension, intrinsic_dimension_choices

METHODS = ["twonn", "twonn_linear", "mle"]


def _subspace_cloud(d: int, ambient: int = 50, n: int = 2000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(ambient, d, generator=g, dtype=torch.float64))
    offset = torch.randn(ambient, generator=g, dtype=torch.float64)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ basis.T + offset


@pytest.fixture(scope="module")
def cloud3() -> torch.Tensor:
    return _subspace_cloud(3)


@pytest.mark.parametrize("method", METHODS)
def test_recovers_dimension_of_linear_subspace(cloud3, method):
    assert intrinsic_dimension(cloud3, method=method) == pytest.approx(3.0, abs=0.5)


@pytest.mark.parametrize("d", [1, 6])
def test_recovers_other_dimensions(d):
    Z = _subspace_cloud(d, n=1500, seed=d)
    assert intrinsic_dimension(Z) == pytest.approx(d, abs=0.5)
    assert intrinsic_dimension(Z, method="mle") == pytest.approx(d, abs=0.5)


def test_twonn_is_the_paper_formula():
    # Independent brute-force computation of d = N / sum log(r2 / r1).
    Z = _subspace_cloud(2, ambient=5, n=300, seed=3)
    dist = torch.cdist(Z, Z)
    dist.fill_diagonal_(math.inf)
    r = dist.topk(2, largest=False).values
    expected = Z.shape[0] / float(torch.log(r[:, 1] / r[:, 0]).sum())
    assert intrinsic_dimension(Z) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_duplicates_do_not_change_the_estimate(cloud3, method):
    Z = cloud3[:1000]
    dup = torch.cat([Z, Z[:300], Z[:100], Z[500:510]])
    dup = dup[torch.randperm(len(dup), generator=torch.Generator().manual_seed(1))]
    assert intrinsic_dimension(dup, method=method) == intrinsic_dimension(Z, method=method)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_without_dedup_duplicates_break_mle(cloud3):
    Z = cloud3[:500]
    dup = torch.cat([Z, Z[:200]])
    broken = intrinsic_dimension(dup, method="mle", dedup=False)
    assert broken != pytest.approx(intrinsic_dimension(Z, method="mle"), abs=0.5)


@pytest.mark.parametrize("method", METHODS)
def test_too_few_unique_points_give_nan(method):
    two = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert math.isnan(intrinsic_dimension(two, method=method))
    repeated = torch.cat([torch.zeros(5, 4), torch.ones(3, 4)])
    assert math.isnan(intrinsic_dimension(repeated, method=method))


def test_mle_clips_k_for_small_clouds():
    Z = _subspace_cloud(2, ambient=10, n=12, seed=4)
    value = intrinsic_dimension(Z, method="mle", k=20)
    assert math.isfinite(value)
    assert value == intrinsic_dimension(Z, method="mle", k=11)


def test_deterministic_and_order_free(cloud3):
    Z = cloud3[:800]
    perm = torch.randperm(len(Z), generator=torch.Generator().manual_seed(2))
    for method in METHODS:
        first = intrinsic_dimension(Z, method=method)
        assert intrinsic_dimension(Z, method=method) == first
        assert intrinsic_dimension(Z[perm], method=method) == first


def test_single_feature_and_float32_inputs():
    g = torch.Generator().manual_seed(5)
    line = torch.randn(500, 1, generator=g)
    assert intrinsic_dimension(line) == pytest.approx(1.0, abs=0.3)
    Z = _subspace_cloud(3, n=800, seed=6)
    assert intrinsic_dimension(Z.float()) == pytest.approx(intrinsic_dimension(Z), abs=0.05)


def test_options_are_checked_and_recorded():
    with pytest.raises(ConfigError, match="method"):
        intrinsic_dimension(torch.randn(10, 3), method="pca")
    with pytest.raises(ConfigError, match="k >= 2"):
        intrinsic_dimension(torch.randn(10, 3), method="mle", k=1)
    c = intrinsic_dimension_choices("mle", k=10)
    assert c["method"] == "mle" and c["k"] == 10 and c["dedup"] and "scikit-dimension" in c["backend"]
    assert intrinsic_dimension_choices()["k"] is None
    json.dumps(c)
