"""Measured latency and peak memory of a callable: CUDA events on a GPU, ``perf_counter`` on the CPU.

Peak memory on a GPU is ``torch.cuda.max_memory_allocated`` after a reset; on Linux CPUs it is the growth of the
process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) over its resident set before the
call, so it includes allocator slack. Elsewhere it is ``None`` (recorded, never guessed).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Timing:
    """Seconds per call over ``repeats`` timed calls (after warm-up)."""

    median_s: float
    mean_s: float
    min_s: float
    max_s: float
    repeats: int
    clock: str
    times_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_cuda(device: Any) -> bool:
    return torch.device(device).type == "cuda"


def measure(fn: Callable[[], Any], device: Any = "cpu", repeats: int = 5, warmup: int = 1) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then ``repeats`` timed ones (CUDA events on a GPU)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        fn()
    times: list[float] = []
    if _is_cuda(device):
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000.0)
        clock = "cuda_events"
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        clock = "perf_counter"
    return Timing(
        median_s=statistics.median(times),
        mean_s=statistics.fmean(times),
        min_s=min(times),
        max_s=max(times),
        repeats=repeats,
        clock=clock,
        times_s=times,
    )


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def peak_memory(fn: Callable[[], Any], device: Any = "cpu") -> int | None:
    """Peak bytes ``fn()`` needs beyond what was allocated before it, or ``None`` where it can't be read."""
    if _is_cuda(device):
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    before = _status_kib("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        return None
    fn()
    peak = _status_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) * 1024
