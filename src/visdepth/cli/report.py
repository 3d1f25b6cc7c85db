"""``visdepth report``: rebuild the self-contained ``report.html`` of a run folder from its result files alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from visdepth.cli.common import console, friendly


@friendly
def command(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="run folder <output_path>/<model slug> holding the experiment folders (dynamics, swap, "
            "truncate-drop ...); a copy moved elsewhere works too."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="where to write the page (default: RUN_DIR/report.html)."),
    ] = None,
) -> None:
    """Write one HTML page with every figure, key number, reading and verdict of the run (opens offline)."""
    from visdepth.report.html import build_report

    with console.status("building the report"):
        path = build_report(run_dir, out)
    typer.echo(str(path))
