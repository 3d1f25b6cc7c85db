"""Every family's random-model recipe: which config classes, which processor, at which shape.

A recipe takes a :class:`Shape` (overrides of the language model's, the vision tower's and the VLM config's
fields, and the image side) and returns the config, the model class and the processor; weights are filled by
:func:`visdepth.models.tiny.build_random`. Without overrides every recipe gives its ``tiny:<variant>`` model:
small, but with what makes the family's code path its own (grouped KV heads, tiled or merged images, sliding
window layers, M-RoPE). Fields that follow from others (head size, rotary sections, image-token counts) are
derived after the overrides are applied, so a real-size shape stays consistent. The token names, module paths
and processor conventions they rely on belong to the family files and are imported from there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from visdepth.errors import ConfigError
from visdepth.models.tiny.parts import (
    TINY_TEXT,
    TINY_VISION,
    build_processor,
    byte_tokenizer,
    chat_template,
    token_id,
    vocab_size,
)

#: the keys a shape may hold
SHAPE_KEYS = ("text", "vision", "model", "image_size")


@dataclass(frozen=True)
class Shape:
    """Overrides of a recipe's defaults (empty: the tiny model).

    ``text``, ``vision`` and ``model`` are config fields of the language model, the vision tower and the VLM
    config itself; ``image_size`` is the side of the square image (or tile) the processor produces. A field a
    config class does not know is passed on and ends up as an attribute, as transformers does.
    """

    text: Mapping[str, Any] = field(default_factory=dict)
    vision: Mapping[str, Any] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    image_size: int | None = None

    @classmethod
    def parse(cls, shape: str | Mapping[str, Any] | Shape | None) -> Shape:
        if isinstance(shape, Shape):
            return shape
        if shape is None or shape == "tiny":
            return cls()
        if isinstance(shape, str):
            raise ConfigError(
                f'shape {shape!r} is unknown; pass "tiny" or a dict with keys {", ".join(SHAPE_KEYS)}'
            )
        unknown = sorted(set(shape) - set(SHAPE_KEYS))
        if unknown:
            raise ConfigError(f"shape keys {', '.join(unknown)} are unknown; use {', '.join(SHAPE_KEYS)}")
        return cls(
            text=dict(shape.get("text") or {}),
            vision=dict(shape.get("vision") or {}),
            model=dict(shape.get("model") or {}),
            image_size=shape.get("image_size"),
        )

    @property
    def is_tiny(self) -> bool:
        return not (self.text or self.vision or self.model or self.image_size)

    def text_fields(self, tokenizer: Any, **defaults: Any) -> dict[str, Any]:
        """The tiny language model's fields for ``tokenizer``, then ``defaults``, then the overrides."""
        ids = {"vocab_size": vocab_size(tokenizer), "pad_token_id": tokenizer.pad_token_id}
        return {**TINY_TEXT, **ids, **defaults, **self.text}

    def vision_fields(self, **defaults: Any) -> dict[str, Any]:
        """The tiny vision tower's fields, then ``defaults``, then the overrides."""
        return {**TINY_VISION, **defaults, **self.vision}


Recipe = Callable[[str, Shape], tuple[Any, Any, Any]]


def _special_ids(tokenizer: Any) -> dict[str, int]:
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}


