"""PaliGemma family (``paligemma``, PaliGemma 1 and 2): a SigLIP encoder feeding a Gemma decoder as a prefix LM.

There is no chat template: the prompt is N x ``<image>`` per image, then BOS, the prefix text and a newline (the
processor inserts BOS and the newline). Everything in that prompt is the *prefix*, attended bidirectionally;
transformers builds this from ``token_type_ids`` (0 = prefix, 1 = suffix), and generated tokens are the causal
suffix. Every image gives the same number of tokens, and the images of one prompt sit back to back, so several
images form one contiguous run that is cut into per-image spans by that count. The module layout is the
transformers-5 default (``model.model.language_model.layers`` / ``.norm``).
"""

from __future__ import annotations

from typing import Any

import torch

from visdepth.models.base import VLMAdapter
from visdepth.models.registry import register


@register
class PaliGemmaAdapter(VLMAdapter):
    family = "paligemma"
    model_types = ("paligemma",)
    tiny_variants = ("paligemma",)
    processor_classes = {"paligemma": "PaliGemmaProcessor"}

    @property
    def tokens_per_image(self) -> int:
        count = getattr(self.processor, "image_seq_length", None) or getattr(
            self.text_config, "num_image_tokens", 0
        )
        return int(count)

    def spans(self, mask: torch.Tensor) -> list[tuple[int, int]]:  # type: ignore[override]
        """Per-image [start, end) spans: a contiguous run of image tokens is cut every ``tokens_per_image``."""
        step = self.tokens_per_image
        runs = VLMAdapter.spans(mask)
        if step <= 0:
            return runs
        return [(s, min(s + step, end)) for start, end in runs for s in range(start, end, step)]

    def format_prompt(self, prompt: str, num_images: int, chat: bool = True) -> str:
        # PaliGemma is never chat-formatted; the processor adds BOS after the images and the closing newline
        return self.image_placeholder() * num_images + prompt

    def add_extras(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # the processor's training labels are not inputs here (and the base model refuses them)
        tensors.pop("labels", None)
        if "token_type_ids" not in tensors:
            # all prompt positions are prefix: without token_type_ids the prefix would be attended causally
            tensors["token_type_ids"] = torch.zeros_like(tensors["input_ids"])
        return tensors

    @classmethod
    def model_load_args(cls, config: Any, model_args: dict[str, Any]) -> dict[str, Any]:
        text = config.get_text_config()
        # PaliGemma 2 decodes with Gemma 2, whose attention-logit soft-capping sdpa cannot apply (transformers
        # refuses to load it with sdpa); eager is the kernel that still takes an explicit mask
        if model_args.get("attn_implementation") == "sdpa" and (
            text.model_type == "gemma2" or getattr(text, "attn_logit_softcapping", None) is not None
        ):
            model_args["attn_implementation"] = "eager"
        return model_args
