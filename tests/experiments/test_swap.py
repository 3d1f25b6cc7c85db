"""RQ2 end to end on a tiny model: the diagonal is the identity, the rest is not, resume changes nothing."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from tests.conftest import tiny
from visdepth.errors import ConfigError
from visdepth.experiments import swap
from visdepth.experiments.swap import GROUPS, SwapConfig, distance_curve, resolve_layers, run, run_dir
from visdepth.interventions.substitute import (
    capture_prefill_states,
    matched_text_mask,
    sample_seed,
    substituted_logits,
)
from visdepth.metrics.output import kl_divergence
from visdepth.report.figures import draw_figures
from visdepth.results.io import read_jsonl
from visdepth.tasks import get_task

MODEL = "tiny:llava"


def _config(path, **kw) -> SwapConfig:
    # three samples in batches of two: one padded batch of two, one single; 3 x 3 grid of depths
    base = dict(
        model=MODEL,
        tasks=["photos"],
        limit=3,
        batch_size=2,
        layers="stride:2",
        max_new_tokens=5,
        sentence_model=None,
        output_path=str(path),
        progress=False,
    )
    base.update(kw)
    return SwapConfig(**base)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted run, shared by the tests that only read it."""
    path = tmp_path_factory.mktemp("swap")
    config = _config(path)
    result = run(config, tiny(MODEL))
    return config, result, read_jsonl(run_dir(config, MODEL) / "samples.jsonl")


def test_meta_records_the_real_start_and_finish(finished):
    config, result, _ = finished
    folder = run_dir(config, MODEL)
    rows_written = datetime.fromtimestamp((folder / "samples.jsonl").stat().st_mtime, tz=timezone.utc)
    assert result.meta.started_at <= rows_written <= result.meta.finished_at
    meta = json.loads((folder / "results.json").read_text())["meta"]
    assert datetime.fromisoformat(meta["started_at"]) == result.meta.started_at
    assert datetime.fromisoformat(meta["finished_at"]) == result.meta.finished_at


def test_diagonal_is_the_identity(finished):
    _, result, rows = finished
    n = len(result.layers)
    assert result.layers == [0, 2, 4] and len(rows) == 3
    assert result.groups == ["image", "text", "text_matched"] == list(GROUPS)  # the default
    for row in rows:
        for group in GROUPS:
            metrics, texts = row["metrics"][group], row["texts"][group]
            for i in range(n):
                assert metrics["first_token"][i][i] == 1.0
                assert metrics["kl"][i][i] == pytest.approx(0.0, abs=1e-9)
                assert texts[i][i] == row["full_text"]
                assert metrics["identical"][i][i] == 1.0
    assert result.identity["holds"] and result.identity["kl_max"] <= 1e-9


def test_off_diagonal_moves_the_output(finished):
    _, result, rows = finished
    for group in GROUPS:
        kl = np.array([r["metrics"][group]["kl"] for r in rows])  # (samples, n, n)
        off = ~np.eye(kl.shape[1], dtype=bool)
        assert kl[:, off].max() > 1e-4, group
        assert result.off_diagonal[group]["kl"] > 0
    # image positions cannot reach the last prompt position above the final norm: l_b = L is exact for them
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in np.array(result.matrices["image"]["kl"])[:, -1])


def test_results_file_and_shapes(finished):
    config, result, _ = finished
    folder = run_dir(config, MODEL)
    data = json.loads((folder / "results.json").read_text())
    n = len(result.layers)
    assert data["num_samples"] == 3 and data["depth"] == [0.0, 0.5, 1.0]
    assert data["groups"] == ["image", "text", "text_matched"]
    for group in GROUPS:
        for metric in ("first_token", "kl", "agreement", "identical"):
            assert np.array(data["matrices"][group][metric], dtype=float).shape == (n, n)
        curve = data["curves"][group]["kl"]
        assert curve["distance"] == [0, 2, 4] and curve["relative"] == [0.0, 0.5, 1.0]
        assert curve["a_below_b"][0] is None and curve["count"][0] == 3 * n
    choices = data["meta"]["choices"]
    assert choices["splice_scope"] == "prefill" and "KL(p_full || p_swapped)" in choices["kl"]
    assert choices["similarity"] is None and data["task"]["task"] == "photos"
    assert "last prompt position" in choices["groups"]["text_matched"]
    assert "sample id" in choices["groups"]["text_matched"] and "seed=0" in choices["text_matched_seed"]
    # the size-matched control swaps as many positions as the image group, far fewer than the whole text
    assert data["tokens"]["text_matched"] == data["tokens"]["image"] < data["tokens"]["text"]
    assert data["files"] == {"samples": "samples.jsonl"}  # the library draws nothing
    figures = draw_figures(result, folder)
    for name in ("heatmap_kl", "heatmap_first_token", "distance"):
        assert (folder / "figures" / f"{name}.png").stat().st_size > 10_000
        assert figures[f"figure_{name}"] == folder / "figures" / f"{name}.png"


