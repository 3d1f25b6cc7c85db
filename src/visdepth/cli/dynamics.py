"""``visdepth dynamics``: RQ1, per-layer representation dynamics of image vs text tokens.

The options are the fields of the experiment's config (cli/options.py); this file only prints the summary.
"""

from __future__ import annotations

from visdepth.cli.common import console
from visdepth.cli.experiment import experiment_command


def _print_summary(result) -> None:
    from rich.table import Table

    L = result.num_layers
    picks = sorted({0, L // 4, L // 2, 3 * L // 4, L})
    clouds = f"{result.num_samples} samples"
    if result.token_cloud == "pooled":
        clouds += f" in {result.num_clouds} pool{'s' if result.num_clouds != 1 else ''}"
    table = Table(title=f"{result.model['name']}: {clouds}, L = {L} (medians)")
    table.add_column("metric")
    for layer in picks:
        table.add_column(f"l={layer}", justify="right")
    for metric in ("entropy_norm", "id_twonn", "depth_curvature", "norm"):
        for group in ("image", "text"):
            med = result.summary[group][metric].median
            cells = ["-" if med[i] is None else f"{med[i]:.3g}" for i in picks]
            table.add_row(f"{metric} ({group})", *cells)
    console.print(table)


command = experiment_command("dynamics", _print_summary)
