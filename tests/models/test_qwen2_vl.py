"""Qwen2-VL / Qwen2.5-VL specifics: M-RoPE inputs, image-token expansion, padding.

Loading a saved checkpoint without torchvision is tested for every family in test_families.py."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.interventions.capture import capture_states
from visdepth.models.qwen2_vl import IMAGE_TEXT, VISION_END, VISION_START

VARIANTS = ["tiny:qwen2_vl", "tiny:qwen2_5_vl"]


@pytest.mark.parametrize("name", VARIANTS)
def test_token_types_come_from_the_ids_and_match_the_processor(name, photo, photo2):
    adapter = tiny(name)
    inputs = adapter.build_inputs([[photo, photo2], [photo]], ["Compare the two.", "Describe it."])
    types = inputs.tensors["mm_token_type_ids"]
    assert torch.equal(types, inputs.image_mask.long())
    # the processor computes its own; ours must agree with it wherever it is given
    texts = [adapter.format_prompt(p, n) for p, n in (("Compare the two.", 2), ("Describe it.", 1))]
    raw = adapter.process(texts, [[photo, photo2], [photo]])
    assert torch.equal(raw["mm_token_type_ids"].long(), types)


@pytest.mark.parametrize("name", VARIANTS)
def test_each_image_expands_to_its_grid(name, photo, photo2, noise):
    adapter = tiny(name)
    images = [photo, photo2, noise]
    inputs = adapter.build_inputs([images], ["Three pictures."])
    ids = inputs.input_ids[0]
    spans = adapter.spans(inputs.image_mask[0])
    merge = adapter.processor.image_processor.merge_size
    grid = inputs.tensors["image_grid_thw"]
    assert len(spans) == len(images) == grid.shape[0]
    start_id, end_id = (adapter.tokenizer.convert_tokens_to_ids(t) for t in (VISION_START, VISION_END))
    for (start, end), thw in zip(spans, grid, strict=True):
        assert end - start == int(thw.prod()) // merge**2
        # the delimiters stay outside the image group and count as special tokens
        assert int(ids[start - 1]) == start_id and int(ids[end]) == end_id
        assert bool(inputs.special_mask[0, start - 1]) and bool(inputs.special_mask[0, end])
    # images of different shapes give different grids: the count is per image, never a constant
    assert len({tuple(t.tolist()) for t in grid}) > 1


@pytest.mark.parametrize("name", VARIANTS)
def test_raw_prompt_keeps_the_vision_delimiters(name, photo):
    adapter = tiny(name)
    assert adapter.image_placeholder() == IMAGE_TEXT
    inputs = adapter.build_inputs([photo], "Describe.", chat=False)
    assert len(adapter.spans(inputs.image_mask[0])) == 1


@pytest.mark.parametrize("name", VARIANTS)
def test_mrope_positions_are_in_use(name, photo, photo2):
    adapter = tiny(name)
    inputs = adapter.build_inputs([[photo], [photo2]], ["What is this?", "Name the animal in the picture."])
    positions = adapter.rope_positions(inputs)
    assert positions.shape == (3, *inputs.input_ids.shape)
    for b in range(2):
        image = inputs.image_mask[b]
        # over image tokens the temporal, height and width rows are three different sequences (2-D grid)
        rows = {tuple(positions[r, b, image].tolist()) for r in range(3)}
        assert len(rows) == 3
        # over text tokens the three rows agree (plain 1-D positions)
        text = inputs.attention_mask[b].bool() & ~image
        assert torch.equal(positions[0, b, text], positions[1, b, text])
    kwargs = adapter.model_kwargs(inputs)
    with torch.no_grad():
        default = adapter.base_model(**kwargs).last_hidden_state
        explicit = adapter.base_model(**kwargs, position_ids=positions).last_hidden_state
    valid = inputs.attention_mask.bool()
    # the model's own forward uses exactly these 3-D ids ...
    torch.testing.assert_close(default[valid], explicit[valid], rtol=0, atol=0)
    # ... and leaving the token types out loses them: Qwen2-VL refuses, Qwen2.5-VL silently goes 1-D
    kwargs.pop("mm_token_type_ids")
    if adapter.config.model_type == "qwen2_vl":
        with pytest.raises(ValueError, match="mm_token_type_ids"):
            adapter.base_model(**kwargs)
    else:
        with torch.no_grad():
            flat = adapter.base_model(**kwargs).last_hidden_state
        assert not torch.allclose(default[valid], flat[valid])


@pytest.mark.parametrize("name", VARIANTS)
def test_left_padded_batch_equals_singles(name, photo, photo2):
    adapter = tiny(name)
    prompts = ["What is this?", "Name the animal in the picture, please."]
    batch = adapter.build_inputs([[photo], [photo2]], prompts)
    assert not bool(batch.attention_mask.all())  # the two samples really differ in length
    states = capture_states(adapter, batch)
    for b, (image, prompt) in enumerate(zip([photo, photo2], prompts, strict=True)):
        single = adapter.build_inputs([image], prompt)
        alone = capture_states(adapter, single)[:, 0]
        valid = batch.attention_mask[b].bool()
        torch.testing.assert_close(states[:, b][:, valid], alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", VARIANTS)
def test_greedy_generation_of_a_padded_batch_equals_singles(name, photo, photo2):
    adapter = tiny(name)
    prompts = ["Describe.", "What animal is shown here?"]
    batch = adapter.build_inputs([[photo, photo2], [photo2]], prompts)
    with torch.no_grad():
        out = adapter.model.generate(**adapter.model_kwargs(batch), max_new_tokens=4, do_sample=False)
    new = out[:, batch.input_ids.shape[1] :]
    for b, (images, prompt) in enumerate(zip([[photo, photo2], [photo2]], prompts, strict=True)):
        single = adapter.build_inputs([images], [prompt])
        with torch.no_grad():
            alone = adapter.model.generate(**adapter.model_kwargs(single), max_new_tokens=4, do_sample=False)
        assert torch.equal(new[b], alone[0, single.input_ids.shape[1] :])