def _head_dim(text: Mapping[str, Any]) -> int:
    return int(text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"])


def llava(variant: str, shape: Shape) -> tuple[Any, Any, Any]:
    """LLaVA-1.5, -NeXT and -OneVision: a SigLIP tower by default (``vision={"model_type":
    "clip_vision_model"}`` gives LLaVA-1.5's CLIP tower, whose class token the "default" strategy drops)."""
    import transformers
    from transformers import CONFIG_MAPPING

    tokenizer = byte_tokenizer(
        ["<image>"], {"image_token": "<image>"}, chat_template=chat_template("<image>\n")
    )
    vision = shape.vision_fields(
        model_type="siglip_vision_model", image_size=shape.image_size or 32, patch_size=8
    )
    vision_type = vision.pop("model_type")
    size, patch = vision["image_size"], vision["patch_size"]
    class_token = vision_type == "clip_vision_model"
    strategy = "default" if class_token else "full"
    text_cls = transformers.Qwen2Config if variant == "llava_onevision" else transformers.LlamaConfig
    fields: dict[str, Any] = dict(
        text_config=text_cls(**shape.text_fields(tokenizer)),
        vision_config=CONFIG_MAPPING[vision_type](**vision),
        image_token_id=token_id(tokenizer, "<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy=strategy,
    )
    processor_kwargs: dict[str, Any] = dict(
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
        vision_feature_select_strategy=strategy,
        patch_size=patch,
    )
    if class_token:
        processor_kwargs["num_additional_image_tokens"] = 1
    square = {"height": size, "width": size}
    grid = [[size, size], [size, 2 * size], [2 * size, size]]
    if variant == "llava":
        config = transformers.LlavaConfig(**{**fields, **shape.model})
        image_processor = transformers.LlavaImageProcessorPil(
            size=square, crop_size=square, do_center_crop=False, default_to_square=True
        )
        processor = transformers.LlavaProcessor(image_processor=image_processor, **processor_kwargs)
        return config, transformers.LlavaForConditionalGeneration, processor
    if variant == "llava_next":
        config = transformers.LlavaNextConfig(**{**fields, "image_grid_pinpoints": grid, **shape.model})
        image_processor = transformers.LlavaNextImageProcessorPil(
            size={"shortest_edge": size}, crop_size=square, image_grid_pinpoints=grid
        )
        processor = transformers.LlavaNextProcessor(image_processor=image_processor, **processor_kwargs)
        return config, transformers.LlavaNextForConditionalGeneration, processor
    config = transformers.LlavaOnevisionConfig(**{**fields, "image_grid_pinpoints": grid, **shape.model})
    image_processor = transformers.LlavaOnevisionImageProcessorPil(size=square, image_grid_pinpoints=grid)
    processor = build_processor(
        transformers.LlavaOnevisionProcessor,
        image_processor=image_processor,
        num_image_tokens=(size // patch) ** 2,
        **processor_kwargs,
    )
    return config, transformers.LlavaOnevisionForConditionalGeneration, processor


def paligemma(variant: str, shape: Shape) -> tuple[Any, Any, Any]:
    """PaliGemma: a SigLIP tower (4x4 patches of 8 px, one token each) before a Gemma prefix LM."""
    import transformers

    tokenizer = byte_tokenizer(
        ["<image>"], {"image_token": "<image>"}, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>"
    )
    vision = shape.vision_fields(image_size=shape.image_size or 32, patch_size=8)
    image_processor = transformers.SiglipImageProcessorPil(
        size={"height": vision["image_size"], "width": vision["image_size"]}
    )
    # real checkpoints store this in preprocessor_config.json; the processor reads it from here
    image_processor.image_seq_length = (vision["image_size"] // vision["patch_size"]) ** 2
    # built before the config: the processor adds PaliGemma's location/segmentation tokens to the vocabulary
    processor = transformers.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    text = shape.text_fields(tokenizer, **_special_ids(tokenizer))
    text.setdefault("head_dim", _head_dim(text))
    config = transformers.PaliGemmaConfig(
        **{
            "text_config": transformers.GemmaConfig(**text),
            "vision_config": transformers.SiglipVisionConfig(**vision),
            "image_token_index": token_id(tokenizer, "<image>"),
            "projection_dim": text["hidden_size"],
            "hidden_size": text["hidden_size"],
            "vocab_size": text["vocab_size"],
            "tie_word_embeddings": False,
            **shape.model,
        }
    )
    return config, transformers.PaliGemmaForConditionalGeneration, processor


# A Gemma-style template (turns, "model" as the assistant role, BOS rendered by the template) written for the
# random models; real checkpoints bring their own.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def gemma3(variant: str, shape: Shape) -> tuple[Any, Any, Any]:
    """Gemma 3: 8x8 SigLIP patches average-pooled to 4x4 soft tokens; sliding-window and global layers alternate."""
    import transformers

    from visdepth.models.gemma3 import BOI, EOI, IMAGE, TURN_END, TURN_START

    tokenizer = byte_tokenizer(
        [TURN_START, TURN_END],
        {"boi_token": BOI, "image_token": IMAGE, "eoi_token": EOI},
        chat_template=GEMMA_TEMPLATE,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
    )
    text = shape.text_fields(tokenizer, **_special_ids(tokenizer))
    head_dim = text.setdefault("head_dim", _head_dim(text))
    text.setdefault("query_pre_attn_scalar", head_dim)
    # a window shorter than any prompt (one image alone is 16 tokens) and both layer kinds, so the sliding-window
    # masks and the local rotary embedding are exercised, not only the global ones
    text.setdefault("sliding_window", 16)
    kinds = ("sliding_attention", "full_attention")
    text.setdefault("layer_types", [kinds[i % 2] for i in range(text["num_hidden_layers"])])
    vision = shape.vision_fields(image_size=shape.image_size or 32, patch_size=4)
    model = {"mm_tokens_per_image": 16, "tie_word_embeddings": False, **shape.model}
    config = transformers.Gemma3Config(
        text_config=transformers.Gemma3TextConfig(**text),
        vision_config=transformers.SiglipVisionConfig(**vision),
        boi_token_index=token_id(tokenizer, BOI),
        eoi_token_index=token_id(tokenizer, EOI),
        image_token_index=token_id(tokenizer, IMAGE),
        **model,
    )
    processor = transformers.Gemma3Processor(
        image_processor=transformers.Gemma3ImageProcessorPil(
            size={"height": vision["image_size"], "width": vision["image_size"]}
        ),
        tokenizer=tokenizer,
        chat_template=GEMMA_TEMPLATE,
        image_seq_length=model["mm_tokens_per_image"],
    )
    return config, transformers.Gemma3ForConditionalGeneration, processor


def internvl(variant: str, shape: Shape) -> tuple[Any, Any, Any]:
    """InternVL: tiles of 16 px, 4x4 patches of 4 px pixel-shuffled by 0.5 (4 context tokens per tile). At most
    two tiles, so a wide image gives 2 tiles + a thumbnail and most photos a single tile."""
    import transformers

    tokenizer = byte_tokenizer(
        [],
        {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        },
        chat_template=chat_template("<IMG_CONTEXT>\n"),
    )
    vision = shape.vision_fields(image_size=shape.image_size or 16, patch_size=4)
    model = {"downsample_ratio": 0.5, "tie_word_embeddings": False, **shape.model}
    tile = vision["image_size"]
    image_seq_length = int((tile // vision["patch_size"]) ** 2 * model["downsample_ratio"] ** 2)
    config = transformers.InternVLConfig(
        vision_config=transformers.InternVLVisionConfig(**vision),
        text_config=transformers.Qwen2Config(**shape.text_fields(tokenizer)),
        image_token_id=token_id(tokenizer, "<IMG_CONTEXT>"),
        image_seq_length=image_seq_length,
        **model,
    )
    image_processor = transformers.GotOcr2ImageProcessorPil(
        size={"height": tile, "width": tile}, crop_to_patches=True, min_patches=1, max_patches=2
    )
    processor = build_processor(
        transformers.InternVLProcessor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=None,
        image_seq_length=image_seq_length,
        chat_template=tokenizer.chat_template,
    )
    return config, transformers.InternVLForConditionalGeneration, processor


def qwen2_vl(variant: str, shape: Shape) -> tuple[Any, Any, Any]:
    """Qwen2-VL and Qwen2.5-VL: 14 px patches merged 2x2; between 2x2 and 2x4 merged tokens per image (56x56
    to 56x112 pixels) unless ``image_size`` fixes a square. Qwen2.5-VL gets a window of one merge unit and full
    attention in its last block only, so both attention kinds run."""
    import transformers

    from visdepth.models.qwen2_vl import IMAGE_PAD, IMAGE_TEXT, VIDEO_PAD, VISION_END, VISION_START

    tokenizer = byte_tokenizer(
        [VISION_START, IMAGE_PAD, VISION_END, VIDEO_PAD, "<|vision_pad|>"],
        {"image_token": IMAGE_PAD, "video_token": VIDEO_PAD},
        chat_template=chat_template(IMAGE_TEXT),
    )
    text = shape.text_fields(tokenizer, **_special_ids(tokenizer))
    # the M-RoPE sections split the head_dim / 2 rotary frequencies over the temporal, height and width rows
    half = _head_dim(text) // 2
    sections = [half - 2 * (half // 3), half // 3, half // 3]
    text.setdefault(
        "rope_parameters", {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": sections}
    )
    common = dict(depth=2, num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    if variant == "qwen2_vl":
        names = (
            "Qwen2VLConfig",
            "Qwen2VLTextConfig",
            "Qwen2VLVisionConfig",
            "Qwen2VLForConditionalGeneration",
        )
        vision = {
            **common,
            "embed_dim": 32,
            "hidden_size": text["hidden_size"],
            "mlp_ratio": 2,
            **shape.vision,
        }
        processor_cls = transformers.Qwen2VLProcessor
    else:
        names = (
            "Qwen2_5_VLConfig",
            "Qwen2_5_VLTextConfig",
            "Qwen2_5_VLVisionConfig",
            "Qwen2_5_VLForConditionalGeneration",
        )
        unit = common["patch_size"] * common["spatial_merge_size"]
        vision = {
            **common,
            "hidden_size": 32,
            "intermediate_size": 64,
            "out_hidden_size": text["hidden_size"],
            "window_size": unit,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
            **shape.vision,
        }
        processor_cls = transformers.Qwen2_5_VLProcessor
    config_cls, text_cls, vision_cls, model_cls = (getattr(transformers, name) for name in names)
    ids = dict(
        image_token_id=token_id(tokenizer, IMAGE_PAD),
        video_token_id=token_id(tokenizer, VIDEO_PAD),
        vision_start_token_id=token_id(tokenizer, VISION_START),
        vision_end_token_id=token_id(tokenizer, VISION_END),
        # the VLM's own flag decides whether the head shares the embedding, not the text config's
        tie_word_embeddings=text["tie_word_embeddings"],
    )
    config = config_cls(
        text_config=text_cls(**text), vision_config=vision_cls(**vision), **{**ids, **shape.model}
    )
    patch, merge = vision["patch_size"], vision["spatial_merge_size"]
    unit = patch * merge  # one merged token covers a unit x unit pixel square
    low, high = (shape.image_size**2,) * 2 if shape.image_size else ((2 * unit) ** 2, 8 * unit**2)
    image_processor = transformers.Qwen2VLImageProcessorPil(
        min_pixels=low,
        max_pixels=high,
        patch_size=patch,
        merge_size=merge,
        temporal_patch_size=vision["temporal_patch_size"],
    )
    processor = build_processor(
        processor_cls,
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=tokenizer.chat_template,
    )
    return config, model_cls, processor


def idefics3(variant: str, shape: Shape) -> tuple[Any, Any, Any]:
    """Idefics3 and SmolVLM: tiles of 32 px, 4x4 patches of 8 px, pixel-shuffled by 2: 4 image tokens per tile.
    Images are first scaled to a longest edge of two tiles, so a typical photo gives 2x2 tiles plus the global
    image."""
    import transformers

    from visdepth.models.idefics3 import num2words_optional

    row_col = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tokenizer = byte_tokenizer(
        row_col,
        {
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
        chat_template=chat_template("<image>"),
    )
    vision = shape.vision_fields(image_size=shape.image_size or 32, patch_size=8)
    model = {"scale_factor": 2, **shape.model}
    tile = vision["image_size"]
    image_seq_len = (tile // vision["patch_size"]) ** 2 // model["scale_factor"] ** 2
    prefix = "Idefics3" if variant == "idefics3" else "SmolVLM"
    config_cls, vision_cls, model_cls, image_cls, processor_cls = (
        getattr(transformers, prefix + suffix)
        for suffix in ("Config", "VisionConfig", "ForConditionalGeneration", "ImageProcessorPil", "Processor")
    )
    config = config_cls(
        vision_config=vision_cls(**vision),
        text_config=transformers.LlamaConfig(**shape.text_fields(tokenizer)),
        image_token_id=token_id(tokenizer, "<image>"),
        **model,
    )
    image_processor = image_cls(size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile})
    processor_kwargs = dict(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=tokenizer.chat_template,
    )
    if variant == "idefics3":
        return config, model_cls, processor_cls(**processor_kwargs)
    with num2words_optional():
        processor = build_processor(processor_cls, video_processor=None, **processor_kwargs)
    return config, model_cls, processor


#: the recipe of every ``tiny:<variant>``
RECIPES: dict[str, Recipe] = {
    "llava": llava,
    "llava_next": llava,
    "llava_onevision": llava,
    "paligemma": paligemma,
    "gemma3": gemma3,
    "internvl": internvl,
    "qwen2_vl": qwen2_vl,
    "qwen2_5_vl": qwen2_vl,
    "idefics3": idefics3,
    "smolvlm": idefics3,
}
