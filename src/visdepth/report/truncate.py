"""Figures for RQ3: quality, closeness to the full model and compute against the visual depth l_c / L.

Per task: quality per kind against normalised depth (dashed: budget x the full model's quality); the
quality-versus-compute frontier (against the analytic prefill FLOP ratio, and against measured prefill latency
for the timed task), each point labelled with its cut and the Pareto-optimal ones filled; the KL of the first
next-token distribution against depth with VTW's threshold. A run of several modes adds, per task, the modes side
by side (quality against depth, and against each mode's analytic prefill FLOPs, one line per mode, rings at each
mode's budget cut); a run with ShortV's layer contribution adds its per-block score against l / L.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from visdepth.report.labels import model_label, shorten  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.truncate import TaskSummary, TruncateResult

KIND_COLOURS = {
    "single_token": "#00798c",
    "multiple_choice": "#30638e",
    "exact_match": "#edae49",
    "caption": "#d1495b",
    "reasoning": "#8e6c8a",
    "open": "#7a7a7a",
}
TASK_COLOUR = "#222222"
MODE_COLOURS = {
    "drop": "#222222",
    "mask": "#7a7a7a",
    "freeze": "#00798c",
    "skip_attn": "#edae49",
    "skip_mlp": "#d1495b",
    "no_img2img": "#8e6c8a",
}
MODE_STYLES = {
    "drop": "-",
    "mask": ":",
    "freeze": "-",
    "skip_attn": "--",
    "skip_mlp": "-.",
    "no_img2img": "--",
}


def _arr(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def slug(name: str) -> str:
    """A file-name-safe form of a task name (``local:data/x.jsonl`` -> ``local_data_x.jsonl``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "task"


def pareto(cost: Sequence[float], quality: Sequence[float | None]) -> list[bool]:
    """Whether each point is Pareto-optimal: no other point costs no more and scores no less, one of them
    strictly (points without a quality never are)."""
    c, q = np.asarray(cost, dtype=float), _arr(quality)
    out = []
    for i in range(len(c)):
        if np.isnan(q[i]):
            out.append(False)
            continue
        dominated = (c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))
        out.append(not bool(np.any(dominated & ~np.isnan(q))))
    return out


def _title(result: TruncateResult, task: str, what: str, modes: str | None = None) -> str:
    return f"{model_label(result.model)} · {shorten(task)} · {what}\nL = {result.num_layers}, " + (
        modes or f"{result.mode} mode"
    )


def _depth_axis(ax) -> None:
    ax.set_xlabel("visual depth l_c / L (image tokens kept in the first l_c blocks)")
    ax.set_xlim(-0.02, 1.02)
    ax.grid(alpha=0.3)


def _legend_below(ax) -> None:
    # below the axes: the curves may run anywhere in the panel, a legend inside would hide some
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)


def _vtw_line(ax, summary: TaskSummary) -> None:
    if summary.vtw.depth is not None:
        ax.axvline(
            summary.vtw.depth, color="#555555", ls=":", lw=1.2, label=f"VTW cut l_c = {summary.vtw.cut}"
        )


