"""Figures for RQ4: quality of the full, truncated and recovered models per kind and cut; the spread of results
across decoding strategies before and after recovery; the training loss curves."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from visdepth.report.labels import model_label, shorten  # noqa: E402
from visdepth.report.page import Section, Verdict, combine, embed_figures, fmt, pct, table  # noqa: E402
from visdepth.report.truncate import slug  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.recover import RecoverResult

MODEL_COLOURS = {"full": "#222222", "truncated": "#d1495b", "recovered": "#00798c"}


def _nan(v: float | None) -> float:
    return np.nan if v is None else v


def _panels(n: int):
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def plot_quality(result: RecoverResult, task: str, path: Path) -> Path:
    """Per kind: greedy main score of full / truncated / recovered at every cut (bars), with the recovered
    fraction written above each group."""
    kinds = result.tasks[task].kinds
    fig, axes = _panels(len(kinds))
    for ax, (kind, ks) in zip(axes, kinds.items(), strict=False):
        x = np.arange(len(result.cuts))
        for i, which in enumerate(("full", "truncated", "recovered")):
            vals = [_nan(getattr(ks.recovery[str(c)], which)) for c in result.cuts]
            ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=which, color=MODEL_COLOURS[which])
        for j, c in enumerate(result.cuts):
            f = ks.recovery[str(c)].fraction
            if f.value is not None:
                ax.text(j, 1.02, f"{f.value:.0%}", ha="center", fontsize=7)
        ax.set_xticks(x, [f"l_c={c}" for c in result.cuts])
        ax.set_ylim(0, 1.12)
        ax.set_title(f"{kind} ({ks.main_score}, n={ks.n})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, frameon=False, loc="upper right", ncol=3)
    fig.suptitle(
        f"{model_label(result.model)} · {shorten(task)} · quality, greedy (above: recovered fraction)\n"
        f"L = {result.num_layers}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_spread(result: RecoverResult, task: str, path: Path) -> Path:
    """Per kind: std of the runs' mean scores across strategies and draws (bars) and the share of questions
    answered identically in every run (dots, right axis), for full, truncated and recovered at each cut."""
    kinds = result.tasks[task].kinds
    fig, axes = _panels(len(kinds))
    runs = ""
    for ax, (kind, ks) in zip(axes, kinds.items(), strict=False):
        models = ["full"] + [f"{w}@{c}" for c in result.cuts for w in ("truncated", "recovered")]
        std = [_nan(ks.spread[m].std) for m in models]
        cons = [_nan(ks.spread[m].consistency) for m in models]
        colours = [MODEL_COLOURS[m.split("@")[0]] for m in models]
        x = np.arange(len(models))
        ax.bar(x, std, color=colours, alpha=0.8)
        ax.set_ylabel("std of run scores", fontsize=8)
        twin = ax.twinx()
        twin.plot(x, cons, "o", color="#edae49")
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("consistent questions", fontsize=8, color="#b07d1a")
        ax.set_xticks(
            x,
            [m.replace("truncated", "trunc").replace("recovered", "rec") for m in models],
            fontsize=7,
            rotation=30,
        )
        ax.set_title(f"{kind} ({ks.main_score})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        runs = ", ".join(ks.spread["full"].runs)
    fig.suptitle(
        f"{model_label(result.model)} · {shorten(task)} · spread across decoding runs\n{runs}", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_loss(result: RecoverResult, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for cut, tr in result.training.items():
        if tr.losses:
            ax.plot(np.arange(1, len(tr.losses) + 1), tr.losses, label=f"l_c = {cut} ({tr.source})", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("distillation loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
    loss = next(iter(result.training.values())).settings.get("loss", "")
    ax.set_title(f"{model_label(result.model)} · training loss ({loss})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_recover(result: RecoverResult, folder: str | Path) -> dict[str, Path]:
    """Every RQ4 figure under ``folder``: name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"loss": plot_loss(result, folder / "recover_loss.png")}
    for task in result.tasks:
        out[f"quality_{task}"] = plot_quality(result, task, folder / f"recover_quality_{slug(task)}.png")
        out[f"spread_{task}"] = plot_spread(result, task, folder / f"recover_spread_{slug(task)}.png")
    return out


