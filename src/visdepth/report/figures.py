"""The figures of one experiment's result, drawn into its run folder: what the CLI writes beside results.json.

Experiments never draw; this dispatches on the result's schema to the plotting module of its research question.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from visdepth.results.schemas import DynamicsResult, ReasonResult, SwapResult, TruncateResult


def draw_figures(result: BaseModel, run_folder: str | Path) -> dict[str, Path]:
    """Every figure of ``result`` under ``run_folder / 'figures'``: name -> path."""
    folder = Path(run_folder) / "figures"
    if isinstance(result, DynamicsResult):
        from visdepth.report.dynamics import plot_dynamics

        return plot_dynamics(result, folder)
    if isinstance(result, SwapResult):
        from visdepth.report.swap import plot_swap

        return plot_swap(result, folder)
    if isinstance(result, TruncateResult):
        from visdepth.report.truncate import plot_truncate

        return plot_truncate(result, folder)
    if isinstance(result, ReasonResult):
        from visdepth.report.reason import plot_reason

        return plot_reason(result, folder)
    from visdepth.results.schemas.recover import RecoverResult

    if isinstance(result, RecoverResult):
        from visdepth.report.recover import plot_recover

        return plot_recover(result, folder)
    raise TypeError(f"no figures for a {type(result).__name__}")
