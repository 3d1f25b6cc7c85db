"""Timing and peak-memory helpers on the CPU: what they return, not how fast anything is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from visdepth.compute import Timing, measure, peak_memory


def test_measure_times_each_repeat_after_warmup():
    calls = []
    timing = measure(lambda: calls.append(sum(range(1000))), device="cpu", repeats=4, warmup=2)
    assert isinstance(timing, Timing)
    assert len(calls) == 6
    assert timing.repeats == 4 and len(timing.times_s) == 4
    assert all(t > 0 for t in timing.times_s)
    assert timing.clock == "perf_counter"
    assert timing.min_s <= timing.median_s <= timing.max_s
    assert timing.min_s <= timing.mean_s <= timing.max_s
    assert timing.as_dict()["times_s"] == timing.times_s


def test_measure_needs_a_repeat():
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)


def _clear_refs_writable() -> bool:
    return Path("/proc/self/clear_refs").exists() and os.access("/proc/self/clear_refs", os.W_OK)


@pytest.mark.skipif(
    not _clear_refs_writable(), reason="peak RSS can only be reset through /proc/self/clear_refs"
)
def test_peak_memory_sees_a_64_mb_tensor():
    # ones, not empty/zeros: the pages must be written to become resident
    peak = peak_memory(lambda: torch.ones(16 * 1024 * 1024, dtype=torch.float32), device="cpu")
    assert peak is not None
    assert peak >= 60 * 1024 * 1024
    assert peak < 1024 * 1024 * 1024
