"""How far one chain of thought's path moved from another's (RQ5): token edit distance, the first differing
token and reasoning step, and the length ratio; text overlap and embedding cosine come from :mod:`.overlap` and
:mod:`.semantic`.

The edit distance is Levenshtein's over token ids (insertions, deletions and substitutions cost 1), computed by
nltk's ``edit_distance`` (nltk, which rouge-score needs, is in the ``text`` extra), normalised by the longer sequence so it lies in [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from visdepth.metrics.output.overlap import _import_text_metric, rouge_l

if TYPE_CHECKING:
    from visdepth.metrics.output.semantic import SentenceEncoder

#: a reasoning step ends at a line break or at sentence-final punctuation followed by white space
_STEP_END = re.compile(r"(?<=[.!?;])\s+|\n+")


def token_edit_distance(a: Sequence[int], b: Sequence[int]) -> float:
    """Levenshtein distance of two token-id sequences divided by the longer length (0: equal, 1: nothing in
    common position by position); two empty sequences are at distance 0."""
    a, b = [int(x) for x in a], [int(x) for x in b]
    if not a and not b:
        return 0.0
    distance = _import_text_metric("nltk.metrics.distance", "nltk")
    return distance.edit_distance(a, b) / max(len(a), len(b))


def first_difference(a: Sequence[Any], b: Sequence[Any]) -> int | None:
    """Index of the first position where ``a`` and ``b`` differ (the shorter length when one is a prefix of the
    other), ``None`` when they are equal."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def split_steps(text: str) -> list[str]:
    """The reasoning steps of a chain: its sentences and lines, stripped, empty ones left out."""
    return [s.strip() for s in _STEP_END.split(str(text)) if s.strip()]


def compare_trajectories(
    full_ids: Sequence[int],
    ids: Sequence[int],
    full_text: str,
    text: str,
    *,
    encoder: SentenceEncoder | None = None,
) -> dict[str, Any]:
    """Every trajectory measure of a chain (``ids``/``text``) against the reference chain (``full_*``).

    ``identical`` (same token ids), ``edit_distance`` (:func:`token_edit_distance`), ``rougeL`` (F1 of ``text``
    against ``full_text``), ``similarity`` (embedding cosine, with an ``encoder``), ``first_token`` and
    ``first_step`` (index of the first differing token / step, ``None`` when none differs) with ``*_rel``
    (that index over the reference's number of tokens / steps), and ``length_ratio`` (tokens over the
    reference's; ``None`` for an empty reference). Two empty texts are identical (overlap and cosine 1); one
    empty text against a non-empty one has overlap and cosine 0.
    """
    full_ids, ids = [int(x) for x in full_ids], [int(x) for x in ids]
    full_steps, steps = split_steps(full_text), split_steps(text)
    tok, step = first_difference(full_ids, ids), first_difference(full_steps, steps)
    a, b = str(full_text).strip(), str(text).strip()
    out: dict[str, Any] = {
        "identical": float(full_ids == ids),
        "edit_distance": token_edit_distance(full_ids, ids),
        "rougeL": 1.0 if not a and not b else (rouge_l(b, a) if a and b else 0.0),
        "first_token": tok,
        "first_token_rel": None if tok is None or not full_ids else tok / len(full_ids),
        "first_step": step,
        "first_step_rel": None if step is None or not full_steps else step / len(full_steps),
        "length_ratio": len(ids) / len(full_ids) if full_ids else None,
    }
    if encoder is not None:
        out["similarity"] = 1.0 if not a and not b else (encoder.similarity(a, b) if a and b else 0.0)
    return out
