"""The one namespace of tasks and data sets: :func:`resolve` turns any name a user gives into a :class:`Task`.

A name is one of

- a registered task (``vqav2``, ``blink``, ``photos``), with an optional split (``blink:val``);
- a data set of :mod:`visdepth.data` (``shapes:train``, or one a plugin registered): the task built on it when
  one is registered under its name, else a mixed task over it (each row scored by its own kind);
- ``local:<path.jsonl>``, or a manifest path (a path separator, a ``.jsonl``/``.json`` ending or an existing
  file): a mixed task over that JSONL manifest.

Tasks (:data:`TASKS`) and data sets (:data:`~visdepth.data.builtin.DATASETS`) share their names: a task may
carry a data set's name only when it is built on that data set (``Task(..., dataset=name)``); any other
collision is refused when the second one registers, whichever registers first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from visdepth.data.builtin import DATASETS, DatasetSpec, available_datasets, looks_like_path
from visdepth.data.manifest import load_manifest
from visdepth.errors import ConfigError
from visdepth.registry import Registry, definition
from visdepth.tasks.base import DEFAULT_FORMAT, MIXED, Task

LOCAL_PREFIX = "local:"
LISTING = "visdepth datasets"
MANIFEST_HINT = "A JSONL manifest works too: local:<path.jsonl> or a path ending in .jsonl"


def _task_identity(task: Task) -> tuple:
    # the same task defined again by a re-imported module: equal settings and the same loader definition
    return (
        task.name,
        task.kind,
        task.dataset,
        task.source,
        task.splits,
        task.default_split,
        task.answer_metric,
        definition(task.loader),
    )


def _built_on(name: str, task: Task, spec: DatasetSpec) -> bool:
    """A task and a data set may share ``name`` only when the task is built on that data set."""
    return task.dataset == name


TASKS: Registry[Task] = Registry("task", listing=LISTING, identity=_task_identity)
TASKS.share_names_with(DATASETS, _built_on, fix="or build the task on the data set: Task(..., dataset=name)")


def register_task(task: Task, *, overwrite: bool = False) -> Task:
    """Make ``task`` available to :func:`resolve` under ``task.name`` (no colon, no path separator).

    Raises
    ------
    NameCollisionError
        When another task holds the name, or a data set does and ``task`` is not built on it.
    """
    name = task.name
    if not name or ":" in name or "/" in name or os.sep in name:
        raise ValueError(f"task name {name!r} must be non-empty and contain no ':' or path separator")
    return TASKS.register(name, task, overwrite=overwrite)


def list_tasks() -> dict[str, Task]:
    """The registered tasks by name (a copy; data sets without a task of their own are in :func:`catalog`)."""
    return dict(TASKS.items())


def catalog() -> dict[str, Task]:
    """Every bare name of the namespace and its task: the registered tasks, then the data sets that have no
    task of their own (as mixed tasks). What ``visdepth datasets`` should list."""
    out = dict(TASKS.items())
    for name in DATASETS:
        out.setdefault(name, _dataset_task(name))
    return out


def available_tasks() -> list[str]:
    """Every name :func:`resolve` accepts besides manifests: tasks with their splits, then the data sets of
    :mod:`visdepth.data` that are not tasks themselves, with theirs."""
    names = []
    for _, task in TASKS.items():
        names.append(task.name)
        names += [f"{task.name}:{s}" for s in task.splits]
    names += [n for n in available_datasets() if n.partition(":")[0] not in TASKS]
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
    return Task(name, MIXED, dataset=name)


def resolve(name: str | os.PathLike[str], *, kind: str = "task") -> Task:
    """The task any user-given name means: a task, a data set, ``name:split``, ``local:<path>`` or a manifest
    path (see the module notes); ``task.load(limit=...)`` then gives its samples.

    ``kind`` is the word an unknown-name message uses for the name (``"data set"`` where the user gave
    ``--data``); the names suggested are the whole namespace either way.

    Raises
    ------
    UnknownNameError
        For an unknown name; its one-line message names the closest known names.
    ConfigError
        For an unknown split (the message lists the splits) or an empty name.
    """
    text = str(name).strip()
    if not text:
        raise ConfigError(f"the task name is empty; give a task, a data set or a manifest path (`{LISTING}`)")
    if text.startswith(LOCAL_PREFIX):
        path = text[len(LOCAL_PREFIX) :].strip()
        if not path:
            raise ConfigError("task 'local:' names no manifest; write local:<path.jsonl>")
        return local_task(path)
    if looks_like_path(text, lambda n: n in TASKS or n in DATASETS):
        return local_task(text)
    base, sep, split = text.partition(":")
    task = TASKS.find(base)
    if task is None and base in DATASETS:
        task = _dataset_task(base)
    if task is None:
        raise TASKS.unknown(
            text, candidates=available_tasks(), listed=catalog(), kind=kind, hint=MANIFEST_HINT
        )
    return task.with_split(split) if sep else task


def resolve_all(names: str | Iterable[str], *, kind: str = "task") -> dict[str, Task]:
    """The tasks of ``--tasks``: a comma-separated string or a list of names, each as :func:`resolve` reads it
    (``kind`` as there), by name in the order given (repeats dropped)."""
    items: Sequence[str] = names.split(",") if isinstance(names, str) else [str(n) for n in names]
    wanted = list(dict.fromkeys(n.strip() for n in items if n.strip()))
    if not wanted:
        raise ConfigError(f"no task given; name at least one task or data set (`{LISTING}`)")
    return {n: resolve(n, kind=kind) for n in wanted}


def get_task(name: str | os.PathLike[str]) -> Task:
    """The task called ``name``: the same lookup as :func:`resolve` (kept for older callers)."""
    return resolve(name)
