"""Prompt rendering, generation budgets, the registry and its errors, and task descriptions for results."""

from __future__ import annotations

import json

import pytest

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.metrics.output import split_reasoning
from visdepth.tasks import (
    DEFAULT_FORMAT,
    DEFAULT_MAX_NEW_TOKENS,
    SHORT_ANSWER_FORMAT,
    PromptFormat,
    Task,
    available_tasks,
    get_task,
)

MC = Sample(
    id="mc",
    images=["skimage:chelsea"],
    prompt="Which animal is shown?",
    choices=["dog", "cat", "fox"],
    answer="cat",
)


def test_multiple_choice_prompt_default_format():
    assert get_task("photos").prompt(MC) == (
        "Which animal is shown?\nA. dog\nB. cat\nC. fox\nAnswer with the option's letter from the given choices directly."
    )


def test_prompt_format_options_and_no_duplicate_instruction():
    fmt = PromptFormat(
        "paren",
        choice_template="({label}) {choice}",
        separator=" ",
        instructions={"multiple_choice": "Pick one."},
    )
    assert fmt.render(MC) == "Which animal is shown? (A) dog (B) cat (C) fox Pick one."
    already = MC.model_copy(update={"prompt": "Which animal is shown? Pick one."})
    assert fmt.render(already) == "Which animal is shown? Pick one. (A) dog (B) cat (C) fox"
    vqa = Sample(id="q", images=["skimage:coffee"], prompt="What is on the saucer?", answer="spoon")
    assert (
        SHORT_ANSWER_FORMAT.render(vqa)
        == "What is on the saucer?\nAnswer the question using a single word or phrase."
    )
    assert DEFAULT_FORMAT.render(vqa) == "What is on the saucer?"
    with pytest.raises(ConfigError, match="unknown kinds"):
        PromptFormat("bad", instructions={"mcq": "x"})
    with pytest.raises(ConfigError, match="format string"):
        PromptFormat("bad", choice_template="{letter}. {choice}")


def test_shapes_prompts_match_the_format_the_reference_model_learned():
    shapes = pytest.importorskip("visdepth.data.shapes")
    task = get_task("shapes")
    samples = task.load(limit=26)
    mcs = [s for s in samples if s.kind == "multiple_choice"]
    assert mcs
    for s in samples:
        expected = shapes.format_choices(s.prompt, s.choices) if s.choices else s.prompt
        assert task.prompt(s) == expected
    for s in samples:
        if s.kind == "reasoning":
            target = s.meta["target"]
            assert task.score(s, target)["answer_accuracy"] == 1.0
            assert tuple(split_reasoning(target, task.answer_pattern)) == shapes.parse_cot(target)


def test_max_new_tokens_per_kind():
    photos = get_task("photos")
    assert photos.max_new_tokens == max(DEFAULT_MAX_NEW_TOKENS.values())
    assert photos.max_new_tokens_for(MC) == DEFAULT_MAX_NEW_TOKENS["multiple_choice"]
    assert photos.for_kind("caption").max_new_tokens == DEFAULT_MAX_NEW_TOKENS["caption"]
    assert get_task("vqav2").max_new_tokens == 16
    assert Task("t", "caption", max_new_tokens=7).max_new_tokens == 7
    assert Task("t", "mixed", max_new_tokens={"reasoning": 99}).max_new_tokens_for("reasoning") == 99
    with pytest.raises(ConfigError, match="max_new_tokens"):
        Task("t", "caption", max_new_tokens={"caption": 0})


def test_registry_names_splits_and_errors(tmp_path):
    names = available_tasks()
    for n in ("photos", "shapes", "shapes:train", "blink", "blink:val", "flickr8k", "chartqa", "vqav2"):
        assert n in names
    assert get_task("shapes:train").split == "train"
    assert get_task("blink").describe()["split"] == "val"
    with pytest.raises(ConfigError) as err:
        get_task("vqa2")
    msg = str(err.value)
    assert "unknown task 'vqa2'; did you mean vqav2" in msg and "local:<path.jsonl>" in msg
    assert "\n" not in msg and "visdepth datasets" in msg
    with pytest.raises(ConfigError, match="no split 'dev'.*shapes:test"):
        get_task("shapes:dev")
    with pytest.raises(ConfigError, match="has no splits"):
        get_task("photos:train")
    with pytest.raises(ConfigError, match="names no manifest"):
        get_task("local:")
    with pytest.raises(ConfigError, match="unknown"):
        Task("t", "vqa")
    with pytest.raises(ConfigError, match="answer metric"):
        Task("t", "exact_match", answer_metric="f1")
    with pytest.raises(ConfigError, match="no group"):
        Task("t", "reasoning", answer_pattern="answer")


def test_describe_is_json_ready_and_records_prompt_format():
    d = get_task("vqav2").describe()
    assert json.loads(json.dumps(d)) == d
    assert d["kind"] == "exact_match" and d["group"] == "short_answer"
    assert d["source"] == "lmms-lab/VQAv2" and d["split"] == "validation"
    assert d["answer_metric"] == "vqa_accuracy" and d["scores"]["exact_match"][0] == "vqa_accuracy"
    assert (
        d["prompt_format"]["instructions"]["exact_match"]
        == "Answer the question using a single word or phrase."
    )
    assert d["max_new_tokens"] == {"exact_match": 16}
    mixed = get_task("photos").describe()
    assert set(mixed["max_new_tokens"]) == set(DEFAULT_MAX_NEW_TOKENS) and mixed["group"] is None


def test_other_data_sets_become_mixed_tasks():
    from visdepth.data import builtin

    def loader(split=None, limit=None):
        return [MC.model_copy(update={"id": f"{split}-{i}"}) for i in range(3)]

    builtin.register_dataset("extra", loader, description="a test set", splits=("dev", "eval"))
    try:
        assert "extra:eval" in available_tasks()
        task = get_task("extra:eval")
        assert task.kind == "mixed" and task.source == "visdepth.data:extra"
        assert task.description == "a test set"
        assert [s.id for s in task.load(limit=2)] == ["eval-0", "eval-1"]
        assert [s.id for s in get_task("extra").load()] == ["dev-0", "dev-1", "dev-2"]
    finally:
        builtin.DATASETS.unregister("extra")
