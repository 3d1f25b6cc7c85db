"""Layer substitution (RQ2): continue the forward pass from a hybrid of two depths' states.

One pass keeps every layer's states (:func:`capture_prefill_states`). A second prefill then replaces the input of
the blocks above ``l_b`` (state ``l_b``; for ``l_b = L`` the input of the final norm) with a hybrid: positions of
the swapped group hold their layer-``l_a`` states, all others their layer-``l_b`` states. ``group="image"`` swaps
the image positions (the paper's experiment); ``group="text"`` swaps the text positions instead (the control);
``group="text_matched"`` swaps a seeded random subset of the text positions as large as the image group and never
holding the last prompt position (the size-matched control, :func:`matched_text_mask`).

The splice applies to the prompt positions of the prefill only (:data:`SPLICE_SCOPE`): generated tokens are
computed normally and attend to the spliced prompt through its KV cache. Without a cache every step recomputes the
sequence, and the prompt positions are spliced again, which gives the same result. Both passes use the same
generate-style inputs, so ``l_a = l_b`` reproduces the unmodified model bit for bit.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from typing import Any, Literal, get_args

import torch

from visdepth.errors import ConfigError, InputError
from visdepth.interventions.capture import record_states
from visdepth.interventions.hooks import (
    Generation,
    block_cache,
    block_hidden,
    greedy_generate,
    prefill_kwargs,
    with_block_hidden,
)
from visdepth.models.base import ModelInputs, VLMAdapter

Group = Literal["image", "text", "text_matched"]
#: every group :func:`group_mask` knows, in the order the error message lists them
GROUP_NAMES: tuple[str, ...] = get_args(Group)
#: recorded with every RQ2 result: how the size-matched text control is drawn
MATCHED_TEXT_RULE = (
    "per sample, a uniformly random subset of the text group (same exclude_special rule) that never holds the "
    "last prompt position (the last non-pad one, whose state makes the first generated token), with as many "
    "positions as that sample's image group (all eligible text positions if there are fewer); drawn with "
    "torch.randperm from a torch.Generator seeded per sample from the run's seed and a SHA-256 hash of the sample "
    "id, so it does not depend on batching"
)
#: recorded with every RQ2 result: the hybrid replaces the prompt's states in the prefill, never generated tokens
SPLICE_SCOPE = "prefill"


@torch.no_grad()
def capture_prefill_states(
    adapter: VLMAdapter, inputs: ModelInputs, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """States 0..L (before the final norm) of the generate-style prefill: (L+1, batch, T, hidden).

    Kept in the model's dtype by default, so splicing them back in is exact.
    """
    kwargs = prefill_kwargs(adapter, inputs, use_cache=False)
    with record_states(adapter, device=adapter.device, dtype=dtype or adapter.dtype) as recorder:
        adapter.base_model(**kwargs)
    return torch.stack(recorder.states)


def sample_seed(seed: int, sample_id: str) -> int:
    """A per-sample seed from the run's ``seed`` and the sample's id: the same wherever the sample is batched.

    Python's ``hash`` of a string changes between processes, so the id is hashed with SHA-256 instead.
    """
    digest = hashlib.sha256(f"{int(seed)}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)  # torch.Generator seeds are < 2^64


def last_prompt_position(inputs: ModelInputs) -> torch.Tensor:
    """Index of each row's last non-pad position (index -1 when prompts are left-padded): (batch,)."""
    valid = inputs.attention_mask.bool()
    idx = torch.arange(valid.shape[1], device=valid.device).expand_as(valid)
    return torch.where(valid, idx, -1).amax(dim=1)


def matched_text_mask(
    inputs: ModelInputs, exclude_special: bool = False, seeds: int | Sequence[int] = 0
) -> torch.Tensor:
    """A random subset of each row's text positions, as large as its image group, without its last position.

    Why: the plain text control is usually much larger than the image group (about 48 text vs 16 image tokens per
    sample for the tiny LLaVA on the built-in photos) and holds the last prompt position, whose state directly
    makes the first generated token, so "swapping text breaks the output" would be partly trivial. This control
    matches the image group's size and leaves the last position out; with fewer eligible text positions than image
    tokens it takes all of them.

    ``seeds`` is one seed per row (or one for every row), e.g. :func:`sample_seed` of the run's seed and the
    sample id. Each row's subset depends only on its seed and its own tokens, never on the rest of the batch:
    the eligible positions keep their order under left padding, and ``torch.randperm`` draws from a
    ``torch.Generator`` of that row alone (on the CPU, so devices agree).
    """
    text = inputs.text_mask(exclude_special=exclude_special).cpu()
    batch = text.shape[0]
    row_seeds = [int(seeds)] * batch if isinstance(seeds, numbers.Integral) else [int(x) for x in seeds]
    if len(row_seeds) != batch:
        raise InputError(f"got {len(row_seeds)} seeds for a batch of {batch}; give one seed per sample.")
    eligible = text.clone()
    eligible[torch.arange(batch), last_prompt_position(inputs).cpu()] = False
    sizes = inputs.image_mask.bool().sum(dim=1).tolist()
    out = torch.zeros_like(text)
    for row in range(batch):
        positions = eligible[row].nonzero().flatten()
        generator = torch.Generator().manual_seed(row_seeds[row])
        order = torch.randperm(len(positions), generator=generator)
        out[row, positions[order[: min(sizes[row], len(positions))]]] = True
    return out.to(inputs.attention_mask.device)


