"""Scoring per task kind, comparison with the full model, aggregation, mixed manifests and missing answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.tasks import get_task


def _sample(**kw) -> Sample:
    return Sample(id=kw.pop("id", "s"), images=["skimage:coffee"], prompt=kw.pop("prompt", "Q?"), **kw)


@pytest.fixture(scope="module")
def photos():
    task = get_task("photos")
    return task, {s.id: s for s in task.load()}


def test_single_token_scores(photos):
    task, s = photos
    suit = s["photos-astronaut-suit"]
    assert task.score(suit, " Orange") == {"accuracy": 1.0, "exact_match": 1.0}
    assert task.score(suit, "Orange, with a US flag.") == {"accuracy": 1.0, "exact_match": 0.0}
    assert task.score(suit, "White") == {"accuracy": 0.0, "exact_match": 0.0}
    assert list(task.score(suit, "x")) == ["accuracy", "exact_match"]  # main score first


def test_multiple_choice_from_letters_and_text(photos):
    task, s = photos
    cat = s["photos-chelsea-animal"]  # answer "cat" = B
    assert task.choice_letters(cat) == ["A", "B", "C", "D"]
    lps = {"A": math.log(0.2), "B": math.log(0.5), "C": math.log(0.2), "D": math.log(0.1)}
    out = task.score(cat, "", choice_logprobs=lps)
    assert out == {"accuracy": 1.0, "accuracy_logprob": 1.0, "answer_logprob": pytest.approx(math.log(0.5))}
    wrong = {**lps, "A": 0.0}
    both = task.score(cat, "B", choice_logprobs=wrong)
    assert both["accuracy"] == 0.0 and both["accuracy_text"] == 1.0  # the letters' log-probs decide
    assert task.score(cat, "(B) cat") == {"accuracy": 1.0, "accuracy_text": 1.0}
    assert task.score(cat, "It is a cat.")["accuracy"] == 1.0
    assert task.score(cat, "D")["accuracy"] == 0.0
    assert "answer_logprob" not in task.score(cat, "", choice_logprobs={**lps, "B": -math.inf})
    with pytest.raises(ConfigError, match="lack letters"):
        task.score(cat, "", choice_logprobs={"A": 0.0})
    letter_answer = _sample(choices=["red", "blue"], answer="B", task="multiple_choice")
    assert task.score(letter_answer, "B")["accuracy"] == 1.0


def test_exact_match_with_aliases_vqa_and_relaxed(photos):
    task, s = photos
    building = s["photos-china-building"]  # answer pagoda, aliases tower / temple
    assert task.score(building, "A temple.") == {"exact_match": 1.0}
    assert task.score(building, "palace") == {"exact_match": 0.0}
    vqa = _sample(answer="2", task="exact_match", meta={"answers": ["2"] * 3 + ["3"] * 7})
    assert get_task("vqav2").score(vqa, "two") == {"vqa_accuracy": pytest.approx(0.9), "exact_match": 1.0}
    assert get_task("vqav2").score(vqa, "3")["vqa_accuracy"] == 1.0
    chart = _sample(answer="100", task="exact_match")
    assert get_task("chartqa").score(chart, "104.9") == {"relaxed_accuracy": 1.0, "exact_match": 0.0}
    assert get_task("chartqa").score(chart, "106")["relaxed_accuracy"] == 0.0


def test_caption_scores(photos, encoder):
    task, s = photos
    rocket = s["photos-rocket-caption"]
    ref = rocket.references[1]
    out = task.score(rocket, ref, encoder=encoder)
    assert list(out) == ["rougeL", "bleu", "similarity"]
    assert out["rougeL"] == pytest.approx(1.0) and out["bleu"] == pytest.approx(100.0)
    assert out["similarity"] == pytest.approx(1.0, abs=1e-5)
    off = task.score(rocket, "A bowl of soup on a wooden table.", encoder=encoder)
    assert off["rougeL"] < 0.5 and off["similarity"] < 0.5
    assert "similarity" not in task.score(rocket, ref)
    one_ref = _sample(answer="a cup of coffee", task="caption")  # the answer is the reference
    assert task.score(one_ref, "a cup of coffee")["rougeL"] == pytest.approx(1.0)


def test_reasoning_scores(photos):
    task, s = photos
    wheels = s["photos-motorcycle-wheels"]  # answer "2"
    out = task.score(wheels, "A motorcycle has a front and a back wheel. So the answer is two.")
    assert out == {"answer_accuracy": 1.0, "answer_found": 1.0}
    assert task.score(wheels, "It has wheels.") == {"answer_accuracy": 0.0, "answer_found": 0.0}
    assert task.score(wheels, "Answer: 3")["answer_accuracy"] == 0.0
    with_ref = _sample(answer="1", task="reasoning", meta={"reasoning": "objects are red circle."})
    scored = task.score(with_ref, "objects are red circle. the answer is 1")
    assert scored["reasoning_rougeL"] == pytest.approx(1.0) and scored["answer_accuracy"] == 1.0
    mc = _sample(answer="cat", choices=["dog", "cat"], task="reasoning")
    assert "B. cat" in task.prompt(mc)
    assert task.score(mc, "Whiskers. The answer is (B).")["answer_accuracy"] == 1.0
    assert task.score(mc, "Whiskers. The answer is cat.")["answer_accuracy"] == 1.0


def test_open_samples_are_unscored_but_comparable(encoder):
    task = get_task("photos")
    free = _sample(prompt="Tell me about it.")
    assert free.kind == "open" and task.score(free, "anything") == {}
    out = task.compare(free, "A cup of coffee on a saucer.", "A cup of coffee on a saucer.", encoder=encoder)
    assert out["similarity"] == pytest.approx(1.0, abs=1e-5) and out["identical"] == 1.0
    assert out["rougeL"] == pytest.approx(1.0) and out["bleu"] == pytest.approx(100.0)


def test_compare_with_full_model(photos):
    task, s = photos
    assert task.compare(s["photos-astronaut-suit"], "Orange.", "orange")["agreement"] == 1.0
    assert task.compare(s["photos-astronaut-suit"], "Orange.", "orange")["identical"] == 0.0
    assert task.compare(s["photos-chelsea-animal"], "B", "(B) cat")["agreement"] == 1.0
    assert task.compare(s["photos-chelsea-animal"], "B", "A")["agreement"] == 0.0
    cot = task.compare(
        s["photos-hopper-branch"], "Gold braid. The answer is navy.", "Blue suit. The answer is Navy."
    )
    assert cot["answer_agreement"] == 1.0 and cot["reasoning_rougeL"] < 1.0
    cap = task.compare(s["photos-flower-caption"], "An orange flower.", "")
    assert cap["rougeL"] == 0.0 and cap["bleu"] == 0.0


def test_aggregate_by_kind(photos):
    task, s = photos
    samples = [s["photos-astronaut-suit"], s["photos-hopper-glasses"], s["photos-rocket-caption"]]
    preds = ["orange", "no", s["photos-rocket-caption"].references[0]]
    scores = [task.score(x, p) for x, p in zip(samples, preds, strict=True)]
    agg = task.aggregate(samples, scores, preds)
    assert agg["single_token"] == {"n": 2.0, "accuracy": 0.5, "exact_match": 0.5}
    assert agg["caption"]["bleu"] == pytest.approx(100.0) and agg["caption"]["n"] == 1.0
    assert agg["caption"]["bleu_sentence"] == pytest.approx(100.0) and "bleu_corpus" not in agg["caption"]
    with pytest.raises(ValueError):
        task.aggregate(samples, scores[:1])


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_mixed_manifest_groups_samples_by_kind(tmp_path, encoder):
    rows = [
        {
            "id": "st",
            "image": "skimage:astronaut",
            "prompt": "Suit colour?",
            "answer": "orange",
            "task": "single_token",
        },
        {
            "id": "mc",
            "image": "skimage:chelsea",
            "prompt": "Animal?",
            "choices": ["dog", "cat"],
            "answer": "B",
        },
        {"id": "em", "image": "skimage:coffee", "prompt": "Object?", "answer": "spoon"},
        {
            "id": "cap",
            "image": "skimage:rocket",
            "prompt": "Describe.",
            "references": ["a rocket", "a launch pad"],
        },
        {
            "id": "cot",
            "image": "skimage:coffee",
            "prompt": "Count cups. Think.",
            "answer": "1",
            "task": "reasoning",
        },
        {"id": "free", "image": "skimage:coffee", "prompt": "Anything?"},
    ]
    path = _write(tmp_path / "mixed.jsonl", rows)
    for name in (f"local:{path}", str(path)):
        task = get_task(name)
        assert task.kind == "mixed" and task.name == f"local:{path}"
        samples = task.load()
        groups = task.group(samples)
        assert list(groups) == [
            "single_token",
            "multiple_choice",
            "exact_match",
            "caption",
            "reasoning",
            "open",
        ]
        assert {k: [x.id for x in v] for k, v in groups.items()}["caption"] == ["cap"]
    preds = {
        "st": "Orange",
        "mc": "B",
        "em": "a spoon",
        "cap": "a rocket",
        "cot": "One cup. The answer is 1.",
        "free": "?",
    }
    for kind, group in groups.items():
        view = task.for_kind(kind)
        assert view.kind == kind and view.max_new_tokens == task.max_new_tokens_for(kind)
        for x in group:
            scores = view.score(x, preds[x.id], encoder=encoder)
            assert all(v == pytest.approx(1.0) or k == "bleu" for k, v in scores.items()), (x.id, scores)
    with pytest.raises(ConfigError, match="is a caption task"):
        get_task("flickr8k").for_kind("reasoning")


def test_shapes_mixed_task_scores_its_own_targets():
    pytest.importorskip("visdepth.data.shapes")
    task = get_task("shapes:test")
    samples = task.load(limit=13)
    groups = task.group(samples)
    assert set(groups) == {"single_token", "multiple_choice", "exact_match", "caption", "reasoning"}
    for s in samples:
        target = s.meta.get("target") or (s.references[0] if s.references else s.answer)
        main = next(iter(task.score(s, target).values()))
        assert main == pytest.approx(1.0), (s.id, target)


def test_missing_answers_name_the_rows_and_the_fix(tmp_path):
    rows = [
        {"image": "skimage:coffee", "prompt": "Object?", "answer": "spoon"},
        {"image": "skimage:coffee", "prompt": "What?", "task": "exact_match"},
        {"image": "skimage:coffee", "prompt": "Object?", "answer": "cup"},
        {"image": "skimage:coffee", "prompt": "What else?", "task": "exact_match"},
    ]
    path = _write(tmp_path / "manifest.jsonl", rows)
    task = get_task(f"local:{path}")
    with pytest.raises(ConfigError) as err:
        task.load()
    assert str(err.value) == (
        f"task 'local:{path}' needs answers but {path} lines 2, 4 have none; add an 'answer' field."
    )
    vqa = get_task("vqav2")
    hub_like = [_sample(id="vqav2-7", task="exact_match"), _sample(id="vqav2-9", task="exact_match")]
    with pytest.raises(
        ConfigError, match=r"task 'vqav2' needs answers but samples 'vqav2-7', 'vqav2-9' have none"
    ):
        vqa.check(hub_like)
    with pytest.raises(ConfigError, match="needs answers"):
        vqa.score(hub_like[0], "2")
    cap = _sample(id="c", task="caption")
    with pytest.raises(ConfigError, match=r"sample 'c' has none; add a 'references' list"):
        get_task("flickr8k").check([cap])
    with pytest.raises(ConfigError, match="BLINK's test answers are hidden"):
        get_task("blink").check([_sample(id="b", choices=["x", "y"], task="multiple_choice")])
    with pytest.raises(ConfigError, match="no choices"):
        get_task("blink").check([_sample(id="b", answer="x")])
    with pytest.raises(ConfigError, match="limit"):
        get_task("photos").load(limit=0)
