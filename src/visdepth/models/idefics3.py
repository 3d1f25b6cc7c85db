"""Idefics3 family: Idefics3 (``idefics3``) and SmolVLM (``smolvlm``), which share one input layout.

The processor splits a large image into a grid of tiles plus a downscaled global image and writes each of them as
``<fake_token_around_image><row_i_col_j>`` (or ``<global-img>``) followed by ``<image>`` tokens, with newlines
between tile rows; so one image gives several spans of image tokens, and the wrappers and row newlines are
template tokens, not text. The decoder lives at ``model.model.text_model`` rather than the default
``language_model``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from visdepth.models.base import VLMAdapter
from visdepth.models.registry import register

# the processors write tile positions with this pattern (up to row 6, col 6 in the released tokenizers)
_ROW_COL = re.compile(r"<row_\d+_col_\d+>")


@contextmanager
def num2words_optional() -> Iterator[None]:
    """Let SmolVLMProcessor be built without the ``num2words`` package.

    The processor refuses to initialise without it, but only uses it to spell out frame counts of videos; images
    never reach it. A stub stands in during construction only, and any video call afterwards still fails.
    """
    from transformers.models.smolvlm import processing_smolvlm

    if processing_smolvlm.num2words is not None:
        yield
        return
    processing_smolvlm.num2words = lambda *args, **kwargs: None
    try:
        yield
    finally:
        processing_smolvlm.num2words = None


@register
class Idefics3Adapter(VLMAdapter):
    family = "idefics3"
    model_types = ("idefics3", "smolvlm")
    tiny_variants = ("idefics3", "smolvlm")
    processor_classes = {"idefics3": "Idefics3Processor", "smolvlm": "SmolVLMProcessor"}
    # the processor matches images to prompts by sample; a flat list is re-split by counting placeholders
    nested_images = True

    # ------------------------------------------------------------------ structure
    @property
    def language_model(self) -> torch.nn.Module:
        return self.base_model.text_model

    # ------------------------------------------------------------------ token groups
    def _wrapper_ids(self) -> set[int]:
        """Ids of the tokens that frame image tiles: the fake token, ``<global-img>`` and every ``<row_i_col_j>``."""
        tok = self.tokenizer
        names = [
            getattr(self.processor, "fake_image_token", "<fake_token_around_image>"),
            # Idefics3Processor calls it global_image_tag, SmolVLMProcessor global_image_token
            getattr(self.processor, "global_image_token", None)
            or getattr(self.processor, "global_image_tag", None),
        ]
        names += [name for name in tok.get_added_vocab() if _ROW_COL.fullmatch(name)]
        ids = {tok.convert_tokens_to_ids(name) for name in names if name}
        ids.discard(None)
        ids.discard(getattr(tok, "unk_token_id", None))
        return {int(i) for i in ids}

    def special_token_ids(self) -> set[int]:
        # released tokenizers do not all flag the tile wrappers as special, but they are never prompt text
        ids = super().special_token_ids() | self._wrapper_ids()
        ids.discard(self.image_token_id)
        return ids

    def _newline_ids(self) -> set[int]:
        return {i for text in ("\n", "\n\n") for i in self.tokenizer.encode(text, add_special_tokens=False)}

    def special_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Special ids, plus the newlines that separate tile rows inside one image's layout.

        Such a newline follows an image token and precedes a tile wrapper; a newline of the prompt template
        after an image follows the closing wrapper instead, so it stays text.
        """
        mask = super().special_mask(input_ids)
        device = input_ids.device
        newline_ids = torch.tensor(sorted(self._newline_ids()), dtype=input_ids.dtype, device=device)
        newline = torch.isin(input_ids, newline_ids)
        if not bool(newline.any()):
            return mask
        wrapper_ids = torch.tensor(sorted(self._wrapper_ids()), dtype=input_ids.dtype, device=device)
        wrapper = torch.isin(input_ids, wrapper_ids)
        image = self.image_mask(input_ids)
        n = input_ids.shape[-1]
        index = torch.arange(n, device=device).expand_as(input_ids)
        # for a newline, the nearest non-newline position on each side; n (a sentinel reading False) if none
        before = torch.where(newline, -1, index).cummax(dim=-1).values
        before = torch.where(before < 0, n, before)
        after = torch.where(newline, n, index).flip(-1).cummin(dim=-1).values.flip(-1)
        sentinel = torch.zeros_like(image[..., :1])
        image_before = torch.cat([image, sentinel], dim=-1).gather(-1, before)
        wrapper_after = torch.cat([wrapper, sentinel], dim=-1).gather(-1, after)
        return mask | (newline & image_before & wrapper_after)

    # ------------------------------------------------------------------ inputs
    def format_prompt(self, prompt: str, num_images: int, chat: bool = True) -> str:
        from transformers import ProcessorMixin

        processor = self.processor
        template = getattr(processor, "chat_template", None)
        if chat and template and hasattr(processor, "video_processor") and processor.video_processor is None:
            # SmolVLMProcessor.apply_chat_template reads frame defaults from its video processor, which is
            # absent without torchvision; an image-only prompt renders the same through the generic method
            content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": prompt}]
            messages = [{"role": "user", "content": content}]
            return ProcessorMixin.apply_chat_template(
                processor, messages, add_generation_prompt=True, tokenize=False
            )
        return super().format_prompt(prompt, num_images, chat=chat)

    # ------------------------------------------------------------------ construction
    @classmethod
    def rebuild_processor(cls, processor_cls: Any, model_id: str, **processor_args: Any) -> Any:
        # SmolVLMProcessor also refuses to initialise without num2words, which only videos use
        with num2words_optional():
            return super().rebuild_processor(processor_cls, model_id, **processor_args)
