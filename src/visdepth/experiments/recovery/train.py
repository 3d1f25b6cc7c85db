"""Self-distillation of the full model into the truncated one: teacher outputs, teacher-forced batches, the two
losses, and a deterministic training loop that checkpoints and resumes.

Sequence-level (``seq``, Kim & Rush 2016): the teacher (the full model, adapters off) greedily answers every
training prompt once; the student (the model truncated at ``l_c`` in drop mode, adapters on) is trained with
cross-entropy on those answer tokens only (prompt and image positions carry no loss). Token-level (``kl``): on the
same teacher-forced sequences, KL(teacher || student) of the next-token distributions at the answer positions,
both softened by a temperature ``tau`` and scaled by ``tau^2`` (Hinton et al. 2015). TRL's distillation
trainers are not used: they pass no image inputs to the model, so they cannot train a VLM as they are.

Student and teacher see exactly what generation sees: prompt inputs built by the adapter (left padded), the
teacher's answer appended on the right, positions from the model's own rule (:func:`prefill_kwargs`), the image
positions dropped at ``l_c`` by :func:`truncate_visual_depth`.

Checkpoints (every ``save_every`` steps and at the end) hold the adapter (peft, safetensors), AdamW's state
(safetensors tensors + JSON for its hyper-parameters), torch's RNG state (safetensors) and the step and loss curve
(JSON): no pickle. The batch order is a pure function of (seed, cut, epoch), so a resumed run takes the same
batches and, with the restored RNG and optimizer, the same steps as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.experiments.recovery import lora
from visdepth.interventions import greedy_generate, prefill_kwargs, truncate_visual_depth
from visdepth.models import VLMAdapter
from visdepth.models.base import ModelInputs
from visdepth.results.io import write_json
from visdepth.tasks import Task

LOSSES = ("seq", "kl")
#: type id of the answer positions where it is not 0 (text): PaliGemma's prefix LM marks the causal suffix with 1,
#: which is what generated tokens are (its prompt, type 0, is attended bidirectionally and must not see them)
ANSWER_TYPE_ID = {("paligemma", "token_type_ids"): 1}


@dataclass
class Example:
    """One training prompt with the teacher's greedy answer (token ids, up to and with its first EOS)."""

    task: str
    sample: Sample
    prompt: str
    tokens: list[int]
    text: str


@dataclass(frozen=True)
class TrainSettings:
    loss: str
    lr: float
    steps: int
    batch_size: int
    seed: int
    temperature: float
    save_every: int
    chat: bool


@dataclass
class TrainState:
    step: int = 0
    losses: list[float] = field(default_factory=list)
    resumed_from: int | None = None


