"""The truncate part of the report for a run of several modes (modes side by side, the per-mode safe-cut table,
the layer contribution), and single-mode result files written before modes existed still read and draw."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny
from visdepth.data import get_dataset, write_manifest
from visdepth.experiments import truncate
from visdepth.report.html import Experiment, rq3_section
from visdepth.report.truncate import plot_truncate
from visdepth.results.schemas.truncate import TruncateResult

MODEL = "tiny:llava"


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> TruncateResult:
    out = tmp_path_factory.mktemp("modes")
    samples = [s for s in get_dataset("photos") if s.kind in ("single_token", "multiple_choice")]
    manifest = write_manifest(samples, out / "photos.jsonl")
    config = truncate.TruncateConfig(
        model=MODEL, tasks=[f"local:{manifest}"], mode="drop,freeze,no_img2img", cuts="0,2", timing=False,
        calibration=2, output_path=str(out), progress=False,
    )  # fmt: skip
    return truncate.run(config, tiny(MODEL))


def test_modes_side_by_side_in_figures_and_report(multi, tmp_path):
    paths = plot_truncate(multi, tmp_path)
    assert {"figure_contribution"} <= set(paths) and any(k.startswith("figure_modes_") for k in paths)
    sec, _ = rq3_section(Experiment("truncate", tmp_path, result=multi))
    (table,) = [t for t in sec.tables if t["title"].startswith("Processing or access")]
    assert table["header"] == ["task / kind", "drop", "freeze", "no_img2img"]
    assert any("shallowest safe cut per mode" in r for r in sec.readings)
    assert {f["name"].split("_")[1] for f in sec.figures} >= {"modes", "contribution"}


def test_old_single_mode_results_still_read(multi, tmp_path):
    """A results.json of before (no modes, by_mode, timing_by_mode or contribution) validates and draws."""
    data = json.loads(multi.model_dump_json())
    for key in ("modes", "by_mode", "timing_by_mode"):
        data.pop(key)
    for task in data["tasks"].values():
        task.pop("contribution")
    old = TruncateResult.model_validate(data)
    assert old.mode_list() == ["drop"] and old.summaries("drop") == old.tasks
    paths = plot_truncate(old, tmp_path)
    assert not any(k.startswith(("figure_modes", "figure_contribution")) for k in paths)
    sec, _ = rq3_section(Experiment("truncate", tmp_path, result=old))
    assert not [t for t in sec.tables if t["title"].startswith("Processing or access")]
