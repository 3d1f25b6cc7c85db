"""What a sweep over every cut depth costs, relative to one unmodified forward pass of the same samples.

Three timings per model (best of ``--repeats`` after a warm-up, wall clock):
  forward  one unmodified pass, vision tower included, next-token logits only (``logits_to_keep=1``);
  sweep    ``sweep_cut_logits``: next-token logits at all L+1 cut depths (shared-prefix, layer-major);
  naive    ``truncated_logits(cut, "drop")`` once per cut depth (each a full pass, vision tower included).
It also prints the token-block ratio the sweep should approach, 1 + |recomputed| (L+1) / (2T), which ignores the
vision tower and per-call overheads.

Models: the default tiny model, and random-weight models built from configs with the shape of real ones scaled
down to fit a CPU: ``llava16`` (LLaVA-1.5 layout: 336 px CLIP tower, 576 image tokens, 16 Llama blocks) and
``qwen36`` (Qwen2.5-VL-3B depth: 36 blocks, GQA, M-RoPE, a 672 px image = 576 tokens). Random weights are fine
for timing. Run: ``python benchmarks/sweep_cost.py [--models default,llava16,qwen36] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

import visdepth
from visdepth.defaults import DEFAULT_MODEL
from visdepth.interventions.hooks import prefill_kwargs
from visdepth.interventions.sweep import sweep_cut_logits
from visdepth.interventions.truncate import truncated_logits
from visdepth.models import tiny
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


def llava16() -> VLMAdapter:
    """LLaVA-1.5 layout scaled down: CLIP-style 336 px / 14 px tower (576 tokens), 16 Llama blocks of width 256."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaImageProcessorPil,
        LlavaProcessor,
    )

    from visdepth.models.llava import LlavaAdapter

    tok = tiny.byte_tokenizer(
        ["<image>"], {"image_token": "<image>"}, chat_template=tiny.chat_template("<image>\n")
    )
    text = LlamaConfig(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=16,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=32000,
        pad_token_id=tok.pad_token_id,
        max_position_embeddings=4096,
    )
    vision = CLIPVisionConfig(
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=4,
        num_attention_heads=4,
        image_size=336,
        patch_size=14,
    )
    config = LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tiny.token_id(tok, "<image>"),
        vision_feature_select_strategy="default",
    )
    model = tiny.seeded_init(LlavaForConditionalGeneration, config, 0)
    size = {"height": 336, "width": 336}
    processor = LlavaProcessor(
        image_processor=LlavaImageProcessorPil(size=size, crop_size=size, do_center_crop=False),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy removes again
        chat_template=tok.chat_template,
    )
    return LlavaAdapter(model, processor, "random llava16 (LLaVA-1.5 layout, 16 x 256)")


def qwen36() -> VLMAdapter:
    """Qwen2.5-VL-3B depth (36 blocks, GQA 8/2, M-RoPE) at width 256; a 672 px image gives 576 tokens."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLVisionConfig,
        Qwen2VLImageProcessorPil,
    )

    from visdepth.models.qwen2_vl import (
        IMAGE_PAD,
        IMAGE_TEXT,
        VIDEO_PAD,
        VISION_END,
        VISION_START,
        Qwen2VLAdapter,
    )

    tok = tiny.byte_tokenizer(
        [VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD],
        {"image_token": IMAGE_PAD, "video_token": VIDEO_PAD},
        chat_template=tiny.chat_template(IMAGE_TEXT),
    )
    text = Qwen2_5_VLTextConfig(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=36,
        num_attention_heads=8,
        num_key_value_heads=2,
        vocab_size=32000,
        pad_token_id=tok.pad_token_id,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 4, 4]},
    )
    vision = Qwen2_5_VLVisionConfig(
        depth=4,
        hidden_size=128,
        intermediate_size=256,
        num_heads=4,
        out_hidden_size=256,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[3],
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tiny.token_id(tok, IMAGE_PAD),
        video_token_id=tiny.token_id(tok, VIDEO_PAD),
        vision_start_token_id=tiny.token_id(tok, VISION_START),
        vision_end_token_id=tiny.token_id(tok, VISION_END),
    )
    model = tiny.seeded_init(Qwen2_5_VLForConditionalGeneration, config, 0)
    pixels = 672 * 672
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    processor = tiny.build_processor(
        Qwen2_5_VLProcessor, image_processor=image_processor, tokenizer=tok, chat_template=tok.chat_template
    )
    return Qwen2VLAdapter(model, processor, "random qwen36 (Qwen2.5-VL-3B depth, 36 x 256)")


MODELS: dict[str, tuple[Callable[[], VLMAdapter], int]] = {
    "default": (lambda: visdepth.load(DEFAULT_MODEL, device="cpu"), 48),
    "llava16": (llava16, 336),
    "qwen36": (qwen36, 672),
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
def measure(adapter: VLMAdapter, size: int, prompt: str, repeats: int, naive_repeats: int) -> None:
    questions, chat = PROMPTS[prompt]
    inputs = adapter.build_inputs([[im] for im in photos(size)], questions, chat=chat)
    L = adapter.num_layers
    T = inputs.input_ids.shape[1]
    kwargs = prefill_kwargs(adapter, inputs, use_cache=False, logits_to_keep=1)

    def forward() -> None:
        adapter.model(**kwargs)

    def sweep() -> None:
        sweep_cut_logits(adapter, inputs)

    def naive() -> None:
        for cut in range(L + 1):
            truncated_logits(adapter, inputs, cut, "drop", last_only=True)

    result = sweep_cut_logits(adapter, inputs)
    recomputed = int(result.recomputed.sum(1).max())
    shared = int(result.shared.sum(1).max())
    images = inputs.image_mask.sum(1).tolist()
    f_min, f_med = best_of(forward, repeats)
    s_min, s_med = best_of(sweep, repeats)
    n_min = best_of(naive, naive_repeats)[0] if naive_repeats else float("nan")
    token_ratio = 1 + recomputed * (L + 1) / (2 * T)
    print(
        f"\n{adapter.name}, {prompt} prompt: L={L}, batch={len(questions)}, T={T}, image tokens {images}, "
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
            measure(adapter, size, prompt.strip(), args.repeats, args.naive_repeats if i == 0 else 0)


if __name__ == "__main__":
    main()
