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


def accuracy_label(key: str) -> str:
    """``budget_2`` -> ``chain capped at 2x the full chain's length``; the others from ACCURACY_LABELS."""
    if key.startswith("budget_"):
        return f"chain capped at {key.removeprefix('budget_')}x the full chain's length"
    return ACCURACY_LABELS.get(key, key)


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
    # capped chains first: the free chain is drawn over the budget that reproduces it
    for key, ivs in sorted(task.accuracy.items(), key=lambda kv: kv[0] in styles):
        if key in styles:
            colour, style, marker = styles[key]
            label = ACCURACY_LABELS[key]
        else:
            colour, style, marker = greys[budget_keys.index(key)], "--", "x"
            label = accuracy_label(key)
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


def examples_text(result: ReasonResult, limit: int | None = None) -> str:
    """The largest divergences and the deepest "same answer, different path" cases of every task as plain text
    (both chains, both answers, the measures), at most ``limit`` of each."""
    lines = []
    for name, task in result.tasks.items():
        for title, chosen in (
            ("largest divergences of the reasoning from the full model's", task.examples),
            ("same answer, different path (deepest cuts)", task.same_answer_examples),
        ):
            lines.append(f"# {name}: {title}")
            for ex in chosen[:limit]:
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


# ---------------------------------------------------------------------------------------------- HTML report
CLAIM = (
    "Under greedy decoding, reducing visual depth perturbs the reasoning path more than the final answer: image "
    "tokens shape how the model reasons more than what it concludes."
)
CAPTIONS = {
    "claim": "Share of samples whose reasoning path (token ids before the final-answer part) differs from the full "
    "model's, whose final answer differs, and 'same answer, different path', against l_c / L; bands: percentile "
    "bootstrap intervals over samples.",
    "compensate": "Accuracy against the ground truth of the direct answer (no chain), the chain-of-thought answer, "
    "chains capped at multiples of the full model's chain length, and the teacher-forced answer (the full "
    "model's reasoning given, only the conclusion generated at the cut).",
    "trajectory": "Trajectory measures of the reasoning against the full model's, means over samples.",
}
VERDICT_RULE = (
    "Per task and cut l_c < L at which some path or answer differs: the cut supports the claim when the share of "
    "samples whose path differs exceeds the share whose answer differs (paired over samples), and opposes it when "
    "it is lower. Every such cut supports: holds; none: does not hold; some: mixed; no such cut: not testable. "
    "Cuts where the paired bootstrap interval of the difference excludes 0 are counted apart."
)


def _mean_below(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values[:-1] if v is not None]
    return float(np.mean(vals)) if vals else None


