"""Figures for RQ1: each metric against normalised depth l/L, image vs text tokens, with spread bands.

Normalised depth lets models of different depth share an axis, as in the paper. Bands show the inter-quartile
range over token clouds, i.e. samples or pools (robust to the odd sample with very few text tokens); the line is
the median. A run with a single cloud (one pool) has no spread and is drawn as a line alone. A random-init
baseline, when measured, is drawn dashed in the same colours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from visdepth.report.labels import model_label  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas import DynamicsResult, LayerStats

COLOURS = {"image": "#d1495b", "text": "#00798c"}
GRID_METRICS = ("entropy_norm", "id_twonn", "depth_curvature", "norm", "cka_prev", "seq_curvature")


def _arr(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _draw(ax, depth: np.ndarray, stats: LayerStats, colour: str, label: str, dashed: bool = False) -> None:
    median, lo, hi = _arr(stats.median), _arr(stats.q25), _arr(stats.q75)
    ax.plot(depth, median, color=colour, lw=2 if not dashed else 1.3, ls="--" if dashed else "-", label=label)
    if not dashed and max(stats.count, default=0) > 1:
        ax.fill_between(depth, lo, hi, color=colour, alpha=0.2, lw=0)


def _panel(ax, result: DynamicsResult, metric: str) -> None:
    from visdepth.results.schemas.dynamics import METRIC_LABELS

    depth = np.array(result.depth)
    pooled = result.token_cloud == "pooled"
    counts = result.cloud_tokens if pooled else result.tokens
    for group, colour in COLOURS.items():
        n = counts[group]["mean"] if isinstance(counts.get(group), dict) else None
        label = f"{group} tokens" + (f" (~{n:.0f}/{'pool' if pooled else 'sample'})" if n is not None else "")
        _draw(ax, depth, result.summary[group][metric], colour, label)
        if result.baseline is not None:
            _draw(ax, depth, result.baseline[group][metric], colour, f"{group}, random init", dashed=True)
    ax.set_xlabel("normalised depth l / L")
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    if metric == "norm":
        ax.set_yscale("log")


def _clouds(result: DynamicsResult) -> str:
    """What the lines and bands are over, for the title."""
    if result.token_cloud != "pooled":
        return f"{result.num_samples} samples (median, IQR band)"
    pools = result.num_clouds
    if pools == 1:
        return f"{result.num_samples} samples in one pooled cloud"
    return f"{result.num_samples} samples in {pools} pools of <= {result.pool_size} (median, IQR band over pools)"


def plot_dynamics(
    result: DynamicsResult, folder: Path, metrics: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write one PNG per metric (``metrics``, default all) plus an overview grid; returns {name: path}."""
    from visdepth.results.schemas.dynamics import METRIC_LABELS, METRICS

    folder.mkdir(parents=True, exist_ok=True)
    model = model_label(result.model)
    title = f"{model} · L = {result.num_layers} · {_clouds(result)}"
    paths: dict[str, Path] = {}
    for metric in METRICS if metrics is None else metrics:
        fig, ax = plt.subplots(figsize=(5, 3.6), dpi=150)
        _panel(ax, result, metric)
        ax.legend(fontsize=7, frameon=False)
        ax.set_title(f"{model} · {METRIC_LABELS.get(metric, metric)}", fontsize=9)
        fig.tight_layout()
        paths[f"figure_{metric}"] = folder / f"{metric}.png"
        fig.savefig(paths[f"figure_{metric}"])
        plt.close(fig)
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), dpi=130)
    for ax, metric in zip(axes.flat, GRID_METRICS, strict=True):
        _panel(ax, result, metric)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    paths["figure_overview"] = folder / "overview.png"
    fig.savefig(paths["figure_overview"])
    plt.close(fig)
    return paths
