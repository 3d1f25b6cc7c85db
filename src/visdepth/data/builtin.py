"""Named data sets that need no download, and :func:`get_dataset`, the one entry point for data.

A data set is registered under a name with a loader; a name may carry a split after a colon (``shapes:test``).
``photos`` holds real photos that ship inside scikit-image, scikit-learn and matplotlib, each with a hand-written
question; other modules add their own data set by calling :func:`register_dataset` at import, as the
procedurally generated ``shapes`` set (``train`` and ``test`` splits, the default of every command) does.

The data sets live in :data:`DATASETS`, a :class:`~visdepth.registry.Registry` that shares its names with the
tasks of :mod:`visdepth.tasks` (one namespace: every data set is a task, and a task may only share a data set's
name when it is built on that data set). :func:`get_dataset` takes any name of that namespace.
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
from visdepth.registry import Registry, definition, describe

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

    def load(self, split: str | None = None, limit: int | None = None) -> list[Sample]:
        """The samples of ``split`` (default: :attr:`default_split`), the first ``limit`` of them."""
        if split is not None and split not in self.splits:
            if not self.splits:
                raise ConfigError(
                    f"data set {self.name!r} has no splits; use {self.name!r} without ':{split}'"
                )
            raise ConfigError(
                f"data set {self.name!r} has no split {split!r}; use one of " + ", ".join(self.names()[1:])
            )
        return list(self.loader(split=split or self.default_split, limit=limit))[:limit]

    def __repr__(self) -> str:
        return f"DatasetSpec({self.name!r}, loader={describe(self.loader)})"


def _spec_identity(spec: DatasetSpec) -> tuple:
    # a re-imported module registers an equal spec with a new loader function object: the same data set
    return (spec.name, definition(spec.loader), spec.splits, spec.default_split)


DATASETS: Registry[DatasetSpec] = Registry("data set", listing="visdepth datasets", identity=_spec_identity)


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
    splits = tuple(splits)
    if default_split is None and splits:
        default_split = splits[0]
    if default_split is not None and default_split not in splits:
        raise ValueError(f"default split {default_split!r} of {name!r} is not one of {splits}")
    spec = DatasetSpec(name, loader, description, splits, default_split)
    return DATASETS.register(name, spec, overwrite=overwrite)


def list_datasets() -> dict[str, DatasetSpec]:
    """The registered data sets by name (a copy)."""
    return dict(DATASETS.items())


def available_datasets() -> list[str]:
    """Every data set name :func:`get_dataset` accepts besides a manifest path (task names work too)."""
    return [n for _, spec in DATASETS.items() for n in spec.names()]


def check_limit(limit: int | None) -> None:
    """Refuse a ``limit`` that is not a positive whole number (``None`` means all samples)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(
            f"limit {limit!r} is not a positive whole number; pass e.g. --limit 10 or leave it out"
        )


def looks_like_path(text: str, registered: Callable[[str], bool]) -> bool:
    """Whether a name given by a user means a manifest file rather than a registered name.

    A path separator or a ``.jsonl``/``.json`` ending always means a file; so does an existing file or folder
    without a colon, unless ``registered(text)`` (a folder is a mistaken manifest path that
    :func:`~visdepth.data.manifest.load_manifest` explains, but a folder named like a data set does not hide it).
    """
    _, sep, _ = text.partition(":")
    if "/" in text or os.sep in text or text.endswith((".jsonl", ".json")):
        return True
    if sep:
        return False
    return Path(text).is_file() or (not registered(text) and Path(text).is_dir())


def get_dataset(name_or_path: str | os.PathLike[str], limit: int | None = None) -> list[Sample]:
    """Samples of a built-in data set (``photos``, ``name:split``), a JSONL manifest file, or any other name of
    the task namespace (``blink``, ``vqav2:validation``; see :func:`visdepth.tasks.resolve`).

    ``limit`` keeps the first n samples. Samples are not checked against a task (they need no answers); use
    ``visdepth.tasks.resolve(name).load()`` for checked ones.
    """
    check_limit(limit)
    text = str(name_or_path).strip()
    if not text.startswith("local:") and looks_like_path(text, lambda n: n in DATASETS):
        return load_manifest(name_or_path)[:limit]
    name, sep, split = text.partition(":")
    if name in DATASETS:
        spec = DATASETS.get(name)
        return spec.load(split if sep else None, limit=limit)
    # not a data set: a task name, local:<path>, or unknown (the task namespace names the closest)
    from visdepth.tasks import resolve

    return resolve(text, kind="data set").load(limit=limit, check=False)


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
