"""RQ3 end to end on a tiny model: the full cut is the unmodified model, the sweep equals per-cut truncation,
drop equals mask, the depth picks and their pick rule, resuming after a kill, calibration from a train split."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import pytest
from rich.console import Console

from tests.conftest import tiny
from visdepth.data import get_dataset, write_manifest
from visdepth.errors import ConfigError
from visdepth.experiments import truncate as exp
from visdepth.experiments.truncate import FINGERPRINT_KEYS, TruncateConfig, budget_cut, run, run_dir, vtw_cut
from visdepth.interventions.hooks import greedy_generate, prefill_kwargs
from visdepth.interventions.truncate import truncated_logits
from visdepth.metrics import output as om
from visdepth.report.figures import draw_figures
from visdepth.tasks import get_task

MODEL = "tiny:llava"
KINDS = ("single_token", "multiple_choice", "exact_match")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> str:
    """Two photos samples of each kind that needs no sentence encoder (the CLI test covers captions)."""
    samples = [s for s in get_dataset("photos") if s.kind in KINDS]
    path = write_manifest(samples, tmp_path_factory.mktemp("data") / "photos3.jsonl")
    return f"local:{path}"


def _config(tmp_path, manifest, **kw) -> TruncateConfig:
    base = dict(
        model=MODEL,
        tasks=[manifest],
        batch_size=2,
        max_new_tokens=6,
        timing=False,
        calibration=3,
        output_path=str(tmp_path),
        progress=False,
    )
    base.update(kw)
    return TruncateConfig(**base)


def _same_scores(a: list[dict], b: list[dict]) -> bool:
    """Per-cut score dicts equal up to float noise (log-probabilities differ in the last bits between runs
    with other thread counts)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and x == pytest.approx(y, abs=1e-5) for x, y in zip(a, b, strict=True)
    )


def _rows(config: TruncateConfig) -> dict[str, dict]:
    path = run_dir(config, MODEL) / "samples.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture(scope="module")
def drop_run(tmp_path_factory, manifest):
    config = _config(tmp_path_factory.mktemp("drop"), manifest)
    return config, run(config, tiny(MODEL))


def test_results_files_and_compute(drop_run):
    config, result = drop_run
    L = tiny(MODEL).num_layers
    folder = run_dir(config, MODEL)
    data = json.loads((folder / "results.json").read_text())
    assert data["cuts"] == list(range(L + 1)) and data["depth"][-1] == 1
    (summary,) = data["tasks"].values()
    assert set(summary["kinds"]) == set(KINDS) and summary["num_samples"] == 6
    for ks in summary["kinds"].values():
        assert ks["n"] == 2 and len(ks["scores"][ks["main_score"]]) == L + 1
        assert ks["agreement"]["agreement"][-1] == 1.0 and ks["kl"]["mean"][-1] == 0.0
    compute = summary["compute"]
    assert compute["prefill_flops_ratio"][-1] == 1.0
    # every block that drops the image is cheaper: cost grows strictly with the cut
    assert all(a < b for a, b in zip(compute["prefill_flops"], compute["prefill_flops"][1:], strict=False))
    assert summary["calibration"]["source"] == "evaluated samples" and summary["calibration"]["n"] == 3
    assert summary["budget"]["criterion"] == "budget" and summary["vtw"]["criterion"] == "vtw"
    choices = data["meta"]["choices"]
    # the default pick rule is stable, and results.json says so
    assert config.pick_rule == "stable" and data["pick_rule"] == "stable"
    assert data["meta"]["config"]["pick_rule"] == "stable" and choices["pick_rule"]["name"] == "stable"
    assert "every deeper evaluated cut" in choices["depth_budget"] and "pick_rule stable" in choices["vtw"]
    assert "mask_mode" in choices["compute"] and "prompt_format" in next(iter(choices["prompts"].values()))
    assert not (folder / "figures").exists()  # the library draws nothing; the report layer does
    draw_figures(result, folder)
    for name in ("quality", "frontier", "kl"):
        assert any(p.stat().st_size > 10_000 for p in (folder / "figures").glob(f"{name}_*.png"))
    assert result.num_layers == L