def group_mask(
    inputs: ModelInputs, group: str, exclude_special: bool = False, seeds: int | Sequence[int] = 0
) -> torch.Tensor:
    """Positions whose states come from layer ``l_a``: the image tokens, the (non-image, non-pad) text tokens, or
    the size-matched text subset (:func:`matched_text_mask`, drawn from ``seeds``)."""
    if group == "image":
        return inputs.image_mask.bool()
    if group == "text":
        return inputs.text_mask(exclude_special=exclude_special)
    if group == "text_matched":
        return matched_text_mask(inputs, exclude_special, seeds)
    raise ConfigError(
        f"unknown substitution group {group!r}; use 'image', 'text' (the control) or 'text_matched' "
        "(the size-matched control)."
    )


def hybrid_states(
    states: torch.Tensor,
    inputs: ModelInputs,
    l_a: int,
    l_b: int,
    group: str = "image",
    exclude_special: bool = False,
    seeds: int | Sequence[int] = 0,
) -> torch.Tensor:
    """State ``l_b`` with the ``group`` positions taken from state ``l_a``: (batch, T, hidden).

    ``seeds`` (one per row, or one for all) only matter for ``group="text_matched"``."""
    depth = states.shape[0] - 1
    for name, value in (("l_a", l_a), ("l_b", l_b)):
        if not 0 <= value <= depth:
            raise ConfigError(f"{name} = {value} is beyond the model's {depth} layers; use 0..{depth}.")
    swap = group_mask(inputs, group, exclude_special, seeds).to(states.device)
    if tuple(states.shape[1:3]) != tuple(swap.shape):
        raise InputError(
            f"states cover {tuple(states.shape[1:3])} (batch, tokens) but the inputs have {tuple(swap.shape)}; "
            "capture the states from the same inputs."
        )
    return torch.where(swap[..., None], states[l_a], states[l_b])


class _Splice:
    """Hooks that put the hybrid in place of state ``l_b`` whenever a pass starts from the prompt."""

    def __init__(self, adapter: VLMAdapter, hybrid: torch.Tensor, l_b: int):
        self.adapter, self.l_b = adapter, l_b
        self.hybrid = hybrid.to(adapter.device, adapter.dtype)
        self.fresh = False
        self.count = 0  # how many passes were spliced

    def first_block(self, _module: Any, args: tuple, kwargs: dict) -> None:
        past = block_cache(self.adapter, 0, kwargs)
        self.fresh = past is None or past.get_seq_length() == 0

    def replace(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.fresh:
            return hidden
        T = self.hybrid.shape[1]
        if hidden.shape[0] != self.hybrid.shape[0] or hidden.shape[1] < T:
            raise InputError(
                f"the model ran on {tuple(hidden.shape[:2])} (batch, tokens) but the hybrid covers "
                f"{tuple(self.hybrid.shape[:2])}; pass the inputs the states were captured from."
            )
        self.count += 1
        # a block of a sharded model receives states on the device of the block before it
        return torch.cat([self.hybrid.to(hidden.device), hidden[:, T:]], dim=1)

    def block_pre(self, _module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return with_block_hidden(args, kwargs, self.replace(block_hidden(args, kwargs)))

    def norm_pre(self, _module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = args[0] if args else kwargs["hidden_states"]
        new = self.replace(hidden)
        return ((new, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": new})

    def install(self) -> list[Any]:
        layers = self.adapter.layers
        handles = [layers[0].register_forward_pre_hook(self.first_block, with_kwargs=True)]
        if self.l_b < len(layers):
            handles.append(layers[self.l_b].register_forward_pre_hook(self.block_pre, with_kwargs=True))
        else:
            handles.append(self.adapter.norm.register_forward_pre_hook(self.norm_pre, with_kwargs=True))
        return handles


def _run_spliced(adapter: VLMAdapter, hybrid: torch.Tensor, l_b: int, call: Any) -> Any:
    splice = _Splice(adapter, hybrid, l_b)
    handles = splice.install()
    try:
        result = call()
    finally:
        for handle in handles:
            handle.remove()
    if splice.count == 0:  # pragma: no cover - a family whose forward bypasses the hooked modules
        raise RuntimeError("the substitution hook never fired")
    return result


@torch.no_grad()
def substituted_logits(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    states: torch.Tensor,
    l_a: int,
    l_b: int,
    group: Group | str = "image",
    exclude_special: bool = False,
    seeds: int | Sequence[int] = 0,
) -> torch.Tensor:
    """Prefill logits (batch, T, vocab), float32, with the ``group`` positions' layer-``l_b`` states replaced by
    their layer-``l_a`` states. ``states`` come from :func:`capture_prefill_states` on the same inputs; ``seeds``
    draw the ``text_matched`` subset (:func:`matched_text_mask`)."""
    hybrid = hybrid_states(states, inputs, l_a, l_b, group, exclude_special, seeds)
    kwargs = prefill_kwargs(adapter, inputs, use_cache=False)
    out = _run_spliced(adapter, hybrid, l_b, lambda: adapter.model(**kwargs))
    return out.logits.float()


@torch.no_grad()
def substituted_generate(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    states: torch.Tensor,
    l_a: int,
    l_b: int,
    group: Group | str = "image",
    max_new_tokens: int = 32,
    use_cache: bool = True,
    exclude_special: bool = False,
    output_logits: bool = False,
    seeds: int | Sequence[int] = 0,
    **gen_kwargs: Any,
) -> Generation:
    """Greedy generation continuing from the spliced prefill (the splice covers the prompt only); ``seeds`` draw
    the ``text_matched`` subset (:func:`matched_text_mask`)."""
    hybrid = hybrid_states(states, inputs, l_a, l_b, group, exclude_special, seeds)
    return _run_spliced(
        adapter,
        hybrid,
        l_b,
        lambda: greedy_generate(
            adapter, inputs, max_new_tokens, use_cache=use_cache, output_logits=output_logits, **gen_kwargs
        ),
    )
