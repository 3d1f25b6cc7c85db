"""``visdepth models`` and ``visdepth datasets``: what can be named on the command line."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def models() -> None:
    """List the supported model families and the tiny test models that build without a download."""
    from visdepth.defaults import DEFAULT_MODEL
    from visdepth.models.registry import _BY_MODEL_TYPE, tiny_names

    table = Table("family", "model types (config.model_type)")
    by_family: dict[str, list[str]] = {}
    for model_type, cls in sorted(_BY_MODEL_TYPE.items()):
        by_family.setdefault(cls.family, []).append(model_type)
    for family, types in sorted(by_family.items()):
        table.add_row(family, ", ".join(types))
    console = Console()
    console.print(table)
    console.print(f"tiny random models: {', '.join(tiny_names())}")
    console.print(f"default model: {DEFAULT_MODEL}")


def datasets() -> None:
    """List the built-in data sets (any JSONL manifest path works too)."""
    from visdepth.data import list_datasets

    table = Table("name", "description")
    for name, spec in sorted(list_datasets().items()):
        table.add_row(name, getattr(spec, "description", ""))
    Console().print(table)
