"""One self-contained HTML report of a run folder, built from its result files alone.

:func:`build_report` finds the experiment folders under a run folder (``<output_path>/<model slug>``: every
subfolder holding a ``results.json``), validates each result, redraws its figures with the plotting functions of
this package, derives the key numbers and a reading of them, sets the paper's claims beside what was measured
(with the rule that gives each verdict), and writes ``report.html``. Every figure is embedded as a PNG data URI
and the stylesheet is inline, so the page opens offline and makes no request.

Rules used for the readings (their wording is printed in the report next to each verdict):

- settling (RQ1): a metric's median curve *settles* at the first layer from which every deeper layer stays within
  ``settle_tol`` x its final value (a relative band: scale-free, so image and text, entropy and intrinsic
  dimension are judged alike, and one outlying layer, e.g. the text embeddings' large ID, does not widen it);
- interchangeability depth (RQ2): the smallest grid depth l_b from which, for this and every deeper l_b, every
  swap of the image states from another depth l_a keeps the similarity to the unmodified output >= ``swap_level``;
- safe cut (RQ3): the budget pick the truncation run already made (quality >= budget x the full model's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from visdepth.errors import VisdepthError
from visdepth.report.labels import model_label
from visdepth.report.page import Section, Verdict, combine, fmt, pct
from visdepth.report.page import embed_figures as _figures
from visdepth.report.page import table as _table
from visdepth.report.recover import CLAIM as RQ4_CLAIM
from visdepth.report.recover import rq4_section
from visdepth.results.io import read_json, write_text_atomic

# the result schemas, apart from the experiments that compute them
from visdepth.results.schemas.dynamics import DynamicsResult
from visdepth.results.schemas.reason import ReasonResult
from visdepth.results.schemas.recover import RecoverResult
from visdepth.results.schemas.swap import SwapResult
from visdepth.results.schemas.truncate import TruncateResult

#: a metric has settled once every deeper layer stays within this share of its range of the final value
SETTLE_TOL = 0.10
#: RQ1 "shallow": image metrics settle in the first half of the decoder
SHALLOW_DEPTH = 0.5
#: RQ1 "text keeps changing": text settles at least this much deeper (normalised depth) than image
SETTLE_GAP = 0.25
#: RQ2 "almost unchanged": the level a swap must keep (similarity, first-token agreement)
SWAP_LEVEL = 0.95
#: RQ2 "almost unchanged" for KL: at most this many nats
SWAP_KL = 0.1
#: RQ2 "the control does not": the control is worse than image by at least this (similarity, agreement)
SWAP_MARGIN = 0.05
#: across questions: a depth predicts the safe cut when within this normalised depth (or one layer, if more)
PREDICT_TOL = 0.1

RQ1_METRICS = ("entropy_norm", "id_twonn")
RQ2_METRICS = ("similarity", "first_token", "kl")
SHORT = {"similarity": "similarity", "first_token": "first-token agreement", "kl": "KL (nats)"}
#: RQ3 kinds in the paper's predicted order of degradation (single-token and multiple-choice form one step)
KIND_STEPS = (("single_token", "multiple_choice"), ("exact_match",), ("caption",))
STEP_NAMES = ("single-token answers", "short exact-match VQA", "multi-token generation (captions)")

CLAIMS = {
    "rq1": "Image-token entropy and intrinsic dimension settle in shallow layers and stay flat, while text tokens "
    "keep changing throughout depth.",
    "rq2": "Swapping image-token states between depths leaves the output almost unchanged (similarity about 1.0 "
    "whatever the gap); swapping text-token states does not.",
    "rq3": "Under depth-wise visual truncation, single-token answers degrade smoothly, short exact-match VQA "
    "clearly, and multi-token generation (captions) most.",
    "rq4": RQ4_CLAIM,
    "rq5": "Under greedy decoding, reducing visual depth perturbs the reasoning path more than the final answer.",
}
TITLES = {
    "dynamics": "RQ1 · Representation dynamics",
    "swap": "RQ2 · Interchangeability (layer substitution)",
    "truncate": "RQ3 · Depth-wise visual truncation",
    "recover": "RQ4 · Recoverability (LoRA self-distillation)",
    "reason": "RQ5 · Reasoning under truncation",
}
SCHEMAS: dict[str, type[BaseModel]] = {
    "dynamics": DynamicsResult,
    "swap": SwapResult,
    "truncate": TruncateResult,
    "recover": RecoverResult,
    "reason": ReasonResult,
}
KINDS = tuple(SCHEMAS)


# ---------------------------------------------------------------------------------------------- finding results
@dataclass
class Experiment:
    """One experiment folder: its kind, its validated result, or why it could not be read."""

    kind: str
    folder: Path
    result: Any = None
    error: str | None = None

    @property
    def name(self) -> str:
        return self.folder.name


def kind_of(folder: Path, data: Any) -> str | None:
    """Which experiment wrote a result: by folder name (dynamics, swap, truncate-*), else by its fields."""
    name = folder.name
    if name in ("dynamics", "swap", "recover"):
        return name
    if name.startswith("truncate"):
        return "truncate"
    if name.startswith("reason"):
        return "reason"
    if isinstance(data, dict):
        if "summary" in data and "token_cloud" in data:
            return "dynamics"
        if "matrices" in data and "off_diagonal" in data:
            return "swap"
        if "cuts" in data and "tasks" in data:
            return "truncate"
    return None


def find_experiments(run_dir: Path) -> list[Experiment]:
    """Every folder at or under ``run_dir`` holding a ``results.json``, loaded and validated (in path order)."""
    found: list[Experiment] = []
    for path in sorted(run_dir.rglob("results.json")):
        folder = path.parent
        try:
            data = read_json(path)
        except (OSError, ValueError) as err:
            kind = kind_of(folder, None)
            if kind:
                found.append(Experiment(kind, folder, error=f"{path.name} is not readable JSON: {err}"))
            continue
        kind = kind_of(folder, data)
        if kind is None:
            continue
        try:
            found.append(Experiment(kind, folder, result=SCHEMAS[kind].model_validate(data)))
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in err.errors()[:3]
            )
            found.append(
                Experiment(
                    kind, folder, error=f"does not match the {SCHEMAS[kind].__name__} schema: {problems}"
                )
            )
    return found


# ---------------------------------------------------------------------------------------------- small helpers
def _num(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def depth_text(depth: float | None, layer: int | None = None) -> str:
    if depth is None:
        return "never"
    return f"{depth:.2f}" + (f" (l = {layer})" if layer is not None else "")


# ---------------------------------------------------------------------------------------------- RQ1
def settle_band(values: Sequence[float | None], tol: float = SETTLE_TOL) -> float:
    """Half-width of the settling band: ``tol`` x |final value| (x the range when the final value is 0)."""
    y = _num(values)
    finite = y[np.isfinite(y)]
    if finite.size == 0:
        return 0.0
    final = abs(float(finite[-1]))
    return tol * (final if final > 0 else float(finite.max() - finite.min()))


def settle(values: Sequence[float | None], tol: float = SETTLE_TOL) -> int | None:
    """The first index from which every later finite value stays within ``tol`` x |last value| of the last one.

    ``None`` when the curve has fewer than two finite values. A flat curve settles at its first value.
    """
    y = _num(values)
    idx = np.flatnonzero(np.isfinite(y))
    if idx.size < 2:
        return None
    band = settle_band(values, tol)
    final = y[idx[-1]]
    start = idx[-1]
    for i in reversed(idx):
        if abs(y[i] - final) > band + 1e-12:
            break
        start = i
    return int(start)


def settle_rule(tol: float) -> str:
    return (
        f"a metric's median curve settles at the first layer l from which every deeper layer stays within "
        f"±{tol:.0%} of the final layer's value (|y_l' − y_L| ≤ {tol:g}·|y_L| for all l' ≥ l)"
    )


@dataclass
class Settling:
    metric: str
    group: str
    layer: int | None
    depth: float | None
    first: float | None
    final: float | None
    span: float | None


def rq1_settling(result: DynamicsResult, summary: dict[str, Any], tol: float) -> list[Settling]:
    out = []
    L = result.num_layers
    for metric in RQ1_METRICS:
        for group in ("image", "text"):
            stats = summary.get(group, {}).get(metric)
            if stats is None:
                continue
            y = _num(stats.median)
            at = settle(stats.median, tol)
            finite = y[np.isfinite(y)]
            out.append(
                Settling(
                    metric,
                    group,
                    None if at is None else result.layers[at],
                    None if at is None else result.layers[at] / L,
                    float(finite[0]) if finite.size else None,
                    float(finite[-1]) if finite.size else None,
                    float(finite.max() - finite.min()) if finite.size else None,
                )
            )
    return out


def _share(s: Settling) -> str:
    return pct(s.span / abs(s.final)) if s.span is not None and s.final else "–"


def image_settle_depth(result: DynamicsResult, tol: float = SETTLE_TOL) -> float | None:
    """The depth by which every RQ1 image metric has settled (the deepest of their settling depths)."""
    depths = [s.depth for s in rq1_settling(result, result.summary, tol) if s.group == "image"]
    return None if not depths or any(d is None for d in depths) else max(depths)  # type: ignore[type-var]


def plot_settling(result: DynamicsResult, folder: Path, tol: float = SETTLE_TOL) -> dict[str, Path]:
    """Image and text median curves of the RQ1 metrics with their settling depth and band marked."""
    import matplotlib.pyplot as plt

    from visdepth.report.dynamics import COLOURS
    from visdepth.results.schemas.dynamics import METRIC_LABELS

    metrics = [m for m in RQ1_METRICS if m in result.summary.get("image", {})]
    if not metrics:
        return {}
    settled = {(s.metric, s.group): s for s in rq1_settling(result, result.summary, tol)}
    depth = np.array(result.depth)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), dpi=150, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for group, colour in COLOURS.items():
            stats = result.summary.get(group, {}).get(metric)
            if stats is None:
                continue
            y = _num(stats.median)
            ax.plot(depth, y, color=colour, lw=2, label=f"{group} tokens")
            if result.baseline is not None and metric in result.baseline.get(group, {}):
                yb = _num(result.baseline[group][metric].median)
                ax.plot(depth, yb, color=colour, lw=1.1, ls="--", alpha=0.8, label=f"{group}, random init")
            s = settled.get((metric, group))
            if s is not None and s.depth is not None and s.final is not None:
                band = settle_band(stats.median, tol)
                ax.fill_between(
                    [s.depth, 1.0], s.final - band, s.final + band, color=colour, alpha=0.12, lw=0
                )
                ax.axvline(s.depth, color=colour, ls=":", lw=1.3)
                ax.annotate(
                    f"settles {s.depth:.2f}",
                    (s.depth, 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, -12 if group == "image" else -24),
                    textcoords="offset points",
                    fontsize=7,
                    color=colour,
                )
        ax.set_xlim(0, 1)
        ax.set_xlabel("normalised depth l / L")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3)
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=8)
    fig.suptitle(
        f"{model_label(result.model)} · settling (band: final value ±{tol:.0%})",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    path = folder / "settling.png"
    fig.savefig(path)
    plt.close(fig)
    return {"figure_settling": path}


def rq1_section(exp: Experiment, tol: float) -> tuple[Section, Verdict]:
    from visdepth.report.dynamics import plot_dynamics
    from visdepth.results.schemas.dynamics import METRIC_LABELS

    r: DynamicsResult = exp.result
    sec = _section(exp)
    sec.figures = _figures(
        # the overview carries every metric's panel; the single-metric files would repeat them
        lambda res, folder: {**plot_settling(res, folder, tol), **plot_dynamics(res, folder, metrics=())},
        r,
        {
            "figure_settling": "How the settling depths were read: each RQ1 metric's median curve, the dotted line "
            "where it settles and the shaded band it stays in from there (dashed: random-init twin).",
            "figure_overview": "Every metric against normalised depth: median over token clouds, band = IQR; "
            "dashed = random-init twin of the model (when measured).",
        },
    )
    rows = rq1_settling(r, r.summary, tol)
    base = {(s.metric, s.group): s for s in rq1_settling(r, r.baseline, tol)} if r.baseline else {}
    sec.tables.append(
        _table(
            "Settling of the RQ1 metrics (median over token clouds)",
            ["metric", "tokens", "at l = 0", "final", "range", "settles at l/L", "random init settles at"],
            [
                [
                    METRIC_LABELS.get(s.metric, s.metric),
                    s.group,
                    fmt(s.first),
                    fmt(s.final),
                    fmt(s.span),
                    depth_text(s.depth, s.layer),
                    depth_text(base[(s.metric, s.group)].depth)
                    if (s.metric, s.group) in base
                    else "not measured",
                ]
                for s in rows
            ],
            note=f"Rule: {settle_rule(tol)}. L = {r.num_layers}; {r.num_samples} samples, token cloud "
            f"{r.token_cloud}" + (f" (pools of ≤ {r.pool_size})" if r.pool_size else "") + ".",
        )
    )
    sec.tables.append(_tokens_table(r))
    # readings and the verdict, per metric
    votes: list[bool | None] = []
    measured = []
    by = {(s.metric, s.group): s for s in rows}
    for metric in RQ1_METRICS:
        img, txt = by.get((metric, "image")), by.get((metric, "text"))
        if img is None or txt is None or img.depth is None or txt.depth is None:
            votes.append(None)
            continue
        label = METRIC_LABELS.get(metric, metric)
        gap = txt.depth - img.depth
        # shallow image settling with text settling soon after is not the claim either
        votes.append(img.depth <= SHALLOW_DEPTH and gap >= SETTLE_GAP)
        where = "in the first half" if img.depth <= SHALLOW_DEPTH else "only in the second half"
        order = (
            f"{gap:.2f} of the depth later"
            if gap > 0
            else ("at the same depth" if gap == 0 else f"{-gap:.2f} of the depth earlier")
        )
        sec.readings.append(
            f"{label}: image tokens settle at l/L = {img.depth:.2f} (layer {img.layer} of {r.num_layers}, {where}); "
            f"text tokens settle at l/L = {txt.depth:.2f}, {order}. Over depth the image curve spans "
            f"{fmt(img.span)} ({_share(img)} of its final value {fmt(img.final)}), the text curve {fmt(txt.span)} "
            f"({_share(txt)} of {fmt(txt.final)})."
        )
        measured.append(f"{label}: image settles at {img.depth:.2f}, text at {txt.depth:.2f}")
        if (metric, "image") in base and base[(metric, "image")].depth is not None:
            b = base[(metric, "image")]
            diff = b.depth - img.depth
            if abs(diff) <= PREDICT_TOL:
                tail = " — about where the trained model settles (within 0.1), so training does not move it."
            else:
                tail = f" — {abs(diff):.2f} of the depth {'later' if diff > 0 else 'earlier'} than the trained model."
            sec.readings.append(
                f"{label}, random-init twin: image tokens settle at l/L = {b.depth:.2f}" + tail
            )
    if r.baseline is None:
        sec.readings.append("No random-init baseline in this run (run dynamics with --baseline to add one).")
    rule = (
        f"Settling: {settle_rule(tol)}. Per metric (normalised entropy, TwoNN intrinsic dimension), the claim is "
        f"supported when image tokens settle at l/L ≤ {SHALLOW_DEPTH} and text tokens settle at least "
        f"{SETTLE_GAP} of the depth later; contradicted otherwise. Holds: both metrics support; does not hold: "
        "neither does; mixed: one does."
    )
    verdict = Verdict(
        "RQ1", CLAIMS["rq1"], "; ".join(measured) or "no image/text metric to compare", combine(votes), rule
    )
    sec.verdict = verdict
    return sec, verdict


def _tokens_table(r: DynamicsResult) -> dict[str, Any]:
    rows = []
    for group in ("image", "text"):
        t = r.tokens.get(group)
        c = r.cloud_tokens.get(group, {})
        t = t if isinstance(t, dict) else {}
        rows.append(
            [group, fmt(t.get("mean")), f"{fmt(t.get('min'))}–{fmt(t.get('max'))}", fmt(c.get("mean"))]
        )
    return _table(
        "Tokens per sample and per measured cloud",
        ["tokens", "per sample (mean)", "min–max", "per cloud"],
        rows,
    )


# ---------------------------------------------------------------------------------------------- RQ2
def interchange_depth(
    matrix: Sequence[Sequence[float | None]], layers: Sequence[int], level: float
) -> int | None:
    """The smallest grid depth l_b from which every deeper column too keeps every off-diagonal entry >= level.

    Columns are l_b and rows l_a. A column without off-diagonal values neither meets the level nor breaks it.
    ``None`` when not even the deepest column meets it."""
    m = np.array([_num(row) for row in matrix])
    n = len(layers)
    pick = None
    for j in reversed(range(n)):
        col = np.delete(m[:, j], j)
        col = col[np.isfinite(col)]
        if col.size == 0:
            continue
        if col.min() < level:
            break
        pick = layers[j]
    return pick


def interchange_rule(level: float, metric: str) -> str:
    return (
        f"the smallest l_b of the grid from which (for it and every deeper l_b) every swap from another depth "
        f"l_a keeps {metric} ≥ {level}"
    )


def _rq2_metric(r: SwapResult) -> str | None:
    return next((m for m in ("similarity", "first_token") if m in r.metrics), None)


def swap_depth(r: SwapResult, group: str = "image", level: float = SWAP_LEVEL) -> float | None:
    metric = _rq2_metric(r)
    if metric is None or metric not in r.matrices.get(group, {}):
        return None
    at = interchange_depth(r.matrices[group][metric], r.layers, level)
    return None if at is None else at / r.num_layers


def rq2_section(exp: Experiment, level: float) -> tuple[Section, Verdict]:
    from visdepth.report.swap import GROUP_LABELS, plot_swap
    from visdepth.results.schemas.swap import METRIC_LABELS

    r: SwapResult = exp.result
    sec = _section(exp)
    sec.figures = _figures(
        plot_swap,
        r,
        {
            "figure_heatmap_kl": "KL of the first next-token distribution per (l_a, l_b); the colour scale is "
            "clipped at a high percentile (arrow on the colour bar) so one large cell does not wash out the rest; "
            "cells print their values.",
            "figure_heatmap": "Mean over samples per (l_a, l_b): rows = depth of the swapped states, columns = depth "
            "of every other position; the diagonal is the unmodified model.",
            "figure_distance": "Against the depth gap |l_a − l_b| / L: mean over samples and pairs; dashed: "
            "states from below, dotted: from above.",
        },
    )
    metric = _rq2_metric(r)
    metrics = [m for m in RQ2_METRICS if m in r.metrics]
    rows = []
    for group in r.groups:
        off = r.off_diagonal.get(group, {})
        at = None
        if metric and metric in r.matrices.get(group, {}):
            at = interchange_depth(r.matrices[group][metric], r.layers, level)
        rows.append(
            [GROUP_LABELS.get(group, group), fmt(r.tokens.get(group))]
            + [fmt(off.get(m)) for m in metrics]
            + [depth_text(None if at is None else at / r.num_layers, at)]
        )
    sec.tables.append(
        _table(
            "Mean over the off-diagonal pairs (l_a ≠ l_b) and interchangeability depth",
            ["swapped group", "positions / sample"]
            + [METRIC_LABELS.get(m, m) for m in metrics]
            + ["interchangeable from l_b/L"],
            rows,
            note=(f"Interchangeability depth: {interchange_rule(level, metric)}." if metric else "")
            + f" Grid l ∈ {r.layers}, L = {r.num_layers}, {r.num_samples} samples. Identity check (l_a = l_b "
            f"reproduces the model): {'passed' if r.identity.get('holds') else 'FAILED'} "
            f"(max KL {fmt(r.identity.get('kl_max'))}).",
        )
    )
    # readings and verdict: image against each control
    img = r.off_diagonal.get("image", {})
    controls = [g for g in ("text", "text_matched") if g in r.groups]
    for group in ["image", *controls]:
        off = r.off_diagonal.get(group, {})
        parts = [f"{METRIC_LABELS.get(m, m)} {fmt(off.get(m))}" for m in metrics]
        d = swap_depth(r, group, level)
        sec.readings.append(
            f"Swapping {GROUP_LABELS.get(group, group)} between depths: mean over the off-diagonal pairs "
            + ", ".join(parts)
            + (
                f"; interchangeable (all swaps ≥ {level}) from l_b/L = {d:.2f}."
                if d is not None
                else f"; no depth of the grid from which every swap keeps {metric} ≥ {level}."
                if metric
                else "."
            )
        )
    verdicts = {}
    for control in controls:
        votes = _rq2_votes(img, r.off_diagonal.get(control, {}), metrics)
        verdicts[control] = combine(list(votes.values()))
        sec.readings.append(
            f"Against the {GROUP_LABELS.get(control, control)} control the claim "
            f"{verdicts[control]} ("
            + ", ".join(
                f"{METRIC_LABELS.get(m, m)}: {'supports' if v else 'contradicts' if v is False else 'n/a'}"
                for m, v in votes.items()
            )
            + ")."
        )
    main = "text" if "text" in verdicts else (controls[0] if controls else None)
    measured = "image swaps: " + ", ".join(f"{SHORT[m]} {fmt(img.get(m))}" for m in metrics)
    if main:
        ctl = r.off_diagonal.get(main, {})
        measured += f"; {main} swaps: " + ", ".join(f"{SHORT[m]} {fmt(ctl.get(m))}" for m in metrics)
    rule = (
        "Per metric, on the means over off-diagonal pairs: image swaps count as almost unchanged when similarity "
        f"and first-token agreement are ≥ {level} and KL ≤ {SWAP_KL} nats; the control counts as changed when its "
        f"similarity / agreement is at least {SWAP_MARGIN} lower than image's, or its KL is both > {SWAP_KL} and "
        "more than twice image's. A metric supports the claim when both hold. Holds: every metric supports; "
        "does not hold: none does; mixed: some do. The verdict uses the paper's control (every text token)"
        + ("; the size-matched control's verdict is in the readings." if "text_matched" in verdicts else ".")
    )
    verdict = Verdict(
        "RQ2",
        CLAIMS["rq2"],
        measured or "no metric",
        verdicts.get(main, "not testable") if main else "not testable",
        rule,
    )
    sec.verdict = verdict
    return sec, verdict


def _rq2_votes(
    img: dict[str, float | None], ctl: dict[str, float | None], metrics: list[str]
) -> dict[str, bool | None]:
    votes: dict[str, bool | None] = {}
    for m in metrics:
        a, b = img.get(m), ctl.get(m)
        if a is None or b is None:
            votes[m] = None
        elif m == "kl":
            votes[m] = a <= SWAP_KL and b > SWAP_KL and b > 2 * a
        else:
            votes[m] = a >= SWAP_LEVEL and b <= a - SWAP_MARGIN
    return votes


# ---------------------------------------------------------------------------------------------- RQ3
def relative_loss(quality: Sequence[float | None]) -> float | None:
    """Mean over the cuts below L of the share of the full model's quality lost (gains count as no loss)."""
    q = _num(quality)
    full = q[-1]
    if not np.isfinite(full) or full <= 0 or q.size < 2:
        return None
    below = q[:-1][np.isfinite(q[:-1])]
    return float(np.mean(np.clip(1 - below / full, 0, None))) if below.size else None


