"""Tasks and data sets are one namespace: one lookup (``resolve``) for every name a user may give."""

from __future__ import annotations

import pytest

from visdepth.data import DATASETS, Sample, get_dataset, register_dataset, write_manifest
from visdepth.errors import ConfigError, NameCollisionError, UnknownNameError
from visdepth.tasks import TASKS, Task, catalog, get_task, register_task, resolve, resolve_all


def _loader(split=None, limit=None):
    return [
        Sample(id=f"{split}-{i}", images=["skimage:camera"], prompt="What is this?", answer="camera")
        for i in range(limit or 3)
    ]


def test_task_data_set_and_manifest_names_all_resolve(tmp_path):
    assert resolve("vqav2").answer_metric == "vqa_accuracy"  # a task (hub data, not loaded here)
    assert resolve("blink:val").split == "val"
    photos = resolve("photos")  # a data set that has a task built on it: that task
    assert photos is TASKS.get("photos") and photos.dataset == "photos"
    assert [s.id for s in photos.load(limit=2)] == [s.id for s in get_dataset("photos", limit=2)]
    assert resolve("shapes:train").split == "train"
    path = write_manifest(get_dataset("photos", limit=2), tmp_path / "mine.jsonl")
    for name in (str(path), f"local:{path}"):
        task = resolve(name)
        assert task.kind == "mixed" and task.source == str(path)
        assert len(task.load()) == 2
    assert get_task("photos") is photos  # the old name of the lookup


def test_a_plain_data_set_is_a_mixed_task_and_a_task_is_a_data_set():
    register_dataset("toyset", _loader, description="toys", splits=("a", "b"))
    try:
        task = resolve("toyset:b")
        assert task.kind == "mixed" and task.dataset == "toyset" and task.description == "toys"
        assert [s.id for s in task.load(limit=2)] == ["b-0", "b-1"]
        assert "toyset" in catalog() and "photos" in catalog() and "vqav2" in catalog()
    finally:
        DATASETS.unregister("toyset")
    register_task(Task("toytask", "exact_match", loader=_loader, splits=("x",)))
    try:
        # get_dataset takes every name of the namespace, unchecked
        assert [s.id for s in get_dataset("toytask", limit=1)] == ["x-0"]
    finally:
        TASKS.unregister("toytask")


def test_unknown_name_suggests_the_closest_on_one_line():
    for wrong, near in (
        ("vqa2", "vqav2"),
        ("fotos", "photos"),
        ("shpes:train", "shapes:train"),
        ("Blink", "blink"),
    ):
        with pytest.raises(UnknownNameError) as err:
            resolve(wrong)
        msg = str(err.value)
        assert msg.startswith(f"unknown task {wrong!r}; did you mean {near}")
        assert "local:<path.jsonl>" in msg and "`visdepth datasets`" in msg and "\n" not in msg
    with pytest.raises(UnknownNameError, match="use one of photos, shapes, blink"):
        resolve("zzz")
    with pytest.raises(ConfigError, match="unknown data set 'fotos'; did you mean photos"):
        get_dataset("fotos")  # the data entry point answers the same way, in its own word


def test_a_name_in_both_must_be_the_same_thing():
    register_dataset("lonely", _loader)
    try:
        with pytest.raises(NameCollisionError, match="task 'lonely'.*collides with the data set 'lonely'"):
            register_task(Task("lonely", "caption", loader=_loader))
        assert "lonely" not in TASKS
    finally:
        DATASETS.unregister("lonely")
    with pytest.raises(NameCollisionError, match="task 'photos' is already registered"):
        register_task(Task("photos", "caption", loader=_loader))
    with pytest.raises(NameCollisionError, match="data set 'blink'.*collides with the task 'blink'"):
        register_dataset("blink", _loader)
    with pytest.raises(NameCollisionError, match="task 'vqav2' is already registered"):
        register_task(Task("vqav2", "caption", loader=_loader))
    assert "blink" not in DATASETS and TASKS.get("photos").kind == "mixed"
    # a task built on a data set may share its name, whichever registers first
    register_task(Task("twin", "exact_match", dataset="twin", loader=_loader))
    try:
        register_dataset("twin", _loader)
        assert resolve("twin").kind == "exact_match"
    finally:
        DATASETS.unregister("twin")
        TASKS.unregister("twin")


def test_resolve_all_reads_a_tasks_list():
    tasks = resolve_all("photos, shapes:train,photos")
    assert list(tasks) == ["photos", "shapes:train"]
    assert list(resolve_all(["vqav2", "blink"])) == ["vqav2", "blink"]
    with pytest.raises(ConfigError, match="no task given"):
        resolve_all(" , ")
    with pytest.raises(ConfigError, match="task name is empty"):
        resolve("  ")
