"""What a sweep over every cut depth costs, relative to one unmodified forward pass of the same samples.

Three timings per model (best of ``--repeats`` after a warm-up, wall clock):
  forward  one unmodified pass, vision tower included, next-token logits only (``logits_to_keep=1``);
  sweep    ``sweep_cut_logits``: next-token logits at all L+1 cut depths (shared-prefix, layer-major);
  naive    ``truncated_logits(cut, "drop")`` once per cut depth (each a full pass, vision tower included).
``--mode`` picks the truncation mode (default drop; freeze, skip_attn, skip_mlp, no_img2img recompute the image
positions per cut too, so their sweep costs more, about half of the naive runs). It also prints the token-block
ratio the sweep should approach, 1 + |recomputed| (L+1) / (2T), which ignores the
vision tower and per-call overheads.

Models: the default tiny model, and random-weight models (``benchmarks/shapes.py``) built from configs with the
shape of real ones scaled down to fit a CPU: ``llava16`` (LLaVA-1.5 layout: 336 px CLIP tower, 576 image tokens,
16 Llama blocks) and ``qwen36`` (Qwen2.5-VL-3B depth: 36 blocks, GQA, M-RoPE, a 672 px image = 576 tokens).
Random weights are fine for timing.
Run: ``python benchmarks/sweep_cost.py [--models default,llava16,qwen36] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import shapes  # benchmarks/shapes.py, beside this script
import torch
from PIL import Image

import visdepth
from visdepth.defaults import DEFAULT_MODEL
from visdepth.interventions.hooks import prefill_kwargs
from visdepth.interventions.sweep import sweep_cut_logits
from visdepth.interventions.truncate import truncated_logits
from visdepth.models.base import VLMAdapter

QUESTIONS = ["What is it?", "Which colour dominates?"]
# The tiny byte-level tokenizer spends one token per byte, so the chat-formatted text after the image is about 3x
# longer than with a real BPE vocabulary. "short" is a raw prompt whose post-image length (about 15 tokens) is that
# of a real LLaVA-1.5 / Qwen chat prompt with a short question.
PROMPTS = {"chat": (QUESTIONS, True), "short": (["\nWhat? A:", "\nColour? A:"], False)}


def photos(size: int) -> list[Image.Image]:
    from skimage import data

    return [
        Image.fromarray(data.astronaut()).resize((size, size)),
        Image.fromarray(data.chelsea()).resize((size, size)),
    ]


MODELS: dict[str, tuple[Callable[[], VLMAdapter], int]] = {
    "default": (lambda: visdepth.load(DEFAULT_MODEL, device="cpu"), 48),
    "llava16": (shapes.llava16, 336),
    "qwen36": (shapes.qwen36, 672),
}


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


@torch.no_grad()
def measure(
    adapter: VLMAdapter, size: int, prompt: str, repeats: int, naive_repeats: int, mode: str = "drop"
) -> None:
    questions, chat = PROMPTS[prompt]
    inputs = adapter.build_inputs([[im] for im in photos(size)], questions, chat=chat)
    L = adapter.num_layers
    T = inputs.input_ids.shape[1]
    kwargs = prefill_kwargs(adapter, inputs, use_cache=False, logits_to_keep=1)

    def forward() -> None:
        adapter.model(**kwargs)

    def sweep() -> None:
        sweep_cut_logits(adapter, inputs, mode=mode)

    def naive() -> None:
        for cut in range(L + 1):
            truncated_logits(adapter, inputs, cut, mode, last_only=True)

    result = sweep_cut_logits(adapter, inputs, mode=mode)
    recomputed = int(result.recomputed.sum(1).max())
    shared = int(result.shared.sum(1).max())
    images = inputs.image_mask.sum(1).tolist()
    f_min, f_med = best_of(forward, repeats)
    s_min, s_med = best_of(sweep, repeats)
    n_min = best_of(naive, naive_repeats)[0] if naive_repeats else float("nan")
    token_ratio = 1 + recomputed * (L + 1) / (2 * T)
    print(
        f"\n{adapter.name}, {prompt} prompt, {mode} mode: L={L}, batch={len(questions)}, T={T}, image tokens {images}, "
        f"shared {shared}, recomputed {recomputed} per sample"
    )
    print(f"  forward  {f_min * 1e3:9.1f} ms (median {f_med * 1e3:.1f})")
    print(
        f"  sweep    {s_min * 1e3:9.1f} ms (median {s_med * 1e3:.1f})   ratio {s_min / f_min:.2f}x "
        f"(token-block estimate {token_ratio:.2f}x)"
    )
    if naive_repeats:
        print(
            f"  naive    {n_min * 1e3:9.1f} ms                    ratio {n_min / f_min:.2f}x ({L + 1} cuts)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="default,llava16,qwen36")
    parser.add_argument(
        "--prompts", default="chat,short", help="prompt styles; naive is timed for the first only"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mode", default="drop", help="truncation mode of the sweep and of the naive runs")
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s), device cpu")
    for name in args.models.split(","):
        build, size = MODELS[name.strip()]
        adapter = build()
        for i, prompt in enumerate(args.prompts.split(",")):
            naive = args.naive_repeats if i == 0 else 0
            measure(adapter, size, prompt.strip(), args.repeats, naive, args.mode)


if __name__ == "__main__":
    main()
