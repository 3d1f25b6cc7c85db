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


def test_missing_model_path():
    with pytest.raises(UnsupportedModelError, match="could not read a config"):
        visdepth.load("/no/such/model/folder")


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
