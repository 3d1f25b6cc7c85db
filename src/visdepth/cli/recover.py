"""``visdepth recover``: RQ4, LoRA self-distillation of the truncated model, and how much comes back.

The options are the fields of the experiment's config (cli/options.py); this file only prints the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visdepth.cli.common import console
from visdepth.cli.experiment import experiment_command

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.recover import RecoverResult


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def _table(title: str, caption: str, columns: list[str]):
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in columns:
        table.add_column(name, justify="left" if name == "kind" else "right", no_wrap=True)
    return table


def _print_summary(result: RecoverResult) -> None:
    name = result.model["name"]
    quality = _table(
        f"{name}: recovery by LoRA self-distillation, L = {result.num_layers}",
        "greedy mean main score; frac: (rec - trunc) / (full - trunc) with its 95% bootstrap interval; "
        "tch: closeness to the full model's greedy answers (truncated, recovered)",
        ["kind", "l_c", "full", "trunc", "rec", "frac", "95% CI", "tch t", "tch r"],
    )
    spread = _table(
        "spread across decoding runs (" + ", ".join(d["name"] for d in result.decoding) + ")",
        "std: of the runs' mean scores; same: share of questions answered identically in every run",
        ["kind", "l_c", "std full", "std t", "std r", "same full", "same t", "same r"],
    )
    for task, summary in result.tasks.items():
        for kind, ks in summary.kinds.items():
            label = kind if len(result.tasks) == 1 else f"{task}/{kind}"
            full = ks.spread["full"]
            for cut, rec in ks.recovery.items():
                t, r, f = ks.spread[f"truncated@{cut}"], ks.spread[f"recovered@{cut}"], rec.fraction
                quality.add_row(
                    label, cut, _num(rec.full), _num(rec.truncated), _num(rec.recovered), _num(f.value),
                    f"[{_num(f.low, '.1f')},{_num(f.high, '.1f')}]", _num(rec.teacher_truncated), _num(rec.teacher_recovered),
                )  # fmt: skip
                spread.add_row(
                    label, cut, _num(full.std, ".3f"), _num(t.std, ".3f"), _num(r.std, ".3f"),
                    _num(full.consistency), _num(t.consistency), _num(r.consistency),
                )  # fmt: skip
    console.print(quality)
    console.print(spread)
    for cut, tr in result.training.items():
        losses = tr.losses
        curve = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "no loss curve"
        console.print(
            f"cut {cut}: adapter {tr.source} ({tr.steps} steps, {curve}) in {tr.adapter}", highlight=False
        )


command = experiment_command("recover", _print_summary)