def test_full_cut_equals_unmodified_model(drop_run, manifest):
    config, _ = drop_run
    adapter = tiny(MODEL)
    task = get_task(manifest)
    rows = _rows(config)
    for sample in task.load():
        row = rows[f"{task.name}/{sample.id}"]
        inputs = adapter.build_inputs([sample.load_images()], [task.prompt(sample)])
        if sample.kind in exp.SWEEP_KINDS:
            logits = adapter.model(**prefill_kwargs(adapter, inputs)).logits[0, -1].float()
            if sample.kind == "multiple_choice":
                letters = task.choice_letters(sample)
                lps = om.choice_logprobs(logits, adapter.tokenizer, letters)
                assert row["prediction"][-1] == om.choice_prediction(lps)
                right = letters[sample.answer_index]
                assert row["scores"][-1]["answer_logprob"] == pytest.approx(lps[right], abs=1e-4)
            else:
                assert row["prediction"][-1] == adapter.tokenizer.decode(
                    [int(logits.argmax())], skip_special_tokens=True
                )
        else:
            text = greedy_generate(adapter, inputs, config.max_new_tokens).text[0].strip()
            assert row["prediction"][-1] == text


def test_sweep_scores_equal_per_cut_truncation(drop_run, manifest):
    config, _ = drop_run
    adapter = tiny(MODEL)
    task = get_task(manifest)
    rows = _rows(config)
    for sample in task.load():
        row = rows[f"{task.name}/{sample.id}"]
        inputs = adapter.build_inputs([sample.load_images()], [task.prompt(sample)])
        logp = [
            truncated_logits(adapter, inputs, cut, "drop", last_only=True)[0].log_softmax(-1)
            for cut in range(adapter.num_layers + 1)
        ]
        kl = [float(om.kl_divergence(logp[-1], lp)) for lp in logp]
        assert row["kl"] == pytest.approx(kl, abs=1e-5)
        if sample.kind not in exp.SWEEP_KINDS:
            continue
        for j, lp in enumerate(logp):
            text = adapter.tokenizer.decode([int(lp.argmax())], skip_special_tokens=True)
            if sample.kind == "multiple_choice":
                letters = task.choice_letters(sample)
                lps = om.choice_logprobs(lp, adapter.tokenizer, letters)
                expected = task.score(sample, text, choice_logprobs=lps)
                assert row["prediction"][j] == om.choice_prediction(lps)
            else:
                expected = task.score(sample, text)
                assert row["prediction"][j] == text
            assert _same_scores([row["scores"][j]], [expected])


def _started_before_rows_finished_after(result, folder) -> None:
    """meta.started_at is when the run began (before any row was written), finished_at when it ended."""
    meta = result.meta
    assert meta.started_at is not None and meta.finished_at is not None
    rows_written = datetime.fromtimestamp((folder / "samples.jsonl").stat().st_mtime, tz=timezone.utc)
    assert meta.started_at <= rows_written <= meta.finished_at
    data = json.loads((folder / "results.json").read_text())["meta"]
    assert datetime.fromisoformat(data["started_at"]) == meta.started_at
    assert datetime.fromisoformat(data["finished_at"]) == meta.finished_at


def test_meta_records_the_real_start_and_finish(drop_run):
    config, result = drop_run
    _started_before_rows_finished_after(result, run_dir(config, MODEL))


