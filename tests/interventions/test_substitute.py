"""Layer substitution (RQ2) on every tiny family: l_a = l_b is exactly the identity, l_a != l_b is not."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.errors import ConfigError, InputError
from visdepth.interventions.capture import capture_states
from visdepth.interventions.hooks import greedy_generate, prefill_kwargs
from visdepth.interventions.substitute import (
    SPLICE_SCOPE,
    capture_prefill_states,
    hybrid_states,
    substituted_generate,
    substituted_logits,
)
from visdepth.models import tiny_names

TINY = tiny_names()
PROMPTS = ["What is this?", "Name the animal in the picture please."]


def batch(adapter, photo, photo2):
    return adapter.build_inputs([[photo], [photo2]], PROMPTS)


@pytest.mark.parametrize("name", TINY)
def test_same_layer_is_the_identity(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    L = adapter.num_layers
    states = capture_prefill_states(adapter, inputs)
    assert states.shape[:3] == (L + 1, *inputs.input_ids.shape)
    with torch.no_grad():
        reference = adapter.model(**prefill_kwargs(adapter, inputs)).logits.float()
    valid = inputs.attention_mask.bool()
    for layer in (0, L // 2, L):  # L splices into the final norm's input
        for group in ("image", "text"):
            out = substituted_logits(adapter, inputs, states, layer, layer, group)
            torch.testing.assert_close(out[valid], reference[valid], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["tiny:llava", "tiny:qwen2_vl", "tiny:gemma3", "tiny:paligemma"])
def test_same_layer_generation_is_the_identity(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    states = capture_prefill_states(adapter, inputs)
    plain = greedy_generate(adapter, inputs, 10, output_logits=True)
    spliced = substituted_generate(adapter, inputs, states, 2, 2, "image", 10, output_logits=True)
    assert torch.equal(spliced.tokens, plain.tokens)
    torch.testing.assert_close(spliced.logits, plain.logits, rtol=0, atol=0)
    assert SPLICE_SCOPE == "prefill"


@pytest.mark.parametrize("name", TINY)
def test_different_layers_change_the_output(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    L = adapter.num_layers
    states = capture_prefill_states(adapter, inputs)
    reference = substituted_logits(adapter, inputs, states, L // 2, L // 2)
    last = reference[:, -1]
    for group in ("image", "text"):
        out = substituted_logits(adapter, inputs, states, 0, L // 2, group)
        assert (out[:, -1] - last).abs().max() > 1e-3
        # positions before the splice are untouched by it only in the layers below; the head sees the hybrid
        assert torch.isfinite(out[inputs.attention_mask.bool()]).all()


@pytest.mark.parametrize("name", ["tiny:llava", "tiny:qwen2_5_vl", "tiny:gemma3"])
def test_splice_holds_with_and_without_cache(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    states = capture_prefill_states(adapter, inputs)
    L = adapter.num_layers
    kw = dict(max_new_tokens=12, min_new_tokens=12, output_logits=True)
    cached = substituted_generate(adapter, inputs, states, 0, L - 1, "image", use_cache=True, **kw)
    recomputed = substituted_generate(adapter, inputs, states, 0, L - 1, "image", use_cache=False, **kw)
    assert torch.equal(cached.tokens, recomputed.tokens)
    torch.testing.assert_close(cached.logits, recomputed.logits, rtol=0, atol=1e-5)
    # the first step is the spliced prefill
    first = substituted_logits(adapter, inputs, states, 0, L - 1, "image")[:, -1]
    torch.testing.assert_close(cached.logits[:, 0], first, rtol=0, atol=1e-5)


def test_hybrid_takes_each_group_from_its_layer(photo, photo2):
    adapter = tiny("tiny:llava")
    inputs = batch(adapter, photo, photo2)
    states = capture_states(adapter, inputs)
    hybrid = hybrid_states(states, inputs, 1, 3, "image")
    image = inputs.image_mask
    assert torch.equal(hybrid[image], states[1][image])
    assert torch.equal(hybrid[~image], states[3][~image])
    control = hybrid_states(states, inputs, 1, 3, "text", exclude_special=True)
    text = inputs.text_mask(exclude_special=True)
    assert torch.equal(control[text], states[1][text])
    assert torch.equal(control[~text], states[3][~text])


def test_bad_arguments_are_refused(photo, photo2):
    adapter = tiny("tiny:llava")
    inputs = batch(adapter, photo, photo2)
    states = capture_prefill_states(adapter, inputs)
    L = adapter.num_layers
    with pytest.raises(ConfigError, match=f"l_a = {L + 1} is beyond"):
        substituted_logits(adapter, inputs, states, L + 1, 0)
    with pytest.raises(ConfigError, match="unknown substitution group"):
        substituted_logits(adapter, inputs, states, 0, 1, "both")
    single = adapter.build_inputs([photo], "Hi")
    with pytest.raises(InputError, match="capture the states from the same inputs"):
        substituted_logits(adapter, single, states, 0, 1)
