"""Manifest reading: every malformed row names its file and line; relative paths, ids, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from visdepth.data import Sample, load_images, load_manifest, write_manifest
from visdepth.errors import InputError, ManifestError


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "imgs" / "red.png")
    Image.new("L", (8, 8), 128).save(tmp_path / "gray.png")
    return tmp_path


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"image": "imgs/red.png", "prompt": "What colour?", "answer": "red"}'


def test_relative_paths_resolve_against_manifest_folder(folder, monkeypatch):
    path = _write(
        folder / "data.jsonl",
        [
            "# a comment",
            "",
            GOOD,
            '{"id": "two", "images": ["gray.png", "skimage:coffee"], "prompt": "Compare them."}',
        ],
    )
    monkeypatch.chdir("/")  # resolution must not depend on the working directory
    samples = load_manifest(path)
    assert [s.id for s in samples] == ["data-3", "two"]
    assert samples[0].images == [str(folder / "imgs" / "red.png")]
    assert samples[1].images[1] == "skimage:coffee"
    assert samples[0].origin == f"{path} line 3"
    ims = load_images(samples[1])
    assert [im.mode for im in ims] == ["RGB", "RGB"] and ims[0].size == (8, 8)
    assert samples[0].kind == "exact_match" and samples[1].kind == "open"


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ('{"image": "imgs/red.png", "prompt": "x"', "not valid JSON"),
        ('{"image": "imgs/red.png"}', '"prompt"'),
        ('{"image": "imgs/cat.png", "prompt": "x"}', "'imgs/cat.png' not found"),
        ('{"image": "imgs/red.png", "prompt": 3}', "must be a string"),
        ('{"prompt": "x"}', "no image"),
        ('{"image": "imgs/red.png", "images": ["gray.png"], "prompt": "x"}', "both"),
        ('{"image": "imgs/red.png", "prompt": "x", "task": "vqa"}', "task 'vqa'"),
        ('{"image": "imgs/red.png", "prompt": "x", "promt": "y"}', 'unknown key "promt"'),
        ('{"image": "imgs/red.png", "prompt": "x", "choices": ["a", "b"], "answer": "c"}', "neither"),
        ('{"image": "skimage:astronot", "prompt": "x"}', "skimage:astronaut"),
        ('["imgs/red.png", "x"]', "JSON object"),
        ('{"image": "imgs/red.png", "prompt": "x", "references": "a cat"}', "must be a list"),
    ],
)
def test_malformed_row_names_line(folder, bad, needle):
    path = _write(folder / "data.jsonl", ["# header", GOOD, bad, GOOD])
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    msg = str(exc.value)
    assert f"{path} line 3: " in msg, msg
    assert needle in msg, msg
    assert "; " in msg and "\n" not in msg  # one sentence: the problem, then the fix


def test_missing_image_message_gives_absolute_location(folder):
    path = _write(folder / "data.jsonl", ['{"image": "cat.png", "prompt": "x"}'])
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    assert str(exc.value) == (
        f"{path} line 1: image 'cat.png' not found (looked in {folder / 'cat.png'}); fix the path or remove the row."
    )


def test_duplicate_ids(folder):
    row = '{"id": "a", "image": "gray.png", "prompt": "x"}'
    path = _write(folder / "data.jsonl", [row, GOOD, row])
    with pytest.raises(ManifestError, match=r"line 3: id 'a' is already used on line 1"):
        load_manifest(path)


def test_default_id_clash_is_explained(folder):
    path = _write(folder / "d.jsonl", [GOOD, '{"id": "d-1", "image": "gray.png", "prompt": "x"}'])
    with pytest.raises(
        ManifestError, match=r"line 2: id 'd-1' is already used on line 1 \(as that row's default"
    ):
        load_manifest(path)


def test_missing_and_empty_manifest(folder):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(folder / "nope.jsonl")
    with pytest.raises(ManifestError, match="no samples"):
        load_manifest(_write(folder / "empty.jsonl", ["# nothing here"]))


def test_numbers_become_strings_and_bom_is_tolerated(folder):
    path = folder / "n.jsonl"
    path.write_text(
        '\ufeff{"id": 7, "image": "gray.png", "prompt": "How many?", "answer": 2}\n', encoding="utf-8"
    )
    (s,) = load_manifest(path)
    assert s.id == "7" and s.answer == "2"


def test_file_deleted_after_loading_raises_input_error(folder):
    path = _write(folder / "data.jsonl", [GOOD])
    (s,) = load_manifest(path)
    (folder / "imgs" / "red.png").unlink()
    with pytest.raises(InputError) as exc:
        s.load_images()
    assert "data.jsonl line 1" in str(exc.value) and "red.png" in str(exc.value)


def test_unreadable_image_raises_input_error(folder):
    (folder / "fake.png").write_text("not an image")
    s = Sample(id="x", images=[str(folder / "fake.png")], prompt="p")
    with pytest.raises(InputError, match="cannot be read"):
        s.load_images()


def test_write_then_load_round_trip(folder, tmp_path):
    samples = load_manifest(
        _write(
            folder / "data.jsonl",
            [
                GOOD,
                '{"id": "mc", "image": "skimage:chelsea", '
                '"prompt": "Animal?", "choices": ["dog", "cat"], '
                '"answer": "B", "meta": {"k": 1}}',
            ],
        )
    )
    out = write_manifest(samples, folder / "copy.jsonl")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["images"] == ["imgs/red.png"]  # portable: relative to the manifest's folder
    again = load_manifest(out)
    assert [s.model_dump() for s in again] == [s.model_dump() for s in samples]
    assert again[1].answer_index == 1 and again[1].kind == "multiple_choice"
    # A manifest written elsewhere keeps absolute paths.
    elsewhere = write_manifest(samples, tmp_path / "other" / "m.jsonl")
    assert load_manifest(elsewhere)[0].images == samples[0].images


def test_sample_validation():
    with pytest.raises(ValueError, match="choices"):
        Sample(id="x", images=["skimage:camera"], prompt="p", task="multiple_choice")
    with pytest.raises(ValueError):
        Sample(id="x", images=[], prompt="p")
    s = Sample(id="x", images=["skimage:camera"], prompt="p", choices=["a", "b", "c"], answer="(C)")
    assert s.answer_index == 2 and s.group == "single_token"


def _cut(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("kind", ["not_an_image", "cut_png", "cut_jpeg"])
def test_unreadable_image_is_found_when_the_manifest_is_read(folder, kind):
    from skimage import data

    photo = Image.fromarray(data.coffee()).resize((64, 48))
    if kind == "not_an_image":
        (folder / "bad.png").write_text("hello")
    elif kind == "cut_png":
        photo.save(folder / "bad.png")
        _cut(folder / "bad.png")
    else:
        photo.save(folder / "bad.png", format="JPEG")  # the suffix lies; Pillow reads the content
        _cut(folder / "bad.png")
    path = _write(folder / "data.jsonl", [GOOD, '{"image": "bad.png", "prompt": "What is it?"}'])
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    text = str(exc.value)
    assert "data.jsonl line 2" in text and "bad.png" in text and "replace it" in text
    assert ("not an image" in text) == (kind == "not_an_image")


def test_whole_images_pass_the_check(folder):
    from visdepth.data.images import image_file_problem

    Image.new("RGB", (30, 20), (0, 90, 0)).save(folder / "g.jpg")
    Image.new("RGB", (30, 20), (0, 90, 0)).save(folder / "g.gif")
    for name in ("imgs/red.png", "gray.png", "g.jpg", "g.gif"):
        assert image_file_problem(folder / name) is None


def test_folder_given_as_manifest_names_a_manifest_inside(folder):
    _write(folder / "data.jsonl", [GOOD])
    with pytest.raises(ManifestError) as exc:
        load_manifest(folder)
    text = str(exc.value)
    assert "is a folder" in text and "data.jsonl" in text and "visdepth datasets" in text


def test_folder_as_data_or_task_name(folder, monkeypatch):
    from visdepth.data import get_dataset
    from visdepth.tasks import get_task

    monkeypatch.chdir(folder)
    for name in ("imgs", "imgs/", str(folder / "imgs")):
        with pytest.raises(ManifestError, match="is a folder"):
            get_dataset(name)
        with pytest.raises(ManifestError, match="is a folder"):
            get_task(name).load()
    # a folder that shares a data set's name does not hide the data set
    (folder / "photos").mkdir()
    assert get_dataset("photos", limit=1)
