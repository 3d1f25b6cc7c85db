"""The one random-model builder: every tiny variant has a recipe, shape overrides stay consistent, errors are one
sentence."""

from __future__ import annotations

import pytest
import torch

import visdepth
from visdepth.errors import ConfigError, UnsupportedModelError
from visdepth.models import tiny_names
from visdepth.models.gemma3 import Gemma3Adapter
from visdepth.models.tiny import RECIPES, build_random


def test_every_tiny_variant_has_a_recipe():
    assert sorted(RECIPES) == sorted(name.removeprefix("tiny:") for name in tiny_names())


def test_build_random_is_the_tiny_model_of_load():
    built, loaded = build_random("paligemma", seed=2), visdepth.load("tiny:paligemma", device="cpu", seed=2)
    assert built.name == loaded.name == "tiny:paligemma"
    for (name, a), (_, b) in zip(
        built.model.state_dict().items(), loaded.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def _forward(adapter, photo) -> tuple[int, torch.Tensor]:
    inputs = adapter.build_inputs([[photo]], ["What is it?"])
    with torch.no_grad():
        logits = adapter.model(**inputs.tensors).logits
    return int(inputs.image_mask.sum()), logits


def test_shape_overrides_keep_derived_fields_consistent(photo):
    text = dict(num_hidden_layers=2, hidden_size=96, num_attention_heads=6, num_key_value_heads=2)
    qwen = build_random("qwen2_5_vl", {"text": text, "image_size": 56})
    assert qwen.num_layers == 2 and qwen.name == "random qwen2_5_vl"
    # head_dim 16: the M-RoPE sections cover its 8 rotary frequencies; the tower projects to the new width
    assert sum(qwen.text_config.rope_parameters["mrope_section"]) == 8
    assert qwen.config.vision_config.out_hidden_size == 96
    # a square image fills the fixed pixel budget exactly (another aspect ratio is kept, so its count varies)
    n_image, logits = _forward(qwen, photo.resize((56, 56)))
    assert n_image == (56 // 28) ** 2 and torch.isfinite(logits).all()

    gemma = build_random("gemma3", {"text": {"num_hidden_layers": 3}})
    assert gemma.text_config.layer_types == ["sliding_attention", "full_attention", "sliding_attention"]


def test_llava_with_a_clip_tower_drops_its_class_token(photo):
    shape = {"vision": {"model_type": "clip_vision_model", "patch_size": 14}, "image_size": 56}
    adapter = build_random("llava", shape)
    assert adapter.config.vision_config.model_type == "clip_vision_model"
    n_image, logits = _forward(adapter, photo)
    assert n_image == (56 // 14) ** 2 and torch.isfinite(logits).all()


def test_pool_init_builds_in_the_dtype_with_finite_weights():
    adapter = build_random("llava", {"text": {"num_hidden_layers": 2}}, init="pool", dtype=torch.bfloat16)
    assert adapter.model.dtype == torch.bfloat16 and adapter.num_layers == 2
    assert all(torch.isfinite(p).all() for p in adapter.model.parameters())


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: build_random("llava_9"), UnsupportedModelError, "no random model of variant 'llava_9'"),
        (lambda: build_random("llava", {"txt": {}}), ConfigError, "shape keys txt are unknown"),
        (lambda: build_random("llava", "huge"), ConfigError, "shape 'huge' is unknown"),
        (lambda: build_random("llava", init="zeros"), ConfigError, "init 'zeros' is unknown"),
        (lambda: Gemma3Adapter.build_tiny("llava"), UnsupportedModelError, "gemma3 has no tiny variant"),
    ],
)
def test_errors_are_one_sentence(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert "\n" not in str(info.value)
