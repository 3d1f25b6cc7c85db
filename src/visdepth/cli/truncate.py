"""``visdepth truncate``: RQ3, task quality and compute saved when image tokens stop at a cut depth.

The options are the fields of the experiment's config (cli/options.py); this file only prints the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visdepth.cli.common import console
from visdepth.cli.experiment import experiment_command

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.truncate import DepthPick, TruncateResult


def _cut(pick: DepthPick | None, L: int) -> str:
    """``l_c/L`` (the cut and its depth in one short cell), starred when the pick carries a note."""
    if pick is None or pick.cut is None:
        return "-"
    return f"{pick.cut}/{L}" + ("*" if pick.note else "")


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _print_summary(result: TruncateResult) -> None:
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{result.model['name']}: visual truncation, L = {result.num_layers}, {result.mode} mode",
        caption=f"full: main score at l_c = L; cuts as l_c/L; budget: shallowest cut keeping {result.budget:g} of it; VTW: "
        f"shallowest cut with calibration KL <= {result.vtw_threshold:g}; "
        + (
            "both stable: every deeper cut meets it too; "
            if result.pick_rule == "stable"
            else "both first: a deeper cut may fail it; "
        )
        + "kept: quality / full; FLOPs: "
        + (
            "prefill FLOPs / full (analytic); "
            if result.mode == "drop"
            else "prefill FLOPs / full as run: mask mode computes every image token, so it saves nothing; "
        )
        + "*: see the notes below",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for name in ("task / kind", "n", "full", "budget", "kept", "FLOPs", "VTW", "kept", "FLOPs"):
        first = name == "task / kind"
        table.add_column(name, justify="left" if first else "right", no_wrap=first)
    notes, metrics = [], {}
    for name, summary in result.tasks.items():
        rows = [(name, summary.num_samples, summary.budget, summary.vtw)]
        rows += [(f" {k}", ks.n, ks.budget, ks.vtw) for k, ks in summary.kinds.items()]
        metrics.update({k: ks.main_score for k, ks in summary.kinds.items() if ks.main_score})
        for label, n, pick, vtw in rows:
            full = pick.full_quality if pick is not None else None
            table.add_row(
                label,
                str(n),
                "-" if full is None else f"{full:.3f}",
                _cut(pick, result.num_layers),
                _share(pick.quality_ratio if pick else None),
                _ratio(pick.prefill_flops_ratio if pick else None),
                _cut(vtw, result.num_layers),
                _share(vtw.quality_ratio if vtw else None),
                _ratio(vtw.prefill_flops_ratio if vtw else None),
            )
            notes += [f"{label.strip()}: {p.note}" for p in (pick, vtw) if p is not None and p.note]
    console.print(table)
    console.print(
        "main scores: " + ", ".join(f"{k} {m}" for k, m in metrics.items()) + "; task: mean of its kinds",
        highlight=False,
    )
    for note in dict.fromkeys(notes):
        console.print(f"* {note}", highlight=False)
    if result.mode == "mask":
        for name, summary in result.tasks.items():
            would = [
                f"{_ratio(p.drop_prefill_flops_ratio)} at the {label} cut {p.cut}"
                for label, p in (("budget", summary.budget), ("VTW", summary.vtw))
                if p.cut is not None
            ]
            if would:
                console.print(
                    f"{name}: drop mode would spend prefill FLOPs / full of " + ", ".join(would),
                    highlight=False,
                )
    timing = result.timing
    if timing is not None:
        summary = result.tasks[timing.task]
        parts = []
        for label, pick in (("budget", summary.budget), ("VTW", summary.vtw)):
            if pick.cut is not None:
                j = result.cuts.index(pick.cut)
                parts.append(
                    f"{label} cut {pick.cut}: prefill {1000 * timing.prefill_s[j]:.1f} ms "
                    f"(x{timing.prefill_speedup[j]:.2f}), decode {1000 * timing.decode_per_token_s[j]:.2f} ms/token"
                )
        console.print(
            f"measured ({timing.clock}, {len(timing.samples)} samples of {timing.task}, median of {timing.repeats}): "
            f"full prefill {1000 * timing.prefill_s[-1]:.1f} ms, decode {1000 * timing.decode_per_token_s[-1]:.2f} "
            "ms/token; " + "; ".join(parts),
            highlight=False,
        )


def _print_modes(result: TruncateResult) -> None:
    """Several modes: per task, the shallowest safe cut under each (access: mask/drop; processing: the rest)."""
    from rich import box
    from rich.table import Table

    modes = result.mode_list()
    L = result.num_layers
    table = Table(
        title=f"{result.model['name']}: shallowest safe cut per mode (quality >= {result.budget:g} x full), L = {L}",
        caption="cell: budget cut l_c/L (prefill FLOPs / full there, analytic); mask/drop remove access to image "
        "tokens above l_c, the others keep them readable but not (fully) updated: a processing mode safe at a "
        "much shallower cut than drop means the task needs image tokens readable deep, not processed deep",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("task / kind", no_wrap=True)
    for mode in modes:
        table.add_column(mode, justify="right")
    for name, kind, picks in result.budget_picks():
        cells = [
            "-"
            if pick is None or pick.cut is None
            else f"{_cut(pick, L)} ({_ratio(pick.prefill_flops_ratio)})"
            for pick in picks.values()
        ]
        table.add_row(name if kind is None else f" {kind}", *cells)
    console.print(table)
    for mode in modes:
        timing, task = result.timing_in(mode), None
        if timing is not None:
            task = result.summaries(mode).get(timing.task)
        if timing is None or task is None or task.budget.cut is None:
            continue
        j = result.cuts.index(task.budget.cut)
        console.print(
            f"measured, {mode}: budget cut {task.budget.cut}: prefill {1000 * timing.prefill_s[j]:.1f} ms "
            f"(x{timing.prefill_speedup[j]:.2f}; analytic FLOPs {_ratio(task.budget.prefill_flops_ratio)}), decode "
            f"{1000 * timing.decode_per_token_s[j]:.2f} ms/token",
            highlight=False,
        )


def _print_all(result: TruncateResult) -> None:
    _print_summary(result)
    if len(result.mode_list()) > 1:
        _print_modes(result)


command = experiment_command("truncate", _print_all)
