"""Random-weight VLMs with the shapes of real ones, for benchmarks (timing needs shapes, not weights).

The shapes the benchmarks use, as overrides of the ``tiny:`` recipes, built by the same builder as the tiny
test models (:func:`visdepth.models.tiny.build_random`, no download): a LLaVA-1.5 layout (CLIP-style tower,
Llama decoder) and Qwen2.5-VL layouts (its windowed tower and M-RoPE decoder), up to Qwen2.5-VL-7B at full size
(``benchmarks/gpu_shapes.py``). Image-token counts follow the real processors: LLaVA (image_size / patch)^2, Qwen
(image_size / 14)^2 / 4.
"""

from __future__ import annotations

import torch

from visdepth.models.base import VLMAdapter
from visdepth.models.tiny import build_random

# the scaled-down language model width both CPU-sized layouts share
SMALL_TEXT = dict(hidden_size=256, intermediate_size=688, vocab_size=32000, max_position_embeddings=4096)

# Qwen2.5-VL-3B's language model (its config.json); head_dim 128, so M-RoPE splits 64 frequencies 16/24/24
QWEN2_5_VL_3B_TEXT = dict(
    hidden_size=2048,
    intermediate_size=11008,
    num_hidden_layers=36,
    num_attention_heads=16,
    num_key_value_heads=2,
    vocab_size=151936,
    max_position_embeddings=128000,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
)
# a cheap Qwen2.5-VL tower (it costs the same at every cut); its patching and merging, hence its token count,
# are the real ones
SMALL_QWEN_VISION = dict(
    depth=4,
    hidden_size=128,
    intermediate_size=256,
    num_heads=4,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[3],
)


def llava16() -> VLMAdapter:
    """LLaVA-1.5 layout scaled down: CLIP-style 336 px / 14 px tower (576 tokens), 16 Llama blocks of 256."""
    shape = {
        "text": dict(SMALL_TEXT, num_hidden_layers=16, num_attention_heads=8, num_key_value_heads=8),
        "vision": dict(
            model_type="clip_vision_model",
            hidden_size=256,
            intermediate_size=1024,
            num_hidden_layers=4,
            num_attention_heads=4,
            patch_size=14,
        ),
        "model": {"vision_feature_layer": -2},  # LLaVA-1.5 reads the tower's second-to-last layer
        "image_size": 336,
    }
    return build_random("llava", shape, name="random llava16 (LLaVA-1.5 layout, 16 x 256)")


def qwen36() -> VLMAdapter:
    """Qwen2.5-VL-3B depth (36 blocks, GQA 8/2, M-RoPE) at width 256; a 672 px image gives 576 tokens."""
    text = dict(
        SMALL_TEXT,
        num_hidden_layers=36,
        num_attention_heads=8,
        num_key_value_heads=2,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 4, 4]},
    )
    shape = {"text": text, "vision": SMALL_QWEN_VISION, "image_size": 672}
    return build_random("qwen2_5_vl", shape, name="random qwen36 (Qwen2.5-VL-3B depth, 36 x 256)")


def qwen2_5_vl_3b(
    num_layers: int = 36, image_size: int = 448, dtype: torch.dtype | None = torch.bfloat16
) -> VLMAdapter:
    """Qwen2.5-VL-3B's language model at full width (``num_layers`` of its 36 blocks) behind a cheap tower;
    a 448 px image gives 256 image tokens, as with the real processor. Weights come from a repeated pool
    (``init="pool"``): drawing 3B normals takes minutes on a CPU."""
    shape = {
        "text": dict(QWEN2_5_VL_3B_TEXT, num_hidden_layers=num_layers),
        "vision": SMALL_QWEN_VISION,
        "image_size": image_size,
    }
    name = f"random Qwen2.5-VL-3B language model ({num_layers} x 2048), small vision tower"
    return build_random("qwen2_5_vl", shape, init="pool", dtype=dtype, name=name)


# Qwen2.5-VL-7B-Instruct's config.json: the language model and the vision tower
QWEN2_5_VL_7B_TEXT = dict(
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    vocab_size=152064,
    max_position_embeddings=128000,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
)
QWEN2_5_VL_7B_VISION = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    out_hidden_size=3584,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2,
)


def qwen2_5_vl_7b(num_layers: int, image_size: int, dtype: torch.dtype, quick: bool) -> VLMAdapter:
    """The 7B-shaped model (``num_layers`` of its 28 blocks), or with ``quick`` a tiny one of the same family."""
    if quick:
        text = dict(SMALL_TEXT, num_hidden_layers=num_layers, num_attention_heads=8, num_key_value_heads=2)
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 4, 4]}
        shape = {"text": text, "vision": SMALL_QWEN_VISION, "image_size": image_size}
        name = f"random Qwen2.5-VL layout, quick ({num_layers} x 256)"
    else:
        text = dict(QWEN2_5_VL_7B_TEXT, num_hidden_layers=num_layers)
        shape = {"text": text, "vision": QWEN2_5_VL_7B_VISION, "image_size": image_size}
        name = f"random Qwen2.5-VL-7B ({num_layers} x 3584, its 32-block vision tower)"
    return build_random("qwen2_5_vl", shape, init="pool", dtype=dtype, name=name)
