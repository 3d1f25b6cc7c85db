"""Random-weight VLMs of every family, built offline from config classes: one builder for tests, names, benchmarks.

``build_random("qwen2_5_vl")`` is ``tiny:qwen2_5_vl`` (what ``visdepth.load("tiny:qwen2_5_vl")`` and the tests
use); ``build_random("qwen2_5_vl", {"text": {...}, "vision": {...}, "image_size": 448}, init="pool",
dtype=torch.bfloat16)`` is a model of real shape for timing (benchmarks/). The recipes (:mod:`.recipes`) say
which config classes and processor each variant is made of; the pieces they share are in :mod:`.parts`. Which
variants exist is declared by each adapter's ``tiny_variants``, which weights transformers leaves at zero by
its ``zero_init_redraw``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch

from visdepth.errors import ConfigError, UnsupportedModelError
from visdepth.models.tiny.parts import (
    TINY_TEXT,
    TINY_VISION,
    build_processor,
    byte_tokenizer,
    chat_template,
    fill_random,
    pooled_init,
    seeded_init,
    token_id,
    vocab_size,
)
from visdepth.models.tiny.recipes import RECIPES, Shape

if TYPE_CHECKING:
    from visdepth.models.base import VLMAdapter

__all__ = [
    "RECIPES",
    "TINY_TEXT",
    "TINY_VISION",
    "Shape",
    "build_processor",
    "build_random",
    "byte_tokenizer",
    "chat_template",
    "fill_random",
    "pooled_init",
    "seeded_init",
    "token_id",
    "vocab_size",
]


def build_random(
    variant: str,
    shape: str | Mapping[str, Any] | Shape = "tiny",
    *,
    seed: int = 0,
    init: Literal["seeded", "pool"] = "seeded",
    dtype: torch.dtype | None = None,
    name: str | None = None,
) -> VLMAdapter:
    """A random-weight model of ``variant`` (a ``tiny:`` name without the prefix) and its adapter.

    Parameters
    ----------
    variant : str
        ``llava``, ``qwen2_5_vl``, ... (see ``visdepth.models.tiny_names()``).
    shape : "tiny" or dict
        ``"tiny"`` for the tiny test model, or overrides with keys ``text``, ``vision``, ``model`` (config
        fields of the language model, the vision tower and the VLM config) and ``image_size``.
    seed : int
        Same seed, same weights.
    init : {"seeded", "pool"}
        ``seeded``: transformers' initialisation drawn from ``seed``, plus the adapter's ``zero_init_redraw``
        weights drawn again (so images carry signal). ``pool``: built directly in ``dtype`` and filled by
        :func:`fill_random` in seconds, for real-size models whose weights only need the right shapes.
    dtype : torch.dtype, optional
        The weights' dtype (float32 when not given).
    name : str, optional
        The adapter's name; ``tiny:<variant>`` for the tiny shape, ``random <variant>`` otherwise.
    """
    from visdepth.models.registry import tiny_adapter, tiny_names

    cls = tiny_adapter(variant)
    recipe = RECIPES.get(variant)
    if cls is None or recipe is None:
        raise UnsupportedModelError(
            f"no random model of variant {variant!r}; choose one of "
            f"{', '.join(n.removeprefix('tiny:') for n in tiny_names())}"
        )
    spec = Shape.parse(shape)
    config, model_cls, processor = recipe(variant, spec)
    if init == "seeded":
        model = seeded_init(model_cls, config, seed, redraw=cls.zero_init_redraw(config))
        if dtype is not None:
            model = model.to(dtype)
    elif init == "pool":
        model = pooled_init(model_cls, config, seed, dtype=dtype)
    else:
        raise ConfigError(f"init {init!r} is unknown; use seeded or pool")
    if name is None:
        name = f"tiny:{variant}" if spec.is_tiny else f"random {variant}"
    return cls(model, processor, name)
