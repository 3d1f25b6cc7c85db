"""Every intervention against the naive reference of ``naive.py`` (a hand-written loop over the decoder blocks).

The other tests check the interventions against each other (mask vs drop, sweep vs truncation, cache vs none), so
a mistake they share would pass there; here the comparison is with an independent implementation, at
intermediate depths, on a left-padded batch of two samples of different lengths, for every tiny family and for
the trained ``visdepth/shapes-vlm``. Generation runs with the KV cache on the visdepth side and recomputes the
whole sequence on the naive side.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from tests.interventions import naive
from visdepth.interventions.contribution import layer_contribution
from visdepth.interventions.substitute import capture_prefill_states, substituted_generate, substituted_logits
from visdepth.interventions.sweep import sweep_cut_logits
from visdepth.interventions.truncate import truncated_generate, truncated_logits
from visdepth.models import tiny_names

MODELS = [*tiny_names(), "visdepth/shapes-vlm"]
PROMPTS = ["What is this?", "Name the animal in the picture please."]
# the trained model's word-level vocabulary knows these words
SHAPES_PROMPTS = ["How many circles are there?", "What colour is the object at the top left?"]
NEW_TOKENS = 5
# float32 throughout; rtol covers the trained model's logits (up to ~25) as well as the tiny ones (~1)
TOL = dict(rtol=1e-5, atol=1e-4)
# an intervention that works must move the last-position logits by far more than TOL
CHANGED = 1e-2

_cases: dict[str, tuple] = {}
_naive: dict[tuple, naive.Result] = {}


def prompts_for(name):
    return PROMPTS if name.startswith("tiny:") else SHAPES_PROMPTS


def case(name, photo, photo2):
    """The adapter and its padded batch of two (built once per model)."""
    if name not in _cases:
        adapter = tiny(name)  # a cached visdepth.load(name, device="cpu"), built-in names included
        inputs = adapter.build_inputs([[photo], [photo2]], prompts_for(name))
        assert not inputs.attention_mask.bool().all()  # one row is left-padded
        _cases[name] = adapter, inputs
    return _cases[name]


def reference(name, adapter, inputs, cut=None, mode="mask") -> naive.Result:
    key = (name, cut, mode)
    if key not in _naive:
        _naive[key] = naive.forward(adapter, inputs.tensors, cut=cut, mode=mode)
    return _naive[key]


def intermediate_cuts(adapter) -> list[int]:
    L = adapter.num_layers
    return sorted({1, L // 2})


def kept(inputs):
    return inputs.attention_mask.bool() & ~inputs.image_mask


# EOS is held off so that both sides produce every token (naive.generate suppresses it too)
GENERATION = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, output_logits=True)


# ---------------------------------------------------------------------- the reference itself
@pytest.mark.parametrize("name", MODELS)
def test_reference_reproduces_the_model(name, photo, photo2):
    adapter, inputs = case(name, photo, photo2)
    ref = reference(name, adapter, inputs)
    # prefill: each sample run alone by the model itself (no padding, no position question)
    for row, (image, prompt) in enumerate(zip((photo, photo2), prompts_for(name), strict=True)):
        single = adapter.build_inputs([image], prompt)
        with torch.no_grad():
            own = adapter.model(**adapter.model_kwargs(single)).logits.float()[0]
        torch.testing.assert_close(ref.logits[row, -own.shape[0] :], own, **TOL)
    # generation: the model's own generate (with its cache) on the padded batch
    with torch.no_grad():
        out = adapter.model.generate(
            **adapter.model_kwargs(inputs),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            num_beams=1,
            suppress_tokens=[adapter.image_token_id],
            pad_token_id=adapter.tokenizer.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
        )
    tokens, logits = naive.generate(adapter, inputs.tensors, NEW_TOKENS)
    assert torch.equal(tokens, out.sequences[:, inputs.input_ids.shape[1] :])
    torch.testing.assert_close(logits, torch.stack(out.logits, dim=1).float(), **TOL)


@pytest.mark.parametrize("name", MODELS)
def test_reference_cuts_are_real_and_agree(name, photo, photo2):
    """At an intermediate cut the reference differs from the full model (so agreement with it means something),
    and its two mechanics, written separately, agree with each other."""
    adapter, inputs = case(name, photo, photo2)
    keep = kept(inputs)
    full = reference(name, adapter, inputs).logits
    for cut in intermediate_cuts(adapter):
        masked = reference(name, adapter, inputs, cut, "mask").logits
        dropped = reference(name, adapter, inputs, cut, "drop").logits
        assert (masked[:, -1] - full[:, -1]).abs().max() > CHANGED
        torch.testing.assert_close(dropped[keep], masked[keep], **TOL)
        assert torch.isnan(dropped[inputs.image_mask]).all()


# ---------------------------------------------------------------------- truncation and the sweep
@pytest.mark.parametrize("name", MODELS)
def test_truncation_matches_reference(name, photo, photo2):
    adapter, inputs = case(name, photo, photo2)
    keep, valid = kept(inputs), inputs.attention_mask.bool()
    for cut in intermediate_cuts(adapter):
        ref_mask = reference(name, adapter, inputs, cut, "mask").logits
        ref_drop = reference(name, adapter, inputs, cut, "drop").logits
        masked = truncated_logits(adapter, inputs, cut, "mask")
        # mask mode keeps computing the image positions: every valid position is comparable
        torch.testing.assert_close(masked[valid], ref_mask[valid], **TOL)
        dropped = truncated_logits(adapter, inputs, cut, "drop")
        torch.testing.assert_close(dropped[keep], ref_drop[keep], **TOL)
        assert torch.isnan(dropped[inputs.image_mask]).all()
        for mode in ("mask", "drop"):
            last = truncated_logits(adapter, inputs, cut, mode, last_only=True)
            torch.testing.assert_close(last, ref_mask[:, -1], **TOL)


@pytest.mark.parametrize("name", MODELS)
def test_sweep_matches_reference_at_every_cut(name, photo, photo2):
    adapter, inputs = case(name, photo, photo2)
    sweep = sweep_cut_logits(adapter, inputs)
    for cut in range(adapter.num_layers + 1):
        cut_arg = None if cut == adapter.num_layers else cut
        expected = reference(name, adapter, inputs, cut_arg, "mask").logits[:, -1]
        torch.testing.assert_close(sweep.scores[cut], expected, **TOL)


@pytest.mark.parametrize("mode", ["mask", "drop"])
@pytest.mark.parametrize("name", MODELS)
def test_truncated_generation_matches_reference(name, mode, photo, photo2):
    adapter, inputs = case(name, photo, photo2)
    # one intermediate cut per mode keeps this fast; test_truncate checks cached drop == recomputed mask at L // 2
    cut = adapter.num_layers // 2 if mode == "mask" else 1
    cached = truncated_generate(adapter, inputs, cut, mode, use_cache=True, **GENERATION)
    tokens, logits = naive.generate(adapter, inputs.tensors, NEW_TOKENS, cut=cut, mode=mode)
    assert torch.equal(cached.tokens, tokens)
    torch.testing.assert_close(cached.logits, logits, **TOL)


# ---------------------------------------------------------------------- substitution
def substitution_pairs(adapter) -> list[tuple[int, int]]:
    """(l_a, l_b) with l_a != l_b, both directions: a shallow state spliced in deep, and a deep one in shallow."""
    L = adapter.num_layers
    return [(1, L - 1), (L - 1, 1)]


@pytest.mark.parametrize("group", ["image", "text"])
@pytest.mark.parametrize("name", MODELS)
def test_substitution_matches_reference(name, group, photo, photo2):
    adapter, inputs = case(name, photo, photo2)
    valid = inputs.attention_mask.bool()
    base = reference(name, adapter, inputs)
    states = capture_prefill_states(adapter, inputs)
    naive_states = torch.stack([torch.stack(row) for row in base.states], dim=1)
    torch.testing.assert_close(states[:, valid], naive_states[:, valid], **TOL)
    # the groups, from the ids alone: image placeholders, and every other non-pad prompt position
    image = inputs.input_ids == adapter.image_token_id
    swap = image if group == "image" else valid & ~image
    pairs = substitution_pairs(adapter)
    for l_a, l_b in pairs:
        splice = naive.Splice(l_b, naive.hybrid(base.states, swap, l_a, l_b))
        expected = naive.forward(adapter, inputs.tensors, splice=splice).logits
        assert (expected[valid] - base.logits[valid]).abs().max() > CHANGED
        got = substituted_logits(adapter, inputs, states, l_a, l_b, group)
        torch.testing.assert_close(got[valid], expected[valid], **TOL)
    # generation for one pair per group (the image group splices deep, the text control shallow)
    l_a, l_b = pairs[0] if group == "image" else pairs[1]
    splice = naive.Splice(l_b, naive.hybrid(base.states, swap, l_a, l_b))
    cached = substituted_generate(adapter, inputs, states, l_a, l_b, group, use_cache=True, **GENERATION)
    tokens, logits = naive.generate(adapter, inputs.tensors, NEW_TOKENS, splice=splice)
    assert torch.equal(cached.tokens, tokens)
    torch.testing.assert_close(cached.logits, logits, **TOL)


# ---------------------------------------------------------------------- processing modes (freeze, skip, no_img2img)
PROCESS = ["freeze", "skip_attn", "skip_mlp", "no_img2img"]


@pytest.mark.parametrize("name", MODELS)
def test_processing_modes_match_reference(name, photo, photo2):
    """Prefill logits at every valid position under each processing mode equal the hand-written loop's, at one
    intermediate cut; the hand-written block itself reproduces the model (every block written out, none cut)."""
    adapter, inputs = case(name, photo, photo2)
    valid = inputs.attention_mask.bool()
    full = reference(name, adapter, inputs).logits
    by_hand = naive.forward(adapter, inputs.tensors, cut=None, mode="freeze").logits
    torch.testing.assert_close(by_hand[valid], full[valid], **TOL)
    cut = adapter.num_layers // 2
    for mode in PROCESS:
        expected = reference(name, adapter, inputs, cut, mode).logits
        got = truncated_logits(adapter, inputs, cut, mode)
        # the mode does something (most at the image positions themselves), so agreement means something
        assert (expected[valid] - full[valid]).abs().max() > CHANGED, mode
        torch.testing.assert_close(got[valid], expected[valid], **TOL)
        last = truncated_logits(adapter, inputs, cut, mode, last_only=True)
        torch.testing.assert_close(last, expected[:, -1], **TOL)


@pytest.mark.parametrize("mode", PROCESS)
@pytest.mark.parametrize("name", MODELS)
def test_processing_generation_matches_reference(name, mode, photo, photo2):
    """5 greedy tokens with the KV cache against the hand-written loop recomputing everything each step."""
    adapter, inputs = case(name, photo, photo2)
    cut = 1
    cached = truncated_generate(adapter, inputs, cut, mode, use_cache=True, **GENERATION)
    tokens, logits = naive.generate(adapter, inputs.tensors, NEW_TOKENS, cut=cut, mode=mode)
    assert torch.equal(cached.tokens, tokens)
    torch.testing.assert_close(cached.logits, logits, **TOL)


@pytest.mark.parametrize("name", ["tiny:gemma3", "tiny:qwen2_5_vl", "tiny:paligemma", "visdepth/shapes-vlm"])
def test_layer_contribution_matches_reference(name, photo, photo2):
    """ShortV's score: KL of the last-token distribution with one block's image updates removed, per block."""
    adapter, inputs = case(name, photo, photo2)
    full = reference(name, adapter, inputs).logits[:, -1].log_softmax(-1)
    for mode in ("freeze", "skip_mlp"):
        got = layer_contribution(adapter, inputs, mode)
        assert got.shape == (2, adapter.num_layers)
        for layer in (0, adapter.num_layers - 1):
            cut = naive.forward(adapter, inputs.tensors, mode=mode, only=layer).logits[:, -1].log_softmax(-1)
            expected = (full.exp() * (full - cut)).sum(-1)
            torch.testing.assert_close(got[:, layer], expected.clamp(min=0), rtol=1e-4, atol=1e-6)
        assert (got > 0).any()
