"""Measured cost per cut: median prefill latency, per-token decode latency and peak memory in one mode."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from visdepth.compute import measure, peak_memory
from visdepth.interventions.truncate import truncated_generate, truncated_logits
from visdepth.models import VLMAdapter
from visdepth.models.base import ModelInputs

#: tokens generated per timed generation: the decode latency is (t(n) - t(1)) / (n - 1)
TIMING_NEW_TOKENS = 16


# ---------------------------------------------------------------------------------------------- timing
def measure_timing(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    cuts: list[int],
    mode: str,
    repeats: int,
    new_tokens: int = TIMING_NEW_TOKENS,
    progress: bool = True,
) -> dict[str, Any]:
    """Median prefill latency, per-token decode latency and peak memory of generation, per cut, in ``mode``.

    Prefill: one forward pass of the prompt (vision encoder included, the same at every cut). Decode per token:
    ``(t(n new tokens) - t(1)) / (n - 1)`` with generation forced to ``n`` tokens, so the prefill cancels out.
    Repeats go round-robin over the cuts (each call warmed up once), so a machine whose load drifts during the
    measurement slows every cut alike instead of a few. A progress bar (off with ``progress=False``) counts the
    timed measurements, then the peak-memory runs.
    """
    device = adapter.device

    def calls(cut: int) -> dict[str, Callable[[], Any]]:
        def generate(n: int) -> Any:
            return truncated_generate(adapter, inputs, cut, mode, max_new_tokens=n, min_new_tokens=n)

        return {
            "prefill": lambda: truncated_logits(adapter, inputs, cut, mode, last_only=True),
            "one": lambda: generate(1),
            "many": lambda: generate(new_tokens),
        }

    fns = {cut: calls(cut) for cut in cuts}
    times: dict[int, dict[str, list[float]]] = {cut: {k: [] for k in fns[cut]} for cut in cuts}
    clock = ""
    total = repeats * sum(len(f) for f in fns.values()) + len(cuts)
    with tqdm(total=total, desc="timing", disable=not progress, unit="call") as bar:
        for r in range(repeats):
            for cut in cuts:
                for key, fn in fns[cut].items():
                    bar.set_postfix_str(f"cut {cut} {key}", refresh=False)
                    timing = measure(fn, device, repeats=1, warmup=int(r == 0))
                    times[cut][key].append(timing.median_s)
                    clock = timing.clock
                    bar.update()
        peaks = []
        for cut in cuts:
            bar.set_postfix_str(f"cut {cut} peak memory", refresh=False)
            peaks.append(peak_memory(fns[cut]["many"], device))
            bar.update()
    prefill, one, many = ([statistics.median(times[c][k]) for c in cuts] for k in ("prefill", "one", "many"))
    decode = [(m - o) / (new_tokens - 1) for m, o in zip(many, one, strict=True)]
    return {
        "mode": mode,
        "repeats": repeats,
        "new_tokens": new_tokens,
        "clock": clock,
        "prefill_s": prefill,
        "generate_1_s": one,
        "generate_n_s": many,
        "decode_per_token_s": decode,
        "peak_memory_bytes": peaks,
        "prefill_speedup": [prefill[-1] / p for p in prefill],
        # on a noisy CPU the difference of two timings can come out negative: no speed-up is defined then
        "decode_speedup": [decode[-1] / d if d > 0 else float("nan") for d in decode],
    }
