"""Chain of thought: split generated text into reasoning and final answer, and compare two of them (RQ5)."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, NamedTuple

from visdepth.errors import ConfigError
from visdepth.metrics.output.answers import normalize_answer
from visdepth.metrics.output.overlap import rouge_l, sentence_bleu

if TYPE_CHECKING:
    from visdepth.metrics.output.semantic import SentenceEncoder

# "the answer is X", "final answer: X", "so the final answer is X." (visdepth's shapes set), "Answer: (B)";
# an optional connective ("so", "therefore", ...) belongs to the answer phrase, not to the reasoning. The answer
# runs to the end of its sentence: a period followed by a space or the end, or a line break.
DEFAULT_ANSWER_PATTERN = (
    r"(?:\b(?:so|thus|therefore|hence)\s*,?\s+)?(?:\bthe\s+)?(?:\bfinal\s+)?\banswer"
    r"(?:\s+is\s*:?|\s*:)\s*(?P<answer>[^\n]*?)\s*(?:\.(?=\s|$)|\n|$)"
)


class ReasoningSplit(NamedTuple):
    """A chain of thought cut into the reasoning before the final answer and the answer (``None`` if absent)."""

    reasoning: str
    answer: str | None


@functools.lru_cache(maxsize=32)
def _compile(pattern: str) -> re.Pattern[str]:
    compiled = re.compile(pattern, re.IGNORECASE)
    if "answer" not in compiled.groupindex and compiled.groups < 1:
        raise ConfigError(
            f"answer pattern {pattern!r} has no group for the answer; add (?P<answer>...) around it"
        )
    return compiled


def split_reasoning(text: str, pattern: str | re.Pattern[str] = DEFAULT_ANSWER_PATTERN) -> ReasoningSplit:
    """Split generated text into (reasoning, final answer) at the *last* match of ``pattern``.

    ``pattern`` is a regular expression (string patterns are case-insensitive) whose group ``answer`` (or
    first group) captures the answer; the reasoning is the text before the match. Markdown bold markers are
    dropped first (``**Answer:** B``) and the answer is stripped of quotes and surrounding brackets' spaces.
    Without a match the whole text is the reasoning and the answer is ``None``.
    """
    compiled = _compile(pattern) if isinstance(pattern, str) else pattern
    clean = str(text).replace("**", "").replace("__", "")
    matches = list(compiled.finditer(clean))
    if not matches:
        return ReasoningSplit(clean.strip(), None)
    last = matches[-1]
    answer = last.group("answer") if "answer" in compiled.groupindex else last.group(1)
    answer = (answer or "").strip().strip("\"'`").strip()
    return ReasoningSplit(clean[: last.start()].strip(), answer or None)


def compare_reasoning(
    full: str,
    modified: str,
    *,
    pattern: str | re.Pattern[str] = DEFAULT_ANSWER_PATTERN,
    encoder: SentenceEncoder | None = None,
) -> dict[str, float]:
    """How a modified model's chain of thought differs from the full model's (PAPER.md RQ5).

    Returns ``answer_agreement`` (1.0 when both final answers were found and are equal after
    :func:`normalize_answer`), ``reasoning_rougeL`` and ``reasoning_bleu`` of the modified reasoning against the
    full one, and ``reasoning_similarity`` when an ``encoder`` is given. Empty reasoning on both sides counts
    as identical.
    """
    a, b = split_reasoning(full, pattern), split_reasoning(modified, pattern)
    agree = (
        a.answer is not None
        and b.answer is not None
        and normalize_answer(a.answer) == normalize_answer(b.answer)
    )
    out = {"answer_agreement": float(agree)}
    if not a.reasoning and not b.reasoning:
        out.update(reasoning_rougeL=1.0, reasoning_bleu=100.0)
        if encoder is not None:
            out["reasoning_similarity"] = 1.0
        return out
    out["reasoning_rougeL"] = rouge_l(b.reasoning, a.reasoning)
    out["reasoning_bleu"] = sentence_bleu(b.reasoning, a.reasoning)
    if encoder is not None:
        out["reasoning_similarity"] = encoder.similarity(a.reasoning, b.reasoning)
    return out