def _saved(pick: Any) -> float | None:
    ratio = (
        pick.drop_prefill_flops_ratio
        if pick.drop_prefill_flops_ratio is not None
        else pick.prefill_flops_ratio
    )
    return None if ratio is None else 1 - ratio


def rq3_modes_table(r: TruncateResult) -> dict[str, Any]:
    """Per task (and kind), the shallowest safe cut under each mode of the run, with its prefill FLOP ratio."""
    modes = r.mode_list()
    rows = [
        [name if kind is None else f"  {kind}"]
        + [
            "–"
            if pick is None or pick.cut is None
            else f"{depth_text(pick.depth, pick.cut)} · FLOPs {fmt(pick.prefill_flops_ratio)}"
            for pick in picks.values()
        ]
        for name, kind, picks in r.budget_picks()
    ]
    return _table(
        f"Processing or access: the shallowest safe cut per mode ({r.budget:.0%} of the full model's quality kept)",
        ["task / kind", *modes],
        rows,
        note="mask/drop: no access to image tokens above l_c; freeze: readable (keys and values) but not updated; "
        "skip_attn / skip_mlp: one sub-layer's update removed; no_img2img: no image-to-image attention. FLOPs: "
        f"that mode's analytic prefill FLOPs / full at the cut. Pick rule '{r.pick_rule}'.",
    )


