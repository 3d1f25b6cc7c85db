"""RQ5, reasoning under truncation: chain-of-thought trajectories and final answers at every cut, against the
full model's own chain, and whether a longer chain makes up for lost visual depth.

Per task, sample and cut ``l_c`` (the cuts and truncation modes of ``visdepth truncate``, through the same
engine, :func:`~visdepth.interventions.truncated_generate`, greedy by default), the model writes a chain of
thought (prompts: :mod:`visdepth.experiments.reasoning.prompts`); its final answer is located by the task's rule
(shapes: ``so the final answer is X``) or ``--answer_pattern``, ``--reasoning_tags think`` reading
``<think>...</think>`` blocks as the reasoning. Against the full model's chain (``l_c = L``):

- trajectory: over the reasoning part (the chain before its final-answer part, so that a changed answer does not
  count as a changed path), token edit distance / length, ROUGE-L, MiniLM cosine, the first differing token and
  step relative to the full chain's length, and the length ratio;
- answer: agreement with the full model's answer and accuracy against the ground truth;
- the paper's claim per cut: the share of samples whose path differs, whose answer differs, and "same answer,
  different path", with percentile bootstrap intervals;
- does reasoning compensate: the accuracy of a direct answer (no chain), of the chain of thought, and of chains
  capped at ``--budgets`` times the full model's chain length;
- where the damage happens: the teacher-forced answer, the truncated model given the full model's reasoning.

Items are (task, sample, cut) triples, one JSONL row each, the full model's cut first so that its chains are
the reference of every other cut (read back from the rows of a resumed run); the summary is recomputed from the
rows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.experiments import common, runner
from visdepth.experiments.api import Experiment, Plan
from visdepth.experiments.common import fingerprint
from visdepth.experiments.reasoning.measure import Context, Item, measure_batch
from visdepth.experiments.reasoning.prompts import (
    COT_INSTRUCTION,
    DEFAULT_COT_WRAPPER,
    DIRECT_INSTRUCTION,
    CotPrompt,
    check_wrapper,
    prompts_for,
    select_samples,
)
from visdepth.experiments.reasoning.summary import TRAJECTORY_KEYS, summarise_task
from visdepth.experiments.truncate import TruncateConfig, resolve_cuts
from visdepth.interventions.truncate import validate_mode
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.registry import EXPERIMENTS
from visdepth.results.io import read_jsonl
from visdepth.results.schemas.reason import ReasonResult
from visdepth.tasks import Task
from visdepth.tasks.registry import resolve_all

_TRUNCATE = TruncateConfig.model_fields
#: generation options that would make decoding other than greedy, which truncated_generate does not do
_NOT_GREEDY = {"do_sample": False, "num_beams": 1}
#: generation options truncated_generate sets itself (the chain needs them as they are)
_RESERVED = ("return_dict_in_generate", "output_logits", "pad_token_id", "cache", "past_key_values")

FINGERPRINT_KEYS = (
    *common.COMMON_FINGERPRINT_KEYS,
    "cuts",
    "mode",
    "max_new_tokens",
    "gen_kwargs",
    "sentence_model",
    "similarity",
    "cot_prompt",
    "cot_wrapper",
    "answer_pattern",
    "reasoning_tags",
    "budgets",
    "direct",
    "teacher_forced",
)


class ReasonConfig(common.ExperimentConfig):
    """Everything that decides the numbers of a reasoning run (recorded in full in the result file)."""

    # the same fields as truncate's, so that --cut, --mode and --max_new_tokens mean and read the same
    cuts: str | list[int] = _TRUNCATE["cuts"]
    mode: str = _TRUNCATE["mode"]
    max_new_tokens: int | None = Field(
        default=None,
        ge=1,
        description="chain-of-thought budget in tokens (default: the task's reasoning budget)",
    )
    gen_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="generation options as in lm-eval, e.g. 'max_new_tokens=128,repetition_penalty=1.1' "
        "(decoding stays greedy)",
    )
    cot_prompt: CotPrompt = Field(
        default="task",
        description="task: the task's own chain-of-thought samples; wrap: every question in --cot_wrapper; "
        "auto: own format where there is one, the wrapper elsewhere",
    )
    cot_wrapper: str = Field(
        default=DEFAULT_COT_WRAPPER, description="chain-of-thought prompt around {question} (wrap and auto)"
    )
    answer_pattern: str | None = Field(
        default=None,
        description="regex whose group (or (?P<answer>...)) is the final answer (default: the task's rule)",
    )
    reasoning_tags: str | None = Field(
        default=None, description="think: read <think>...</think> as the reasoning, as lmms-eval's option"
    )
    budgets: list[float] = Field(
        default_factory=lambda: [1.0, 2.0],
        description="token budgets of capped chains, as multiples of the full model's chain length",
    )
    direct: bool = Field(default=True, description="also ask every question directly (no chain) at each cut")
    teacher_forced: bool = Field(
        default=True,
        description="also give the truncated model the full model's reasoning, for the answer only",
    )
    similarity: bool = Field(default=True, description="MiniLM cosine of the reasoning texts")
    sentence_model: str | None = _TRUNCATE["sentence_model"]
    bootstrap: int = Field(default=1000, ge=0, description="bootstrap resamples of the intervals (0: none)")
    confidence_level: float = Field(default=0.95, gt=0, lt=1, description="level of the bootstrap intervals")
    examples: int = Field(default=5, ge=0, description="largest divergences kept per task in the results")
    batch_size: int = Field(default=8, ge=1, description="samples per batch (does not change the numbers)")

    _cut_list = field_validator("cuts", mode="before")(TruncateConfig._cut_list.__func__)
    _no_encoder = field_validator("sentence_model", mode="before")(TruncateConfig._no_encoder.__func__)

    @field_validator("budgets", mode="before")
    @classmethod
    def _budget_list(cls, value: Any) -> Any:
        """``"1,2"`` -> ``[1.0, 2.0]``; each must be a positive number."""
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            items = [items]
        out = []
        for item in items:
            if isinstance(item, str) and not item.strip():
                continue
            try:
                factor = float(item)
            except (TypeError, ValueError):
                raise ValueError(f"--budgets {item!r} is not a number; write e.g. --budgets 1,2") from None
            if not factor > 0 or factor != factor or factor == float("inf"):
                raise ValueError(
                    f"--budgets {item!r} is not positive; give multiples of the full chain's length, e.g. 1,2"
                )
            out.append(factor)
        return sorted(set(out))

    @field_validator("answer_pattern", "reasoning_tags", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    def fingerprint(self) -> str:
        return fingerprint(self, FINGERPRINT_KEYS)


def validate(config: ReasonConfig) -> None:
    """Every check that needs no model: mode, answer pattern, reasoning tags, wrapper, generation options."""
    if "," in config.mode:
        raise ConfigError(
            f"--mode {config.mode!r}: reason compares chains under one truncation mode per run; pass one (e.g. "
            "--mode drop), run it once per mode, or compare modes side by side with visdepth truncate --mode a,b."
        )
    validate_mode(config.mode)
    if config.answer_pattern is not None:
        om.check_answer_pattern(config.answer_pattern)
    if config.reasoning_tags is not None and not re.fullmatch(r"[A-Za-z_][\w-]*", config.reasoning_tags):
        raise ConfigError(
            f"--reasoning_tags {config.reasoning_tags!r} is not a tag name; write e.g. --reasoning_tags think"
        )
    check_wrapper(config.cot_wrapper)
    _generation_options(config)
    if not config.tasks:
        raise ConfigError("no task given; pass --tasks, e.g. --tasks shapes.")
    reserved = [k for k in config.gen_kwargs if k in _RESERVED]
    if reserved:
        raise ConfigError(f"--gen_kwargs {reserved[0]} is set by visdepth itself; leave it out.")
    for key, greedy in _NOT_GREEDY.items():
        if key in config.gen_kwargs and config.gen_kwargs[key] != greedy:
            raise ConfigError(
                f"--gen_kwargs {key}={config.gen_kwargs[key]} is not greedy decoding; RQ5 compares "
                f"deterministic chains, so leave {key} out (or {key}={greedy})."
            )


def _generation_options(config: ReasonConfig) -> ReasonConfig:
    """gen_kwargs without the greedy settings truncated_generate fixes itself; their max_new_tokens becomes
    the chain budget (lm-eval spells it there) unless --max_new_tokens is given."""
    kwargs = {k: v for k, v in config.gen_kwargs.items() if k not in _NOT_GREEDY}
    budget = kwargs.pop("max_new_tokens", None)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise ConfigError(f"--gen_kwargs max_new_tokens={budget!r} is not a positive whole number.")
    if budget is None or config.max_new_tokens is not None:
        budget = config.max_new_tokens
    return config.model_copy(update={"gen_kwargs": kwargs, "max_new_tokens": budget})


def choices(
    config: ReasonConfig,
    tasks: dict[str, Task],
    encoder: om.SentenceEncoder | None,
    left_out: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Every open choice of the study that this run made, as recorded in its results."""
    return {
        "cut_convention": "cut l_c keeps image tokens in decoder blocks 0..l_c-1 (as visdepth truncate); l_c = L "
        "is the full model, whose chain is the reference; depth = l_c / L",
        "mode": config.mode,
        "decoding": "greedy (truncated_generate with a KV cache); gen_kwargs "
        + (str(config.gen_kwargs) if config.gen_kwargs else "none"),
        "prompts": {
            "cot_prompt": config.cot_prompt,
            "cot_wrapper": config.cot_wrapper,
            "task_format": "a task's reasoning samples rendered by its prompt format",
            "left_out": {
                "samples": left_out or {},
                "why": "cot_prompt task measures only the samples with a chain-of-thought format of their own "
                "(reasoning kind); --cot_prompt auto wraps the others",
            },
            "direct": "meta['direct_prompt'] when given; a wrapped sample: the task's own prompt; a sample in "
            f"the task's own format: its prompt without the chain-of-thought instruction (sentences matching {COT_INSTRUCTION.pattern!r})"
            f", or with {DIRECT_INSTRUCTION!r} appended when it has none",
            "tasks": {name: task.describe() for name, task in tasks.items()},
            "chat_template": config.chat,
        },
        "answer_extraction": {
            "rule": "the last match of the answer pattern (its group 'answer' or first group); a sample without a "
            "match is counted as unextracted (its answer agrees with nothing and scores 0)",
            "patterns": {name: config.answer_pattern or task.answer_pattern for name, task in tasks.items()},
            "overridden": config.answer_pattern is not None,
            "reasoning_tags": config.reasoning_tags,
            "reasoning_tags_rule": "as lmms-eval's --reasoning_tags: <tag>...</tag> blocks are the reasoning, the "
            "answer is the pattern's match in the text after the last closing tag, or that whole text",
            "direct_answer": "the pattern's match when the text has one, else the whole text without a final period",
            "accuracy": "the task's short-answer rule (answer_metric; multiple choice: the option letter) on the "
            "extracted answer; none for samples without a ground truth",
            "agreement": "both answers extracted and equal after VQA normalisation",
        },
        "trajectory": {
            "part": "the reasoning part of each chain: its tokens before the final-answer part (the longest token "
            "prefix whose text ends before the answer pattern's match), so a changed answer is not a changed path",
            "chain_differs": "the reasoning token ids differ from the full model's",
            "edit_distance": "Levenshtein distance over token ids (nltk edit_distance) / the longer length",
            "rougeL": "ROUGE-L F1 of the reasoning text against the full model's (rouge-score)",
            "similarity": encoder.describe() if encoder is not None else None,
            "first_token_rel": "index of the first differing token / the full reasoning's token count (samples "
            "whose path differs)",
            "first_step_rel": "index of the first differing step (sentences and lines) / the full reasoning's steps",
            "length_ratio": "reasoning tokens / the full model's",
        },
        "budgets": {
            "factors": config.budgets,
            "rule": "a chain capped at ceil(factor x the full model's chain length) tokens; greedy decoding is "
            "causal, so it is the first tokens of one generation with the largest budget (exact)",
            "chain_budget": config.max_new_tokens or "the task's reasoning budget",
        },
        "teacher_forced": "the prompt followed by the full model's reasoning token ids (up to its final-answer "
        "part) as text; the image is truncated at the cut, the model generates the conclusion"
        if config.teacher_forced
        else None,
        "bootstrap": {
            "method": "percentile bootstrap of the mean over samples (scipy.stats.bootstrap)",
            "resamples": config.bootstrap,
            "confidence_level": config.confidence_level,
            "seed": f"seed + cut index ({config.seed} + j)",
        },
    }


