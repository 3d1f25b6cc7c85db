"""Qwen2-VL (``qwen2_vl``) and Qwen2.5-VL (``qwen2_5_vl``): the adapter.

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
