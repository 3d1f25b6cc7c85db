"""What every subcommand shares: lm-eval style option parsing, one-line errors, and rich output."""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

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
