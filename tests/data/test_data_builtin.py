"""The built-in data sets, the registry behind get_dataset, and built-in image references."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visdepth.data import (
    TASK_KINDS,
    Sample,
    available_datasets,
    get_dataset,
    list_datasets,
    load_image,
    register_dataset,
    write_manifest,
)
from visdepth.data.builtin import DATASETS
from visdepth.data.images import MATPLOTLIB_NAMES, SKIMAGE_NAMES, SKLEARN_NAMES, to_rgb
from visdepth.errors import ConfigError, InputError


def test_photos_load_with_all_images():
    samples = get_dataset("photos")
    assert 8 <= len(samples) <= 12
    assert len({s.id for s in samples}) == len(samples)
    kinds = {s.kind for s in samples}
    # Every output structure of the study is represented.
    assert {"single_token", "multiple_choice", "exact_match", "caption", "reasoning"} <= kinds
    for s in samples:
        images = s.load_images()
        assert len(images) == len(s.images) >= 1
        for im in images:
            assert isinstance(im, Image.Image) and im.mode == "RGB" and min(im.size) >= 64
        assert s.origin is not None and s.origin.startswith("photos.jsonl line ")
        if s.kind == "multiple_choice":
            assert s.answer_index is not None
        if s.kind == "caption":
            assert s.references and len(s.references) >= 2


def test_limit_takes_the_first_n():
    full = get_dataset("photos")
    assert [s.id for s in get_dataset("photos", limit=3)] == [s.id for s in full[:3]]
    assert len(get_dataset("photos", limit=1000)) == len(full)
    with pytest.raises(ConfigError, match="limit"):
        get_dataset("photos", limit=0)


def test_unknown_name_lists_available():
    with pytest.raises(ConfigError) as exc:
        get_dataset("fotos")
    assert "photos" in str(exc.value) and "manifest" in str(exc.value)
    with pytest.raises(ConfigError, match="no splits"):
        get_dataset("photos:test")


def test_registry_supports_splits(tmp_path):
    calls = []

    def load(split=None, limit=None):
        calls.append((split, limit))
        n = limit or 5
        return [
            Sample(id=f"{split}-{i}", images=["skimage:camera"], prompt="What is this?") for i in range(n)
        ]

    register_dataset("toy", load, splits=("train", "test"), default_split="test")
    try:
        assert "toy:train" in available_datasets() and "toy:test" in available_datasets()
        assert list_datasets()["toy"].default_split == "test"
        assert [s.id for s in get_dataset("toy:train", limit=2)] == ["train-0", "train-1"]
        assert get_dataset("toy")[0].id == "test-0"
        assert calls == [("train", 2), ("test", None)]
        with pytest.raises(ConfigError, match="toy:train"):
            get_dataset("toy:val")
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("toy", load)
    finally:
        DATASETS.unregister("toy")


def test_path_goes_to_manifest(tmp_path):
    path = write_manifest(get_dataset("photos", limit=2), tmp_path / "photos.jsonl")
    # A file path wins over the registered name it happens to share.
    assert [s.id for s in get_dataset(path)] == [s.id for s in get_dataset("photos", limit=2)]
    assert len(get_dataset(str(path), limit=1)) == 1


@pytest.mark.parametrize(
    "ref",
    [f"skimage:{n}" for n in SKIMAGE_NAMES]
    + [f"sklearn:{n}" for n in SKLEARN_NAMES]
    + [f"matplotlib:{n}" for n in MATPLOTLIB_NAMES],
)
def test_every_listed_builtin_image_loads_offline(ref):
    im = load_image(ref)
    assert im.mode == "RGB" and im.size[0] > 16 and im.size[1] > 16


def test_builtin_aliases_and_errors():
    assert load_image("sklearn:china").size == load_image("sklearn:china.jpg").size
    with pytest.raises(InputError, match="skimage:astronaut"):
        load_image("skimage:astronot")


def test_to_rgb_handles_array_kinds():
    assert to_rgb(np.zeros((4, 5), bool)).size == (5, 4)
    assert to_rgb(np.ones((4, 5), np.float64)).getpixel((0, 0)) == (255, 255, 255)
    assert to_rgb(np.full((4, 5), 65535, np.uint16)).getpixel((0, 0)) == (255, 255, 255)
    rgba = np.zeros((4, 5, 4), np.uint8)  # fully transparent: shown over white
    assert to_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(InputError, match="shape"):
        to_rgb(np.zeros((2, 3, 4, 5), np.uint8))


def test_task_kinds_documented():
    assert set(TASK_KINDS) == {
        "single_token",
        "multiple_choice",
        "exact_match",
        "caption",
        "reasoning",
        "open",
    }
