"""Hub benchmarks offline: row converters on hand-made rows that mimic each data set's schema, the image cache,
and the loaders' plumbing through a stand-in for ``datasets.load_dataset``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visdepth.errors import InputError, VisdepthError
from visdepth.tasks import get_task, hub


def _pil(colour=(200, 30, 30), size=(12, 10)) -> Image.Image:
    return Image.new("RGB", size, colour)


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    _pil((10, 120, 200), (16, 16)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def images(tmp_path) -> hub.ImageCache:
    return hub.ImageCache(tmp_path / "cache")


def test_blink_row(images):
    row = {
        "idx": "val_Visual_Similarity_1",
        "question": "Which image is most similar to the reference image?",
        "sub_task": "Visual_Similarity",
        "image_1": _pil(),
        "image_2": _pil((0, 255, 0)),
        "image_3": None,
        "image_4": None,
        "choices": ["The second image", "The third image"],
        "answer": "(B)",
        "prompt": "Which image is most similar ...? Select from the following choices. (A) ... (B) ...",
        "explanation": "",
    }
    s = hub.blink_row_to_sample(row, 0, images=images)
    assert s.id == "blink-val_Visual_Similarity_1" and s.kind == "multiple_choice"
    assert s.answer == "B" and s.answer_index == 1 and s.choices == row["choices"]
    assert s.prompt == row["question"] and s.meta["subtask"] == "Visual_Similarity"
    assert [Path(p).name for p in s.images] == [
        "val_Visual_Similarity_1_1.png",
        "val_Visual_Similarity_1_2.png",
    ]
    assert [im.getpixel((0, 0)) for im in s.load_images()] == [(200, 30, 30), (0, 255, 0)]
    task = get_task("blink")
    assert task.prompt(s).splitlines()[1:3] == ["A. The second image", "B. The third image"]
    assert task.score(s, "B")["accuracy"] == 1.0
    hidden = hub.blink_row_to_sample({**row, "idx": "test_1", "answer": ""}, 1, images=images, split="test")
    assert hidden.answer is None
    with pytest.raises(InputError, match="no image_1"):
        hub.blink_row_to_sample({**row, "image_1": None, "image_2": None}, 2, images=images)


def test_flickr8k_row_keeps_jpeg_bytes_and_five_references(images):
    data = _jpeg_bytes()
    row = {"image": {"bytes": data, "path": "1000268201_693b08cb0e.jpg"}}
    row.update({f"caption_{k}": f"A child in a pink dress climbs stairs {k} ." for k in range(5)})
    s = hub.flickr8k_row_to_sample(row, 0, images=images)
    assert s.id == "flickr8k-1000268201_693b08cb0e" and s.kind == "caption"
    assert len(s.references) == 5 and s.prompt == hub.CAPTION_PROMPT
    assert s.images[0].endswith("1000268201_693b08cb0e.jpg")
    assert Path(s.images[0]).read_bytes() == data  # written verbatim, not re-compressed
    no_path = hub.flickr8k_row_to_sample({**row, "image": _pil()}, 7, images=images, split="validation")
    assert no_path.id == "flickr8k-validation-00007"
    assert get_task("flickr8k").score(s, row["caption_3"])["rougeL"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="caption_0"):
        hub.flickr8k_row_to_sample({"image": _pil()}, 0, images=images)


def test_chartqa_rows_of_both_schemas(images):
    lmms = {
        "type": "human_test",
        "question": "What is the value of Lamb in 2019?",
        "answer": "103.7",
        "image": _pil(),
    }
    s = hub.chartqa_row_to_sample(lmms, 3, images=images)
    assert s.id == "chartqa-test-00003" and s.kind == "exact_match" and s.answer == "103.7"
    assert s.meta["type"] == "human_test"
    task = get_task("chartqa")
    assert (
        task.prompt(s)
        == "What is the value of Lamb in 2019?\nAnswer the question using a single word or phrase."
    )
    assert task.score(s, "100")["relaxed_accuracy"] == 1.0
    m4 = {
        "query": "Which year is highest?",
        "label": ["2019", "2019.0"],
        "human_or_machine": 1,
        "image": _pil(),
    }
    t = hub.chartqa_row_to_sample(m4, 0, images=images, split="val")
    assert t.answer == "2019" and t.meta["aliases"] == ["2019.0"] and t.meta["type"] == "1"


def test_vqav2_row_soft_accuracy_and_shared_image(images):
    humans = ["2"] * 8 + ["3", "two"]
    row = {
        "question_type": "how many",
        "multiple_choice_answer": "2",
        "answers": [
            {"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(humans)
        ],
        "image_id": 262148,
        "answer_type": "number",
        "question_id": 262148000,
        "question": "How many players are visible?",
        "image": _pil(),
    }
    s = hub.vqav2_row_to_sample(row, 0, images=images)
    assert s.id == "vqav2-262148000" and s.answer == "2" and s.meta["answers"] == humans
    assert s.meta["image_id"] == 262148 and s.meta["answer_type"] == "number"
    task = get_task("vqav2")
    assert task.score(s, "Two")["vqa_accuracy"] == 1.0
    assert task.score(s, "3")["vqa_accuracy"] == pytest.approx(0.3)
    # a second question on the same COCO image reuses its file; answers may come as a dict of lists
    other = {
        **row,
        "question_id": 262148001,
        "answers": {"answer": ["yes"] * 10},
        "multiple_choice_answer": None,
    }
    t = hub.vqav2_row_to_sample(other, 1, images=images)
    assert t.images == s.images and t.answer == "yes" and t.meta["answers"] == ["yes"] * 10


def test_image_cache(images, tmp_path, monkeypatch):
    p = images.save("x/../weird name", _pil())
    assert Path(p).is_file() and Path(p).is_relative_to(images.folder) and Path(p).name == "weird_name.png"
    monkeypatch.setattr(hub.ImageCache, "_write", lambda *a: pytest.fail("rewrote a cached image"))
    assert images.save("x/../weird name", _pil((0, 0, 0))) == p  # already there: kept
    monkeypatch.undo()
    arr = images.save("arr", np.zeros((4, 5, 3), dtype=np.uint8))
    assert Image.open(arr).size == (5, 4)
    local = tmp_path / "given.png"
    _pil().save(local)
    assert images.save("k", {"bytes": None, "path": str(local)}) == str(local)
    with pytest.raises(InputError, match="cannot be read"):
        images.save("bad", {"bytes": b"not an image", "path": None})
    with pytest.raises(InputError, match="neither bytes"):
        images.save("none", {"bytes": None, "path": "/no/such/file.jpg"})


# --- loaders through a stand-in for datasets.load_dataset ----------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []
    tables = {}

    def load_dataset(path, name=None, *, split, streaming=False):
        calls.append({"path": path, "name": name, "split": split, "streaming": streaming})
        ds = tables[(path, name)]
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return datasets, tables, calls


def test_chartqa_loader_end_to_end(fake_hub, tmp_path):
    datasets, tables, calls = fake_hub
    features = datasets.Features(
        {"type": datasets.Value("string"), "question": datasets.Value("string"),
         "answer": datasets.Value("string"), "image": datasets.Image()}
    )  # fmt: skip
    rows = [
        {"type": "human_test", "question": f"Q{i}?", "answer": str(i), "image": _pil((i, 0, 0))}
        for i in range(3)
    ]
    tables[(hub.CHARTQA_ID, None)] = datasets.Dataset.from_list(rows, features=features)
    task = get_task("chartqa")
    samples = task.load(limit=2, cache=tmp_path)
    assert calls[-1] == {"path": "lmms-lab/ChartQA", "name": None, "split": "test", "streaming": True}
    assert [s.answer for s in samples] == ["0", "1"]
    assert samples[1].load_images()[0].getpixel((0, 0)) == (1, 0, 0)
    assert Path(samples[0].images[0]).is_relative_to(tmp_path)
    everything = task.load(cache=tmp_path)
    assert len(everything) == 3 and calls[-1]["streaming"] is False


def test_blink_loader_interleaves_subtasks(fake_hub, tmp_path):
    datasets, tables, calls = fake_hub
    for sub in ("Counting", "Jigsaw"):
        rows = [
            {"idx": f"val_{sub}_{i}", "sub_task": sub, "question": "?", "choices": ["a", "b"], "answer": "(A)",
             "image_1": _pil(), "image_2": None, "image_3": None, "image_4": None}
            for i in range(3)
        ]  # fmt: skip
        tables[(hub.BLINK_ID, sub)] = datasets.Dataset.from_list(rows)
    samples = hub.load_blink("val", 3, subtasks=["Counting", "Jigsaw"], cache=tmp_path)
    assert [s.id for s in samples] == ["blink-val_Counting_0", "blink-val_Jigsaw_0", "blink-val_Counting_1"]
    assert {c["name"] for c in calls} == {"Counting", "Jigsaw"}
    with pytest.raises(VisdepthError, match="unknown BLINK subtasks"):
        hub.load_blink("val", 1, subtasks=["Depth"])


def test_loader_errors(monkeypatch, fake_hub):
    datasets, _, _ = fake_hub

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(
        VisdepthError, match=r"could not read 'lmms-lab/VQAv2' split 'validation'.*local:<path"
    ):
        get_task("vqav2").load(limit=1)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(VisdepthError, match=r"pip install datasets.*visdepth\[datasets\]"):
        get_task("flickr8k").load(limit=1)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VISDEPTH_CACHE", str(tmp_path / "vc"))
    assert hub.cache_dir() == tmp_path / "vc"
    monkeypatch.delenv("VISDEPTH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "visdepth"
