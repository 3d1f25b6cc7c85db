"""Idefics3 / SmolVLM specifics: image tiling into several spans, tile wrappers as template tokens.

Loading a saved checkpoint (with and without AutoProcessor) is tested for every family in test_families.py."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests.conftest import tiny
from visdepth.errors import InputError

VARIANTS = ["tiny:idefics3", "tiny:smolvlm"]


def _tokens(adapter, ids):
    return adapter.tokenizer.convert_ids_to_tokens(ids.tolist())


@pytest.mark.parametrize("name", VARIANTS)
def test_tiles_give_several_spans_framed_by_special_tokens(name, photo):
    adapter = tiny(name)
    inputs = adapter.build_inputs([photo], "What is this?")
    ids, image, special = inputs.input_ids[0], inputs.image_mask[0], inputs.special_mask[0]
    spans = adapter.spans(image)
    # the tiny processor scales to 64 px and tiles by 32 px: 2x2 tiles and the global image, 4 tokens each
    assert len(spans) == 5 and all(end - start == 4 for start, end in spans)
    assert inputs.tensors["pixel_values"].shape[:2] == (1, 5)
    tokens = _tokens(adapter, ids)
    wrappers = [i for i, t in enumerate(tokens) if t.startswith(("<fake_token", "<row_", "<global-img>"))]
    assert len(wrappers) == 2 * 5 + 1  # fake + tag per tile, one closing fake
    assert all(bool(special[i]) and not bool(image[i]) for i in wrappers)
    # the newlines between tile rows belong to the image layout, not to the prompt
    layout_end = max(wrappers)
    first = min(wrappers)
    row_breaks = [i for i in range(first, layout_end) if tokens[i] == "Ċ"]
    assert len(row_breaks) == 3 and all(bool(special[i]) for i in row_breaks)
    # prompt text, and the template's newline before the image, stay text
    text = inputs.text_mask()[0]
    assert not bool(text[first : layout_end + 1].any())
    assert "".join(t for t, keep in zip(tokens, text.tolist(), strict=True) if keep).startswith("user")
    assert bool(text[first - 1])  # the newline after "user"


@pytest.mark.parametrize("name", VARIANTS)
def test_single_tile_when_splitting_is_off(name, photo, monkeypatch):
    adapter = tiny(name)
    monkeypatch.setattr(adapter.processor.image_processor, "do_image_splitting", False)
    inputs = adapter.build_inputs([photo], "What is this?")
    spans = adapter.spans(inputs.image_mask[0])
    assert [end - start for start, end in spans] == [4]
    tokens = _tokens(adapter, inputs.input_ids[0])
    start = spans[0][0]
    assert tokens[start - 2 : start] == ["<fake_token_around_image>", "<global-img>"]
    with torch.no_grad():
        out = adapter.model(**adapter.model_kwargs(inputs))
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("name", VARIANTS)
def test_newline_typed_in_the_prompt_is_text(name, noise):
    adapter = tiny(name)
    inputs = adapter.build_inputs([noise], "line one\nline two", chat=False)
    tokens = _tokens(adapter, inputs.input_ids[0])
    text = inputs.text_mask()[0]
    prompt_newline = max(i for i, t in enumerate(tokens) if t == "Ċ")
    assert tokens[prompt_newline - 1] == "e" and bool(text[prompt_newline])


@pytest.mark.parametrize("name", VARIANTS)
def test_image_count_mismatch_is_an_input_error(name, photo):
    adapter = tiny(name)
    with pytest.raises(InputError, match="could not build inputs"):
        adapter.build_inputs([photo], f"{adapter.image_placeholder()} and one more", chat=False)


def test_decoder_lives_in_text_model():
    adapter = tiny("tiny:smolvlm")
    assert adapter.language_model is adapter.model.model.text_model
    assert adapter.layers is adapter.model.model.text_model.layers
    assert adapter.image_token_id == adapter.config.image_token_id
    # an image placeholder of a released checkpoint may carry any id: it is read from the config
    assert adapter.image_mask(torch.tensor([[adapter.config.image_token_id, 0]])).tolist() == [[True, False]]


def test_wide_image_gives_more_tiles(photo):
    adapter = tiny("tiny:idefics3")
    wide = photo.resize((96, 24), Image.BILINEAR)
    inputs = adapter.build_inputs([wide], "Describe.")
    # 64 x 16 px becomes 64 x 32: one row of two tiles, plus the global image
    assert len(adapter.spans(inputs.image_mask[0])) == 3
