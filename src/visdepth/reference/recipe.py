"""The architecture of ``visdepth/shapes-vlm``: word-level tokenizer, LLaVA config, processor, and prompt encoding.

A ``LlavaForConditionalGeneration``: a 4-layer SigLIP vision tower over 16-pixel patches of the 48 x 48 shapes
scenes (9 image tokens, one per grid cell), the usual two-layer GELU projector (no normalisation, as in LLaVA),
and a 12-layer Llama decoder of width 128. Plain transformers classes only, so ``AutoModelForImageTextToText`` /
``AutoProcessor`` load the saved folder.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from visdepth.data import shapes

# One patch per grid cell: each image token then sees exactly one object, which is what makes a 4-layer tower
# bind colour to shape (the feasibility trial with patches smaller than objects failed at exactly that).
PATCH = shapes.CELL
NUM_IMAGE_TOKENS = (shapes.IMAGE_SIZE // PATCH) ** 2
SPECIAL = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>", "image": "<image>"}
# LLaVA-1.5 style; the BOS is part of the template because a word-level tokenizer has no post-processor.
CHAT_TEMPLATE = (
    "{{ '<s>' }}{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% elif message['role'] == 'assistant' %}ASSISTANT: {% else %}{{ message['role'] | upper }}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}</s>{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=12,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
VISION = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    image_size=shapes.IMAGE_SIZE,
    patch_size=PATCH,
    vision_use_head=False,  # LLaVA reads patch states; the pooling head would be dead weight
)


def _pre_tokenizer() -> Any:
    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])


def benchmark_words() -> list[str]:
    """Every word the shapes benchmark writes (prompts, answers, captions, chains of thought, options)."""
    pre = _pre_tokenizer()
    words: set[str] = {"USER", "ASSISTANT", ":", "\n"}
    for split in shapes.SPLITS:
        stream = shapes.iter_samples(split, seed=0)
        for _ in range(40 * len(shapes.QTYPES)):
            s = next(stream)
            texts = [s.prompt, s.answer or "", *(s.references or []), s.meta.get("target", "")]
            if s.choices:
                texts.append(shapes.format_choices(s.prompt, s.choices))
            words.update(w for t in texts for w, _ in pre.pre_tokenize_str(t))
    # every colour, shape, position, count and option letter, even if the scan above missed one
    for t in [*shapes.COLOURS, *shapes.SHAPES, *shapes.PLURALS.values(), *shapes.POSITIONS, *shapes.NUMBERS]:
        words.update(w for w, _ in pre.pre_tokenize_str(t))
    words.update(shapes.CHOICE_LABELS[:4])
    words.discard("\n")
    return sorted(words)


def build_tokenizer() -> Any:
    """A word-level fast tokenizer over :func:`benchmark_words` (case-sensitive: ``A`` the option letter is
    not ``a`` the article); punctuation is split off and glued back when decoding."""
    from transformers import PreTrainedTokenizerFast

    specials = [SPECIAL[k] for k in ("pad", "unk", "bos", "eos", "image")]
    vocab = {tok: i for i, tok in enumerate(specials + benchmark_words())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL["unk"]))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words, removes the space before , . ?
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"],
        extra_special_tokens={"image_token": SPECIAL["image"]},
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        model_max_length=TEXT["max_position_embeddings"],
    )


def build_processor(tokenizer: Any | None = None) -> Any:
    from transformers import LlavaImageProcessorPil, LlavaProcessor

    tokenizer = tokenizer or build_tokenizer()
    size = {"height": shapes.IMAGE_SIZE, "width": shapes.IMAGE_SIZE}
    image_processor = LlavaImageProcessorPil(
        size=size,
        crop_size=size,
        do_center_crop=False,
        default_to_square=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="full",
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer: Any) -> Any:
    from transformers import LlamaConfig, LlavaConfig, SiglipVisionConfig

    ids = {k: int(tokenizer.convert_tokens_to_ids(v)) for k, v in SPECIAL.items()}
    text = LlamaConfig(
        vocab_size=(len(tokenizer) + 7) // 8 * 8,
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
        **TEXT,
    )
    return LlavaConfig(
        vision_config=SiglipVisionConfig(**VISION),
        text_config=text,
        image_token_id=ids["image"],
        projector_hidden_act="gelu",
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_seq_length=NUM_IMAGE_TOKENS,
        tie_word_embeddings=False,
    )


def build_model(tokenizer: Any, seed: int) -> Any:
    """A freshly initialised model, its weights drawn from ``seed``."""
    from transformers import GenerationConfig, LlavaForConditionalGeneration

    config = build_config(tokenizer)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    # GPT-2-style depth scaling of the residual writes: with 12 blocks at the default std every block adds as
    # much as the embedding, which slowed the first trials of this deep, narrow decoder.
    layers = model.model.language_model.layers
    std = config.text_config.initializer_range / math.sqrt(2 * len(layers))
    with torch.no_grad():
        for layer in layers:
            layer.self_attn.o_proj.weight.normal_(0.0, std)
            layer.mlp.down_proj.weight.normal_(0.0, std)
    text = config.text_config
    model.generation_config = GenerationConfig(
        bos_token_id=text.bos_token_id,
        eos_token_id=text.eos_token_id,
        pad_token_id=text.pad_token_id,
        do_sample=False,
        max_new_tokens=64,
    )
    return model


def prompt_text(processor: Any, sample: shapes.Sample) -> str:
    """The chat-formatted prompt of a sample, options included for multiple choice."""
    question = shapes.format_choices(sample.prompt, sample.choices) if sample.choices else sample.prompt
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def target_text(sample: shapes.Sample) -> str:
    """What the model is trained to answer: the chain of thought for reasoning, the caption, else the answer."""
    if sample.kind == "reasoning":
        return sample.meta["target"]
    if sample.kind == "caption":
        return sample.references[0]
    return sample.answer


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a formatted prompt with its ``<image>`` expanded, as the processor would produce them."""
    expanded = text.replace(SPECIAL["image"], SPECIAL["image"] * NUM_IMAGE_TOKENS)
    return tokenizer(expanded, add_special_tokens=False)["input_ids"]


def pixel_values(images: list[Any]) -> torch.Tensor:
    """The processor's pixel values for 48 x 48 RGB images (no resize needed: scale to [-1, 1])."""
    import numpy as np

    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images])
    return torch.from_numpy(arr / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
