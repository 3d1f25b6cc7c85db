"""``visdepth swap``: RQ2, swap a token group's states between depths and compare the output with the full model."""

from __future__ import annotations

from typing import Annotated

import typer

from visdepth.cli.common import (
    DataOpt,
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


@friendly
def command(
    model: ModelOpt = DEFAULT_MODEL,
    model_args: ModelArgsOpt = "",
    data: DataOpt = DEFAULT_DATASET_NAME,
    limit: LimitOpt = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    seed: SeedOpt = 0,
    output_path: OutputPathOpt = "outputs",
    log_samples: LogSamplesOpt = True,
    layers: Annotated[
        str, typer.Option(help="depths of the grid: all (0..L), a list such as 0,2,4, or stride:2 (L kept).")
    ] = "all",
    groups: Annotated[
        str,
        typer.Option(
            help="token groups to swap, comma-separated: image, text (the control: every text token) and "
            "text_matched (the fairer control: a seeded random text subset as large as the image group, "
            "never the last prompt token)."
        ),
    ] = "image,text,text_matched",
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max_new_tokens", "--max-new-tokens", help="generation budget (default: the task's)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch_size", "--batch-size", help="samples per batch (numbers do not change).")
    ] = 8,
    exclude_special: Annotated[
        bool,
        typer.Option(
            "--exclude_special/--no-exclude_special",
            "--exclude-special/--no-exclude-special",
            help="leave template/special tokens out of the swapped text group.",
        ),
    ] = True,
    sentence_model: Annotated[
        str,
        typer.Option(
            "--sentence_model",
            "--sentence-model",
            help="sentence encoder for semantic similarity (a folder or hub id); none to skip similarity.",
        ),
    ] = "all-MiniLM-L6-v2",
    chat: Annotated[bool, typer.Option(help="format prompts with the model's chat template.")] = True,
    progress: ProgressOpt = True,
) -> None:
    """Swap image (or text) states between depths l_a and l_b; measure how far the output moves."""
    from visdepth.experiments.swap import SwapConfig, check_groups, parse_layers, run, run_dir

    parse_layers(layers)  # a typo fails before the model loads
    config = SwapConfig(
        model=model,
        model_args=parse_model_args(model_args),
        data=data,
        limit=limit,
        device=device,
        dtype=dtype,
        seed=seed,
        output_path=output_path,
        log_samples=log_samples,
        layers=layers,
        groups=tuple(check_groups(split_list(groups))),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        exclude_special=exclude_special,
        sentence_model=None if sentence_model.strip().lower() in ("", "none") else sentence_model,
        chat=chat,
        progress=progress,
    )
    result = run(config)
    folder = run_dir(config, result.model["name"])
    _print_summary(result)
    console.print(f"[green]wrote[/] {folder / 'results.json'} and {len(result.files)} files beside it")


def _print_summary(result) -> None:
    from rich.table import Table

    from visdepth.experiments.swap import MAIN_METRICS

    metrics = [m for m in MAIN_METRICS if m in result.metrics]
    table = Table(
        title=f"{result.model['name']}: {result.num_samples} samples, {len(result.layers)}x{len(result.layers)} "
        f"pairs of depths (L = {result.num_layers}), means off the diagonal"
    )
    table.add_column("group swapped")
    table.add_column("tokens/sample", justify="right")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for group in result.groups:
        cells = [result.off_diagonal[group][m] for m in metrics]
        shown = ["-" if v is None else f"{v:.3g}" for v in cells]
        table.add_row(group, f"{result.tokens[group]:.0f}", *shown)
    console.print(table)
    if not result.identity["holds"]:
        console.print(
            "[yellow]warning:[/] l_a = l_b did not reproduce the unmodified model exactly "
            f"(max KL {result.identity['kl_max']:.2g}); see identity in results.json."
        )
