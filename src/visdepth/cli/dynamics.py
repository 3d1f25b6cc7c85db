"""``visdepth dynamics``: RQ1, per-layer representation dynamics of image vs text tokens."""

from __future__ import annotations

from typing import Annotated, get_args

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
    exclude_special: Annotated[
        bool,
        typer.Option(
            "--exclude_special/--no-exclude_special",
            "--exclude-special/--no-exclude-special",
            help="leave template/special tokens out of the text group.",
        ),
    ] = True,
    entropy_alpha: Annotated[
        float,
        typer.Option(
            "--entropy_alpha", "--entropy-alpha", help="Renyi order of the matrix entropy (1 = Shannon)."
        ),
    ] = 1.0,
    entropy_normalize: Annotated[
        str,
        typer.Option(
            "--entropy_normalize",
            "--entropy-normalize",
            help="log_min = log min(N-1, d) (exact maximum after centring), log_min_nd, log_n or log_d.",
        ),
    ] = "log_min",
    entropy_mode: Annotated[
        str,
        typer.Option(
            "--entropy_mode", "--entropy-mode", help="paper, or skean (Skean et al. 2025 reference choices)."
        ),
    ] = "paper",
    id_methods: Annotated[
        str, typer.Option("--id_methods", "--id-methods", help="intrinsic-dimension estimators: twonn,mle.")
    ] = "twonn,mle",
    max_tokens: Annotated[
        int | None,
        typer.Option("--max_tokens", "--max-tokens", help="subsample each group to N tokens per sample."),
    ] = None,
    token_cloud: Annotated[
        str,
        typer.Option(
            "--token_cloud",
            "--token-cloud",
            help="per_sample: a group's tokens of one sample form a cloud; pooled: those of --pool_size "
            "consecutive samples do; auto: pooled when a sample has fewer than 64 image tokens.",
        ),
    ] = "auto",
    pool_size: Annotated[
        int,
        typer.Option(
            "--pool_size", "--pool-size", help="samples per pooled cloud (with --token_cloud pooled)."
        ),
    ] = 64,
    baseline: Annotated[bool, typer.Option(help="also measure the random-init twin of the model.")] = False,
    chat: Annotated[bool, typer.Option(help="format prompts with the model's chat template.")] = True,
    progress: ProgressOpt = True,
) -> None:
    """Per-layer entropy, intrinsic dimension, curvature, norms and similarity of image vs text tokens."""
    from visdepth.errors import ConfigError
    from visdepth.experiments.dynamics import DynamicsConfig, run, run_dir

    for option, value in (
        ("entropy_normalize", entropy_normalize),
        ("entropy_mode", entropy_mode),
        ("token_cloud", token_cloud),
    ):
        allowed = get_args(DynamicsConfig.model_fields[option].annotation)
        if value not in allowed:
            raise ConfigError(f"--{option} {value!r} is unknown; use {', '.join(allowed)}.")
    config = DynamicsConfig(
        model=model,
        model_args=parse_model_args(model_args),
        data=data,
        limit=limit,
        device=device,
        dtype=dtype,
        seed=seed,
        output_path=output_path,
        log_samples=log_samples,
        exclude_special=exclude_special,
        entropy_alpha=entropy_alpha,
        entropy_normalize=entropy_normalize,  # type: ignore[arg-type]
        entropy_mode=entropy_mode,  # type: ignore[arg-type]
        id_methods=tuple(split_list(id_methods)),
        max_tokens=max_tokens,
        token_cloud=token_cloud,  # type: ignore[arg-type]
        pool_size=pool_size,
        baseline=baseline,
        chat=chat,
        progress=progress,
    )
    result = run(config)
    folder = run_dir(config, result.model["name"])
    _print_summary(result)
    console.print(f"[green]wrote[/] {folder / 'results.json'} and {len(result.files)} files beside it")


def _print_summary(result) -> None:
    from rich.table import Table

    L = result.num_layers
    picks = sorted({0, L // 4, L // 2, 3 * L // 4, L})
    clouds = f"{result.num_samples} samples"
    if result.token_cloud == "pooled":
        clouds += f" in {result.num_clouds} pool{'s' if result.num_clouds != 1 else ''}"
    table = Table(title=f"{result.model['name']}: {clouds}, L = {L} (medians)")
    table.add_column("metric")
    for layer in picks:
        table.add_column(f"l={layer}", justify="right")
    for metric in ("entropy_norm", "id_twonn", "depth_curvature", "norm"):
        for group in ("image", "text"):
            med = result.summary[group][metric].median
            cells = ["-" if med[i] is None else f"{med[i]:.3g}" for i in picks]
            table.add_row(f"{metric} ({group})", *cells)
    console.print(table)
