"""Every registered family, through its tiny random instance: inputs, image mask, a real forward, capture."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.interventions.capture import capture_states
from visdepth.models import tiny_names

TINY = tiny_names()


@pytest.mark.parametrize("name", TINY)
def test_single_image_forward_and_mask(name, photo):
    adapter = tiny(name)
    inputs = adapter.build_inputs([photo], "What is in the picture?")
    ids = inputs.input_ids
    assert ids.shape[0] == 1
    mask = inputs.image_mask[0]
    # the mask comes from the ids and the config's image token id
    assert torch.equal(mask, ids[0] == adapter.image_token_id)
    assert 0 < int(mask.sum()) < ids.shape[1]
    assert len(adapter.spans(mask)) >= 1
    # text group: prompt positions, neither image nor padding, special tokens excluded by default
    text = inputs.text_mask()
    assert int(text.sum()) > 0 and not bool((text & inputs.image_mask).any())
    assert int(inputs.text_mask(exclude_special=False).sum()) >= int(text.sum())
    with torch.no_grad():
        out = adapter.model(**adapter.model_kwargs(inputs))
    assert out.logits.shape[:2] == ids.shape
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("name", TINY)
def test_two_images_give_two_spans_and_batch_pads_left(name, photo, photo2):
    adapter = tiny(name)
    inputs = adapter.build_inputs([[photo, photo2], [photo]], ["Compare the two.", "Describe it briefly please."])
    spans = [adapter.spans(m) for m in inputs.image_mask]
    assert len(spans[0]) >= 2, spans  # two images are never one contiguous run
    assert len(spans[1]) >= 1
    attention = inputs.attention_mask
    # left padding: once a row starts, it never stops (generation continues on the right)
    for row in attention:
        first = int(row.nonzero()[0])
        assert bool(row[first:].all())


@pytest.mark.parametrize("name", TINY)
def test_capture_equals_model_hidden_states(name, photo, photo2):
    adapter = tiny(name)
    inputs = adapter.build_inputs([[photo], [photo2]], ["What is this?", "Name the animal in the picture."])
    states = capture_states(adapter, inputs)
    L = adapter.num_layers
    assert states.shape[:3] == (L + 1, *inputs.input_ids.shape)
    with torch.no_grad():
        hidden = adapter.base_model(**adapter.model_kwargs(inputs), output_hidden_states=True).hidden_states
    assert len(hidden) == L + 1
    valid = inputs.attention_mask.bool()
    for layer in range(L):
        torch.testing.assert_close(states[layer][valid], hidden[layer][valid].float(), rtol=0, atol=0)
    # transformers hands back the *normed* last state; ours is taken before the norm
    with torch.no_grad():
        normed = adapter.norm(states[L].to(adapter.dtype))
    torch.testing.assert_close(normed[valid], hidden[L][valid].float(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(states[L][valid], hidden[L][valid].float())


@pytest.mark.parametrize("name", TINY)
def test_describe_and_structure(name):
    adapter = tiny(name)
    info = adapter.describe()
    assert info["num_layers"] == adapter.num_layers == len(adapter.layers) >= 2
    assert info["hidden_size"] == adapter.hidden_size
    assert adapter.lm_head.weight.shape[-1] == adapter.hidden_size


def test_tiny_models_are_seeded():
    import visdepth

    a = visdepth.load("tiny:llava", seed=3)
    b = visdepth.load("tiny:llava", seed=3)
    c = visdepth.load("tiny:llava", seed=4)
    pa, pb, pc = (next(m.model.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
