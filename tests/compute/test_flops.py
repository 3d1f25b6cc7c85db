"""Analytic decoder cost of visual-depth truncation: against torch's FLOP counter on real truncated forwards
of tiny models, against hand computations, and the shapes it reads off each family."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import tiny
from visdepth.compute import DecoderShape, cut_costs, decode_flops, kv_cache_bytes, prefill_flops
from visdepth.interventions.hooks import prefill_kwargs
from visdepth.interventions.truncate import truncate_visual_depth

aten = torch.ops.aten
FAMILIES = ["tiny:llava", "tiny:qwen2_vl", "tiny:gemma3", "tiny:internvl"]
LINEAR_OPS = {aten.mm, aten.addmm}
# flop_counter knows the CUDA SDPA kernels but not the CPU one, which it would count as 0 FLOPs
ATTENTION_OPS = {
    aten._scaled_dot_product_flash_attention_for_cpu,
    aten._scaled_dot_product_flash_attention,
    aten._scaled_dot_product_efficient_attention,
    aten.bmm,  # eager attention's two matmuls
}


def cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """flop_counter's CUDA SDPA convention: QK^T and AV over the full q x k product (the mask is ignored)."""
    b, h, s_q, d = query
    s_k, d_v = key[2], value[3]
    return 2 * b * h * s_q * s_k * d + 2 * b * h * s_q * s_k * d_v


