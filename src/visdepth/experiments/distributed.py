"""Data-parallel runs: which process this is, the device it measures on, and where the processes meet.

visdepth never starts processes itself: ``accelerate launch --num_processes N -m visdepth ...`` or
``torchrun --nproc_per_node N -m visdepth ...`` start N copies of one command and set ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; accelerate's :class:`~accelerate.PartialState` then joins them in one process group (NCCL on GPUs,
gloo on CPUs). Without those variables (or with ``WORLD_SIZE=1``) nothing is initialised and every call here is
a no-op, so a one-process run is exactly what it was before.

The protocol the runner and :func:`visdepth.experiments.common.resumable_rows` follow on top of this:

- every rank loads the model on its own device (``cuda:LOCAL_RANK`` on a GPU node) and makes the same plan;
- the main rank holds the run folder's lock, the others a lock of their own rows file;
- every rank reads every rows file of the folder (``samples.jsonl`` and any ``samples.rank<k>.jsonl`` of an
  earlier run, whatever its process count) before anyone writes, so all agree on what is left;
- what is left is cut into the same batches a one-process run would measure, dealt round-robin to the ranks;
  each rank appends its rows to ``samples.rank<k>.jsonl``;
- after a barrier the main rank merges every rows file into ``samples.jsonl`` in the plan's item order (so the
  file does not depend on rank order or process count), removes the rank files, summarises and writes
  ``results.json``; the other ranks wait and read it back.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

#: how long a process waits at a meeting point: one done with its share waits for the slowest (and for the main
#: process's summary). A failed process never leaves the others hanging: the launcher stops them all.
BARRIER_TIMEOUT = timedelta(hours=12)
#: how many processes the launcher started (torchrun and accelerate launch set it, with RANK and LOCAL_RANK, which
#: accelerate reads)
WORLD_SIZE_VAR = "WORLD_SIZE"


@dataclass(frozen=True)
class Ranks:
    """This process's place in a run: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_world_size() -> int:
    """How many processes the launcher started (1 when none did)."""
    try:
        return max(1, int(os.environ.get(WORLD_SIZE_VAR, "1")))
    except ValueError:
        return 1


def _state() -> Any:
    """accelerate's process state, created once (it joins the process group from the launcher's variables)."""
    import torch
    from accelerate import PartialState

    # accelerate joins CPU processes (gloo) only when told it runs on the CPU; torchrun's variables do not say so
    return PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT)


def current() -> Ranks:
    """This process's :class:`Ranks`; ``Ranks()`` (rank 0 of 1) when no launcher started several processes."""
    if launched_world_size() <= 1:
        return Ranks()
    state = _state()
    return Ranks(state.process_index, state.num_processes, state.local_process_index)


def barrier() -> None:
    """Wait until every process gets here (nothing in a one-process run)."""
    if launched_world_size() > 1:
        _state().wait_for_everyone()


def device_for(device: str) -> str:
    """The ``--device`` this process loads its model on: in a multi-process run on GPUs, ``auto`` and ``cuda``
    become ``cuda:LOCAL_RANK`` (one GPU per process, as accelerate gives them); anything else is kept."""
    ranks = current()
    if not ranks.distributed:
        return device
    from visdepth.models import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        return f"cuda:{ranks.local_rank}"
    return device


def model_args_for(model_args: dict[str, Any]) -> dict[str, Any]:
    """``--model_args`` for this process. Data and model parallel together (``device_map=auto`` under a launcher
    on a GPU node): each process gets its own equal share of the machine's GPUs, through ``max_memory``, so
    that N processes never spread N copies over the same GPUs. Anything else is kept as given."""
    ranks = current()
    device_map = model_args.get("device_map")
    if not ranks.distributed or not isinstance(device_map, str) or device_map == "cpu":
        return model_args
    import torch

    if not torch.cuda.is_available():
        return model_args
    local = int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world_size))
    mine = gpus_of_process(ranks.local_rank, local, torch.cuda.device_count())
    given = model_args.get("max_memory")
    memory: dict[Any, Any] = {}
    for gpu in mine:
        whole = torch.cuda.get_device_properties(gpu).total_memory
        if isinstance(given, dict):
            memory[gpu] = given.get(gpu, given.get(str(gpu), whole))
        else:
            memory[gpu] = given or whole
    if isinstance(given, dict) and "cpu" in given:
        memory["cpu"] = given["cpu"]
    return {**model_args, "max_memory": memory}


def gpus_of_process(local_rank: int, processes: int, gpus: int) -> list[int]:
    """The GPUs process ``local_rank`` of ``processes`` on one machine may use: an equal, contiguous share."""
    from visdepth.errors import ConfigError

    share = gpus // processes
    if share < 1:
        raise ConfigError(
            f"device_map with {processes} processes on a machine with {gpus} GPU(s) leaves a process without a GPU; "
            f"start at most {gpus} processes (--num_processes {max(gpus, 1)}), or one process for a model across all."
        )
    return list(range(local_rank * share, (local_rank + 1) * share))


def rank_rows_path(path: Path, rank: int) -> Path:
    """``samples.jsonl`` -> ``samples.rank<k>.jsonl``: the rows file rank ``k`` appends to."""
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def rows_files(path: Path) -> list[Path]:
    """Every rows file that holds rows of ``path``: itself (when it exists), then the rank files beside it in
    rank order, from this run or an earlier one of any process count."""
    pattern = re.compile(rf"{re.escape(path.stem)}\.rank(\d+){re.escape(path.suffix)}")
    ranked = [
        (int(m.group(1)), p)
        for p in path.parent.glob(f"{path.stem}.rank*")
        if (m := pattern.fullmatch(p.name))
    ]
    return ([path] if path.exists() else []) + [p for _, p in sorted(ranked)]


def writing_path(path: Path, ranks: Ranks) -> Path:
    """Where this process appends its rows: ``path`` itself in a one-process run, its rank file otherwise."""
    return rank_rows_path(path, ranks.rank) if ranks.distributed else path


def deal(batches: list[Any], ranks: Ranks) -> list[Any]:
    """This rank's batches: every ``world_size``-th one, starting at its rank (the same batches as one process
    would measure, so each row is computed exactly as a one-process run computes it)."""
    return batches[ranks.rank :: ranks.world_size]


@contextlib.contextmanager
def lock_run(out: Path) -> Iterator[None]:
    """The run folder's lock for this process: the main rank takes the folder's (a second run into it is
    refused), then the others take one for their rows file; nobody goes on before the main rank holds it."""
    from visdepth.results.lock import RunLock

    ranks = current()
    if not ranks.distributed:
        with RunLock(out):
            yield
        return
    main_lock = RunLock(out) if ranks.is_main else None
    if main_lock is not None:
        main_lock.acquire()
    try:
        barrier()
        own = None if ranks.is_main else RunLock(out, name=f".visdepth.rank{ranks.rank}.lock")
        if own is not None:
            own.acquire()
        try:
            yield
        finally:
            if own is not None:
                own.release()
        # the main rank keeps the folder until every rank is done with it (not after an error: the launcher
        # stops every process when one fails, and a barrier here would wait for ranks that never come)
        barrier()
    finally:
        if main_lock is not None:
            main_lock.release()
