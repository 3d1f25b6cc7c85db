"""What truncate measures per batch: the items (task, role, kind, sample), the shared context, the first-token
readings from the all-cuts sweep and the greedy generations per cut, scored against answers and the full model,
for every mode of the run (the first mode's readings at the top of a row, the others under ``by_mode``), and
ShortV's layer contribution on calibration samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import torch

from visdepth.compute import DecoderShape, cut_costs
from visdepth.data import Sample
from visdepth.interventions.contribution import layer_contribution
from visdepth.interventions.modes import ACCESS_MODES
from visdepth.interventions.sweep import sweep_cut_logits
from visdepth.interventions.truncate import truncated_generate
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.models.base import ModelInputs
from visdepth.tasks import Task

#: kinds read off the first next-token distribution of the sweep; the others generate per cut
SWEEP_KINDS = ("single_token", "multiple_choice")
#: kinds whose comparison with the full model uses the sentence encoder (free text)
ENCODER_KINDS = ("caption", "reasoning", "open")
COST_KEYS = ("prefill_flops", "decode_flops", "kv_cache_bytes")

if TYPE_CHECKING:  # the config is the experiment's; only its fields are read here
    from visdepth.experiments.truncate import TruncateConfig


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Item:
    """One sample of one task to measure: an evaluated sample, or a calibration sample for VTW's criterion."""

    task: str
    role: Literal["eval", "calibration"]
    kind: str
    sample: Sample
    #: whether this sample is in the task's calibration set (its row then carries the layer contribution)
    calibrates: bool = False

    @property
    def id(self) -> str:
        middle = "calibration/" if self.role == "calibration" else ""
        return f"{self.task}/{middle}{self.sample.id}"

    @property
    def bucket(self) -> tuple[str, str, str]:
        return self.task, self.role, self.kind


class Context:
    """What every batch needs: the model, the cut depths, the scoring helpers (built once, on first use)."""

    def __init__(self, adapter: VLMAdapter, config: TruncateConfig, tasks: dict[str, Task], cuts: list[int]):
        self.adapter, self.config, self.tasks, self.cuts = adapter, config, tasks, cuts
        self.modes = config.modes
        self.shape = DecoderShape.from_adapter(adapter)
        self.bytes_per_value = adapter.dtype.itemsize
        self._letter_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}

    @cached_property
    def encoder(self) -> om.SentenceEncoder:
        return om.get_sentence_encoder(self.config.sentence_model)

    def letter_ids(self, letters: list[str]) -> dict[str, list[int]]:
        key = tuple(letters)
        if key not in self._letter_ids:
            self._letter_ids[key] = om.choice_token_ids(self.adapter.tokenizer, letters)
        return self._letter_ids[key]

    def build(self, task: Task, samples: Sequence[Sample]) -> ModelInputs:
        prompts = [task.prompt(s) for s in samples]
        return self.adapter.build_inputs([s.load_images() for s in samples], prompts, chat=self.config.chat)


def measure_batch(ctx: Context, items: list[Item]) -> list[dict[str, Any]]:
    """Rows of a batch of like items (one task, role and kind): per mode, KL per cut, and for evaluated samples
    the prediction, scores, agreement with the full model and analytic cost of every cut; the first mode's
    readings at the top of the row, the others under ``by_mode``; the layer contribution on calibration samples."""
    task = ctx.tasks[items[0].task]
    samples = [it.sample for it in items]
    inputs = ctx.build(task, samples)
    sweeps: dict[str, torch.Tensor] = {}
    per_mode = {mode: measure_mode(ctx, task, items, inputs, mode, sweeps) for mode in ctx.modes}
    rows = []
    for b, it in enumerate(items):
        row: dict[str, Any] = {"task": it.task, "sample": it.sample.id, "role": it.role, "kind": it.kind}
        row.update(per_mode[ctx.modes[0]][b])
        if len(ctx.modes) > 1:
            row["by_mode"] = {mode: per_mode[mode][b] for mode in ctx.modes[1:]}
        rows.append(row)
    if ctx.config.contribution and any(it.calibrates for it in items):
        # one pass per block over the whole batch; only calibration samples keep theirs (as in the summary)
        contribution = layer_contribution(ctx.adapter, inputs, "freeze")
        for b, (it, row) in enumerate(zip(items, rows, strict=True)):
            if it.calibrates:
                row["contribution"] = contribution[b].tolist()
    if items[0].role == "calibration":
        return rows
    valid = inputs.attention_mask.bool().cpu()
    image = inputs.image_mask.bool().cpu()
    for b, row in enumerate(rows):
        mask = image[b][valid[b]]
        row["tokens"] = {"image": int(mask.sum()), "text": int((~mask).sum())}
        row["drop_compute"] = _costs(ctx, mask, "drop")
    return rows


def _costs(ctx: Context, mask: torch.Tensor, mode: str) -> dict[str, list[float]]:
    costs = cut_costs(ctx.shape, mask, ctx.cuts, bytes_per_value=ctx.bytes_per_value, mode=mode)
    return {k: [c[k] for c in costs] for k in COST_KEYS}