def rq3_modes_readings(r: TruncateResult) -> list[str]:
    """One sentence per task: how much shallower the processing modes are safe than removing access (drop)."""
    modes = r.mode_list()
    access = next((m for m in ("drop", "mask") if m in modes), None)
    out = []
    for name in r.summaries(modes[0]):
        cuts = {m: r.summaries(m)[name].budget.cut for m in modes if name in r.summaries(m)}
        parts = [f"{m} {'–' if c is None else f'{c}/{r.num_layers}'}" for m, c in cuts.items()]
        text = f"Task {name}: shallowest safe cut per mode: " + ", ".join(parts) + "."
        if access is not None and cuts.get(access) is not None:
            shallower = [
                m for m, c in cuts.items() if m not in ("drop", "mask") and c is not None and c < cuts[access]
            ]
            text += (
                f" Under {', '.join(shallower)} the image tokens may stop being updated earlier than they may stop "
                f"being read ({access}): deep layers need them readable more than processed."
                if shallower
                else f" No processing mode is safe shallower than {access}."
            )
        out.append(text)
    return out


def rq3_section(exp: Experiment) -> tuple[Section, Verdict]:
    from visdepth.report.truncate import plot_truncate

    r: TruncateResult = exp.result
    sec = _section(exp)
    sec.figures = _figures(
        plot_truncate,
        r,
        {
            "figure_quality": "Main score per kind against visual depth; dashed: budget × the full model's score; "
            "ring: the kind's budget cut.",
            "figure_frontier": "Task quality against the analytic prefill FLOPs (drop mode), points labelled by "
            "their cut; filled points are Pareto-optimal.",
            "figure_kl": "KL(full ‖ cut) of the first next-token distribution, with VTW's threshold.",
            "figure_modes": "Every mode of the run side by side: task quality against visual depth (rings: each "
            "mode's safe cut) and against the mode's own analytic prefill FLOPs. mask/drop remove access to the "
            "image tokens above l_c; freeze, skip_attn, skip_mlp and no_img2img keep them readable there.",
            "figure_contribution": "ShortV's layer contribution: KL(full ‖ block l's updates at image positions "
            "removed) of the last-token distribution, mean over the calibration samples (IQR shaded), against "
            "l / L.",
        },
    )
    if len(r.mode_list()) > 1:
        sec.tables.append(rq3_modes_table(r))
        sec.readings += rq3_modes_readings(r)
    losses: dict[str, list[float]] = {}
    for name, task in r.tasks.items():
        rows = []
        for kind, ks in task.kinds.items():
            q = ks.scores.get(ks.main_score) if ks.main_score else None
            loss = relative_loss(q) if q else None
            if loss is not None:
                losses.setdefault(kind, []).append(loss)
            b = ks.budget
            rows.append(
                [
                    kind,
                    str(ks.n),
                    ks.main_score or "–",
                    fmt(q[-1]) if q else "–",
                    fmt(q[0]) if q else "–",
                    pct(loss),
                    depth_text(b.depth, b.cut) if b else "–",
                    pct(b.quality_ratio) if b else "–",
                    pct(_saved(b)) if b else "–",
                ]
            )
        tb = task.budget
        rows.append(
            [
                "task (mean of kinds)",
                str(task.num_samples),
                "quality",
                fmt(task.quality[-1]),
                fmt(task.quality[0]),
                pct(relative_loss(task.quality)),
                depth_text(tb.depth, tb.cut),
                pct(tb.quality_ratio),
                pct(_saved(tb)),
            ]
        )
        notes = [f"{k}: {ks.budget.note}" for k, ks in task.kinds.items() if ks.budget and ks.budget.note]
        if tb.note:
            notes.append(f"task: {tb.note}")
        sec.tables.append(
            _table(
                f"Task {name}: quality and the shallowest safe cut ({r.mode} mode)",
                [
                    "kind",
                    "n",
                    "main score",
                    "full model (l_c = L)",
                    "no image in the decoder (l_c = 0)",
                    "mean loss over cuts",
                    f"safe cut l_c/L ({r.budget:.0%} kept)",
                    "kept there",
                    "prefill FLOPs saved there",
                ],
                rows,
                note=f"Safe cut: the run's budget pick, quality ≥ {r.budget} × the full model's, pick rule "
                f"'{r.pick_rule}'. FLOPs saved: 1 − analytic prefill FLOP ratio of drop mode"
                + (
                    " (this mask run saves none; the figure is what drop mode would save)"
                    if r.mode != "drop"
                    else ""
                )
                + ". Mean loss: mean over cuts l_c < L of max(0, 1 − quality / full quality)."
                + (" Notes: " + "; ".join(notes) if notes else ""),
            )
        )
        sec.readings.append(
            f"Task {name}: keeping {r.budget:.0%} of the full model's quality needs image tokens in the first "
            + (
                f"{tb.cut} of {r.num_layers} blocks (l_c/L = {tb.depth:.2f}), which saves {pct(_saved(tb))} of the "
                "prefill FLOPs in drop mode."
                if tb.cut is not None and tb.depth is not None
                else f"… no cut meets the budget ({tb.note or 'no quality score'})."
            )
            + (
                f" VTW's criterion (KL ≤ {r.vtw_threshold} nats) cuts at l_c = {task.vtw.cut}."
                if task.vtw.cut is not None
                else ""
            )
        )
        for kind, ks in task.kinds.items():
            if ks.budget and ks.budget.cut is not None and ks.budget.depth is not None:
                sec.readings.append(
                    f"  {name} / {kind} (n = {ks.n}): safe from l_c/L = {ks.budget.depth:.2f}, "
                    f"saving {pct(_saved(ks.budget))} of prefill FLOPs; mean loss over shallower cuts "
                    f"{pct(relative_loss(ks.scores[ks.main_score]) if ks.main_score else None)}."
                )
    # the claim: an ordering of kinds by degradation
    step_loss: list[float | None] = []
    for kinds in KIND_STEPS:
        vals = [v for k in kinds for v in losses.get(k, [])]
        step_loss.append(float(np.mean(vals)) if vals else None)
    pairs: list[bool | None] = []
    described, compared = [], []
    for i in range(len(KIND_STEPS)):
        shown = (
            pct(step_loss[i]) if step_loss[i] is not None else "n/a (no such samples, or a full score of 0)"
        )
        described.append(f"{STEP_NAMES[i]} {shown}")
        for j in range(i + 1, len(KIND_STEPS)):
            a, b = step_loss[i], step_loss[j]
            pairs.append(None if a is None or b is None else a < b)
            if a is not None and b is not None:
                compared.append(
                    f"{STEP_NAMES[j]} lose {'more' if b > a else 'less' if b < a else 'as much'} than "
                    f"{STEP_NAMES[i]} ({pct(b)} vs {pct(a)}: {'as claimed' if b > a else 'against the claim'})"
                )
    verdict_text = combine(pairs)
    n = {
        k: sum(t.kinds[k].n for t in r.tasks.values() if k in t.kinds) for kinds in KIND_STEPS for k in kinds
    }
    sec.readings.append(
        "Mean share of quality lost over the cuts below L, by output structure (all tasks): "
        + ", ".join(described)
        + ". "
        + ("; ".join(compared) + ". " if compared else "")
        + f"The paper's ordering (single-token < exact-match < captions) {verdict_text} here"
        + (
            f" (samples per kind: {', '.join(f'{k} {v}' for k, v in n.items() if v)}; a handful per kind "
            "makes this ordering fragile)."
            if any(0 < v < 10 for v in n.values())
            else "."
        )
    )
    rule = (
        "Degradation of a kind = the mean over cuts l_c < L of max(0, 1 − quality / full quality), averaged over "
        "tasks; single-token and multiple-choice kinds form one step. The claim predicts single-token < "
        "exact-match < captions. Every present pair in that order: holds; none: does not hold; some: mixed; "
        "fewer than two steps present: not testable."
    )
    verdict = Verdict("RQ3", CLAIMS["rq3"], "mean loss: " + ", ".join(described), verdict_text, rule)
    sec.verdict = verdict
    return sec, verdict


