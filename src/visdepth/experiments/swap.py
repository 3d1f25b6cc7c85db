"""RQ2, interchangeability: does it matter from which depth the image tokens' states come?

For every pair ``(l_a, l_b)`` of a grid of depths, the layers above ``l_b`` run on a hybrid input: the swapped
group's positions (image; text as the control; or ``text_matched``, a per-sample random text subset as large as the
image group that leaves the last prompt position alone, the fairer control) hold their layer-``l_a`` states, every
other position its layer-``l_b`` states (:mod:`visdepth.interventions.substitute`), and greedy generation continues
from that prefill. Each output is compared with the unmodified model's: first-token agreement, KL of the first
next-token distribution, semantic similarity of the generated texts, and the task's own ``compare`` scores.

Cost: one state capture and one unmodified generation per batch of samples, then one spliced generation per pair and
group, ``len(groups) (len(layers))^2`` in all (three groups by default). The KL comes from the first step's logits
of those same generations (the spliced prefill), so no extra forward pass is needed. The diagonal ``l_a = l_b`` is
computed too rather than assumed: it must reproduce the unmodified model, and the result records whether it did.

One JSONL row per sample holds its matrices (rows ``l_a``, columns ``l_b``); the summary (means over samples,
and curves against the distance ``|l_a - l_b|``) is recomputed from the rows, so a killed run resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator
from tqdm.auto import tqdm

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.experiments import common, runner
from visdepth.experiments.api import Experiment, Plan
from visdepth.experiments.common import fingerprint
from visdepth.interventions.hooks import greedy_generate
from visdepth.interventions.substitute import (
    GROUP_NAMES,
    MATCHED_TEXT_RULE,
    SPLICE_SCOPE,
    capture_prefill_states,
    group_mask,
    sample_seed,
    substituted_generate,
)
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.registry import EXPERIMENTS
from visdepth.results.schemas.swap import (
    MAIN_METRICS,
    SUMMARY_NAMES,
    DistanceCurve,
    SwapResult,
)
from visdepth.tasks import Task
from visdepth.tasks.registry import resolve_all

#: the default groups: the paper's image swap, the whole-text control and the size-matched text control
GROUPS = GROUP_NAMES
#: the metrics every run has; the task's ``compare`` adds its own (agreement, identical, rougeL, bleu ...)
#: the diagonal counts as the identity when its KL stays below this (float rounding only)
IDENTITY_KL_TOL = 1e-6

FINGERPRINT_KEYS = (
    *common.COMMON_FINGERPRINT_KEYS,
    "tasks",
    "layers",
    "groups",
    "max_new_tokens",
    "exclude_special",
    "sentence_model",
)


class SwapConfig(common.ExperimentConfig):
    """Everything that decides the numbers of a swap run (recorded in full in the result file)."""

    layers: str | list[int] = Field(
        default="all", description="the grid of depths: 'all' (0..L), a list, '0,2,4', or 'stride:k' (L kept)"
    )
    groups: tuple[str, ...] = Field(
        default=GROUPS,
        description="token groups to swap, comma-separated: image, text (the control: every text token) and "
        "text_matched (the fairer control: a seeded random text subset as large as the image group, never the "
        "last prompt token)",
    )
    max_new_tokens: int | None = Field(
        default=None, description="generation budget; None: the task's per kind"
    )
    exclude_special: bool = Field(
        default=True, description="leave template/special tokens out of the swapped text group (as in RQ1)"
    )
    sentence_model: str | None = Field(
        default=om.DEFAULT_SENTENCE_MODEL, description="sentence encoder for similarity; None to skip it"
    )
    batch_size: int = Field(default=8, description="samples per batch (does not change the numbers)")

    @field_validator("sentence_model", mode="before")
    @classmethod
    def _no_encoder(cls, value: Any) -> Any:
        """``none`` (or an empty name) on the command line: no sentence encoder."""
        return common.none_word(value)

    def fingerprint(self) -> str:
        """Hash of the fields that change per-sample numbers (a resumed run must match it)."""
        return fingerprint(self, FINGERPRINT_KEYS)


# ---------------------------------------------------------------------- options
def parse_layers(spec: str | Sequence[int]) -> int | list[int] | None:
    """Check a layer spec's syntax: ``None`` for all, a stride (int), or the explicit list."""
    if not isinstance(spec, str):
        return [int(x) for x in spec]
    text = spec.strip().lower()
    if text == "all":
        return None
    if text.startswith("stride:"):
        step = text.removeprefix("stride:").strip()
        if not step.isdigit() or int(step) < 1:
            raise ConfigError(
                f"--layers {spec!r} has no valid stride; write a positive whole number, e.g. stride:2."
            )
        return int(step)
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(
            f"--layers {spec!r} is not understood; use all, a list such as 0,2,4, or stride:2."
        ) from None


