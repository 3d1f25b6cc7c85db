"""A model sharded by an accelerate device map (part of its decoder offloaded to disk, so accelerate's hooks load
those blocks' weights on the fly) gives what the same model unsharded gives, for every intervention: capture,
truncation (mask, drop, cached generation, the all-cuts sweep) and substitution. A map holding one device (where
transformers installs no hook) works as well."""

from __future__ import annotations

import pytest
import torch

import visdepth
from tests.conftest import tiny
from visdepth.errors import ConfigError
from visdepth.interventions.capture import capture_states
from visdepth.interventions.substitute import capture_prefill_states, substituted_generate, substituted_logits
from visdepth.interventions.sweep import sweep_cut_logits
from visdepth.interventions.truncate import MODES, truncated_generate, truncated_logits

NAMES = ["tiny:llava", "tiny:qwen2_5_vl"]
PROMPTS = ["What is this?", "Name the animal in the picture please."]
ATOL = 1e-5


def _offloading_map(adapter) -> dict[str, str]:
    """Vision side, embeddings, the first half of the blocks, norm and head in memory; the rest on disk."""
    lm = "model.language_model"
    L = adapter.num_layers
    others = [n for n, _ in adapter.model.model.named_children() if n != "language_model"]
    device_map = {f"model.{n}": "cpu" for n in others}
    device_map.update(
        {f"{lm}.embed_tokens": "cpu", f"{lm}.rotary_emb": "cpu", f"{lm}.norm": "cpu", "lm_head": "cpu"}
    )
    device_map.update({f"{lm}.layers.{j}": "cpu" if j < L // 2 else "disk" for j in range(L)})
    return device_map


@pytest.fixture(scope="module", params=NAMES)
def pair(request, tmp_path_factory):
    """(plain adapter, the same checkpoint loaded with half its decoder on disk)."""
    plain = tiny(request.param)
    folder = tmp_path_factory.mktemp("checkpoint")
    plain.model.save_pretrained(folder)
    if request.param == "tiny:llava":
        plain.processor.save_pretrained(folder)
    else:  # Qwen's processor cannot be saved without its video part: lay the parts out as the releases do
        plain.tokenizer.save_pretrained(folder)
        plain.processor.image_processor.save_pretrained(folder)
        (folder / "chat_template.jinja").write_text(plain.processor.chat_template)
    sharded = visdepth.load(
        str(folder), device="cpu", device_map=_offloading_map(plain), offload_folder=str(folder / "offload")
    )
    return plain, sharded


def _inputs(adapter, photo, photo2):
    return adapter.build_inputs([[photo], [photo2]], PROMPTS)


def test_the_map_offloads_blocks_and_the_adapter_sees_where_inputs_go(pair):
    plain, sharded = pair
    assert set(sharded.device_map.values()) == {"cpu", "disk"}
    assert any(p.device.type == "meta" for p in sharded.layers[-1].parameters())  # on disk, loaded per call
    assert sharded.device == torch.device("cpu") and sharded.dtype == plain.dtype
    assert sharded.describe()["device_map"] == {
        "cpu": len(sharded.device_map) - sharded.num_layers // 2,
        "disk": sharded.num_layers // 2,
    }


def test_capture_equals_the_unsharded_model(pair, photo, photo2):
    plain, sharded = pair
    a, b = (capture_states(m, _inputs(m, photo, photo2)) for m in pair)
    torch.testing.assert_close(b, a, rtol=0, atol=ATOL)
    a, b = (capture_prefill_states(m, _inputs(m, photo, photo2)) for m in pair)
    torch.testing.assert_close(b, a, rtol=0, atol=ATOL)


@pytest.mark.parametrize("mode", MODES)
def test_truncation_equals_the_unsharded_model(pair, mode, photo, photo2):
    plain, sharded = pair
    inputs = _inputs(plain, photo, photo2)
    keep = inputs.attention_mask.bool() & ~inputs.image_mask
    for cut in (0, plain.num_layers // 2 + 1):  # a cut inside the offloaded blocks and one below them
        a, b = (truncated_logits(m, inputs, cut, mode) for m in pair)
        torch.testing.assert_close(b[keep], a[keep], rtol=0, atol=ATOL)
    a, b = (
        truncated_generate(m, inputs, plain.num_layers - 1, mode, max_new_tokens=4, output_logits=True)
        for m in pair
    )
    assert torch.equal(b.tokens, a.tokens)
    torch.testing.assert_close(b.logits, a.logits, rtol=0, atol=ATOL)


def test_the_cut_sweep_equals_the_unsharded_model(pair, photo, photo2):
    a, b = (sweep_cut_logits(m, _inputs(m, photo, photo2)).scores for m in pair)
    torch.testing.assert_close(b, a, rtol=0, atol=ATOL)


def test_substitution_equals_the_unsharded_model(pair, photo, photo2):
    plain, _ = pair
    inputs = _inputs(plain, photo, photo2)
    states = capture_prefill_states(plain, inputs)
    l_a, l_b = 1, plain.num_layers - 1  # the splice lands in an offloaded block
    a, b = (substituted_logits(m, inputs, states, l_a, l_b) for m in pair)
    torch.testing.assert_close(b, a, rtol=0, atol=ATOL)
    a, b = (substituted_generate(m, inputs, states, l_a, l_b, max_new_tokens=4) for m in pair)
    assert torch.equal(b.tokens, a.tokens)


def test_a_map_of_one_device_has_no_hooks_and_still_works(pair, photo, photo2, tmp_path):
    plain, sharded = pair
    folder = sharded.model.name_or_path
    single = visdepth.load(folder, device="cpu", device_map={"": "cpu"})
    assert not any(hasattr(m, "_hf_hook") for m in single.model.modules())
    inputs = _inputs(plain, photo, photo2)
    a, b = (truncated_logits(m, inputs, 1, "drop", last_only=True) for m in (plain, single))
    torch.testing.assert_close(b, a, rtol=0, atol=ATOL)


def test_a_per_gpu_memory_limit_without_a_gpu_is_one_line(pair):
    from visdepth.models import sharding_args

    with pytest.raises(ConfigError, match="max_memory=2GiB is a size per GPU but this machine has none"):
        sharding_args({"device_map": "auto", "max_memory": "2GiB"}, torch.device("cpu"), None)
    with pytest.raises(ConfigError, match="device_map='everywhere' is not one accelerate knows"):
        sharding_args({"device_map": "everywhere"}, torch.device("cpu"), None)
    args = sharding_args(
        {"device_map": "auto", "max_memory": {"0": "1GiB", "cpu": "2GiB"}}, torch.device("cpu"), torch.float32
    )
    assert args["max_memory"] == {0: "1GiB", "cpu": "2GiB"} and args["dtype"] == torch.float32
