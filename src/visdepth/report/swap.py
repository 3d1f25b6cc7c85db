"""Figures for RQ2: heatmaps over the (l_a, l_b) grid and curves against the depth gap |l_a - l_b| / L.

One heatmap file per main metric, a panel per group on a shared colour scale so image, text (the control) and
text_matched (the size-matched control) compare at a glance; depth axes read l/L so models of different depth look
alike. The curve figure overlays the groups; thin dashed and dotted lines split each curve by direction (swapped
states from below or above).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from visdepth.report.dynamics import COLOURS as SHARED_COLOURS  # noqa: E402  (image/text colours of every figure)
from visdepth.report.labels import model_label  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.swap import SwapResult

#: the size-matched control is a text group, drawn in a warm colour next to the shared image/text ones
COLOURS = {**SHARED_COLOURS, "text_matched": "#edae49"}
#: how each group is named in titles and legends
GROUP_LABELS = {
    "image": "image tokens",
    "text": "text tokens",
    "text_matched": "size-matched text tokens",
}
HEATMAP_METRICS = ("similarity", "first_token", "kl")
CURVE_METRICS = ("similarity", "first_token", "kl")
#: bounded scores share a fixed 0..1 scale; KL is scaled to its largest value
BOUNDED = {"similarity", "first_token", "agreement", "identical"}
#: an unbounded metric's colour scale ends at this percentile of its off-diagonal cells (larger ones saturate)
ROBUST_PERCENTILE = 90


def _matrix(values: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)


def _ticks(ax, depth: list[float]) -> None:
    n = len(depth)
    step = max(1, int(np.ceil(n / 9)))  # at most ~9 labels, whatever the depth
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    labels = [f"{depth[i]:.2f}" for i in idx]
    ax.set_xticks(idx, labels, rotation=45 if n > 6 else 0)
    ax.set_yticks(idx, labels)


def group_label(result: SwapResult, group: str) -> str:
    """``'<group> swapped (~n/sample)'`` for titles and legends."""
    n = result.tokens.get(group)
    return f"{GROUP_LABELS.get(group, group)} swapped" + (f" (~{n:.0f}/sample)" if n is not None else "")


def robust_top(mats: list[np.ndarray], q: float = ROBUST_PERCENTILE) -> float:
    """Top of an unbounded metric's colour scale: the ``q``-th percentile of the off-diagonal values of every
    panel (the diagonal is the unmodified model, 0 by construction), so one dominating cell cannot wash out the
    rest; the largest value when the percentile is 0, and 1 when everything is 0."""
    values = np.concatenate(
        [
            m[~np.eye(*m.shape, dtype=bool)] if m.ndim == 2 and m.shape[0] == m.shape[1] else m.ravel()
            for m in mats
        ]
        or [np.zeros(0)]
    )
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    top = float(np.percentile(values, q, method="lower"))  # an actual cell value, even on a small grid
    if top <= 0:
        top = float(values.max())
    return top if top > 0 else 1.0


def _heatmap(result: SwapResult, metric: str, folder: Path) -> Path:
    from visdepth.results.schemas.swap import METRIC_LABELS

    groups = [g for g in result.groups if metric in result.matrices[g]]
    mats = [_matrix(result.matrices[g][metric]) for g in groups]
    if metric in BOUNDED:
        lo = min(0.0, *(float(np.nanmin(m)) for m in mats if np.isfinite(m).any()))
        vmin, vmax, cmap = lo, 1.0, "viridis"
    else:
        vmin, vmax, cmap = 0.0, robust_top(mats), "magma_r"
    # cells above the scale's top saturate; the colour bar says so with an arrow (its numbers stay printed)
    extend = (
        "max"
        if any(np.nanmax(m, initial=0.0) > vmax * (1 + 1e-9) for m in mats if np.isfinite(m).any())
        else "neither"
    )
    n = len(result.layers)
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups) + 1.0, 4.4), dpi=150, squeeze=False)
    image = None
    for ax, group, mat in zip(axes[0], groups, mats, strict=True):
        image = ax.imshow(mat, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if n <= 9:  # small grids carry their numbers
            for i in range(n):
                for j in range(n):
                    if np.isfinite(mat[i, j]):
                        shade = min(1.0, (mat[i, j] - vmin) / (vmax - vmin or 1.0))
                        dark = shade > 0.5 if cmap == "magma_r" else shade < 0.5
                        ax.text(
                            j, i, f"{mat[i, j]:.2g}", ha="center", va="center", fontsize=6.5,
                            color="white" if dark else "black",
                        )  # fmt: skip
        _ticks(ax, result.depth)
        ax.set_xlabel("$l_b / L$  (depth of every other position)")
        ax.set_title(group_label(result, group), fontsize=10, color=COLOURS.get(group, "black"))
    axes[0][0].set_ylabel("$l_a / L$  (depth of the swapped states)")
    bar = fig.colorbar(image, ax=list(axes[0]), shrink=0.85, pad=0.02, extend=extend)
    bar.set_label(
        METRIC_LABELS.get(metric, metric) + (f" (scale clipped at {vmax:.3g})" if extend == "max" else "")
    )
    fig.suptitle(
        f"{model_label(result.model)} · L = {result.num_layers} · {result.num_samples} samples · "
        f"{METRIC_LABELS.get(metric, metric)}",
        fontsize=10,
    )
    path = folder / f"heatmap_{metric}.png"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _curves(result: SwapResult, metrics: list[str], folder: Path) -> Path:
    from visdepth.results.schemas.swap import METRIC_LABELS

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.6), dpi=150, squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for group in result.groups:
            curve = result.curves[group].get(metric)
            if curve is None:
                continue
            x = np.array(curve.relative)
            colour = COLOURS.get(group, "black")
            label = group_label(result, group)
            ax.plot(x, _matrix([curve.all])[0], color=colour, lw=2, marker="o", ms=3.5, label=label)
            ax.plot(x, _matrix([curve.a_below_b])[0], color=colour, lw=1, ls="--", alpha=0.7)
            ax.plot(x, _matrix([curve.a_above_b])[0], color=colour, lw=1, ls=":", alpha=0.7)
        ax.set_xlabel("depth gap $|l_a - l_b| / L$")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_xlim(0, 1)
        if metric in BOUNDED:
            ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
        ax.grid(alpha=0.3)
    # direction styles explained once, with the groups
    from matplotlib.lines import Line2D

    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [Line2D([], [], color="grey", ls="--", lw=1), Line2D([], [], color="grey", ls=":", lw=1)]
    labels += ["$l_a < l_b$ (states from below)", "$l_a > l_b$ (states from above)"]
    # one row while it fits; three groups and the two direction styles go on two rows
    ncol = len(labels) if len(labels) <= 4 else (len(labels) + 1) // 2
    fig.legend(handles, labels, loc="lower center", ncol=ncol, frameon=False, fontsize=8)
    fig.suptitle(
        f"{model_label(result.model)} · L = {result.num_layers} · {result.num_samples} samples "
        "(mean over samples and pairs)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08 if ncol == len(labels) else 0.13, 1, 0.95))
    path = folder / "distance.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_swap(result: SwapResult, folder: Path) -> dict[str, Path]:
    """Write a heatmap per main metric (a panel per group) and the distance curves; returns {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    present = [m for m in HEATMAP_METRICS if m in result.metrics]  # similarity is absent without an encoder
    paths = {f"figure_heatmap_{m}": _heatmap(result, m, folder) for m in present}
    curves = [m for m in CURVE_METRICS if m in result.metrics]
    paths["figure_distance"] = _curves(result, curves, folder)
    return paths
