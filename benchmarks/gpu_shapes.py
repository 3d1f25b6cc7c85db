"""Timing and memory at a real model's shapes: a Qwen2.5-VL-7B-shaped VLM (random weights) on one 1024 x 1024 image.

Model: random weights with Qwen2.5-VL-7B's language model (28 blocks of 3584, MLP 18944, 28 heads / 4 KV heads,
M-RoPE, vocabulary 152064) and its vision tower (32 blocks of 1280, windowed attention with full attention in
blocks 7, 15, 23, 31, 14 px patches merged 2 x 2). A 1024 x 1024 photo gives 1296 image tokens, as the real
processor gives at max_pixels = 1024^2. Weights come from a repeated random pool (timing needs shapes, not
weights; drawing 8B normals would take minutes).

What is reported (one JSON file and a table), through the interventions' public API:
  prefill   next-token logits of the prompt, vision tower included, drop mode at l_c = L/4 and L/2 (and 0, L):
            the speed-up over the full model beside the analytic decoder FLOP ratio (visdepth.compute);
  decode    per-token time with the KV cache, the image KV removed above l_c: speed-up beside the FLOP ratio
            and the KV-cache ratio (timing as benchmarks/truncate_speed.py does it: streamer stamps);
  sweep     sweep_cut_logits (the last-position logits at every cut 0..L from one shared prefix) against one
            plain forward pass, and against L + 1 separate truncated passes;
  memory    peak GPU memory of each (torch.cuda.max_memory_allocated, weights included), the weights alone.

Run on a GPU: ``python benchmarks/gpu_shapes.py --device cuda --dtype bfloat16 --output gpu_shapes.json``
(about 16 GB of weights in bfloat16; a few minutes on one H100/H200-class GPU). ``--quick``: a CPU smoke run at
tiny shapes (4 blocks of 256, a 224 px image, one round) that checks the script end to end in seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))  # the sibling benchmark modules, from any working directory
import shapes  # noqa: E402  (benchmarks/shapes.py)
import truncate_speed  # noqa: E402  (benchmarks/truncate_speed.py: its prefill/decode timing loop)

from visdepth.compute import DecoderShape, cut_costs, measure, peak_memory  # noqa: E402
from visdepth.interventions.sweep import sweep_cut_logits  # noqa: E402
from visdepth.interventions.truncate import truncated_generate, truncated_logits  # noqa: E402
from visdepth.models.base import ModelInputs, VLMAdapter  # noqa: E402

DTYPES = truncate_speed.DTYPES


def peak_of(fn: Callable[[], Any], device: str) -> int | None:
    """Peak CUDA memory while ``fn()`` runs, weights included (what was allocated before it plus what it needed
    beyond that, :func:`visdepth.compute.peak_memory`); None off CUDA."""
    if not device.startswith("cuda"):
        return None
    return torch.cuda.memory_allocated(device) + peak_memory(fn, device)


def gib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f}"


@torch.no_grad()
def time_sweep(adapter: VLMAdapter, inputs: ModelInputs, args: argparse.Namespace) -> dict[str, Any]:
    """The all-cuts sweep against one plain forward pass (the full model's prefill) and L + 1 separate passes."""
    L = adapter.num_layers

    def forward() -> Any:
        return truncated_logits(adapter, inputs, L, "drop", last_only=True)

    def sweep() -> Any:
        return sweep_cut_logits(adapter, inputs)

    timings = {}
    for name, fn in (("forward", forward), ("sweep", sweep)):
        timing = measure(fn, device=args.device, repeats=args.repeats, warmup=args.warmup)
        timings[name] = timing.times_s
    # the separate passes: every cut once (timed once each, after the rounds above warmed everything)
    separate = 0.0
    for cut in range(L + 1):
        separate += measure(
            lambda cut=cut: truncated_logits(adapter, inputs, cut, "drop", last_only=True),
            device=args.device,
            repeats=1,
            warmup=0,
        ).times_s[0]
    fwd, swp = statistics.median(timings["forward"]), statistics.median(timings["sweep"])
    return {
        "forward": truncate_speed.summary(timings["forward"]),
        "sweep": truncate_speed.summary(timings["sweep"]),
        "separate_passes_s": separate,
        "sweep_over_forward": swp / fwd,
        "separate_over_sweep": separate / swp,
        "peak_bytes": {"forward": peak_of(forward, args.device), "sweep": peak_of(sweep, args.device)},
    }


def run(adapter: VLMAdapter, args: argparse.Namespace) -> dict[str, Any]:
    image = truncate_speed.photo(args.image_size)
    inputs = adapter.build_inputs([[image]], [args.question]).to(adapter.device)
    L = adapter.num_layers
    cuts = sorted({round(float(f) * L) for f in args.cuts.split(",")} | {L}, reverse=True)
    n_image = int(inputs.image_mask.sum())
    n_text = inputs.input_ids.shape[1] - n_image
    shape = DecoderShape.from_adapter(adapter)
    costs = {row["cut"]: row for row in cut_costs(shape, inputs.image_mask[0].cpu(), cuts)}
    device_name = truncate_speed.device_name(args.device)
    print(f"{adapter.name}\nL={L}, {n_image} image + {n_text} text tokens, {args.dtype} on {device_name}")
    weights = torch.cuda.memory_allocated() if args.device.startswith("cuda") else None

    start = time.perf_counter()
    times = truncate_speed.time_cuts(adapter, inputs, cuts, args)

    def speedup(kind: str, cut: int) -> float:
        return statistics.median(f / t for f, t in zip(times[kind][L], times[kind][cut], strict=True))

    rows = []
    n_new = 1 + args.new_tokens
    for cut in cuts:
        c = costs[cut]
        prefill_peak = peak_of(
            lambda cut=cut: truncated_logits(adapter, inputs, cut, "drop", True), args.device
        )
        decode_peak = peak_of(
            lambda cut=cut: truncated_generate(
                adapter, inputs, cut, "drop", max_new_tokens=n_new, min_new_tokens=n_new
            ),
            args.device,
        )
        rows.append(
            {
                "cut": cut,
                "depth": cut / L,
                "prefill": truncate_speed.summary(times["prefill"][cut]),
                "prefill_speedup": speedup("prefill", cut),
                "prefill_flop_ratio": c["prefill_flops_ratio"],
                "prefill_ideal_speedup": 1 / c["prefill_flops_ratio"],
                "decode_per_token": truncate_speed.summary(times["decode"][cut]),
                "decode_speedup": speedup("decode", cut),
                "decode_flop_ratio": c["decode_flops_ratio"],
                "kv_cache_ratio": c["kv_cache_bytes_ratio"],
                "kv_cache_bytes_16bit": c["kv_cache_bytes"],
                "peak_bytes": {"prefill": prefill_peak, "generate": decode_peak},
            }
        )
    sweep = time_sweep(adapter, inputs, args)
    elapsed = time.perf_counter() - start
    print_tables(rows, sweep, weights)
    print(f"\nmedians of {args.repeats} round(s), {args.new_tokens} decoding steps each; {elapsed:.0f} s")
    return {
        "model": adapter.name,
        "decoder_shape": shape.describe(),
        "num_parameters": sum(p.numel() for p in adapter.model.parameters()),
        "tokens": {"image": n_image, "text": n_text},
        "image_size": args.image_size,
        "question": args.question,
        "device": args.device,
        "device_name": device_name,
        "dtype": args.dtype,
        "versions": {name: version(name) for name in ("visdepth", "torch", "transformers")},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "new_tokens": args.new_tokens,
        "mode": "drop",
        "weights_bytes": weights,
        "seconds_timing": elapsed,
        "rows": rows,
        "sweep": sweep,
    }


def print_tables(rows: list[dict[str, Any]], sweep: dict[str, Any], weights: int | None) -> None:
    head = ("cut", "depth", "prefill ms", "speed-up", "1/FLOPs", "decode ms/tok", "speed-up", "1/FLOPs")
    head += ("KV ratio", "peak GiB")
    widths = (4, 6, 11, 9, 8, 14, 9, 8, 9, 9)
    print("\n" + " ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for r in rows:
        cells = (r["cut"], f"{r['depth']:.2f}", f"{r['prefill']['median_s'] * 1e3:.1f}")
        cells += (f"{r['prefill_speedup']:.2f}x", f"{r['prefill_ideal_speedup']:.2f}x")
        cells += (f"{r['decode_per_token']['median_s'] * 1e3:.2f}", f"{r['decode_speedup']:.2f}x")
        cells += (f"{1 / r['decode_flop_ratio']:.2f}x", f"{r['kv_cache_ratio']:.3f}")
        cells += (gib(r["peak_bytes"]["generate"]),)
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    fwd, swp = sweep["forward"]["median_s"], sweep["sweep"]["median_s"]
    print(
        f"\nall-cuts sweep {swp * 1e3:.1f} ms = {sweep['sweep_over_forward']:.2f} x one forward pass "
        f"({fwd * 1e3:.1f} ms); L + 1 separate passes {sweep['separate_passes_s'] * 1e3:.0f} ms "
        f"({sweep['separate_over_sweep']:.1f} x the sweep); peak GiB forward {gib(sweep['peak_bytes']['forward'])}, "
        f"sweep {gib(sweep['peak_bytes']['sweep'])}; weights {gib(weights)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (cuda:N) or cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--layers", type=int, default=28, help="decoder blocks to build, of 28")
    parser.add_argument(
        "--cuts", default="0.25,0.5,0", help="cut depths as fractions of L; L is always timed"
    )
    parser.add_argument("--repeats", type=int, default=5, help="rounds over every cut")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=16, help="decoding steps timed per generate call")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--question", default=truncate_speed.QUESTION)
    parser.add_argument("--quick", action="store_true", help="CPU smoke run at tiny shapes: 4 x 256, 224 px")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.repeats, args.new_tokens = min(args.layers, 4), 1, 2
        args.image_size = min(args.image_size, 224)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch finds no CUDA GPU; use --device cpu (with --quick on a laptop)")

    start = time.perf_counter()
    adapter = shapes.qwen2_5_vl_7b(args.layers, args.image_size, DTYPES[args.dtype], args.quick)
    adapter.model.to(args.device)
    print(f"built in {time.perf_counter() - start:.0f} s")
    result = run(adapter, args)
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
