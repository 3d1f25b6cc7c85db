"""Next-token logits at every visual depth 0..L for the price of little more than one forward pass (RQ3 sweeps).

Cutting at ``c`` leaves layers 0..c untouched, and text that never sees an image (the pre-image system prompt of
a causal decoder) is the same under every cut. So one unmodified pass, with its per-block arguments and KV cache
kept, supplies everything shared; what differs per cut is only the trajectory of the *recomputed* positions (the
non-image positions that see an image, directly or through other tokens) through blocks ``c..L-1``. Those run
layer-major: block ``j`` serves every cut ``c <= j`` in one batch, its queries being each cut's recomputed tokens
and its keys the shared positions' cached keys of that block plus the cut's own tokens. Image keys are simply
absent, which is exactly what truncation (mask or drop mode) computes.

The processing modes (freeze, skip_attn, skip_mlp, no_img2img) keep the image positions, which above the cut
change too, so each cut recomputes the image positions as well as the text that sees them; the shared prefix is
the same (text that never sees an image, and every block below the cut, computed once). Per mode, block ``j``'s
batch of cuts gets that mode's edit at image rows: freeze restores each cut's own frozen state after the block,
the skip modes zero the attention or MLP update (hooks on the sub-layer), no_img2img edits the mask.

Cost: one forward pass plus ``|recomputed| * L(L+1)/2`` token-blocks, against ``T * L`` for the pass itself, so
the overhead ratio is about ``|recomputed| (L+1) / (2T)`` (small when image tokens dominate the prompt). The
naive alternative re-runs the model once per cut. For the processing modes the recomputed set holds the image
tokens too, so the sweep costs about half the per-cut runs (each cut skips the blocks below it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from visdepth.errors import InputError
from visdepth.interventions.hooks import (
    MASK_KEY,
    POSITION_KEY,
    ROPE_KEY,
    PrefixKV,
    block_hidden,
    block_output,
    gather_mask,
    gather_position_ids,
    gather_positions,
    gather_rope,
    gather_states,
    head_logits,
    left_packed,
    materialise_mask,
    prefill_kwargs,
    register_block_pre_hooks,
    repeat_batch,
    visible,
    with_block_cache,
)
from visdepth.interventions.modes import (
    PROCESS_MODES,
    no_img2img_mask,
    skipped_module,
    validate_mode,
    zero_rows_hook,
)
from visdepth.models.base import ModelInputs, VLMAdapter


@dataclass
class CutSweep:
    """Last-position scores for every cut depth: ``scores[c]`` is the model with visual depth ``c`` (c = L: full).

    ``scores`` is (L+1, batch, vocab), or (L+1, batch, k) when ``token_ids`` were selected; log-probabilities when
    ``log_probs``. ``shared`` marks the positions whose states no cut changes, ``recomputed`` those run per cut.
    """

    scores: torch.Tensor
    token_ids: torch.Tensor | None
    log_probs: bool
    shared: torch.Tensor
    recomputed: torch.Tensor


def _transpose_gather(cache_tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Keys/values (batch, heads, T, d) at ``index`` (batch, n) positions."""
    return gather_positions(cache_tensor.transpose(1, 2), index, axis=1).transpose(1, 2)


def _column_of(positions: torch.Tensor, index: torch.Tensor, length: int) -> torch.Tensor:
    """For each entry of ``index`` (batch, m; -1 filler), its column in ``positions`` (batch, n; -1 filler)."""
    batch, n = positions.shape
    table = torch.full((batch, length + 1), -1, dtype=torch.long, device=positions.device)
    cols = torch.arange(n, device=positions.device).expand(batch, n)
    table.scatter_(1, torch.where(positions < 0, length, positions), cols)
    table[:, length] = -1
    return torch.where(index < 0, -1, table.gather(1, index.clamp(min=0)))


