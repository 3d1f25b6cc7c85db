"""What every subcommand shares: lm-eval style option parsing, one-line errors, and rich output."""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from visdepth.errors import VisdepthError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def parse_model_args(text: str | None) -> dict[str, Any]:
    """``"a=1,b=true,c=name"`` -> ``{"a": 1, "b": True, "c": "name"}`` (the lm-eval ``--model_args`` syntax)."""
    if not text:
        return {}
    args: dict[str, Any] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise VisdepthError(
                f"--model_args item {item!r} has no '='; write key=value pairs separated by commas."
            )
        key, value = (part.strip() for part in item.split("=", 1))
        args[key] = _literal(value)
    return args


def _literal(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def friendly(func: F) -> F:
    """Turn a VisdepthError into one red line and exit status 2; Ctrl-C says that finished rows are kept."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VisdepthError as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print(
                "[yellow]interrupted:[/] finished samples are saved; run the same command to resume."
            )
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


# --- options every experiment command takes (lm-eval spellings, with dash variants) ------------------------
ModelOpt = Annotated[str, typer.Option(help="HF id, local folder, or built-in name (see `visdepth models`).")]
ModelArgsOpt = Annotated[
    str,
    typer.Option(
        "--model_args",
        "--model-args",
        help="from_pretrained kwargs, e.g. 'revision=main,trust_remote_code=true'.",
    ),
]
DataOpt = Annotated[str, typer.Option(help="built-in data set name or JSONL manifest path.")]
LimitOpt = Annotated[int | None, typer.Option(help="use only the first N samples.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")]
DtypeOpt = Annotated[str, typer.Option(help="auto, float32, bfloat16, float16.")]
SeedOpt = Annotated[int, typer.Option(help="seed of every random choice (same seed, same numbers).")]
OutputPathOpt = Annotated[
    str,
    typer.Option(
        "--output_path", "--output-path", help="folder for results.json, samples.jsonl and figures."
    ),
]
LogSamplesOpt = Annotated[
    bool,
    typer.Option(
        "--log_samples/--no-log_samples", "--log-samples/--no-log-samples", help="keep the per-sample JSONL."
    ),
]
ProgressOpt = Annotated[bool, typer.Option(help="show a progress bar.")]


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (comma-separated option values)."""
    return [item.strip() for item in text.split(",") if item.strip()]
