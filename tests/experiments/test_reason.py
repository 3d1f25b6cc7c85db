"""RQ5 end to end on tiny models: a hand-made manifest of ``task: cot`` rows; the full model's cut compares
equal to itself; chains come from the truncation engine; budget chains are prefixes of one greedy generation;
the teacher-forced answer against a naive step-by-step loop; resuming; every tiny family; bad input."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import tiny
from visdepth.data import get_dataset
from visdepth.errors import ConfigError
from visdepth.experiments import runner
from visdepth.experiments.reason import ReasonConfig, run, run_dir
from visdepth.experiments.reasoning.measure import append_tokens
from visdepth.interventions import truncated_generate, truncated_logits
from visdepth.models.registry import tiny_names

MODEL = "tiny:llava"
#: the chain's last visible character is its answer: a random model's chain always has one
LAST = r"(?P<answer>\S)\s*$"


def _write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f"local:{path}"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> str:
    """Three chain-of-thought questions on shapes scenes, written by hand as ``task: cot`` rows."""
    scenes = [s for s in get_dataset("shapes") if s.kind == "caption"][:3]
    rows = [
        {
            "id": f"cot{i}",
            "images": s.images,
            "prompt": "How many objects are there? Think step by step.",
            "answer": str(s.references[0].count(" at ")),
            "task": "cot",
        }
        for i, s in enumerate(scenes)
    ]
    return _write(tmp_path_factory.mktemp("data") / "cot.jsonl", rows)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> str:
    """Short-answer questions only: no chain-of-thought format of their own."""
    scenes = [s for s in get_dataset("shapes") if s.kind == "caption"][:2]
    rows = [
        {"id": f"q{i}", "images": s.images, "prompt": "How many objects are there?", "answer": "1"}
        for i, s in enumerate(scenes)
    ]
    return _write(tmp_path_factory.mktemp("data") / "plain.jsonl", rows)


def _config(tmp_path, manifest, **kw) -> ReasonConfig:
    base = dict(
        model=MODEL,
        tasks=[manifest],
        cuts="0,2",
        max_new_tokens=6,
        answer_pattern=LAST,
        similarity=False,
        bootstrap=20,
        batch_size=2,
        output_path=str(tmp_path),
        progress=False,
    )
    base.update(kw)
    return ReasonConfig(**base)


def _rows(config: ReasonConfig, model: str = MODEL) -> dict[str, dict]:
    path = run_dir(config, model) / "samples.jsonl"
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def _eos(adapter) -> set[int]:
    eos = adapter.model.generation_config.eos_token_id
    eos = {eos} if isinstance(eos, int) else set(eos or [])
    return eos | {adapter.tokenizer.eos_token_id}


def _until_eos(ids: list[int], eos: set[int]) -> list[int]:
    return ids[: next((i for i, t in enumerate(ids) if t in eos), len(ids))]


@pytest.fixture(scope="module")
def done(tmp_path_factory, manifest):
    config = _config(tmp_path_factory.mktemp("out"), manifest)
    return config, run(config), _rows(config)


def test_reason_end_to_end(done, manifest):
    config, result, rows = done
    L = result.num_layers
    assert result.cuts == [0, 2, L] and len(rows) == 3 * 3
    task = result.tasks[manifest]
    assert task.num_samples == 3 and task.prompt_sources == {"task": 3}
    adapter, eos = tiny(MODEL), _eos(tiny(MODEL))
    for i in range(3):
        full = rows[f"{manifest}/cot{i}/cut{L}"]
        # the full model against itself: the same path, the same answer, and teacher forcing gives it back
        assert full["trajectory"]["identical"] == 1 and full["trajectory"]["edit_distance"] == 0
        assert full["answer"]["agreement"] == 1 and full["answer"]["found"]
        assert full["teacher_forced"]["answer"] == full["chain"]["answer"]
        assert full["budgets"]["1"]["agreement"] == 1
        for cut in (0, 2):
            row = rows[f"{manifest}/cot{i}/cut{cut}"]
            assert row["full"] == full["chain"]  # both chains in every row
            # the chain is the truncation engine's greedy generation of this prompt at this cut
            inputs = adapter.build_inputs([get_sample(manifest, i).load_images()], [row["prompt"]])
            gen = truncated_generate(adapter, inputs, cut, "drop", max_new_tokens=12)
            ids = _until_eos(gen.tokens[0].tolist(), eos)
            assert row["chain"]["ids"] == ids[:6]
            # a chain capped at n tokens is the greedy chain generated with a budget of n
            n = row["budgets"]["2"]["max_tokens"]
            capped = truncated_generate(adapter, inputs, cut, "drop", max_new_tokens=n)
            assert row["budgets"]["2"]["n_tokens"] == len(_until_eos(capped.tokens[0].tolist(), eos))
            assert set(row["trajectory"]) >= {"edit_distance", "rougeL", "first_token_rel", "length_ratio"}
    assert [s.mean for s in task.shares["chain_differs"]][-1] == 0
    assert set(task.accuracy) == {"cot", "direct", "budget_1", "budget_2", "teacher_forced"}
    for ex in task.examples:
        assert ex["full_chain"] != ex["chain"] or ex["trajectory"]["identical"] == 0
    for ex in task.same_answer_examples:
        assert ex["same_answer"] and ex["trajectory"]["identical"] == 0 and ex["cut"] < L
    choices = result.meta.choices
    assert choices["answer_extraction"]["overridden"] and choices["budgets"]["factors"] == [1.0, 2.0]


def get_sample(manifest: str, i: int):
    from visdepth.tasks import get_task

    return get_task(manifest).load()[i]


@pytest.mark.parametrize("mode", ["mask", "drop"])
def test_teacher_forced_equals_naive_loop(manifest, mode):
    """Appending the full model's reasoning and generating at a cut equals an argmax loop over prefills
    without a cache (each step a fresh truncated forward pass on the whole sequence)."""
    adapter = tiny(MODEL)
    sample = get_sample(manifest, 0)
    inputs = adapter.build_inputs([sample.load_images()], [sample.prompt])
    prefix = (
        truncated_generate(adapter, inputs, adapter.num_layers, mode, max_new_tokens=4).tokens[0].tolist()
    )
    forced = append_tokens(inputs, prefix)
    assert forced.input_ids.shape[1] == inputs.input_ids.shape[1] + len(prefix)
    assert not forced.image_mask[0, -len(prefix) :].any()
    got = truncated_generate(adapter, forced, 1, mode, max_new_tokens=3, min_new_tokens=3).tokens[0].tolist()
    seq = list(prefix)
    for _ in range(3):
        logits = truncated_logits(adapter, append_tokens(inputs, seq), 1, mode, last_only=True)[0]
        logits[adapter.image_token_id] = -torch.inf  # generate never emits the image placeholder either
        logits[list(_eos(adapter))] = -torch.inf  # min_new_tokens
        seq.append(int(logits.argmax()))
    assert got == seq[len(prefix) :]


def test_resume_measures_only_missing_rows(done, manifest):
    config, result, rows = done
    L = result.num_layers
    path = run_dir(config, MODEL) / "samples.jsonl"
    kept = [
        line
        for line in path.read_text().splitlines()
        if json.loads(line)["id"]
        not in (f"{manifest}/cot1/cut{L}", f"{manifest}/cot1/cut0", f"{manifest}/cot2/cut2")
    ]
    path.write_text("\n".join(kept) + "\n")
    again = run(config)
    new = _rows(config)
    assert new.keys() == rows.keys()
    for key, row in rows.items():
        assert new[key]["chain"] == row["chain"] and new[key]["trajectory"] == row["trajectory"]
    assert again.tasks[manifest].shares == result.tasks[manifest].shares


@pytest.mark.parametrize("name", tiny_names())
def test_every_family(tmp_path, manifest, plain, name):
    """Chains, direct and teacher-forced answers on every tiny family (the wrapper on plain questions)."""
    tasks = [manifest] if name != MODEL else [manifest, plain]
    config = _config(
        tmp_path, manifest, model=name, tasks=tasks, cuts="0", limit=1, max_new_tokens=3, budgets="1",
        bootstrap=0, cot_prompt="auto",
    )  # fmt: skip
    result = run(config)
    rows = _rows(config, name)
    L = result.num_layers
    full = rows[f"{manifest}/cot0/cut{L}"]
    assert full["teacher_forced"]["answer"] == full["chain"]["answer"]
    assert full["trajectory"]["identical"] == 1
    if name == MODEL:
        wrapped = rows[f"{plain}/q0/cut0"]
        assert wrapped["prompt_source"] == "wrapper" and "so the final answer is" in wrapped["prompt"]
        assert wrapped["direct"]["prompt"] == "How many objects are there?"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cot_prompt": "task", "plain": True}, "no chain-of-thought samples"),
        ({"answer_pattern": "answer is ("}, "not a valid regular expression"),
        ({"answer_pattern": "answer is \\d"}, "no group"),
        ({"budgets": "1,0"}, "not positive"),
        ({"budgets": "-2"}, "not positive"),
        ({"gen_kwargs": {"do_sample": True}}, "not greedy"),
        ({"gen_kwargs": {"pad_token_id": 0}}, "set by visdepth itself"),
        ({"gen_kwargs": {"max_new_tokens": 0}}, "not a positive whole number"),
        ({"reasoning_tags": "<think>"}, "not a tag name"),
        ({"cot_wrapper": "Think step by step."}, "has no {question}"),
        ({"mode": "drop,freeze"}, "one truncation mode per run"),
        ({"mode": "sideways"}, "unknown truncation mode 'sideways'"),
    ],
)
def test_bad_input_before_the_model_loads(tmp_path, manifest, plain, options, message):
    options = dict(options)
    tasks = [plain] if options.pop("plain", False) else [manifest]
    with pytest.raises(ConfigError, match=message):
        # an unloadable model: the error must come first
        runner.run("reason", dict(model="no/such-model", tasks=tasks, output_path=str(tmp_path), **options))


def test_bootstrap_interval():
    from visdepth.experiments.reasoning.summary import interval

    same = interval([1.0] * 5, resamples=100, level=0.95, seed=0)
    assert same.mean == same.low == same.high == 1.0 and same.n == 5
    values = [1.0] * 30 + [0.0] * 20 + [None]
    iv = interval(values, resamples=200, level=0.95, seed=0)
    assert iv.n == 50 and iv.mean == pytest.approx(0.6) and iv.low < 0.6 < iv.high
    assert interval(values, resamples=200, level=0.95, seed=0) == iv  # seeded
    assert interval([None], resamples=10, level=0.95, seed=0).mean is None
