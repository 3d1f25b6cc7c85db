"""RQ5's summary per task and cut from the rows: the paper's claim as shares with bootstrap intervals (chain
differs, answer differs, same answer by another path), trajectory measures, accuracies of the direct answer,
the chain of thought, budget-capped chains and the teacher-forced answer, and the largest divergences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from visdepth.results.schemas.reason import Interval, ReasonTaskSummary

#: the trajectory measures averaged per cut (first_*_rel over the samples whose chain differs)
TRAJECTORY_KEYS = (
    "edit_distance",
    "rougeL",
    "similarity",
    "first_token_rel",
    "first_step_rel",
    "length_ratio",
)


def interval(values: Sequence[float | None], *, resamples: int, level: float, seed: int) -> Interval:
    """Mean of ``values`` (``None`` left out) with a percentile bootstrap interval over samples (scipy)."""
    x = np.array([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return Interval(mean=None, low=None, high=None, n=0)
    mean = float(x.mean())
    if x.size == 1 or resamples == 0 or np.all(x == x[0]):
        # a constant sample has a degenerate interval (scipy warns and returns NaN for it)
        return Interval(mean=mean, low=mean, high=mean, n=int(x.size))
    res = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=resamples,
        confidence_level=level,
        method="percentile",
        random_state=np.random.default_rng(seed),
        vectorized=True,
    )
    return Interval(
        mean=mean,
        low=float(res.confidence_interval.low),
        high=float(res.confidence_interval.high),
        n=int(x.size),
    )


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def claim_values(row: dict[str, Any]) -> dict[str, float]:
    """The per-sample indicators behind the claim: the reasoning path differs (its tokens are not the full
    model's), the final answer differs (not both extracted and equal), both at once or one without the other,
    and their paired difference."""
    path = 1.0 - row["trajectory"]["identical"]
    answer = 1.0 - row["answer"]["agreement"]
    return {
        "chain_differs": path,
        "answer_differs": answer,
        "same_answer_different_path": float(path == 1 and answer == 0),
        "different_answer_same_path": float(path == 0 and answer == 1),
        "gap": path - answer,
    }


def summarise_task(
    task_info: dict[str, Any],
    rows_by_cut: list[list[dict[str, Any]]],
    budgets: Sequence[float],
    *,
    resamples: int,
    level: float,
    seed: int,
    examples: int,
) -> ReasonTaskSummary:
    """Per cut (``rows_by_cut[j]`` holds the rows of cut j, the samples in the same order at every cut)."""

    def iv(values: Sequence[float | None], j: int) -> Interval:
        return interval(values, resamples=resamples, level=level, seed=seed + j)

    shares: dict[str, list[Interval]] = {}
    for key in (
        "chain_differs",
        "answer_differs",
        "same_answer_different_path",
        "different_answer_same_path",
    ):
        shares[key] = [iv([claim_values(r)[key] for r in rows], j) for j, rows in enumerate(rows_by_cut)]
    gap = [iv([claim_values(r)["gap"] for r in rows], j) for j, rows in enumerate(rows_by_cut)]
    trajectory = {
        key: [_mean([r["trajectory"].get(key) for r in rows]) for rows in rows_by_cut]
        for key in TRAJECTORY_KEYS
    }
    accuracy: dict[str, list[Interval]] = {
        "cot": [iv([r["answer"]["accuracy"] for r in rows], j) for j, rows in enumerate(rows_by_cut)]
    }
    agreement: dict[str, list[float | None]] = {
        "cot": [_mean([r["answer"]["agreement"] for r in rows]) for rows in rows_by_cut]
    }
    unextracted: dict[str, list[int]] = {
        "cot": [sum(not r["answer"]["found"] for r in rows) for rows in rows_by_cut]
    }
    parts = [("direct", lambda r: r.get("direct"))]
    parts += [(f"budget_{b:g}", lambda r, b=b: r["budgets"].get(f"{b:g}")) for b in budgets]
    parts += [("teacher_forced", lambda r: r.get("teacher_forced"))]
    for label, get in parts:
        if not any(get(r) for rows in rows_by_cut for r in rows):
            continue
        accuracy[label] = [
            iv([get(r)["accuracy"] for r in rows if get(r)], j) for j, rows in enumerate(rows_by_cut)
        ]
        agreement[label] = [_mean([get(r)["agreement"] for r in rows if get(r)]) for rows in rows_by_cut]
        unextracted[label] = [sum(get(r)["answer"] is None for r in rows if get(r)) for rows in rows_by_cut]
    full_rows = rows_by_cut[-1]
    return ReasonTaskSummary(
        task=task_info,
        num_samples=len(full_rows),
        prompt_sources=_count(r["prompt_source"] for r in full_rows),
        full_unextracted=sum(not r["chain"]["answer_found"] for r in full_rows),
        shares=shares,
        gap=gap,
        trajectory=trajectory,
        accuracy=accuracy,
        agreement=agreement,
        unextracted=unextracted,
        examples=largest_divergences([r for rows in rows_by_cut[:-1] for r in rows], examples),
        same_answer_examples=same_answer_other_path([r for rows in rows_by_cut[:-1] for r in rows], examples),
    )


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def _example(r: dict[str, Any]) -> dict[str, Any]:
    """One row as a reader's example: both chains, both answers, the ground truth and every measure."""
    return {
        "sample": r["sample"],
        "cut": r["cut"],
        "depth": r["depth"],
        "prompt": r["prompt"],
        "ground_truth": r["ground_truth"],
        "full_chain": r["full"]["text"],
        "chain": r["chain"]["text"],
        "full_answer": r["full"]["answer"],
        "answer": r["chain"]["answer"],
        "same_answer": bool(r["answer"]["agreement"]),
        "trajectory": dict(r["trajectory"]),
        "teacher_forced_answer": (r.get("teacher_forced") or {}).get("answer"),
        "direct_answer": (r.get("direct") or {}).get("answer"),
    }


def _one_per_sample(ranked: Any, n: int) -> list[dict[str, Any]]:
    out, seen = [], set()
    for r in ranked:
        if len(out) == n:
            break
        if r["sample"] not in seen:
            seen.add(r["sample"])
            out.append(_example(r))
    return out


def same_answer_other_path(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` "same answer, different path" rows at the deepest cuts (one per sample, cuts below L): the full
    model's conclusion reached by another chain, where the least image depth was lost."""
    hits = [r for r in rows if r["trajectory"]["identical"] == 0 and r["answer"]["agreement"] == 1]
    return _one_per_sample(sorted(hits, key=lambda r: (-r["cut"], r["trajectory"]["rougeL"])), n)


def largest_divergences(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` rows (one per sample, cuts below L) whose reasoning moved furthest from the full model's:
    lowest ROUGE-L, then largest token edit distance, then the shallower cut; each with both chains, both
    answers, the ground truth and every measure."""
    ranked = sorted(
        (r for r in rows if r["trajectory"]["identical"] == 0),
        key=lambda r: (r["trajectory"]["rougeL"], -r["trajectory"]["edit_distance"], r["cut"]),
    )
    return _one_per_sample(ranked, n)
