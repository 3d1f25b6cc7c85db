"""The shared pieces random-weight VLMs are built from: a tokenizer, small shapes, seeded weights, processors.

A byte-level tokenizer (any text round-trips, no vocabulary file needed) carrying a family's special tokens and
chat template; the small shapes every tiny language model and vision tower start from; two ways to fill the
weights (transformers' own init from a seed, or a fast repeated pool for models of real size); and processor
construction without the video parts that need torchvision. Their numbers mean nothing: the models exist so that
users, tests and benchmarks can run a family's code path without a download.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

# Small but not degenerate: several heads with grouped KV, and enough layers for depth to be a dimension.
TINY_TEXT = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)

# Vision towers only need to run: two small layers.
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)

# A ChatML-like template that renders images through the processor's placeholder of each family.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ IMAGE }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_template(image_text: str) -> str:
    """The tiny chat template with ``image_text`` standing for one image."""
    return CHATML_TEMPLATE.replace("{{ IMAGE }}", image_text)


def byte_tokenizer(
    special_tokens: list[str],
    extra_special_tokens: dict[str, str] | None = None,
    chat_template: str | None = None,
    bos_token: str = "<|endoftext|>",
    eos_token: str = "<|im_end|>",
    pad_token: str = "<|pad|>",
) -> Any:
    """A byte-level fast tokenizer: 256 byte symbols, no merges, plus the given special tokens.

    ``extra_special_tokens`` maps attribute names to tokens (``{"image_token": "<image>"}`` gives
    ``tokenizer.image_token`` and ``tokenizer.image_token_id``), which is how processors find their tokens.
    """
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    extra = dict(extra_special_tokens or {})
    ordered = [bos_token, eos_token, pad_token, "<|im_start|>"]
    ordered += [t for t in special_tokens + list(extra.values()) if t not in ordered]
    # registering them on the raw tokenizer first fixes their ids (256, 257, ...) in this order
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ordered])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        extra_special_tokens=extra,
        chat_template=chat_template,
        padding_side="left",
    )
    missing = [t for t in ordered if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)]
    if missing:  # pragma: no cover - guards against tokenizer API drift
        raise RuntimeError(f"tiny tokenizer lost special tokens {missing}")
    return tokenizer


def token_id(tokenizer: Any, token: str) -> int:
    """The id of one special token."""
    return int(tokenizer.convert_tokens_to_ids(token))


def vocab_size(tokenizer: Any) -> int:
    """A vocabulary size that covers every id the tokenizer can emit (rounded up to a multiple of 8)."""
    n = len(tokenizer)
    return (n + 7) // 8 * 8


def seeded_init(model_cls: Any, config: Any, seed: int, redraw: Mapping[str, float] | None = None) -> Any:
    """Instantiate ``model_cls(config)`` with weights drawn from ``seed`` (same seed, same weights).

    ``redraw`` maps parameter names to a standard deviation: those parameters are drawn again from N(0, std),
    continuing the same seeded stream, after the model is built (no other weight changes). It is for weights that
    transformers initialises to zeros because a checkpoint always overwrites them, but that carry signal: a zero
    projection, say, blanks every image of a tiny model. A name the model does not have is an error.
    """
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = model_cls(config)
        if redraw:
            params = dict(model.named_parameters())
            missing = [name for name in redraw if name not in params]
            if missing:  # pragma: no cover - guards against transformers renaming a module
                raise RuntimeError(f"{model_cls.__name__} has no parameters {missing} to redraw")
            with torch.no_grad():
                for name, std in redraw.items():
                    params[name].normal_(0.0, std)
    finally:
        torch.random.set_rng_state(state)
    return model.eval()


def pooled_init(model_cls: Any, config: Any, seed: int, dtype: torch.dtype | None = None) -> Any:
    """Instantiate ``model_cls(config)`` directly in ``dtype`` and fill it by :func:`fill_random`, skipping the
    initialisers (torch's and transformers' would each draw every weight once: minutes for 3B on a CPU, and a
    model built in float32 first needs twice the memory)."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        model = model_cls._from_config(config, dtype=dtype or torch.float32)
    model.tie_weights()  # transformers ties the head inside the initialisation skipped above
    fill_random(model, seed)
    return model.eval()


@torch.no_grad()
def fill_random(model: torch.nn.Module, seed: int = 0, std: float = 0.02) -> None:
    """Matrices get repeats of one seeded N(0, std) pool of 65537 values, 1-D weights (norm scales) 1,
    biases 0.

    Timing needs finite, non-degenerate weights of the right shapes, not independent draws: repeating a
    pool that stays in cache runs at memory speed where drawing 3B normals takes minutes on a CPU. The pool's
    length is prime, so rows of a matrix are shifted copies rather than equal ones.
    """
    period = 65537
    pool = torch.randn(period, generator=torch.Generator().manual_seed(seed)) * std
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif param.dim() == 1:
            param.fill_(1.0)
        else:
            flat, tile = param.view(-1), pool.to(param.dtype)
            whole = flat.numel() // period * period
            flat[:whole].view(-1, period).copy_(tile.expand(whole // period, period))
            flat[whole:].copy_(tile[: flat.numel() - whole])


def build_processor(processor_cls: Any, **kwargs: Any) -> Any:
    """Instantiate a processor whose video/audio parts are absent.

    transformers checks the class of every processor attribute, and the check of an absent video processor fails
    without torchvision (its base class is a dummy then), although images never need it. Skipping the check for
    ``None`` attributes only is enough; everything that is passed is still checked.
    """
    from transformers import processing_utils

    original = processing_utils.ProcessorMixin.check_argument_for_proper_class

    def lenient(self: Any, argument_name: str, argument: Any) -> Any:
        if argument is None:
            return None
        return original(self, argument_name, argument)

    processing_utils.ProcessorMixin.check_argument_for_proper_class = lenient
    try:
        return processor_cls(**kwargs)
    finally:
        processing_utils.ProcessorMixin.check_argument_for_proper_class = original
