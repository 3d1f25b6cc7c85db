"""Which adapter serves which ``config.model_type``, and which tiny random models can be built by name.

Three :class:`~visdepth.registry.Registry` instances, filled by the :func:`register` class decorator of each
family file: :data:`MODEL_TYPES` (``config.model_type`` -> adapter), :data:`TINY_MODELS` (``tiny:<variant>``
-> adapter) and :data:`FAMILIES` (family name -> adapter). Two adapters claiming one name are refused.
"""

from __future__ import annotations

from visdepth.models.base import VLMAdapter
from visdepth.registry import Registry

MODEL_TYPES: Registry[type[VLMAdapter]] = Registry("model type", listing="visdepth models")
TINY_MODELS: Registry[type[VLMAdapter]] = Registry("tiny model", listing="visdepth models")
FAMILIES: Registry[type[VLMAdapter]] = Registry("model family", listing="visdepth models")

# the names older code reads (visdepth.cli.info iterates ``_BY_MODEL_TYPE.items()``)
_BY_MODEL_TYPE = MODEL_TYPES
_BY_TINY_NAME = TINY_MODELS


def register(cls: type[VLMAdapter]) -> type[VLMAdapter]:
    """Class decorator: make an adapter the handler of its family, model types and tiny variants.

    Every name is checked before any is taken, so a refused adapter leaves the registries as they were.
    """
    claims = [(FAMILIES, cls.family)]
    claims += [(MODEL_TYPES, t) for t in cls.model_types]
    claims += [(TINY_MODELS, v) for v in cls.tiny_variants]
    for registry, name in claims:
        registry.check(name, cls)
    for registry, name in claims:
        registry.register(name, cls)
    return cls


def adapter_for(model_type: str) -> type[VLMAdapter] | None:
    return MODEL_TYPES.find(model_type)


def tiny_adapter(variant: str) -> type[VLMAdapter] | None:
    return TINY_MODELS.find(variant)


def supported_model_types() -> list[str]:
    return sorted(MODEL_TYPES.names())


def supported_families() -> list[str]:
    return sorted({cls.family for _, cls in MODEL_TYPES.items()})


def tiny_names() -> list[str]:
    return [f"tiny:{name}" for name in sorted(TINY_MODELS.names())]
