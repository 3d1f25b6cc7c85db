"""Visual-depth truncation on every tiny family: full depth is the plain model, mask == drop, shorter blocks."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.errors import ConfigError, InputError
from visdepth.interventions.hooks import TruncationCache, prefill_kwargs
from visdepth.interventions.truncate import truncate_visual_depth, truncated_generate, truncated_logits
from visdepth.models import tiny_names
from visdepth.models.compat import output_cache

TINY = tiny_names()
PROMPTS = ["What is this?", "Name the animal in the picture please."]
ATOL = 1e-5


def batch(adapter, photo, photo2):
    """Two samples of different lengths (left-padded); LLaVA-NeXT/OneVision tile them into unequal image counts."""
    return adapter.build_inputs([[photo], [photo2]], PROMPTS)


def text_positions(inputs):
    return inputs.attention_mask.bool() & ~inputs.image_mask


@pytest.mark.parametrize("name", TINY)
def test_full_depth_is_the_unmodified_model(name, photo, photo2):
    # cut = L installs no hook, so the check is against the model run plainly on each sample alone: it holds only
    # if the generate-style positions of the padded batch are the model's own
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    L = adapter.num_layers
    for mode in ("mask", "drop"):
        full = truncated_logits(adapter, inputs, L, mode)
        for row, (image, prompt) in enumerate(zip([photo, photo2], PROMPTS, strict=True)):
            single = adapter.build_inputs([image], prompt)
            with torch.no_grad():
                plain = adapter.model(**adapter.model_kwargs(single)).logits.float()[0]
            torch.testing.assert_close(full[row, -plain.shape[0] :], plain, rtol=0, atol=ATOL)
            if row == 0:  # an unpadded sample: generate-style positions change nothing, bit for bit
                alone = truncated_logits(adapter, single, L, mode)[0]
                torch.testing.assert_close(alone, plain, rtol=0, atol=0)


@pytest.mark.parametrize("name", TINY)
def test_mask_equals_drop_at_every_cut(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    keep = text_positions(inputs)
    full = truncated_logits(adapter, inputs, adapter.num_layers, "mask")
    for cut in range(adapter.num_layers):
        masked = truncated_logits(adapter, inputs, cut, "mask")
        dropped = truncated_logits(adapter, inputs, cut, "drop")
        torch.testing.assert_close(dropped[keep], masked[keep], rtol=0, atol=ATOL)
        # dropped positions have no output at all
        assert torch.isnan(dropped[inputs.image_mask]).all()
        assert not torch.allclose(masked[keep], full[keep], atol=1e-4)


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
@pytest.mark.parametrize("name", TINY)
def test_mask_equals_drop_in_generation(name, use_cache, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    # cut 0 with a cache truncates layer 0 too, whose length transformers reads for decoding positions
    cut = 0 if use_cache else adapter.num_layers // 2
    runs = {
        mode: truncated_generate(
            adapter,
            inputs,
            cut,
            mode,
            max_new_tokens=20,
            use_cache=use_cache,
            output_logits=True,
            min_new_tokens=20,
        )
        for mode in ("mask", "drop")
    }
    assert runs["drop"].tokens.shape == (2, 20)
    assert torch.equal(runs["drop"].tokens, runs["mask"].tokens)
    torch.testing.assert_close(runs["drop"].logits, runs["mask"].logits, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", TINY)
def test_cached_drop_equals_recomputed_mask_in_generation(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    cut = adapter.num_layers // 2
    cached = truncated_generate(adapter, inputs, cut, "drop", 12, output_logits=True, min_new_tokens=12)
    recomputed = truncated_generate(
        adapter, inputs, cut, "mask", 12, False, output_logits=True, min_new_tokens=12
    )
    assert torch.equal(cached.tokens, recomputed.tokens)
    torch.testing.assert_close(cached.logits, recomputed.logits, rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", TINY)
def test_drop_shortens_blocks_and_their_cache(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    L, T = adapter.num_layers, inputs.input_ids.shape[1]
    kept = int((~inputs.image_mask).sum(1).max())  # ragged batches re-pad to the longest kept row
    cut = 1
    with torch.no_grad(), truncate_visual_depth(adapter, inputs, cut, "drop") as state:
        adapter.model(**prefill_kwargs(adapter, inputs))
        prefill_lengths = dict(state.block_lengths)
        # plain generate() inside the context: its own (empty) cache is swapped for a TruncationCache
        out = adapter.model.generate(
            **adapter.model_kwargs(inputs),
            max_new_tokens=3,
            min_new_tokens=3,
            do_sample=False,
            return_dict_in_generate=True,
            pad_token_id=adapter.tokenizer.pad_token_id,
            suppress_tokens=[adapter.image_token_id],
        )
        decode_lengths = dict(state.block_lengths)
    cache = output_cache(out)
    assert isinstance(cache, TruncationCache)
    assert prefill_lengths == {j: (T if j < cut else kept) for j in range(L)}
    # the last generated token is never fed back, so the cache holds the prompt and two new tokens
    assert [cache.stored_length(j) for j in range(L)] == [(T if j < cut else kept) + 2 for j in range(L)]
    assert cache.get_seq_length(L - 1) == T + 2  # lengths are reported for the whole sequence
    assert decode_lengths == dict.fromkeys(range(L), 1)


@pytest.mark.parametrize("name", TINY)
def test_batch_equals_samples_alone(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    if name in ("tiny:llava_next", "tiny:llava_onevision"):
        counts = inputs.image_mask.sum(1)
        assert counts[0] != counts[1]  # the ragged re-padding path is exercised
    for mode in ("drop", "mask"):
        together = truncated_logits(adapter, inputs, 1, mode)
        for i, (image, prompt) in enumerate(zip([photo, photo2], PROMPTS, strict=True)):
            alone_inputs = adapter.build_inputs([image], prompt)
            alone = truncated_logits(adapter, alone_inputs, 1, mode)[0]
            n = alone.shape[0]
            keep = text_positions(alone_inputs)[0]
            torch.testing.assert_close(together[i, -n:][keep], alone[keep], rtol=0, atol=ATOL)


@pytest.mark.parametrize("name", TINY)
def test_cut_zero_ignores_the_image(name, photo, noise):
    adapter = tiny(name)
    other = noise.resize(photo.size)  # same size, so the same number of image tokens and positions
    a = adapter.build_inputs([photo], PROMPTS[0])
    b = adapter.build_inputs([other], PROMPTS[0])
    assert torch.equal(a.input_ids, b.input_ids)
    keep = text_positions(a)
    for mode in ("drop", "mask"):
        la, lb = truncated_logits(adapter, a, 0, mode), truncated_logits(adapter, b, 0, mode)
        torch.testing.assert_close(la[keep], lb[keep], rtol=0, atol=1e-6)
    full_a = truncated_logits(adapter, a, adapter.num_layers, "mask")
    full_b = truncated_logits(adapter, b, adapter.num_layers, "mask")
    assert not torch.allclose(full_a[keep], full_b[keep], atol=1e-4)


def test_cut_and_mode_are_validated(photo):
    adapter = tiny("tiny:llava")
    inputs = adapter.build_inputs([photo], "Hi")
    L = adapter.num_layers
    with pytest.raises(ConfigError, match=f"cut depth 40 is beyond the model's {L} layers; use 0..{L}"):
        truncated_logits(adapter, inputs, 40)
    with pytest.raises(ConfigError, match="negative"):
        truncated_logits(adapter, inputs, -1)
    with pytest.raises(ConfigError, match="integer"):
        truncated_logits(adapter, inputs, 1.5)
    with pytest.raises(ConfigError, match="unknown truncation mode"):
        truncated_logits(adapter, inputs, 1, "skip")


def test_mismatched_inputs_are_refused(photo, photo2):
    adapter = tiny("tiny:llava")
    one = adapter.build_inputs([photo], "Hi")
    two = batch(adapter, photo, photo2)
    with pytest.raises(InputError, match="same inputs"), truncate_visual_depth(adapter, one, 1, "drop"):
        adapter.model(**prefill_kwargs(adapter, two))
    # hooks are gone afterwards: the model runs normally
    with torch.no_grad():
        adapter.model(**prefill_kwargs(adapter, two))


def test_prompt_ending_in_an_image_is_refused_in_drop_mode(photo):
    adapter = tiny("tiny:llava")
    inputs = adapter.build_inputs([photo], "", chat=False)
    assert bool(inputs.image_mask[0, -1])
    with pytest.raises(InputError, match="ends with an image token"):
        truncated_logits(adapter, inputs, 1, "drop")
    truncated_logits(adapter, inputs, 1, "mask")  # mask mode has no such restriction


def test_beam_search_runs_inside_the_context(photo, photo2):
    # generate() expands every sample to its beams; both modes must follow it (ragged batch: LLaVA-NeXT)
    adapter = tiny("tiny:llava_next")
    inputs = batch(adapter, photo, photo2)
    sequences = {}
    for mode in ("mask", "drop"):
        with torch.no_grad(), truncate_visual_depth(adapter, inputs, 2, mode):
            sequences[mode] = adapter.model.generate(
                **adapter.model_kwargs(inputs),
                num_beams=3,
                num_return_sequences=2,
                max_new_tokens=6,
                min_new_tokens=6,
                do_sample=False,
                pad_token_id=adapter.tokenizer.pad_token_id,
                suppress_tokens=[adapter.image_token_id],
            )
    assert sequences["drop"].shape[0] == 4
    assert torch.equal(sequences["drop"], sequences["mask"])
