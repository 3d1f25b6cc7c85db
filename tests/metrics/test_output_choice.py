"""Multiple choice: each letter's log-probability over all its spellings, and the letter an answer picks."""

from __future__ import annotations

import math

import pytest
import torch

from visdepth.errors import ConfigError
from visdepth.metrics import output as om


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
