"""Command-line options made from an experiment's pydantic config: the fields are the one source of every option.

Each config field becomes ``--name`` (and ``--name-with-dashes``), with the field's default, description and
type; a field may add spellings in ``json_schema_extra={"cli": [...]}``. Lists are written comma-separated
(``--tasks shapes,photos``), ``--model_args`` as ``k=v,...``, booleans as ``--name/--no-name``. ``--config
FILE.yaml`` takes the same options from a file (field names, with dashes or underscores); values given on the
command line win. Values are checked by the config class itself, so a range is declared once, in the field.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from visdepth.cli.common import check_device, check_dtype, parse_model_args, split_list
from visdepth.errors import ConfigError
from visdepth.experiments.common import ExperimentConfig

#: per-field typer callbacks that check a value at parse time, before anything loads
CALLBACKS: dict[str, Callable[[Any], Any]] = {"device": check_device, "dtype": check_dtype}


def _origin_args(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    return typing.get_origin(annotation), typing.get_args(annotation)


def _is_list(annotation: Any) -> bool:
    origin, args = _origin_args(annotation)
    if origin in (list, tuple, set):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in args)
    return False


def _cli_type(annotation: Any) -> Any:
    """The type typer parses a field's option as: scalars as themselves, everything else as text."""
    origin, args = _origin_args(annotation)
    if annotation in (bool, int, float, str):
        return annotation
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in (int, float, str):
            return rest[0] | None
        return str | None if type(None) in args else str
    return str


def _default_text(field: FieldInfo) -> Any:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return value


def option_names(name: str, field: FieldInfo) -> list[str]:
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    names += [n for n in extra.get("cli", []) if n not in names]
    return names


def parameters(config_class: type[BaseModel], skip: frozenset[str] = frozenset()) -> list[inspect.Parameter]:
    """One keyword parameter with a ``typer.Option`` per config field."""
    params = []
    for name, field in config_class.model_fields.items():
        if name in skip:
            continue
        cli_type = _cli_type(field.annotation)
        names = option_names(name, field)
        if cli_type is bool:
            names = [f"{n}/--no-{n.removeprefix('--')}" for n in names]
        option = typer.Option(
            _default_text(field), *names, help=field.description or "", callback=CALLBACKS.get(name)
        )
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=cli_type)
        )
    return params


def config_parameter() -> inspect.Parameter:
    option = typer.Option(
        None, "--config", help="YAML file of options (the names of these options); command-line values win."
    )
    return inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=str | None)


def read_config_file(path: str | None) -> dict[str, Any]:
    """The options of a ``--config`` YAML file, names normalised to field names (dashes become underscores)."""
    if not path:
        return {}
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"--config {path} does not exist; give the path of a YAML file of options.")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"--config {path}{where} is not valid YAML; fix that line.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} holds a {type(data).__name__}, not a mapping of option: value.")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def context_parameter() -> inspect.Parameter:
    """``ctx: typer.Context``: typer passes the command's context, which says where each value came from."""
    return inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)


def given_on_command_line(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The values of ``values`` that the user typed (not typer's defaults)."""

    def typed(name: str) -> bool:
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    return {k: v for k, v in values.items() if typed(k)}


def to_field_value(field: FieldInfo, value: Any) -> Any:
    """A command-line text turned into what the field takes (lists split at commas, model_args parsed)."""
    if not isinstance(value, str):
        return value
    annotation = field.annotation
    if _origin_args(annotation)[0] is dict or annotation is dict:
        return parse_model_args(value)
    if _is_list(annotation):
        origin, args = _origin_args(annotation)
        if origin in (typing.Union, types.UnionType) and str in args:
            return value  # a field that also takes text ("all", "stride:2", "0,4,8") parses it itself
        items = split_list(value)
        inner = [a for a in typing.get_args(annotation) if typing.get_origin(a) in (list, tuple)] or [
            annotation
        ]
        item_type = (typing.get_args(inner[0]) or (str,))[0]
        if item_type is int:
            try:
                return [int(v) for v in items]
            except ValueError:
                raise ConfigError(f"{value!r} is not a list of whole numbers such as 0,4,8.") from None
        return items
    return value


def build_config(
    config_class: type[ExperimentConfig], values: dict[str, Any], where: str = ""
) -> ExperimentConfig:
    """``config_class`` from option values (texts converted per field; an unknown name is left for the config
    to refuse); the config's one-line ConfigError gets ``where`` (e.g. `` (in truncate)``) appended."""
    fields = config_class.model_fields
    converted = {k: to_field_value(fields[k], v) if k in fields else v for k, v in values.items()}
    try:
        return config_class(**converted)
    except ConfigError as err:
        if not where:
            raise
        raise ConfigError(f"{str(err).rstrip('.')}{where}.") from None


def with_signature(function: Callable[..., Any], params: list[inspect.Parameter]) -> Callable[..., Any]:
    """``function`` as typer sees it: the given parameters, their annotations real types (typer reads both)."""
    function.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in params}
    return function