def cuts_of(L: int) -> list[int]:
    return sorted({0, 1, L // 2, L})


def counted_forward(adapter, inputs, cut):
    """FLOP counts of one drop-mode prefill (next-token logits only), per decoder block and for the LM head,
    with the sequence length each block received."""
    kwargs = prefill_kwargs(adapter, inputs, logits_to_keep=1)
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa_flops}
    with (
        torch.no_grad(),
        truncate_visual_depth(adapter, inputs, cut, "drop") as state,
        FlopCounterMode(display=False, custom_mapping=mapping) as counter,
    ):
        adapter.model(**kwargs)
    by_module = counter.get_flop_counts()
    names = {module: name for name, module in adapter.model.named_modules()}
    root = type(adapter.model).__name__

    def counts(module) -> dict:
        return by_module.get(f"{root}.{names[module]}", {})

    blocks = [counts(layer) for layer in adapter.layers]
    L = adapter.num_layers
    lengths = [state.block_lengths.get(j, inputs.input_ids.shape[1]) for j in range(L)]
    return blocks, counts(adapter.lm_head), lengths


def visible_pairs(positions: list[int], window: int | None) -> int:
    """Brute force: causal (query, key) pairs among tokens at these original positions, windowed as in
    transformers (a query at p sees keys at p - window + 1 .. p)."""
    return sum(1 for i in positions for j in positions if j <= i and (window is None or i - j < window))


@pytest.mark.parametrize("name", FAMILIES)
def test_prefill_flops_match_the_flop_counter(name, photo):
    adapter = tiny(name)
    shape = DecoderShape.from_adapter(adapter)
    inputs = adapter.build_inputs([[photo]], ["What is this?"])
    image = inputs.image_mask[0]
    T, n_image = image.numel(), int(image.sum())
    assert 0 < n_image < T
    L = adapter.num_layers
    for cut in cuts_of(L):
        blocks, head, lengths = counted_forward(adapter, inputs, cut)
        kept = [T if j < cut else T - n_image for j in range(L)]
        assert lengths == kept, f"cut {cut}: blocks received {lengths} positions"
        linear = sum(v for b in blocks for op, v in b.items() if op in LINEAR_OPS)
        attention = sum(v for b in blocks for op, v in b.items() if op in ATTENTION_OPS)
        other = {op for b in blocks for op in b} - LINEAR_OPS - ATTENTION_OPS
        assert not other, f"uncounted ops in decoder blocks: {other}"
        # projections, MLP and head: exact
        assert linear == sum(kept) * shape.token_flops
        assert sum(head.values()) == shape.head_flops
        # the counter's attention is the full kept x kept product whatever the mask; ours is the causal pairs
        assert attention == sum(n * n for n in kept) * shape.pair_flops
        causal = prefill_flops(shape, image, cut) - linear - shape.head_flops
        causal_bound = sum(n * (n + 1) // 2 for n in kept) * shape.pair_flops
        assert 0 < causal <= causal_bound < attention


@pytest.mark.parametrize("name", FAMILIES)
def test_prefill_attention_term_counts_visible_causal_pairs(name, photo):
    adapter = tiny(name)
    shape = DecoderShape.from_adapter(adapter)
    inputs = adapter.build_inputs([[photo]], ["What is this?"])
    image = inputs.image_mask[0].tolist()
    everything = list(range(len(image)))
    text = [p for p in everything if not image[p]]
    L = adapter.num_layers
    for cut in cuts_of(L):
        pairs = sum(visible_pairs(everything if j < cut else text, shape.window(j)) for j in range(L))
        linear = (cut * len(everything) + (L - cut) * len(text)) * shape.token_flops
        expected = linear + pairs * shape.pair_flops + shape.head_flops
        assert prefill_flops(shape, image, cut) == expected, f"cut {cut}"


# ---------------------------------------------------------------------- hand computations
# 4 blocks, window 3 on blocks 0 and 2. Per token and block: 2 x (8 x 4 x (2 x 2 + 2 x 1) + 3 x 8 x 16)
# = 1152 FLOPs; per (query, key) pair: 2 x 2 x 2 heads x 4 = 32; head: 2 x 8 x 10 = 160;
# KV per token per block: 2 x 1 x 4 x 2 bytes = 16.
SMALL = DecoderShape(
    num_layers=4,
    hidden_size=8,
    intermediate_size=16,
    num_heads=2,
    num_kv_heads=1,
    head_dim=4,
    vocab_size=10,
    windows=(3, None, 3, None),
)
N_TEXT, N_IMAGE = 5, 4


def test_small_shape_unit_costs():
    assert (SMALL.token_flops, SMALL.pair_flops, SMALL.head_flops) == (1152, 32, 160)
    plain = DecoderShape(**{**SMALL.describe(), "gated_mlp": False})
    assert plain.token_flops == 2 * (8 * 4 * 6 + 2 * 8 * 16)


def test_decode_flops_by_hand():
    # keys per block: the new token and the kept prompt tokens, capped by the window
    # cut 2: block 0 min(10, 3), block 1 10, block 2 min(6, 3), block 3 6
    assert decode_flops(SMALL, N_TEXT, N_IMAGE, 2) == 4 * 1152 + (3 + 10 + 3 + 6) * 32 + 160
    # cut 0, two tokens generated already: 5 + 2 + 1 = 8 keys (3 in windowed blocks)
    assert decode_flops(SMALL, N_TEXT, N_IMAGE, 0, generated=2) == 4 * 1152 + (3 + 8 + 3 + 8) * 32 + 160
    assert decode_flops(SMALL, N_TEXT, N_IMAGE, 4) == 4 * 1152 + (3 + 10 + 3 + 10) * 32 + 160


def test_kv_cache_bytes_by_hand():
    # cut 2: blocks hold min(9, 3), 9, min(5, 3), 5 tokens, 16 bytes each in bf16
    assert kv_cache_bytes(SMALL, N_TEXT, N_IMAGE, 2) == (3 + 9 + 3 + 5) * 16
    assert kv_cache_bytes(SMALL, N_TEXT, N_IMAGE, 0) == (3 + 5 + 3 + 5) * 16
    assert kv_cache_bytes(SMALL, N_TEXT, N_IMAGE, 4, bytes_per_value=4) == (3 + 9 + 3 + 9) * 32


def test_prefill_flops_by_hand():
    # image first: the text stays contiguous, so kept indices and original positions give the same windows
    mask = [True] * N_IMAGE + [False] * N_TEXT
    # causal pairs of n tokens: n(n+1)/2; with window 3: 6 + 3(n-3)
    full = {None: 45, 3: 24}  # 9 tokens
    text = {None: 15, 3: 12}  # 5 tokens
    expected = 2 * 9 * 1152 + (full[3] + full[None]) * 32 + 2 * 5 * 1152 + (text[3] + text[None]) * 32 + 160
    assert prefill_flops(SMALL, mask, 2) == expected
    assert prefill_flops(SMALL, torch.tensor(mask), 2) == expected


def test_costs_fall_with_the_cut_and_are_whole_at_full_depth():
    mask = [False] * 2 + [True] * N_IMAGE + [False] * (N_TEXT - 2)
    rows = cut_costs(SMALL, mask, range(SMALL.num_layers + 1))
    for key in ("prefill_flops", "decode_flops", "kv_cache_bytes"):
        values = [row[key] for row in rows]
        assert values == sorted(values), key
        assert values[0] < values[-1], key
        assert rows[-1][f"{key}_ratio"] == 1.0
        assert all(0 < row[f"{key}_ratio"] <= 1 for row in rows)
    # no window limits block 1: cutting above it saves its image tokens
    assert rows[2]["kv_cache_bytes"] - rows[1]["kv_cache_bytes"] == N_IMAGE * 16
    assert rows[3]["kv_cache_bytes"] == rows[2]["kv_cache_bytes"]  # block 2 holds its window either way


def test_cut_outside_the_model_is_refused():
    for cut in (-1, SMALL.num_layers + 1):
        with pytest.raises(ValueError, match="outside"):
            prefill_flops(SMALL, [True, False], cut)
        with pytest.raises(ValueError, match="outside"):
            kv_cache_bytes(SMALL, 1, 1, cut)


# ---------------------------------------------------------------------- shapes read off the models
@pytest.mark.parametrize("name", FAMILIES)
def test_decoder_shape_reads_the_modules_dimensions(name):
    adapter = tiny(name)
    shape = DecoderShape.from_adapter(adapter)
    attn, mlp = adapter.layers[0].self_attn, adapter.layers[0].mlp
    assert shape.num_layers == len(adapter.layers) == adapter.num_layers
    assert shape.hidden_size == attn.q_proj.in_features == adapter.hidden_size
    assert shape.num_heads * shape.head_dim == attn.q_proj.out_features
    assert shape.num_kv_heads * shape.head_dim == attn.k_proj.out_features == attn.v_proj.out_features
    assert shape.intermediate_size == mlp.gate_proj.out_features == mlp.up_proj.out_features
    assert shape.gated_mlp
    assert shape.vocab_size == adapter.lm_head.out_features
    windows = tuple(getattr(layer.self_attn, "sliding_window", None) for layer in adapter.layers)
    assert shape.windows == windows


def test_gemma3_has_sliding_layers():
    shape = DecoderShape.from_adapter(tiny("tiny:gemma3"))
    assert any(w is not None for w in shape.windows) and any(w is None for w in shape.windows)


def test_plain_mlp_is_not_gated():
    from types import SimpleNamespace

    from transformers import LlamaConfig

    config = LlamaConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2)
    adapter = SimpleNamespace(
        layers=[SimpleNamespace(mlp=torch.nn.ModuleDict({"fc1": torch.nn.Linear(8, 16)}))],
        model=SimpleNamespace(config=config),
    )
    shape = DecoderShape.from_adapter(adapter)
    assert not shape.gated_mlp
    assert (shape.num_heads, shape.num_kv_heads, shape.head_dim) == (2, 2, 4)


# ---------------------------------------------------------------------- processing modes
PROCESS = ("freeze", "skip_attn", "skip_mlp", "no_img2img")


def test_processing_mode_prefill_by_hand():
    """Image first (4 tokens), text after (5), cut 2 of SMALL: what each mode saves in blocks 2 and 3."""
    mask = [True] * N_IMAGE + [False] * N_TEXT
    d, hd, ff = 8, 4, 16
    qo, kv, mlp = 2 * d * hd * 2 * 2, 2 * d * hd * 2 * 1, 2 * 3 * d * ff
    assert (SMALL.qo_proj_flops, SMALL.kv_proj_flops, SMALL.mlp_flops) == (qo, kv, mlp)
    assert qo + kv + mlp == SMALL.token_flops
    below = prefill_flops(SMALL, mask, 4)  # the full model
    full_blocks = {3: 24, None: 45}  # causal pairs of 9 tokens in the windowed (3) and full blocks
    # text queries (positions 4..8) over every key: full 5 + 6 + ... + 9 = 35; window 3: 3 each = 15
    text_rows = {3: 15, None: 35}
    # image x image pairs among 4 image tokens: causal 10; window 3: 1 + 2 + 3 + 3
    img_pairs = {3: 1 + 2 + 3 + 3, None: 10}
    for mode in PROCESS:
        got = prefill_flops(SMALL, mask, 2, mode)
        saved = 0
        for window in (3, None):  # blocks 2 (window 3) and 3 (full)
            if mode in ("freeze", "skip_attn"):
                saved += N_IMAGE * qo + (full_blocks[window] - text_rows[window]) * 32
            if mode in ("freeze", "skip_mlp"):
                saved += N_IMAGE * mlp
            if mode == "no_img2img":
                saved += (img_pairs[window] - N_IMAGE) * 32
        assert got == below - saved, mode
        assert prefill_flops(SMALL, mask, 4, mode) == below  # l_c = L: the full model


def test_processing_mode_costs_in_cut_costs():
    mask = [False] * 2 + [True] * N_IMAGE + [False] * (N_TEXT - 2)
    cuts = range(SMALL.num_layers + 1)
    drop = cut_costs(SMALL, mask, cuts)
    rows = {mode: cut_costs(SMALL, mask, cuts, mode=mode) for mode in ("mask", *PROCESS)}
    for cut in cuts:
        full = drop[-1]
        for mode, r in rows.items():
            # the cache and the decoding steps are the full model's; mask saves nothing at all
            assert r[cut]["kv_cache_bytes"] == full["kv_cache_bytes"]
            assert r[cut]["decode_flops"] == full["decode_flops"]
            assert drop[cut]["prefill_flops"] <= r[cut]["prefill_flops"] <= full["prefill_flops"], (mode, cut)
        assert rows["mask"][cut]["prefill_flops_ratio"] == 1.0
        # freeze saves exactly what skip_attn and skip_mlp save together
        saved = {m: full["prefill_flops"] - rows[m][cut]["prefill_flops"] for m in PROCESS}
        assert saved["freeze"] == saved["skip_attn"] + saved["skip_mlp"]
    with pytest.raises(ValueError, match="unknown mode"):
        cut_costs(SMALL, mask, cuts, mode="frieze")