def shared_positions(
    masks: list[torch.Tensor], image: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split valid non-image positions into shared (never see an image, even indirectly) and recomputed ones.

    ``masks`` are the distinct materialised masks (batch, heads, T, T) of the blocks. A position is shared when,
    in every block, every key it sees is shared; the largest such set is found by fixed-point iteration.
    """
    seen = torch.zeros(image.shape[0], image.shape[1], image.shape[1], dtype=torch.bool, device=image.device)
    for mask in masks:
        seen |= visible(mask).any(1)
    candidate = valid & ~image
    if bool((seen & candidate[:, :, None] & ~valid[:, None, :]).any()):
        raise RuntimeError("a prompt token attends to a padding position; the sweep cannot share its states")
    shared = candidate.clone()
    while True:
        outside = ~shared & valid  # image tokens and recomputed text
        keep = shared & ~(seen & outside[:, None, :]).any(-1)
        if torch.equal(keep, shared):
            return shared, candidate & ~shared
        shared = keep


@torch.no_grad()
def sweep_cut_logits(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    token_ids: torch.Tensor | list[int] | None = None,
    log_probs: bool = False,
    mode: str = "drop",
) -> CutSweep:
    """Last-position logits (or log-probs) of the prompt for every cut depth 0..L, exact and shared-prefix fast.

    Equal (to float tolerance) to ``truncated_logits(adapter, inputs, c, mode, last_only=True)`` for every ``c``
    (mask and drop give the same sweep). ``token_ids`` (k,) or (batch, k) keeps only those vocabulary columns.
    """
    mode = validate_mode(mode)
    process = mode in PROCESS_MODES
    L = adapter.num_layers
    layers = adapter.layers
    device = adapter.device
    image = inputs.image_mask.to(device).bool()
    valid = inputs.attention_mask.to(device).bool()
    batch, T = image.shape
    if bool(image[:, -1].any()):
        i = int(image[:, -1].nonzero()[0])
        raise InputError(f"sample {i} ends with an image token; a cut sweep needs text after the image.")
    # positions any cut may recompute: the non-image ones (access modes), every valid one (processing modes)
    candidate_idx = left_packed(valid if process else valid & ~image)

    # ---- one unmodified pass, keeping each block's arguments, the non-image states and the KV cache
    block_kwargs: list[dict] = [{} for _ in range(L)]
    candidate_states: list[torch.Tensor | None] = [None] * L
    last_state: list[torch.Tensor] = []

    def keep(j: int, args: tuple, kwargs: dict) -> None:
        block_kwargs[j] = dict(kwargs)
        candidate_states[j] = gather_states(block_hidden(args, kwargs), candidate_idx)

    def keep_last(_module: Any, _args: tuple, output: Any) -> None:
        last_state.append(block_output(output)[:, -1])

    cache = DynamicCache()  # full-attention layers only: every shared key stays available
    kwargs = prefill_kwargs(adapter, inputs, use_cache=True, cache=cache)
    handles = register_block_pre_hooks(adapter, keep, range(L))
    handles.append(layers[L - 1].register_forward_hook(keep_last))
    try:
        adapter.base_model(**kwargs)
    finally:
        for handle in handles:
            handle.remove()

    # ---- which positions each cut must recompute
    materialised: dict[int, torch.Tensor] = {}
    for kw in block_kwargs:
        mask = kw.get(MASK_KEY)
        if id(mask) not in materialised:
            materialised[id(mask)] = materialise_mask(mask, batch, T, T, device)
    shared, recomputed = shared_positions(list(materialised.values()), image, valid)
    if process:
        recomputed = valid & ~shared  # the image positions change above the cut too
    shared_idx, recomputed_idx = left_packed(shared), left_packed(recomputed)
    # image flags of the recomputed slots (filler slots: not images)
    rec_image = gather_positions(image, recomputed_idx, axis=1) & (recomputed_idx >= 0)
    n_rec = recomputed_idx.shape[1]
    rec_cols = _column_of(candidate_idx, recomputed_idx, T)
    last_recomputed = recomputed[:, -1]
    key_idx = torch.cat([shared_idx, recomputed_idx], dim=1)

    sliced: dict[tuple[str, int], Any] = {}

    def once(kind: str, value: Any, make: Any) -> Any:
        key = (kind, id(value))
        if key not in sliced:
            sliced[key] = make(value)
        return sliced[key]

    def mask_for(m: torch.Tensor | None) -> torch.Tensor:
        sliced_mask = gather_mask(materialised[id(m)], recomputed_idx, key_idx)
        if mode != "no_img2img":
            return sliced_mask
        key_image = torch.cat([torch.zeros_like(shared_idx, dtype=torch.bool), rec_image], dim=1)
        return no_img2img_mask(sliced_mask, rec_image, key_image, recomputed_idx, key_idx)

    # ---- layer-major over cuts: block j runs every cut c <= j in one batch
    states = candidate_states[0].new_empty((0, batch, n_rec, candidate_states[0].shape[-1]))
    frozen = states  # freeze: each cut's block-c input at the recomputed slots
    for j in range(L):
        joining = gather_states(candidate_states[j], rec_cols)
        states = torch.cat([states, joining[None]])
        if mode == "freeze":
            frozen = torch.cat([frozen, joining[None]])
        n = j + 1
        if n_rec == 0:
            continue
        kw = dict(block_kwargs[j])
        mask = once("mask", kw.get(MASK_KEY), mask_for)
        kw[MASK_KEY] = repeat_batch(mask, n, axis=0)
        if kw.get(ROPE_KEY) is not None:
            rope = once("rope", kw[ROPE_KEY], lambda r: gather_rope(r, recomputed_idx))
            kw[ROPE_KEY] = tuple(repeat_batch(t, n, axis=-3) for t in rope)
        if kw.get(POSITION_KEY) is not None:
            pos = once("pos", kw[POSITION_KEY], lambda p: gather_position_ids(p, recomputed_idx))
            kw[POSITION_KEY] = repeat_batch(pos, n, axis=-2)
        layer_cache = cache.layers[j]
        shared_k = _transpose_gather(layer_cache.keys, shared_idx)
        shared_v = _transpose_gather(layer_cache.values, shared_idx)
        kw = with_block_cache(
            adapter, j, kw, PrefixKV(j, repeat_batch(shared_k, n, 0), repeat_batch(shared_v, n, 0))
        )
        kw.pop("hidden_states", None)
        rows = repeat_batch(rec_image, n, axis=0)
        handle = None
        if mode in ("skip_attn", "skip_mlp"):
            handle = skipped_module(adapter, j, mode).register_forward_hook(
                zero_rows_hook(lambda _out, rows=rows: rows)
            )
        try:
            out = layers[j](states.reshape(n * batch, n_rec, -1), **kw)
        finally:
            if handle is not None:
                handle.remove()
        states = block_output(out).reshape(n, batch, n_rec, -1)
        if mode == "freeze":
            states = torch.where(rec_image[None, :, :, None], frozen, states)

    full_last = last_state[0]
    if n_rec:
        cut_last = states[:, :, -1]
        # a sample whose last token sees no image (never in practice) keeps its full state under every cut
        flags = last_recomputed.to(cut_last.device)[None, :, None]
        cut_last = torch.where(flags, cut_last, full_last.to(cut_last.device)[None])
    else:
        cut_last = full_last[None].expand(L, -1, -1)
    final = torch.cat([cut_last, full_last.to(cut_last.device)[None]])
    scores = head_logits(adapter, final).float()
    if log_probs:
        scores = scores.log_softmax(-1)
    ids = None
    if token_ids is not None:
        ids = torch.as_tensor(token_ids, device=scores.device).long()
        index = ids.expand(batch, -1) if ids.ndim == 1 else ids
        scores = scores.gather(-1, index[None].expand(L + 1, -1, -1))
    return CutSweep(scores=scores, token_ids=ids, log_probs=log_probs, shared=shared, recomputed=recomputed)
