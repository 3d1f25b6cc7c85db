"""Splitting a chain of thought into its reasoning and final answer, and comparing two of them."""

from __future__ import annotations

import pytest

from visdepth.errors import ConfigError
from visdepth.metrics import output as om


@pytest.mark.parametrize(
    ("text", "reasoning", "answer"),
    [
        ("The uniform is dark blue with gold. So the answer is navy.", "The uniform is dark blue with gold.", "navy"),
        ("It has two wheels.\nFinal answer: 2", "It has two wheels.", "2"),
        ("Half of 7 is 3.5. The answer is 3.5.", "Half of 7 is 3.5.", "3.5"),
        ("Looks like B.\n**Answer:** (B)", "Looks like B.", "(B)"),
        ("first guess: answer is 1. Rechecking, the final answer is 2.", "first guess: answer is 1. Rechecking,", "2"),
        ("objects are red circle, blue cross. red ones are red circle. so the final answer is 1.",
         "objects are red circle, blue cross. red ones are red circle.", "1"),
        ("No conclusion here.", "No conclusion here.", None),
    ],
)  # fmt: skip
def test_split_reasoning(text, reasoning, answer):
    assert om.split_reasoning(text) == (reasoning, answer)


def test_split_reasoning_custom_pattern_and_errors():
    assert om.split_reasoning("think... => 42", r"=>\s*(\d+)") == ("think...", "42")
    with pytest.raises(ConfigError, match="no group"):
        om.split_reasoning("x", r"answer")


def test_split_reasoning_agrees_with_shapes_format():
    shapes = pytest.importorskip("visdepth.data.shapes")
    stream = shapes.iter_samples("test", seed=3, qtypes=("cot_colour", "cot_shape"))
    for _ in range(20):
        target = next(stream).meta["target"]
        assert tuple(om.split_reasoning(target)) == shapes.parse_cot(target)


def test_compare_reasoning(encoder):
    full = "The suit is orange with patches. So the answer is orange."
    same = om.compare_reasoning(full, full, encoder=encoder)
    assert same["answer_agreement"] == 1.0 and same["reasoning_rougeL"] == pytest.approx(1.0)
    assert same["reasoning_bleu"] == pytest.approx(100.0)
    assert same["reasoning_similarity"] == pytest.approx(1.0, abs=1e-5)
    moved = om.compare_reasoning(full, "The suit looks white. So the answer is white.")
    assert moved["answer_agreement"] == 0.0 and moved["reasoning_rougeL"] < 1.0
    assert "reasoning_similarity" not in moved
    assert om.compare_reasoning("Answer: 2", "answer is two")["answer_agreement"] == 1.0
    assert om.compare_reasoning("no answer", "no answer")["answer_agreement"] == 0.0
