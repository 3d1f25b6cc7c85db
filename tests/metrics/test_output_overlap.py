"""BLEU and ROUGE-L against several references, by hand and against sacrebleu itself."""

from __future__ import annotations

import pytest

from visdepth.metrics import output as om


def test_bleu_identical_disjoint_and_several_references():
    hyp = ["a man rides a red bicycle down the street", "two dogs play in the snow"]
    assert om.corpus_bleu(hyp, [[h] for h in hyp]) == pytest.approx(100.0)
    assert om.sentence_bleu(hyp[0], hyp[0]) == pytest.approx(100.0)
    assert om.sentence_bleu("yes", ["yes"]) == pytest.approx(100.0)  # effective order for short answers
    assert om.sentence_bleu("completely unrelated words here", hyp[0]) == pytest.approx(0.0)
    # the right reference may be any of several, and their number may vary between items
    refs = [["something else entirely", hyp[0]], [hyp[1]]]
    assert om.corpus_bleu(hyp, refs) == pytest.approx(100.0)
    assert om.sentence_bleu(hyp[1], ["nothing alike", hyp[1]]) == pytest.approx(100.0)
    partial = om.corpus_bleu(["a man rides a bicycle"], [["a man rides a red bicycle down the street"]])
    assert 0.0 < partial < 100.0
    assert "tok:13a" in om.bleu_signature()
    with pytest.raises(ValueError):
        om.corpus_bleu(hyp, [[hyp[0]]])


def test_rouge_l_identical_stemming_and_hand_computed():
    assert om.rouge_l("a dog runs on the beach", "a dog runs on the beach") == pytest.approx(1.0)
    assert om.rouge_l("cats running", "cat run") == pytest.approx(1.0)  # Porter stemming
    assert om.rouge_l("cats running", "cat run", stem=False) < 1.0
    # LCS("the cat sat", "the cat was sitting") = 2 words: P = 2/3, R = 2/4, F = 4/7
    assert om.rouge_l("the cat sat", "the cat was sitting") == pytest.approx(4 / 7)
    assert om.rouge_l("the cat sat", ["nothing", "the cat was sitting"]) == pytest.approx(4 / 7)
    assert om.rouge_l("", "the cat") == 0.0


def test_corpus_bleu_is_sacrebleus_corpus_bleu_not_a_mean_of_sentence_bleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = ["a man rides a bicycle down the road", "two dogs are playing in the snow", "a red car"]
    refs = [
        ["a man rides a red bicycle down the street", "someone cycles along a road"],
        ["two dogs play in the snow", "dogs running through snow"],
        ["a small red car parked by the road", "a red automobile"],
    ]
    streams = [[r[k] for r in refs] for k in range(2)]  # sacrebleu wants one stream per reference position
    expected = sacrebleu.corpus_bleu(hyps, streams).score
    assert om.corpus_bleu(hyps, refs) == pytest.approx(expected)
    mean_sentence = sum(om.sentence_bleu(h, r) for h, r in zip(hyps, refs, strict=True)) / len(hyps)
    assert abs(mean_sentence - expected) > 1.0  # the two figures are not interchangeable
