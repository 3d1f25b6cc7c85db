"""Shared machinery of the exact interventions: per-position block arguments, masks, a cache with hidden positions.

Every decoder block of a transformers-5 VLM is called as ``block(hidden_states, attention_mask=...,
position_embeddings=(cos, sin), position_ids=..., <cache>=..., **extras)``, where the cache argument is
``cache`` from transformers 5.24 and ``past_key_values`` before (read and written only through
:mod:`visdepth.models.compat`); the names below are the arguments that carry one entry per sequence position and
therefore follow any change of the sequence. What each family passes (checked on every tiny variant):

- LLaVA / LLaVA-NeXT / OneVision, Idefics3 / SmolVLM, InternVL, PaliGemma: a 4-D bool mask (an additive float
  one under eager attention; ``None`` when sdpa may use ``is_causal``), ``(cos, sin)`` of shape (1, T, d), ``position_ids`` (1, T), plus ``use_cache`` and
  harmless extras (``image_sizes=None``, ``logits_to_keep``).
- Qwen2-VL / Qwen2.5-VL: ``(cos, sin)`` already merged from the 3-D M-RoPE rows, shape (B, T, d);
  ``position_ids`` is the text row or ``None``.
- Gemma 3: one mask per layer type (sliding-window or global, both with the bidirectional image blocks) and the
  rotary embedding of that type (local or global base); each block receives the pair of its own type.

Positions are always *original* positions: slicing gathers the entries of kept positions, so a token keeps its
rotary phase after others are removed, whatever the rotary scheme.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from visdepth.models.base import ModelInputs, VLMAdapter
from visdepth.models.compat import cache_kwarg, get_cache, with_cache

MASK_KEY = "attention_mask"
ROPE_KEY = "position_embeddings"
POSITION_KEY = "position_ids"


# ---------------------------------------------------------------------- block arguments
def block_hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a decoder block was called with (positional or keyword)."""
    return args[0] if args else kwargs["hidden_states"]


def block_output(value: Any) -> torch.Tensor:
    """Decoder blocks return a tensor in transformers 5, a tuple in some families and older releases."""
    return value[0] if isinstance(value, tuple | list) else value


def repeat_batch(tensor: torch.Tensor, n: int, axis: int) -> torch.Tensor:
    """``n`` copies of the batch along its ``axis``, copy-major (copy c, sample b at index c * batch + b)."""
    reps = [1] * tensor.ndim
    reps[axis % tensor.ndim] = n
    return tensor.repeat(*reps)


def with_block_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def gather_positions(tensor: torch.Tensor, index: torch.Tensor, axis: int) -> torch.Tensor:
    """Entries of ``index`` (batch, n) along the sequence ``axis`` of ``tensor``; -1 (filler) reads position 0.

    The batch axis is the one just before ``axis``; a broadcast batch of 1 is expanded first, because samples of a
    batch generally keep different positions.
    """
    axis = axis % tensor.ndim
    index = index.to(tensor.device)  # a block of a sharded model may sit on another device than the index
    batch = index.shape[0]
    shape = list(tensor.shape)
    shape[axis - 1] = batch
    tensor = tensor.expand(*shape)
    view = [1] * tensor.ndim
    view[axis - 1], view[axis] = batch, index.shape[1]
    idx = index.clamp(min=0).view(view)
    target = list(tensor.shape)
    target[axis] = index.shape[1]
    return tensor.gather(axis, idx.expand(target))


def gather_rope(rope: Any, index: torch.Tensor) -> Any:
    """``(cos, sin)`` (..., batch, T, d) at the kept positions (every supported family passes such a pair)."""
    if rope is None:
        return None
    return tuple(gather_positions(t, index, axis=-2) for t in rope)