@EXPERIMENTS.register("reason")
class Reason(Experiment):
    """RQ5 through the runner: items are (task, sample, cut), the full model's cut first, batched per cut."""

    name = "reason"
    question = "RQ5: does visual truncation change how the model reasons more than what it concludes?"
    config_class = ReasonConfig
    result_class = ReasonResult
    # shapes chains are ~30 tokens (budget 64); the cap keeps random or verbose models from 2 x 256 tokens per cut
    quick = {"limit": 8, "bootstrap": 500, "max_new_tokens": 64}

    def folder(self, config: ReasonConfig) -> str:
        return f"reason-{config.mode}"

    def validate(self, config: ReasonConfig) -> None:
        validate(config)

    def load_data(
        self, config: ReasonConfig
    ) -> tuple[dict[str, Task], dict[str, list[Sample]], dict[str, int]]:
        tasks = resolve_all(config.tasks)
        chosen = {
            name: select_samples(name, task, config.cot_prompt, config.limit) for name, task in tasks.items()
        }
        return tasks, {name: c[0] for name, c in chosen.items()}, {name: c[1] for name, c in chosen.items()}

    def plan(self, config: ReasonConfig, adapter: VLMAdapter, data: Any) -> Plan:
        tasks, samples, left_out = data
        config = _generation_options(config)
        cuts = resolve_cuts(config.cuts, adapter)
        prompts = {
            (name, s.id): prompts_for(task, s, config.cot_prompt, config.cot_wrapper)
            for name, task in tasks.items()
            for s in samples[name]
        }
        items: list[Item] = []
        for name in tasks:  # per task: the full model first, then the cuts from the shallowest
            for cut in [cuts[-1], *cuts[:-1]]:
                items += [Item(name, s, cut, prompts[(name, s.id)]) for s in samples[name]]
        fits = [(s, p.cot) for name in tasks for s in samples[name] for p in [prompts[(name, s.id)]]]
        return Plan(
            config=config,
            adapter=adapter,
            items=items,
            fits=fits,
            batch_size=config.batch_size,
            bucket=lambda item: item.bucket,
            # the full model's chains first: every other cut compares with them (in every process)
            stage=lambda item: 0 if item.cut == adapter.num_layers else 1,
            state={
                "tasks": tasks,
                "samples": samples,
                "left_out": left_out,
                "ctx": Context(adapter, config, tasks, cuts),
            },
        )

    def before_rows(self, plan: Plan, rows_path: Path) -> None:
        """The full model's chains of a resumed run, read back from its rows (the other cuts compare with them)."""
        if not rows_path.exists():
            return
        ctx: Context = plan.state["ctx"]
        L = plan.adapter.num_layers
        for row in read_jsonl(rows_path, key="id"):
            if row.get("config_fingerprint") == plan.config.fingerprint() and row.get("cut") == L:
                ctx.full[(row["task"], row["sample"])] = {
                    "chain": row["chain"],
                    "direct": {k: row["direct"][k] for k in ("text", "n_tokens", "answer")}
                    if "direct" in row
                    else None,
                }

    def measure_batch(self, plan: Plan, items: list[Item]) -> list[dict[str, Any]]:
        return measure_batch(plan.state["ctx"], items)

    def summarise(self, plan: Plan, rows: list[dict[str, Any]], extras: dict[str, Any]) -> dict[str, Any]:
        config, st = plan.config, plan.state
        cuts = st["ctx"].cuts
        by_id = {r["id"]: r for r in rows}
        L = plan.adapter.num_layers
        summaries = {}
        for name, task in st["tasks"].items():
            rows_by_cut = [[by_id[f"{name}/{s.id}/cut{c}"] for s in st["samples"][name]] for c in cuts]
            summaries[name] = summarise_task(
                task.describe(),
                rows_by_cut,
                config.budgets,
                resamples=config.bootstrap,
                level=config.confidence_level,
                seed=config.seed,
                examples=config.examples,
            )
        return {
            "num_layers": L,
            "cuts": cuts,
            "depth": [c / L for c in cuts],
            "mode": config.mode,
            "budgets": config.budgets,
            "confidence_level": config.confidence_level,
            "tasks": summaries,
        }

    def choices(self, plan: Plan) -> dict[str, Any]:
        encoder = plan.state["ctx"].encoder if plan.config.similarity else None
        return choices(plan.config, plan.state["tasks"], encoder, plan.state["left_out"])


EXPERIMENT = EXPERIMENTS.get("reason")()

__all__ = ["TRAJECTORY_KEYS", "ReasonConfig", "run"]


def run(config: ReasonConfig, adapter: VLMAdapter | None = None) -> ReasonResult:
    """Run RQ5 through the runner; writes results.json and samples.jsonl (figures: visdepth.report)."""
    return runner.run(EXPERIMENT, config, adapter)


def run_dir(config: ReasonConfig, adapter_name: str) -> Path:
    return common.run_dir(config.output_path, adapter_name, EXPERIMENT.folder(config))