def test_drop_and_mask_give_the_same_scores(drop_run, manifest, tmp_path, monkeypatch):
    config, drop = drop_run
    mask = _config(tmp_path, manifest, mode="mask")
    masked = run(mask, tiny(MODEL))
    # mask mode computes every image token at every cut: it saves nothing, and says what drop would save
    for name, summary in masked.tasks.items():
        dropped = drop.tasks[name]
        for key in exp.COST_KEYS:
            assert summary.compute[f"{key}_ratio"] == [1.0] * len(masked.cuts)
            assert summary.compute[f"drop_{key}_ratio"] == dropped.compute[f"{key}_ratio"]
            assert dropped.compute[f"drop_{key}_ratio"] == dropped.compute[f"{key}_ratio"]
        for pick, dropped_pick in ((summary.budget, dropped.budget), (summary.vtw, dropped.vtw)):
            assert pick.cut == dropped_pick.cut
            if pick.cut is not None:
                assert pick.prefill_flops_ratio == 1.0 and pick.decode_flops_ratio == 1.0
                assert pick.drop_prefill_flops_ratio == dropped_pick.prefill_flops_ratio
        for kind in summary.kinds.values():
            assert kind.compute["prefill_flops_ratio"] == [1.0] * len(masked.cuts)
    # and the table printed for a mask run says so, while a drop run's does not
    from visdepth.cli import truncate as cli

    printed = {}
    for result in (masked, drop):
        buffer = io.StringIO()
        monkeypatch.setattr(cli, "console", Console(file=buffer, width=400))
        cli._print_summary(result)
        printed[result.mode] = buffer.getvalue()
    flat = {mode: " ".join(text.split()) for mode, text in printed.items()}
    assert "mask mode computes every image token, so it saves nothing" in flat["mask"]
    assert "saves nothing" not in flat["drop"] and "would spend" not in flat["drop"]
    (name, summary), L = next(iter(masked.tasks.items())), masked.num_layers
    assert summary.budget.cut is not None
    # the task's row: n, full, budget cut, kept, FLOPs, VTW cut, kept, FLOPs
    cells = next(line for line in printed["mask"].splitlines() if line.lstrip().startswith(name)).split()
    assert cells[3] == f"{summary.budget.cut}/{L}" and cells[5] == "1.00"
    assert (
        f"drop mode would spend prefill FLOPs / full of {summary.budget.drop_prefill_flops_ratio:.2f} at "
        f"the budget cut {summary.budget.cut}" in flat["mask"]
    )
    drop_rows, mask_rows = _rows(config), _rows(mask)
    assert drop_rows.keys() == mask_rows.keys()
    for key, row in drop_rows.items():
        other = mask_rows[key]
        assert row["prediction"] == other["prediction"] and _same_scores(row["scores"], other["scores"])
        assert row["kl"] == pytest.approx(other["kl"], abs=1e-6)
    assert run_dir(mask, MODEL) != run_dir(config, MODEL)


class Killed(Exception):
    """Stands for the process dying mid-run (rows already written stay on disk)."""


def test_resume_after_a_kill_equals_an_uninterrupted_run(drop_run, manifest, tmp_path, monkeypatch):
    config, full = drop_run
    resumed = _config(tmp_path, manifest)
    calls, resuming = [], False
    original = exp.measure_batch

    def dies_on_second_batch(ctx, items):
        calls.append(len(items))
        if len(calls) == 2 and not resuming:
            raise Killed
        return original(ctx, items)

    monkeypatch.setattr(exp, "measure_batch", dies_on_second_batch)
    with pytest.raises(Killed):
        run(resumed, tiny(MODEL))
    assert len(_rows(resumed)) == 2  # the first batch is on disk
    calls.clear()
    resuming = True
    result = run(resumed, tiny(MODEL))
    assert sum(calls) == 4  # only the missing samples were measured
    got, expected = _rows(resumed), _rows(config)
    assert got.keys() == expected.keys()
    for key, row in got.items():
        for field in ("prediction", "agreement", "compute", "tokens", "kind", "role"):
            assert row[field] == expected[key][field]
        assert _same_scores(row["scores"], expected[key]["scores"])
        assert row["kl"] == pytest.approx(expected[key]["kl"], abs=1e-6)
    for name, summary in result.tasks.items():
        assert summary.quality == full.tasks[name].quality
        assert (
            summary.budget.cut == full.tasks[name].budget.cut and summary.vtw.cut == full.tasks[name].vtw.cut
        )


def test_calibration_from_the_train_split(tmp_path):
    config = TruncateConfig(
        model=MODEL, tasks=["shapes"], limit=2, calibration=3, cuts=[0, 2], timing=False,
        output_path=str(tmp_path), progress=False,
    )  # fmt: skip
    result = run(config, tiny(MODEL))
    L = tiny(MODEL).num_layers
    assert result.cuts == [0, 2, L]
    summary = result.tasks["shapes"]
    assert summary.calibration["source"] == "train split" and summary.calibration["n"] == 3
    rows = _rows(config)
    cal = [r for r in rows.values() if r["role"] == "calibration"]
    assert len(cal) == 3 and all(r["id"].startswith("shapes/calibration/shapes-train-") for r in cal)
    expected = [sum(r["kl"][j] for r in cal) / 3 for j in range(3)]
    assert summary.calibration["kl_mean"] == pytest.approx(expected)
    assert summary.vtw.cut == vtw_cut(result.cuts, expected, config.vtw_threshold)[0]


