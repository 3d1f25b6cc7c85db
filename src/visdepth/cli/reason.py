"""``visdepth reason``: RQ5, chain-of-thought trajectories and final answers under visual truncation.

The options are the fields of the experiment's config (cli/options.py); this file only prints the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visdepth.cli.common import console
from visdepth.cli.experiment import experiment_command

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.reason import Interval, ReasonResult


def _iv(iv: Interval) -> str:
    if iv.mean is None:
        return "-"
    return f"{iv.mean:.0%}"


def _acc(iv: Interval | None) -> str:
    return "-" if iv is None or iv.mean is None else f"{iv.mean:.2f}"


def _print_summary(result: ReasonResult) -> None:
    from rich import box
    from rich.table import Table

    L = result.num_layers
    for name, task in result.tasks.items():
        budgets = [k for k in task.accuracy if k.startswith("budget_")]
        table = Table(
            title=f"{result.model['name']} · {name}: reasoning under truncation, L = {L}, {result.mode} mode, "
            f"n = {task.num_samples}",
            caption="path / answer: share of samples whose reasoning / final answer differs from the full "
            "model's (bootstrap intervals in results.json and the figure); same ans.: same answer, different path; "
            "accuracy against the ground truth: direct (no chain), CoT, chains capped at b x the full chain's "
            "length, TF: teacher-forced with the full model's reasoning; unextr.: answers not found",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        header = [
            "l_c/L",
            "path",
            "answer",
            "same ans.",
            "direct",
            "CoT",
            *[f"b={b[7:]}" for b in budgets],
            "TF",
        ]
        for col in [*header, "unextr."]:
            table.add_column(col, justify="right")
        for j, cut in enumerate(result.cuts):
            acc = task.accuracy
            table.add_row(
                f"{cut}/{L}",
                _iv(task.shares["chain_differs"][j]),
                _iv(task.shares["answer_differs"][j]),
                _iv(task.shares["same_answer_different_path"][j]),
                _acc(acc["direct"][j] if "direct" in acc else None),
                _acc(acc["cot"][j]),
                *[_acc(acc[b][j]) for b in budgets],
                _acc(acc["teacher_forced"][j] if "teacher_forced" in acc else None),
                str(task.unextracted["cot"][j]),
            )
        console.print(table)
        below = slice(0, len(result.cuts) - 1)
        gaps = [g.mean for g in task.gap[below] if g.mean is not None]
        more = sum(g.low is not None and g.low > 0 for g in task.gap[below])
        less = sum(g.high is not None and g.high < 0 for g in task.gap[below])
        if gaps:
            console.print(
                f"{name}: over the {len(gaps)} cuts below L the path differs {sum(gaps) / len(gaps):+.0%} more "
                f"often than the answer on average; the path differs significantly more at {more} cut(s), the "
                f"answer at {less} (paired {result.confidence_level:.0%} bootstrap of the difference)",
                highlight=False,
            )
    from visdepth.report.reason import examples_text

    console.print(examples_text(result, limit=2), highlight=False, markup=False)


command = experiment_command("reason", _print_summary)
