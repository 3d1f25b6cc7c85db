"""LLaVA family: LLaVA-1.5 (``llava``), LLaVA-NeXT (``llava_next``) and LLaVA-OneVision (``llava_onevision``).

All three put ``<image>`` placeholders in the prompt that the processor expands to one token per projected
feature (NeXT and OneVision tile the image, so the count depends on its size and one image may give a base grid
plus tiles and newline tokens, all carrying the image token id). The module layout is the transformers-5 default
(``model.model.language_model.layers``), so the adapter only declares what it serves.
"""

from __future__ import annotations

from visdepth.models.base import VLMAdapter
from visdepth.models.registry import register


@register
class LlavaAdapter(VLMAdapter):
    family = "llava"
    model_types = ("llava", "llava_next", "llava_onevision")
    tiny_variants = ("llava", "llava_next", "llava_onevision")
    # OneVision needs per-sample image lists to know which samples are multi-image (no tiling there)
    nested_images = True
