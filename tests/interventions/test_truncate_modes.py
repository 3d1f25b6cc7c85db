"""The processing modes (freeze, skip_attn, skip_mlp, no_img2img) on every tiny family: full depth is the plain
model, cache on equals cache off, a padded batch equals its samples alone, and freeze really freezes."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.errors import ConfigError
from visdepth.interventions import MODES, PROCESS_MODES, parse_modes
from visdepth.interventions.hooks import block_output, prefill_kwargs
from visdepth.interventions.truncate import truncate_visual_depth, truncated_generate, truncated_logits
from visdepth.models import tiny_names

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


@pytest.mark.parametrize("name", ["tiny:gemma3", "tiny:qwen2_vl", "tiny:llava"])
def test_freeze_keeps_the_cut_state_exactly(name, photo, photo2):
    """Under freeze, every block >= cut returns the image positions' block-cut input bit for bit, and text moves."""
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    image = inputs.image_mask.bool()
    L, cut = adapter.num_layers, 1
    seen: dict[int, torch.Tensor] = {}
    with torch.no_grad(), truncate_visual_depth(adapter, inputs, cut, "freeze"):
        # registered after the mode's own hooks, so these see what the next block receives
        handles = [
            adapter.layers[j].register_forward_hook(
                lambda _m, _a, out, j=j: seen.__setitem__(j, block_output(out))
            )
            for j in range(L)
        ]
        try:
            adapter.model(**prefill_kwargs(adapter, inputs))
        finally:
            for h in handles:
                h.remove()
    for j in range(cut, L):
        assert torch.equal(seen[j][image], seen[cut - 1][image])
    assert not torch.allclose(seen[L - 1][~image], seen[cut - 1][~image])


def test_modes_parse_and_validate(photo):
    assert parse_modes("drop, freeze,drop") == ["drop", "freeze"]
    assert parse_modes(["skip_mlp"]) == ["skip_mlp"]
    assert set(PROCESS_MODES) < set(MODES) and MODES[:2] == ("mask", "drop")
    with pytest.raises(ConfigError, match="unknown truncation mode 'frieze'"):
        parse_modes("drop,frieze")
    with pytest.raises(ConfigError, match="names no mode"):
        parse_modes(" , ")
