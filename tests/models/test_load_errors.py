"""Bad model names and inputs get one clear sentence, not a traceback."""

from __future__ import annotations

import json

import pytest

import visdepth
from tests.conftest import tiny
from visdepth.errors import InputError, UnsupportedModelError


def test_unknown_tiny_name_lists_supported():
    with pytest.raises(UnsupportedModelError, match="supported families: .*llava"):
        visdepth.load("tiny:nope")


def test_text_only_model_is_refused(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    ).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="text-only.*supported families"):
        visdepth.load(str(tmp_path))


@pytest.mark.parametrize("name", ["/no/such/model/folder", "./nosuch", "~/nosuch-model", "a/b/c"])
def test_missing_model_folder_says_so(name):
    with pytest.raises(UnsupportedModelError, match="folder .* does not exist .*fix the path"):
        visdepth.load(name)


@pytest.mark.parametrize("name", ["visdepth-tests/not-cached-model", "nosuch-model"])
def test_hub_id_offline_and_not_cached(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnsupportedModelError, match="not in the local hub cache .*offline"):
        visdepth.load(name)


def test_close_builtin_name_is_suggested():
    with pytest.raises(UnsupportedModelError, match="did you mean 'visdepth/shapes-vlm'"):
        visdepth.load("visdepth/shapes-vl")


def test_folder_without_config_and_file_as_model(tmp_path):
    with pytest.raises(UnsupportedModelError, match="has no config.json"):
        visdepth.load(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(UnsupportedModelError, match="is a file, not a folder"):
        visdepth.load(str(tmp_path / "model.safetensors"))


def _shapes_copy(tmp_path):
    import shutil

    from visdepth.models import builtin_model_path

    folder = tmp_path / "shapes"
    shutil.copytree(builtin_model_path("visdepth/shapes-vlm"), folder)
    return folder


def test_cut_safetensors_is_named(tmp_path):
    from visdepth.models.files import check_safetensors

    folder = _shapes_copy(tmp_path)
    check_safetensors(folder)  # whole: passes
    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    with pytest.raises(UnsupportedModelError) as exc:
        visdepth.load(str(folder), device="cpu")
    text = str(exc.value)
    assert str(weights) in text and "damaged or incomplete" in text and "re-download" in text
    weights.write_bytes(b"\x01")
    with pytest.raises(UnsupportedModelError, match="too short"):
        check_safetensors(folder)


def test_missing_shard_is_named(tmp_path):
    from visdepth.models.files import check_safetensors

    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "model-00001-of-00002.safetensors"}})
    )
    with pytest.raises(UnsupportedModelError, match="model-00001-of-00002.safetensors is missing"):
        check_safetensors(tmp_path)


@pytest.mark.parametrize(
    ("device", "needle"),
    [("foo", "is not a device; use auto, cpu"), ("cuda", "--device cpu"), ("cuda:7", "--device cpu")],
)
def test_bad_device(device, needle, monkeypatch):
    import torch

    from visdepth.errors import ConfigError
    from visdepth.models import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=needle):
        resolve_device(device)
    assert resolve_device("auto").type == "cpu" and resolve_device("CPU").type == "cpu"


def test_tiny_model_takes_no_model_args():
    from visdepth.errors import ConfigError

    with pytest.raises(ConfigError, match="take no --model_args"):
        visdepth.load("tiny:llava", nosuch=1)


def test_unknown_model_arg_is_named():
    from visdepth.errors import ConfigError

    with pytest.raises(ConfigError, match="nosuch_arg=1 is not taken by .*fix its spelling"):
        visdepth.load("visdepth/shapes-vlm", device="cpu", nosuch_arg=1)


def test_context_limit_and_rope_scaling():
    from types import SimpleNamespace

    from visdepth.models.base import _rope_factor

    assert tiny("tiny:llava").context_limit == tiny("tiny:llava").text_config.max_position_embeddings
    assert _rope_factor(SimpleNamespace(rope_parameters={"rope_type": "default"})) == 1.0
    assert _rope_factor(SimpleNamespace(rope_parameters={"rope_type": "yarn", "factor": 4.0})) == 4.0
    assert _rope_factor(SimpleNamespace(rope_parameters={"rope_type": "dynamic", "factor": 2.0})) is None
    by_layer = {"full_attention": {"rope_type": "linear", "factor": 8.0}, "sliding_attention": {}}
    assert _rope_factor(SimpleNamespace(rope_parameters=by_layer)) == 8.0


def test_prompt_longer_than_the_context_is_refused(photo, monkeypatch):
    from visdepth.data import Sample

    adapter = tiny("tiny:llava")
    short = adapter.build_inputs([[photo]], ["What is this?"])
    n = int(short.attention_mask.sum())
    monkeypatch.setattr(type(adapter), "context_limit", property(lambda self: n + 2))
    adapter.build_inputs([[photo]], ["What is this?"])  # fits
    with pytest.raises(InputError, match=r"sample 0 of the batch .* more than the"):
        adapter.build_inputs([[photo]], ["What is this? " * 5])
    samples = [
        Sample(id="ok", images=["skimage:coffee"], prompt="What is this?"),
        Sample(id="long", images=["skimage:coffee"], prompt="What is this? " * 5),
    ]
    with pytest.raises(InputError) as exc:
        adapter.check_fits(samples)
    text = str(exc.value)
    assert f"more than the {n + 2} positions" in text and "sample 'long'" in text
    assert "shorten the prompt" in text
    monkeypatch.setattr(type(adapter), "context_limit", property(lambda self: None))
    adapter.check_fits(samples)  # unknown limit: nothing refused


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "definitely_not_a_model"}))
    with pytest.raises(UnsupportedModelError):
        visdepth.load(str(tmp_path))


def test_prompt_without_image_is_refused():
    adapter = tiny("tiny:llava")
    with pytest.raises(InputError, match="no image"):
        adapter.build_inputs([[]], ["hello"])


def test_unknown_dtype():
    with pytest.raises(UnsupportedModelError, match="unknown dtype"):
        visdepth.load("tiny:llava", dtype="float7")