def test_budget_cut_picks_the_shallowest_cut_keeping_the_budget():
    cuts = [0, 1, 2, 3, 4]
    for rule in ("stable", "first"):
        # monotone from the pick on: both rules agree, no note
        assert budget_cut(cuts, [0.2, 0.5, 0.96, 0.97, 1.0], 0.95, rule) == (2, None)
        # nothing but the full model reaches the budget
        assert budget_cut(cuts, [0.0, 0.1, 0.2, 0.9, 1.0], 0.95, rule) == (4, None)
        assert budget_cut(cuts, [0.0, 0.1, 0.2, 0.9, 1.0], 1.0, rule) == (4, None)
        # a full model scoring 0 is kept by every cut: the shallowest, with a note
        cut, note = budget_cut(cuts, [0.0, 0.0, 0.0, 0.0, 0.0], 0.95, rule)
        assert cut == 0 and "0" in note
        assert budget_cut(cuts, [None, None, None, None, None], 0.95, rule)[0] is None
        assert budget_cut(cuts, [None, 0.4, 0.96, 1.0, 1.0], 0.95, rule) == (2, None)


def test_budget_cut_on_a_non_monotone_curve_follows_the_pick_rule():
    cuts = [0, 1, 2, 3, 4]
    quality = [0.2, 0.96, 0.9, 0.97, 1.0]
    note = "cut 1 meets the budget but cut 2 does not; stable from cut 3"
    assert budget_cut(cuts, quality, 0.95, "first") == (1, note)
    assert budget_cut(cuts, quality, 0.95, "stable") == (3, note)
    assert budget_cut(cuts, quality, 0.95) == (3, note)  # stable by default
    # the note names the deepest cut that fails, not the first dip
    even, dips = [0, 2, 4, 6, 8, 10], [0.1, 0.97, 0.5, 0.96, 0.5, 1.0]
    note = "cut 2 meets the budget but cut 8 does not; stable from cut 10"
    assert budget_cut(even, dips, 0.95, "first") == (2, note)
    assert budget_cut(even, dips, 0.95, "stable") == (10, note)
    # a cut without a score neither meets the budget nor breaks its stability
    assert budget_cut(cuts, [0.2, 0.96, None, 0.97, 1.0], 0.95, "stable") == (1, None)


def test_vtw_cut_picks_the_shallowest_cut_below_the_threshold():
    cuts = [0, 2, 4, 6]
    for rule in ("stable", "first"):
        assert vtw_cut(cuts, [1.0, 0.2, 0.04, 0.0], 0.05, rule) == (4, None)
        assert vtw_cut(cuts, [1.0, 0.2, 0.05, 0.0], 0.05, rule) == (4, None)  # the border counts
        assert vtw_cut(cuts, [1.0, 0.5, 0.2, 0.0], 0.0, rule) == (6, None)
        assert vtw_cut(cuts, [None, None, None, None], 0.05, rule) == (None, None)


def test_vtw_cut_on_a_non_monotone_curve_follows_the_pick_rule():
    cuts = [0, 2, 4, 6]
    kl = [1.0, 0.05, 0.06, 0.0]
    note = "cut 2 meets the threshold but cut 4 does not; stable from cut 6"
    assert vtw_cut(cuts, kl, 0.05, "first") == (2, note)
    assert vtw_cut(cuts, kl, 0.05, "stable") == (6, note)
    assert vtw_cut(cuts, kl, 0.05) == (6, note)  # stable by default
    # the deepest cut fails: the literal pick stands, no cut is stable
    cut, note = vtw_cut(cuts, [1.0, 0.01, 0.02, 0.3], 0.05, "stable")
    assert cut is None and note == "cut 2 meets the threshold but cut 6 does not; no cut is stable"
    assert vtw_cut(cuts, [1.0, 0.01, 0.02, 0.3], 0.05, "first")[0] == 2


