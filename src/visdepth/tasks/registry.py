"""The task registry: :func:`get_task` turns a name (``vqav2``, ``shapes:train``, ``local:my.jsonl``) into a Task.

Besides the registered tasks, any JSONL manifest (``local:<path>`` or a path ending in ``.jsonl``) and any data
set of :mod:`visdepth.data` (``get_dataset`` names) is a mixed task: each row is scored by its own kind.
"""

from __future__ import annotations

import os
from pathlib import Path

from visdepth.data.builtin import get_dataset, list_datasets
from visdepth.data.manifest import load_manifest
from visdepth.errors import ConfigError
from visdepth.tasks.base import DEFAULT_FORMAT, MIXED, Task

LOCAL_PREFIX = "local:"

_TASKS: dict[str, Task] = {}


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    """Make ``task`` available to :func:`get_task` under ``task.name`` (no colon, no path separator)."""
    name = task.name
    if not name or ":" in name or "/" in name or os.sep in name:
        raise ValueError(f"task name {name!r} must be non-empty and contain no ':' or path separator")
    if name in _TASKS and not overwrite:
        raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    _TASKS[name] = task
    return task


def list_tasks() -> dict[str, Task]:
    """The registered tasks by name (a copy)."""
    return dict(_TASKS)


def available_tasks() -> list[str]:
    """Every name :func:`get_task` accepts besides ``local:<path>``: tasks with their splits, then the data
    sets of :mod:`visdepth.data` that are not tasks themselves."""
    names = []
    for task in _TASKS.values():
        names.append(task.name)
        names += [f"{task.name}:{s}" for s in task.splits]
    names += [n for spec in list_datasets().values() if spec.name not in _TASKS for n in spec.names()]
    return names


def local_task(path: str | os.PathLike[str]) -> Task:
    """A mixed task over a JSONL manifest: each row's ``task`` field (or inferred kind) decides its scoring."""
    shown = str(path)

    def loader(split: str | None = None, limit: int | None = None) -> list:
        return load_manifest(path)

    return Task(
        f"{LOCAL_PREFIX}{shown}",
        MIXED,
        description=f"samples of the manifest {shown}, each scored by its own task kind",
        prompt_format=DEFAULT_FORMAT,
        loader=loader,
        source=shown,
    )


def _dataset_task(name: str) -> Task:
    spec = list_datasets()[name]

    def loader(split: str | None = None, limit: int | None = None) -> list:
        return get_dataset(f"{name}:{split}" if split else name, limit=limit)

    return Task(
        name,
        MIXED,
        description=spec.description,
        loader=loader,
        splits=spec.splits,
        default_split=spec.default_split,
        source=f"visdepth.data:{name}",
    )


def get_task(name: str | os.PathLike[str]) -> Task:
    """The task called ``name``; ``name:split`` picks a split, ``local:<path.jsonl>`` (or a ``.jsonl`` path)
    reads a manifest, and a data set name of :mod:`visdepth.data` gives a mixed task over it.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the available ones) or an unknown split.
    """
    text = str(name).strip()
    if text.startswith(LOCAL_PREFIX):
        path = text[len(LOCAL_PREFIX) :].strip()
        if not path:
            raise ConfigError("task 'local:' names no manifest; write local:<path.jsonl>")
        return local_task(path)
    base, sep, split = text.partition(":")
    looks_like_path = (
        "/" in text
        or os.sep in text
        or text.endswith((".jsonl", ".json"))
        or (not sep and Path(text).is_file())
        # a folder is a mistaken manifest path (load_manifest says so), unless a task has its name
        or (not sep and base not in _TASKS and base not in list_datasets() and Path(text).is_dir())
    )
    if looks_like_path:
        return local_task(text)
    if base in _TASKS:
        task = _TASKS[base]
    elif base in list_datasets():
        task = _dataset_task(base)
    else:
        raise ConfigError(
            f"unknown task {text!r}; use one of {', '.join(available_tasks())} or local:<path.jsonl>"
        )
    return task.with_split(split) if sep else task
