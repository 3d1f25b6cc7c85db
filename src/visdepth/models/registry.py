"""Which adapter serves which ``config.model_type``, and which tiny random models can be built by name."""

from __future__ import annotations

from visdepth.models.base import VLMAdapter

_BY_MODEL_TYPE: dict[str, type[VLMAdapter]] = {}
_BY_TINY_NAME: dict[str, type[VLMAdapter]] = {}


def register(cls: type[VLMAdapter]) -> type[VLMAdapter]:
    """Class decorator: make an adapter the handler of its model types and tiny variants."""
    for model_type in cls.model_types:
        _BY_MODEL_TYPE[model_type] = cls
    for variant in cls.tiny_variants:
        _BY_TINY_NAME[variant] = cls
    return cls


def adapter_for(model_type: str) -> type[VLMAdapter] | None:
    return _BY_MODEL_TYPE.get(model_type)


def tiny_adapter(variant: str) -> type[VLMAdapter] | None:
    return _BY_TINY_NAME.get(variant)


def supported_model_types() -> list[str]:
    return sorted(_BY_MODEL_TYPE)


def supported_families() -> list[str]:
    return sorted({cls.family for cls in _BY_MODEL_TYPE.values()})


def tiny_names() -> list[str]:
    return [f"tiny:{name}" for name in sorted(_BY_TINY_NAME)]