def _p(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _ci(iv: Interval) -> str:
    if iv.mean is None:
        return "–"
    return _p(iv.mean) if iv.low == iv.high else f"{_p(iv.mean)} [{_p(iv.low)}, {_p(iv.high)}]"


def _examples_table(title: str, examples: list[dict], L: int, note: str) -> dict:
    header = ["sample", "l_c/L", "full model's chain → answer", "chain at the cut → answer", "ROUGE-L"]
    rows = [
        [
            ex["sample"],
            f"{ex['cut']}/{L}",
            f"{ex['full_chain']} → {ex['full_answer']}",
            f"{ex['chain']} → {ex['answer']}",
            _f(ex["trajectory"]["rougeL"]),
            str(ex["teacher_forced_answer"]),
        ]
        for ex in examples
    ]
    return {"title": title, "header": [*header, "teacher-forced answer"], "rows": rows, "note": note}


def reason_section(result: ReasonResult) -> dict:
    """What the HTML report shows for an RQ5 result, as plain data: figure captions (by name prefix), tables
    (title, header, rows, note), readings, and the verdict (question, claim, measured, verdict, rule)."""
    L = result.num_layers
    tables, readings, votes, measured = [], [], [], []
    significant = {"path": 0, "answer": 0}
    for name, task in result.tasks.items():
        acc = task.accuracy
        budget_keys = [k for k in acc if k.startswith("budget_")]
        rows = []
        for j, cut in enumerate(result.cuts):
            rows.append(
                [
                    f"{cut}/{L} ({result.depth[j]:.2f})",
                    _ci(task.shares["chain_differs"][j]),
                    _ci(task.shares["answer_differs"][j]),
                    _p(task.shares["same_answer_different_path"][j].mean),
                    *[
                        _f(acc[k][j].mean) if k in acc else "–"
                        for k in ("direct", "cot", *budget_keys, "teacher_forced")
                    ],
                    str(task.unextracted["cot"][j]),
                ]
            )
            if j < len(result.cuts) - 1:
                path, answer = task.shares["chain_differs"][j].mean, task.shares["answer_differs"][j].mean
                if path or answer:
                    votes.append(None if path == answer else bool(path > answer))
                gap = task.gap[j]
                significant["path"] += bool(gap.low is not None and gap.low > 0)
                significant["answer"] += bool(gap.high is not None and gap.high < 0)
        tables.append(
            {
                "title": f"Task {name}: reasoning and answers against the full model per cut (n = {task.num_samples})",
                "header": [
                    "l_c/L",
                    "path differs",
                    "answer differs",
                    "same answer, other path",
                    "acc. direct",
                    "acc. CoT",
                    *[f"acc. CoT ≤ {k[7:]}× length" for k in budget_keys],
                    "acc. teacher-forced",
                    "answers not extracted",
                ],
                "rows": rows,
                "note": f"Path: the reasoning token ids before the final-answer part; [low, high]: "
                f"{result.confidence_level:.0%} percentile bootstrap over samples. Full-model chains without an "
                f"extractable answer: {task.full_unextracted}.",
            }
        )
        for title, chosen, note in (
            (
                "the largest divergences of the reasoning",
                task.examples,
                "Lowest ROUGE-L of the reasoning against the full model's, one row per sample.",
            ),
            (
                "same answer, different path (deepest cuts)",
                task.same_answer_examples,
                "The full model's answer reached by another chain, deepest cuts first, one row per sample.",
            ),
        ):
            if chosen:
                tables.append(_examples_table(f"Task {name}: {title}", chosen, L, note))
        path, answer = (
            _mean_below([s.mean for s in task.shares["chain_differs"]]),
            _mean_below([s.mean for s in task.shares["answer_differs"]]),
        )
        same = _mean_below([s.mean for s in task.shares["same_answer_different_path"]])
        measured.append(
            f"{name}: path differs {_p(path)}, answer differs {_p(answer)} (mean over cuts below L)"
        )
        readings.append(
            f"Task {name}: over the cuts below L, the reasoning path differs from the full model's for {_p(path)} "
            f"of the samples on average and the final answer for {_p(answer)}; {_p(same)} reach the same answer "
            "by another path."
        )
        parts = [f"{accuracy_label(k)} {_f(_mean_below([i.mean for i in acc[k]]))}" for k in acc]
        readings.append(
            f"  {name}: mean accuracy over the cuts below L: "
            + ", ".join(parts)
            + f" (full model: CoT {_f(acc['cot'][-1].mean)}"
            + (f", direct {_f(acc['direct'][-1].mean)})." if "direct" in acc else ").")
        )
        if "direct" in task.agreement:
            readings.append(
                f"  {name}: agreement with the full model's own answer over the cuts below L: direct "
                f"{_p(_mean_below(task.agreement['direct']))}, chain of thought "
                f"{_p(_mean_below(task.agreement['cot']))}."
            )
        if "teacher_forced" in task.agreement:
            tf = _mean_below(task.agreement["teacher_forced"])
            cot = _mean_below(task.agreement["cot"])
            readings.append(
                f"  {name}: given the full model's reasoning, the truncated model reaches the full model's answer "
                f"for {_p(tf)} of the samples (with its own chain: {_p(cot)}): "
                + (
                    "the damage is mostly in the path, the conclusion follows the chain it is given."
                    if tf is not None and cot is not None and tf > cot
                    else "the conclusion itself is perturbed, not only the path."
                )
            )
    known = [v for v in votes if v is not None]
    verdict = (
        "not testable"
        if not known
        else "holds"
        if all(known)
        else "does not hold"
        if not any(known)
        else "mixed"
    )
    text = "; ".join(measured) + (
        f"; the paired interval of the difference excludes 0 at {significant['path']} cut(s) for the path and at "
        f"{significant['answer']} for the answer"
    )
    return {
        "captions": CAPTIONS,
        "tables": tables,
        "readings": readings,
        "verdict": {
            "question": "RQ5",
            "claim": CLAIM,
            "measured": text,
            "verdict": verdict,
            "rule": VERDICT_RULE,
        },
    }
