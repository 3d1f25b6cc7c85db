"""A deliberately naive reference for the interventions: a hand-written loop over the decoder blocks.

Nothing here comes from ``visdepth.interventions``: positions, rotary embeddings and attention masks are rebuilt by
hand from what transformers does for each family (read from its modeling and masking code), and every
intervention is written in its most literal form, one sample at a time, without a cache:

- the layer-0 input (merged text + image embeddings) is what block 0 receives in an unmodified run of the model
  (a plain forward pre-hook that stops the run there);
- positions follow ``generate``: a left-padded row starts at 0 (``cumsum(attention_mask) - 1``, pads at 0);
  PaliGemma counts from 1; Qwen2-VL / Qwen2.5-VL take their 3-D M-RoPE ids from the model's ``get_rope_index``
  (with ``mm_token_type_ids``), and their blocks get the 1-D text row as ``position_ids``;
- rotary ``(cos, sin)`` come from the language model's own rotary module at those ids (Gemma 3: once per layer
  type, local and global);
- masks are explicit 4-D additive float masks: causal, padding keys hidden, Gemma 3's sliding window
  (``k > q - window``, on sequence indices) around its bidirectional image blocks (runs of image tokens see each
  other), PaliGemma's bidirectional prefix (the whole prompt; generated tokens are the causal suffix);
- truncation, mask mode: in blocks >= cut, non-image queries lose image keys; drop mode: at block ``cut`` the image
  positions are cut out of the hidden states and of every per-position argument, each kept token keeping its
  original rotary phase and its row and column of the original mask;
- processing modes (freeze, skip_attn, skip_mlp, no_img2img): every block is written out by hand from its
  sub-modules (input norm, attention, the Gemma sandwich post-norms, MLP), and the attention and MLP *updates* of
  image rows are multiplied by 0 in blocks >= cut (freeze: both, so the image state passes unchanged while the
  next block still reads it for keys and values); no_img2img hides image keys from image queries, the own key
  kept. Below the cut (or with ``cut = L``) the hand-written block must reproduce the model's block;
- substitution: the prompt's layer-``l_b`` states are replaced by the hybrid before block ``l_b`` (before the final
  norm for ``l_b = L``), on every recomputation;
- greedy generation recomputes the whole sequence at every step and takes the argmax with the suppressed ids at
  minus infinity.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch


class _Stop(Exception):
    """Raised by the block-0 pre-hook to end the unmodified run once the layer-0 input is known."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = hidden


@torch.no_grad()
def layer0_input(adapter, tensors: dict) -> torch.Tensor:
    """What block 0 of the unmodified model receives for these inputs: (batch, T, hidden)."""

    def grab(_module, args, kwargs):
        raise _Stop(args[0] if args else kwargs["hidden_states"])

    handle = adapter.layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        adapter.base_model(**tensors, use_cache=False)
    except _Stop as stop:
        return stop.hidden
    finally:
        handle.remove()
    raise AssertionError("block 0 was never called")


def extend(tensors: dict, new: torch.Tensor) -> dict:
    """The inputs with one generated token per row appended: its id, a visible attention slot, type id 0.

    Type ids only steer the model's own masks, which the reference never uses (it builds its own), so 0 is enough
    for every family (the layer-0 input and the positions do not depend on them)."""
    ids = tensors["input_ids"]
    out = dict(tensors)
    for key, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.shape == ids.shape:
            fill = (
                new[:, None]
                if key == "input_ids"
                else torch.full_like(value[:, :1], 1 if key == "attention_mask" else 0)
            )
            out[key] = torch.cat([value, fill.to(value.dtype)], dim=1)
    return out


def text_positions(adapter, attention_mask: torch.Tensor) -> torch.Tensor:
    positions = attention_mask.long().cumsum(-1) - 1
    positions = positions.masked_fill(attention_mask == 0, 0)
    if adapter.config.model_type == "paligemma":
        positions = positions + 1  # PaliGemma's positions are 1-based
    return positions


