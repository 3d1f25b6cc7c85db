"""RQ3, depth-wise visual truncation: task quality, closeness to the full model and compute saved at every cut.

A cut ``l_c`` keeps image tokens in decoder blocks ``0..l_c-1`` only (``l_c = L``: the unmodified model). Per task
and per cut every sample is scored:

- single-token and multiple-choice samples from one shared-prefix sweep (:func:`sweep_cut_logits`), which gives
  the first next-token distribution of every cut for about the price of one forward pass: the argmax token is
  decoded and scored, multiple choice by the log-probabilities of the option letters;
- exact-match, caption, reasoning and open samples by greedy generation per cut (:func:`truncated_generate`),
  scored against the answer and compared with the unmodified model's own output.

Every sample also gets KL(full || cut) of its first next-token distribution (from the same sweep). Per cut, the
analytic decoder cost (prefill and decode FLOPs, KV-cache bytes) and, when asked, measured latency and peak memory.
Per task, two depth picks: the shallowest cut keeping ``budget`` of the full model's quality, and VTW's criterion
(the shallowest cut whose mean KL on a calibration set is below a threshold). Quality and KL need not be monotone
in the cut, so ``pick_rule`` says which shallowest cut: ``stable`` (default), the shallowest from which every
deeper evaluated cut meets the criterion too, or ``first``, the shallowest that meets it. One JSONL row per (task,
sample), appended as batches finish, makes a killed run resumable; the summary, depth picks included, is recomputed
from the rows (so the budget, the VTW threshold and the pick rule can change on a resumed run).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, field_validator
from tqdm.auto import tqdm

from visdepth.compute import DecoderShape, cut_costs, measure, peak_memory
from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.experiments import common, runner
from visdepth.experiments.api import Experiment, Plan
from visdepth.experiments.common import LayerStats, column_stats, fingerprint
from visdepth.interventions.sweep import sweep_cut_logits
from visdepth.interventions.truncate import truncated_generate, truncated_logits, validate_cut, validate_mode
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.models.base import ModelInputs
from visdepth.registry import EXPERIMENTS
from visdepth.results.schemas.truncate import (
    PICK_RULES,
    DepthPick,
    KindSummary,
    PickRule,
    TaskSummary,
    TimingSummary,
    TruncateResult,
)
from visdepth.tasks import Task, score_names
from visdepth.tasks.registry import resolve_all

#: kinds read off the first next-token distribution of the sweep; the others generate per cut
SWEEP_KINDS = ("single_token", "multiple_choice")
#: kinds whose comparison with the full model uses the sentence encoder (free text)
ENCODER_KINDS = ("caption", "reasoning", "open")
COST_KEYS = ("prefill_flops", "decode_flops", "kv_cache_bytes")
#: visdepth's default KL threshold (nats) for VTW's criterion; VTW tunes its own per model
DEFAULT_VTW_THRESHOLD = 0.05
#: tokens generated per timed generation: the decode latency is (t(n) - t(1)) / (n - 1)
TIMING_NEW_TOKENS = 16
#: how a depth pick reads a criterion on a curve that need not be monotone in the cut
PICK_RULE_TEXT = {
    "stable": "the shallowest evaluated cut that meets the criterion with every deeper evaluated cut meeting it "
    "too (stable from there on: a deeper cut that fails it moves the pick past that cut)",
    "first": "the shallowest evaluated cut that meets the criterion (taken literally: a deeper cut may still "
    "fail it)",
}

#: fields that change per-sample rows; budget, vtw_threshold and pick_rule only change the summary, which is
#: recomputed from the rows, so a resumed run with other values re-summarises instead of being refused
FINGERPRINT_KEYS = (
    *common.COMMON_FINGERPRINT_KEYS,
    "cuts",
    "mode",
    "max_new_tokens",
    "sentence_model",
)


class TruncateConfig(common.ExperimentConfig):
    """Everything that decides the numbers of a truncation run (recorded in full in the result file)."""

    cuts: str | list[int] = Field(
        default="all",
        description="cut depths l_c: 'all' (0..L) or a list such as 0,4,8 (L is added)",
        json_schema_extra={"cli": ["--cut"]},
    )
    mode: str = Field(default="drop", description="drop (faster) or mask (exact, no speed-up)")
    budget: float = Field(
        default=0.95, description="share of the full model's quality a budget cut must keep"
    )
    vtw_threshold: float = Field(
        default=DEFAULT_VTW_THRESHOLD, description="KL (nats) below which VTW's criterion accepts a cut"
    )
    pick_rule: PickRule = Field(
        default="stable",
        description="stable: the shallowest cut from which every deeper evaluated cut meets the criterion; "
        "first: the shallowest cut that meets it (the literal reading)",
    )
    calibration: int = Field(
        default=16,
        description="samples for VTW's criterion: from the task's train split when it has one (and is not the "
        "evaluated split), else the first evaluated samples",
    )
    batch_size: int = Field(default=8, ge=1, description="samples per batch (does not change the numbers)")
    timing: bool = Field(
        default=True, description="measure prefill and decode latency and peak memory per cut"
    )
    timing_repeats: int = Field(default=3, ge=1, description="timed repeats per cut (medians are reported)")
    max_new_tokens: int | None = Field(default=None, description="override the tasks' per-kind budgets")
    sentence_model: str | None = Field(default=None, description="None: the bundled all-MiniLM-L6-v2")

    @field_validator("cuts", mode="before")
    @classmethod
    def _cut_list(cls, value: Any) -> Any:
        """``"0,4,8"`` (as typed on the command line) -> ``[0, 4, 8]``; ``"all"`` stays."""
        if not isinstance(value, str) or value.strip().lower() == "all":
            return value
        try:
            cuts = [int(item) for item in value.split(",") if item.strip()]
        except ValueError:
            raise ValueError(
                f"--cut {value!r} is not 'all' or whole numbers; write e.g. --cut all or --cut 0,4,8"
            ) from None
        if not cuts:
            raise ValueError("--cut names no depth; write e.g. --cut all or --cut 0,4,8")
        return cuts

    @field_validator("sentence_model", mode="before")
    @classmethod
    def _no_encoder(cls, value: Any) -> Any:
        """``none`` (or an empty name) on the command line: no sentence encoder."""
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    def fingerprint(self) -> str:
        """Hash of the fields that change per-sample numbers (a resumed run must match it)."""
        return fingerprint(self, FINGERPRINT_KEYS)


# ---------------------------------------------------------------------------------------------- depth picks
def _pick(
    cuts: Sequence[int], meets: Sequence[bool | None], rule: PickRule, what: str
) -> tuple[int | None, str | None]:
    """The cut ``rule`` picks given whether each cut meets a criterion (``None``: the cut has no value, so it
    neither meets the criterion nor breaks its stability), and a note when ``first`` and ``stable`` disagree.

    ``first``: the shallowest cut that meets it; ``stable``: the shallowest cut from which every deeper evaluated
    cut meets it too. ``what`` names the criterion in the note ("the budget", "the threshold")."""
    if rule not in PICK_RULES:
        raise ConfigError(f"pick_rule {rule!r} is unknown; use {', '.join(PICK_RULES)}.")
    first = next((c for c, m in zip(cuts, meets, strict=True) if m), None)
    stable, broken = None, None  # broken: the deepest cut that has a value and fails
    for c, m in zip(reversed(cuts), reversed(meets), strict=True):
        if m is False:
            broken = c
            break
        if m:
            stable = c
    if first == stable:
        return first, None
    tail = f"stable from cut {stable}" if stable is not None else "no cut is stable"
    note = f"cut {first} meets {what} but cut {broken} does not; {tail}"
    return (stable if rule == "stable" else first), note


def budget_cut(
    cuts: Sequence[int], quality: Sequence[float | None], budget: float, rule: PickRule = "stable"
) -> tuple[int | None, str | None]:
    """The shallowest cut whose quality is at least ``budget`` times the quality of the deepest cut (the full
    model), every deeper evaluated cut too when ``rule`` is ``stable``; and a note when the answer is degenerate
    or the two rules disagree. ``cuts`` ascend and end at L; a cut without a quality score is skipped."""
    full = quality[-1]
    if full is None:
        return None, "no quality score at the full model"
    if full <= 0:
        return cuts[0], "the full model scores 0: every cut keeps all of it, so the shallowest is reported"
    meets = [None if q is None else bool(q >= budget * full) for q in quality]
    return _pick(cuts, meets, rule, "the budget")


def vtw_cut(
    cuts: Sequence[int], kl: Sequence[float | None], threshold: float, rule: PickRule = "stable"
) -> tuple[int | None, str | None]:
    """VTW's criterion: the shallowest cut whose mean KL(full || cut) is at most ``threshold``, every deeper
    evaluated cut's too when ``rule`` is ``stable``; and a note when the two rules disagree."""
    meets = [None if v is None else bool(v <= threshold) for v in kl]
    return _pick(cuts, meets, rule, "the threshold")


