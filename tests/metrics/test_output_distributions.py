"""KL divergence and top-1 / first-token agreement of next-token distributions."""

from __future__ import annotations

import math

import pytest
import torch

from visdepth.metrics import output as om


def test_kl_zero_for_identical_and_hand_computed():
    p = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64).log()
    q = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64).log()
    assert float(om.kl_divergence(p, p)) == 0.0
    # 0.5 ln(0.5/0.25) + 0.25 ln(0.25/0.5) + 0 = 0.25 ln 2
    assert float(om.kl_divergence(p, q)) == pytest.approx(0.25 * math.log(2), abs=1e-15)
    assert float(om.kl_divergence(p + 3.0, q - 1.0)) == pytest.approx(0.25 * math.log(2), abs=1e-12)
    assert float(om.kl_divergence(q, p)) > 0


def test_kl_batched_stable_and_masked():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 5, 50, generator=g)
    b = torch.randn(3, 5, 50, generator=g)
    kl = om.kl_divergence(a, b)
    assert kl.shape == (3, 5) and kl.dtype == torch.float64 and (kl > 0).all()
    assert torch.equal(om.kl_divergence(a, a), torch.zeros(3, 5, dtype=torch.float64))
    # huge logits in half precision: finite, and equal to the float64 result of the same values
    big = (a[0, 0] * 1e3).half()
    assert math.isfinite(float(om.kl_divergence(big, b[0, 0].half())))
    assert float(om.kl_divergence(big, big)) == 0.0
    # a token impossible under p contributes nothing; one impossible under q only makes KL infinite
    p = torch.tensor([0.0, 1.0, -math.inf])
    assert math.isfinite(float(om.kl_divergence(p, torch.tensor([1.0, 0.0, 0.0]))))
    assert float(om.kl_divergence(torch.tensor([0.0, 0.0]), torch.tensor([0.0, -math.inf]))) == math.inf
    with pytest.raises(ValueError, match="differ"):
        om.kl_divergence(torch.zeros(3), torch.zeros(4))


def test_top1_and_first_token_agreement():
    a = torch.tensor([[0.1, 2.0, 0.3], [1.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 5.0, 0.0], [0.0, 1.0, 0.0]])
    assert om.top1_agreement(a, b).tolist() == [True, False]
    assert om.first_token_agreement([5, 6, 7], torch.tensor([5, 9])) == 1.0
    assert om.first_token_agreement([5], [6]) == 0.0
    assert om.first_token_agreement([], []) == 1.0 and om.first_token_agreement([], [1]) == 0.0
