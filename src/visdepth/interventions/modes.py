"""The truncation modes and the pieces the *processing* modes share (truncate, sweep, layer contribution).

Two families of modes, both applied in decoder blocks ``cut..L-1`` only (``cut = L``: the unmodified model):

- *access* (RQ3 as in the paper): ``mask`` and ``drop`` take the image tokens out of reach of every later query;
- *processing* (ShortV, V-Skip): the image tokens stay readable, but are not updated, or only partly:

  - ``freeze`` (ShortV): image positions keep their layer-``cut`` state; each later block still computes their
    keys and values from that frozen state (with its own input norm), and every query may attend to them;
  - ``skip_attn``: image positions get no attention update (their MLP still runs);
  - ``skip_mlp``: image positions get no MLP update (their attention still runs);
  - ``no_img2img`` (V-Skip's saturation skip): image queries may not attend to image keys other than their own
    (the diagonal is kept: with it no query row is ever empty, a row with no visible key gives NaN in sdpa, and a
    token's own value still flows, as in V-Skip, which removes the image-to-image *mixing*); text attends as usual.

Generated tokens are text, so a decoding step needs nothing beyond the prefill's cache: the frozen or skipped
image positions' keys and values are what the prefill left there. ``freeze`` runs packed like ``drop`` (blocks
>= cut take only the text positions as queries, see :mod:`visdepth.interventions.truncate`), so like drop it needs
the prompt to end with text; the other three are hooks that keep every position.

A sub-layer's *update* is what the block adds to the residual stream. In most families that is the attention
module's (or the MLP's) output; in sandwich-norm blocks (Gemma 2/3: ``post_attention_layernorm`` after the
attention, ``pre_``/``post_feedforward_layernorm`` around the MLP) it is the post norm's output, so that is the
module whose rows are zeroed (found from the block's structure, not from the family's name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from visdepth.errors import ConfigError

ACCESS_MODES: tuple[str, ...] = ("mask", "drop")
PROCESS_MODES: tuple[str, ...] = ("freeze", "skip_attn", "skip_mlp", "no_img2img")
MODES: tuple[str, ...] = (*ACCESS_MODES, *PROCESS_MODES)

MODE_TEXT: dict[str, str] = {
    "mask": "blocks >= l_c: text and generated queries may not attend to image keys (exact, saves nothing)",
    "drop": "at block l_c the image positions leave the hidden states, positions, mask and KV cache (faster)",
    "freeze": "blocks >= l_c: image positions keep their layer-l_c state (no attention or MLP update) but still "
    "provide keys and values computed by each block from that state; everyone may attend to them (ShortV)",
    "skip_attn": "blocks >= l_c: image positions get no attention update; their MLP still runs",
    "skip_mlp": "blocks >= l_c: image positions get no MLP update; their attention still runs",
    "no_img2img": "blocks >= l_c: image queries may not attend to other image keys (own key kept, so no row is "
    "empty); text attends as usual (V-Skip's image-to-image skip)",
}


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise ConfigError(
            f"unknown truncation mode {mode!r}; use one of {', '.join(MODES)} "
            "(mask/drop remove access to image tokens; freeze/skip_* /no_img2img stop their processing)."
        )
    return mode


def parse_modes(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"drop,freeze"`` or ``["drop", "freeze"]`` -> the checked list, in order, without repeats."""
    items = value.split(",") if isinstance(value, str) else list(value)
    modes = [validate_mode(str(m).strip()) for m in items if str(m).strip()]
    if not modes:
        raise ConfigError(
            f"--mode names no mode; use one or more of {', '.join(MODES)}, e.g. --mode drop,freeze."
        )
    return list(dict.fromkeys(modes))


# ---------------------------------------------------------------------- sub-layers
def update_modules(layer: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The modules whose outputs a decoder block adds to its residual stream: (attention branch, MLP branch)."""
    sandwich = hasattr(layer, "pre_feedforward_layernorm") and hasattr(layer, "post_feedforward_layernorm")
    if sandwich:
        return layer.post_attention_layernorm, layer.post_feedforward_layernorm
    attn = getattr(layer, "self_attn", None)
    mlp = getattr(layer, "mlp", None)
    if attn is None or mlp is None:
        raise ConfigError(
            f"decoder block {type(layer).__name__} has no self_attn / mlp submodules; the skip modes cannot find "
            "its attention and MLP updates (use mask, drop or freeze)."
        )
    return attn, mlp


def zero_rows_hook(rows: Callable[[torch.Tensor], torch.Tensor | None]) -> Callable[..., Any]:
    """A forward hook that zeroes its module's output (tensor, or first item of a tuple) where ``rows(out)`` is
    True (batch, seq); ``rows`` returning None leaves the output alone."""

    def hook(_module: Any, _args: tuple, output: Any) -> Any:
        first = output[0] if isinstance(output, tuple | list) else output
        flags = rows(first)
        if flags is None:
            return output
        zeroed = first.masked_fill(flags[..., None].to(first.device), 0)
        if isinstance(output, tuple | list):
            return type(output)((zeroed, *output[1:]))
        return zeroed

    return hook


def skipped_module(adapter: Any, j: int, mode: str) -> nn.Module:
    attn, mlp = update_modules(adapter.layers[j])
    return attn if mode == "skip_attn" else mlp


def no_img2img_mask(
    mask: torch.Tensor, image_q: torch.Tensor, image_k: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor
) -> torch.Tensor:
    """``mask`` (batch, heads, q, k) with image queries blocked from image keys at other positions.

    ``image_q``/``image_k`` (batch, q)/(batch, k) flag images; ``q_pos``/``k_pos`` (batch, q)/(batch, k) are the
    original positions (so the own key is recognised whatever order the keys are held in)."""
    block = image_q[:, None, :, None] & image_k[:, None, None, :]
    block = block & (q_pos[:, None, :, None] != k_pos[:, None, None, :])
    blocked = False if mask.dtype == torch.bool else torch.finfo(mask.dtype).min
    return mask.masked_fill(block, blocked)
