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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.experiments import common, distributed, runner
from visdepth.experiments.api import Experiment, Plan
from visdepth.experiments.common import fingerprint
from visdepth.experiments.truncation.measure import (  # noqa: F401  (names other modules read here)
    COST_KEYS,
    ENCODER_KINDS,
    SWEEP_KINDS,
    Context,
    Item,
    _items,
    calibration_samples,
    first_token_readings,
    generation_readings,
    measure_batch,
)
from visdepth.experiments.truncation.picks import PICK_RULE_TEXT, budget_cut, vtw_cut  # noqa: F401
from visdepth.experiments.truncation.summary import rows_in_mode, summarise_compute, summarise_task  # noqa: F401
from visdepth.experiments.truncation.timing import TIMING_NEW_TOKENS, measure_timing  # noqa: F401
from visdepth.interventions.modes import MODE_TEXT, parse_modes
from visdepth.interventions.truncate import validate_cut
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.registry import EXPERIMENTS
from visdepth.results.schemas.truncate import (
    PickRule,
    TaskSummary,
    TimingSummary,
    TruncateResult,
)
from visdepth.tasks import Task
from visdepth.tasks.registry import resolve_all

#: visdepth's default KL threshold (nats) for VTW's criterion; VTW tunes its own per model
DEFAULT_VTW_THRESHOLD = 0.05


