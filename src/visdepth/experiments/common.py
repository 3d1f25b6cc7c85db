"""What every experiment shares: where a run writes (checked before anything slow, locked while a run writes
it), the fingerprint that guards a resumed run, the resumable per-sample loop (one durable JSONL row per finished
item, so a killed run loses nothing), and writing the results with the run's start and finish times."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
import typing
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from tqdm.auto import tqdm

from visdepth.defaults import DEFAULT_DATASET_NAME, DEFAULT_MODEL
from visdepth.errors import ConfigError
from visdepth.experiments import distributed
from visdepth.results.io import (
    JsonlWriter,
    dumps,
    read_jsonl,
    set_seed,
    unique_rows,
    write_json,
    write_text_atomic,
)
from visdepth.results.meta import utc_now
from visdepth.results.schemas.common import LayerStats

#: the config fields every experiment's per-sample numbers depend on (each adds its own)
COMMON_FINGERPRINT_KEYS = ("model", "model_args", "device", "dtype", "seed", "chat")


class ExperimentConfig(BaseModel):
    """What every experiment is configured with: the model and how to load it, the tasks, the seed, prompt
    formatting, and where and how results are written (lm-eval names).

    Each field is the one source of its option: default, range (``ge=...``) and help text are declared here and
    the CLI is made from them. A value out of range, or an unknown field, is a one-line :class:`ConfigError`.
    """

    model_config = ConfigDict(extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(validation_message(type(self), err.errors()[0])) from None

    model: str = Field(
        default=DEFAULT_MODEL, description="HF id, local folder, or built-in name (see `visdepth models`)"
    )
    model_args: dict[str, Any] = Field(
        default_factory=dict,
        description="from_pretrained kwargs, e.g. 'revision=main,trust_remote_code=true' (processor_* go to the "
        "processor)",
    )
    tasks: list[str] = Field(
        default_factory=lambda: [DEFAULT_DATASET_NAME],
        validation_alias=AliasChoices("tasks", "data"),
        description="tasks, built-in data sets or JSONL manifests, comma-separated (see `visdepth datasets`)",
        json_schema_extra={"cli": ["--data"]},
    )
    limit: int | None = Field(default=None, ge=1, description="use only the first N samples of each task")
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:1, mps")
    dtype: str = Field(default="auto", description="auto, float32, bfloat16, float16")
    seed: int = Field(default=0, description="seed of every random choice (same seed, same numbers)")
    chat: bool = Field(default=True, description="format prompts with the model's chat template")
    output_path: str = Field(
        default="outputs", description="folder for results.json, samples.jsonl and figures"
    )
    log_samples: bool = Field(default=True, description="keep the per-sample JSONL")
    progress: bool = Field(default=True, description="show progress bars")

    @field_validator("tasks", mode="before")
    @classmethod
    def _task_list(cls, value: Any) -> Any:
        """One name, or several comma-separated, as well as a list."""
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def none_word(value: Any) -> Any:
    """``none`` (or an empty name) typed on the command line -> ``None`` (a field validator, mode "before")."""
    return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value


def cut_list(value: Any, *, allow_all: bool) -> Any:
    """``"0,4,8"`` (as typed on the command line) -> ``[0, 4, 8]``; with ``allow_all``, ``"all"`` stays; any other
    value is left to the field's type (a field validator, mode "before")."""
    if not isinstance(value, str) or (allow_all and value.strip().lower() == "all"):
        return value
    what, example = (
        ("'all' or whole numbers", "--cut all or --cut 0,4,8")
        if allow_all
        else ("whole numbers", "--cut 4 or --cut 4,6,8")
    )
    try:
        cuts = [int(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise ValueError(f"--cut {value!r} is not {what}; write e.g. {example}") from None
    if not cuts:
        raise ValueError(f"--cut names no depth; write e.g. {example}")
    return cuts


def validation_message(config_class: type[BaseModel], error: dict[str, Any]) -> str:
    """One line for pydantic's first complaint, in the words of the option and its declared range."""
    name = ".".join(str(p) for p in error["loc"]) or "config"
    got, kind, ctx = error.get("input"), error["type"], error.get("ctx") or {}
    option = f"--{name}"
    if kind == "extra_forbidden":
        import difflib

        fields = list(config_class.model_fields)
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"did you mean {close[0]}?" if close else f"the options are {', '.join(fields)}."
        return f"unknown option {name!r}; {hint}"
    if kind == "value_error":  # a validator of the config said why, naming the option itself
        return f"{ctx.get('error', error['msg'])}."
    if kind == "literal_error" and name in config_class.model_fields:
        allowed = typing.get_args(config_class.model_fields[name].annotation)
        return f"{option} {got!r} is unknown; use {', '.join(map(str, allowed))}."
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        what = "at least" if kind == "greater_than_equal" else "more than"
        positive = " (not a positive whole number)" if bound in (0, 1) and isinstance(got, int) else ""
        return f"{option} must be {what} {bound}, got {got!r}{positive}."
    return f"{option}: {error['msg'][0].lower()}{error['msg'][1:]} (got {got!r})."


def run_dir(output_path: str | Path, adapter_name: str, experiment: str) -> Path:
    """``<output_path>/<model slug>/<experiment>``: one folder per model and experiment."""
    slug = adapter_name.replace("/", "__").replace(":", "-")
    return Path(output_path) / slug / experiment


def check_output_path(output_path: str | os.PathLike[str]) -> Path:
    """Refuse an ``--output_path`` that cannot hold a run folder, before any model is loaded: one that is (or
    lies under) an existing file, or whose nearest existing folder cannot be written to. Creates nothing."""
    path = Path(output_path)
    shown = str(output_path)
    existing = path
    try:
        while not existing.exists() and existing.parent != existing:
            existing = existing.parent
    except OSError as err:
        raise ConfigError(
            f"--output_path {shown}: cannot look at {existing} ({err.strerror}); pass a folder you can write to."
        ) from None
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {existing}, which is a file"
        raise ConfigError(
            f"--output_path {shown} {where}, not a folder; pass a folder path (a missing folder is created)."
        )
    # a real (unnamed, self-deleting) file rather than os.access, which says yes to root and can miss
    # read-only mounts and file systems that refuse new files (such as /sys)
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".visdepth-probe-"):
            pass
    except OSError as err:
        reason = err.strerror or errno.errorcode.get(err.errno or 0, "not writable")
        inside = "" if existing == path else f" (its nearest existing folder {existing})"
        raise ConfigError(
            f"--output_path {shown}{inside} cannot be written to ({reason.lower()}); pass a folder you can "
            "write to."
        ) from None
    return path


def start_run(config: ExperimentConfig) -> datetime:
    """What every run does first, before data or a model is loaded: seed everything, check the output path;
    returns the start time (give it to :func:`write_results`)."""
    started_at = utc_now()
    set_seed(config.seed)
    check_output_path(config.output_path)
    return started_at


def lock_run_dir(out: Path) -> contextlib.AbstractContextManager[None]:
    """The run folder's lock, for ``with lock_run_dir(out):`` around everything a run writes there: a second
    run into the same folder is refused (:class:`~visdepth.results.lock.RunLockedError`) instead of appending
    every row a second time; a killed run's lock goes with its process. In a data-parallel run the main rank
    holds it and the other ranks lock their own rows file (:func:`visdepth.experiments.distributed.lock_run`)."""
    return distributed.lock_run(out)


def fingerprint(config: BaseModel, keys: Iterable[str]) -> str:
    """Hash of the config fields that change per-sample numbers (a resumed run must match it)."""
    blob = json.dumps({k: getattr(config, k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resumable_rows(
    path: Path,
    items: Sequence[Any],
    measure: Callable[[Any], dict[str, Any]] | None = None,
    *,
    config_fingerprint: str,
    measure_batch: Callable[[list[Any]], list[dict[str, Any]]] | None = None,
    batch_size: int = 1,
    bucket: Callable[[Any], Any] = lambda item: None,
    item_id: Callable[[Any], str] = lambda item: item.id,
    label: str = "",
    progress: bool = True,
    order: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Measure every item whose id is not yet in ``path`` and return the rows of all ``items``, in order.

    Give ``measure(item) -> row``, or ``measure_batch(items) -> rows`` with ``batch_size``: a batch is a run of
    consecutive items still to do that share a ``bucket`` key (batches are planned over what is missing, so a
    resumed run measures each missing item once). Rows get their ``id`` here and are fsync'd one by one. A file
    holding rows of another configuration is refused rather than mixed with this one.

    In a data-parallel run (:mod:`visdepth.experiments.distributed`) every rank calls this with the same items:
    the batches are dealt round-robin, each rank appends to its own ``<stem>.rank<k>.jsonl``, and the main rank
    merges every rows file into ``path`` in item order (``order``, the ids of every item of the run, when
    ``items`` are one stage of it); every rank returns all rows. Rows of an earlier run (``path`` or rank files
    of any process count) count as done, in one process as in several.
    """
    if (measure is None) == (measure_batch is None):
        raise ValueError("give either measure or measure_batch")
    if measure is not None:
        measure_batch, batch_size = (lambda batch: [measure(batch[0])]), 1
    ranks = distributed.current()
    path.parent.mkdir(parents=True, exist_ok=True)
    earlier = distributed.rows_files(path)
    done = _done_ids(earlier, config_fingerprint)
    # every rank has read what is done before any rank writes, so all deal the same batches
    distributed.barrier()
    todo = [it for it in items if item_id(it) not in done]
    mine = distributed.deal(_batches(todo, batch_size, bucket), ranks)
    total = sum(len(b) for b in mine)
    bar = tqdm(total=total, desc=label, disable=not (progress and ranks.is_main), unit="sample")
    with JsonlWriter(distributed.writing_path(path, ranks), resume=True) as writer, bar:
        for batch in mine:
            for item, row in zip(batch, measure_batch(batch), strict=True):
                row["id"] = item_id(item)
                row["config_fingerprint"] = config_fingerprint
                writer.write(row)
                bar.update()
    distributed.barrier()
    gather_rows(path, order if order is not None else [item_id(it) for it in items])
    by_id = {r["id"]: r for r in read_jsonl(path, key="id")}
    return [by_id[item_id(it)] for it in items if item_id(it) in by_id]


def gather_rows(path: Path, order: Sequence[str]) -> None:
    """Every process meets here; the main one first merges any rank files beside ``path`` into it (this run's
    or a killed earlier one's), so that afterwards ``path`` alone holds every row measured so far."""
    if distributed.current().is_main and any(p != path for p in distributed.rows_files(path)):
        merge_rows(path, order)
    distributed.barrier()


def _done_ids(files: list[Path], config_fingerprint: str) -> set[str]:
    """Ids of the rows already in ``files``; refuses rows of another configuration."""
    done: set[str] = set()
    for f in files:
        rows = read_jsonl(f, key="id")
        foreign = {r.get("config_fingerprint") for r in rows} - {config_fingerprint, None}
        if foreign:
            raise ConfigError(
                f"{f} holds rows of a different configuration; pass another --output_path or delete the file."
            )
        done.update(str(r["id"]) for r in rows if r.get("id") is not None)
    return done


def _batches(todo: list[Any], batch_size: int, bucket: Callable[[Any], Any]) -> list[list[Any]]:
    """Runs of up to ``batch_size`` consecutive items sharing a ``bucket`` key."""
    batches, start = [], 0
    while start < len(todo):
        end = start + 1
        while end < len(todo) and end - start < batch_size and bucket(todo[end]) == bucket(todo[start]):
            end += 1
        batches.append(todo[start:end])
        start = end
    return batches


def merge_rows(path: Path, order: Sequence[str]) -> Path:
    """Every rows file of ``path`` (itself and its rank files) into ``path``, each id once, rows of ``order``
    (the plan's item ids) first in that order, then any others (rows of a larger earlier run) as they came;
    written atomically, then the rank files are removed. The result does not depend on which rank measured what.
    """
    files = distributed.rows_files(path)
    rows = unique_rows([r for f in files for r in read_jsonl(f)], key="id")
    rank = {item: i for i, item in enumerate(order)}
    rows.sort(key=lambda r: rank.get(str(r.get("id")), len(rank)))  # stable: the others keep their order
    write_text_atomic(path, "".join(dumps(r) + "\n" for r in rows))
    for f in files:
        if f != path:
            f.unlink(missing_ok=True)
    return path


def column_stats(values: np.ndarray) -> LayerStats:
    """Per column of a (samples, depths) array: mean, std, median, quartiles and count, ignoring NaN."""
    count = np.sum(~np.isnan(values), axis=0)

    def column(fn) -> list[float | None]:
        result = []
        for j in range(values.shape[1]):
            col = values[:, j][~np.isnan(values[:, j])]
            result.append(float(fn(col)) if col.size else None)
        return result

    return LayerStats(
        mean=column(np.mean),
        std=column(lambda c: np.std(c, ddof=1) if c.size > 1 else 0.0),
        median=column(np.median),
        q25=column(lambda c: np.quantile(c, 0.25)),
        q75=column(lambda c: np.quantile(c, 0.75)),
        count=[int(c) for c in count],
    )


def write_results(result: Any, out: Path, log_samples: bool, *, started_at: datetime) -> Any:
    """Stamp ``result.meta`` with the run's start (``started_at``, from :func:`start_run`) and finish (now),
    record the row files in ``result.files``, write ``results.json``, and drop the row files when
    ``log_samples`` is off (only once the summary is safely on disk: the rows were needed for resuming).

    Figures are not made here: :mod:`visdepth.report` draws them from ``results.json``."""
    result.meta.started_at = started_at
    result.meta.finish()
    rows = sorted(out.glob("samples*.jsonl"))
    result.files = {p.stem: p.name for p in rows}
    if not log_samples:
        write_json(out / "results.json", result)
        for p in rows:
            p.unlink(missing_ok=True)
        result.files = {}
    write_json(out / "results.json", result)
    return result
