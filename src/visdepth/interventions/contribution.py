"""ShortV's layer contribution: how much each decoder block's updates *at image positions* matter for the output.

For block ``l`` the image positions get no update from that block alone (``freeze``: neither attention nor MLP,
so their state leaves block ``l`` as it entered; ``skip_attn`` / ``skip_mlp``: one sub-layer); every other block
and every text position run as usual, and later blocks read the image positions' (unchanged) state for their
keys and values. The score is KL(full || modified) of the last prompt position's next-token distribution, in
nats; ShortV freezes image tokens in the layers with the lowest scores. One forward pass per block.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from visdepth.errors import ConfigError
from visdepth.interventions.hooks import block_hidden, prefill_kwargs
from visdepth.interventions.modes import skipped_module, zero_rows_hook
from visdepth.models.base import ModelInputs, VLMAdapter

CONTRIBUTION_MODES = ("freeze", "skip_attn", "skip_mlp")


def _last_log_probs(adapter: VLMAdapter, kwargs: dict) -> torch.Tensor:
    return adapter.model(**kwargs).logits[:, -1].float().log_softmax(-1)


def _freeze_one(adapter: VLMAdapter, layer: int, image: torch.Tensor) -> list[Any]:
    """Hooks that make block ``layer`` hand its input back at image positions (rows of ``image``)."""
    seen: dict[str, torch.Tensor] = {}

    def keep_input(_module: Any, args: tuple, kwargs: dict) -> None:
        seen["input"] = block_hidden(args, kwargs)

    def restore(_module: Any, _args: tuple, output: Any) -> Any:
        first = output[0] if isinstance(output, tuple | list) else output
        restored = torch.where(image[..., None], seen["input"], first)
        return type(output)((restored, *output[1:])) if isinstance(output, tuple | list) else restored

    block = adapter.layers[layer]
    return [
        block.register_forward_pre_hook(keep_input, with_kwargs=True),
        block.register_forward_hook(restore),
    ]


@torch.no_grad()
def layer_contribution(adapter: VLMAdapter, inputs: ModelInputs, mode: str = "freeze") -> torch.Tensor:
    """(batch, L): KL(full || block l's image updates removed) of the last-token distribution, per block l."""
    if mode not in CONTRIBUTION_MODES:
        raise ConfigError(
            f"layer contribution mode {mode!r} is unknown; use one of {', '.join(CONTRIBUTION_MODES)}."
        )
    kwargs = prefill_kwargs(adapter, inputs, use_cache=False)
    if "logits_to_keep" in inspect.signature(adapter.model.forward).parameters:
        kwargs["logits_to_keep"] = 1
    image = inputs.image_mask.to(adapter.device).bool()
    full = _last_log_probs(adapter, kwargs)
    scores = []
    for layer in range(adapter.num_layers):
        if mode == "freeze":
            handles = _freeze_one(adapter, layer, image)
        else:
            module = skipped_module(adapter, layer, mode)
            handles = [module.register_forward_hook(zero_rows_hook(lambda _out: image))]
        try:
            cut = _last_log_probs(adapter, kwargs)
        finally:
            for handle in handles:
                handle.remove()
        scores.append((full.exp() * (full - cut)).sum(-1).clamp(min=0))
    return torch.stack(scores, dim=1).cpu()