def rq5_section(exp: Experiment) -> tuple[Section, Verdict]:
    """RQ5 from the plain data of :func:`visdepth.report.reason.reason_section`."""
    from visdepth.report.reason import plot_reason, reason_section

    data, sec = reason_section(exp.result), _section(exp)
    sec.figures = _figures(plot_reason, exp.result, data["captions"])
    sec.tables = [_table(**t) for t in data["tables"]]
    sec.readings, sec.verdict = data["readings"], Verdict(**data["verdict"])
    return sec, sec.verdict


# ---------------------------------------------------------------------------------------------- across questions
def _data_name(result: Any) -> str | None:
    config = result.meta.config
    return config.get("data") if isinstance(config, dict) else None


def _task_base(name: str) -> str:
    return name.split(":")[0]


def across(
    dynamics: DynamicsResult | None,
    swap: SwapResult | None,
    truncate: TruncateResult | None,
    tol: float,
    level: float,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Per RQ3 task: the RQ1 settling depth and the RQ2 interchangeability depth beside the safe cut."""
    if truncate is None or (dynamics is None and swap is None):
        return None, []
    L = truncate.num_layers
    near = max(PREDICT_TOL, 1 / L)
    rows, readings = [], []

    def judge(pred: float | None, cut: float | None) -> str:
        if pred is None or cut is None:
            return "–"
        if abs(pred - cut) <= near + 1e-9:
            return "predicts"
        return "too shallow (unsafe)" if pred < cut else "too deep (safe, saves less)"

    d_depth = image_settle_depth(dynamics, tol) if dynamics else None
    s_depth = swap_depth(swap, "image", level) if swap else None
    for name, task in truncate.tasks.items():
        cut = task.budget.depth
        d_note = s_note = ""
        if (
            dynamics is not None
            and _data_name(dynamics)
            and _task_base(_data_name(dynamics)) != _task_base(name)
        ):
            d_note = f" (measured on {_data_name(dynamics)})"
        if swap is not None and _data_name(swap) and _task_base(_data_name(swap)) != _task_base(name):
            s_note = f" (measured on {_data_name(swap)})"
        rows.append(
            [
                name,
                (depth_text(d_depth) + d_note) if dynamics else "not run",
                judge(d_depth, cut) if dynamics else "–",
                (depth_text(s_depth) + s_note) if swap else "not run",
                judge(s_depth, cut) if swap else "–",
                depth_text(cut, task.budget.cut),
            ]
        )
        for label, pred, run in (
            ("RQ1 image-settling depth", d_depth, dynamics),
            ("RQ2 interchangeability depth", s_depth, swap),
        ):
            if run is None:
                continue
            verdict = judge(pred, cut)
            readings.append(
                f"{name}: the {label} ({depth_text(pred)}) against the safe cut ({depth_text(cut)}): "
                + (verdict if verdict != "–" else "cannot be compared (one of them is undefined)")
                + "."
            )
    table = _table(
        "Do the representation depths predict the shallowest safe cut?",
        [
            "task",
            "RQ1: image metrics settled by",
            "RQ1 vs cut",
            "RQ2: image swaps interchangeable from",
            "RQ2 vs cut",
            f"RQ3: safe cut ({truncate.budget:.0%} kept)",
        ],  # fmt: skip
        rows,
        note=f"RQ1 depth: the deepest settling depth of the image metrics ({', '.join(RQ1_METRICS)}); "
        f"{settle_rule(tol)}. RQ2 depth: {interchange_rule(level, (_rq2_metric(swap) or 'similarity') if swap else 'similarity')}. "
        f"Rule: a depth predicts the cut when it lies within {near:.2f} of it (the larger of {PREDICT_TOL} and one "
        "layer); shallower than that would cut too early, deeper would keep layers the task does not need.",
    )
    return table, readings


# ---------------------------------------------------------------------------------------------- provenance
def _section(exp: Experiment) -> Section:
    r = exp.result
    sec = Section(
        kind=exp.kind,
        title=TITLES[exp.kind],
        folder=exp.name,
        model=model_label(r.model) if r is not None else "",
    )
    if r is not None:
        sec.provenance = provenance(r)
    return sec


def provenance(result: Any) -> dict[str, Any]:
    m = result.meta
    git = m.git
    pairs = [
        ("model", str(result.model.get("name"))),
        ("family / type", f"{result.model.get('family')} / {result.model.get('model_type')}"),
        ("decoder layers L", str(result.num_layers)),
        ("parameters", fmt(result.model.get("num_parameters"))),
        ("data", str(m.config.get("data") or m.config.get("tasks"))),
        ("limit", str(m.config.get("limit"))),
        ("seed", str(m.seed)),
        ("device / dtype", f"{m.device} ({m.device_name}) / {m.dtype}"),
        ("visdepth", m.visdepth_version),
        ("python", m.python),
        ("packages", ", ".join(f"{k} {v}" for k, v in m.packages.items() if v)),
        (
            "git",
            "not a checkout"
            if git is None
            else f"{git.commit or 'no commit'}{' (dirty)' if git.dirty else ''}"
            + (f" on {git.branch}" if git.branch else ""),
        ),
        (
            "started / finished",
            f"{m.started_at:%Y-%m-%d %H:%M:%S %Z} / "
            + (f"{m.finished_at:%Y-%m-%d %H:%M:%S %Z}" if m.finished_at else "–"),
        ),  # fmt: skip
        ("command", " ".join(m.command)),
    ]
    return {
        "pairs": pairs,
        "config": json.dumps(m.config, indent=2, sort_keys=True, default=str),
        "choices": json.dumps(m.choices, indent=2, default=str),
    }


# ---------------------------------------------------------------------------------------------- the page
def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("visdepth.report", "templates"),
        autoescape=select_autoescape(["html", "jinja"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.jinja")


def build_report(
    run_dir: Path,
    out: Path | None = None,
    *,
    settle_tol: float = SETTLE_TOL,
    swap_level: float = SWAP_LEVEL,
) -> Path:
    """Write one self-contained HTML report of every experiment under ``run_dir``; returns its path.

    ``out`` defaults to ``run_dir / 'report.html'``. Experiments that are missing get a section saying so; a
    result file that cannot be read gets a section naming the problem. Raises a :class:`VisdepthError` when
    ``run_dir`` is no folder or holds no result of any experiment.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise VisdepthError(f"run folder {str(run_dir)!r} does not exist; pass <output_path>/<model slug>.")
    experiments = find_experiments(run_dir)
    if not experiments:
        raise VisdepthError(
            f"no results.json of a visdepth experiment under {str(run_dir)!r}; run `visdepth dynamics`, `swap` "
            "or `truncate` with --output_path first, or pass the run folder they wrote."
        )
    sections: dict[str, list[Section]] = {k: [] for k in KINDS}
    verdicts: dict[str, Verdict] = {}
    first: dict[str, Any] = {}
    for exp in experiments:
        if exp.error is not None:
            sec = Section(exp.kind, TITLES[exp.kind], exp.name, "", error=exp.error)
        else:
            if exp.kind == "dynamics":
                sec, v = rq1_section(exp, settle_tol)
            elif exp.kind == "swap":
                sec, v = rq2_section(exp, swap_level)
            elif exp.kind == "recover":
                sec, v = rq4_section(exp, _section(exp))
            elif exp.kind == "reason":
                sec, v = rq5_section(exp)
            else:
                sec, v = rq3_section(exp)
            # the first folder of a kind speaks for it in the summary (drop before mask: folder order)
            if exp.kind not in first:
                first[exp.kind] = exp.result
                verdicts[exp.kind] = v
        sections[exp.kind].append(sec)
    cross_table, cross_readings = across(
        first.get("dynamics"), first.get("swap"), first.get("truncate"), settle_tol, swap_level
    )
    models = sorted({s.model for secs in sections.values() for s in secs if s.model})
    results = [e.result for e in experiments if e.result is not None]
    html = _template().render(
        title=f"visdepth report · {', '.join(models) or run_dir.name}",
        models=models,
        run_dir=run_dir.name,
        sections=sections,
        titles=TITLES,
        claims=CLAIMS,
        verdicts=[verdicts.get(k) for k in KINDS],
        kinds=KINDS,
        question={"dynamics": "RQ1", "swap": "RQ2", "truncate": "RQ3", "recover": "RQ4", "reason": "RQ5"},
        commands={
            "dynamics": "visdepth dynamics",
            "swap": "visdepth swap",
            "truncate": "visdepth truncate",
            "recover": "visdepth recover",
            "reason": "visdepth reason",
        },  # fmt: skip
        cross_table=cross_table,
        cross_readings=cross_readings,
        generated=_generated(results),
    )
    target = Path(out) if out is not None else run_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, html)
    return target


def _generated(results: list[Any]) -> str:
    from visdepth.results.meta import utc_now, visdepth_version

    return (
        f"{utc_now():%Y-%m-%d %H:%M UTC} by visdepth {visdepth_version()} from {len(results)} result file(s)"
    )


__all__ = ["build_report", "find_experiments", "interchange_depth", "relative_loss", "settle"]
