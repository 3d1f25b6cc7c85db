"""InternVL specifics: one span of context tokens per image framed by <img> </img>, crops.

Loading a saved checkpoint (with and without AutoProcessor) is tested for every family in test_families.py."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from tests.conftest import tiny
from visdepth.errors import InputError

NAME = "tiny:internvl"


def test_image_is_one_span_framed_by_special_tokens(photo, photo2):
    adapter = tiny(NAME)
    inputs = adapter.build_inputs([[photo, photo2]], ["Compare them."])
    ids, image, special = inputs.input_ids[0], inputs.image_mask[0], inputs.special_mask[0]
    spans = adapter.spans(image)
    per_tile = adapter.config.image_seq_length
    assert [end - start for start, end in spans] == [per_tile, per_tile]
    tokens = adapter.tokenizer.convert_ids_to_tokens(ids.tolist())
    for start, end in spans:
        assert tokens[start - 1] == "<img>" and tokens[end] == "</img>"
        assert bool(special[start - 1]) and bool(special[end])
        assert not bool(image[start - 1]) and not bool(image[end])
    assert not bool((inputs.text_mask() & special).any())


def test_wide_image_is_cropped_into_tiles_plus_thumbnail(photo):
    adapter = tiny(NAME)
    wide = photo.resize((64, 16), Image.BILINEAR)
    inputs = adapter.build_inputs([wide], "Describe.")
    # two 16 px tiles and the thumbnail, all in one span
    assert inputs.tensors["pixel_values"].shape[0] == 3
    spans = adapter.spans(inputs.image_mask[0])
    assert [end - start for start, end in spans] == [3 * adapter.config.image_seq_length]
    with torch.no_grad():
        out = adapter.model(**adapter.model_kwargs(inputs))
    assert torch.isfinite(out.logits).all()


def test_image_count_mismatch_is_an_input_error(photo):
    adapter = tiny(NAME)
    assert adapter.image_placeholder() == "<IMG_CONTEXT>"
    with pytest.raises(InputError, match="could not build inputs"):
        adapter.build_inputs([photo], "<IMG_CONTEXT> and one more", chat=False)
