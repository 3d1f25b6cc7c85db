"""Per task and kind, the per-cut scores, closeness to the full model, KL and analytic cost, summarised from
the rows, with the depth picks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from visdepth.data import Sample
from visdepth.experiments.common import LayerStats, column_stats
from visdepth.experiments.truncation.measure import COST_KEYS, ENCODER_KINDS, SWEEP_KINDS  # noqa: F401
from visdepth.experiments.truncation.picks import PICK_RULE_TEXT, _depth_pick, budget_cut, vtw_cut  # noqa: F401
from visdepth.metrics import output as om
from visdepth.results.schemas.truncate import (
    KindSummary,
    TaskSummary,
)
from visdepth.tasks import Task, score_names

if TYPE_CHECKING:  # the config is the experiment's; only its fields are read here
    from visdepth.experiments.truncate import TruncateConfig


# ---------------------------------------------------------------------------------------------- summary
def _per_cut(
    task: Task,
    group: list[Sample],
    rows: list[dict[str, Any]],
    key: str,
    ncuts: int,
    predictions: bool = False,
) -> dict[str, list[float | None]]:
    """``task.aggregate`` of the rows' ``key`` dicts (scores or agreement) at every cut: name -> value per cut.

    ``bleu`` is corpus BLEU over the group's samples at each cut and ``bleu_sentence`` the mean of their sentence
    BLEU: scores (``predictions``) against the references, agreement against the full model's outputs.
    """
    kind = task.kind_of(group[0])
    per_cut = []
    for j in range(ncuts):
        preds = [r["prediction"][j] for r in rows] if predictions else None
        summary = task.aggregate(group, [r[key][j] for r in rows], preds)[kind]
        summary.pop("n")
        if not predictions and "bleu_sentence" in summary:
            summary["bleu"] = _corpus_bleu_vs_full(rows, j)
        per_cut.append(summary)
    names = dict.fromkeys(k for s in per_cut for k in s)
    return {k: [s.get(k) for s in per_cut] for k in names}


def _corpus_bleu_vs_full(rows: list[dict[str, Any]], j: int) -> float:
    """Corpus BLEU of the outputs at cut index ``j`` against the full model's (the last cut): 100 when every
    output is the full model's, which sacrebleu scores 0 on short or empty texts (too few 4-grams)."""
    hyps = [str(r["prediction"][j]).strip() for r in rows]
    refs = [str(r["prediction"][-1]).strip() for r in rows]
    if hyps == refs:
        return 100.0
    return om.corpus_bleu(hyps, [[ref] for ref in refs])


def rows_in_mode(rows: list[dict[str, Any]], mode: str, modes: list[str]) -> list[dict[str, Any]]:
    """The rows as a single-mode run in ``mode`` would have written them (the first mode sits at the top)."""
    if mode == modes[0]:
        return rows
    return [{**r, **r["by_mode"][mode]} for r in rows]


def summarise_compute(rows: list[dict[str, Any]], mode: str = "drop") -> dict[str, list[float]]:
    """Mean analytic cost per cut over samples, and its ratio to the full model's mean (the share of the total
    compute of these samples that a cut spends), as computed in ``mode``.

    Rows hold the mode's own cost (``compute``: mask mode computes every image token in every block, so its cost
    is the full model's at every cut; the processing modes save prefill FLOPs only) and drop mode's
    (``drop_compute``), which ``drop_<cost>`` and ``drop_<cost>_ratio`` always give (in another mode's run:
    what drop mode would save). Rows written before ``drop_compute`` existed held drop-mode figures under
    ``compute``."""
    out: dict[str, list[float]] = {}
    drop: dict[str, np.ndarray] = {}
    legacy = "drop_compute" not in rows[0]
    for key in COST_KEYS:
        drop[key] = np.mean([r["compute" if legacy else "drop_compute"][key] for r in rows], axis=0)
        if legacy:
            spent = drop[key] if mode == "drop" else np.full_like(drop[key], drop[key][-1])
        else:
            spent = np.mean([r["compute"][key] for r in rows], axis=0)
        out[key] = spent.tolist()
        out[f"{key}_ratio"] = (spent / spent[-1]).tolist()
    for key in COST_KEYS:
        out[f"drop_{key}"] = drop[key].tolist()
        out[f"drop_{key}_ratio"] = (drop[key] / drop[key][-1]).tolist()
    return out


def _kl_stats(rows: list[dict[str, Any]]) -> LayerStats:
    return column_stats(np.array([r["kl"] for r in rows], dtype=float))


def summarise_task(
    task: Task,
    samples: list[Sample],
    rows: list[dict[str, Any]],
    calibration_rows: list[dict[str, Any]],
    calibration_info: dict[str, Any],
    config: TruncateConfig,
    cuts: list[int],
    mode: str | None = None,
) -> TaskSummary:
    """Per kind and for the whole task, in ``mode`` (default: the run's first): mean scores, agreement, KL and
    cost per cut; the budget and VTW picks; the layer contribution of the calibration rows that carry one."""
    mode = mode or config.modes[0]
    ncuts = len(cuts)
    by_id = {r["sample"]: r for r in rows}
    calibration_kl = (
        np.mean([r["kl"] for r in calibration_rows], axis=0).tolist() if calibration_rows else [None] * ncuts
    )
    if calibration_rows:
        vtw, vtw_note = vtw_cut(cuts, calibration_kl, config.vtw_threshold, config.pick_rule)
    else:
        vtw, vtw_note = None, "no calibration samples"
    kinds: dict[str, KindSummary] = {}
    for kind, group in task.group(samples).items():
        kind_rows = [by_id[s.id] for s in group]
        scores = _per_cut(task, group, kind_rows, "scores", ncuts, predictions=True)
        main = score_names(kind, task.answer_metric)[0] if kind != "open" else None
        quality = scores.get(main) if main else None
        compute = summarise_compute(kind_rows, mode)
        kl = _kl_stats(kind_rows)
        pick = None
        if quality is not None:
            pick = _depth_pick(
                "budget",
                *budget_cut(cuts, quality, config.budget, config.pick_rule),
                cuts,
                quality,
                compute,
                kl.mean,
            )
        kinds[kind] = KindSummary(
            kind=kind,
            n=len(group),
            main_score=main,
            scores=scores,
            agreement=_per_cut(task, group, kind_rows, "agreement", ncuts),
            kl=kl,
            compute=compute,
            budget=pick,
            vtw=_depth_pick("vtw", vtw, vtw_note, cuts, quality, compute, calibration_kl),
        )
    mains = [k.scores[k.main_score] for k in kinds.values() if k.main_score in k.scores]
    quality = [
        float(np.mean(vals)) if (vals := [m[j] for m in mains if m[j] is not None]) else None
        for j in range(ncuts)
    ]
    compute = summarise_compute(rows, mode)
    kl = _kl_stats(rows)
    contributed = [r["contribution"] for r in calibration_rows if r.get("contribution") is not None]
    return TaskSummary(
        task=task.describe(),
        num_samples=len(samples),
        kinds=kinds,
        quality=quality,
        kl=kl,
        compute=compute,
        calibration={**calibration_info, "kl_mean": calibration_kl},
        budget=_depth_pick(
            "budget",
            *budget_cut(cuts, quality, config.budget, config.pick_rule),
            cuts,
            quality,
            compute,
            kl.mean,
        ),
        vtw=_depth_pick("vtw", vtw, vtw_note, cuts, quality, compute, calibration_kl),
        contribution=column_stats(np.array(contributed, dtype=float)) if contributed else None,
    )