def _depth_pick(
    criterion: Literal["budget", "vtw"],
    cut: int | None,
    note: str | None,
    cuts: list[int],
    quality: list[float | None] | None,
    compute: dict[str, list[float]],
    kl: list[float | None],
) -> DepthPick:
    j = cuts.index(cut) if cut is not None else None
    q = quality[j] if quality is not None and j is not None else None
    full = quality[-1] if quality is not None else None

    def at(values: list[Any]) -> Any:
        return None if j is None else values[j]

    return DepthPick(
        criterion=criterion,
        cut=cut,
        depth=None if cut is None else cut / cuts[-1],
        quality=q,
        full_quality=full,
        quality_ratio=q / full if q is not None and full else None,
        kl=at(kl),
        prefill_flops_ratio=at(compute["prefill_flops_ratio"]),
        decode_flops_ratio=at(compute["decode_flops_ratio"]),
        kv_cache_bytes_ratio=at(compute["kv_cache_bytes_ratio"]),
        drop_prefill_flops_ratio=at(compute["drop_prefill_flops_ratio"]),
        note=note,
    )


# ---------------------------------------------------------------------------------------------- validation
def resolve_cuts(cuts: str | Sequence[int], adapter: VLMAdapter) -> list[int]:
    """The evaluated cut depths, ascending, always ending at L (the reference every other cut is compared with)."""
    L = adapter.num_layers
    if isinstance(cuts, str):
        if cuts.strip().lower() != "all":
            raise ConfigError(f"cuts {cuts!r} is not 'all'; pass 'all' or a list of depths such as 0,4,8.")
        return list(range(L + 1))
    if not cuts:
        raise ConfigError("no cut depth given; pass 'all' or a list of depths such as 0,4,8.")
    return sorted({validate_cut(adapter, c) for c in cuts} | {L})