def test_pick_rule_is_not_part_of_the_row_fingerprint():
    """Rows are per-sample scores; the picks are recomputed from them, so another rule only re-summarises."""
    assert "pick_rule" not in FINGERPRINT_KEYS
    assert TruncateConfig(pick_rule="first").fingerprint() == TruncateConfig().fingerprint()
    with pytest.raises(ConfigError, match="--pick_rule 'best' is unknown; use stable, first"):
        TruncateConfig(pick_rule="best")


def test_a_resumed_run_re_summarises_with_another_pick_rule(tmp_path, manifest, monkeypatch):
    """Every row gets a quality and KL curve that dips below the criterion at cut 2 after meeting it at cut 1:
    both the budget and the VTW pick, per task and per kind, follow the rule, with a note, and no row is
    measured again."""
    run(_config(tmp_path, manifest), tiny(MODEL))
    path = run_dir(_config(tmp_path, manifest), MODEL) / "samples.jsonl"
    pattern, kl = [0.0, 1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0, 0.0]
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        assert len(row["kl"]) == len(pattern)  # tiny:llava has L = 4
        row["kl"] = kl
        row["scores"] = [{k: pattern[j] for k in s} for j, s in enumerate(row["scores"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(exp, "measure_batch", lambda ctx, items: pytest.fail("a row was measured again"))
    budget_note = "cut 1 meets the budget but cut 2 does not; stable from cut 3"
    vtw_note = "cut 1 meets the threshold but cut 2 does not; stable from cut 3"
    for rule, expected in (("first", 1), ("stable", 3)):
        config = _config(tmp_path, manifest, pick_rule=rule)
        result = run(config, tiny(MODEL))
        (summary,) = result.tasks.values()
        assert summary.quality == pattern
        picks = [summary.budget, *(ks.budget for ks in summary.kinds.values())]
        assert len(picks) == 1 + len(KINDS)
        assert all(p.cut == expected and p.note == budget_note for p in picks)
        vtws = [summary.vtw, *(ks.vtw for ks in summary.kinds.values())]
        assert all(p.cut == expected and p.note == vtw_note for p in vtws)
        data = json.loads((run_dir(config, MODEL) / "results.json").read_text())
        assert data["pick_rule"] == rule and data["meta"]["choices"]["pick_rule"]["name"] == rule
        assert f"pick_rule {rule}" in data["meta"]["choices"]["depth_budget"]
        assert next(iter(data["tasks"].values()))["budget"]["cut"] == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cuts": [99]}, "beyond"),
        ({"mode": "fast"}, "mode"),
        ({"budget": 0.0}, "outside"),
        ({"budget": 1.5}, "outside"),
        ({"tasks": ["nope"]}, "unknown task"),
        ({"cuts": "some"}, "'all'"),
    ],
)
def test_bad_configuration_is_refused(tmp_path, manifest, change, message):
    with pytest.raises(ConfigError, match=message):
        run(_config(tmp_path, manifest, **change), tiny(MODEL))


def test_caption_bleu_in_the_summary_is_corpus_bleu():
    """``bleu`` per cut is sacrebleu's corpus BLEU over the kind's samples, ``bleu_sentence`` the mean of the
    samples' sentence BLEU; for agreement both are taken against the full model's outputs (the last cut)."""
    sacrebleu = pytest.importorskip("sacrebleu")
    pytest.importorskip("rouge_score")
    task = get_task("photos")
    group = [s for s in get_dataset("photos") if s.kind == "caption"][:2]
    preds = [  # per sample: the output at cut 0, then at the full model
        ["a rocket on a pad", "a white rocket stands on its launch pad at dusk"],
        ["an orange flower in bloom", "a close-up of an orange dahlia against a green background"],
    ]
    rows = [
        {
            "prediction": p,
            "scores": [task.score(s, x) for x in p],
            "agreement": [task.compare(s, p[-1], x) for x in p],
        }
        for s, p in zip(group, preds, strict=True)
    ]
    from visdepth.experiments.truncation.summary import _per_cut

    scores = _per_cut(task, group, rows, "scores", 2, predictions=True)
    agreement = _per_cut(task, group, rows, "agreement", 2)
    for j in range(2):
        hyps = [p[j] for p in preds]
        streams = [[s.references[k] for s in group] for k in range(3)]
        assert scores["bleu"][j] == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score)
        assert scores["bleu_sentence"][j] == pytest.approx(
            sum(om.sentence_bleu(h, s.references) for h, s in zip(hyps, group, strict=True)) / 2
        )
        full = [[p[-1] for p in preds]]
        assert agreement["bleu"][j] == pytest.approx(sacrebleu.corpus_bleu(hyps, full).score)
    assert agreement["bleu"][-1] == 100.0 and agreement["bleu_sentence"][-1] == pytest.approx(100.0)
    assert scores["bleu"][0] != pytest.approx(scores["bleu_sentence"][0])
    assert "bleu_corpus" not in scores


