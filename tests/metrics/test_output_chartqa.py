"""ChartQA relaxed accuracy at its tolerance borders."""

from __future__ import annotations

import pytest

from visdepth.metrics import output as om


@pytest.mark.parametrize(
    ("pred", "ref", "right"),
    [
        ("105", "100", 1.0),  # exactly 5% above: the border counts
        ("95", "100", 1.0),  # exactly 5% below
        ("105.01", "100", 0.0),
        ("94.99", "100", 0.0),
        ("0.315", "0.3", 1.0),  # a decimal border that float rounding would otherwise miss
        ("0.316", "0.3", 0.0),
        ("-10.5", "-10", 1.0),
        ("0", "0", 1.0),  # zero reference: exact zero only
        ("0.0", "0", 1.0),
        ("0.01", "0", 0.0),
        ("1,000", "1000", 1.0),
        ("45%", "45", 1.0),
        ("$12", "12", 1.0),
        ("12.", "12", 1.0),
        ("12 apples", "12", 0.0),  # not a number: exact match needed
        ("Yes", "yes", 1.0),
        ("Yes.", "yes", 1.0),
        ("Democrats", "Republicans", 0.0),
        ("nan", "nan", 1.0),  # not numbers, but the same text
    ],
)
def test_relaxed_accuracy_borders(pred, ref, right):
    assert om.relaxed_accuracy(pred, ref) == right


def test_relaxed_accuracy_options():
    assert om.relaxed_accuracy("110", ["50", "108"]) == 1.0  # the best reference counts
    assert om.relaxed_accuracy("110", "100", tolerance=0.1) == 1.0
    assert om.relaxed_accuracy("101", "100", tolerance=0.0) == 0.0
    assert om.parse_number("1e3") == 1000.0 and om.parse_number("inf") is None
    with pytest.raises(ValueError):
        om.relaxed_accuracy("1", "1", tolerance=-0.1)
