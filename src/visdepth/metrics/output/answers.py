"""Short-answer accuracy: VQAv2 answer normalisation, exact and prefix match, and VQA soft accuracy."""

from __future__ import annotations

import re
from collections.abc import Iterable

# The rules of the VQA evaluation (visualqa.org/evaluation.html, Antol et al. 2015; Goyal et al. 2017). Only
# these characters are punctuation there: symbols such as % $ # & * keep their meaning ("50%" is not "50").
_VQA_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_PUNCT_RE = re.compile("[" + re.escape(_VQA_PUNCT) + "]")
_DIGIT_COMMA_RE = re.compile(r"(?<=\d),(?=\d)")
_PERIOD_RE = re.compile(r"\.(?!\d)")  # a period followed by a digit is a decimal point and stays
_NUMBER_WORDS = {
    # "none" answers counting questions ("how many ...? none"), which is why the VQA rules map it to 0
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# Contractions written without their apostrophe. Forms that are also ordinary words ("its", "well", "were",
# "shell", "ill", "id", "hell", "wed", "lets") are left alone: restoring them would corrupt real answers.
_CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldnt": "couldn't",
    "couldve": "could've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hes": "he's",
    "im": "i'm",
    "isnt": "isn't",
    "ive": "i've",
    "mightnt": "mightn't",
    "mustnt": "mustn't",
    "shouldnt": "shouldn't",
    "shouldve": "should've",
    "thats": "that's",
    "theres": "there's",
    "theyre": "they're",
    "theyve": "they've",
    "wasnt": "wasn't",
    "werent": "weren't",
    "whats": "what's",
    "wheres": "where's",
    "whos": "who's",
    "wont": "won't",
    "wouldnt": "wouldn't",
    "wouldve": "would've",
    "youre": "you're",
    "youve": "you've",
}


def normalize_answer(text: str) -> str:
    """Normalise a short answer with the rules of the VQA evaluation [Antol2015]_.

    In order: newlines and tabs become spaces; everything is lower-cased; a comma between digits is removed
    (``1,000`` -> ``1000``); a period is removed unless a digit follows it (``3.5`` stays, ``yes.`` -> ``yes``);
    the VQA punctuation ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` becomes a space (apostrophes and colons
    stay); number words zero to ten (and ``none``) become digits; the articles a, an, the are dropped; a
    contraction missing its apostrophe gets it back (``dont`` -> ``don't``); whitespace is collapsed.

    Differences from the reference script: punctuation always becomes a space (the script deletes it instead
    when it touches a space or when the answer holds a digit-comma-digit, which only changes word splits), and
    both prediction and references are always normalised (the script skips the references when all ten agree).

    References
    ----------
    .. [Antol2015] S. Antol et al., "VQA: Visual Question Answering", ICCV 2015; evaluation rules at
       https://visualqa.org/evaluation.html (also used for VQAv2, Goyal et al., CVPR 2017).
    """
    text = str(text).replace("\n", " ").replace("\t", " ").strip().lower()
    text = _DIGIT_COMMA_RE.sub("", text)
    text = _PERIOD_RE.sub("", text)
    text = _PUNCT_RE.sub(" ", text)
    words = []
    for word in text.split():
        word = _NUMBER_WORDS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def _as_list(answers: str | Iterable[str]) -> list[str]:
    if isinstance(answers, str):
        return [answers]
    out = [str(a) for a in answers]
    if not out:
        raise ValueError("no reference answer given; pass at least one")
    return out


def exact_match(prediction: str, answers: str | Iterable[str], *, normalize: bool = True) -> float:
    """1.0 when the prediction equals one of the answers, else 0.0.

    With ``normalize`` (default) both sides go through :func:`normalize_answer` first, so ``"Two."`` matches
    ``"2"`` and ``"The dog"`` matches ``"dog"``; without it only surrounding whitespace is ignored.
    """
    refs = _as_list(answers)
    if normalize:
        pred = normalize_answer(prediction)
        return float(any(pred == normalize_answer(a) for a in refs))
    return float(any(prediction.strip() == a.strip() for a in refs))


def prefix_match(prediction: str, answers: str | Iterable[str]) -> float:
    """1.0 when the prediction *starts* with one of the answers (word by word, after normalisation).

    For single-token answers the first word is what counts (PAPER.md RQ3): ``"Yes, she is."`` is right for
    ``"yes"``, ``"Two wheels"`` for ``"2"``. An empty normalised answer never matches.
    """
    pred = normalize_answer(prediction).split()
    for a in _as_list(answers):
        ref = normalize_answer(a).split()
        if ref and pred[: len(ref)] == ref:
            return 1.0
    return 0.0


def vqa_accuracy(prediction: str, human_answers: Iterable[str], *, leave_one_out: bool = True) -> float:
    """VQA soft accuracy: ``min(#humans who gave the answer / 3, 1)`` [Antol2015]_.

    With ``leave_one_out`` (default, as the official evaluation) the formula is averaged over the ten subsets
    of nine human answers, each leaving one annotator out, so an answer three of ten humans gave scores 0.9,
    not 1.0; ``leave_one_out=False`` applies the formula once to all answers. Both sides are normalised with
    :func:`normalize_answer`. Fewer than two human answers make leaving one out meaningless: the plain formula
    is used then.
    """
    refs = [normalize_answer(a) for a in _as_list(human_answers)]
    pred = normalize_answer(prediction)
    hits = [r == pred for r in refs]
    if not leave_one_out or len(refs) < 2:
        return min(1.0, sum(hits) / 3.0)
    total = sum(hits)
    return sum(min(1.0, (total - h) / 3.0) for h in hits) / len(refs)
