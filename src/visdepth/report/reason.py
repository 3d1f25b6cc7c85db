"""Figures for RQ5: does visual truncation change the reasoning more than the answer, and does reasoning make up
for lost visual depth?

Per task: ``claim_<task>``, the share of samples whose reasoning path differs from the full model's and whose
final answer differs, with their bootstrap intervals, and the share of "same answer, different path", against
l_c / L; ``compensate_<task>``, accuracy against the ground truth of the direct answer, the chain-of-thought
answer, chains capped at each token budget and the teacher-forced answer; ``trajectory_<task>``, the trajectory
measures (edit distance, ROUGE-L, MiniLM cosine, first differing token and step, length ratio). Also the text of
the largest divergences (:func:`examples_text`).
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
from visdepth.report.truncate import slug  # noqa: E402
from visdepth.results.schemas.reason import SHARE_LABELS, TRAJECTORY_LABELS  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.reason import Interval, ReasonResult, ReasonTaskSummary

SHARE_STYLE = {
    "chain_differs": ("#8e6c8a", "-", "o"),
    "answer_differs": ("#edae49", "-", "s"),
    "same_answer_different_path": ("#00798c", "--", "^"),
}
ACCURACY_LABELS = {
    "direct": "direct answer (no chain)",
    "cot": "chain of thought",
    "teacher_forced": "teacher-forced (full model's reasoning)",
}


def _arr(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _band(
    ax, depth: Sequence[float], ivs: Sequence[Interval], colour: str, style: str, marker: str, label: str
):
    mean, low, high = (_arr([getattr(i, k) for i in ivs]) for k in ("mean", "low", "high"))
    ax.plot(depth, mean, style, marker=marker, color=colour, label=label, lw=1.6, ms=4)
    ax.fill_between(depth, low, high, color=colour, alpha=0.15, lw=0)


def _finish(ax, title: str, ylabel: str) -> None:
    ax.set_xlabel("visual depth l_c / L")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def plot_reason(result: ReasonResult, folder: str | Path) -> dict[str, Path]:
    """Every RQ5 figure of ``result`` into ``folder``: name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    level = f"{result.confidence_level:.0%}"
    for name, task in result.tasks.items():
        head = f"{model_label(result.model)} · {name} (n = {task.num_samples}, {result.mode} mode)"
        out[f"claim_{slug(name)}"] = _claim(result, task, head, level, folder / f"claim_{slug(name)}.png")
        out[f"compensate_{slug(name)}"] = _compensate(
            result, task, head, level, folder / f"compensate_{slug(name)}.png"
        )
        out[f"trajectory_{slug(name)}"] = _trajectory(
            result, task, head, folder / f"trajectory_{slug(name)}.png"
        )
    return out


def _claim(result: ReasonResult, task: ReasonTaskSummary, head: str, level: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key, (colour, style, marker) in SHARE_STYLE.items():
        _band(ax, result.depth, task.shares[key], colour, style, marker, SHARE_LABELS[key])
    _finish(
        ax,
        f"{head}\nreasoning vs answer changes against the full model ({level} bootstrap bands)",
        "share of samples",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _compensate(result: ReasonResult, task: ReasonTaskSummary, head: str, level: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    budget_keys = [k for k in task.accuracy if k.startswith("budget_")]
    greys = plt.cm.Greys(np.linspace(0.45, 0.85, max(1, len(budget_keys))))
    styles = {
        "direct": ("#d1495b", "-", "s"),
        "cot": ("#8e6c8a", "-", "o"),
        "teacher_forced": ("#00798c", ":", "D"),
    }
    for key, ivs in task.accuracy.items():
        if key in styles:
            colour, style, marker = styles[key]
            label = ACCURACY_LABELS[key]
        else:
            colour, style, marker = greys[budget_keys.index(key)], "--", "x"
            label = f"chain capped at {key.removeprefix('budget_')} x the full chain's length"
        _band(ax, result.depth, ivs, colour, style, marker, label)
    _finish(
        ax,
        f"{head}\ndoes reasoning make up for lost visual depth? ({level} bands)",
        "accuracy (ground truth)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _trajectory(result: ReasonResult, task: ReasonTaskSummary, head: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colours = plt.cm.tab10(np.arange(len(TRAJECTORY_LABELS)))
    for (key, label), colour in zip(TRAJECTORY_LABELS.items(), colours, strict=True):
        values = task.trajectory.get(key)
        if values is None or all(v is None for v in values):
            continue
        ax.plot(result.depth, _arr(values), "-", marker=".", color=colour, label=label, lw=1.4)
    _finish(ax, f"{head}\nreasoning path against the full model's (means over samples)", "value")
    ax.set_ylim(-0.03, max(1.03, float(np.nanmax(_arr(task.trajectory.get("length_ratio") or [1.0]))) + 0.05))
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def examples_text(result: ReasonResult) -> str:
    """The largest divergences of every task as plain text (both chains, both answers, the measures)."""
    lines = []
    for name, task in result.tasks.items():
        lines.append(f"# {name}: largest divergences of the reasoning from the full model's")
        for ex in task.examples:
            t = ex["trajectory"]
            lines += [
                f"- sample {ex['sample']} at l_c = {ex['cut']} (l_c/L = {ex['depth']:.2f}); ground truth "
                f"{ex['ground_truth']!r}",
                f"  prompt: {ex['prompt']!r}",
                f"  full chain: {ex['full_chain']!r} -> {ex['full_answer']!r}",
                f"  cut chain:  {ex['chain']!r} -> {ex['answer']!r}"
                + (" (same answer, different path)" if ex["same_answer"] else ""),
                f"  ROUGE-L {t['rougeL']:.2f}, edit distance {t['edit_distance']:.2f}, first differing token "
                f"{t['first_token']}, teacher-forced answer {ex['teacher_forced_answer']!r}, direct answer "
                f"{ex['direct_answer']!r}",
            ]
    return "\n".join(lines) + "\n"