#: fields that change per-sample rows; budget, vtw_threshold and pick_rule only change the summary, which is
#: recomputed from the rows, so a resumed run with other values re-summarises instead of being refused
FINGERPRINT_KEYS = (
    *common.COMMON_FINGERPRINT_KEYS,
    "cuts",
    "mode",
    "contribution",
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
    mode: str | list[str] = Field(
        default="drop",
        description="one or more of drop (faster), mask (exact, no speed-up): no access to image tokens above "
        "l_c; freeze, skip_attn, skip_mlp, no_img2img: image tokens stay readable but are not (fully) updated; "
        "comma-separated, e.g. drop,freeze,skip_mlp, all measured in one run",
    )
    contribution: bool = Field(
        default=True,
        description="ShortV's per-layer contribution on the calibration set: KL of the last-token distribution "
        "when only layer l's updates at image positions are removed (freeze at layer l alone)",
    )
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
        return common.cut_list(value, allow_all=True)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode_list(cls, value: Any) -> Any:
        """``"drop,freeze"`` -> ``["drop", "freeze"]``; one mode stays a plain name (as older runs recorded)."""
        if isinstance(value, str) and "," in value:
            value = [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list | tuple) and len(value) == 1:
            return str(value[0])
        return value

    @property
    def modes(self) -> list[str]:
        """The modes of this run, checked, in the given order (the first is the run's main mode)."""
        return parse_modes(self.mode)

    @field_validator("sentence_model", mode="before")
    @classmethod
    def _no_encoder(cls, value: Any) -> Any:
        """``none`` (or an empty name) on the command line: no sentence encoder."""
        return common.none_word(value)

    def fingerprint(self) -> str:
        """Hash of the fields that change per-sample numbers (a resumed run must match it)."""
        return fingerprint(self, FINGERPRINT_KEYS)


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
    """Check every option that needs no model, so bad input fails before anything is loaded (batch_size,
    timing_repeats and the cut list are checked by their fields when the config is made)."""
    parse_modes(config.mode)
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
    if config.max_new_tokens is not None and config.max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be at least 1, got {config.max_new_tokens}.")
    if not config.tasks:
        raise ConfigError("no task given; pass --tasks, e.g. --tasks shapes,photos.")


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
            "modes": config.modes,
            "semantics": {m: MODE_TEXT[m] for m in config.modes},
            "access_vs_processing": "mask and drop remove access to image tokens above l_c (they give the same "
            "outputs); freeze, skip_attn, skip_mlp and no_img2img keep them readable (keys and values) but stop "
            "or limit their updates there; comparing the shallowest safe cut per mode separates whether a task "
            "needs image tokens processed deep or only readable deep",
            "no_img2img_diagonal": "an image query keeps its own key (no row is ever empty)",
            "rows": "the first mode's readings sit at the top of each row (as in single-mode runs), the others "
            "under by_mode; results.json has the first mode's summaries under tasks and every mode's under by_mode",
            "sweep": "single-token and multiple-choice kinds and every KL come from the shared-prefix sweep "
            "(visdepth.interventions.sweep), exact for every mode (mask and drop share one sweep)",
        },
        "contribution": "ShortV's layer contribution: per layer l, KL(full || model with layer l's attention and "
        "MLP updates removed at image positions, freeze at l alone) of the last-token distribution, mean over the "
        "calibration samples; plotted against l / L (l = 0..L-1, block index)"
        if config.contribution
        else None,
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
            "processing_modes": "freeze saves the image tokens' query and output projections, attention rows "
            "and MLP above l_c but not their key/value projections or cache; skip_attn the first three; "
            "skip_mlp the MLP; no_img2img the image-to-image attention pairs; decode FLOPs and KV bytes are the "
            "full model's (visdepth.compute.flops). visdepth runs freeze packed like drop (text queries only above "
            "l_c; the image tokens' queries are still projected, by the attention call that yields their keys), so "
            "its measured prefill falls; skip_attn, skip_mlp and no_img2img run exactly with hooks that compute "
            "everything, so their measured latency is the full model's and the analytic figure is what a skipping "
            "kernel would save",
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
        """One folder per mode (or set of modes), so drop and mask runs of the same model sit side by side."""
        return "truncate-" + "+".join(config.modes)

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
            extra, calibration[name] = calibration_samples(task, samples[name], config.calibration)
            # calibration from the evaluated samples: their rows carry the layer contribution too
            calibrating = {s.id for s in samples[name][: calibration[name]["n"]]} if extra is None else None
            items += _items(name, task, samples[name], "eval", calibrating)
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
        if not config.timing or not distributed.current().is_main:
            return {}  # timed on the main process only, with the others idle, so they do not share its cores
        first = next(iter(st["tasks"]))
        subset = st["samples"][first][: config.batch_size]
        inputs = st["ctx"].build(st["tasks"][first], subset)
        by_mode = {
            mode: TimingSummary(
                task=first,
                samples=[s.id for s in subset],
                **measure_timing(
                    plan.adapter,
                    inputs,
                    st["ctx"].cuts,
                    mode,
                    config.timing_repeats,
                    progress=config.progress,
                ),
            )
            for mode in config.modes
        }
        return {"timing": by_mode[config.modes[0]], "timing_by_mode": by_mode}

    def summarise(self, plan: Plan, rows: list[dict[str, Any]], extras: dict[str, Any]) -> dict[str, Any]:
        config, st = plan.config, plan.state
        cuts, calibration = st["ctx"].cuts, st["calibration"]
        modes = config.modes
        by_id = {r["id"]: r for r in rows}
        by_mode: dict[str, dict[str, TaskSummary]] = {mode: {} for mode in modes}
        for name, task in st["tasks"].items():
            task_rows = [by_id[f"{name}/{s.id}"] for s in st["samples"][name]]
            if calibration[name]["source"] == "train split":
                cal_rows = [r for r in rows if r["task"] == name and r["role"] == "calibration"]
            else:
                cal_rows = task_rows[: calibration[name]["n"]]
            calibration[name]["samples"] = [r["sample"] for r in cal_rows]
            for mode in modes:
                by_mode[mode][name] = summarise_task(
                    task,
                    st["samples"][name],
                    rows_in_mode(task_rows, mode, modes),
                    rows_in_mode(cal_rows, mode, modes),
                    calibration[name],
                    config,
                    cuts,
                    mode,
                )
        L = plan.adapter.num_layers
        return {
            "num_layers": L,
            "cuts": cuts,
            "depth": [c / L for c in cuts],
            "mode": modes[0],
            "modes": modes,
            "budget": config.budget,
            "vtw_threshold": config.vtw_threshold,
            "pick_rule": config.pick_rule,
            "tasks": by_mode[modes[0]],
            "by_mode": by_mode if len(modes) > 1 else {},
            "timing": extras.get("timing"),
            "timing_by_mode": extras.get("timing_by_mode", {}) if len(modes) > 1 else {},
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