def plot_quality(result: TruncateResult, name: str, summary: TaskSummary, path: Path) -> Path:
    """Main score per kind against depth; dashed: budget x full quality; open ring: the kind's budget cut."""
    depth = np.array(result.depth)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    for kind, ks in summary.kinds.items():
        if ks.main_score is None:
            continue
        q = _arr(ks.scores[ks.main_score])
        colour = KIND_COLOURS.get(kind, TASK_COLOUR)
        ax.plot(depth, q, color=colour, lw=2, marker="o", ms=3.5, label=f"{kind}: {ks.main_score} (n={ks.n})")
        if not np.isnan(q[-1]):
            ax.axhline(result.budget * q[-1], color=colour, ls="--", lw=1, alpha=0.8)
        if ks.budget is not None and ks.budget.depth is not None and ks.budget.quality is not None:
            ax.plot(ks.budget.depth, ks.budget.quality, "o", ms=11, mfc="none", mec=colour, mew=1.8)
    if len(summary.kinds) > 1:
        ax.plot(
            depth, _arr(summary.quality), color=TASK_COLOUR, lw=1.4, ls="-.", label="task (mean of kinds)"
        )
    _vtw_line(ax, summary)
    _depth_axis(ax)
    ax.set_ylabel("quality (main score of each kind)")
    ax.plot([], [], color="#888888", ls="--", lw=1, label=f"{result.budget:g} x full quality")
    ax.plot([], [], "o", ms=9, mfc="none", mec="#888888", label="budget cut")
    _legend_below(ax)
    ax.set_title(_title(result, name, "quality vs visual depth"), fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _frontier(
    ax, cost: Sequence[float], quality: Sequence[float | None], cuts: Sequence[int], colour: str
) -> None:
    q = _arr(quality)
    best = pareto(cost, quality)
    order = np.argsort(cost)
    ax.plot(np.asarray(cost)[order], q[order], color=colour, lw=1, alpha=0.5)
    for x, y, cut, on_front in zip(cost, q, cuts, best, strict=True):
        if np.isnan(y):
            continue
        ax.plot(x, y, "o", ms=6, color=colour, mfc=colour if on_front else "white", mew=1.4)
        ax.annotate(str(cut), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=colour)
    front = [i for i in order if best[i]]
    ax.plot(np.asarray(cost)[front], q[front], color=colour, lw=2, label="Pareto front (filled points)")


def flops_axis(result: TruncateResult) -> tuple[str, str]:
    """The compute key a frontier is drawn against and its axis label: drop mode's analytic prefill FLOP ratio,
    labelled as what drop mode would spend in a mask run (which computes every image token: saves nothing)."""
    if result.mode == "drop":
        return "drop_prefill_flops_ratio", "prefill FLOPs / full model's (analytic, drop mode)"
    return "drop_prefill_flops_ratio", "prefill FLOPs / full if run in drop mode (this mask run saves none)"


def _compute(compute: dict[str, list[float]], key: str) -> list[float]:
    # results written before the drop_* keys existed held drop-mode figures under the plain names
    return compute.get(key) or compute[key.removeprefix("drop_")]


def plot_frontier(result: TruncateResult, name: str, summary: TaskSummary, path: Path) -> Path:
    """Task quality against the analytic prefill FLOP ratio of drop mode (and measured prefill latency for the
    timed task); points labelled with their cut; thin lines: each kind against its own FLOP ratio."""
    timed = result.timing is not None and result.timing.task == name
    fig, axes = plt.subplots(
        1, 2 if timed else 1, figsize=(11.5 if timed else 6.4, 4.4), dpi=150, squeeze=False
    )
    ax = axes[0, 0]
    key, label = flops_axis(result)
    for kind, ks in summary.kinds.items():
        if ks.main_score is not None and len(summary.kinds) > 1:
            colour = KIND_COLOURS.get(kind, TASK_COLOUR)
            ax.plot(_compute(ks.compute, key), _arr(ks.scores[ks.main_score]), color=colour, lw=1,
                    alpha=0.6, marker=".", label=kind)  # fmt: skip
    _frontier(ax, _compute(summary.compute, key), summary.quality, result.cuts, TASK_COLOUR)
    ax.set_xlabel(label)
    ax.set_ylabel("task quality (mean of kinds' main scores)")
    ax.grid(alpha=0.3)
    _legend_below(ax)
    ax.set_title(_title(result, name, "quality vs compute (labels: cut l_c)"), fontsize=9)
    if timed:
        assert result.timing is not None
        ax2 = axes[0, 1]
        latency = [1000 * t for t in result.timing.prefill_s]
        _frontier(ax2, latency, summary.quality, result.cuts, "#d1495b")
        ax2.set_xlabel(
            f"measured prefill latency (ms, median of {result.timing.repeats}, batch of {len(result.timing.samples)})"
        )
        ax2.set_ylabel("task quality")
        ax2.grid(alpha=0.3)
        _legend_below(ax2)
        ax2.set_title(_title(result, name, "quality vs measured latency"), fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_kl(result: TruncateResult, name: str, summary: TaskSummary, path: Path) -> Path:
    """KL(full || cut) of the first next-token distribution against depth: median and IQR of the evaluated
    samples, mean of the calibration set, VTW's threshold and cut."""
    depth = np.array(result.depth)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    kl = summary.kl
    ax.fill_between(depth, _arr(kl.q25), _arr(kl.q75), color="#00798c", alpha=0.2, lw=0)
    ax.plot(
        depth,
        _arr(kl.median),
        color="#00798c",
        lw=2,
        label=f"evaluated samples, median and IQR (n={summary.num_samples})",
    )
    ax.plot(depth, _arr(kl.mean), color="#00798c", lw=1, ls="--", label="evaluated samples, mean")
    cal = summary.calibration
    if cal.get("n"):
        ax.plot(depth, _arr(cal["kl_mean"]), color="#d1495b", lw=1.5, marker="o", ms=3,
                label=f"calibration mean ({cal['source']}, n={cal['n']})")  # fmt: skip
    ax.axhline(
        result.vtw_threshold, color="#555555", ls="--", lw=1, label=f"VTW threshold {result.vtw_threshold:g}"
    )
    _vtw_line(ax, summary)
    # KL is 0 at l_c = L: a symmetric log scale keeps it on the axis while spreading small values
    ax.set_yscale("symlog", linthresh=max(result.vtw_threshold / 10, 1e-4))
    curves = [_arr(kl.q75), _arr(kl.mean), _arr(cal.get("kl_mean") or [None])]
    top = max([result.vtw_threshold] + [float(np.nanmax(c)) for c in curves if not np.all(np.isnan(c))])
    ax.set_ylim(0, top * 2)
    _depth_axis(ax)
    ax.set_ylabel("KL(full || cut), nats")
    _legend_below(ax)
    ax.set_title(_title(result, name, "first next-token KL vs visual depth"), fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_modes(result: TruncateResult, name: str, path: Path) -> Path:
    """Every mode of the run side by side: task quality against depth (rings: each mode's budget cut), against
    the mode's own analytic prefill FLOP ratio, and (the timed task) against measured prefill latency."""
    depth = np.array(result.depth)
    timed = [m for m in result.mode_list() if (t := result.timing_in(m)) is not None and t.task == name]
    fig, axes = plt.subplots(1, 3 if timed else 2, figsize=(17 if timed else 11.5, 4.4), dpi=150)
    ax, ax2 = axes[0], axes[1]
    full = None
    for mode in result.mode_list():
        summary = result.summaries(mode).get(name)
        if summary is None:
            continue
        colour, style = MODE_COLOURS.get(mode, TASK_COLOUR), MODE_STYLES.get(mode, "-")
        q = _arr(summary.quality)
        full = q[-1]
        ax.plot(depth, q, color=colour, ls=style, lw=2, marker="o", ms=3, label=mode)
        b = summary.budget
        if b.depth is not None and b.quality is not None:
            ax.plot(b.depth, b.quality, "o", ms=11, mfc="none", mec=colour, mew=1.8)
        cost = _compute(summary.compute, "prefill_flops_ratio")
        ax2.plot(cost, q, color=colour, ls=style, lw=1.6, marker="o", ms=3, label=mode)
        timing = result.timing_in(mode)
        if mode in timed and timing is not None:
            axes[2].plot([1000 * t for t in timing.prefill_s], q, color=colour, ls=style, lw=1.6, marker="o",
                         ms=3, label=mode)  # fmt: skip
    if timed:
        t0 = result.timing_in(timed[0])
        assert t0 is not None
        axes[2].set_xlabel(
            f"measured prefill latency (ms, median of {t0.repeats}, batch of {len(t0.samples)})"
        )
        axes[2].set_ylabel("task quality")
        axes[2].grid(alpha=0.3)
        _legend_below(axes[2])
        axes[2].set_title(
            _title(result, name, "modes: quality vs measured latency", "modes side by side"), fontsize=9
        )
    if full is not None and not np.isnan(full):
        for a in axes:
            a.axhline(result.budget * full, color="#888888", ls="--", lw=1, label=f"{result.budget:g} x full")
    _depth_axis(ax)
    ax.set_ylabel("task quality (mean of kinds' main scores)")
    ax.plot([], [], "o", ms=9, mfc="none", mec="#888888", label="budget cut")
    _legend_below(ax)
    ax.set_title(_title(result, name, "modes: quality vs visual depth", "modes side by side"), fontsize=9)
    ax2.set_xlabel("prefill FLOPs / full model's (analytic, each mode's own)")
    ax2.set_ylabel("task quality")
    ax2.grid(alpha=0.3)
    _legend_below(ax2)
    ax2.set_title(_title(result, name, "modes: quality vs compute", "modes side by side"), fontsize=9)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_contribution(result: TruncateResult, path: Path) -> Path:
    """ShortV's layer contribution per task: mean (and IQR) over the calibration samples against l / L."""
    L = result.num_layers
    x = np.arange(L) / L
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    colours = list(KIND_COLOURS.values())
    for i, (name, summary) in enumerate(result.tasks.items()):
        c = summary.contribution
        if c is None:
            continue
        colour = colours[i % len(colours)]
        ax.fill_between(x, _arr(c.q25), _arr(c.q75), color=colour, alpha=0.15, lw=0)
        n = summary.calibration.get("n")
        ax.plot(x, _arr(c.mean), color=colour, lw=2, marker="o", ms=3, label=f"{shorten(name)} (mean, n={n})")
    ax.set_yscale("symlog", linthresh=1e-4)
    ax.set_xlabel("block l / L (l = 0..L-1)")
    ax.set_xlim(-0.02, 1.0)
    ax.grid(alpha=0.3)
    ax.set_ylabel("KL(full || block l's image updates removed), nats")
    _legend_below(ax)
    ax.set_title(
        f"{model_label(result.model)} · layer contribution at image positions (ShortV)\nL = {L}, IQR shaded",
        fontsize=9,
    )
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_truncate(result: TruncateResult, folder: Path) -> dict[str, Path]:
    """Write the three figures of every task (the run's first mode), the modes side by side when there are
    several, and the layer contribution when measured; returns {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, summary in result.tasks.items():
        s = slug(name)
        for figure, plot in (("quality", plot_quality), ("frontier", plot_frontier), ("kl", plot_kl)):
            paths[f"figure_{figure}_{s}"] = plot(result, name, summary, folder / f"{figure}_{s}.png")
        if len(result.mode_list()) > 1:
            paths[f"figure_modes_{s}"] = plot_modes(result, name, folder / f"modes_{s}.png")
    if any(t.contribution is not None for t in result.tasks.values()):
        paths["figure_contribution"] = plot_contribution(result, folder / "contribution.png")
    return paths