def resolve_layers(spec: str | Sequence[int], num_layers: int) -> list[int]:
    """The sorted depths of the grid for a model with ``num_layers`` blocks (states 0..L)."""
    parsed = parse_layers(spec)
    L = num_layers
    if parsed is None:
        return list(range(L + 1))
    if isinstance(parsed, int):
        # keep L: l_b = L (the final norm's input) is the end that matters most for the output
        return sorted(set(range(0, L + 1, parsed)) | {L})
    bad = [x for x in parsed if not 0 <= x <= L]
    if bad:
        raise ConfigError(f"layer {bad[0]} in --layers is beyond the model's {L} layers; use depths 0..{L}.")
    layers = sorted(set(parsed))
    if len(layers) < 2:
        raise ConfigError(f"--layers {spec!r} gives {len(layers)} depth; give at least two to swap between.")
    return layers


def check_groups(groups: Sequence[str]) -> list[str]:
    unknown = [g for g in groups if g not in GROUP_NAMES]
    if unknown or not groups:
        shown = repr(unknown[0]) if unknown else "none"
        raise ConfigError(
            f"unknown group {shown} in --groups; use any of image, text (the control) and text_matched "
            "(the size-matched control)."
        )
    return list(dict.fromkeys(groups))


# ---------------------------------------------------------------------- measuring
def budget(task: Task, sample: Sample, config: SwapConfig) -> int:
    return config.max_new_tokens or task.max_new_tokens_for(sample)


def _decode(adapter: VLMAdapter, tokens: torch.Tensor, budgets: Sequence[int]) -> list[str]:
    # a batch generates the largest budget; greedy tokens do not depend on how far generation goes on, so
    # cutting each row to its own budget gives what generating with that budget would
    return [
        adapter.tokenizer.decode(row[:n], skip_special_tokens=True)
        for row, n in zip(tokens, budgets, strict=True)
    ]