# ---------------------------------------------------------------------------------------------- HTML report
#: the paper's claim, as the report states it
CLAIM = (
    "LoRA self-distillation recovers coarse description (captions) well and precise visual alignment only partly; "
    "fine-tuning also reduces how much results vary across decoding strategies."
)
#: a kind "recovers well" when at least this share of the truncation gap comes back (greedy, ground truth)
WELL = 0.5
#: kinds that need precise visual alignment (the paper's ChartQA stands for them)
PRECISE = ("exact_match", "single_token", "multiple_choice")


def rq4_section(exp: Any, sec: Section) -> tuple[Section, Verdict]:
    """The report's RQ4 section (``sec``, made by report/html.py with its title and provenance, filled here) and
    verdict, from one recover result."""
    r: RecoverResult = exp.result
    sec.figures = embed_figures(
        plot_recover,
        r,
        {
            "quality": "Greedy main score of the full, truncated and recovered models per kind and cut; above: "
            "the recovered fraction (recovered - truncated) / (full - truncated).",
            "spread": "Std of the runs' mean scores across decoding strategies and draws (bars) and the share of "
            "questions answered identically in every run (dots).",
            "loss": "Distillation loss per training step, one curve per cut.",
        },
    )
    caption, precise, steadier = [], [], []
    for name, task in r.tasks.items():
        rows = []
        for kind, ks in task.kinds.items():
            for cut, rec in ks.recovery.items():
                t, s = ks.spread[f"truncated@{cut}"], ks.spread[f"recovered@{cut}"]
                f = rec.fraction
                rows.append(
                    [
                        kind, cut, str(ks.n), ks.main_score or "–", fmt(rec.full), fmt(rec.truncated),
                        fmt(rec.recovered),
                        f"{pct(f.value)} [{pct(f.low)}, {pct(f.high)}]" if f.value is not None else "–",
                        f"{fmt(rec.teacher_truncated)} → {fmt(rec.teacher_recovered)}",
                        f"{fmt(t.std)} → {fmt(s.std)}", f"{pct(t.consistency)} → {pct(s.consistency)}",
                    ]
                )  # fmt: skip
                if f.value is not None:
                    (caption if kind == "caption" else precise if kind in PRECISE else []).append(f.value)
                if t.std is not None and s.std is not None:
                    steadier.append(s.std < t.std)
        sec.tables.append(
            table(
                f"{name}: recovery per kind and cut (greedy)",
                [
                    "kind",
                    "l_c",
                    "n",
                    "score",
                    "full",
                    "truncated",
                    "recovered",
                    "recovered fraction [95%]",
                    "vs teacher",
                    "spread std",
                    "consistent",
                ],  # fmt: skip
                rows,
                "vs teacher: the kind's closeness to the full model's greedy answer (captions: MiniLM similarity); "
                "spread and consistency: truncated → recovered, across every strategy and draw.",
            )
        )
    votes = [
        (min(caption) >= WELL) if caption else None,
        (max(precise) < (min(caption) if caption else 1.0)) if precise else None,
        (sum(steadier) > len(steadier) / 2) if steadier else None,
    ]
    measured = (
        f"captions recover {', '.join(pct(v) for v in caption) or '–'}; precise-alignment kinds "
        f"{', '.join(pct(v) for v in precise) or '–'}; the spread of run scores falls (strictly) at {sum(steadier)} of {len(steadier)} "
        "(kind, cut) pairs"
    )
    rule = (
        f"holds when captions recover at least {WELL:.0%} of the gap at every cut, every precise-alignment kind "
        f"({', '.join(PRECISE)}) recovers less than the captions, and the spread across decoding runs falls for "
        "most (kind, cut) pairs; does not hold when none of the three does; mixed else"
    )
    v = Verdict("RQ4", CLAIM, measured, combine(votes), rule)
    sec.verdict = v
    return sec, v
