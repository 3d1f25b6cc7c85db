"""How much faster visual-depth truncation (drop, and freeze beside it) makes a VLM of realistic shape, against
the FLOP ratio.

Model: random weights with Qwen2.5-VL-3B's language model (hidden 2048, MLP 11008, 16 heads / 2 KV heads,
M-RoPE, vocabulary 151936; ``--layers`` of its 36 blocks) behind a small vision tower that costs the same at
every cut. One 448 x 448 photo gives 256 image tokens, as with the real processor, and the chat prompt around
it 57 text tokens (the byte-level test tokenizer spends one token per byte; a real Qwen prompt has 30 to 60).

Timed after a warm-up, the cuts interleaved round by round (every other round in reverse) so that load drifting
on a shared machine hits them alike; medians over ``--repeats`` rounds, and speed-ups are the median of each
round's own ratio:
  prefill  next-token logits of the prompt, vision tower included (``truncated_logits``, last position only),
           timed by ``visdepth.compute.measure`` (CUDA events on a GPU, ``perf_counter`` on the CPU);
  decode   per token with the KV cache: ``truncated_generate`` of 1 + N tokens with a streamer that stamps the
           host clock as each token arrives (generate copies every token to the host, which waits for the
           device); the median of the N decoding steps, prefill excluded.
Cuts: the full model (l_c = L) and each mode (``--modes``, default drop and freeze) at L/4, L/2 and 0
(``--cuts``, fractions of L), each beside the analytic decoder FLOP ratio of ``visdepth.compute`` in that mode.
Freeze runs packed like drop (blocks above the cut take only text queries) but still computes the image tokens'
keys and values per block (and their queries, which its attention module computes before it is stopped at the
cache write), keeps them in the KV cache and lets text attend to them: its decode step is the full model's. The vision tower and per-call overheads are in the
measurement but not in the ratio, so the measured speed-up falls short of 1 / ratio.

Run: ``python benchmarks/truncate_speed.py [--device cuda] [--dtype bfloat16] [--layers 36] [--output F]``
(``--quick``: a smoke run of 4 blocks, 1 round, 2 decoding steps).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from importlib.metadata import version
from typing import Any

import shapes  # benchmarks/shapes.py, beside this script
import torch
from PIL import Image
from transformers.generation.streamers import BaseStreamer

from visdepth.compute import DecoderShape, cut_costs, measure
from visdepth.interventions.truncate import truncated_generate, truncated_logits
from visdepth.models.base import ModelInputs, VLMAdapter

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUESTION = "Describe this image in one sentence."


def photo(size: int) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((size, size))


class StepClock(BaseStreamer):
    """A ``generate`` streamer that only notes when the prompt and each new token arrive."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value: Any) -> None:
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass

    def decode_steps(self) -> list[float]:
        # stamps: the prompt, the first token (prefill), then one per decoding step
        return [b - a for a, b in zip(self.stamps[1:-1], self.stamps[2:], strict=True)]


@torch.no_grad()
def time_cuts(
    adapter: VLMAdapter, inputs: ModelInputs, cuts: list[int], args: argparse.Namespace, mode: str = "drop"
) -> dict[str, dict[int, list[float]]]:
    """Seconds per prefill, per-round median decoding step and every decoding step, for each cut in ``mode``."""
    N = args.new_tokens

    def prefill(cut: int) -> Any:
        return truncated_logits(adapter, inputs, cut, mode, last_only=True)

    def decode(cut: int) -> list[float]:
        clock = StepClock()
        n = 1 + N
        truncated_generate(adapter, inputs, cut, mode, max_new_tokens=n, min_new_tokens=n, streamer=clock)
        steps = clock.decode_steps()
        assert len(steps) == N, f"expected {N} decoding steps, timed {len(steps)}"
        return steps

    for cut in cuts:
        for _ in range(args.warmup):
            prefill(cut)
            decode(cut)
    out: dict[str, dict[int, list[float]]] = {
        k: {c: [] for c in cuts} for k in ("prefill", "decode", "steps")
    }
    for i in range(args.repeats):
        # every other round runs the cuts in reverse, so that a steady drift in load favours none of them
        order = cuts if i % 2 == 0 else cuts[::-1]
        for cut in order:
            timing = measure(lambda cut=cut: prefill(cut), device=args.device, repeats=1, warmup=0)
            out["prefill"][cut] += timing.times_s
        for cut in order:
            steps = decode(cut)
            out["steps"][cut] += steps
            out["decode"][cut].append(statistics.median(steps))
    return out


