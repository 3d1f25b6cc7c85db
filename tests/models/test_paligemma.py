"""PaliGemma: raw prefix prompt (images, BOS, text, newline), prefix-LM attention, back-to-back image spans."""

from __future__ import annotations

import torch

import visdepth
from tests.conftest import tiny


def _block0_output(adapter, inputs, bump_position: int | None = None) -> torch.Tensor:
    """Output of decoder block 0, optionally with its input changed at one position of sample 0."""
    kept: list[torch.Tensor] = []

    def bump(_module, args, kwargs):
        hidden = (args[0] if args else kwargs["hidden_states"]).clone()
        hidden[0, bump_position] += 1.0
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def keep(_module, _args, output):
        kept.append(output[0] if isinstance(output, tuple) else output)

    block = adapter.layers[0]
    handles = [block.register_forward_hook(keep)]
    if bump_position is not None:
        handles.append(block.register_forward_pre_hook(bump, with_kwargs=True))
    try:
        with torch.no_grad():
            adapter.base_model(**adapter.model_kwargs(inputs), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return kept[0]


def test_prompt_layout_is_images_bos_prefix_newline(photo):
    adapter = tiny("tiny:paligemma")
    inputs = adapter.build_inputs([photo], "caption en")
    ids, image, special = inputs.input_ids[0], inputs.image_mask[0], inputs.special_mask[0]
    n = adapter.tokens_per_image
    assert bool(image[:n].all()) and int(image.sum()) == n
    bos = adapter.tokenizer.bos_token_id
    assert int(ids[n]) == bos and bool(special[n]) and not bool(image[n])
    assert adapter.tokenizer.decode(ids[n + 1 :]) == "caption en\n"
    assert int((ids == bos).sum()) == 1
    # the processor's training labels are dropped; token_type_ids say "prefix" (0) everywhere in the prompt
    assert "labels" not in inputs.tensors
    types = inputs.tensors["token_type_ids"]
    assert types.shape == ids.unsqueeze(0).shape and not bool(types.any())


def test_two_images_are_two_spans_of_one_run(photo, photo2):
    adapter = tiny("tiny:paligemma")
    inputs = adapter.build_inputs(
        [[photo, photo2], [photo]], ["Compare the two.", "Describe it briefly please."]
    )
    n = adapter.tokens_per_image
    first, second = (adapter.spans(m) for m in inputs.image_mask)
    assert len(first) == 2 and len(second) == 1
    assert all(end - start == n for start, end in first + second)
    assert first[0][1] == first[1][0]  # back to back: only the count separates them
    # the split does not change which positions are image positions
    assert sum(end - start for start, end in first) == int(inputs.image_mask[0].sum())
    types = inputs.tensors["token_type_ids"]
    assert not bool(types[inputs.attention_mask.bool()].any())


def test_prefix_is_attended_bidirectionally(photo):
    adapter = tiny("tiny:paligemma")
    inputs = adapter.build_inputs([photo], "What is in the picture?")
    base = _block0_output(adapter, inputs)
    # change the last prompt token: with a prefix-LM mask even the first image token sees it
    bumped = _block0_output(adapter, inputs, bump_position=inputs.input_ids.shape[1] - 1)
    changed = (bumped[0] - base[0]).abs().amax(-1) > 0
    assert bool(changed.all())


def test_paligemma2_checkpoint_loads_with_eager_attention(tmp_path, photo):
    """PaliGemma 2 decodes with Gemma 2, which transformers refuses to load with sdpa (soft-capped logits)."""
    from transformers import Gemma2Config, PaliGemmaConfig, PaliGemmaForConditionalGeneration

    adapter = tiny("tiny:paligemma")
    vocab = adapter.text_config.vocab_size
    text = Gemma2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=vocab,
        sliding_window=8,
    )
    config = PaliGemmaConfig(
        text_config=text,
        vision_config=adapter.config.vision_config.to_dict(),
        image_token_index=adapter.image_token_id,
        projection_dim=64,
        hidden_size=64,
        vocab_size=vocab,
    )
    PaliGemmaForConditionalGeneration(config).save_pretrained(tmp_path)
    adapter.processor.save_pretrained(tmp_path)
    loaded = visdepth.load(str(tmp_path), device="cpu")
    assert loaded.text_config._attn_implementation == "eager"
    inputs = loaded.build_inputs([photo], "What is it?")
    with torch.no_grad():
        assert torch.isfinite(loaded.model(**loaded.model_kwargs(inputs)).logits).all()
