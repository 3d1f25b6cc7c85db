"""Named data sets that need no download, and :func:`get_dataset`, the one entry point for data.

A data set is registered under a name with a loader; a name may carry a split after a colon (``shapes:test``).
``photos`` holds real photos that ship inside scikit-image, scikit-learn and matplotlib, each with a hand-written
question; other modules add their own data set by calling :func:`register_dataset` at import, as the
procedurally generated ``shapes`` set (``train`` and ``test`` splits, the default of every command) does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from visdepth.data.manifest import load_manifest
from visdepth.data.sample import Sample
from visdepth.defaults import DEFAULT_DATASET_NAME
from visdepth.errors import ConfigError

DEFAULT_DATASET = DEFAULT_DATASET_NAME  # the registry's default is every command's

Loader = Callable[..., Sequence[Sample]]
"""``loader(split=..., limit=...) -> samples``; ``limit`` is a hint (``get_dataset`` also cuts), split is one
of the registered splits or ``None`` for a data set without splits."""


@dataclass(frozen=True)
class DatasetSpec:
    """A registered data set: its loader, its splits (empty for none) and the split a bare name means."""

    name: str
    loader: Loader
    description: str = ""
    splits: tuple[str, ...] = ()
    default_split: str | None = None

    def names(self) -> list[str]:
        """Every name that selects this data set (``shapes``, ``shapes:train``, ``shapes:test``...)."""
        return [self.name] + [f"{self.name}:{s}" for s in self.splits]


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(
    name: str,
    loader: Loader,
    *,
    description: str = "",
    splits: Sequence[str] = (),
    default_split: str | None = None,
    overwrite: bool = False,
) -> DatasetSpec:
    """Register a built-in data set under ``name`` (no colon, no path separator)."""
    if not name or ":" in name or "/" in name or os.sep in name:
        raise ValueError(f"data set name {name!r} must be non-empty and contain no ':' or path separator")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"data set {name!r} is already registered; pass overwrite=True to replace it")
    splits = tuple(splits)
    if default_split is None and splits:
        default_split = splits[0]
    if default_split is not None and default_split not in splits:
        raise ValueError(f"default split {default_split!r} of {name!r} is not one of {splits}")
    spec = DatasetSpec(name, loader, description, splits, default_split)
    _REGISTRY[name] = spec
    return spec


def list_datasets() -> dict[str, DatasetSpec]:
    """The registered data sets by name (a copy)."""
    return dict(_REGISTRY)


def available_datasets() -> list[str]:
    """Every name :func:`get_dataset` accepts besides a manifest path."""
    return [n for spec in _REGISTRY.values() for n in spec.names()]


def get_dataset(name_or_path: str | os.PathLike[str], limit: int | None = None) -> list[Sample]:
    """Samples of a built-in data set (``photos``, ``name:split``) or of a JSONL manifest file.

    ``limit`` keeps the first n samples.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(
            f"limit {limit!r} is not a positive whole number; pass e.g. --limit 10 or leave it out"
        )
    spec, split = _lookup(str(name_or_path))
    if spec is None:
        return load_manifest(name_or_path)[:limit]
    return list(spec.loader(split=split, limit=limit))[:limit]


def _lookup(text: str) -> tuple[DatasetSpec | None, str | None]:
    name, sep, split = text.partition(":")
    looks_like_path = (
        "/" in text
        or os.sep in text
        or text.endswith((".jsonl", ".json"))
        or (not sep and Path(text).is_file())
        # a folder is a mistaken manifest path (load_manifest says so), unless a data set has its name
        or (not sep and name not in _REGISTRY and Path(text).is_dir())
    )
    if name in _REGISTRY and not looks_like_path:
        spec = _REGISTRY[name]
        if not sep:
            return spec, spec.default_split
        if split not in spec.splits:
            if not spec.splits:
                raise ConfigError(f"data set {name!r} has no splits; use {name!r} without ':{split}'")
            raise ConfigError(
                f"data set {name!r} has no split {split!r}; use one of " + ", ".join(spec.names()[1:])
            )
        return spec, split
    if looks_like_path:
        return None, None
    raise ConfigError(
        f"unknown data set {text!r}; use one of {', '.join(available_datasets())} or a path to a JSONL manifest"
    )


def _load_photos(split: str | None = None, limit: int | None = None) -> list[Sample]:
    # as_file: the manifest is a real file in a normal install, a temporary copy when installed zipped.
    with resources.as_file(resources.files("visdepth.data") / "photos.jsonl") as path:
        samples = load_manifest(path)
    for s in samples:
        # "photos line 3" reads better in messages than a site-packages path.
        s._origin = (s.origin or "").replace(str(path), "photos.jsonl")
    return samples


register_dataset(
    "photos",
    _load_photos,
    description="10 real photos shipped inside scikit-image, scikit-learn and matplotlib, each with a "
    "hand-written question (single-token, multiple-choice, exact-match, caption and reasoning tasks)",
)
