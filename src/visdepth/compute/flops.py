"""Analytic compute of the language-model decoder under visual-depth truncation, per mode.

Counted per decoder block from the model's real shapes: the q/k/v/o projections and the MLP (gated: three
matrices, plain: two) for every token the block processes, and the two attention products (QK^T and AV) for
every (query, visible key) pair, causal and, for sliding-window layers, windowed. FLOPs = 2 x multiply-adds.
Blocks ``0..cut-1`` process every prompt token; blocks ``cut..L-1`` only the non-image tokens (drop mode: image
positions leave the sequence and the KV cache). Mask mode computes the same matrices as the full model (it only
masks scores), so its cost is the full model's. The processing modes, in blocks ``cut..L-1`` (what an
implementation that skips the unneeded work computes; visdepth's freeze runs packed and computes all of it but
the image queries' projection, its skip and no_img2img modes are exact hooks that compute everything):

- ``freeze``: image tokens need no query projection, attention row, output projection or MLP, but their key and
  value projections still run (from the frozen state, each block its own) and the KV cache keeps them; text
  queries attend to every key;
- ``skip_attn``: image tokens save the query and output projections and their attention rows (keys and values
  stay, for the text); their MLP runs;
- ``skip_mlp``: image tokens save their MLP;
- ``no_img2img``: the (image query, other image key) pairs are not computed; projections and MLP all run.

Decoding steps (a text query over the whole cache) and the KV cache are the full model's in every processing
mode. Not counted, the same for every cut: the vision encoder and
projector, embeddings, norms, rotary embeddings, softmax; the LM head is counted once per step (the one
position whose logits ``generate`` needs).

Attention convention: causal pairs, what a causal kernel (flash attention) computes.
``torch.utils.flop_counter`` counts the full kept x kept products of SDPA (and of eager attention's matmuls)
whatever the mask, so its attention term is larger; the projection, MLP and head terms agree with it exactly
(tests/compute). Masks that are not causal (Gemma 3's bidirectional image block, PaliGemma's bidirectional
prefix) are still counted causal.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DecoderShape:
    """The shapes that decide a decoder's compute (read off a config by :meth:`from_config`)."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    gated_mlp: bool = True
    #: per layer: the sliding window (keys a query sees at most), or None for full attention
    windows: tuple[int | None, ...] = ()

    @classmethod
    def from_config(cls, config: Any, gated_mlp: bool = True) -> DecoderShape:
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        layers = text.num_hidden_layers
        window = getattr(text, "sliding_window", None)
        types = getattr(text, "layer_types", None) or ["full_attention"] * layers
        windows = tuple(window if (t == "sliding_attention" and window) else None for t in types)
        return cls(
            num_layers=layers,
            hidden_size=text.hidden_size,
            intermediate_size=text.intermediate_size,
            num_heads=heads,
            num_kv_heads=getattr(text, "num_key_value_heads", None) or heads,
            head_dim=head_dim,
            vocab_size=text.vocab_size,
            gated_mlp=gated_mlp,
            windows=windows,
        )

    @classmethod
    def from_adapter(cls, adapter: Any) -> DecoderShape:
        mlp = getattr(adapter.layers[0], "mlp", None)
        gated = mlp is None or hasattr(mlp, "gate_proj") or hasattr(mlp, "gate_up_proj")
        return cls.from_config(adapter.model.config, gated_mlp=gated)

    def window(self, layer: int) -> int | None:
        return self.windows[layer] if layer < len(self.windows) else None

    @property
    def token_flops(self) -> int:
        """FLOPs of one block spent per token outside attention products (projections and MLP)."""
        d, hd = self.hidden_size, self.head_dim
        proj = d * hd * (2 * self.num_heads + 2 * self.num_kv_heads)
        mlp = (3 if self.gated_mlp else 2) * d * self.intermediate_size
        return 2 * (proj + mlp)

    @property
    def kv_proj_flops(self) -> int:
        """FLOPs per token of the key and value projections (what a frozen or attention-skipped token still costs
        in attention)."""
        return 2 * self.hidden_size * self.head_dim * 2 * self.num_kv_heads

    @property
    def qo_proj_flops(self) -> int:
        """FLOPs per token of the query and output projections."""
        return 2 * self.hidden_size * self.head_dim * 2 * self.num_heads

    @property
    def mlp_flops(self) -> int:
        return 2 * (3 if self.gated_mlp else 2) * self.hidden_size * self.intermediate_size

    @property
    def pair_flops(self) -> int:
        """FLOPs of one (query, key) pair in one block: a score and a weighted value, every head."""
        return 2 * 2 * self.num_heads * self.head_dim

    @property
    def head_flops(self) -> int:
        return 2 * self.hidden_size * self.vocab_size

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def _as_bool_list(image_mask: Sequence[bool] | torch.Tensor) -> list[bool]:
    if isinstance(image_mask, torch.Tensor):
        if image_mask.dim() != 1:
            raise ValueError("give the image mask of one sample (a 1-D tensor over its valid positions)")
        return [bool(x) for x in image_mask.tolist()]
    return [bool(x) for x in image_mask]


def _visible_pairs(positions: Sequence[int], window: int | None) -> int:
    """Causal (query, key) pairs among tokens at ascending original positions; a sliding window spans original
    positions, so above a drop-mode cut a text query's window still covers the dropped image slots."""
    n = len(positions)
    if window is None:
        return n * (n + 1) // 2
    return sum(i + 1 - bisect.bisect_right(positions, p - window, 0, i) for i, p in enumerate(positions))


def _pairs_to(queries: Sequence[int], keys: Sequence[int], window: int | None) -> int:
    """Causal (query, key) pairs from ``queries`` to ``keys`` (both ascending original positions), windowed."""
    total = 0
    for p in queries:
        hi = bisect.bisect_right(keys, p)
        lo = bisect.bisect_right(keys, p - window) if window is not None else 0
        total += max(hi - lo, 0)
    return total


