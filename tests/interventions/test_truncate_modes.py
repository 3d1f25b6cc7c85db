"""The processing modes (freeze, skip_attn, skip_mlp, no_img2img) on every tiny family: full depth is the plain
model, cache on equals cache off, a padded batch equals its samples alone, and freeze really freezes."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.errors import ConfigError
from visdepth.interventions import MODES, PROCESS_MODES, parse_modes
from visdepth.interventions.hooks import TruncationCache, block_hidden, head_logits, prefill_kwargs
from visdepth.interventions.truncate import truncate_visual_depth, truncated_generate, truncated_logits
from visdepth.models import tiny_names
from visdepth.models.compat import output_cache

TINY = tiny_names()
PROMPTS = ["What is this?", "Name the animal in the picture please."]
ATOL = 1e-5


def batch(adapter, photo, photo2):
    return adapter.build_inputs([[photo], [photo2]], PROMPTS)


@pytest.mark.parametrize("name", TINY)
def test_processing_modes_on_a_family(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    valid = inputs.attention_mask.bool()
    L = adapter.num_layers
    plain = truncated_logits(adapter, inputs, L, "mask")
    singles = [
        adapter.build_inputs([image], prompt) for image, prompt in zip([photo, photo2], PROMPTS, strict=True)
    ]
    for mode in PROCESS_MODES:
        # l_c = L is the unmodified model
        torch.testing.assert_close(truncated_logits(adapter, inputs, L, mode), plain, rtol=0, atol=0)
        # a padded batch equals its samples alone
        together = truncated_logits(adapter, inputs, 1, mode)
        for i, single in enumerate(singles):
            alone = truncated_logits(adapter, single, 1, mode)[0]
            torch.testing.assert_close(together[i, -alone.shape[0] :], alone, rtol=0, atol=ATOL)
        assert not torch.allclose(together[valid], plain[valid], atol=1e-4), mode
        # generation: the KV cache changes nothing
        runs = [
            truncated_generate(
                adapter, inputs, 1, mode, max_new_tokens=6, min_new_tokens=6, use_cache=c, output_logits=True
            )
            for c in (True, False)
        ]
        assert torch.equal(runs[0].tokens, runs[1].tokens)
        torch.testing.assert_close(runs[0].logits, runs[1].logits, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", ["tiny:gemma3", "tiny:qwen2_vl", "tiny:llava_next"])
def test_freeze_keeps_the_cut_state_and_runs_text_queries_only(name, photo, photo2):
    """Under freeze the image positions' final state is their block-cut input (their logits are the head on it),
    and blocks >= cut hold only the text positions as queries, while their cache keeps every position."""
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    image = inputs.image_mask.bool()
    L, cut, T = adapter.num_layers, 1, inputs.input_ids.shape[1]
    seen: dict[str, torch.Tensor] = {}

    def keep(_module, args, kwargs):
        seen["input"] = block_hidden(args, kwargs)

    grab = adapter.layers[cut].register_forward_pre_hook(keep, with_kwargs=True)
    try:
        plain = truncated_logits(
            adapter, inputs, L, "mask"
        )  # no hook installed: the unmodified block-cut input
    finally:
        grab.remove()
    frozen_logits = head_logits(adapter, seen["input"]).float()
    got = truncated_logits(adapter, inputs, cut, "freeze")
    torch.testing.assert_close(got[image], frozen_logits[image], rtol=0, atol=ATOL)
    assert not torch.allclose(got[~image], plain[~image], atol=1e-4)
    kept = int((~image).sum(1).max())
    packed = kept + int(image.sum(1).max())  # image keys first, then the text (re-padded per row)
    with torch.no_grad(), truncate_visual_depth(adapter, inputs, cut, "freeze") as state:
        out = adapter.model(**prefill_kwargs(adapter, inputs, use_cache=True, cache=TruncationCache()))
    assert state.block_lengths == {j: (T if j < cut else kept) for j in range(L)}
    cache = output_cache(out)
    assert [cache.stored_length(j) for j in range(L)] == [T if j < cut else packed for j in range(L)]
    assert cache.get_seq_length(L - 1) == T


def test_modes_parse_and_validate(photo):
    assert parse_modes("drop, freeze,drop") == ["drop", "freeze"]
    assert parse_modes(["skip_mlp"]) == ["skip_mlp"]
    assert set(PROCESS_MODES) < set(MODES) and MODES[:2] == ("mask", "drop")
    with pytest.raises(ConfigError, match="unknown truncation mode 'frieze'"):
        parse_modes("drop,frieze")
    with pytest.raises(ConfigError, match="names no mode"):
        parse_modes(" , ")


def test_beam_search_under_freeze(photo, photo2):
    """generate() expands every sample to its beams and reorders the cache: freeze follows (cache on == off)."""
    adapter = tiny("tiny:llava_next")  # ragged image counts: the packed freeze path re-pads
    inputs = batch(adapter, photo, photo2)
    sequences = []
    for use_cache in (True, False):
        with torch.no_grad(), truncate_visual_depth(adapter, inputs, 2, "freeze"):
            sequences.append(
                adapter.model.generate(
                    **adapter.model_kwargs(inputs),
                    num_beams=3,
                    num_return_sequences=2,
                    max_new_tokens=6,
                    min_new_tokens=6,
                    do_sample=False,
                    use_cache=use_cache,
                    pad_token_id=adapter.tokenizer.pad_token_id,
                    suppress_tokens=[adapter.image_token_id],
                )
            )
    assert sequences[0].shape[0] == 4
    assert torch.equal(sequences[0], sequences[1])
