"""The shared-prefix sweep over every cut depth equals per-cut truncation, on every tiny family."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.errors import InputError
from visdepth.interventions.modes import PROCESS_MODES
from visdepth.interventions.sweep import sweep_cut_logits
from visdepth.interventions.truncate import truncated_logits
from visdepth.models import tiny_names

TINY = tiny_names()
PROMPTS = ["What is this?", "Name the animal in the picture please."]


@pytest.mark.parametrize("name", TINY)
def test_sweep_equals_truncation_at_every_cut(name, photo, photo2):
    adapter = tiny(name)
    inputs = adapter.build_inputs([[photo], [photo2]], PROMPTS)
    L = adapter.num_layers
    sweep = sweep_cut_logits(adapter, inputs)
    assert sweep.scores.shape == (L + 1, 2, adapter.lm_head.weight.shape[0])
    for cut in range(L + 1):
        mode = "drop" if cut % 2 else "mask"
        expected = truncated_logits(adapter, inputs, cut, mode, last_only=True)
        torch.testing.assert_close(sweep.scores[cut], expected, rtol=0, atol=1e-5)
    # the groups partition the valid non-image positions; the text after the image is always recomputed
    valid = inputs.attention_mask.bool() & ~inputs.image_mask
    assert torch.equal(sweep.shared | sweep.recomputed, valid)
    assert not (sweep.shared & sweep.recomputed).any()
    assert sweep.recomputed[:, -1].all()


@pytest.mark.parametrize("name", TINY)
def test_processing_mode_sweeps_equal_per_cut_runs(name, photo, photo2):
    """freeze / skip_attn / skip_mlp / no_img2img: the shared-prefix sweep equals one truncated run per cut."""
    adapter = tiny(name)
    inputs = adapter.build_inputs([[photo], [photo2]], PROMPTS)
    L = adapter.num_layers
    for mode in PROCESS_MODES:
        sweep = sweep_cut_logits(adapter, inputs, mode=mode)
        for cut in range(L + 1):
            expected = truncated_logits(adapter, inputs, cut, mode, last_only=True)
            torch.testing.assert_close(sweep.scores[cut], expected, rtol=0, atol=1e-5, msg=f"{mode} {cut}")
        # the image positions are recomputed along with the text that sees them
        assert torch.equal(sweep.shared | sweep.recomputed, inputs.attention_mask.bool())
        assert sweep.recomputed[inputs.image_mask].all()


@pytest.mark.parametrize("name", ["tiny:llava", "tiny:paligemma"])
def test_shared_positions_follow_the_attention_pattern(name, photo):
    adapter = tiny(name)
    inputs = adapter.build_inputs([photo], "What is this?")
    sweep = sweep_cut_logits(adapter, inputs)
    first_image = int(inputs.image_mask[0].nonzero()[0])
    if name == "tiny:llava":  # causal: exactly the text before the image is shared
        assert torch.equal(sweep.shared[0].nonzero().flatten(), torch.arange(first_image))
    else:  # PaliGemma's prefix is bidirectional: every prompt token sees the image
        assert not sweep.shared.any()


def test_selected_tokens_and_log_probs(photo, photo2):
    adapter = tiny("tiny:qwen2_vl")
    inputs = adapter.build_inputs([[photo], [photo2]], PROMPTS)
    full = sweep_cut_logits(adapter, inputs, log_probs=True)
    ids = [5, 17, 42]
    picked = sweep_cut_logits(adapter, inputs, token_ids=ids, log_probs=True)
    assert picked.scores.shape == (adapter.num_layers + 1, 2, 3)
    torch.testing.assert_close(picked.scores, full.scores[..., ids])
    torch.testing.assert_close(full.scores.exp().sum(-1), torch.ones(adapter.num_layers + 1, 2))


def test_prompt_ending_in_an_image_is_refused(photo):
    adapter = tiny("tiny:llava")
    inputs = adapter.build_inputs([photo], "", chat=False)
    with pytest.raises(InputError, match="ends with an image token"):
        sweep_cut_logits(adapter, inputs)