def test_kl_is_the_spliced_prefill_at_the_last_position(finished):
    """The KL taken from the generation's first step equals the one from substituted_logits' last position."""
    _, result, rows = finished
    adapter = tiny(MODEL)
    task = get_task("photos")
    by_id = {s.id: s for s in task.load(limit=3)}
    row = rows[-1]  # measured alone (the second batch holds one sample)
    sample = by_id[row["id"]]
    inputs = adapter.build_inputs([sample.load_images()], [task.prompt(sample)])
    states = capture_prefill_states(adapter, inputs)
    layers = result.layers
    full = substituted_logits(adapter, inputs, states, 0, 0)[:, -1]
    seeds = [sample_seed(0, row["id"])]
    for group in GROUPS:
        swapped = substituted_logits(
            adapter, inputs, states, layers[0], layers[1], group, exclude_special=True, seeds=seeds
        )
        swapped = swapped[:, -1]
        expected = float(kl_divergence(full, swapped)[0])
        assert row["metrics"][group]["kl"][0][1] == pytest.approx(expected, rel=1e-3, abs=1e-7)
    # the recorded token counts are those of the swapped masks
    matched = matched_text_mask(inputs, exclude_special=True, seeds=seeds)
    assert row["tokens"]["text_matched"] == int(matched.sum()) == int(inputs.image_mask.sum())
    assert not matched[0, -1]


def test_size_matched_control_does_not_depend_on_batching(tmp_path, finished):
    """All three samples in one batch (rows 0..2) give the rows measured in batches of two (rows 0, 1 and 0):
    the subset of a sample comes from its id and the seed, not from its place in a batch."""
    _, _, reference = finished
    config = _config(tmp_path, batch_size=3, groups=("text_matched",))
    batched = run(config, tiny(MODEL))
    rows = read_jsonl(run_dir(config, MODEL) / "samples.jsonl")
    assert [r["id"] for r in rows] == [r["id"] for r in reference]
    for row, ref in zip(rows, reference, strict=True):
        assert row["tokens"]["text_matched"] == ref["tokens"]["text_matched"]
        assert row["texts"]["text_matched"] == ref["texts"]["text_matched"]
        got, want = row["metrics"]["text_matched"], ref["metrics"]["text_matched"]
        assert got["first_token"] == want["first_token"]
        np.testing.assert_allclose(got["kl"], want["kl"], rtol=1e-3, atol=1e-6)
    # another seed draws other subsets, so the numbers move
    other = run(_config(tmp_path / "seed1", batch_size=3, groups=("text_matched",), seed=1), tiny(MODEL))
    moved = np.array(other.matrices["text_matched"]["kl"]) - np.array(batched.matrices["text_matched"]["kl"])
    assert np.abs(moved).max() > 1e-6


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, monkeypatch, finished):
    _, reference, _ = finished
    config = _config(tmp_path)
    original = swap.measure_batch
    calls: list[int] = []  # batch sizes measured
    die_at: list[int] = [2]

    def measure_batch(*args, **kwargs):
        calls.append(len(args[2]))
        if len(calls) in die_at:
            raise KeyboardInterrupt  # Ctrl-C while the second batch runs
        return original(*args, **kwargs)

    monkeypatch.setattr(swap, "measure_batch", measure_batch)
    with pytest.raises(KeyboardInterrupt):
        run(config, tiny(MODEL))
    assert len(read_jsonl(run_dir(config, MODEL) / "samples.jsonl")) == 2
    calls.clear()
    die_at.clear()
    resumed = run(config, tiny(MODEL))
    assert calls == [1]  # only the missing sample was measured
    assert resumed.matrices == reference.matrices
    assert resumed.curves == reference.curves
    assert resumed.identity == reference.identity