def test_timing_has_its_own_progress_bar(capsys):
    adapter = tiny(MODEL)
    task = get_task("photos")
    samples = [s for s in get_dataset("photos") if s.kind == "single_token"][:1]
    inputs = adapter.build_inputs([s.load_images() for s in samples], [task.prompt(s) for s in samples])
    L = adapter.num_layers
    out = exp.measure_timing(adapter, inputs, [0, L], "drop", repeats=1, new_tokens=2, progress=True)
    bar = capsys.readouterr().err
    assert "timing" in bar and "100%" in bar and "8/8" in bar  # 3 timed calls and a peak-memory run per cut
    assert len(out["prefill_s"]) == 2
    exp.measure_timing(adapter, inputs, [0, L], "drop", repeats=1, new_tokens=2, progress=False)
    assert "timing" not in capsys.readouterr().err


# ---------------------------------------------------------------------- several modes in one run
def test_several_modes_in_one_run(drop_run, tmp_path, manifest):
    """``mode: drop,freeze,skip_mlp``: one folder, rows with each mode's readings, a summary per mode; the drop
    summaries equal a drop-only run's; the processing modes keep the KV cache and save less prefill than drop."""
    config, drop_only = drop_run
    multi = _config(tmp_path, manifest, mode="drop, freeze,skip_mlp")
    assert (
        multi.mode == ["drop", "freeze", "skip_mlp"]
        and _config(tmp_path, manifest, mode="mask,").mode == "mask"
    )
    result = run(multi, tiny(MODEL))
    assert run_dir(multi, MODEL).name == "truncate-drop+freeze+skip_mlp"
    assert result.modes == ["drop", "freeze", "skip_mlp"] and result.mode == "drop"
    assert set(result.by_mode) == set(result.modes)
    (name,) = result.tasks
    assert result.by_mode["drop"][name].model_dump() == drop_only.tasks[name].model_dump()
    rows = _rows(multi)
    assert all(set(r["by_mode"]) == {"freeze", "skip_mlp"} for r in rows.values())
    drop_c = result.by_mode["drop"][name].compute
    for mode in ("freeze", "skip_mlp"):
        s = result.by_mode[mode][name]
        assert s.compute["kv_cache_bytes_ratio"] == [1.0] * len(result.cuts)
        assert all(
            d <= p <= 1
            for d, p in zip(drop_c["prefill_flops_ratio"], s.compute["prefill_flops_ratio"], strict=True)
        )
        assert s.compute["drop_prefill_flops_ratio"] == drop_c["prefill_flops_ratio"]
        assert s.kl.mean[-1] == 0.0 and s.budget.criterion == "budget"
    # the layer contribution of the calibration samples (the first 3 evaluated), one value per block
    contribution = result.by_mode["freeze"][name].contribution
    assert contribution is not None and len(contribution.mean) == tiny(MODEL).num_layers
    assert sum("contribution" in r for r in rows.values()) == 3
    assert result.summaries("skip_mlp") is result.by_mode["skip_mlp"] and drop_only.summaries("drop")


def test_unknown_mode_is_refused_before_loading(tmp_path, manifest):
    with pytest.raises(ConfigError, match="unknown truncation mode 'frieze'"):
        run(_config(tmp_path, manifest, mode="drop,frieze"))
