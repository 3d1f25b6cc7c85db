"""RQ4 recovery pieces on tiny models: one set of weights for student and teacher, truncation under peft equal
to the naive reference, teacher-forced logits equal generation's, losses fall, adapters round-trip exactly,
training resumes to the same steps."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny
from tests.interventions import naive
from visdepth.errors import ConfigError
from visdepth.experiments.recovery import lora
from visdepth.experiments.recovery import train as tr
from visdepth.interventions import prefill_kwargs, truncated_generate
from visdepth.models import tiny_names

TINY = tiny_names()
PROMPTS = ["What is this?", "Name the animal in the picture please."]
SETTINGS = lora.LoraSettings(r=4, alpha=8.0, dropout=0.0, target_modules="all")


def _logits(adapter, inputs):
    with torch.no_grad():
        return adapter.model(**prefill_kwargs(adapter, inputs)).logits.float()


def _perturb(peft_model, seed=1):
    """Non-zero LoRA B (peft starts it at 0), so an adapter that is on changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _batch(adapter, photo, photo2, answers=((5, 6, 7), (8, 9))):
    inputs = adapter.build_inputs([[photo], [photo2]], PROMPTS)
    return inputs, *tr.teacher_forced(adapter, inputs, [list(a) for a in answers])


def test_targets_are_the_decoder_linears_only():
    adapter = tiny("tiny:llava")
    targets = lora.resolve_targets(adapter, "all")
    layer_names = {n for n, m in adapter.model.named_modules() if m in set(adapter.layers)}
    assert targets and all(any(t.startswith(p + ".") for p in layer_names) for t in targets)
    assert not [t for t in targets if "vision" in t or "projector" in t or "lm_head" in t]
    qv = lora.resolve_targets(adapter, "q_proj,v_proj")
    assert qv and all(t.endswith(("q_proj", "v_proj")) for t in qv)
    assert len(qv) == 2 * adapter.num_layers


def test_teacher_is_the_unmodified_model_exactly(photo, photo2):
    adapter = tiny("tiny:llava")
    inputs = adapter.build_inputs([[photo], [photo2]], PROMPTS)
    before = _logits(adapter, inputs)
    params = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    flags = {n: p.requires_grad for n, p in adapter.model.named_parameters()}
    with lora.attached(adapter, lora.lora_config(adapter, SETTINGS)) as peft_model:
        _perturb(peft_model)
        assert not torch.equal(_logits(adapter, inputs), before)  # the student differs
        with peft_model.disable_adapter():
            assert torch.equal(_logits(adapter, inputs), before)  # the teacher is the model
    assert torch.equal(_logits(adapter, inputs), before)
    after = dict(adapter.model.named_parameters())
    assert set(after) == set(params) and all(torch.equal(after[n], params[n]) for n in params)
    assert {n: p.requires_grad for n, p in after.items()} == flags
    assert not any("lora" in type(m).__module__ for m in adapter.model.modules())


@pytest.mark.parametrize("name", TINY)
def test_family_truncation_holds_under_peft_and_training_sees_generation(name, photo, photo2):
    """On every family: the student's teacher-forced logits (drop mode, LoRA on) equal the naive layer loop's on
    the same LoRA-carrying blocks, and the full model's teacher-forced logits equal generate's own."""
    adapter = tiny(name)
    prompt_inputs = adapter.build_inputs([[photo], [photo2]], PROMPTS)
    gen = truncated_generate(adapter, prompt_inputs, adapter.num_layers, max_new_tokens=3, output_logits=True)
    answers = [t.tolist() for t in gen.tokens]
    inputs, target = tr.teacher_forced(adapter, prompt_inputs, answers)
    full = tr.answer_logits(adapter, inputs, target, adapter.num_layers).detach()
    step_logits = torch.cat([gen.logits[b] for b in range(len(answers))])
    torch.testing.assert_close(full, step_logits, atol=2e-4, rtol=1e-4)
    cut = adapter.num_layers // 2
    with lora.attached(adapter, lora.lora_config(adapter, SETTINGS)) as peft_model:
        _perturb(peft_model)
        student = tr.answer_logits(adapter, inputs, target, cut).detach()
        T = prompt_inputs.input_ids.shape[1]
        ref = naive.forward(adapter, inputs.tensors, prompt_len=T, cut=cut, mode="drop").logits
        rows, pos, _ = target
        torch.testing.assert_close(student, ref[rows, pos], atol=2e-4, rtol=1e-4)
        assert not torch.allclose(student, full, atol=1e-3)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("loss", ["seq", "kl"])
