"""Analytic compute of the language-model decoder under visual-depth truncation (drop mode).

Counted per decoder block from the model's real shapes: the q/k/v/o projections and the MLP (gated: three
matrices, plain: two) for every token the block processes, and the two attention products (QK^T and AV) for
every (query, visible key) pair, causal and, for sliding-window layers, windowed. FLOPs = 2 x multiply-adds.
Blocks ``0..cut-1`` process every prompt token; blocks ``cut..L-1`` only the non-image tokens (drop mode: image
positions leave the sequence and the KV cache). Mask mode computes the same matrices as the full model (it only
masks scores), so its cost is the full model's. Not counted, the same for every cut: the vision encoder and
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


def _check_cut(shape: DecoderShape, cut: int) -> None:
    if not 0 <= cut <= shape.num_layers:
        raise ValueError(f"cut {cut} is outside 0..{shape.num_layers}")


def prefill_flops(shape: DecoderShape, image_mask: Sequence[bool] | torch.Tensor, cut: int) -> float:
    """Decoder FLOPs of one prompt's prefill with visual depth ``cut`` (drop mode), LM head on one position.

    ``image_mask`` marks the image positions of the prompt (padding excluded). Causal pairs are counted among
    the tokens a block holds, so text before the image sees no image keys at any depth, as in the model.
    """
    _check_cut(shape, cut)
    mask = _as_bool_list(image_mask)
    everything = list(range(len(mask)))
    text = [p for p in everything if not mask[p]]
    flops = 0
    for layer in range(shape.num_layers):
        kept = everything if layer < cut else text
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
) -> list[dict[str, float]]:
    """Per cut: prefill and first-decode-step FLOPs, KV-cache bytes, and each as a fraction of the full model's."""
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
        row["prefill_flops"] = prefill_flops(shape, mask, cut)
        row["decode_flops"] = decode_flops(shape, n_text, n_image, cut)
        row["kv_cache_bytes"] = kv_cache_bytes(shape, n_text, n_image, cut, bytes_per_value)
        for key, value in full.items():
            row[f"{key}_ratio"] = row[key] / value
        rows.append(row)
    return rows