def measure_batch(
    adapter: VLMAdapter,
    task: Task,
    samples: Sequence[Sample],
    config: SwapConfig,
    layers: Sequence[int],
    encoder: om.SentenceEncoder | None,
) -> list[dict[str, Any]]:
    """Every pair of the grid, for every group, on one batch of samples: one row per sample."""
    inputs = adapter.build_inputs(
        [s.load_images() for s in samples], [task.prompt(s) for s in samples], chat=config.chat
    )
    budgets = [budget(task, s, config) for s in samples]
    steps = max(budgets)
    states = capture_prefill_states(adapter, inputs)
    full = greedy_generate(adapter, inputs, steps, output_logits=True)
    full_first, full.logits = full.logits[:, 0].clone(), None
    full_text = _decode(adapter, full.tokens, budgets)
    groups = check_groups(config.groups)
    # the text_matched subset of a sample depends on the run's seed and its id only, never on its batch
    seeds = [sample_seed(config.seed, s.id) for s in samples]
    n = len(layers)
    # (group, sample, i, j) -> (first-token agreement, KL, text)
    cells: dict[tuple[str, int, int, int], tuple[float, float, str]] = {}
    pairs = [(g, i, j) for g in groups for i in range(n) for j in range(n)]
    for group, i, j in tqdm(pairs, desc="pairs", leave=False, disable=not config.progress):
        gen = substituted_generate(
            adapter,
            inputs,
            states,
            layers[i],
            layers[j],
            group,
            steps,
            exclude_special=config.exclude_special,
            output_logits=True,
            seeds=seeds,
        )
        kl = om.kl_divergence(full_first, gen.logits[:, 0]).tolist()
        gen.logits = None  # every step's logits (batch x steps x vocab) are large; only the first was needed
        texts = _decode(adapter, gen.tokens, budgets)
        for s, b in enumerate(budgets):
            first = om.first_token_agreement(full.tokens[s, :b], gen.tokens[s, :b])
            cells[group, s, i, j] = (first, float(kl[s]), texts[s])
    if encoder is not None:
        # one batched encoding of every text fills the encoder's cache, so compare() below only looks texts up
        encoder.encode(list({text for _, _, text in cells.values()} | set(full_text)))
    # swapped positions per sample; image and text are always recorded, text_matched when it is run
    counts = {
        g: group_mask(inputs, g, config.exclude_special, seeds).sum(dim=1).tolist()
        for g in dict.fromkeys(["image", "text", *groups])
    }
    rows = []
    for s, sample in enumerate(samples):
        row: dict[str, Any] = {
            "kind": task.kind_of(sample),
            "max_new_tokens": budgets[s],
            "layers": list(layers),
            "full_text": full_text[s],
            "tokens": {g: int(counts[g][s]) for g in counts},
            "metrics": {},
            "texts": {},
        }
        for group in groups:
            scores: dict[str, list[list[float | None]]] = {}
            texts = [[""] * n for _ in range(n)]
            for i in range(n):
                for j in range(n):
                    first, kl, texts[i][j] = cells[group, s, i, j]
                    cell = {"first_token": first, "kl": kl}
                    cell.update(task.compare(sample, full_text[s], texts[i][j], encoder=encoder))
                    for key, value in cell.items():
                        scores.setdefault(key, [[None] * n for _ in range(n)])[i][j] = float(value)
            row["metrics"][group] = scores
            row["texts"][group] = texts
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- summary
def _values(rows: list[dict[str, Any]], group: str, metric: str, n: int) -> np.ndarray:
    """(samples, n, n) values of one metric; NaN where a sample has none (a score its kind lacks)."""
    out = np.full((len(rows), n, n), np.nan)
    for k, row in enumerate(rows):
        matrix = row["metrics"][group].get(metric)
        if matrix is not None:
            out[k] = np.array([[np.nan if v is None else v for v in r] for r in matrix], dtype=float)
    return out


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def distance_curve(values: np.ndarray, layers: Sequence[int], num_layers: int) -> DistanceCurve:
    """Means of ``values`` (samples, n, n) over samples and the pairs at each distance ``|l_a - l_b|``."""
    grid = np.array(layers)
    signed = grid[:, None] - grid[None, :]  # l_a - l_b
    distances = sorted({int(d) for d in np.abs(signed).flat})
    curve: dict[str, list] = {"all": [], "a_below_b": [], "a_above_b": [], "count": []}
    for d in distances:
        at = np.abs(signed) == d
        curve["all"].append(_mean(values[:, at]))
        curve["a_below_b"].append(_mean(values[:, at & (signed < 0)]))
        curve["a_above_b"].append(_mean(values[:, at & (signed > 0)]))
        curve["count"].append(int(np.isfinite(values[:, at]).sum()))
    return DistanceCurve(distance=distances, relative=[d / num_layers for d in distances], **curve)


