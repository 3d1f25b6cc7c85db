"""Every registered family, through its tiny random instance: inputs, image mask, a real forward, capture, weights,
and a saved checkpoint loaded back by path."""

from __future__ import annotations

import json

import pytest
import torch

import visdepth
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
    inputs = adapter.build_inputs(
        [[photo, photo2], [photo]], ["Compare the two.", "Describe it briefly please."]
    )
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


@pytest.mark.parametrize("name", TINY)
def test_no_weight_matrix_is_all_zeros(name):
    """transformers zero-initialises some weights that a checkpoint always overwrites (Gemma 3's multimodal
    projection, InternVL's position embeddings); a tiny model and the random-init twin of any model draw them, or
    their images would carry nothing (Gemma 3) or no patch positions (InternVL).

    Only tensors of two or more dimensions are checked: zero biases are the usual init, and so are zero norm
    weights in Gemma, whose norms scale by ``1 + weight``.
    """
    adapter = tiny(name)
    twin = adapter.random_twin(seed=5)
    for model in (adapter.model, twin.model):
        zeros = [
            key
            for key, param in model.named_parameters()
            if param.dim() >= 2 and not bool(param.detach().ne(0).any())
        ]
        assert zeros == []
    assert not torch.equal(next(adapter.model.parameters()), next(twin.model.parameters()))


# ---------------------------------------------------------------------------------------------------------- loading
# How each family's checkpoint folder is written: "processor" saves the processor with save_pretrained (a processor
# whose video part is absent cannot be saved that way); "hub" lays the parts out as released checkpoints do:
# tokenizer, image processor, chat template, and a processor_config.json naming the class and its token count;
# "hub-bare" is the same without processor_config.json, as in the Qwen2-VL releases.
CHECKPOINT_LAYOUTS = {
    "tiny:gemma3": "processor",
    "tiny:paligemma": "processor",
    "tiny:llava": "processor",
    "tiny:idefics3": "hub",
    "tiny:smolvlm": "hub",
    "tiny:internvl": "hub",
    "tiny:qwen2_vl": "hub-bare",
    "tiny:qwen2_5_vl": "hub-bare",
}
# what a missing torchvision looks like to the loader: AutoProcessor raises, and the processor is rebuilt
NO_TORCHVISION = "this processor needs torchvision"


def _write_checkpoint(adapter, folder, layout: str) -> None:
    adapter.model.save_pretrained(folder)
    processor = adapter.processor
    if layout == "processor":
        processor.save_pretrained(folder)
        return
    adapter.tokenizer.save_pretrained(folder)
    processor.image_processor.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(processor.chat_template)
    if layout == "hub":
        settings = {
            key: getattr(processor, key)
            for key in ("image_seq_len", "image_seq_length")
            if hasattr(processor, key)
        }
        (folder / "processor_config.json").write_text(
            json.dumps({"processor_class": type(processor).__name__, **settings})
        )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The folder of a tiny model's checkpoint, written once per module (loading never changes it)."""
    folders = {}

    def folder(name: str):
        if name not in folders:
            path = tmp_path_factory.mktemp(name.replace(":", "-"))
            _write_checkpoint(tiny(name), path, CHECKPOINT_LAYOUTS[name])
            folders[name] = path
        return folders[name]

    return folder


@pytest.mark.parametrize("autoprocessor", ["as is", "fails", "standard"])
@pytest.mark.parametrize("name", list(CHECKPOINT_LAYOUTS))
def test_saved_checkpoint_round_trip(name, autoprocessor, checkpoint, monkeypatch, photo):
    """A saved tiny model loads back by path and gives the same inputs and logits, whichever way its processor came.

    ``as is``: AutoProcessor as installed (without torchvision it fails for processors with a video part, and the
    fallback rebuilds them). ``fails``: AutoProcessor always raises, so the processor can only come from the
    fallback, or the error stands where the family has none. ``standard``: AutoProcessor succeeds, and the
    processor it gives is the one the adapter keeps, the fallback never running.
    """
    import transformers

    from visdepth.models.base import has_torchvision

    reference = tiny(name)
    folder = checkpoint(name)
    if autoprocessor == "fails":

        def fail(*_args, **_kwargs):
            raise ImportError(NO_TORCHVISION)

        monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", fail)
        cls = type(reference)
        no_fallback = reference.config.model_type not in cls.processor_classes or (
            not cls.rebuild_with_torchvision and has_torchvision()
        )
        if no_fallback:
            with pytest.raises(ImportError, match=NO_TORCHVISION):
                visdepth.load(str(folder), device="cpu")
            return
    elif autoprocessor == "standard":

        def forbidden(*_args, **_kwargs):  # pragma: no cover - only reached if the fallback runs
            raise AssertionError("the fallback ran although AutoProcessor worked")

        monkeypatch.setattr(
            transformers.AutoProcessor, "from_pretrained", lambda *args, **kwargs: reference.processor
        )
        monkeypatch.setattr(transformers.AutoImageProcessor, "from_pretrained", forbidden)
        monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", forbidden)
    loaded = visdepth.load(str(folder), device="cpu")
    assert type(loaded) is type(reference)
    assert type(loaded.processor) is type(reference.processor)
    if autoprocessor == "standard":
        assert loaded.processor is reference.processor
    elif hasattr(reference.processor, "video_processor") and not has_torchvision():
        assert loaded.processor.video_processor is None  # rebuilt without its video part
    # the saved settings survive: token counts and the chat template
    for key in ("image_seq_length", "image_seq_len", "chat_template"):
        if hasattr(reference.processor, key):
            assert getattr(loaded.processor, key) == getattr(reference.processor, key), key
    a = reference.build_inputs([photo], "What is it?")
    b = loaded.build_inputs([photo], "What is it?")
    assert a.tensors.keys() == b.tensors.keys()
    for key, value in a.tensors.items():
        assert torch.equal(value, b.tensors[key]), key
    assert torch.equal(a.image_mask, b.image_mask) and torch.equal(a.special_mask, b.special_mask)
    with torch.no_grad():
        torch.testing.assert_close(
            reference.model(**reference.model_kwargs(a)).logits, loaded.model(**loaded.model_kwargs(b)).logits
        )