def test_family_loss_falls_and_adapter_round_trips(name, loss, photo, photo2, tmp_path):
    if loss == "kl" and name != "tiny:llava":
        pytest.skip("the KL loss is family-independent; one family suffices")
    adapter = tiny(name)
    inputs, ext, target = _batch(adapter, photo, photo2)
    cut = adapter.num_layers // 2
    config = lora.lora_config(adapter, SETTINGS)
    with lora.attached(adapter, config, seed=0) as peft_model:
        lr = 1e-1 if loss == "seq" else 5e-3
        opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
        losses = []
        for _ in range(12):
            value = tr.distillation_loss(adapter, peft_model, ext, target, cut, loss, 2.0)
            opt.zero_grad()
            value.backward()
            opt.step()
            losses.append(value.item())
        # random tiny heads bound the logits (CE cannot go far below log V): a clear fall is what can be asked
        assert losses[-1] < (losses[0] - 0.25 if loss == "seq" else 0.8 * losses[0]), losses
        student = tr.answer_logits(adapter, ext, target, cut).detach()
        lora.save_adapter(peft_model, tmp_path / "cut", {"cut": cut, "num_layers": adapter.num_layers})
    peft_config, weights, meta = lora.load_adapter(tmp_path / "cut", adapter)
    assert meta["cut"] == cut
    with lora.attached(adapter, peft_config, weights, seed=123):
        again = tr.answer_logits(adapter, ext, target, cut).detach()
    assert torch.equal(again, student)


def test_training_resumes_to_the_same_steps(photo, photo2, tmp_path):
    adapter = tiny("tiny:llava")
    from visdepth.data import Sample

    refs = ["skimage:astronaut", "skimage:chelsea"] * 2
    samples = [
        Sample(id=f"s{i}", prompt=p, images=[im])
        for i, (p, im) in enumerate(zip(PROMPTS * 2, refs, strict=True))
    ]
    examples = [tr.Example("t", s, s.prompt, [5 + i, 6, 2], "") for i, s in enumerate(samples)]
    config = lora.lora_config(adapter, lora.LoraSettings(4, 8.0, 0.1, "all"))
    settings = tr.TrainSettings("seq", 1e-2, 6, 2, 0, 1.0, 2, True)

    def run(folder, steps):
        s = tr.TrainSettings(
            *[steps if f == "steps" else getattr(settings, f) for f in settings.__dataclass_fields__]
        )
        with lora.attached(adapter, config, seed=0) as peft_model:
            state = tr.train(adapter, peft_model, examples, 2, s, folder, "fp", progress=False)
            return state, lora.adapter_state(peft_model)

    whole, w_whole = run(tmp_path / "a", 6)
    part, _ = run(tmp_path / "b", 4)
    assert part.step == 4
    resumed, w_resumed = run(tmp_path / "b", 6)
    assert resumed.resumed_from == 4 and resumed.losses == whole.losses
    assert all(torch.equal(w_whole[k], w_resumed[k]) for k in w_whole)
    with (
        pytest.raises(ConfigError, match="other settings"),
        lora.attached(adapter, config, seed=0) as peft_model,
    ):
        tr.train(adapter, peft_model, examples, 2, settings, tmp_path / "b", "other", progress=False)


def _edited(src, dst, edit):
    """A copy of the adapter folder ``src`` whose weights went through ``edit``."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    path = dst / lora.ADAPTER_WEIGHTS
    save_file(edit(load_file(str(path))), str(path))
    return dst


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (
            lambda w: {k: torch.zeros(3, 3) if i == 0 else v for i, (k, v) in enumerate(w.items())},
            "size mismatch",
        ),
        (
            lambda w: {k.replace("layers.0.", "layers.9."): v for k, v in w.items()},
            "which this model has not",
        ),
        (lambda w: {}, "no LoRA weight"),
    ],
)
def test_adapter_that_does_not_fit_is_refused(tmp_path, edit, why):
    from visdepth.errors import InputError

    adapter = tiny("tiny:llava")
    with lora.attached(adapter, lora.lora_config(adapter, SETTINGS)) as peft_model:
        lora.save_adapter(peft_model, tmp_path / "a", {"cut": 1, "num_layers": adapter.num_layers})
    bad = _edited(tmp_path / "a", tmp_path / "b", edit)
    with pytest.raises(InputError, match=why):
        peft_config, weights, _ = lora.load_adapter(bad, adapter)
        with lora.attached(adapter, peft_config, weights):
            pass
    assert not any("lora" in type(m).__module__ for m in adapter.model.modules())