def summarise(
    rows: list[dict[str, Any]], layers: Sequence[int], groups: Sequence[str], num_layers: int
) -> dict[str, Any]:
    """The summary fields of :class:`SwapResult` (metrics, matrices, curves, off-diagonal means, identity check),
    all recomputed from the per-sample rows."""
    n = len(layers)
    found = {m for row in rows for g in groups for m in row["metrics"][g]}
    metrics = [m for m in MAIN_METRICS if m in found] + sorted(found - set(MAIN_METRICS))
    off = ~np.eye(n, dtype=bool)
    diag = np.eye(n, dtype=bool)
    matrices: dict[str, dict[str, list[list[float | None]]]] = {}
    curves: dict[str, dict[str, DistanceCurve]] = {}
    off_diagonal: dict[str, dict[str, float | None]] = {}
    identity: dict[str, Any] = {"kl_max": 0.0, "first_token_min": 1.0, "identical_min": 1.0}
    for group in groups:
        matrices[group], curves[group], off_diagonal[group] = {}, {}, {}
        for metric in metrics:
            values = _values(rows, group, metric, n)
            name = SUMMARY_NAMES.get(metric, metric)
            matrices[group][name] = [[_mean(values[:, i, j]) for j in range(n)] for i in range(n)]
            curves[group][name] = distance_curve(values, layers, num_layers)
            off_diagonal[group][name] = _mean(values[:, off])
        on_diag = {m: _values(rows, group, m, n)[:, diag] for m in ("kl", "first_token", "identical")}
        identity["kl_max"] = max(identity["kl_max"], float(np.nanmax(on_diag["kl"], initial=0.0)))
        for m in ("first_token", "identical"):
            identity[f"{m}_min"] = min(identity[f"{m}_min"], float(np.nanmin(on_diag[m], initial=1.0)))
    identity["holds"] = (
        identity["kl_max"] <= IDENTITY_KL_TOL
        and identity["first_token_min"] == 1
        and identity["identical_min"] == 1
    )
    identity["kl_tolerance"] = IDENTITY_KL_TOL
    return {
        "metrics": [SUMMARY_NAMES.get(m, m) for m in metrics],
        "matrices": matrices,
        "curves": curves,
        "off_diagonal": off_diagonal,
        "identity": identity,
    }


def choices(config: SwapConfig, encoder: om.SentenceEncoder | None) -> dict[str, Any]:
    """Every open choice of the study that this run made, as recorded in its results."""
    return {
        "layer_convention": "layer 0 = decoder input embeddings; layer l = output of block l, before final norm; "
        "the hybrid replaces the input of block l_b (of the final norm for l_b = L)",
        "hybrid": "swapped group's positions hold their layer-l_a states, every other position its layer-l_b "
        "states; matrices have rows l_a, columns l_b",
        "splice_scope": SPLICE_SCOPE,
        "splice_scope_meaning": "the hybrid replaces the prompt's states in the prefill only; generated tokens are "
        "computed normally and attend to the spliced prompt through its KV cache",
        "groups": {
            "image": "positions carrying projected vision features",
            "text": "prompt tokens minus image, padding"
            + (" and special tokens" if config.exclude_special else "")
            + " (the control)",
            "text_matched": MATCHED_TEXT_RULE + " (the size-matched control)",
        },
        "text_matched_seed": f"sample_seed(seed={config.seed}, sample id) = SHA-256 of '<seed>:<id>', first 8 "
        "bytes little-endian, masked to 63 bits",
        "decoding": "greedy; the image placeholder token is suppressed",
        "max_new_tokens": config.max_new_tokens or "task budget per sample kind",
        "kl": "KL(p_full || p_swapped) in nats of the first generated token's distribution, from the raw float32 "
        "logits of the prefill's last position (before any logits processor), summed in float64",
        "first_token": "the first generated token ids are equal (after the suppression above)",
        "similarity": encoder.describe() if encoder is not None else None,
        "curve": "mean over samples and over all grid pairs at each |l_a - l_b|; a_below_b: l_a < l_b, "
        "a_above_b: l_a > l_b",
        "prompt_format": "chat template" if config.chat else "raw prompt with image placeholders first",
    }


def validate(config: SwapConfig) -> None:
    """Every option that needs no model, so bad input fails before anything is loaded."""
    parse_layers(config.layers)
    check_groups(config.groups)
    if config.batch_size < 1:
        raise ConfigError(f"--batch_size must be >= 1, got {config.batch_size}.")
    if config.max_new_tokens is not None and config.max_new_tokens < 1:
        raise ConfigError(f"--max_new_tokens must be >= 1, got {config.max_new_tokens}; or leave it out.")


