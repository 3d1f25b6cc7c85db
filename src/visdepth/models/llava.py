"""LLaVA family: LLaVA-1.5 (``llava``), LLaVA-NeXT (``llava_next``) and LLaVA-OneVision (``llava_onevision``).

All three put ``<image>`` placeholders in the prompt that the processor expands to one token per projected
feature (NeXT and OneVision tile the image, so the count depends on its size and one image may give a base grid
plus tiles and newline tokens, all carrying the image token id). The module layout is the transformers-5 default
(``model.model.language_model.layers``), so only construction of the tiny variants lives here.
"""

from __future__ import annotations

from typing import Any

from visdepth.models import tiny
from visdepth.models.base import VLMAdapter
from visdepth.models.registry import register


@register
class LlavaAdapter(VLMAdapter):
    family = "llava"
    model_types = ("llava", "llava_next", "llava_onevision")
    tiny_variants = ("llava", "llava_next", "llava_onevision")
    # OneVision needs per-sample image lists to know which samples are multi-image (no tiling there)
    nested_images = True

    @classmethod
    def build_tiny(cls, variant: str, seed: int = 0) -> VLMAdapter:
        from transformers import LlamaConfig, Qwen2Config, SiglipVisionConfig

        image_size, patch = 32, 8
        tokenizer = tiny.byte_tokenizer(
            ["<image>"], {"image_token": "<image>"}, chat_template=tiny.chat_template("<image>\n")
        )
        vocab = tiny.vocab_size(tokenizer)
        vision = SiglipVisionConfig(
            **tiny.TINY_VISION,
            image_size=image_size,
            patch_size=patch,
        )
        common: dict[str, Any] = dict(
            vision_config=vision,
            image_token_id=tiny.token_id(tokenizer, "<image>"),
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
        )
        text_kwargs = dict(tiny.TINY_TEXT, vocab_size=vocab, pad_token_id=tokenizer.pad_token_id)
        processor_kwargs: dict[str, Any] = dict(
            tokenizer=tokenizer,
            chat_template=tokenizer.chat_template,
            vision_feature_select_strategy="full",
        )
        if variant == "llava":
            from transformers import (
                LlavaConfig,
                LlavaForConditionalGeneration,
                LlavaImageProcessorPil,
                LlavaProcessor,
            )

            config = LlavaConfig(text_config=LlamaConfig(**text_kwargs), **common)
            model = tiny.seeded_init(LlavaForConditionalGeneration, config, seed)
            image_processor = LlavaImageProcessorPil(
                size={"height": image_size, "width": image_size},
                crop_size={"height": image_size, "width": image_size},
                do_center_crop=False,
                default_to_square=True,
            )
            processor = LlavaProcessor(image_processor=image_processor, patch_size=patch, **processor_kwargs)
        elif variant == "llava_next":
            from transformers import (
                LlavaNextConfig,
                LlavaNextForConditionalGeneration,
                LlavaNextImageProcessorPil,
                LlavaNextProcessor,
            )

            grid = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]]
            config = LlavaNextConfig(
                text_config=LlamaConfig(**text_kwargs), image_grid_pinpoints=grid, **common
            )
            model = tiny.seeded_init(LlavaNextForConditionalGeneration, config, seed)
            image_processor = LlavaNextImageProcessorPil(
                size={"shortest_edge": image_size},
                crop_size={"height": image_size, "width": image_size},
                image_grid_pinpoints=grid,
            )
            processor = LlavaNextProcessor(
                image_processor=image_processor, patch_size=patch, **processor_kwargs
            )
        elif variant == "llava_onevision":
            from transformers import (
                LlavaOnevisionConfig,
                LlavaOnevisionForConditionalGeneration,
                LlavaOnevisionImageProcessorPil,
                LlavaOnevisionProcessor,
            )

            grid = [[image_size, image_size], [image_size, 2 * image_size], [2 * image_size, image_size]]
            config = LlavaOnevisionConfig(
                text_config=Qwen2Config(**text_kwargs), image_grid_pinpoints=grid, **common
            )
            model = tiny.seeded_init(LlavaOnevisionForConditionalGeneration, config, seed)
            image_processor = LlavaOnevisionImageProcessorPil(
                size={"height": image_size, "width": image_size},
                image_grid_pinpoints=grid,
            )
            processor = tiny.build_processor(
                LlavaOnevisionProcessor,
                image_processor=image_processor,
                patch_size=patch,
                num_image_tokens=(image_size // patch) ** 2,
                **processor_kwargs,
            )
        else:
            raise ValueError(variant)
        return cls(model, processor, f"tiny:{variant}")
