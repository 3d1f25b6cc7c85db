"""RQ1 with pooled token clouds: a pool of one sample is the per-sample cloud, a pool of two is the concatenation
of its samples' tokens, pools resume like samples, and the composition of a pool is guarded."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import tiny
from visdepth.data import get_dataset, load_images
from visdepth.errors import ConfigError
from visdepth.experiments import dynamics
from visdepth.experiments.dynamics import (
    CLOUD_METRICS,
    METRICS,
    DynamicsConfig,
    make_pools,
    measure_pool,
    run,
    run_dir,
)
from visdepth.interventions.capture import capture_states
from visdepth.metrics import (
    depth_curvature,
    intrinsic_dimension,
    linear_cka,
    matrix_entropy,
    mean_cosine,
    sequence_curvature,
)
from visdepth.results.io import read_jsonl

MODEL = "tiny:llava"


def _config(tmp_path, **kw) -> DynamicsConfig:
    base = dict(
        model=MODEL,
        data="photos",
        limit=2,
        output_path=str(tmp_path),
        progress=False,
        token_cloud="pooled",
        pool_size=2,
    )
    base.update(kw)
    return DynamicsConfig(**base)


def _rows(config: DynamicsConfig) -> list[dict]:
    return read_jsonl(run_dir(config, MODEL) / "samples.jsonl")


def _same(a: list[float | None], b: list[float | None]) -> bool:
    """Equal lists where NaN (or the JSON null it is written as) equals NaN."""

    def norm(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    return [norm(v) for v in a] == [norm(v) for v in b]


def test_pool_of_one_sample_is_the_per_sample_cloud(tmp_path):
    adapter = tiny(MODEL)
    kw = dict(limit=3, max_tokens=6)  # subsampling too: a sample keeps its tokens alone or in a pool
    s_config = _config(tmp_path / "s", token_cloud="per_sample", **kw)
    p_config = _config(tmp_path / "p", pool_size=1, **kw)
    per_sample, pooled = run(s_config, adapter), run(p_config, adapter)
    s_rows, p_rows = _rows(s_config), _rows(p_config)
    assert [r["samples"] for r in p_rows] == [[r["id"]] for r in s_rows]
    for s_row, p_row in zip(s_rows, p_rows, strict=True):
        assert p_row["cloud_tokens"] == s_row["cloud_tokens"]
        for group in ("image", "text"):
            for metric in METRICS:  # exactly, including seq_curvature (the mean over one sample)
                assert _same(p_row["metrics"][group][metric], s_row["metrics"][group][metric]), metric
    assert pooled.summary == per_sample.summary and pooled.tokens == per_sample.tokens
    assert pooled.num_samples == per_sample.num_samples == 3 and pooled.num_clouds == 3
    assert s_config.fingerprint() != p_config.fingerprint()


def test_pooled_cloud_holds_the_tokens_of_its_samples(tmp_path):
    adapter = tiny(MODEL)
    result = run(_config(tmp_path, limit=2, max_tokens=5), adapter)
    (row,) = _rows(_config(tmp_path, limit=2, max_tokens=5))
    assert row["id"] == "pool-0000" and len(row["samples"]) == 2
    for group in ("image", "text"):
        counts = [t[group] for t in row["sample_tokens"]]
        assert row["tokens"][group] == sum(counts)
        assert row["cloud_tokens"][group] == sum(min(n, 5) for n in counts)
        assert result.cloud_tokens[group]["mean"] == row["cloud_tokens"][group]
    assert result.num_samples == 2 and result.num_clouds == 1 and result.pool_size == 2


def test_pool_of_two_is_the_concatenation_measured_by_hand(tmp_path):
    adapter = tiny(MODEL)
    config = _config(tmp_path, id_methods=("twonn", "mle"), mle_k=5)
    (pool,) = make_pools(get_dataset("photos", limit=2), 2)
    row = measure_pool(adapter, pool, config)
    for group in ("image", "text"):
        parts = []
        for sample in pool.samples:
            inputs = adapter.build_inputs(load_images(sample), sample.prompt, chat=True)
            mask = inputs.image_mask if group == "image" else inputs.text_mask(True)
            parts.append(capture_states(adapter, inputs)[:, 0][:, mask[0].cpu()])
        states = torch.cat(parts, dim=1)
        L = states.shape[0] - 1
        got = row["metrics"][group]
        assert row["cloud_tokens"][group] == states.shape[1] == sum(p.shape[1] for p in parts)
        assert got["entropy"] == [matrix_entropy(states[layer]) for layer in range(L + 1)]
        assert got["entropy_norm"] == [
            matrix_entropy(states[layer], normalize="log_min") for layer in range(L + 1)
        ]
        assert got["id_twonn"] == [
            intrinsic_dimension(states[layer], method="twonn") for layer in range(L + 1)
        ]
        assert got["id_mle"] == [
            intrinsic_dimension(states[layer], method="mle", k=5) for layer in range(L + 1)
        ]
        assert got["norm"] == [float(states[layer].double().norm(dim=-1).mean()) for layer in range(L + 1)]
        assert _same(got["depth_curvature"], depth_curvature(states).tolist())
        assert got["cka_prev"][1:] == [
            linear_cka(states[layer - 1], states[layer]) for layer in range(1, L + 1)
        ]
        assert got["cos_prev"][1:] == [
            mean_cosine(states[layer - 1], states[layer]) for layer in range(1, L + 1)
        ]
        # along-token curvature never runs across the boundary between two samples: mean of the two
        for layer in range(L + 1):
            per_sample = [sequence_curvature(p[layer]) for p in parts]
            assert got["seq_curvature"][layer] == pytest.approx(sum(per_sample) / 2, rel=1e-12)
        assert math.isnan(got["cka_prev"][0]) and math.isnan(got["cos_prev"][0])


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    adapter = tiny(MODEL)
    kw = dict(limit=5, max_tokens=4, baseline=True, id_methods=("twonn",))  # pools of 2, 2 and a partial 1
    whole = run(_config(tmp_path / "whole", **kw), adapter)
    assert whole.num_clouds == 2 and whole.num_samples == 4  # the final pool of one sample is left out

    original = dynamics.measure_pool
    calls = []

    class Killed(Exception):
        pass

    def killed_on_second_pool(adapter, pool, config):
        calls.append(pool.id)
        if len(calls) == 2:
            raise Killed
        return original(adapter, pool, config)

    monkeypatch.setattr(dynamics, "measure_pool", killed_on_second_pool)
    with pytest.raises(Killed):
        run(_config(tmp_path / "resumed", **kw), adapter)
    assert len(_rows(_config(tmp_path / "resumed", **kw))) == 1
    resumed = run(_config(tmp_path / "resumed", **kw), adapter)
    # only the learnt model's missing pool is measured again, then the twin's two
    assert calls[2:] == ["pool-0001", "pool-0000", "pool-0001"]
    assert resumed.summary == whole.summary and resumed.baseline == whole.baseline
    assert _rows(_config(tmp_path / "resumed", **kw)) == _rows(_config(tmp_path / "whole", **kw))


def test_baseline_in_pooled_mode(tmp_path):
    result = run(_config(tmp_path, baseline=True, id_methods=("twonn",)), tiny(MODEL))
    assert result.baseline is not None
    assert result.baseline["image"]["norm"].mean != result.summary["image"]["norm"].mean
    rows = read_jsonl(run_dir(_config(tmp_path), MODEL) / "samples_random_init.jsonl")
    assert [r["id"] for r in rows] == ["pool-0000"]


def test_single_pool_statistics_choices_and_figures(tmp_path):
    config = _config(tmp_path, id_methods=("twonn",))
    result = run(config, tiny(MODEL))
    stats = result.summary["image"]["entropy_norm"]
    assert stats.mean == stats.median and all(s == 0 for s in stats.std) and set(stats.count) == {1}
    choice = result.meta.choices["token_cloud"]
    assert choice["mode"] == "pooled" and choice["pool_size"] == 2
    assert (
        set(choice["pooled_metrics"]) == set(CLOUD_METRICS)
        and "seq_curvature" in choice["per_sample_metrics"]
    )
    data = json.loads((run_dir(config, MODEL) / "results.json").read_text())
    assert data["token_cloud"] == "pooled" and data["num_clouds"] == 1
    from visdepth.report.figures import draw_figures

    draw_figures(result, run_dir(config, MODEL))
    assert (run_dir(config, MODEL) / "figures" / "overview.png").stat().st_size > 10_000


def test_pools_are_consecutive_and_a_tiny_last_pool_is_dropped():
    samples = [SimpleNamespace(id=f"s{i}") for i in range(7)]
    assert [p.sample_ids for p in make_pools(samples, 3)] == [["s0", "s1", "s2"], ["s3", "s4", "s5"]]
    assert [p.sample_ids for p in make_pools(samples, 5)] == [["s0", "s1", "s2", "s3", "s4"], ["s5", "s6"]]
    assert [p.id for p in make_pools(samples, 1)] == [f"pool-{i:04d}" for i in range(7)]


def test_a_pool_that_changed_samples_is_not_resumed(tmp_path):
    adapter = tiny(MODEL)
    run(_config(tmp_path, limit=2, pool_size=3, id_methods=("twonn",)), adapter)  # one partial pool of 2
    with pytest.raises(ConfigError, match="pool-0000 holds other samples"):
        run(_config(tmp_path, limit=3, pool_size=3, id_methods=("twonn",)), adapter)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(pool_size=0), "--pool_size must be at least 1"),
        (dict(limit=1, pool_size=4), "make no pool"),
    ],
)
def test_bad_pool_settings_are_one_line_errors(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message) as err:
        run(_config(tmp_path, **kw), tiny(MODEL))
    assert "\n" not in str(err.value)