def validate(config: TruncateConfig) -> None:
    """Check every option that needs no model, so bad input fails before anything is loaded."""
    validate_mode(config.mode)
    if not 0 < config.budget <= 1:
        raise ConfigError(f"budget {config.budget} is outside (0, 1]; pass a share such as 0.95.")
    if config.vtw_threshold < 0:
        raise ConfigError(
            f"vtw_threshold {config.vtw_threshold} is negative; pass a KL in nats such as 0.05."
        )
    if config.calibration < 0:
        raise ConfigError(
            f"calibration {config.calibration} is negative; pass a number of samples (0: no VTW)."
        )
    for name in ("batch_size", "timing_repeats"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}.")
    if config.max_new_tokens is not None and config.max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be at least 1, got {config.max_new_tokens}.")
    if not config.tasks:
        raise ConfigError("no task given; pass --tasks, e.g. --tasks shapes,photos.")
    if isinstance(config.cuts, str) and config.cuts.strip().lower() != "all":
        raise ConfigError(f"cuts {config.cuts!r} is not 'all'; pass 'all' or a list of depths such as 0,4,8.")


# ---------------------------------------------------------------------------------------------- measuring
@dataclass
class Item:
    """One sample of one task to measure: an evaluated sample, or a calibration sample for VTW's criterion."""

    task: str
    role: Literal["eval", "calibration"]
    kind: str
    sample: Sample

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
    """Rows of a batch of like items (one task, role and kind): KL per cut, and for evaluated samples the
    prediction, scores, agreement with the full model and analytic cost of every cut."""
    task = ctx.tasks[items[0].task]
    kind = items[0].kind
    samples = [it.sample for it in items]
    inputs = ctx.build(task, samples)
    sweep = sweep_cut_logits(ctx.adapter, inputs, log_probs=True)
    logprobs = sweep.scores[ctx.cuts].float().cpu()  # (cuts, batch, vocab); the last cut is L
    kl = torch.stack([om.kl_divergence(logprobs[-1], logprobs[j]) for j in range(len(ctx.cuts))])
    top = logprobs.argmax(-1)
    rows = [
        {"task": it.task, "sample": it.sample.id, "role": it.role, "kind": kind, "kl": kl[:, b].tolist()}
        for b, it in enumerate(items)
    ]
    if items[0].role == "calibration":
        return rows
    valid = inputs.attention_mask.bool().cpu()
    image = inputs.image_mask.bool().cpu()
    for b, row in enumerate(rows):
        mask = image[b][valid[b]]
        costs = cut_costs(ctx.shape, mask, ctx.cuts, bytes_per_value=ctx.bytes_per_value)
        row["tokens"] = {"image": int(mask.sum()), "text": int((~mask).sum())}
        row["compute"] = {k: [c[k] for c in costs] for k in COST_KEYS}
    if kind in SWEEP_KINDS:
        readings = first_token_readings(ctx, task, samples, logprobs)
    else:
        readings = generation_readings(ctx, task, samples, inputs)
    for b, (row, reading) in enumerate(zip(rows, readings, strict=True)):
        row.update(reading)
        for j, agreement in enumerate(row["agreement"]):
            agreement["first_token_agreement"] = float(top[j, b] == top[-1, b])
    return rows


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
    ctx: Context, task: Task, samples: Sequence[Sample], inputs: ModelInputs
) -> list[dict[str, Any]]:
    """Per sample, greedy generations at every cut, scored and compared with the full model's (cut L)."""
    kind = task.kind_of(samples[0])
    budget = ctx.config.max_new_tokens or task.max_new_tokens_for(kind)
    encoder = ctx.encoder if kind in ENCODER_KINDS else None
    texts = [
        truncated_generate(ctx.adapter, inputs, cut, ctx.config.mode, max_new_tokens=budget).text
        for cut in ctx.cuts
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


def _items(name: str, task: Task, samples: list[Sample], role: Literal["eval", "calibration"]) -> list[Item]:
    return [Item(name, role, kind, s) for kind, group in task.group(samples).items() for s in group]


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


# ---------------------------------------------------------------------------------------------- summary
def _per_cut(
    task: Task,
    group: list[Sample],
    rows: list[dict[str, Any]],
    key: str,
    ncuts: int,
    predictions: bool = False,
) -> dict[str, list[float | None]]:
    """``task.aggregate`` of the rows' ``key`` dicts (scores or agreement) at every cut: name -> value per cut.

    ``bleu`` is corpus BLEU over the group's samples at each cut and ``bleu_sentence`` the mean of their sentence
    BLEU: scores (``predictions``) against the references, agreement against the full model's outputs.
    """
    kind = task.kind_of(group[0])
    per_cut = []
    for j in range(ncuts):
        preds = [r["prediction"][j] for r in rows] if predictions else None
        summary = task.aggregate(group, [r[key][j] for r in rows], preds)[kind]
        summary.pop("n")
        if not predictions and "bleu_sentence" in summary:
            summary["bleu"] = _corpus_bleu_vs_full(rows, j)
        per_cut.append(summary)
    names = dict.fromkeys(k for s in per_cut for k in s)
    return {k: [s.get(k) for s in per_cut] for k in names}


def _corpus_bleu_vs_full(rows: list[dict[str, Any]], j: int) -> float:
    """Corpus BLEU of the outputs at cut index ``j`` against the full model's (the last cut): 100 when every
    output is the full model's, which sacrebleu scores 0 on short or empty texts (too few 4-grams)."""
    hyps = [str(r["prediction"][j]).strip() for r in rows]
    refs = [str(r["prediction"][-1]).strip() for r in rows]
    if hyps == refs:
        return 100.0
    return om.corpus_bleu(hyps, [[ref] for ref in refs])


def summarise_compute(rows: list[dict[str, Any]], mode: str = "drop") -> dict[str, list[float]]:
    """Mean analytic cost per cut over samples, and its ratio to the full model's mean (the share of the total
    compute of these samples that a cut spends), as computed in ``mode``.

    Rows hold what drop mode computes at each cut (image tokens gone from block l_c on). Mask mode still
    computes every image token in every block, so its cost is the full model's at every cut: ratio 1, nothing
    saved. ``drop_<cost>`` and ``drop_<cost>_ratio`` always give the drop-mode figures (in a mask run: what
    drop mode would save)."""
    out: dict[str, list[float]] = {}
    drop: dict[str, np.ndarray] = {}
    for key in COST_KEYS:
        drop[key] = np.mean([r["compute"][key] for r in rows], axis=0)
        spent = drop[key] if mode == "drop" else np.full_like(drop[key], drop[key][-1])
        out[key] = spent.tolist()
        out[f"{key}_ratio"] = (spent / spent[-1]).tolist()
    for key in COST_KEYS:
        out[f"drop_{key}"] = drop[key].tolist()
        out[f"drop_{key}_ratio"] = (drop[key] / drop[key][-1]).tolist()
    return out


def _kl_stats(rows: list[dict[str, Any]]) -> LayerStats:
    return column_stats(np.array([r["kl"] for r in rows], dtype=float))


def summarise_task(
    task: Task,
    samples: list[Sample],
    rows: list[dict[str, Any]],
    calibration_rows: list[dict[str, Any]],
    calibration_info: dict[str, Any],
    config: TruncateConfig,
    cuts: list[int],
) -> TaskSummary:
    """Per kind and for the whole task: mean scores, agreement, KL and cost per cut; the budget and VTW picks."""
    ncuts = len(cuts)
    by_id = {r["sample"]: r for r in rows}
    calibration_kl = (
        np.mean([r["kl"] for r in calibration_rows], axis=0).tolist() if calibration_rows else [None] * ncuts
    )
    if calibration_rows:
        vtw, vtw_note = vtw_cut(cuts, calibration_kl, config.vtw_threshold, config.pick_rule)
    else:
        vtw, vtw_note = None, "no calibration samples"
    kinds: dict[str, KindSummary] = {}
    for kind, group in task.group(samples).items():
        kind_rows = [by_id[s.id] for s in group]
        scores = _per_cut(task, group, kind_rows, "scores", ncuts, predictions=True)
        main = score_names(kind, task.answer_metric)[0] if kind != "open" else None
        quality = scores.get(main) if main else None
        compute = summarise_compute(kind_rows, config.mode)
        kl = _kl_stats(kind_rows)
        pick = None
        if quality is not None:
            pick = _depth_pick(
                "budget",
                *budget_cut(cuts, quality, config.budget, config.pick_rule),
                cuts,
                quality,
                compute,
                kl.mean,
            )
        kinds[kind] = KindSummary(
            kind=kind,
            n=len(group),
            main_score=main,
            scores=scores,
            agreement=_per_cut(task, group, kind_rows, "agreement", ncuts),
            kl=kl,
            compute=compute,
            budget=pick,
            vtw=_depth_pick("vtw", vtw, vtw_note, cuts, quality, compute, calibration_kl),
        )
    mains = [k.scores[k.main_score] for k in kinds.values() if k.main_score in k.scores]
    quality = [
        float(np.mean(vals)) if (vals := [m[j] for m in mains if m[j] is not None]) else None
        for j in range(ncuts)
    ]
    compute = summarise_compute(rows, config.mode)
    kl = _kl_stats(rows)
    return TaskSummary(
        task=task.describe(),
        num_samples=len(samples),
        kinds=kinds,
        quality=quality,
        kl=kl,
        compute=compute,
        calibration={**calibration_info, "kl_mean": calibration_kl},
        budget=_depth_pick(
            "budget",
            *budget_cut(cuts, quality, config.budget, config.pick_rule),
            cuts,
            quality,
            compute,
            kl.mean,
        ),
        vtw=_depth_pick("vtw", vtw, vtw_note, cuts, quality, compute, calibration_kl),
    )


# ---------------------------------------------------------------------------------------------- timing
def measure_timing(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    cuts: list[int],
    mode: str,
    repeats: int,
    new_tokens: int = TIMING_NEW_TOKENS,
    progress: bool = True,
) -> dict[str, Any]:
    """Median prefill latency, per-token decode latency and peak memory of generation, per cut, in ``mode``.

    Prefill: one forward pass of the prompt (vision encoder included, the same at every cut). Decode per token:
    ``(t(n new tokens) - t(1)) / (n - 1)`` with generation forced to ``n`` tokens, so the prefill cancels out.
    Repeats go round-robin over the cuts (each call warmed up once), so a machine whose load drifts during the
    measurement slows every cut alike instead of a few. A progress bar (off with ``progress=False``) counts the
    timed measurements, then the peak-memory runs.
    """
    device = adapter.device

    def calls(cut: int) -> dict[str, Callable[[], Any]]:
        def generate(n: int) -> Any:
            return truncated_generate(adapter, inputs, cut, mode, max_new_tokens=n, min_new_tokens=n)

        return {
            "prefill": lambda: truncated_logits(adapter, inputs, cut, mode, last_only=True),
            "one": lambda: generate(1),
            "many": lambda: generate(new_tokens),
        }

    fns = {cut: calls(cut) for cut in cuts}
    times: dict[int, dict[str, list[float]]] = {cut: {k: [] for k in fns[cut]} for cut in cuts}
    clock = ""
    total = repeats * sum(len(f) for f in fns.values()) + len(cuts)
    with tqdm(total=total, desc="timing", disable=not progress, unit="call") as bar:
        for r in range(repeats):
            for cut in cuts:
                for key, fn in fns[cut].items():
                    bar.set_postfix_str(f"cut {cut} {key}", refresh=False)
                    timing = measure(fn, device, repeats=1, warmup=int(r == 0))
                    times[cut][key].append(timing.median_s)
                    clock = timing.clock
                    bar.update()
        peaks = []
        for cut in cuts:
            bar.set_postfix_str(f"cut {cut} peak memory", refresh=False)
            peaks.append(peak_memory(fns[cut]["many"], device))
            bar.update()
    prefill, one, many = ([statistics.median(times[c][k]) for c in cuts] for k in ("prefill", "one", "many"))
    decode = [(m - o) / (new_tokens - 1) for m, o in zip(many, one, strict=True)]
    return {
        "mode": mode,
        "repeats": repeats,
        "new_tokens": new_tokens,
        "clock": clock,
        "prefill_s": prefill,
        "generate_1_s": one,
        "generate_n_s": many,
        "decode_per_token_s": decode,
        "peak_memory_bytes": peaks,
        "prefill_speedup": [prefill[-1] / p for p in prefill],
        # on a noisy CPU the difference of two timings can come out negative: no speed-up is defined then
        "decode_speedup": [decode[-1] / d if d > 0 else float("nan") for d in decode],
    }


# ---------------------------------------------------------------------------------------------- run
def choices(
    config: TruncateConfig,
    tasks: dict[str, Task],
    calibration: dict[str, dict[str, Any]],
    encoder: om.SentenceEncoder | None,
) -> dict[str, Any]:
    """Every open choice of the study that this run made, as recorded in its results."""
    return {
        "cut_convention": "cut l_c keeps image tokens in decoder blocks 0..l_c-1; blocks l_c..L-1, the final norm, "
        "the head and every generated token cannot see them; l_c = L is the unmodified model; depth = l_c / L",
        "cuts": "all 0..L" if isinstance(config.cuts, str) else "the given depths plus L (the reference)",
        "mode": {
            "name": config.mode,
            "semantics": "drop: at block l_c the image positions leave the hidden states, positions (original "
            "ids kept), mask and KV cache, so blocks above are cheaper; mask: blocks >= l_c forbid text queries "
            "to attend image keys, everything is still computed (exact, saves nothing). Both give the same "
            "outputs; the mode matters for generated kinds (greedy decoding per cut) and for measured cost.",
            "sweep": "single-token and multiple-choice kinds and every KL come from the shared-prefix sweep "
            "(visdepth.interventions.sweep), exact for both modes, so they do not depend on the mode",
        },
        "prompts": {name: task.describe() for name, task in tasks.items()},
        "chat_template": config.chat,
        "scoring": {
            "single_token": "argmax of the first next-token distribution, decoded and scored with task.score "
            "(accuracy: the answer's words start the prediction)",
            "multiple_choice": "log-probabilities of the option letters at the first next token (each letter's "
            "best single-token spelling); accuracy = the most likely letter is right; accuracy_text reads the "
            "argmax token as text; agreement compares the chosen letters",
            "generated": "exact_match, caption, reasoning and open samples: greedy decoding per cut "
            "(truncated_generate with a KV cache), max_new_tokens per kind as the task sets it"
            + (f" (overridden: {config.max_new_tokens})" if config.max_new_tokens else "")
            + ", scored with task.score and compared with the unmodified model's output with task.compare",
            "sentence_encoder": encoder.describe() if encoder is not None else None,
            "encoder_kinds": list(ENCODER_KINDS),
            "kl": "KL(full || cut) in nats of the first next-token distribution (last prompt position), per sample",
            "first_token_agreement": "the argmax first next token equals the full model's",
        },
        "quality": "main score of each kind (the first of tasks.score_names); a task's quality is the mean of its "
        "kinds' main scores (open samples have none)",
        "pick_rule": {
            "name": config.pick_rule,
            "semantics": PICK_RULE_TEXT[config.pick_rule],
            "note": "when stable and first disagree, the pick's note names the shallower cut that meets the "
            "criterion and the deeper one that fails it; the summary is recomputed from the rows, so a resumed "
            "run may change the rule",
        },
        "depth_budget": f"{PICK_RULE_TEXT[config.pick_rule]} (pick_rule {config.pick_rule}), the criterion "
        f"being quality >= {config.budget} x the quality at cut L; when the full model scores 0 the shallowest "
        "cut is reported with a note",
        "vtw": f"VTW (Lin et al., AAAI 2025): {PICK_RULE_TEXT[config.pick_rule]} (pick_rule {config.pick_rule}), "
        f"the criterion being mean KL on the calibration set <= {config.vtw_threshold} nats (visdepth's default "
        f"threshold is {DEFAULT_VTW_THRESHOLD}; VTW tunes its own per model); its "
        "quality is read from the evaluated samples",
        "calibration": calibration,
        "compute": {
            "analytic": "decoder FLOPs per visual-depth.compute.flops: projections and MLP per kept token, "
            "attention products per causal (query, key) pair, FLOPs = 2 x multiply-adds, LM head once; blocks "
            ">= l_c hold only the non-image tokens (drop mode); vision encoder, projector and embeddings are left "
            "out (the same at every cut). Prefill: the prompt; decode: the first decoding step after it; KV "
            "cache: the prompt's keys and values at the model's dtype width. Mean over samples; ratios are "
            "mean at the cut / mean at L.",
            "mask_mode": "mask mode computes every image position in every block: its cost (compute, the "
            "*_ratio fields and the depth picks' ratios) is the full model's at every cut, ratio 1, nothing "
            "saved; the drop_* fields give what drop mode computes (in a mask run: what drop would save)",
            "measured": "medians over repeats on the first batch of the first task (prefill: one forward pass; "
            f"decode per token: (t({TIMING_NEW_TOKENS} tokens) - t(1 token)) / {TIMING_NEW_TOKENS - 1}; peak "
            "memory of the longer generation) in the chosen mode; drop mode is where latency drops"
            if config.timing
            else None,
        },
    }


@EXPERIMENTS.register("truncate")
class Truncate(Experiment):
    """RQ3 through the runner: items are (task, sample) pairs, evaluated or calibration, batched by kind."""

    name = "truncate"
    question = "RQ3: how much visual depth does each task need, and what does cutting save?"
    config_class = TruncateConfig
    result_class = TruncateResult
    quick = {"limit": 200, "timing_repeats": 2}

    def folder(self, config: TruncateConfig) -> str:
        """One folder per mode, so drop and mask runs of the same model sit side by side."""
        return f"truncate-{config.mode}"

    def validate(self, config: TruncateConfig) -> None:
        validate(config)

    def load_data(self, config: TruncateConfig) -> tuple[dict[str, Task], dict[str, list[Sample]]]:
        # keyed by the name as given: "shapes" and "shapes:train" are two tasks of one Task.name
        tasks = resolve_all(config.tasks)
        return tasks, {name: task.load(config.limit) for name, task in tasks.items()}

    def plan(self, config: TruncateConfig, adapter: VLMAdapter, data: Any) -> Plan:
        tasks, samples = data
        cuts = resolve_cuts(config.cuts, adapter)
        calibration: dict[str, dict[str, Any]] = {}
        items: list[Item] = []
        for name, task in tasks.items():
            items += _items(name, task, samples[name], "eval")
            extra, calibration[name] = calibration_samples(task, samples[name], config.calibration)
            if extra is not None:
                items += _items(name, task, extra, "calibration")
        return Plan(
            config=config,
            adapter=adapter,
            items=items,
            fits=[(it.sample, tasks[it.task].prompt(it.sample)) for it in items],
            batch_size=config.batch_size,
            # like items (task, role, kind) share a batch
            bucket=lambda item: item.bucket,
            state={
                "tasks": tasks,
                "samples": samples,
                "calibration": calibration,
                "ctx": Context(adapter, config, tasks, cuts),
                "uses_encoder": any(it.kind in ENCODER_KINDS for it in items if it.role == "eval"),
            },
        )

    def measure_batch(self, plan: Plan, items: list[Item]) -> list[dict[str, Any]]:
        return measure_batch(plan.state["ctx"], items)

    def after_rows(self, plan: Plan, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        config, st = plan.config, plan.state
        if not config.timing:
            return {}
        first = next(iter(st["tasks"]))
        subset = st["samples"][first][: config.batch_size]
        inputs = st["ctx"].build(st["tasks"][first], subset)
        timing = measure_timing(
            plan.adapter, inputs, st["ctx"].cuts, config.mode, config.timing_repeats, progress=config.progress
        )
        return {"timing": TimingSummary(task=first, samples=[s.id for s in subset], **timing)}

    def summarise(self, plan: Plan, rows: list[dict[str, Any]], extras: dict[str, Any]) -> dict[str, Any]:
        config, st = plan.config, plan.state
        cuts, calibration = st["ctx"].cuts, st["calibration"]
        by_id = {r["id"]: r for r in rows}
        summaries: dict[str, TaskSummary] = {}
        for name, task in st["tasks"].items():
            task_rows = [by_id[f"{name}/{s.id}"] for s in st["samples"][name]]
            if calibration[name]["source"] == "train split":
                cal_rows = [r for r in rows if r["task"] == name and r["role"] == "calibration"]
            else:
                cal_rows = task_rows[: calibration[name]["n"]]
            calibration[name]["samples"] = [r["sample"] for r in cal_rows]
            summaries[name] = summarise_task(
                task, st["samples"][name], task_rows, cal_rows, calibration[name], config, cuts
            )
        L = plan.adapter.num_layers
        return {
            "num_layers": L,
            "cuts": cuts,
            "depth": [c / L for c in cuts],
            "mode": config.mode,
            "budget": config.budget,
            "vtw_threshold": config.vtw_threshold,
            "pick_rule": config.pick_rule,
            "tasks": summaries,
            "timing": extras.get("timing"),
        }

    def choices(self, plan: Plan) -> dict[str, Any]:
        st = plan.state
        encoder = st["ctx"].encoder if st["uses_encoder"] else None
        return choices(plan.config, st["tasks"], st["calibration"], encoder)


EXPERIMENT = EXPERIMENTS.get("truncate")()


def run(config: TruncateConfig, adapter: VLMAdapter | None = None) -> TruncateResult:
    """Run RQ3 through the runner; writes results.json and samples.jsonl (figures: visdepth.report)."""
    return runner.run(EXPERIMENT, config, adapter)


def run_dir(config: TruncateConfig, adapter_name: str) -> Path:
    return common.run_dir(config.output_path, adapter_name, EXPERIMENT.folder(config))
