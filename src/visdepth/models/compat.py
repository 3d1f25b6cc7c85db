"""What differs between the transformers releases visdepth supports, found once, from the code itself.

transformers 5.24 renamed the cache argument of model and decoder-block forwards from ``past_key_values`` to
``cache`` (the old name is deprecated there and *ignored* when both are given); 5.23 takes ``past_key_values``.
Rather than spelling either name across the interventions, every hook asks :func:`cache_kwarg` of the module it
hooks, which reads that module's own ``forward`` signature (transformers' deprecation wrapper keeps the real
signature through ``functools.wraps``). :func:`check_structure` runs when a model loads, so an unknown release
or family fails there in one sentence instead of with a shape error three calls later.
"""

from __future__ import annotations

import inspect
import warnings
from functools import cache
from importlib import metadata
from typing import Any

from visdepth.errors import UnsupportedModelError

#: the spellings of a forward's cache argument, newest first
CACHE_KWARGS = ("cache", "past_key_values")
#: what pyproject.toml declares when the distribution metadata cannot be read (a source tree on sys.path)
FALLBACK_RANGE = ">=5.23,<5.25"


@cache
def supported_transformers() -> str:
    """The transformers range visdepth declares (and CI tests at both ends), read from the package metadata."""
    try:
        requires = metadata.requires("visdepth") or []
    except metadata.PackageNotFoundError:
        return FALLBACK_RANGE
    for req in requires:
        name = req.split(";")[0].strip()
        if name.lower().startswith("transformers") and not name[len("transformers") :][:1].isalnum():
            spec = name[len("transformers") :].strip()
            if spec and spec[0] in "<>=!~":
                return spec
    return FALLBACK_RANGE


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def version_sentence() -> str:
    return f"transformers {transformers_version()} is installed; visdepth supports transformers{supported_transformers()}"


def in_supported_range(version: str | None = None) -> bool:
    from packaging.specifiers import SpecifierSet

    return (version or transformers_version()) in SpecifierSet(supported_transformers())


def cache_kwarg(module: Any) -> str:
    """The name under which ``module.forward`` takes the KV cache (``cache`` or ``past_key_values``)."""
    forward = getattr(module, "forward", module)
    return _cache_kwarg_of(getattr(forward, "__func__", forward))


@cache
def _cache_kwarg_of(function: Any) -> str:
    params = inspect.signature(function).parameters
    for name in CACHE_KWARGS:
        if name in params:
            return name
    raise UnsupportedModelError(
        f"{getattr(function, '__qualname__', function)} takes no cache argument (neither of "
        f"{', '.join(CACHE_KWARGS)}); {version_sentence()}: install a release in that range."
    )


def get_cache(module: Any, kwargs: dict) -> Any:
    """The cache a hooked ``module`` was called with (whichever name the caller used), or ``None``."""
    value = kwargs.get(cache_kwarg(module))
    if value is None:  # a caller that still spells the other name; the module's wrapper would rename it
        value = next((kwargs[k] for k in CACHE_KWARGS if kwargs.get(k) is not None), None)
    return value


def with_cache(module: Any, kwargs: dict, value: Any) -> dict:
    """``kwargs`` for ``module`` with its cache set to ``value`` under the one name it reads (the others gone)."""
    out = {k: v for k, v in kwargs.items() if k not in CACHE_KWARGS}
    out[cache_kwarg(module)] = value
    return out


def output_cache(output: Any) -> Any:
    """The cache a model or ``generate`` output carries (``.cache`` from 5.24, ``.past_key_values`` before)."""
    for name in CACHE_KWARGS:
        value = getattr(output, name, None)
        if value is not None:
            return value
    return None


def check_structure(adapter: Any) -> None:
    """The structural check of a freshly loaded model (after nnterp's ``check_io``): the decoder blocks, final
    norm and head are found where the adapter looks, the block count equals the text config's, and the cache
    argument of the blocks and of the model is one visdepth knows. Raises one :class:`UnsupportedModelError`."""
    from torch import nn

    where = f"{adapter.name} ({adapter.family} adapter, model type {adapter.config.model_type!r})"
    try:
        parts = {"decoder layers": adapter.layers, "final norm": adapter.norm, "head": adapter.lm_head}
    except AttributeError as err:
        raise UnsupportedModelError(
            f"{where}: the adapter could not find the decoder's parts ({err}); {version_sentence()}."
        ) from None
    for label, part in parts.items():
        if not isinstance(part, nn.Module):
            raise UnsupportedModelError(
                f"{where}: the {label} is {type(part).__name__}, not a module; {version_sentence()}."
            )
    expected = getattr(adapter.text_config, "num_hidden_layers", None)
    if expected is not None and len(adapter.layers) != expected:
        raise UnsupportedModelError(
            f"{where}: found {len(adapter.layers)} decoder layers but the text config declares {expected}; "
            f"{version_sentence()}."
        )
    hidden = adapter.hidden_size
    weight = getattr(adapter.lm_head, "weight", None)
    if weight is not None and weight.shape[-1] != hidden:
        raise UnsupportedModelError(
            f"{where}: the head takes {weight.shape[-1]} features but the decoder is {hidden} wide; "
            f"{version_sentence()}."
        )
    for module in (adapter.layers[0], adapter.base_model, adapter.model):
        cache_kwarg(module)  # raises, naming the release, when the forward takes no cache argument we know
    if not in_supported_range():
        # the structure is as expected, so go on; but nothing was tested on this release
        warnings.warn(f"{version_sentence()}; results are untested on this release.", stacklevel=3)
