"""Layer substitution (RQ2) on every tiny family: l_a = l_b is exactly the identity, l_a != l_b is not; the
size-matched text control is a seeded, batch-independent subset of the text group without the last token."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from visdepth.errors import ConfigError, InputError
from visdepth.interventions.capture import capture_states
from visdepth.interventions.hooks import greedy_generate, prefill_kwargs
from visdepth.interventions.substitute import (
    GROUP_NAMES,
    SPLICE_SCOPE,
    capture_prefill_states,
    group_mask,
    hybrid_states,
    last_prompt_position,
    matched_text_mask,
    sample_seed,
    substituted_generate,
    substituted_logits,
)
from visdepth.models import tiny_names
from visdepth.models.base import ModelInputs

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
        for group in GROUP_NAMES:
            out = substituted_logits(adapter, inputs, states, layer, layer, group, seeds=[3, 4])
            torch.testing.assert_close(out[valid], reference[valid], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["tiny:llava", "tiny:qwen2_vl", "tiny:gemma3", "tiny:paligemma"])
def test_same_layer_generation_is_the_identity(name, photo, photo2):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    states = capture_prefill_states(adapter, inputs)
    plain = greedy_generate(adapter, inputs, 10, output_logits=True)
    for group in ("image", "text_matched"):
        spliced = substituted_generate(adapter, inputs, states, 2, 2, group, 10, output_logits=True, seeds=7)
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
    for group in GROUP_NAMES:
        out = substituted_logits(
            adapter, inputs, states, 0, L // 2, group, exclude_special=True, seeds=[1, 2]
        )
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
    matched = matched_text_mask(inputs, exclude_special=True, seeds=[5, 6])
    assert matched.any()
    spliced = hybrid_states(states, inputs, 1, 3, "text_matched", exclude_special=True, seeds=[5, 6])
    assert torch.equal(spliced[matched], states[1][matched])
    assert torch.equal(spliced[~matched], states[3][~matched])


def _eligible(inputs, exclude_special):
    """The text positions minus each row's last non-pad one, computed independently of the code under test."""
    eligible = inputs.text_mask(exclude_special=exclude_special).clone()
    for row, valid in enumerate(inputs.attention_mask.bool()):
        eligible[row, int(valid.nonzero().max())] = False
    return eligible


@pytest.mark.parametrize("name", ["tiny:llava", "tiny:qwen2_vl", "tiny:idefics3", "tiny:paligemma"])
@pytest.mark.parametrize("exclude_special", [True, False])
def test_matched_text_mask_is_a_size_matched_subset_without_the_last_token(
    name, exclude_special, photo, photo2
):
    adapter = tiny(name)
    inputs = batch(adapter, photo, photo2)
    assert not inputs.attention_mask.bool().all()  # unequal prompts: one row is padded
    text = inputs.text_mask(exclude_special=exclude_special)
    eligible = _eligible(inputs, exclude_special)
    seeds = [sample_seed(0, "a"), sample_seed(0, "b")]
    mask = matched_text_mask(inputs, exclude_special, seeds)
    assert mask.dtype == torch.bool and mask.shape == text.shape
    images = inputs.image_mask.sum(dim=1)
    assert torch.equal(mask.sum(dim=1), torch.minimum(images, eligible.sum(dim=1)))
    assert not (mask & ~text).any()  # a subset of the text group
    assert not (mask & ~eligible).any()
    assert not mask[:, -1].any()  # left padding: the last prompt position is index -1
    assert torch.equal(group_mask(inputs, "text_matched", exclude_special, seeds), mask)
    # deterministic for the same seeds, another draw for another seed
    assert torch.equal(matched_text_mask(inputs, exclude_special, list(seeds)), mask)
    other = matched_text_mask(inputs, exclude_special, [seeds[0] + 1, seeds[1] + 1])
    choice = (
        eligible.sum(dim=1) > images
    )  # rows with a real choice (paligemma's short row takes all its text)
    assert choice.any()
    for row in range(2):
        assert torch.equal(other[row], mask[row]) != bool(choice[row])
    # the same sample in another batch (alone, or in another row) draws the same positions
    for row, (image, prompt) in enumerate(zip((photo, photo2), PROMPTS, strict=True)):
        single = adapter.build_inputs([[image]], [prompt])
        alone = matched_text_mask(single, exclude_special, [seeds[row]])[0]
        assert torch.equal(
            mask[row][inputs.attention_mask[row].bool()], alone[single.attention_mask[0].bool()]
        )
    swapped = adapter.build_inputs([[photo2], [photo]], PROMPTS[::-1])
    reversed_mask = matched_text_mask(swapped, exclude_special, seeds[::-1])
    for row in (0, 1):
        mine = mask[row][inputs.attention_mask[row].bool()]
        theirs = reversed_mask[1 - row][swapped.attention_mask[1 - row].bool()]
        assert torch.equal(mine, theirs)


