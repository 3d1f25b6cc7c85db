"""``visdepth swap``: RQ2, swap image (or text) states between depths and measure how far the output moves.

The options are the fields of the experiment's config (cli/options.py); this file only prints the summary.
"""

from __future__ import annotations

from visdepth.cli.common import console
from visdepth.cli.experiment import experiment_command


def _print_summary(result) -> None:
    from rich.table import Table

    from visdepth.experiments.swap import MAIN_METRICS

    metrics = [m for m in MAIN_METRICS if m in result.metrics]
    table = Table(
        title=f"{result.model['name']}: {result.num_samples} samples, {len(result.layers)}x{len(result.layers)} "
        f"pairs of depths (L = {result.num_layers}), means off the diagonal"
    )
    table.add_column("group swapped")
    table.add_column("tokens/sample", justify="right")
    for metric in metrics:
        table.add_column(metric, justify="right")
    for group in result.groups:
        cells = [result.off_diagonal[group][m] for m in metrics]
        shown = ["-" if v is None else f"{v:.3g}" for v in cells]
        table.add_row(group, f"{result.tokens[group]:.0f}", *shown)
    console.print(table)
    if not result.identity["holds"]:
        console.print(
            "[yellow]warning:[/] l_a = l_b did not reproduce the unmodified model exactly "
            f"(max KL {result.identity['kl_max']:.2g}); see identity in results.json."
        )


command = experiment_command("swap", _print_summary)
