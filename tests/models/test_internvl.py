"""InternVL specifics: one span of context tokens per image framed by <img> </img>, crops, loading."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from PIL import Image

import visdepth
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


def _save_checkpoint(adapter, path):
    adapter.model.save_pretrained(path)
    adapter.tokenizer.save_pretrained(path)
    adapter.processor.image_processor.save_pretrained(path)
    (path / "processor_config.json").write_text(
        json.dumps(
            {"processor_class": "InternVLProcessor", "image_seq_length": adapter.processor.image_seq_length}
        )
    )


def test_checkpoint_loads_without_torchvision(photo, tmp_path):
    reference = tiny(NAME)
    _save_checkpoint(reference, tmp_path)
    adapter = visdepth.load(str(tmp_path), device="cpu")
    assert type(adapter) is type(reference)
    if importlib.util.find_spec("torchvision") is None:
        assert adapter.processor.video_processor is None  # the fallback path was taken
    a = reference.build_inputs([photo], "What is this?")
    b = adapter.build_inputs([photo], "What is this?")
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.special_mask, b.special_mask)
    with torch.no_grad():
        la = reference.model(**reference.model_kwargs(a)).logits
        lb = adapter.model(**adapter.model_kwargs(b)).logits
    torch.testing.assert_close(la, lb)


def test_standard_processor_is_used_when_it_loads(tmp_path, monkeypatch):
    from transformers import AutoProcessor

    reference = tiny(NAME)
    _save_checkpoint(reference, tmp_path)
    standard = reference.processor
    monkeypatch.setattr(AutoProcessor, "from_pretrained", lambda *args, **kwargs: standard)
    assert visdepth.load(str(tmp_path), device="cpu").processor is standard
