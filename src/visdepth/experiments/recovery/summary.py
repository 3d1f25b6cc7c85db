"""RQ4 numbers from the rows: per kind and model, mean scores per strategy; per cut, the recovered fraction with
a bootstrap interval; per model, the spread across decoding runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from visdepth.metrics import output as om
from visdepth.results.schemas.recover import Interval, KindRecovery, Recovery, Spread

#: the comparison with the teacher's greedy output that each kind is judged by (captions: as the paper, by
#: sentence similarity)
TEACHER_SCORE = {
    "single_token": "agreement",
    "multiple_choice": "agreement",
    "exact_match": "agreement",
    "caption": "similarity",
    "reasoning": "answer_agreement",
    "open": "similarity",
}
N_BOOT = 1000


def fraction(
    full: np.ndarray, trunc: np.ndarray, rec: np.ndarray, seed: int, n_boot: int = N_BOOT
) -> Interval:
    """(rec - trunc) / (full - trunc) of the means over questions, with a percentile bootstrap (questions
    resampled with replacement; resamples where full = truncated are left out)."""

    def ratio(f, t, r):
        gap = f.mean() - t.mean()
        return None if abs(gap) < 1e-12 else float((r.mean() - t.mean()) / gap)

    value = ratio(full, trunc, rec)
    if value is None:
        return Interval(
            value=None,
            low=None,
            high=None,
            n_boot=0,
            note="full and truncated score the same: nothing to recover",
        )
    rng = np.random.default_rng(seed)
    n = len(full)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        b = ratio(full[i], trunc[i], rec[i])
        if b is not None:
            boots.append(b)
    if not boots:
        return Interval(value=value, low=None, high=None, n_boot=0, note="no resample has a gap")
    low, high = np.percentile(boots, [2.5, 97.5])
    note = None if len(boots) == n_boot else f"{n_boot - len(boots)} resamples without a gap left out"
    return Interval(value=value, low=float(low), high=float(high), n_boot=len(boots), note=note)


def _mean_scores(dicts: list[list[dict[str, float]]]) -> dict[str, float]:
    """Mean of every metric over questions and draws."""
    flat = [d for per_q in dicts for d in per_q]
    keys = dict.fromkeys(k for d in flat for k in d)
    return {k: float(np.mean([d[k] for d in flat if k in d])) for k in keys}


def main_values(
    rows: list[dict[str, Any]], section: str, model: str, strategy: str, metric: str
) -> np.ndarray:
    """(questions, runs) array of one metric; NaN where a run lacks it."""
    return np.array([[d.get(metric, np.nan) for d in r[section][model][strategy]] for r in rows], dtype=float)


def spread(rows: list[dict[str, Any]], model: str, strategies: list[str], metric: str | None) -> Spread:
    runs, per_run, per_question = [], [], []
    for st in strategies:
        k = len(rows[0]["outputs"][model][st])
        runs += [st] if k == 1 else [f"{st}#{i}" for i in range(k)]
        if metric is not None:
            values = main_values(rows, "scores", model, st, metric)
            per_run += list(np.nanmean(values, axis=0))
            per_question.append(values)
    texts = [[om.normalize_answer(t) for st in strategies for t in r["outputs"][model][st]] for r in rows]
    consistency = float(np.mean([len(set(t)) == 1 for t in texts])) if rows else None
    if metric is None:
        return Spread(
            runs=runs,
            scores=[],
            std=None,
            range=None,
            consistency=consistency,
            question_variance=None,
            question_std=None,
        )
    q = np.concatenate(per_question, axis=1)
    return Spread(
        runs=runs,
        scores=[float(v) for v in per_run],
        std=float(np.std(per_run)),
        range=float(np.max(per_run) - np.min(per_run)),
        consistency=consistency,
        question_variance=float(np.mean(np.nanvar(q, axis=1))),
        question_std=float(np.mean(np.nanstd(q, axis=1))),
    )


def summarise_kind(
    kind: str, main: str | None, rows: list[dict[str, Any]], cuts: list[int], strategies: list[str], seed: int
) -> KindRecovery:
    models = list(rows[0]["outputs"])
    teacher_metric = TEACHER_SCORE[kind]
    scores = {m: {st: _mean_scores([r["scores"][m][st] for r in rows]) for st in strategies} for m in models}
    teacher = {
        m: {st: _mean_scores([r["teacher"][m][st] for r in rows]) for st in strategies} for m in models
    }
    recovery = {}
    for cut in cuts:
        t, r = f"truncated@{cut}", f"recovered@{cut}"

        def greedy(section: str, model: str, metric: str | None) -> np.ndarray | None:
            if metric is None:
                return None
            values = main_values(rows, section, model, "greedy", metric)[:, 0]
            return None if np.isnan(values).any() else values

        gt = [greedy("scores", m, main) for m in ("full", t, r)]
        te = [greedy("teacher", m, teacher_metric) for m in ("full", t, r)]

        def mean(v):
            return None if v is None else float(v.mean())

        def frac(vs, cut=cut):
            if any(v is None for v in vs):
                return Interval(value=None, low=None, high=None, n_boot=0, note="no score")
            return fraction(*vs, seed=seed + cut)

        recovery[str(cut)] = Recovery(
            cut=cut,
            full=mean(gt[0]),
            truncated=mean(gt[1]),
            recovered=mean(gt[2]),
            fraction=frac(gt),
            teacher_full=mean(te[0]),
            teacher_truncated=mean(te[1]),
            teacher_recovered=mean(te[2]),
            teacher_fraction=frac(te),
        )
    return KindRecovery(
        kind=kind,
        n=len(rows),
        main_score=main,
        teacher_score=teacher_metric,
        scores=scores,
        teacher=teacher,
        recovery=recovery,
        spread={m: spread(rows, m, strategies, main) for m in models},
    )
