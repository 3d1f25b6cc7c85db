"""VQAv2 answer normalisation, exact and prefix match, and VQA soft accuracy on hand-checked cases."""

from __future__ import annotations

import itertools

import pytest

from visdepth.metrics import output as om


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("Yes.", "yes"),  # lower case, final period
        ("  Two   Dogs\n", "2 dogs"),  # number words, whitespace
        ("none", "0"),
        ("The dog", "dog"),  # articles
        ("a red car", "red car"),
        ("an apple", "apple"),
        ("dont", "don't"),  # missing apostrophe restored
        ("isnt it", "isn't it"),
        ("its", "its"),  # a real word: left alone
        ("100,978", "100978"),  # comma between digits removed
        ("3.5", "3.5"),  # decimal point kept
        ("t-shirt", "t shirt"),  # punctuation becomes a space
        ("hello, world!", "hello world"),
        ("(left)", "left"),
        ("man's", "man's"),  # apostrophe kept
        ("10:30", "10:30"),  # colon kept
        ("50%", "50%"),  # not VQA punctuation: keeps its meaning
        ("e.g.", "eg"),
    ],
)
def test_normalize_answer_follows_vqa_rules(raw, norm):
    assert om.normalize_answer(raw) == norm


def test_exact_match_and_prefix_match():
    assert om.exact_match("Two.", "2") == 1.0
    assert om.exact_match("Two.", "2", normalize=False) == 0.0
    assert om.exact_match(" 2 ", ["3", "2"], normalize=False) == 1.0
    assert om.exact_match("a cat", ["dog", "the cat"]) == 1.0
    assert om.exact_match("cat food", "cat") == 0.0
    assert om.prefix_match("Yes, she is.", "yes") == 1.0
    assert om.prefix_match("Two wheels", "2") == 1.0
    assert om.prefix_match("No.", "yes") == 0.0
    assert om.prefix_match("red circle at top", ["red circle"]) == 1.0
    assert om.prefix_match("anything", "the") == 0.0  # an answer that normalises to nothing never matches
    with pytest.raises(ValueError):
        om.exact_match("x", [])


def _vqa_brute_force(pred: str, humans: list[str]) -> float:
    """Mean over every subset of 9 of the 10 annotators of min(#matches / 3, 1)."""
    subsets = list(itertools.combinations(range(len(humans)), len(humans) - 1))
    accs = [min(1.0, sum(humans[i] == pred for i in sub) / 3) for sub in subsets]
    return sum(accs) / len(accs)


@pytest.mark.parametrize("hits", range(0, 11))
def test_vqa_accuracy_matches_subset_definition(hits):
    humans = ["2"] * hits + ["3"] * (10 - hits)
    assert om.vqa_accuracy("two", humans) == pytest.approx(_vqa_brute_force("2", humans), abs=1e-12)
    assert om.vqa_accuracy("Two.", humans, leave_one_out=False) == pytest.approx(min(1.0, hits / 3))


def test_vqa_accuracy_known_values():
    humans = ["yes"] * 3 + ["no"] * 7
    assert om.vqa_accuracy("yes", humans) == pytest.approx(0.9)
    assert om.vqa_accuracy("yes", humans, leave_one_out=False) == 1.0
    assert om.vqa_accuracy("Yes", ["yes"]) == pytest.approx(1 / 3)  # one answer: the plain formula