def measure_mode(
    ctx: Context,
    task: Task,
    items: list[Item],
    inputs: ModelInputs,
    mode: str,
    sweeps: dict[str, torch.Tensor],
) -> list[dict[str, Any]]:
    """One mode's readings per sample of the batch (``sweeps`` caches the sweep mask and drop share)."""
    kind = items[0].kind
    samples = [it.sample for it in items]
    key = "access" if mode in ACCESS_MODES else mode
    if key not in sweeps:
        sweep = sweep_cut_logits(ctx.adapter, inputs, log_probs=True, mode=mode)
        sweeps[key] = sweep.scores[ctx.cuts].float().cpu()  # (cuts, batch, vocab); the last cut is L
    logprobs = sweeps[key]
    kl = torch.stack([om.kl_divergence(logprobs[-1], logprobs[j]) for j in range(len(ctx.cuts))])
    top = logprobs.argmax(-1)
    out: list[dict[str, Any]] = [{"kl": kl[:, b].tolist()} for b in range(len(items))]
    if items[0].role == "calibration":
        return out
    valid = inputs.attention_mask.bool().cpu()
    image = inputs.image_mask.bool().cpu()
    for b, reading in enumerate(out):
        reading["compute"] = _costs(ctx, image[b][valid[b]], mode)
    if kind in SWEEP_KINDS:
        readings = first_token_readings(ctx, task, samples, logprobs)
    else:
        readings = generation_readings(ctx, task, samples, inputs, mode)
    for b, (reading, extra) in enumerate(zip(out, readings, strict=True)):
        reading.update(extra)
        for j, agreement in enumerate(reading["agreement"]):
            agreement["first_token_agreement"] = float(top[j, b] == top[-1, b])
    return out


def first_token_readings(
    ctx: Context, task: Task, samples: Sequence[Sample], logprobs: torch.Tensor
) -> list[dict[str, Any]]:
    """Per sample, the reading of the first next token at every cut: ``logprobs`` is (cuts, batch, vocab).

    Single token: the argmax token decoded, scored with ``task.score``. Multiple choice: the option letters'
    log-probabilities decide (``accuracy``), the argmax token read as text gives ``accuracy_text``; the
    prediction is the most likely letter, which is also what agreement with the full model compares.
    """
    tok = ctx.adapter.tokenizer
    top = logprobs.argmax(-1)
    out = []
    for b, sample in enumerate(samples):
        texts = [tok.decode([int(top[j, b])], skip_special_tokens=True) for j in range(len(ctx.cuts))]
        scores, preds = [], []
        for j, text in enumerate(texts):
            if task.kind_of(sample) == "multiple_choice":
                letters = task.choice_letters(sample)
                lps = om.choice_logprobs(logprobs[j, b], token_ids=ctx.letter_ids(letters), letters=letters)
                scores.append(task.score(sample, text, choice_logprobs=lps))
                preds.append(om.choice_prediction(lps))
            else:
                scores.append(task.score(sample, text))
                preds.append(text)
        agreement = [task.compare(sample, preds[-1], p) for p in preds]
        out.append({"prediction": preds, "first_token": texts, "scores": scores, "agreement": agreement})
    return out


def generation_readings(
    ctx: Context, task: Task, samples: Sequence[Sample], inputs: ModelInputs, mode: str | None = None
) -> list[dict[str, Any]]:
    """Per sample, greedy generations at every cut in ``mode`` (default: the run's first), scored and compared
    with the full model's (cut L)."""
    mode = mode or ctx.modes[0]
    kind = task.kind_of(samples[0])
    budget = ctx.config.max_new_tokens or task.max_new_tokens_for(kind)
    encoder = ctx.encoder if kind in ENCODER_KINDS else None
    texts = [
        truncated_generate(ctx.adapter, inputs, cut, mode, max_new_tokens=budget).text for cut in ctx.cuts
    ]
    out = []
    for b, sample in enumerate(samples):
        preds = [t[b].strip() for t in texts]
        out.append(
            {
                "prediction": preds,
                "scores": [task.score(sample, p, encoder=encoder) for p in preds],
                "agreement": [task.compare(sample, preds[-1], p, encoder=encoder) for p in preds],
            }
        )
    return out


def _items(
    name: str,
    task: Task,
    samples: list[Sample],
    role: Literal["eval", "calibration"],
    calibrating: set[str] | None = None,
) -> list[Item]:
    """Items by kind; ``calibrating``: ids of the samples in the calibration set (all of them when None and the
    role is calibration)."""

    def calibrates(s: Sample) -> bool:
        return role == "calibration" or (calibrating is not None and s.id in calibrating)

    return [
        Item(name, role, kind, s, calibrates(s)) for kind, group in task.group(samples).items() for s in group
    ]


def calibration_samples(
    task: Task, evaluated: list[Sample], n: int
) -> tuple[list[Sample] | None, dict[str, Any]]:
    """VTW's calibration set: ``n`` samples of the task's train split when it has one other than the evaluated
    split (returned, to be measured), else the first ``n`` evaluated samples (``None``: their rows serve)."""
    evaluated_split = task.split or task.default_split
    if n and "train" in task.splits and evaluated_split != "train":
        samples = task.with_split("train").load(n)
        return samples, {"source": "train split", "split": "train", "n": len(samples)}
    chosen = evaluated[:n]
    return None, {"source": "evaluated samples", "split": evaluated_split, "n": len(chosen)}
