"""InternVL family in its transformers-native form (``internvl``, the ``-hf`` checkpoints of InternVL 2.5 / 3).

The prompt holds one ``<IMG_CONTEXT>`` per image; the processor crops the image into up to ``max_patches`` tiles
(plus a thumbnail when there are several) and writes ``<img>`` + ``<IMG_CONTEXT>`` x (tokens per tile x tiles) +
``</img>``, so an image is one contiguous span of context tokens framed by two template tokens. The module layout
is the transformers-5 default.
"""

from __future__ import annotations

from typing import Any

from visdepth.models.base import VLMAdapter
from visdepth.models.registry import register


@register
class InternVLAdapter(VLMAdapter):
    family = "internvl"
    model_types = ("internvl",)
    tiny_variants = ("internvl",)
    processor_classes = {"internvl": "InternVLProcessor"}

    def special_token_ids(self) -> set[int]:
        # <img> and </img> frame every image; released tokenizers flag them special, but do not rely on it
        ids = super().special_token_ids()
        for name in ("start_image_token_id", "end_image_token_id"):
            value = getattr(self.processor, name, None)
            if value is not None:
                ids.add(int(value))
        ids.discard(self.image_token_id)
        return ids

    # ------------------------------------------------------------------ construction
    @classmethod
    def zero_init_redraw(cls, config: Any) -> dict[str, float]:
        # transformers initialises the vision tower's position embeddings (and CLS token) to zeros, which would
        # leave the encoder blind to where a patch is
        std = config.vision_config.initializer_range
        return {f"model.vision_tower.embeddings.{n}": std for n in ("cls_token", "position_embeddings")}