def rope_positions(adapter, tensors: dict) -> torch.Tensor:
    """The ids the rotary module is called with: (batch, T), or (3, batch, T) for M-RoPE."""
    if "mm_token_type_ids" in tensors and hasattr(adapter.base_model, "get_rope_index"):
        positions, _ = adapter.base_model.get_rope_index(
            tensors["input_ids"],
            mm_token_type_ids=tensors["mm_token_type_ids"],
            image_grid_thw=tensors.get("image_grid_thw"),
            attention_mask=tensors["attention_mask"],
        )
        return positions
    return text_positions(adapter, tensors["attention_mask"])


def layer_types(adapter) -> list[str]:
    types = getattr(adapter.text_config, "layer_types", None)
    return list(types) if types else ["full_attention"] * adapter.num_layers


def rotary(adapter, hidden: torch.Tensor, positions: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(cos, sin)`` for every block, from the language model's rotary module(s)."""
    module = adapter.language_model.rotary_emb
    if "layer_type" in inspect.signature(module.forward).parameters:
        per_type = {t: module(hidden, positions, t) for t in set(layer_types(adapter))}
        return [per_type[t] for t in layer_types(adapter)]
    return [module(hidden, positions)] * adapter.num_layers


def visibility(adapter, j: int, image: torch.Tensor, valid: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """(T, T) bool, True where query q may attend to key k in block ``j`` of the unmodified model (one row)."""
    T = image.shape[0]
    q = torch.arange(T)[:, None]
    k = torch.arange(T)[None, :]
    allowed = k <= q
    model_type = adapter.config.model_type
    if model_type == "gemma3":
        # consecutive image tokens form one block, attended bidirectionally
        start = image & ~torch.cat([torch.zeros(1, dtype=torch.bool), image[:-1]])
        group = torch.where(image, start.long().cumsum(0), 0)
        allowed = allowed | ((group[:, None] == group[None, :]) & (group[:, None] > 0))
    elif model_type == "paligemma":
        prefix = torch.arange(T) < prompt_len
        allowed = allowed | (prefix[:, None] & prefix[None, :])
    window = getattr(adapter.text_config, "sliding_window", None)
    if layer_types(adapter)[j] == "sliding_attention" and window is not None:
        allowed = allowed & (k > q - window)
    return allowed & valid[None, :]


def additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


def head(adapter, hidden: torch.Tensor) -> torch.Tensor:
    logits = adapter.lm_head(adapter.norm(hidden))
    cap = getattr(adapter.text_config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


PROCESS = ("freeze", "skip_attn", "skip_mlp", "no_img2img")


def block_by_hand(layer, hidden, mask, rope, positions, keep_attn, keep_mlp):
    """One decoder block written out: x + keep_attn * attn-update, then + keep_mlp * MLP-update (keep: (T,))."""
    sandwich = hasattr(layer, "pre_feedforward_layernorm")
    attn = layer.self_attn(
        hidden_states=layer.input_layernorm(hidden),
        attention_mask=mask,
        position_embeddings=rope,
        position_ids=positions,
    )[0]
    if sandwich:
        attn = layer.post_attention_layernorm(attn)
    hidden = hidden + attn * keep_attn[None, :, None]
    pre = layer.pre_feedforward_layernorm if sandwich else layer.post_attention_layernorm
    mlp = layer.mlp(pre(hidden))
    if sandwich:
        mlp = layer.post_feedforward_layernorm(mlp)
    return hidden + mlp * keep_mlp[None, :, None]


@dataclass
class Splice:
    """Replace the prompt's input of block ``layer`` (of the final norm for ``layer = L``) with ``hybrid``."""

    layer: int
    hybrid: torch.Tensor  # (batch, prompt_len, hidden)


@dataclass
class Result:
    logits: torch.Tensor  # (batch, T, vocab) float32, NaN at positions that were dropped
    states: list[list[torch.Tensor]]  # per sample: layers 0..L, (T, hidden), NaN where dropped


@torch.no_grad()
def forward(
    adapter,
    tensors: dict,
    prompt_len: int | None = None,
    cut: int | None = None,
    mode: str = "mask",
    splice: Splice | None = None,
    only: int | None = None,
) -> Result:
    """One full pass (no cache) of the naive loop; ``prompt_len`` marks where generated tokens start; ``only``
    applies a processing mode in that one block instead of every block from ``cut`` on."""
    ids = tensors["input_ids"]
    batch, T = ids.shape
    prompt_len = T if prompt_len is None else prompt_len
    L = adapter.num_layers
    embeds = layer0_input(adapter, tensors)
    dtype = embeds.dtype
    positions = text_positions(adapter, tensors["attention_mask"])
    rope = rotary(adapter, embeds, rope_positions(adapter, tensors))
    valid = tensors["attention_mask"].bool()
    image = ids == adapter.image_token_id
    image[:, prompt_len:] = False  # generated tokens are text
    logits = torch.full((batch, T, adapter.lm_head.weight.shape[0]), float("nan"))
    states: list[list[torch.Tensor]] = []
    for b in range(batch):
        hidden = embeds[b : b + 1]
        kept = torch.arange(T)  # original positions still in the sequence
        row_states = [hidden[0].float()]
        for j in range(L):
            if splice is not None and j == splice.layer:
                hidden = torch.cat([splice.hybrid[b : b + 1].to(dtype), hidden[:, prompt_len:]], dim=1)
            allowed = visibility(adapter, j, image[b], valid[b], prompt_len)
            above = (cut is not None and j >= cut) if only is None else j == only
            ones = torch.ones(T, dtype=dtype)
            keep_attn = keep_mlp = ones
            if above:
                img = image[b]
                if mode == "mask":
                    allowed = allowed & ~(~img[:, None] & img[None, :])
                elif mode == "drop" and j == cut:
                    kept = (~img).nonzero().flatten()
                    hidden = hidden[:, kept]
                elif mode == "no_img2img":
                    allowed = allowed & ~(img[:, None] & img[None, :] & ~torch.eye(T, dtype=torch.bool))
                not_image = (~img).to(dtype)
                if mode in ("freeze", "skip_attn"):
                    keep_attn = not_image
                if mode in ("freeze", "skip_mlp"):
                    keep_mlp = not_image
            cos, sin = rope[j]
            cos, sin = cos[..., b : b + 1, :, :][..., kept, :], sin[..., b : b + 1, :, :][..., kept, :]
            args = (additive(allowed[kept][:, kept], dtype), (cos, sin), positions[b : b + 1, kept])
            if mode in PROCESS:
                hidden = block_by_hand(adapter.layers[j], hidden, *args, keep_attn, keep_mlp)
            else:
                out = adapter.layers[j](
                    hidden, attention_mask=args[0], position_embeddings=args[1], position_ids=args[2]
                )
                hidden = out[0] if isinstance(out, tuple | list) else out
            full = torch.full((T, hidden.shape[-1]), float("nan"))
            full[kept] = hidden[0].float()
            row_states.append(full)
        if splice is not None and splice.layer == L:
            hidden = torch.cat([splice.hybrid[b : b + 1].to(dtype), hidden[:, prompt_len:]], dim=1)
        logits[b, kept] = head(adapter, hidden)[0]
        states.append(row_states)
    return Result(logits=logits, states=states)


def suppressed_ids(adapter) -> list[int]:
    """The image placeholder (never generated by visdepth) and the EOS ids (the tests ask for min_new_tokens)."""
    eos = adapter.model.generation_config.eos_token_id
    eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    return [adapter.image_token_id, *eos]


@torch.no_grad()
def generate(
    adapter, tensors: dict, max_new_tokens: int, **intervention
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy tokens (batch, n) and raw next-token logits (batch, n, vocab), recomputing everything each step."""
    prompt_len = tensors["input_ids"].shape[1]
    suppress = suppressed_ids(adapter)
    tokens, steps = [], []
    for _ in range(max_new_tokens):
        last = forward(adapter, tensors, prompt_len=prompt_len, **intervention).logits[:, -1]
        scores = last.clone()
        scores[:, suppress] = float("-inf")
        new = scores.argmax(-1)
        tokens.append(new)
        steps.append(last)
        tensors = extend(tensors, new)
    return torch.stack(tokens, dim=1), torch.stack(steps, dim=1)


def hybrid(states: list[list[torch.Tensor]], group: torch.Tensor, l_a: int, l_b: int) -> torch.Tensor:
    """Per sample, state ``l_b`` with the ``group`` (batch, T) positions taken from state ``l_a``."""
    rows = [torch.where(group[b][:, None], s[l_a], s[l_b]) for b, s in enumerate(states)]
    return torch.stack(rows)
