"""Model families share the registry shape: a family, model type or tiny name claimed twice is refused."""

from __future__ import annotations

import pytest

from visdepth.errors import NameCollisionError, UnknownNameError
from visdepth.models import supported_families, supported_model_types, tiny_names
from visdepth.models.base import VLMAdapter
from visdepth.models.registry import FAMILIES, MODEL_TYPES, TINY_MODELS, adapter_for, register, tiny_adapter


def test_the_public_functions_read_the_registries():
    llava = adapter_for("llava")
    assert llava is not None and llava.family == "llava" and FAMILIES.get("llava") is llava
    assert tiny_adapter("llava_next") is llava and adapter_for("t5") is None and tiny_adapter("t5") is None
    assert "qwen2_5_vl" in supported_model_types() and "paligemma" in supported_families()
    assert "tiny:smolvlm" in tiny_names()
    with pytest.raises(
        UnknownNameError, match="unknown model type 'lava'; did you mean llava.*visdepth models"
    ):
        MODEL_TYPES.get("lava")


def test_a_second_adapter_for_a_taken_name_is_refused_and_takes_nothing():
    before = (FAMILIES.items(), MODEL_TYPES.items(), TINY_MODELS.items())

    class Impostor(VLMAdapter):
        family = "impostor"
        model_types = ("impostor_vl", "llava")
        tiny_variants = ("impostor_vl",)

    with pytest.raises(NameCollisionError, match="model type 'llava' is already registered"):
        register(Impostor)
    assert (FAMILIES.items(), MODEL_TYPES.items(), TINY_MODELS.items()) == before
    llava = adapter_for("llava")
    assert register(llava) is llava  # the same class again (a re-import) is a no-op