@EXPERIMENTS.register("swap")
class Swap(Experiment):
    """RQ2 through the runner: items are the samples of one task, batched by generation budget."""

    name = "swap"
    question = "RQ2: are image-token states interchangeable across depths?"
    config_class = SwapConfig
    result_class = SwapResult
    # 5 depths (0, L/4, L/2, 3L/4, L on the default model): 75 spliced generations per sample
    quick = {"limit": 32, "layers": "stride:3"}

    def __init__(self, encoder: om.SentenceEncoder | None = None):
        #: a sentence encoder to use instead of loading ``config.sentence_model``
        self.encoder = encoder

    def validate(self, config: SwapConfig) -> None:
        validate(config)

    def load_data(self, config: SwapConfig) -> tuple[Task, list[Sample]]:
        tasks = resolve_all(config.tasks)
        if len(tasks) != 1:
            raise ConfigError(
                f"swap compares the outputs of one task at a time, got {len(tasks)} ({', '.join(tasks)}); "
                "run it once per task."
            )
        task = next(iter(tasks.values()))
        return task, task.load(limit=config.limit)

    def plan(self, config: SwapConfig, adapter: VLMAdapter, data: tuple[Task, list[Sample]]) -> Plan:
        task, samples = data
        encoder = self.encoder
        if encoder is None and config.sentence_model is not None:
            encoder = om.get_sentence_encoder(config.sentence_model, device=str(adapter.device))
        layers = resolve_layers(config.layers, adapter.num_layers)
        return Plan(
            config=config,
            adapter=adapter,
            # similar budgets share a batch, so short answers do not wait for captions
            items=sorted(samples, key=lambda s: budget(task, s, config)),
            fits=[(s, task.prompt(s)) for s in samples],
            batch_size=config.batch_size,
            state={"task": task, "layers": layers, "encoder": encoder, "groups": check_groups(config.groups)},
        )

    def measure_batch(self, plan: Plan, items: list[Sample]) -> list[dict[str, Any]]:
        st = plan.state
        return measure_batch(plan.adapter, st["task"], items, plan.config, st["layers"], st["encoder"])

    def summarise(self, plan: Plan, rows: list[dict[str, Any]], extras: dict[str, Any]) -> dict[str, Any]:
        layers, groups, L = plan.state["layers"], plan.state["groups"], plan.adapter.num_layers
        return {
            "task": plan.state["task"].describe(),
            "num_layers": L,
            "layers": layers,
            "depth": [layer / L for layer in layers],
            "groups": groups,
            "num_samples": len(rows),
            "tokens": {g: float(np.mean([r["tokens"][g] for r in rows])) for g in groups},
            **summarise(rows, layers, groups, L),
        }

    def choices(self, plan: Plan) -> dict[str, Any]:
        return choices(plan.config, plan.state["encoder"])


EXPERIMENT = EXPERIMENTS.get("swap")()


def run(
    config: SwapConfig,
    adapter: VLMAdapter | None = None,
    encoder: om.SentenceEncoder | None = None,
) -> SwapResult:
    """Run RQ2 through the runner; writes results.json and samples.jsonl (figures: visdepth.report).

    ``encoder`` overrides the one named by ``config.sentence_model`` (which is loaded when not given).
    """
    return runner.run(Swap(encoder) if encoder is not None else EXPERIMENT, config, adapter)


def run_dir(config: SwapConfig, adapter_name: str) -> Path:
    return common.run_dir(config.output_path, adapter_name, EXPERIMENT.folder(config))


__all__ = [
    "GROUPS",
    "MAIN_METRICS",
    "DistanceCurve",
    "SwapConfig",
    "SwapResult",
    "measure_batch",
    "parse_layers",
    "resolve_layers",
    "run",
    "run_dir",
    "summarise",
]
