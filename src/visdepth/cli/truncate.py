"""``visdepth truncate``: RQ3, task quality and compute saved when image tokens stop at a cut depth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from visdepth.cli.common import (
    DeviceOpt,
    DtypeOpt,
    LimitOpt,
    LogSamplesOpt,
    ModelArgsOpt,
    ModelOpt,
    OutputPathOpt,
    ProgressOpt,
    SeedOpt,
    console,
    friendly,
    parse_model_args,
    split_list,
)
from visdepth.defaults import DEFAULT_DATASET_NAME, DEFAULT_MODEL
from visdepth.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from visdepth.results.schemas.truncate import DepthPick, TruncateResult


def parse_cuts(text: str) -> str | list[int]:
    """``all`` or ``0,4,8`` -> ``"all"`` or ``[0, 4, 8]``."""
    if text.strip().lower() == "all":
        return "all"
    items = split_list(text)
    try:
        cuts = [int(item) for item in items]
    except ValueError:
        raise ConfigError(
            f"--cut {text!r} is not 'all' or whole numbers; write e.g. --cut all or --cut 0,4,8."
        ) from None
    if not cuts:
        raise ConfigError("--cut names no depth; write e.g. --cut all or --cut 0,4,8.")
    return cuts


@friendly
def command(
    model: ModelOpt = DEFAULT_MODEL,
    model_args: ModelArgsOpt = "",
    tasks: Annotated[
        str,
        typer.Option(
            help="comma-separated tasks: shapes, photos, blink, flickr8k, chartqa, vqav2, local:<jsonl>."
        ),
    ] = DEFAULT_DATASET_NAME,
    limit: LimitOpt = None,
    cut: Annotated[
        str,
        typer.Option(
            "--cut", "--cuts", help="cut depths l_c: 'all' (0..L) or a list such as 0,4,8 (L is added)."
        ),
    ] = "all",
    mode: Annotated[
        str, typer.Option(help="drop (image tokens removed: faster) or mask (exact, no speed-up).")
    ] = "drop",
    budget: Annotated[
        float, typer.Option(help="share of the full model's quality the budget cut keeps, in (0, 1].")
    ] = 0.95,
    vtw_threshold: Annotated[
        float,
        typer.Option(
            "--vtw_threshold", "--vtw-threshold", help="KL (nats) below which VTW's criterion accepts a cut."
        ),
    ] = 0.05,
    pick_rule: Annotated[
        str,
        typer.Option(
            "--pick_rule",
            "--pick-rule",
            help="stable: the shallowest cut from which every deeper cut meets the budget / VTW criterion; "
            "first: the shallowest cut that meets it.",
        ),
    ] = "stable",
    calibration: Annotated[
        int,
        typer.Option(help="samples for VTW's criterion (train split when the task has one, else evaluated)."),
    ] = 16,
    batch_size: Annotated[
        int, typer.Option("--batch_size", "--batch-size", help="samples per forward pass.")
    ] = 8,
    timing: Annotated[
        bool, typer.Option(help="measure prefill/decode latency and peak memory per cut.")
    ] = True,
    timing_repeats: Annotated[
        int, typer.Option("--timing_repeats", "--timing-repeats", help="timed repeats per measurement.")
    ] = 3,
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max_new_tokens", "--max-new-tokens", help="override the tasks' generation budgets."),
    ] = None,
    sentence_model: Annotated[
        str | None,
        typer.Option(
            "--sentence_model", "--sentence-model", help="sentence encoder (default: bundled MiniLM)."
        ),
    ] = None,
    chat: Annotated[bool, typer.Option(help="format prompts with the model's chat template.")] = True,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    seed: SeedOpt = 0,
    output_path: OutputPathOpt = "outputs",
    log_samples: LogSamplesOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Keep image tokens for the first l_c decoder layers only: quality, KL and compute per cut, depth budget."""
    from visdepth.experiments.truncate import PICK_RULES, TruncateConfig, run, run_dir

    if pick_rule not in PICK_RULES:
        raise ConfigError(f"--pick_rule {pick_rule!r} is unknown; use {', '.join(PICK_RULES)}.")
    config = TruncateConfig(
        model=model,
        model_args=parse_model_args(model_args),
        tasks=split_list(tasks),
        limit=limit,
        cuts=parse_cuts(cut),
        mode=mode,
        budget=budget,
        vtw_threshold=vtw_threshold,
        pick_rule=pick_rule,  # type: ignore[arg-type]
        calibration=calibration,
        batch_size=batch_size,
        timing=timing,
        timing_repeats=timing_repeats,
        device=device,
        dtype=dtype,
        seed=seed,
        chat=chat,
        max_new_tokens=max_new_tokens,
        sentence_model=sentence_model,
        output_path=output_path,
        log_samples=log_samples,
        progress=progress,
    )
    result = run(config)
    folder = run_dir(config, result.model["name"])
    _print_summary(result)
    console.print(f"[green]wrote[/] {folder / 'results.json'} and {len(result.files)} files beside it")


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
