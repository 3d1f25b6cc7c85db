"""Gemma 3 family (``gemma3``): SigLIP features pooled to a fixed number of soft tokens per image.

The prompt carries ``<start_of_image>`` once per image; the processor expands it to
``<start_of_image>`` + N x ``<image_soft_token>`` + ``<end_of_image>`` (N = ``mm_tokens_per_image``). Only the
soft tokens hold vision features; the two delimiters are special tokens. The decoder attends bidirectionally among
the soft tokens of one image, which transformers builds from ``token_type_ids`` (1 on soft tokens), and mixes
sliding-window layers with global ones, each kind with its own rotary embedding. The module layout is the
transformers-5 default (``model.model.language_model.layers`` / ``.norm``).

Gemma 3 text checkpoints (``gemma3_text``, ``Gemma3ForCausalLM``) have no vision tower and are not served here.
"""

from __future__ import annotations

from typing import Any

import torch

from visdepth.models.base import VLMAdapter
from visdepth.models.registry import register

BOI, IMAGE, EOI = "<start_of_image>", "<image_soft_token>", "<end_of_image>"
TURN_START, TURN_END = "<start_of_turn>", "<end_of_turn>"


@register
class Gemma3Adapter(VLMAdapter):
    family = "gemma3"
    model_types = ("gemma3",)
    tiny_variants = ("gemma3",)
    processor_classes = {"gemma3": "Gemma3Processor"}
    # the processor matches images to prompts per sample
    nested_images = True

    def special_token_ids(self) -> set[int]:
        ids = super().special_token_ids()
        # the image delimiters come from the config, so they count even where a tokenizer does not flag them
        for key in ("boi_token_id", "eoi_token_id"):
            value = getattr(self.config, key, None)
            if value is not None:
                ids.add(int(value))
        ids.discard(self.image_token_id)
        return ids

    def format_prompt(self, prompt: str, num_images: int, chat: bool = True) -> str:
        text = super().format_prompt(prompt, num_images, chat=chat)
        bos = getattr(self.tokenizer, "bos_token", None)
        # Gemma's template renders BOS and its tokenizer adds one too: keep one, or every prompt starts with two
        if bos and text.startswith(bos) and self._tokenizer_adds_bos():
            text = text[len(bos) :]
        return text

    def _tokenizer_adds_bos(self) -> bool:
        bos_id = getattr(self.tokenizer, "bos_token_id", None)
        ids = self.tokenizer("a", add_special_tokens=True)["input_ids"]
        return bos_id is not None and len(ids) > 0 and ids[0] == bos_id

    def add_extras(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # The bidirectional image blocks are built from token_type_ids; without them every layer is causal.
        # Derived from the ids so they always agree with the image mask.
        ids = tensors["input_ids"]
        tensors["token_type_ids"] = (ids == self.image_token_id).to(ids.dtype)
        return tensors

    @classmethod
    def zero_init_redraw(cls, config: Any) -> dict[str, float]:
        # transformers initialises the multimodal projection to zeros (a checkpoint always overwrites it), which
        # would make every image embedding zero
        return {"model.multi_modal_projector.mm_input_projection_weight": config.initializer_range}
