"""One subcommand per registered experiment, its options made from the experiment's config (cli/options.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from visdepth.cli.common import console, friendly
from visdepth.cli.options import (
    build_config,
    config_parameter,
    context_parameter,
    given_on_command_line,
    parameters,
    read_config_file,
    with_signature,
)


def experiment_command(name: str, summary: Callable[[Any], None]) -> Callable[..., None]:
    """The ``visdepth <name>`` command: run the experiment, draw its figures, print ``summary(result)``."""
    from visdepth.experiments import EXPERIMENTS

    exp = EXPERIMENTS.get(name)()

    def command(ctx: Any, **values: Any) -> None:
        from visdepth.experiments import distributed, runner
        from visdepth.report.figures import draw_figures

        options = {**read_config_file(values.pop("config")), **given_on_command_line(ctx, values)}
        config = build_config(exp.config_class, options)
        result = runner.run(exp, config)
        if not distributed.current().is_main:  # one process of a data-parallel run draws and reports
            return
        folder = runner.run_folder(exp, config, result.model["name"])
        figures = draw_figures(result, folder)
        summary(result)
        console.print(
            f"[green]wrote[/] {folder / 'results.json'}, {len(result.files)} row file(s) and "
            f"{len(figures)} figures beside it"
        )

    command.__doc__ = exp.question
    command.__name__ = name
    return friendly(
        with_signature(command, [context_parameter(), *parameters(exp.config_class), config_parameter()])
    )
