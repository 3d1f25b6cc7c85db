"""InternVL family in its transformers-native form (``internvl``, the ``-hf`` checkpoints of InternVL 2.5 / 3).

The prompt holds one ``<IMG_CONTEXT>`` per image; the processor crops the image into up to ``max_patches`` tiles
(plus a thumbnail when there are several) and writes ``<img>`` + ``<IMG_CONTEXT>`` x (tokens per tile x tiles) +
``</img>``, so an image is one contiguous span of context tokens framed by two template tokens. The module layout
is the transformers-5 default.
"""

from __future__ import annotations

from typing import Any

from visdepth.models import tiny
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

    @classmethod
    def build_tiny(cls, variant: str, seed: int = 0) -> VLMAdapter:
        from transformers import (
            GotOcr2ImageProcessorPil,
            InternVLConfig,
            InternVLForConditionalGeneration,
            InternVLProcessor,
            InternVLVisionConfig,
            Qwen2Config,
        )

        if variant != "internvl":
            raise ValueError(variant)
        # tiles of 16 px, 4x4 patches of 4 px, pixel-shuffled by 0.5: 4 context tokens per tile. At most two
        # tiles, so a wide image gives 2 tiles + a thumbnail and most photos a single tile.
        tile, patch, ratio = 16, 4, 0.5
        image_seq_length = int((tile // patch) ** 2 * ratio**2)
        tokenizer = tiny.byte_tokenizer(
            [],
            {
                "start_image_token": "<img>",
                "end_image_token": "</img>",
                "context_image_token": "<IMG_CONTEXT>",
                "video_token": "<video>",
            },
            chat_template=tiny.chat_template("<IMG_CONTEXT>\n"),
        )
        vision = InternVLVisionConfig(
            **tiny.TINY_VISION,
            image_size=tile,
            patch_size=patch,
        )
        text = Qwen2Config(
            **tiny.TINY_TEXT, vocab_size=tiny.vocab_size(tokenizer), pad_token_id=tokenizer.pad_token_id
        )
        config = InternVLConfig(
            vision_config=vision,
            text_config=text,
            image_token_id=tiny.token_id(tokenizer, "<IMG_CONTEXT>"),
            image_seq_length=image_seq_length,
            downsample_ratio=ratio,
            tie_word_embeddings=False,
        )
        model = tiny.seeded_init(
            InternVLForConditionalGeneration, config, seed, redraw=cls.zero_init_redraw(config)
        )
        image_processor = GotOcr2ImageProcessorPil(
            size={"height": tile, "width": tile}, crop_to_patches=True, min_patches=1, max_patches=2
        )
        processor = tiny.build_processor(
            InternVLProcessor,
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=None,
            image_seq_length=image_seq_length,
            chat_template=tokenizer.chat_template,
        )
        return cls(model, processor, f"tiny:{variant}")