def _synthetic(attention: list[list[int]], image: list[list[int]], special: list[list[int]]) -> ModelInputs:
    attention_mask = torch.tensor(attention)
    return ModelInputs(
        {"input_ids": torch.zeros_like(attention_mask), "attention_mask": attention_mask},
        torch.tensor(image, dtype=torch.bool),
        torch.tensor(special, dtype=torch.bool),
    )


def test_matched_text_mask_edge_cases():
    # row 0: 4 image tokens, only 2 eligible text positions (positions 4, 5; 6 is last) -> all of them
    # row 1: right padding; the last prompt position is 4, not -1
    inputs = _synthetic(
        attention=[[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]],
        image=[[1, 1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]],
        special=[[0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0]],
    )
    assert last_prompt_position(inputs).tolist() == [6, 4]
    mask = matched_text_mask(inputs, exclude_special=True, seeds=11)
    assert mask[0].tolist() == [False] * 4 + [True, True, False]
    assert mask.sum(dim=1).tolist() == [2, 1]
    assert not mask[1, 4] and not mask[1, 1] and mask[1, 2:4].any()  # neither last, special nor padding
    with_special = matched_text_mask(inputs, exclude_special=False, seeds=11)
    assert with_special.sum(dim=1).tolist() == [2, 1] and not with_special[1, 4]
    # the draw is uniform over the eligible positions: every one of them is picked by some seed
    picked = torch.stack([matched_text_mask(inputs, True, seed)[1] for seed in range(40)])
    assert picked[:, 2].any() and picked[:, 3].any()
    with pytest.raises(InputError, match="one seed per sample"):
        matched_text_mask(inputs, True, [1, 2, 3])


def test_sample_seed_is_stable():
    assert sample_seed(0, "cat") == sample_seed(0, "cat")  # hashlib: the same in every process
    assert sample_seed(0, "cat") == 517545945338535404  # pinned: a change would move every subset
    assert len({sample_seed(0, "cat"), sample_seed(1, "cat"), sample_seed(0, "dog")}) == 3
    assert 0 <= sample_seed(123, "x" * 100) < 2**63


def test_bad_arguments_are_refused(photo, photo2):
    adapter = tiny("tiny:llava")
    inputs = batch(adapter, photo, photo2)
    states = capture_prefill_states(adapter, inputs)
    L = adapter.num_layers
    with pytest.raises(ConfigError, match=f"l_a = {L + 1} is beyond"):
        substituted_logits(adapter, inputs, states, L + 1, 0)
    with pytest.raises(ConfigError, match="unknown substitution group 'both'.*'text_matched'"):
        substituted_logits(adapter, inputs, states, 0, 1, "both")
    single = adapter.build_inputs([photo], "Hi")
    with pytest.raises(InputError, match="capture the states from the same inputs"):
        substituted_logits(adapter, single, states, 0, 1)
