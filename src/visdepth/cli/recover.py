"""``visdepth recover``: RQ4, LoRA self-distillation of the truncated model, and how much comes back.

The options are the fields of the experiment's config (cli/options.py); this file only prints the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visdepth.cli.common import console
from visdepth.cli.experiment import experiment_command

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.recover import RecoverResult


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def _print_summary(result: RecoverResult) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{result.model['name']}: recovery by LoRA self-distillation, L = {result.num_layers}",
        caption="greedy mean main score: full / truncated / recovered; frac: (rec - trunc) / (full - trunc) "
        "[95% bootstrap]; vs teacher: the same against the full model's greedy answers; spread: std of the "
        "runs' scores across strategies and draws, truncated -> recovered; consistent: share of questions "
        "answered the same in every run",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for name in (
        "task / kind",
        "cut",
        "full",
        "trunc",
        "rec",
        "frac",
        "vs teacher",
        "frac",
        "spread",
        "consistent",
    ):
        table.add_column(name, justify="left" if name == "task / kind" else "right", no_wrap=True)
    for task, summary in result.tasks.items():
        for kind, ks in summary.kinds.items():
            for cut, rec in ks.recovery.items():
                t, r = ks.spread[f"truncated@{cut}"], ks.spread[f"recovered@{cut}"]
                f, tf = rec.fraction, rec.teacher_fraction
                table.add_row(
                    f"{task} / {kind}",
                    cut,
                    _num(rec.full),
                    _num(rec.truncated),
                    _num(rec.recovered),
                    f"{_num(f.value, '.2f')} [{_num(f.low, '.2f')}, {_num(f.high, '.2f')}]",
                    f"{_num(rec.teacher_truncated)} -> {_num(rec.teacher_recovered)}",
                    _num(tf.value, ".2f"),
                    f"{_num(t.std)} -> {_num(r.std)}",
                    f"{_num(t.consistency, '.2f')} -> {_num(r.consistency, '.2f')}",
                )
    console.print(table)
    for cut, tr in result.training.items():
        losses = tr.losses
        curve = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "no loss curve"
        console.print(
            f"cut {cut}: adapter {tr.source} ({tr.steps} steps, {curve}) in {tr.adapter}", highlight=False
        )


command = experiment_command("recover", _print_summary)