def summary(times: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("mode", "cut", "depth", "|", "prefill ms", "speed-up", "FLOP ratio", "1/ratio", "|")
    head += ("decode ms/tok", "speed-up", "FLOP ratio", "KV ratio")
    widths = (6, 4, 6, 1, 11, 8, 10, 8, 1, 13, 8, 10, 8)
    print("\n" + " ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for r in rows:
        cells = (r["mode"], r["cut"], f"{r['depth']:.2f}", "|", f"{r['prefill']['median_s'] * 1e3:.1f}")
        cells += (f"{r['prefill_speedup']:.2f}x", f"{r['prefill_flop_ratio']:.3f}")
        cells += (f"{r['prefill_ideal_speedup']:.2f}x", "|", f"{r['decode_per_token']['median_s'] * 1e3:.1f}")
        cells += (
            f"{r['decode_speedup']:.2f}x",
            f"{r['decode_flop_ratio']:.3f}",
            f"{r['kv_cache_ratio']:.3f}",
        )
        print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))


def run(adapter: VLMAdapter, args: argparse.Namespace) -> dict[str, Any]:
    inputs = adapter.build_inputs([[photo(args.image_size)]], [args.question]).to(adapter.device)
    L = adapter.num_layers
    cuts = sorted({round(float(f) * L) for f in args.cuts.split(",")} | {L}, reverse=True)
    n_image = int(inputs.image_mask.sum())
    n_text = inputs.input_ids.shape[1] - n_image
    shape = DecoderShape.from_adapter(adapter)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(
        f"{adapter.name}\nL={L}, {n_image} image + {n_text} text tokens, {args.dtype} on {args.device} "
        f"({device_name(args.device)}), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )

    start = time.perf_counter()
    rows = []
    for mode in modes:
        costs = {row["cut"]: row for row in cut_costs(shape, inputs.image_mask[0].cpu(), cuts, mode=mode)}
        times = time_cuts(adapter, inputs, cuts, args, mode)

        def speedup(kind: str, cut: int, times: dict = times) -> float:
            # the median of each round's own ratio: a round's cuts ran back to back, under about the same load
            return statistics.median(f / t for f, t in zip(times[kind][L], times[kind][cut], strict=True))

        for cut in cuts:
            c = costs[cut]
            rows.append(
                {
                    "mode": mode,
                    "cut": cut,
                    "depth": cut / L,
                    "prefill": summary(times["prefill"][cut]),
                    "decode_per_token": {**summary(times["decode"][cut]), "steps_s": times["steps"][cut]},
                    "prefill_speedup": speedup("prefill", cut),
                    "prefill_flop_ratio": c["prefill_flops_ratio"],
                    "prefill_ideal_speedup": 1 / c["prefill_flops_ratio"],
                    "decode_speedup": speedup("decode", cut),
                    "decode_flop_ratio": c["decode_flops_ratio"],
                    "kv_cache_ratio": c["kv_cache_bytes_ratio"],
                    "prefill_flops": c["prefill_flops"],
                    "kv_cache_bytes_16bit": c["kv_cache_bytes"],
                }
            )
    elapsed = time.perf_counter() - start

    print_table(rows)
    print(f"\nmedians of {args.repeats} round(s), {args.new_tokens} decoding steps each; {elapsed:.0f} s")
    return {
        "model": adapter.name,
        "modes": modes,
        "decoder_shape": shape.describe(),
        "tokens": {"image": n_image, "text": n_text},
        "image_size": args.image_size,
        "question": args.question,
        "device": args.device,
        "device_name": device_name(args.device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "versions": {name: version(name) for name in ("visdepth", "torch", "transformers")},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "new_tokens": args.new_tokens,
        "prefill_clock": "cuda_events" if args.device.startswith("cuda") else "perf_counter",
        "decode_clock": "perf_counter as each token reaches the host",
        "seconds_timing": elapsed,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16")
    parser.add_argument("--layers", type=int, default=36, help="decoder blocks to build, of 36 (a CPU run)")
    parser.add_argument(
        "--cuts", default="0.25,0.5,0", help="cut depths as fractions of L; L is always timed"
    )
    parser.add_argument("--modes", default="drop,freeze", help="truncation modes to time, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="rounds over every cut")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=8, help="decoding steps timed per generate call")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 blocks, 1 round, 2 new tokens")
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.quick:
        args.layers, args.repeats, args.new_tokens = min(args.layers, 4), 1, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    adapter = shapes.qwen2_5_vl_3b(args.layers, args.image_size, DTYPES[args.dtype])
    adapter.model.to(args.device)
    print(f"built in {time.perf_counter() - start:.0f} s")
    result = run(adapter, args)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
