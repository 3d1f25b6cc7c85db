"""Gemma 3: delimited image spans, token_type_ids for the bidirectional image blocks, sliding and global layers."""

from __future__ import annotations

import pytest
import torch

import visdepth
from tests.conftest import tiny
from visdepth.errors import UnsupportedModelError
from visdepth.interventions.capture import capture_states


def _layer_outputs(adapter, inputs, bump_position: int | None = None) -> list[torch.Tensor]:
    """Output of every decoder block; optionally with the block-0 input changed at one position of sample 0."""
    outputs: list[torch.Tensor] = []

    def bump(_module, args, kwargs):
        hidden = (args[0] if args else kwargs["hidden_states"]).clone()
        hidden[0, bump_position] += 1.0
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def keep(_module, _args, output):
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handles = [layer.register_forward_hook(keep) for layer in adapter.layers]
    if bump_position is not None:
        handles.append(adapter.layers[0].register_forward_pre_hook(bump, with_kwargs=True))
    try:
        with torch.no_grad():
            adapter.base_model(**adapter.model_kwargs(inputs), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def test_image_spans_are_delimited_by_special_tokens(photo):
    adapter = tiny("tiny:gemma3")
    inputs = adapter.build_inputs([photo], "What is in the picture?")
    ids, image, special = inputs.input_ids[0], inputs.image_mask[0], inputs.special_mask[0]
    boi, eoi = adapter.config.boi_token_id, adapter.config.eoi_token_id
    ((start, end),) = adapter.spans(image)
    assert end - start == adapter.config.mm_tokens_per_image
    assert int(ids[start - 1]) == boi and int(ids[end]) == eoi
    # the delimiters are special tokens, never image tokens; no image token is special
    assert bool(special[start - 1]) and bool(special[end])
    assert not bool(image[start - 1]) and not bool(image[end])
    assert not bool((special & image).any())
    # one BOS, at the start: the template renders it and the tiny tokenizer does not add another
    assert int(ids[0]) == adapter.tokenizer.bos_token_id
    assert int((ids == adapter.tokenizer.bos_token_id).sum()) == 1


def test_token_type_ids_mark_the_image_tokens(photo, photo2):
    adapter = tiny("tiny:gemma3")
    inputs = adapter.build_inputs(
        [[photo, photo2], [photo]], ["Compare the two.", "Describe it briefly please."]
    )
    types = inputs.tensors["token_type_ids"]
    assert types.shape == inputs.input_ids.shape
    assert torch.equal(types.bool(), inputs.image_mask)
    spans = [adapter.spans(m) for m in inputs.image_mask]
    assert [len(s) for s in spans] == [2, 1]
    boi = adapter.config.boi_token_id
    for row, row_spans in zip(inputs.input_ids, spans, strict=True):
        # each image is its own block: a delimiter separates two images
        assert all(int(row[start - 1]) == boi for start, _ in row_spans)


def test_bidirectional_within_an_image_causal_elsewhere(photo, photo2):
    adapter = tiny("tiny:gemma3")
    inputs = adapter.build_inputs([[photo, photo2]], ["Compare the two pictures."])
    (first_start, first_end), (second_start, _) = adapter.spans(inputs.image_mask[0])
    base = _layer_outputs(adapter, inputs)
    # change the last token of the first image at the input of block 0
    bumped = _layer_outputs(adapter, inputs, bump_position=first_end - 1)
    changed = (bumped[0][0] - base[0][0]).abs().amax(-1) > 0
    # earlier tokens of the same image see it (bidirectional block), tokens before the image do not (causal)
    assert bool(changed[first_start])
    assert not bool(changed[:first_start].any())
    # the next image is a different block: it sees the first one only causally, so its tokens do change
    assert bool(changed[second_start])


def test_sliding_and_global_layers_both_run(photo):
    adapter = tiny("tiny:gemma3")
    text = adapter.text_config
    assert set(text.layer_types) == {"sliding_attention", "full_attention"}
    inputs = adapter.build_inputs([photo], "What is in the picture?")
    length = inputs.input_ids.shape[1]
    assert length > text.sliding_window
    base = _layer_outputs(adapter, inputs)
    bumped = _layer_outputs(adapter, inputs, bump_position=0)
    first_sliding = text.layer_types.index("sliding_attention")
    first_full = text.layer_types.index("full_attention")
    assert first_sliding == 0  # the bump enters at block 0, so that block must be the windowed one
    # the last token is further than the window from position 0: a sliding block does not see the change
    assert torch.equal(bumped[first_sliding][0, -1], base[first_sliding][0, -1])
    # a global block does (directly or through the blocks below it)
    assert not torch.equal(bumped[first_full][0, -1], base[first_full][0, -1])


def test_bos_is_not_doubled_when_the_tokenizer_adds_one(photo):
    from tokenizers import processors

    from visdepth.models.gemma3 import Gemma3Adapter

    adapter = Gemma3Adapter.build_tiny("gemma3")  # private copy: its tokenizer is changed below
    tok = adapter.tokenizer
    # make the tokenizer prepend BOS like the real Gemma tokenizer does
    tok._tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.bos_token_id)]
    )
    ids = adapter.build_inputs([photo], "What is it?").input_ids[0]
    assert int(ids[0]) == tok.bos_token_id
    assert int((ids == tok.bos_token_id).sum()) == 1


def test_gemma3_text_model_is_refused(tmp_path):
    from transformers import Gemma3TextConfig

    Gemma3TextConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, head_dim=8
    ).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedModelError, match="gemma3_text.*text-only.*supported families"):
        visdepth.load(str(tmp_path))


def test_images_reach_the_decoder(photo, photo2):
    """transformers zero-initialises Gemma 3's multimodal projection; the tiny model draws it, so images differ."""
    adapter = tiny("tiny:gemma3")
    inputs = adapter.build_inputs([[photo], [photo2]], ["What is it?", "What is it?"])
    ids, image = inputs.input_ids, inputs.image_mask
    assert torch.equal(ids[0], ids[1])  # same prompt and token layout: only the pixels differ
    with torch.no_grad():
        logits = adapter.model(**adapter.model_kwargs(inputs)).logits
    embedded = capture_states(adapter, inputs)[0]  # layer 0: the decoder's input, image features merged in
    first, second = embedded[0][image[0]], embedded[1][image[1]]
    assert bool(first.ne(0).any()) and bool(second.ne(0).any())
    assert not torch.allclose(first, second)
    # the text embeddings are the same, so the image is what changes the output
    torch.testing.assert_close(embedded[0][~image[0]], embedded[1][~image[1]], rtol=0, atol=0)
    assert not torch.allclose(logits[0, -1], logits[1, -1], atol=1e-4)


def test_projection_is_seeded():
    weights = [
        visdepth.load("tiny:gemma3", seed=seed).model.model.multi_modal_projector.mm_input_projection_weight
        for seed in (3, 3, 4)
    ]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    # drawn with the config's initializer_range, as transformers draws the other weights
    config = tiny("tiny:gemma3").config
    assert abs(float(weights[0].detach().std()) - config.initializer_range) < 0.25 * config.initializer_range
