"""Depth-wise visual truncation (RQ3): image tokens live in the first ``cut`` decoder blocks only, or (the
processing modes of :mod:`visdepth.interventions.modes`) stay readable there but are no longer updated.

Blocks ``cut..L-1``, the final norm and head, and every generated token cannot see image positions. Two exact
mechanics, which agree to float tolerance:

- ``mask``: blocks >= cut receive a mask in which non-image queries may not attend to image keys. Nothing is
  saved; image positions keep being computed (nobody reads them).
- ``drop``: at block ``cut`` the image positions leave the hidden states and every per-position argument of the
  blocks above (rotary cos/sin and position ids at their *original* positions, Qwen's M-RoPE included; the mask on
  both axes), so those blocks and their KV cache only hold kept positions: prefill and every decoding step above
  the cut are cheaper. A batch whose samples lose different numbers of tokens is re-padded on the left with filler
  slots that no query sees. The final hidden states are scattered back to the original positions (NaN where a
  position was dropped), so logits line up with the input ids and ``generate`` reads the last position as usual.

The processing modes keep the image positions readable. ``freeze`` runs like ``drop`` for the queries (blocks
>= cut only process the text positions, so the saving is real), but each such block first computes the image
positions' keys and values from their frozen block-``cut`` input (its own input norm, projections, rotary phase
and q/k norms: the block's attention module is called on them and stopped at its cache write), which sit in
front of the text keys (in the cache as well); the final states of image positions are their frozen states. The
skip modes zero the attention or MLP update at image positions (forward hooks on the sub-layer that adds to the
residual stream); ``no_img2img`` edits the mask like ``mask`` does, for image queries on other image keys.

All work through forward hooks, so ``model(...)`` and ``model.generate(...)`` (greedy, sampling, beams; with
or without KV cache) run unchanged inside :func:`truncate_visual_depth`. With a cache, the decoder's cache is a
:class:`~visdepth.interventions.hooks.TruncationCache` (swapped in for an empty one), which reports the full
sequence length: transformers derives decoding positions and masks (Qwen: with the prefill's ``rope_deltas``) in
original coordinates, and the hooks map masks onto the keys each truncated layer really holds. Without a cache,
each step recomputes the whole sequence; image positions are those of the prompt, generated tokens are text.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Literal

import torch

from visdepth.errors import ConfigError, InputError
from visdepth.interventions.hooks import (
    MASK_KEY,
    POSITION_KEY,
    ROPE_KEY,
    Generation,
    PrefixKV,
    TruncationCache,
    block_cache,
    block_hidden,
    gather_mask,
    gather_position_ids,
    gather_rope,
    gather_states,
    greedy_generate,
    left_packed,
    materialise_mask,
    prefill_kwargs,
    register_block_pre_hooks,
    with_block_cache,
    with_block_hidden,
)
from visdepth.interventions.modes import (  # noqa: F401  (MODES and validate_mode: names read from here)
    MODES,
    no_img2img_mask,
    skipped_module,
    validate_mode,
    zero_rows_hook,
)
from visdepth.models.base import ModelInputs, VLMAdapter, module_device
from visdepth.models.compat import get_cache, with_cache

#: modes whose blocks above the cut hold only the text positions as queries (their KV cache has its own order)
PACKED_MODES = ("drop", "freeze")


class _Captured(Exception):
    """Raised by :class:`_CaptureKV` once an attention module has written its keys and values."""


class _CaptureKV:
    """A cache stand-in that keeps the keys and values an attention module writes, then stops the module."""

    def __init__(self, layer_idx: int):
        self.layer_idx = layer_idx
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kw: Any
    ):
        self.keys, self.values = key_states, value_states
        raise _Captured


Mode = Literal["mask", "drop", "freeze", "skip_attn", "skip_mlp", "no_img2img"]


def validate_cut(adapter: VLMAdapter, cut: int) -> int:
    """``cut`` as an int in 0..L, or a :class:`ConfigError` naming the valid range."""
    L = adapter.num_layers
    try:
        if isinstance(cut, bool):
            raise TypeError
        cut = operator.index(cut)
    except TypeError:
        raise ConfigError(f"cut depth must be an integer in 0..{L}, got {cut!r}.") from None
    if cut > L:
        raise ConfigError(f"cut depth {cut} is beyond the model's {L} layers; use 0..{L}.")
    if cut < 0:
        raise ConfigError(f"cut depth {cut} is negative; use 0..{L} (0 removes the image from every layer).")
    return cut


class Truncation:
    """The hooks' state: which positions are images, and what the current forward pass keeps.

    ``block_lengths`` records, for the last forward pass, the sequence length each block received (for checks and
    benchmarks).
    """

    def __init__(self, adapter: VLMAdapter, inputs: ModelInputs, cut: int, mode: str):
        self.adapter, self.cut, self.mode = adapter, cut, mode
        self.num_layers = adapter.num_layers
        self.prompt_image = inputs.image_mask.to(adapter.device).bool()
        self.block_lengths: dict[int, int] = {}
        self.key_index: torch.Tensor | None = None  # original positions held by truncated layers' caches
        self._reset_forward()

    def _reset_forward(self) -> None:
        self.fresh = True
        self.past_len = 0
        self.image_q: torch.Tensor | None = None  # image flags of this pass's queries
        self.image_k: torch.Tensor | None = None  # image flags of every key position (original coordinates)
        self.src: torch.Tensor | None = None  # kept query positions after the cut (drop, fresh pass)
        self.img: torch.Tensor | None = None  # image positions, packed (freeze, fresh pass)
        self.frozen_img: torch.Tensor | None = None  # their frozen states (freeze)
        self.dropped = False
        self.memo: dict[tuple[str, int], Any] = {}

    # ------------------------------------------------------------------ positions
    def image_flags(self, length: int, batch: int) -> torch.Tensor:
        """Image flags of original positions 0..length-1: the prompt's, then text (generated tokens)."""
        prompt = self.prompt_image
        if batch != prompt.shape[0]:
            if batch % prompt.shape[0]:
                raise InputError(
                    f"the model ran on a batch of {batch} but truncation was set up for {prompt.shape[0]} samples; "
                    "pass the same inputs to truncate_visual_depth and to the model."
                )
            # generate() expands each sample for beams / several return sequences
            prompt = prompt.repeat_interleave(batch // prompt.shape[0], dim=0)
        T = prompt.shape[1]
        if length < T:
            raise InputError(
                f"the model ran on {length} positions but the prompt given to truncate_visual_depth has {T}; "
                "pass the same inputs to both."
            )
        return torch.cat([prompt, prompt.new_zeros(batch, length - T)], dim=1)

    def plan(self, hidden: torch.Tensor, past: Any) -> None:
        """Called before block 0 of every forward pass: fresh sequence or continuation, and what drop keeps."""
        self._reset_forward()
        batch, q = hidden.shape[:2]
        if past is not None and not isinstance(past, TruncationCache) and past.get_seq_length() > 0:
            raise ConfigError(
                "the decoder was given a cache filled outside truncate_visual_depth; start generation inside it."
            )
        self.past_len = past.get_seq_length(0) if past is not None else 0
        self.fresh = self.past_len == 0
        self.image_k = self.image_flags(self.past_len + q, batch)
        self.image_q = self.image_k[:, self.past_len :]
        self.block_lengths = {}
        if self.mode not in PACKED_MODES:
            return
        if self.fresh:
            last_is_image = self.image_q[:, -1]
            if bool(last_is_image.any()):
                i = int(last_is_image.nonzero()[0])
                raise InputError(
                    f"sample {i} ends with an image token; {self.mode} mode needs the prompt to end with text "
                    "after the image (add the question or the template's assistant turn)."
                )
            self.src = left_packed(~self.image_q)
            self.dropped = True
            keys = self.src
            if self.mode == "freeze":
                self.img = left_packed(self.image_q)
                keys = torch.cat([self.img, self.src], dim=1)  # image keys first, in cache order
            self.key_index = keys if past is not None else None
        else:
            if bool(self.image_q.any()):
                raise InputError(
                    f"new image tokens arrived after the prefill; {self.mode} mode supports images in the first "
                    "forward pass only."
                )
            if self.key_index is None or self.key_index.shape[0] != batch:
                raise ConfigError(
                    "the cache was not filled under this truncation; run the prefill inside truncate_visual_depth."
                )
            new = torch.arange(self.past_len, self.past_len + q, device=self.key_index.device).expand(
                batch, q
            )
            self.key_index = torch.cat([self.key_index, new], dim=1)

    # ------------------------------------------------------------------ hooks
    def _memo(self, kind: str, value: Any, make: Any) -> Any:
        key = (kind, id(value))
        if key not in self.memo:
            self.memo[key] = make(value)
        return self.memo[key]

    def block_hook(self, j: int, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = block_hidden(args, kwargs)
        if j == 0:
            self.plan(hidden, block_cache(self.adapter, 0, kwargs))
        if j < self.cut:
            self.block_lengths[j] = hidden.shape[1]
            return args, kwargs
        kwargs = dict(kwargs)
        if self.mode == "mask":
            kwargs[MASK_KEY] = self._memo("mask", kwargs.get(MASK_KEY), lambda m: self._masked(m, hidden))
        elif self.mode == "no_img2img":
            if bool(self.image_q.any()):
                kwargs[MASK_KEY] = self._memo(
                    "mask", kwargs.get(MASK_KEY), lambda m: self._no_img2img(m, hidden)
                )
        elif self.mode not in PACKED_MODES:  # the skip modes act on the block's sub-layers
            pass
        elif self.fresh and self.mode == "freeze":
            hidden, kwargs = self._freeze_fresh(j, hidden, kwargs)
        elif self.fresh:
            hidden, kwargs = self._drop_fresh(j, hidden, kwargs)
        else:
            kwargs = self._drop_continuation(j, hidden, kwargs)
        self.block_lengths[j] = hidden.shape[1]
        return with_block_hidden(args, kwargs, hidden)

    def _masked(self, mask: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
        batch, q = hidden.shape[:2]
        full = materialise_mask(mask, batch, q, self.past_len + q, hidden.device)
        # text (and generated) queries lose image keys; image queries keep theirs, so no row is ever emptied
        block = ((~self.image_q)[:, None, :, None] & self.image_k[:, None, None, :]).to(full.device)
        blocked = False if full.dtype == torch.bool else torch.finfo(full.dtype).min
        return full.masked_fill(block, blocked)

    def _no_img2img(self, mask: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
        batch, q = hidden.shape[:2]
        full = materialise_mask(mask, batch, q, self.past_len + q, hidden.device)
        keys = torch.arange(self.past_len + q, device=hidden.device).expand(batch, -1)
        return no_img2img_mask(full, self.image_q, self.image_k, keys[:, self.past_len :], keys)

    def _freeze_fresh(self, j: int, hidden: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, dict]:
        """Block j >= cut under freeze: text queries only; image keys and values from the frozen states."""
        src, img = self.src, self.img
        assert src is not None and img is not None
        batch, q = self.image_q.shape
        if j == self.cut:
            self.frozen_img = gather_states(hidden, img)
            hidden = gather_states(hidden, src)
        keys = torch.cat([img, src], dim=1)

        def mask_of(mask: torch.Tensor | None) -> torch.Tensor:
            return gather_mask(materialise_mask(mask, batch, q, q, hidden.device), src, keys)

        kwargs[MASK_KEY] = self._memo("mask", kwargs.get(MASK_KEY), mask_of)
        rope = kwargs.get(ROPE_KEY)
        img_rope = None
        if rope is not None:
            kwargs[ROPE_KEY] = self._memo("rope", rope, lambda r: gather_rope(r, src))
            img_rope = self._memo("img_rope", rope, lambda r: gather_rope(r, img))
        pos = kwargs.get(POSITION_KEY)
        img_pos = None
        if pos is not None:
            kwargs[POSITION_KEY] = self._memo("pos", pos, lambda p: gather_position_ids(p, src))
            img_pos = self._memo("img_pos", pos, lambda p: gather_position_ids(p, img))
        k_img, v_img = self._image_kv(j, img_rope, img_pos)
        past = block_cache(self.adapter, j, kwargs)
        if isinstance(past, TruncationCache):
            past.update(k_img, v_img, j)  # the block appends the text keys behind them
            past.hidden_positions[j] = q - keys.shape[1]
        else:
            kwargs = with_block_cache(self.adapter, j, kwargs, PrefixKV(j, k_img, v_img))
        return hidden, kwargs

    def _image_kv(self, j: int, rope: Any, positions: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Block j's keys and values of the frozen image states: its attention module, stopped at the cache."""
        layer = self.adapter.layers[j]
        attn = layer.self_attn
        capture = _CaptureKV(j)
        kw = {
            # the frozen states were made at block cut, which may sit on another device than block j
            "hidden_states": layer.input_layernorm(self.frozen_img.to(module_device(layer.input_layernorm))),
            "attention_mask": None,
            "position_embeddings": rope,
            "position_ids": positions,
        }
        with suppress(_Captured):
            attn(**with_cache(attn, kw, capture))
        if capture.keys is None or capture.values is None:  # pragma: no cover - an attention without a cache
            raise RuntimeError(
                f"block {j}'s attention never wrote its cache; freeze mode cannot get its keys"
            )
        return capture.keys, capture.values

    def image_rows(self, _out: torch.Tensor) -> torch.Tensor | None:
        """This pass's image queries (None in a decoding step, which holds none)."""
        return self.image_q if bool(self.image_q.any()) else None

    def _drop_fresh(self, j: int, hidden: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, dict]:
        src = self.src
        assert src is not None
        batch, q = self.image_q.shape
        if j == self.cut:
            hidden = gather_states(hidden, src)
        has_filler = bool((src < 0).any())

        def mask_of(mask: torch.Tensor | None) -> torch.Tensor | None:
            # with no padding and no filler the kept sequence is still plainly causal: let sdpa use is_causal
            if mask is None and not has_filler:
                return None
            return gather_mask(materialise_mask(mask, batch, q, q, hidden.device), src, src)

        kwargs[MASK_KEY] = self._memo("mask", kwargs.get(MASK_KEY), mask_of)
        if kwargs.get(ROPE_KEY) is not None:
            kwargs[ROPE_KEY] = self._memo("rope", kwargs[ROPE_KEY], lambda r: gather_rope(r, src))
        if kwargs.get(POSITION_KEY) is not None:
            kwargs[POSITION_KEY] = self._memo(
                "pos", kwargs[POSITION_KEY], lambda p: gather_position_ids(p, src)
            )
        past = block_cache(self.adapter, j, kwargs)
        if isinstance(past, TruncationCache):
            past.hidden_positions[j] = q - src.shape[1]
        return hidden, kwargs

    def _drop_continuation(self, j: int, hidden: torch.Tensor, kwargs: dict) -> dict:
        keys = self.key_index
        assert keys is not None
        past = block_cache(self.adapter, j, kwargs)
        batch, q = hidden.shape[:2]
        if isinstance(past, TruncationCache) and past.stored_length(j) + q != keys.shape[1]:
            raise ConfigError(
                f"block {j} holds {past.stored_length(j)} cached positions, expected {keys.shape[1] - q}; "
                "the cache was modified outside truncate_visual_depth."
            )
        has_filler = bool((keys < 0).any())

        def mask_of(mask: torch.Tensor | None) -> torch.Tensor | None:
            # a single query with no filler keys sees every key: sdpa needs no mask (q > 1 must be explicit)
            if mask is None and q == 1 and not has_filler:
                return None
            return gather_mask(materialise_mask(mask, batch, q, self.past_len + q, hidden.device), None, keys)

        kwargs[MASK_KEY] = self._memo("mask", kwargs.get(MASK_KEY), mask_of)
        return kwargs

    def norm_hook(self, module: Any, _args: tuple, output: Any) -> Any:
        """Scatter the final states back to original positions after a packed pass: NaN where dropped, the normed
        frozen state at image positions under freeze."""
        if not self.dropped or not isinstance(output, torch.Tensor):
            return output
        src = self.src
        assert src is not None
        batch, q = self.image_q.shape
        full = output.new_full((batch, q + 1, output.shape[-1]), float("nan"))

        def scatter(index: torch.Tensor, values: torch.Tensor) -> None:
            # filler slots write into a spare column that is cut off afterwards; the norm may sit on another
            # device than the blocks that made the indices
            index = torch.where(index < 0, q, index).to(values.device)
            full.scatter_(1, index[..., None].expand(-1, -1, values.shape[-1]), values)

        if self.mode == "freeze" and self.img is not None and self.frozen_img is not None:
            # forward: not this hook again
            scatter(self.img, module.forward(self.frozen_img.to(output.device)))
        scatter(src, output)
        return full[:, :q]

    def model_pre_hook(self, _module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """On the VLM's base model: check the ids of a fresh pass, and give the decoder a TruncationCache
        whenever it would use a cache."""
        base = self.adapter.base_model
        past = get_cache(base, kwargs)
        fresh = past is None or past.get_seq_length() == 0
        ids = kwargs.get("input_ids")
        if fresh and ids is not None:
            self._check_ids(ids)
        if isinstance(past, TruncationCache):
            return None
        use_cache = kwargs.get("use_cache")
        if use_cache is None:
            use_cache = getattr(self.adapter.text_config, "use_cache", True)
        if past is None and not use_cache:
            return None
        if not fresh:
            raise ConfigError(
                "the model was given a cache filled outside truncate_visual_depth; start generation inside it."
            )
        return args, with_cache(base, kwargs, TruncationCache())

    def _check_ids(self, ids: torch.Tensor) -> None:
        prompt = self.prompt_image
        T = prompt.shape[1]
        same = ids.shape[1] >= T and ids.shape[0] % prompt.shape[0] == 0
        if same:
            expected = prompt.repeat_interleave(ids.shape[0] // prompt.shape[0], dim=0)
            same = torch.equal(self.adapter.image_mask(ids[:, :T]), expected)
        if not same:
            raise InputError(
                "the model ran on input ids whose image positions differ from those given to "
                "truncate_visual_depth; pass the same inputs to both."
            )


@contextmanager
def truncate_visual_depth(
    adapter: VLMAdapter, inputs: ModelInputs, cut: int, mode: Mode | str = "drop"
) -> Iterator[Truncation]:
    """Within the block, forward passes of ``adapter.model`` on ``inputs`` (and their generation) keep image
    tokens for the first ``cut`` decoder blocks only (``mask``, ``drop``), or keep them readable there without
    updating them (``freeze``, ``skip_attn``, ``skip_mlp``, ``no_img2img``; see :mod:`visdepth.interventions.modes`).
    ``cut = L`` is the unmodified model (no hook is installed)."""
    cut = validate_cut(adapter, cut)
    mode = validate_mode(mode)
    state = Truncation(adapter, inputs, cut, mode)
    if cut == adapter.num_layers:
        yield state
        return
    handles = register_block_pre_hooks(adapter, state.block_hook, range(adapter.num_layers))
    handles.append(adapter.base_model.register_forward_pre_hook(state.model_pre_hook, with_kwargs=True))
    if mode in PACKED_MODES:
        handles.append(adapter.norm.register_forward_hook(state.norm_hook))
    elif mode in ("skip_attn", "skip_mlp"):
        hook = zero_rows_hook(state.image_rows)
        handles += [
            skipped_module(adapter, j, mode).register_forward_hook(hook)
            for j in range(cut, adapter.num_layers)
        ]
    try:
        yield state
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def truncated_logits(
    adapter: VLMAdapter, inputs: ModelInputs, cut: int, mode: Mode | str = "drop", last_only: bool = False
) -> torch.Tensor:
    """Prefill logits with visual depth ``cut``: (batch, T, vocab) float32, or (batch, vocab) with ``last_only``.

    In drop mode the dropped (image) positions hold NaN. Positions follow ``generate`` (see ``prefill_kwargs``),
    so these are the logits of the first generated token.
    """
    kwargs = prefill_kwargs(adapter, inputs, use_cache=False)
    if last_only and "logits_to_keep" in inspect.signature(adapter.model.forward).parameters:
        kwargs["logits_to_keep"] = 1
    with truncate_visual_depth(adapter, inputs, cut, mode):
        logits = adapter.model(**kwargs).logits
    logits = logits.float()
    return logits[:, -1] if last_only else logits


@torch.no_grad()
def truncated_generate(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    cut: int,
    mode: Mode | str = "drop",
    max_new_tokens: int = 32,
    use_cache: bool = True,
    output_logits: bool = False,
    **gen_kwargs: Any,
) -> Generation:
    """Greedy generation with visual depth ``cut``; extra keyword arguments go to ``generate``."""
    with truncate_visual_depth(adapter, inputs, cut, mode):
        cache = TruncationCache() if use_cache and cut < adapter.num_layers else None
        return greedy_generate(
            adapter,
            inputs,
            max_new_tokens,
            use_cache=use_cache,
            cache=cache,
            output_logits=output_logits,
            **gen_kwargs,
        )
