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


def check_answer_pattern(pattern: str, option: str = "--answer_pattern") -> re.Pattern[str]:
    """``pattern`` compiled (case-insensitive), or a one-line :class:`ConfigError` when it is not a valid regular
    expression or has no group to capture the answer."""
    try:
        return _compile(pattern)
    except re.error as err:
        raise ConfigError(
            f"{option} {pattern!r} is not a valid regular expression ({err}); fix it, e.g. "
            "'answer is (?P<answer>\\w+)'"
        ) from None
    except ConfigError:
        raise ConfigError(
            f"{option} {pattern!r} has no group for the answer; put (?P<answer>...) (or a plain group) around it"
        ) from None


class ChainSplit(NamedTuple):
    """A chain of thought located in its raw text: the reasoning, the final answer (``None`` if absent) and the
    character offset where the final-answer part begins (``len(text)`` when there is none), so the reasoning is
    ``text[:answer_start]`` up to surrounding white space and reasoning tags."""

    reasoning: str
    answer: str | None
    answer_start: int


def _clean_answer(answer: str | None) -> str | None:
    answer = (answer or "").replace("**", "").replace("__", "").strip().strip("\"'`").strip()
    return answer or None


def locate_answer(
    text: str, pattern: str | re.Pattern[str] = DEFAULT_ANSWER_PATTERN, reasoning_tags: str | None = None
) -> ChainSplit:
    """Where the final answer of a chain of thought starts, on the raw text (offsets stay valid).

    Without ``reasoning_tags``: the *last* match of ``pattern`` (as :func:`split_reasoning`, but matched on the
    raw text; markdown markers are removed from the answer only). With ``reasoning_tags="think"``: as lmms-eval's
    ``--reasoning_tags`` option, the ``<think>...</think>`` blocks are the reasoning (their tags removed) and the
    text after the last closing tag is the response, whose answer is the last match of ``pattern`` in it, or the
    whole response when the pattern does not match it; a text without a closing tag is read as if untagged.
    """
    compiled = _compile(pattern) if isinstance(pattern, str) else pattern
    text = str(text)
    if reasoning_tags:
        close = f"</{reasoning_tags}>"
        end = text.rfind(close)
        if end >= 0:
            end += len(close)
            thought = re.sub(rf"</?{re.escape(reasoning_tags)}>", " ", text[:end])
            response = text[end:]
            matches = list(compiled.finditer(response))
            answer = _match_answer(compiled, matches[-1]) if matches else _clean_answer(response)
            return ChainSplit(" ".join(thought.split()), answer, end)
    matches = list(compiled.finditer(text))
    if not matches:
        return ChainSplit(text.strip(), None, len(text))
    last = matches[-1]
    return ChainSplit(text[: last.start()].strip(), _match_answer(compiled, last), last.start())


def _match_answer(compiled: re.Pattern[str], match: re.Match[str]) -> str | None:
    return _clean_answer(match.group("answer") if "answer" in compiled.groupindex else match.group(1))
