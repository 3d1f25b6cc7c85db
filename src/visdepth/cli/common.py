"""What every subcommand shares: lm-eval style option parsing, one-line errors, and rich output."""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

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
        if not key.isidentifier():
            raise VisdepthError(
                f"--model_args item {item.strip()!r} has no valid name before '='; write key=value pairs "
                "separated by commas, e.g. revision=main,trust_remote_code=true."
            )
        if "=" in value and value[:1] not in ("'", '"'):
            raise VisdepthError(
                f"--model_args item {item.strip()!r} has more than one '='; write one key=value per item, "
                f"separated by commas (quote a value that holds '=': {key}='{value}')."
            )
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


def say_error(err: Exception) -> None:
    """One red line; the message is escaped, since rich would swallow a ``[lora]`` in it as markup."""
    console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)


def friendly(func: F) -> F:
    """Turn a VisdepthError into one red line and exit status 2; Ctrl-C says that finished rows are kept."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VisdepthError as err:
            say_error(err)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            console.print(
                "[yellow]interrupted:[/] finished samples are saved; run the same command to resume."
            )
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _checked(check: Callable[[str], Any]) -> Callable[[str], str]:
    """An option callback that runs ``check`` while the command line is parsed, so a bad value is one red line
    (exit 2) before any data or model is touched; typer callbacks run outside :func:`friendly`."""

    def callback(value: str) -> str:
        try:
            check(value)
        except VisdepthError as err:
            say_error(err)
            raise typer.Exit(2) from None
        return value

    return callback


def _check_device(value: str) -> None:
    from visdepth.models import resolve_device

    resolve_device(value)


def _check_dtype(value: str) -> None:
    import torch

    from visdepth.models import resolve_dtype

    resolve_dtype(value, torch.device("cpu"))


# --- options: every experiment's are made from its config fields (cli/options.py) --------------------------
#: parse-time checks of --device and --dtype (one red line and exit 2 before anything loads)
check_device = _checked(_check_device)
check_dtype = _checked(_check_dtype)


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (comma-separated option values)."""
    return [item.strip() for item in text.split(",") if item.strip()]
