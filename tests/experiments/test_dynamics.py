"""RQ1 end to end on a tiny model: result files, figures, resume, reproducibility, choices recorded."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest

from tests.conftest import tiny
from visdepth.errors import ConfigError
from visdepth.experiments import dynamics
from visdepth.experiments.dynamics import METRICS, DynamicsConfig, run, run_dir
from visdepth.report.figures import draw_figures


def _config(tmp_path, **kw) -> DynamicsConfig:
    base = dict(
        model="tiny:llava",
        data="photos",
        limit=2,
        output_path=str(tmp_path),
        progress=False,
        token_cloud="per_sample",
    )
    base.update(kw)
    return DynamicsConfig(**base)


def test_run_writes_results_samples_and_figures(tmp_path):
    config = _config(tmp_path)
    adapter = tiny("tiny:llava")
    result = run(config, adapter)
    L = adapter.num_layers
    folder = run_dir(config, adapter.name)
    data = json.loads((folder / "results.json").read_text())
    assert data["num_layers"] == L and data["layers"] == list(range(L + 1))
    assert data["depth"][0] == 0 and data["depth"][-1] == 1
    assert data["num_samples"] == 2
    for group in ("image", "text"):
        for metric in METRICS:
            stats = data["summary"][group][metric]
            assert len(stats["median"]) == L + 1
        # depth curvature is undefined below layer 2, defined above
        curv = data["summary"][group]["depth_curvature"]["median"]
        assert curv[0] is None and curv[1] is None and all(v is not None for v in curv[2:])
        ent = data["summary"][group]["entropy_norm"]["median"]
        assert all(0 <= v <= 1 + 1e-9 for v in ent)
    # provenance and the open choices are recorded
    meta = data["meta"]
    assert meta["config"]["model"] == "tiny:llava" and meta["seed"] == 0
    assert meta["packages"]["transformers"] and meta["packages"]["torch"]
    assert "entropy" in meta["choices"] and "intrinsic_dimension" in meta["choices"]
    assert "text_group" in meta["choices"]
    # started_at is the start (before any row was written), finished_at the end
    rows_written = datetime.fromtimestamp((folder / "samples.jsonl").stat().st_mtime, tz=timezone.utc)
    started, finished = (datetime.fromisoformat(meta[k]) for k in ("started_at", "finished_at"))
    assert started <= rows_written <= finished
    assert (result.meta.started_at, result.meta.finished_at) == (started, finished)
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and rows[0]["tokens"]["image"] > 0
    # the library draws nothing; the report layer draws the figures from the result
    assert not (folder / "figures").exists()
    draw_figures(result, folder)
    for name in ("overview", "entropy_norm", "id_twonn", "depth_curvature", "norm"):
        png = folder / "figures" / f"{name}.png"
        assert png.stat().st_size > 10_000
    assert result.num_samples == 2


def test_same_seed_same_numbers(tmp_path):
    adapter = tiny("tiny:llava")
    a = run(_config(tmp_path / "a", max_tokens=8), adapter)
    b = run(_config(tmp_path / "b", max_tokens=8), adapter)
    assert a.summary == b.summary


def test_resume_only_measures_missing_samples(tmp_path, monkeypatch):
    adapter = tiny("tiny:llava")
    run(_config(tmp_path, limit=1), adapter)
    calls = []
    original = dynamics.measure_sample

    def counting(*args, **kwargs):
        calls.append(args[1].id)
        return original(*args, **kwargs)

    monkeypatch.setattr(dynamics, "measure_sample", counting)
    result = run(_config(tmp_path, limit=2), adapter)
    assert len(calls) == 1 and result.num_samples == 2


def test_resume_refuses_a_different_configuration(tmp_path):
    adapter = tiny("tiny:llava")
    run(_config(tmp_path, limit=1), adapter)
    with pytest.raises(ConfigError, match="different configuration"):
        run(_config(tmp_path, limit=1, entropy_alpha=2.0), adapter)


def test_text_group_with_and_without_special_tokens(tmp_path):
    adapter = tiny("tiny:llava")
    a = run(_config(tmp_path / "a", limit=1), adapter)
    b = run(_config(tmp_path / "b", limit=1, exclude_special=False), adapter)
    assert b.tokens["text"]["mean"] > a.tokens["text"]["mean"]
    assert "special" in a.meta.choices["text_group"] and "special" not in b.meta.choices["text_group"]


def test_random_init_baseline(tmp_path):
    adapter = tiny("tiny:llava")
    result = run(_config(tmp_path, limit=1, baseline=True, id_methods=("twonn",)), adapter)
    assert result.baseline is not None
    # a different network gives different states
    assert result.baseline["image"]["norm"].median != result.summary["image"]["norm"].median
    assert all(
        math.isnan(v) if isinstance(v, float) else v is None for v in result.summary["image"]["id_mle"].median
    )


def test_skean_entropy_mode_is_recorded_and_differs(tmp_path):
    adapter = tiny("tiny:llava")
    paper = run(_config(tmp_path / "p", limit=1, id_methods=("twonn",)), adapter)
    skean = run(_config(tmp_path / "s", limit=1, id_methods=("twonn",), entropy_mode="skean"), adapter)
    assert skean.meta.choices["entropy"] != paper.meta.choices["entropy"]
    assert skean.summary["image"]["entropy_norm"].median != paper.summary["image"]["entropy_norm"].median


def test_auto_token_cloud_pools_when_images_have_few_tokens(tmp_path, monkeypatch):
    """tiny:llava gives 16 image tokens per sample: auto pools them; with a threshold below 16 it does not."""
    from visdepth.experiments import dynamics

    adapter = tiny("tiny:llava")
    auto = run(_config(tmp_path / "a", token_cloud="auto"), adapter)
    assert auto.token_cloud == "pooled"
    monkeypatch.setattr(dynamics, "AUTO_POOL_BELOW", 16)
    per = run(_config(tmp_path / "b", token_cloud="auto"), adapter)
    assert per.token_cloud == "per_sample"
    data = json.loads((run_dir(_config(tmp_path / "b"), adapter.name) / "results.json").read_text())
    assert data["meta"]["config"]["token_cloud"] == "per_sample"
    assert "auto_rule" in data["meta"]["choices"]["token_cloud"]