def test_a_resumed_run_refuses_other_settings(finished):
    config, _, _ = finished
    with pytest.raises(ConfigError, match="different configuration"):
        run(config.model_copy(update={"groups": ("image",)}), tiny(MODEL))


def test_similarity_with_the_sentence_encoder(tmp_path):
    """The real MiniLM encoder (the slow part, covered once): similarity 1 on the diagonal, a valid cosine off it."""
    config = _config(tmp_path, limit=1, layers="0,4", groups=("image",), sentence_model="all-MiniLM-L6-v2")
    result = run(config, tiny(MODEL))
    sim = np.array(result.matrices["image"]["similarity"], dtype=float)
    assert np.diag(sim) == pytest.approx(1.0, abs=1e-5)
    assert ((sim >= -1 - 1e-6) & (sim <= 1 + 1e-6)).all()
    assert result.metrics[:3] == ["similarity", "first_token", "kl"]
    assert result.meta.choices["similarity"]["model"] == "all-MiniLM-L6-v2"
    assert "figure_heatmap_similarity" in draw_figures(result, tmp_path / "figures-here")


def test_layer_grid():
    assert resolve_layers("all", 4) == [0, 1, 2, 3, 4]
    assert resolve_layers("stride:3", 4) == [0, 3, 4]  # L is always kept
    assert resolve_layers("4, 0,0", 4) == [0, 4]
    assert resolve_layers([1, 3], 4) == [1, 3]
    with pytest.raises(ConfigError, match=r"layer 9 .* beyond the model's 4 layers; use depths 0\.\.4"):
        resolve_layers("0,9", 4)
    with pytest.raises(ConfigError, match="at least two"):
        resolve_layers("2", 4)
    for bad in ("stride:0", "stride:x", "0;2", "first"):
        with pytest.raises(ConfigError, match="--layers"):
            resolve_layers(bad, 4)
    with pytest.raises(ConfigError, match="unknown group 'pixels'.*text_matched"):
        swap.check_groups(["image", "pixels"])
    assert swap.check_groups(["text_matched", "image", "text_matched"]) == ["text_matched", "image"]


def test_distance_curve_splits_directions():
    layers = [0, 1, 3]
    a, b = np.meshgrid(layers, layers, indexing="ij")
    values = np.stack([np.where(a < b, 1.0, 2.0) * np.abs(a - b)] * 2)  # (2 samples, 3, 3)
    values[1, 0, 0] = np.nan  # a score one sample lacks is left out, not counted
    curve = distance_curve(values, layers, num_layers=4)
    assert curve.distance == [0, 1, 2, 3] and curve.relative == [0, 0.25, 0.5, 0.75]
    assert curve.all == [0.0, 1.5, 3.0, 4.5]
    assert curve.a_below_b == [None, 1.0, 2.0, 3.0] and curve.a_above_b == [None, 2.0, 4.0, 6.0]
    assert curve.count == [5, 4, 4, 4]


def test_summary_names_the_mean_of_sentence_bleu_bleu_sentence():
    cells = {"first_token": [[1.0, 0.0], [0.0, 1.0]], "kl": [[0.0, 0.5], [0.5, 0.0]]}
    cells |= {"identical": [[1.0, 0.0], [0.0, 1.0]], "bleu": [[100.0, 20.0], [40.0, 100.0]]}
    summary = swap.summarise([{"metrics": {"image": cells}}], [0, 2], ["image"], 2)
    # a mean of sentence BLEU is not corpus BLEU, which is what "bleu" names in a summary
    assert "bleu" not in summary["metrics"] and "bleu_sentence" in summary["metrics"]
    assert summary["off_diagonal"]["image"]["bleu_sentence"] == pytest.approx(30.0)
    assert "bleu" not in summary["matrices"]["image"] and "bleu" not in summary["curves"]["image"]
