"""Random-weight VLMs with the shapes of real ones, for benchmarks (timing needs shapes, not weights).

Two layouts, each built from its transformers config classes with the byte-level tiny tokenizer (no download):
``llava`` (CLIP-style tower, Llama decoder) and ``qwen2_5_vl`` (Qwen2.5-VL tower and M-RoPE decoder). A caller
gives the language model's and the vision tower's config fields; the named shapes below are the ones the
benchmarks use. Image-token counts follow the real processors: LLaVA (image_size / patch)^2, Qwen
(image_size / 14)^2 / 4.
"""

from __future__ import annotations

from typing import Any

import torch

from visdepth.models import tiny
from visdepth.models.base import VLMAdapter

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


def instantiate(model_cls: Any, config: Any, seed: int = 0, dtype: torch.dtype | None = None) -> Any:
    """``model_cls(config)`` with weights drawn from ``seed``. With ``dtype`` it is built in that dtype (a 3B
    model built in float32 first would need twice the memory) and filled by :func:`fill_random`."""
    if dtype is None:
        return tiny.seeded_init(model_cls, config, seed)
    from transformers.initialization import no_init_weights

    # torch's and transformers' initialisers would each draw every weight once: minutes for 3B on a CPU
    with no_init_weights():
        model = model_cls._from_config(config, dtype=dtype)
    model.tie_weights()  # transformers ties the head inside the initialisation skipped above
    fill_random(model, seed)
    return model.eval()


@torch.no_grad()
def fill_random(model: torch.nn.Module, seed: int = 0, std: float = 0.02) -> None:
    """Matrices get repeats of one seeded N(0, std) pool of 65537 values, 1-D weights (norm scales) 1,
    biases 0.

    Timing needs finite, non-degenerate weights of the right shapes, not independent draws: repeating a
    pool that stays in cache runs at memory speed where drawing 3B normals takes minutes on a CPU. The pool's
    length is prime, so rows of a matrix are shifted copies rather than equal ones.
    """
    period = 65537
    pool = torch.randn(period, generator=torch.Generator().manual_seed(seed)) * std
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif param.dim() == 1:
            param.fill_(1.0)
        else:
            flat, tile = param.view(-1), pool.to(param.dtype)
            whole = flat.numel() // period * period
            flat[:whole].view(-1, period).copy_(tile.expand(whole // period, period))
            flat[whole:].copy_(tile[: flat.numel() - whole])


def llava(
    text: dict, vision: dict, name: str, image_size: int, dtype: torch.dtype | None = None
) -> VLMAdapter:
    """LLaVA-1.5 layout: a CLIP tower (``vision`` fields, 14 px patches, class token dropped) and a Llama
    decoder (``text`` fields)."""
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
    config = LlavaConfig(
        text_config=LlamaConfig(**text, pad_token_id=tok.pad_token_id),
        vision_config=CLIPVisionConfig(**vision, image_size=image_size, patch_size=14),
        image_token_id=tiny.token_id(tok, "<image>"),
        vision_feature_select_strategy="default",
    )
    model = instantiate(LlavaForConditionalGeneration, config, dtype=dtype)
    size = {"height": image_size, "width": image_size}
    processor = LlavaProcessor(
        image_processor=LlavaImageProcessorPil(size=size, crop_size=size, do_center_crop=False),
        tokenizer=tok,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which the "default" strategy removes again
        chat_template=tok.chat_template,
    )
    return LlavaAdapter(model, processor, name)


def qwen2_5_vl(
    text: dict, vision: dict, name: str, image_size: int, dtype: torch.dtype | None = None
) -> VLMAdapter:
    """Qwen2.5-VL layout: its windowed vision tower (``vision`` fields) and an M-RoPE Qwen2 decoder (``text``
    fields); images are resized to ``image_size`` square, (image_size / 28)^2 tokens."""
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
    config = Qwen2_5_VLConfig(
        text_config=Qwen2_5_VLTextConfig(**text, pad_token_id=tok.pad_token_id),
        vision_config=Qwen2_5_VLVisionConfig(**vision, out_hidden_size=text["hidden_size"]),
        image_token_id=tiny.token_id(tok, IMAGE_PAD),
        video_token_id=tiny.token_id(tok, VIDEO_PAD),
        vision_start_token_id=tiny.token_id(tok, VISION_START),
        vision_end_token_id=tiny.token_id(tok, VISION_END),
        # the VLM's own flag decides whether the head shares the embedding, not the text config's
        tie_word_embeddings=text.get("tie_word_embeddings", False),
    )
    model = instantiate(Qwen2_5_VLForConditionalGeneration, config, dtype=dtype)
    pixels = image_size * image_size
    patch, merge, temporal = vision["patch_size"], vision["spatial_merge_size"], vision["temporal_patch_size"]
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=pixels, max_pixels=pixels, patch_size=patch, merge_size=merge, temporal_patch_size=temporal
    )
    processor = tiny.build_processor(
        Qwen2_5_VLProcessor, image_processor=image_processor, tokenizer=tok, chat_template=tok.chat_template
    )
    return Qwen2VLAdapter(model, processor, name)


def llava16() -> VLMAdapter:
    """LLaVA-1.5 layout scaled down: CLIP-style 336 px / 14 px tower (576 tokens), 16 Llama blocks of 256."""
    text = dict(SMALL_TEXT, num_hidden_layers=16, num_attention_heads=8, num_key_value_heads=8)
    vision = dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4)
    return llava(text, vision, "random llava16 (LLaVA-1.5 layout, 16 x 256)", image_size=336)


def qwen36() -> VLMAdapter:
    """Qwen2.5-VL-3B depth (36 blocks, GQA 8/2, M-RoPE) at width 256; a 672 px image gives 576 tokens."""
    text = dict(
        SMALL_TEXT,
        num_hidden_layers=36,
        num_attention_heads=8,
        num_key_value_heads=2,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 4, 4]},
    )
    return qwen2_5_vl(
        text, SMALL_QWEN_VISION, "random qwen36 (Qwen2.5-VL-3B depth, 36 x 256)", image_size=672
    )


def qwen2_5_vl_3b(
    num_layers: int = 36, image_size: int = 448, dtype: torch.dtype | None = torch.bfloat16
) -> VLMAdapter:
    """Qwen2.5-VL-3B's language model at full width (``num_layers`` of its 36 blocks) behind a cheap tower;
    a 448 px image gives 256 image tokens, as with the real processor."""
    text = dict(QWEN2_5_VL_3B_TEXT, num_hidden_layers=num_layers)
    name = f"random Qwen2.5-VL-3B language model ({num_layers} x 2048), small vision tower"
    return qwen2_5_vl(text, SMALL_QWEN_VISION, name, image_size=image_size, dtype=dtype)
