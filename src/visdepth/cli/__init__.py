"""The ``visdepth`` command: one typer app with a subcommand per experiment (one file each in this folder)."""

from __future__ import annotations

import typer

from visdepth.cli import dynamics, info, reason, recover, report, run, swap, truncate

app = typer.Typer(
    name="visdepth",
    help="How deep into the language model do image tokens need to go? Layer-wise analysis of HF VLMs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("run")(run.command)
app.command("dynamics")(dynamics.command)
app.command("swap")(swap.command)
app.command("truncate")(truncate.command)
app.command("recover")(recover.command)
app.command("reason")(reason.command)
app.command("report")(report.command)
app.command("models")(info.models)
app.command("datasets")(info.datasets)

__all__ = ["app"]
