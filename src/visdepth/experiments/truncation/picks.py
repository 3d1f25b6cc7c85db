"""Depth picks of RQ3: the shallowest cut that keeps a quality budget, and VTW's KL criterion, under a
pick rule (a quality or KL curve need not be monotone in the cut)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from visdepth.errors import ConfigError
from visdepth.results.schemas.truncate import (
    PICK_RULES,
    DepthPick,
    PickRule,
)

#: how a depth pick reads a criterion on a curve that need not be monotone in the cut
PICK_RULE_TEXT = {
    "stable": "the shallowest evaluated cut that meets the criterion with every deeper evaluated cut meeting it "
    "too (stable from there on: a deeper cut that fails it moves the pick past that cut)",
    "first": "the shallowest evaluated cut that meets the criterion (taken literally: a deeper cut may still "
    "fail it)",
}


# ---------------------------------------------------------------------------------------------- depth picks
def _pick(
    cuts: Sequence[int], meets: Sequence[bool | None], rule: PickRule, what: str
) -> tuple[int | None, str | None]:
    """The cut ``rule`` picks given whether each cut meets a criterion (``None``: the cut has no value, so it
    neither meets the criterion nor breaks its stability), and a note when ``first`` and ``stable`` disagree.

    ``first``: the shallowest cut that meets it; ``stable``: the shallowest cut from which every deeper evaluated
    cut meets it too. ``what`` names the criterion in the note ("the budget", "the threshold")."""
    if rule not in PICK_RULES:
        raise ConfigError(f"pick_rule {rule!r} is unknown; use {', '.join(PICK_RULES)}.")
    first = next((c for c, m in zip(cuts, meets, strict=True) if m), None)
    stable, broken = None, None  # broken: the deepest cut that has a value and fails
    for c, m in zip(reversed(cuts), reversed(meets), strict=True):
        if m is False:
            broken = c
            break
        if m:
            stable = c
    if first == stable:
        return first, None
    tail = f"stable from cut {stable}" if stable is not None else "no cut is stable"
    note = f"cut {first} meets {what} but cut {broken} does not; {tail}"
    return (stable if rule == "stable" else first), note


def budget_cut(
    cuts: Sequence[int], quality: Sequence[float | None], budget: float, rule: PickRule = "stable"
) -> tuple[int | None, str | None]:
    """The shallowest cut whose quality is at least ``budget`` times the quality of the deepest cut (the full
    model), every deeper evaluated cut too when ``rule`` is ``stable``; and a note when the answer is degenerate
    or the two rules disagree. ``cuts`` ascend and end at L; a cut without a quality score is skipped."""
    full = quality[-1]
    if full is None:
        return None, "no quality score at the full model"
    if full <= 0:
        return cuts[0], "the full model scores 0: every cut keeps all of it, so the shallowest is reported"
    meets = [None if q is None else bool(q >= budget * full) for q in quality]
    return _pick(cuts, meets, rule, "the budget")


def vtw_cut(
    cuts: Sequence[int], kl: Sequence[float | None], threshold: float, rule: PickRule = "stable"
) -> tuple[int | None, str | None]:
    """VTW's criterion: the shallowest cut whose mean KL(full || cut) is at most ``threshold``, every deeper
    evaluated cut's too when ``rule`` is ``stable``; and a note when the two rules disagree."""
    meets = [None if v is None else bool(v <= threshold) for v in kl]
    return _pick(cuts, meets, rule, "the threshold")


def _depth_pick(
    criterion: Literal["budget", "vtw"],
    cut: int | None,
    note: str | None,
    cuts: list[int],
    quality: list[float | None] | None,
    compute: dict[str, list[float]],
    kl: list[float | None],
) -> DepthPick:
    j = cuts.index(cut) if cut is not None else None
    q = quality[j] if quality is not None and j is not None else None
    full = quality[-1] if quality is not None else None

    def at(values: list[Any]) -> Any:
        return None if j is None else values[j]

    return DepthPick(
        criterion=criterion,
        cut=cut,
        depth=None if cut is None else cut / cuts[-1],
        quality=q,
        full_quality=full,
        quality_ratio=q / full if q is not None and full else None,
        kl=at(kl),
        prefill_flops_ratio=at(compute["prefill_flops_ratio"]),
        decode_flops_ratio=at(compute["decode_flops_ratio"]),
        kv_cache_bytes_ratio=at(compute["kv_cache_bytes_ratio"]),
        drop_prefill_flops_ratio=at(compute["drop_prefill_flops_ratio"]),
        note=note,
    )