def gather_position_ids(position_ids: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    if position_ids is None:
        return None
    return gather_positions(position_ids, index, axis=-1)


# ---------------------------------------------------------------------- masks
def blocked_value(mask: torch.Tensor) -> Any:
    """What marks a key as invisible: False in a bool mask, the dtype's minimum in an additive float mask."""
    return False if mask.dtype == torch.bool else torch.finfo(mask.dtype).min


def open_value(mask: torch.Tensor) -> Any:
    return True if mask.dtype == torch.bool else 0.0


def visible(mask: torch.Tensor) -> torch.Tensor:
    """A bool view of a mask (True = may attend), for bool and additive float masks alike."""
    if mask.dtype == torch.bool:
        return mask
    return mask > torch.finfo(mask.dtype).min / 2


def materialise_mask(
    mask: torch.Tensor | None, batch: int, q_len: int, kv_len: int, device: torch.device
) -> torch.Tensor:
    """The 4-D mask (batch, heads, q, kv) a block would apply; ``None`` stands for what sdpa does without one.

    transformers passes ``None`` only when the queries are the last ``q_len`` of ``kv_len`` positions with no
    padding: a causal mask aligned to the bottom right (all-visible for a single query).
    """
    if mask is None:
        q = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
        k = torch.arange(kv_len, device=device)[None, :]
        return (k <= q).view(1, 1, q_len, kv_len).expand(batch, 1, q_len, kv_len)
    if not isinstance(mask, torch.Tensor) or mask.ndim != 4 or mask.shape[-2:] != (q_len, kv_len):
        raise RuntimeError(
            f"expected a 4-D attention mask over {q_len} queries and {kv_len} keys in the decoder blocks, got "
            f"{getattr(mask, 'shape', type(mask).__name__)}; the model's cache or attention kernel is not one these "
            "interventions support (use attn_implementation='sdpa' or 'eager')."
        )
    return mask.expand(batch, *mask.shape[1:])


def gather_mask(mask: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor) -> torch.Tensor:
    """The mask restricted to query ``rows`` and key ``cols`` (batch, n) indices; -1 marks a filler slot.

    A filler key is invisible to every query. A filler query (a slot that only re-pads a ragged batch) sees its own
    key, the column at the same distance from the end, so that no row is fully masked (which some kernels turn
    into NaN). ``rows=None`` keeps every query.
    """
    batch, heads, _, _ = mask.shape
    cols = cols.to(mask.device)  # the mask is on the decoder's device, the indices may not be
    rows = None if rows is None else rows.to(mask.device)
    if rows is not None:
        r = rows.clamp(min=0)[:, None, :, None].expand(batch, heads, rows.shape[1], mask.shape[-1])
        mask = mask.gather(2, r)
    q_len = mask.shape[2]
    c = cols.clamp(min=0)[:, None, None, :].expand(batch, heads, q_len, cols.shape[1])
    out = mask.gather(3, c)
    out = out.masked_fill((cols < 0)[:, None, None, :], blocked_value(out))
    if rows is not None and bool((rows < 0).any()):
        own = torch.zeros(q_len, cols.shape[1], dtype=torch.bool, device=out.device)
        diag = torch.arange(q_len, device=out.device)
        own[diag, diag + cols.shape[1] - q_len] = True
        filler = (rows < 0)[:, None, :, None]
        own_row = torch.full_like(own, blocked_value(out), dtype=out.dtype).masked_fill(own, open_value(out))
        out = torch.where(filler, own_row, out)
    return out


# ---------------------------------------------------------------------- index helpers
def left_packed(keep: torch.Tensor) -> torch.Tensor:
    """Positions where ``keep`` (batch, T) is True, each row left-padded with -1 to the longest row."""
    counts = keep.sum(-1)
    width = int(counts.max()) if keep.numel() else 0
    T = keep.shape[-1]
    order = torch.arange(T, device=keep.device).expand_as(keep)
    # kept positions sort to the end in their original order; dropped ones to the front
    key = torch.where(keep, order + T, order)
    sorted_pos = key.sort(dim=-1).values[:, T - width :]
    positions = sorted_pos - T
    slot = torch.arange(width, device=keep.device)[None, :]
    return torch.where(slot >= (width - counts)[:, None], positions, torch.full_like(positions, -1))


def gather_states(states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Hidden states (batch, T, H) at ``index`` (batch, n); filler slots (-1) get zeros."""
    out = gather_positions(states, index, axis=1)
    return out.masked_fill((index < 0).to(out.device)[..., None], 0)


# ---------------------------------------------------------------------- cache
class TruncationCache(DynamicCache):
    """A dynamic cache whose layers may hold fewer positions than the sequence has (dropped image tokens).

    Every layer stores full attention history (no sliding-window eviction, whose bookkeeping counts stored rather
    than original positions); sliding windows stay exact because the masks carry them. ``hidden_positions[j]`` is
    how many positions layer ``j`` does not store, so lengths and mask sizes are reported for the *whole*
    sequence: transformers then derives decoding positions and masks in original coordinates from any layer,
    including a truncated layer 0.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hidden_positions: dict[int, int] = {}

    def stored_length(self, layer_idx: int) -> int:
        return super().get_seq_length(layer_idx)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.stored_length(layer_idx) + self.hidden_positions.get(layer_idx, 0)

    def get_mask_sizes(self, query_length: int, layer_idx: int) -> tuple[int, int]:
        return self.get_seq_length(layer_idx) + query_length, 0


class PrefixKV:
    """A one-layer stand-in for a cache: ``update`` prepends fixed keys/values (shared positions) to the new ones.

    Attention modules only call ``update(key, value, layer_idx)``, so this is enough to run a block on a few query
    positions against keys computed elsewhere.
    """

    def __init__(self, layer_idx: int, keys: torch.Tensor, values: torch.Tensor):
        self.layer_idx, self.keys, self.values = layer_idx, keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kw: Any
    ):
        if layer_idx != self.layer_idx:  # pragma: no cover - a block that writes another layer's cache
            raise RuntimeError(f"block wrote cache layer {layer_idx}, expected {self.layer_idx}")
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


# ---------------------------------------------------------------------- model calls
def block_cache(adapter: VLMAdapter, j: int, kwargs: dict) -> Any:
    """The cache decoder block ``j`` was called with (``None`` without one)."""
    return get_cache(adapter.layers[j], kwargs)


def with_block_cache(adapter: VLMAdapter, j: int, kwargs: dict, cache: Any) -> dict:
    """Block ``j``'s keyword arguments with ``cache`` under the name that block reads."""
    return with_cache(adapter.layers[j], kwargs, cache)


def prefill_kwargs(
    adapter: VLMAdapter, inputs: ModelInputs, use_cache: bool = False, cache: Any = None, **extra: Any
) -> dict:
    """Keyword arguments of the first forward pass exactly as ``generate`` builds them (``cache``: a cache to
    fill, passed under the model's own name for it).

    Position ids come from the attention mask (left padding starts each sample at position 0) through the model's
    own rule (Qwen: 3-D M-RoPE positions plus the text row; PaliGemma: 1-based), so a padded batch matches its
    samples run alone, and logits computed here match the first step of ``generate``.
    """
    model = adapter.model
    kwargs = adapter.model_kwargs(inputs.to(adapter.device, adapter.dtype))
    ids = kwargs.pop("input_ids")
    kwargs.update(extra)
    kwargs["use_cache"] = use_cache
    if cache is not None:
        kwargs[cache_kwarg(model)] = cache
    if kwargs.get(POSITION_KEY) is None and POSITION_KEY in inspect.signature(model.forward).parameters:
        kwargs[POSITION_KEY] = model._prepare_position_ids_for_generation(ids, {"input_ids": ids, **kwargs})
    return model.prepare_inputs_for_generation(ids, is_first_iteration=True, **kwargs)


def head_logits(adapter: VLMAdapter, hidden: torch.Tensor) -> torch.Tensor:
    """Logits from *un-normed* last-layer states: final norm, head, and the final soft-capping of Gemma-2 decoders."""
    logits = adapter.lm_head(adapter.norm(hidden))
    cap = getattr(adapter.text_config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits


def register_block_pre_hooks(
    adapter: VLMAdapter, hook: Callable[[int, tuple, dict], tuple[tuple, dict] | None], layers: range
) -> list[Any]:
    """Forward pre-hooks (with kwargs) on the given decoder blocks; ``hook(j, args, kwargs)`` may return new ones."""
    handles = []
    for j in layers:

        def call(_module: Any, args: tuple, kwargs: dict, j: int = j) -> Any:
            return hook(j, args, kwargs)

        handles.append(adapter.layers[j].register_forward_pre_hook(call, with_kwargs=True))
    return handles


@dataclass
class Generation:
    """Greedy continuation of a batch: new token ids (batch, n; padded after EOS), their text, optional logits."""

    tokens: torch.Tensor
    text: list[str]
    #: raw next-token logits of every step (batch, n, vocab), float32, when asked for
    logits: torch.Tensor | None = None


@torch.no_grad()
def greedy_generate(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    max_new_tokens: int,
    use_cache: bool = True,
    cache: Any = None,
    output_logits: bool = False,
    **gen_kwargs: Any,
) -> Generation:
    """``model.generate`` with greedy decoding on the adapter's inputs (whatever hooks are active).

    The image placeholder id is never generated (``suppress_tokens``): recomputed without a cache, a generated
    placeholder would be taken for an image slot, and no trained model emits it anyway (random ones can).
    """
    kwargs = adapter.model_kwargs(inputs.to(adapter.device, adapter.dtype))
    gen_kwargs.setdefault("suppress_tokens", [adapter.image_token_id])
    if cache is not None:
        kwargs[cache_kwarg(adapter.model)] = cache
    pad = getattr(adapter.tokenizer, "pad_token_id", None)
    out = adapter.model.generate(
        **kwargs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        use_cache=use_cache,
        return_dict_in_generate=True,
        output_logits=output_logits,
        pad_token_id=pad,
        **gen_kwargs,
    )
    tokens = out.sequences[:, inputs.input_ids.shape[1] :].cpu()
    logits = torch.stack(out.logits, dim=1).float().cpu() if output_logits else None
    text = adapter.tokenizer.batch_decode(tokens, skip_special_tokens=True)
    return Generation(tokens=tokens, text=text, logits=logits)
