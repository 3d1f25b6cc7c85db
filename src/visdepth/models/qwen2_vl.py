"""Qwen2-VL (``qwen2_vl``) and Qwen2.5-VL (``qwen2_5_vl``): adapter and tiny random variants.

Both families write ``<|vision_start|><|image_pad|><|vision_end|>`` per image; the processor expands
``<|image_pad|>`` to prod(image_grid_thw) / merge_size**2 tokens, so the count depends on the image size. The
decoder uses 3-D M-RoPE positions (temporal, height, width rows) that the model derives from
``mm_token_type_ids``; in transformers 5 that input is required for correct states, so the adapter always
derives it from the ids. Real checkpoints load without torchvision although their processor names a video
processor that needs it.
"""

from __future__ import annotations

from typing import Any

import torch

from visdepth.models import tiny
from visdepth.models.base import ModelInputs, VLMAdapter
from visdepth.models.registry import register

VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD = (
    "<|vision_start|>",
    "<|image_pad|>",
    "<|vision_end|>",
    "<|video_pad|>",
)
# what one image is in a prompt before the processor expands it
IMAGE_TEXT = f"{VISION_START}{IMAGE_PAD}{VISION_END}"
# values of mm_token_type_ids the model expects
TEXT_TYPE, IMAGE_TYPE, VIDEO_TYPE = 0, 1, 2


@register
class Qwen2VLAdapter(VLMAdapter):
    family = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    tiny_variants = ("qwen2_vl", "qwen2_5_vl")
    processor_classes = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor"}
    # with torchvision present the standard processor is the one to use, and any error loading it is the user's
    rebuild_with_torchvision = False

    def image_placeholder(self) -> str:
        # a raw prompt needs the delimiters too: the checkpoints were trained with them around every image
        return IMAGE_TEXT

    def mm_token_type_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """0 for text, 1 for image and 2 for video positions, read from the ids."""
        types = torch.full_like(input_ids, TEXT_TYPE)
        types[input_ids == self.image_token_id] = IMAGE_TYPE
        video_id = getattr(self.config, "video_token_id", None)
        if video_id is not None:
            types[input_ids == int(video_id)] = VIDEO_TYPE
        return types

    def add_extras(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Without mm_token_type_ids Qwen2-VL raises and Qwen2.5-VL quietly uses 1-D positions, so it is always
        # rebuilt from the ids: a processor that omits it (or a caller that edits the ids) cannot desync it.
        tensors = dict(tensors)
        tensors["mm_token_type_ids"] = self.mm_token_type_ids(tensors["input_ids"])
        return tensors

    def rope_positions(self, inputs: ModelInputs) -> torch.Tensor:
        """The 3-D M-RoPE position ids (3, batch, tokens) the model computes for these inputs (padding gets 0)."""
        tensors = inputs.tensors
        positions, _ = self.base_model.get_rope_index(
            tensors["input_ids"],
            mm_token_type_ids=tensors["mm_token_type_ids"],
            image_grid_thw=tensors.get("image_grid_thw"),
            attention_mask=tensors.get("attention_mask"),
        )
        return positions

    # ------------------------------------------------------------------ construction
    @classmethod
    def rebuild_processor(cls, processor_cls: Any, model_id: str, **processor_args: Any) -> Any:
        processor = super().rebuild_processor(processor_cls, model_id, **processor_args)
        # the template lives in the processor's files (chat_template.jinja / .json); older repos keep it in the
        # tokenizer
        if not processor.chat_template:
            processor.chat_template = getattr(processor.tokenizer, "chat_template", None)
        return processor

    @classmethod
    def build_tiny(cls, variant: str, seed: int = 0) -> VLMAdapter:
        from transformers import Qwen2VLImageProcessorPil

        if variant not in cls.tiny_variants:
            raise ValueError(variant)
        tokenizer = tiny.byte_tokenizer(
            [VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD, "<|vision_pad|>"],
            {"image_token": IMAGE_PAD, "video_token": VIDEO_PAD},
            chat_template=tiny.chat_template(IMAGE_TEXT),
        )
        patch, merge = 14, 2
        unit = patch * merge  # one merged token covers a unit x unit pixel square
        ids = dict(
            image_token_id=tiny.token_id(tokenizer, IMAGE_PAD),
            video_token_id=tiny.token_id(tokenizer, VIDEO_PAD),
            vision_start_token_id=tiny.token_id(tokenizer, VISION_START),
            vision_end_token_id=tiny.token_id(tokenizer, VISION_END),
        )
        head_dim = tiny.TINY_TEXT["hidden_size"] // tiny.TINY_TEXT["num_attention_heads"]
        # the M-RoPE sections split the head_dim / 2 rotary frequencies over the temporal, height and width rows
        half = head_dim // 2
        sections = [half - 2 * (half // 3), half // 3, half // 3]
        text_kwargs = dict(
            tiny.TINY_TEXT,
            vocab_size=tiny.vocab_size(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections},
        )
        vision_common = dict(
            depth=2, num_heads=2, patch_size=patch, spatial_merge_size=merge, temporal_patch_size=2
        )
        if variant == "qwen2_vl":
            from transformers import (
                Qwen2VLConfig,
                Qwen2VLForConditionalGeneration,
                Qwen2VLProcessor,
                Qwen2VLTextConfig,
                Qwen2VLVisionConfig,
            )

            vision = Qwen2VLVisionConfig(
                embed_dim=32, hidden_size=tiny.TINY_TEXT["hidden_size"], mlp_ratio=2, **vision_common
            )
            config = Qwen2VLConfig(text_config=Qwen2VLTextConfig(**text_kwargs), vision_config=vision, **ids)
            model = tiny.seeded_init(Qwen2VLForConditionalGeneration, config, seed)
            processor_cls: Any = Qwen2VLProcessor
        else:
            from transformers import (
                Qwen2_5_VLConfig,
                Qwen2_5_VLForConditionalGeneration,
                Qwen2_5_VLProcessor,
                Qwen2_5_VLTextConfig,
                Qwen2_5_VLVisionConfig,
            )

            # a window of one merge unit and full attention in the last block only: both attention kinds run
            vision = Qwen2_5_VLVisionConfig(
                hidden_size=32,
                intermediate_size=64,
                out_hidden_size=tiny.TINY_TEXT["hidden_size"],
                window_size=unit,
                fullatt_block_indexes=[1],
                tokens_per_second=2,
                **vision_common,
            )
            config = Qwen2_5_VLConfig(
                text_config=Qwen2_5_VLTextConfig(**text_kwargs), vision_config=vision, **ids
            )
            model = tiny.seeded_init(Qwen2_5_VLForConditionalGeneration, config, seed)
            processor_cls = Qwen2_5_VLProcessor
        # between 2x2 and 2x4 merged tokens per image (56x56 to 56x112 pixels): few tokens, but a real 2-D grid
        image_processor = Qwen2VLImageProcessorPil(
            min_pixels=(2 * unit) ** 2,
            max_pixels=8 * unit**2,
            patch_size=patch,
            merge_size=merge,
            temporal_patch_size=2,
        )
        processor = tiny.build_processor(
            processor_cls,
            image_processor=image_processor,
            tokenizer=tokenizer,
            chat_template=tokenizer.chat_template,
        )
        return cls(model, processor, f"tiny:{variant}")
