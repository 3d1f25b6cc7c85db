"""Trajectory measures on hand-computed cases, and locating a chain's final answer on its raw text."""

from __future__ import annotations

import pytest

from visdepth.errors import ConfigError
from visdepth.metrics import output as om


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([], [], 0.0),
        ([1, 2, 3], [1, 2, 3], 0.0),
        ([1, 2, 3], [1, 3], 1 / 3),  # one deletion over 3
        ([1, 2, 3], [4, 5, 6], 1.0),  # three substitutions
        ([1, 2], [], 1.0),
        # kitten -> sitting: k->s, e->i, +g = 3 edits over 7
        (list(b"kitten"), list(b"sitting"), 3 / 7),
        ([1, 2, 3, 4], [2, 3, 4, 1], 2 / 4),  # delete the first, insert at the end
    ],
)
def test_token_edit_distance_hand_cases(a, b, expected):
    assert om.token_edit_distance(a, b) == pytest.approx(expected)
    assert om.token_edit_distance(b, a) == pytest.approx(expected)


def test_first_difference_and_steps():
    assert om.first_difference([1, 2, 3], [1, 2, 3]) is None
    assert om.first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert om.first_difference([1, 2, 3], [1, 2]) == 2
    assert om.first_difference([], [7]) == 0
    assert om.split_steps("objects are a, b. red ones are a.\nthen c; d ") == [
        "objects are a, b.",
        "red ones are a.",
        "then c;",
        "d",
    ]


def test_compare_trajectories():
    same = om.compare_trajectories([1, 2, 3], [1, 2, 3], "a b. c d.", "a b. c d.")
    assert same["identical"] == 1 and same["edit_distance"] == 0 and same["rougeL"] == 1
    assert same["first_token"] is None and same["first_step"] is None and same["length_ratio"] == 1
    moved = om.compare_trajectories([1, 2, 3, 4], [1, 2, 9], "a b. c d.", "a b. x y z.")
    assert moved["identical"] == 0
    assert moved["edit_distance"] == pytest.approx(2 / 4)
    assert moved["first_token"] == 2 and moved["first_token_rel"] == pytest.approx(2 / 4)
    assert moved["first_step"] == 1 and moved["first_step_rel"] == pytest.approx(1 / 2)
    assert moved["length_ratio"] == pytest.approx(3 / 4)
    assert 0 < moved["rougeL"] < 1
    empty = om.compare_trajectories([], [5], "", "x")
    assert empty["rougeL"] == 0 and empty["length_ratio"] is None and empty["first_token_rel"] is None


SHAPES = r"so the final answer is\s+(?P<answer>[^\s.]+)"


def test_locate_answer_offsets():
    text = "objects are red circle. red ones are red circle. so the final answer is 1."
    split = om.locate_answer(text, SHAPES)
    assert split.answer == "1" and text[split.answer_start :].startswith("so the final answer")
    assert split.reasoning == "objects are red circle. red ones are red circle."
    # the last match counts, as split_reasoning
    assert om.locate_answer("so the final answer is 2. so the final answer is 3.", SHAPES).answer == "3"
    none = om.locate_answer("objects are none.", SHAPES)
    assert none.answer is None and none.answer_start == len("objects are none.")
    # the default pattern agrees with split_reasoning on its answer
    for t in ("Reasoning here. Final answer: **B**", "so the answer is 4.", "no answer at all"):
        assert om.locate_answer(t).answer == om.split_reasoning(t).answer


def test_locate_answer_reasoning_tags():
    text = "<think>two red ones. so the final answer is 9.</think> so the final answer is 2."
    split = om.locate_answer(text, SHAPES, "think")
    assert split.answer == "2" and split.reasoning == "two red ones. so the final answer is 9."
    assert split.answer_start == text.index("</think>") + len("</think>")
    # the response without the pattern is the answer, as lmms-eval scores what is left
    assert om.locate_answer("<think>hmm</think> 7", SHAPES, "think").answer == "7"
    # no closing tag: read as untagged
    assert om.locate_answer("so the final answer is 5.", SHAPES, "think").answer == "5"


def test_check_answer_pattern():
    assert om.check_answer_pattern(r"is (\d+)").groups == 1
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        om.check_answer_pattern("answer is (")
    with pytest.raises(ConfigError, match="no group"):
        om.check_answer_pattern("answer is \\d+")
