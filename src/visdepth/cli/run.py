"""``visdepth run``: the whole study from one command, every registered experiment on one model, then the report.

The model is loaded once and each experiment runs through the one runner with its ``quick`` options (sample
limits sized so that the default study finishes in minutes on two CPU cores), overridden by a ``--config`` file
and then by the command line. Each experiment resumes on its own, so a rerun after a kill skips what is finished.
"""

from __future__ import annotations

import time
from typing import Any

from visdepth.cli.common import console, friendly, split_list
from visdepth.cli.options import (
    build_config,
    config_parameter,
    context_parameter,
    given_on_command_line,
    parameters,
    read_config_file,
    with_signature,
)
from visdepth.errors import ConfigError
from visdepth.experiments.common import ExperimentConfig

EXPERIMENTS_HELP = "experiments to run, comma-separated, in this order (default: every registered one)"


def _experiments_parameter():
    import inspect

    import typer

    option = typer.Option("all", "--experiments", help=EXPERIMENTS_HELP)
    return inspect.Parameter("experiments", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=str)


def plan_configs(
    experiments: str, options: dict[str, Any], sections: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """name -> (experiment, config) for every chosen experiment: its ``quick`` options, then its section of the
    config file, then the shared options (file, then command line). All are checked before anything loads."""
    from visdepth.experiments import EXPERIMENTS

    names = EXPERIMENTS.names() if experiments.strip().lower() == "all" else split_list(experiments)
    if not names:
        raise EXPERIMENTS.unknown("", candidates=EXPERIMENTS.names())
    chosen = {}
    for name in names:
        exp = EXPERIMENTS.get(name)()
        values = {**exp.quick, **sections.get(name, {}), **options}
        config = build_config(exp.config_class, values, where=f" (in {name})")
        try:
            exp.validate(config)
        except ConfigError as err:
            raise ConfigError(f"{str(err).rstrip('.')} (in {name}).") from None
        chosen[name] = (exp, config)
    return chosen


def run_study(ctx: Any, **values: Any) -> None:
    """Run every experiment (RQ1 dynamics, RQ2 swap, RQ3 truncate, ...) on one model, then write report.html."""
    from visdepth.experiments import EXPERIMENTS, distributed, runner
    from visdepth.models import load
    from visdepth.report.figures import draw_figures
    from visdepth.report.html import build_report

    file_options = read_config_file(values.pop("config"))
    sections = {name: file_options.pop(name) for name in EXPERIMENTS.names() if name in file_options}
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"--config: the {name!r} section must be a mapping of option: value.")
    given = given_on_command_line(ctx, values)
    experiments = given.pop("experiments", file_options.pop("experiments", values["experiments"]))
    if isinstance(experiments, list):
        experiments = ",".join(experiments)
    chosen = plan_configs(experiments, {**file_options, **given}, sections)
    first = next(iter(chosen.values()))[1]
    device = distributed.device_for(first.device)  # a data-parallel run: this process's own device
    model_args = distributed.model_args_for(first.model_args)
    adapter = load(first.model, device=device, dtype=first.dtype, seed=first.seed, **model_args)
    main = distributed.current().is_main
    model_folder = None
    for name, (exp, config) in chosen.items():
        started = time.perf_counter()
        if main:
            console.print(f"[bold]{name}[/]: {exp.question}")
        result = runner.run(exp, config, adapter)
        if not main:  # the main process draws and reports
            continue
        folder = runner.run_folder(exp, config, adapter.name)
        model_folder = folder.parent
        figures = draw_figures(result, folder)
        console.print(
            f"  [green]wrote[/] {folder / 'results.json'} and {len(figures)} figures "
            f"({time.perf_counter() - started:.0f} s)"
        )
    if not main:
        return
    report = build_report(model_folder)
    console.print(f"[green]report[/] {report}")


command = friendly(
    with_signature(
        run_study,
        [
            context_parameter(),
            *parameters(ExperimentConfig),
            _experiments_parameter(),
            config_parameter(),
        ],
    )
)