# ---------------------------------------------------------------------------------------------- teacher
def eos_ids(adapter: VLMAdapter) -> set[int]:
    eos = getattr(adapter.model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = getattr(adapter.tokenizer, "eos_token_id", None)
    return set(eos if isinstance(eos, list) else [] if eos is None else [eos])


def answer_tokens(tokens: Sequence[int], eos: set[int]) -> list[int]:
    """Generated ids up to and with the first EOS (what follows is generate's padding)."""
    out = []
    for t in tokens:
        out.append(int(t))
        if int(t) in eos:
            break
    return out


def teacher_examples(
    adapter: VLMAdapter,
    tasks: dict[str, Task],
    samples: dict[str, list[Sample]],
    *,
    chat: bool,
    batch_size: int,
    progress: bool = True,
) -> list[Example]:
    """The full model's greedy answer to every training prompt (batched by task and kind)."""
    eos = eos_ids(adapter)
    out: list[Example] = []
    total = sum(len(v) for v in samples.values())
    with tqdm(total=total, desc="teacher outputs", disable=not progress, unit="sample") as bar:
        for name, task in tasks.items():
            for kind, group in task.group(samples[name]).items():
                for start in range(0, len(group), batch_size):
                    batch = group[start : start + batch_size]
                    prompts = [task.prompt(s) for s in batch]
                    inputs = adapter.build_inputs([s.load_images() for s in batch], prompts, chat=chat)
                    gen = greedy_generate(adapter, inputs, task.max_new_tokens_for(kind))
                    for s, p, toks, text in zip(batch, prompts, gen.tokens.tolist(), gen.text, strict=True):
                        ids = answer_tokens(toks, eos)
                        out.append(Example(name, s, p, ids or [next(iter(eos), 0)], text.strip()))
                    bar.update(len(batch))
    return out


def examples_to_json(examples: list[Example]) -> list[dict[str, Any]]:
    return [{"task": e.task, "sample": e.sample.id, "tokens": e.tokens, "text": e.text} for e in examples]


def examples_from_json(rows: list[dict[str, Any]], samples: dict[str, list[Sample]], tasks: dict[str, Task]):
    by_id = {(name, s.id): s for name, group in samples.items() for s in group}
    out = []
    for r in rows:
        s = by_id.get((r["task"], r["sample"]))
        if s is None:
            return None  # another training set: regenerate
        out.append(Example(r["task"], s, tasks[r["task"]].prompt(s), list(r["tokens"]), r["text"]))
    return out if len(out) == len(by_id) else None


# ---------------------------------------------------------------------------------------------- batches
def teacher_forced(adapter: VLMAdapter, inputs: ModelInputs, answers: Sequence[Sequence[int]]):
    """Prompt inputs with each answer appended on the right (padding after it), and the (row, position, token)
    triples of the answer: the logits at ``position`` predict ``token``.

    Every per-position integer tensor of the inputs (ids, attention mask, Qwen's ``mm_token_type_ids``...) is
    extended; answer positions are text (0) in type ids, or the suffix of a prefix LM (:data:`ANSWER_TYPE_ID`)."""
    ids = inputs.input_ids
    B, T = ids.shape
    A = max(len(a) for a in answers)
    pad = getattr(adapter.tokenizer, "pad_token_id", None) or 0
    new_ids = torch.full((B, A), pad, dtype=ids.dtype)
    new_mask = torch.zeros((B, A), dtype=inputs.attention_mask.dtype)
    rows, positions, tokens = [], [], []
    for b, ans in enumerate(answers):
        new_ids[b, : len(ans)] = torch.tensor(ans, dtype=ids.dtype)
        new_mask[b, : len(ans)] = 1
        rows += [b] * len(ans)
        positions += list(range(T - 1, T - 1 + len(ans)))
        tokens += list(ans)
    tensors = {}
    for key, value in inputs.tensors.items():
        if key == "input_ids":
            value = torch.cat([value, new_ids.to(value.device)], dim=1)
        elif key == "attention_mask":
            value = torch.cat([value, new_mask.to(value.device)], dim=1)
        elif torch.is_tensor(value) and not value.is_floating_point() and value.shape[:2] == (B, T):
            fill = ANSWER_TYPE_ID.get((adapter.config.model_type, key), 0)
            value = torch.cat([value, value.new_full((B, A, *value.shape[2:]), fill)], dim=1)
        tensors[key] = value
    zeros = torch.zeros((B, A), dtype=torch.bool, device=inputs.image_mask.device)
    extended = ModelInputs(
        tensors,
        torch.cat([inputs.image_mask, zeros], dim=1),
        torch.cat([inputs.special_mask, zeros], dim=1),
        inputs.prompts,
    )
    target = (torch.tensor(rows), torch.tensor(positions), torch.tensor(tokens))
    return extended, target


def answer_logits(adapter: VLMAdapter, inputs: ModelInputs, target, cut: int) -> torch.Tensor:
    """(answer tokens, vocab) float32 logits of the model with visual depth ``cut`` (drop mode) at the answer
    positions; gradients flow when enabled."""
    rows, positions, _ = target
    with truncate_visual_depth(adapter, inputs, cut, "drop"):
        logits = adapter.model(**prefill_kwargs(adapter, inputs, use_cache=False)).logits
    return logits[rows.to(logits.device), positions.to(logits.device)].float()


def distillation_loss(
    adapter: VLMAdapter, peft_model: Any, inputs: ModelInputs, target, cut: int, loss: str, temperature: float
) -> torch.Tensor:
    """The student's loss on one teacher-forced batch (mean over answer tokens)."""
    student = answer_logits(adapter, inputs, target, cut)
    if loss == "seq":
        return F.cross_entropy(student, target[2].to(student.device))
    if loss != "kl":
        raise ConfigError(f"--loss {loss!r} is unknown; use {' or '.join(LOSSES)}.")
    with torch.no_grad(), peft_model.disable_adapter():
        teacher = answer_logits(adapter, inputs, target, adapter.num_layers)
    t = temperature
    kl = F.kl_div(
        F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True, reduction="none"
    )
    return kl.sum(-1).mean() * t * t


def batch_order(n: int, batch_size: int, seed: int, cut: int, step: int) -> list[int]:
    """Indices of the examples of training step ``step``: epochs are seeded permutations of (seed, cut, epoch)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, cut, epoch]).permutation(n)
    return perm[k * batch_size : (k + 1) * batch_size].tolist()


# ---------------------------------------------------------------------------------------------- checkpoints
def save_checkpoint(
    folder: Path, peft_model: Any, optimizer: torch.optim.Optimizer, state: TrainState, fp: str
):
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    peft_model.save_pretrained(str(tmp), safe_serialization=True)
    opt = optimizer.state_dict()
    tensors = {
        f"{index}.{key}": value.detach().clone().contiguous()
        for index, entries in opt["state"].items()
        for key, value in entries.items()
        if torch.is_tensor(value)
    }
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    save_file({"torch_cpu": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
    write_json(
        tmp / "state.json",
        {"step": state.step, "losses": state.losses, "fingerprint": fp, "param_groups": opt["param_groups"]},
    )
    lora.replace_folder(tmp, folder)


def load_checkpoint(
    folder: Path, peft_model: Any, optimizer: torch.optim.Optimizer, fp: str
) -> TrainState | None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = lora.existing(folder)
    if path is None or not (path / "state.json").is_file():
        return None
    meta = json.loads((path / "state.json").read_text())
    if meta["fingerprint"] != fp:
        raise ConfigError(
            f"{path} holds a training checkpoint of other settings; pass another --output_path or delete it."
        )
    set_peft_model_state_dict(peft_model, load_file(str(path / lora.ADAPTER_WEIGHTS)))
    flat = load_file(str(path / "optimizer.safetensors"))
    entries: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        index, name = key.split(".", 1)
        entries.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": entries, "param_groups": meta["param_groups"]})
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch_cpu"])
    return TrainState(step=meta["step"], losses=list(meta["losses"]), resumed_from=meta["step"])


# ---------------------------------------------------------------------------------------------- training
def train(
    adapter: VLMAdapter,
    peft_model: Any,
    examples: list[Example],
    cut: int,
    settings: TrainSettings,
    checkpoint: Path | None,
    fp: str,
    progress: bool = True,
) -> TrainState:
    """Train the attached adapter for ``settings.steps`` AdamW steps (resuming from ``checkpoint`` when one of
    the same settings is there); returns the step count and the loss of every step."""
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    torch.manual_seed(settings.seed + 7919 * cut)
    state = (load_checkpoint(checkpoint, peft_model, optimizer, fp) if checkpoint else None) or TrainState()
    with tqdm(total=settings.steps, initial=state.step, desc=f"train cut {cut}", disable=not progress) as bar:
        while state.step < settings.steps:
            batch = [
                examples[i]
                for i in batch_order(len(examples), settings.batch_size, settings.seed, cut, state.step)
            ]
            prompt_inputs = adapter.build_inputs(
                [e.sample.load_images() for e in batch], [e.prompt for e in batch], chat=settings.chat
            )
            inputs, target = teacher_forced(adapter, prompt_inputs, [e.tokens for e in batch])
            lora.lora_train(peft_model, True)
            loss = distillation_loss(
                adapter, peft_model, inputs, target, cut, settings.loss, settings.temperature
            )
            lora.lora_train(peft_model, False)
            if not torch.isfinite(loss):
                raise ConfigError(
                    f"training at cut {cut} diverged at step {state.step} (loss {loss.item()}); pass a smaller --lr."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state.step += 1
            state.losses.append(float(loss.detach()))
            bar.update()
            if checkpoint is not None and (
                state.step % settings.save_every == 0 or state.step == settings.steps
            ):
                save_checkpoint(checkpoint, peft_model, optimizer, state, fp)
    optimizer.zero_grad(set_to_none=True)
    return state