def _processing_block_flops(shape: DecoderShape, mask: list[bool], layer: int, mode: str) -> int:
    """One block >= cut in a processing mode (see the module docstring)."""
    everything = list(range(len(mask)))
    image = [p for p in everything if mask[p]]
    text = [p for p in everything if not mask[p]]
    n, n_img = len(everything), len(image)
    window = shape.window(layer)
    token = shape.token_flops * n
    pairs = _visible_pairs(everything, window)
    if mode in ("freeze", "skip_attn"):
        token -= n_img * shape.qo_proj_flops
        pairs = _pairs_to(text, everything, window)
    if mode in ("freeze", "skip_mlp"):
        token -= n_img * shape.mlp_flops
    if mode == "no_img2img":
        pairs -= _pairs_to(image, image, window) - n_img  # each image query keeps its own key
    return token + pairs * shape.pair_flops


def _check_mode(mode: str) -> None:
    if mode not in COST_MODES:
        raise ValueError(f"unknown mode {mode!r} for the cost model; use one of {', '.join(COST_MODES)}")


def _check_cut(shape: DecoderShape, cut: int) -> None:
    if not 0 <= cut <= shape.num_layers:
        raise ValueError(f"cut {cut} is outside 0..{shape.num_layers}")


#: the modes the cost model knows (visdepth.interventions.modes.MODES)
COST_MODES = ("mask", "drop", "freeze", "skip_attn", "skip_mlp", "no_img2img")
#: modes whose decoding steps and KV cache are the full model's at every cut
FULL_CACHE_MODES = ("mask", "freeze", "skip_attn", "skip_mlp", "no_img2img")


def prefill_flops(
    shape: DecoderShape, image_mask: Sequence[bool] | torch.Tensor, cut: int, mode: str = "drop"
) -> float:
    """Decoder FLOPs of one prompt's prefill with visual depth ``cut`` in ``mode``, LM head on one position.

    ``image_mask`` marks the image positions of the prompt (padding excluded). Causal pairs are counted among
    the tokens a block holds, so text before the image sees no image keys at any depth, as in the model.
    """
    _check_cut(shape, cut)
    _check_mode(mode)
    mask = _as_bool_list(image_mask)
    everything = list(range(len(mask)))
    text = [p for p in everything if not mask[p]]
    flops = 0
    for layer in range(shape.num_layers):
        if layer >= cut and mode not in ("mask", "drop"):
            flops += _processing_block_flops(shape, mask, layer, mode)
            continue
        kept = text if (layer >= cut and mode == "drop") else everything
        flops += len(kept) * shape.token_flops + _visible_pairs(kept, shape.window(layer)) * shape.pair_flops
    return float(flops + shape.head_flops)


def decode_flops(shape: DecoderShape, n_text: int, n_image: int, cut: int, generated: int = 0) -> float:
    """Decoder FLOPs of one decoding step with a KV cache: the new token attends to the prompt's kept tokens
    (all of them below ``cut``, the text above) plus ``generated`` earlier new tokens."""
    _check_cut(shape, cut)
    flops = 0
    for layer in range(shape.num_layers):
        keys = (n_text + n_image if layer < cut else n_text) + generated + 1
        window = shape.window(layer)
        if window is not None:
            keys = min(keys, window)
        flops += shape.token_flops + keys * shape.pair_flops
    return float(flops + shape.head_flops)


def kv_cache_bytes(shape: DecoderShape, n_text: int, n_image: int, cut: int, bytes_per_value: int = 2) -> int:
    """Bytes of the prompt's KV cache with visual depth ``cut`` (drop mode): keys and values of every kept token
    in every block (sliding-window layers keep at most their window)."""
    _check_cut(shape, cut)
    per_token = 2 * shape.num_kv_heads * shape.head_dim * bytes_per_value
    total = 0
    for layer in range(shape.num_layers):
        kept = n_text + n_image if layer < cut else n_text
        window = shape.window(layer)
        total += (min(kept, window) if window is not None else kept) * per_token
    return total


def cut_costs(
    shape: DecoderShape,
    image_mask: Sequence[bool] | torch.Tensor,
    cuts: Sequence[int],
    bytes_per_value: int = 2,
    mode: str = "drop",
) -> list[dict[str, float]]:
    """Per cut: prefill and first-decode-step FLOPs, KV-cache bytes, and each as a fraction of the full model's,
    in ``mode`` (mask: the full model's at every cut; the processing modes save prefill FLOPs only)."""
    _check_mode(mode)
    mask = _as_bool_list(image_mask)
    n_image = sum(mask)
    n_text = len(mask) - n_image
    L = shape.num_layers
    full = {
        "prefill_flops": prefill_flops(shape, mask, L),
        "decode_flops": decode_flops(shape, n_text, n_image, L),
        "kv_cache_bytes": kv_cache_bytes(shape, n_text, n_image, L, bytes_per_value),
    }
    rows = []
    for cut in cuts:
        row: dict[str, float] = {"cut": cut, "depth": cut / L}
        at = L if mode == "mask" else cut  # mask mode computes the full model's matrices
        cache_at = L if mode in FULL_CACHE_MODES else cut
        row["prefill_flops"] = prefill_flops(shape, mask, at, "drop" if mode == "mask" else mode)
        row["decode_flops"] = decode_flops(shape, n_text, n_image, cache_at)
        row["kv_cache_bytes"] = kv_cache_bytes(shape, n_text, n_image, cache_at, bytes_per_value)
        for key, value in full.items():
            row[f"{key}_ratio"] = row[key] / value
        rows.append(row)
    return rows
