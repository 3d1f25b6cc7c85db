"""RQ4, recoverability: LoRA self-distillation of the truncated model into the full one, and what comes back.

Per cut ``l_c`` of ``--cut`` one LoRA adapter is trained on the decoder blocks' linear layers (vision tower,
projector and head untouched) of the model truncated at ``l_c`` in drop mode (the student) to reproduce the same
model with adapters off and no truncation (the teacher): one set of weights in memory
(:mod:`~visdepth.experiments.recovery.lora`). Losses, data and checkpoints: :mod:`~visdepth.experiments.recovery.train`.
Training prompts come from the tasks' train split (or ``--train_data``), evaluation from held-out samples; an
overlap of sample ids is refused.

Evaluation: every held-out question is answered by the full model, the truncated model and the recovered one
(per cut) with every decoding strategy (:mod:`~visdepth.experiments.recovery.decoding`), scored against the ground
truth (``task.score``) and against the teacher's greedy answer (``task.compare``). The summary gives per kind and
cut the recovered fraction (recovered - truncated) / (full - truncated) with a bootstrap interval, and per model
the spread of results across strategies and draws (std, range, per-question consistency and variance).

Where training sits in the experiment contract: :meth:`Recover.plan` resolves cuts, LoRA targets and data (bad
settings fail before anything is trained); :meth:`Recover.before_rows` runs inside the runner's lock of the run
folder, before any row is measured, and trains (or resumes training, or reuses a finished adapter of the same
settings, or loads ``--adapter``) every cut's adapter into ``<run>/adapters/cut<l_c>/``, with checkpoints in
``<run>/train/cut<l_c>/``. Rows are then measured and resumed by the runner like every other experiment's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.experiments import common, runner
from visdepth.experiments.api import Experiment, Plan
from visdepth.experiments.recovery import decoding, lora
from visdepth.experiments.recovery import train as tr
from visdepth.experiments.recovery.summary import N_BOOT, TEACHER_SCORE, summarise_kind
from visdepth.interventions.truncate import validate_cut
from visdepth.metrics import output as om
from visdepth.models import VLMAdapter
from visdepth.registry import EXPERIMENTS
from visdepth.results.io import read_json, write_json
from visdepth.results.schemas.recover import RecoverResult, TaskRecovery, TrainingSummary
from visdepth.tasks import Task, score_names
from visdepth.tasks.registry import resolve_all

#: kinds compared with the teacher through the sentence encoder
ENCODER_KINDS = ("caption", "reasoning", "open")
#: fields that decide what an adapter learns (its folder records their hash)
TRAIN_KEYS = (
    "model",
    "model_args",
    "dtype",
    "seed",
    "chat",
    "loss",
    "temperature",
    "lr",
    "steps",
    "batch_size",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "train_data",
    "train_limit",
    "tasks",
)
FINGERPRINT_KEYS = (
    *common.COMMON_FINGERPRINT_KEYS,
    *TRAIN_KEYS,
    "cuts",
    "adapter",
    "decoding",
    "num_samples",
    "max_new_tokens",
    "sentence_model",
)


class RecoverConfig(common.ExperimentConfig):
    """Everything that decides the numbers of a recovery run (recorded in full in the result file)."""

    limit: int | None = Field(
        default=None, ge=1, description="use only the first N held-out samples of each task"
    )
    per_kind: int | None = Field(
        default=10,
        ge=1,
        description="evaluate the first N held-out samples of each kind (captions are rare among the first "
        "samples of a mixed task); none: all",
    )
    cuts: list[int] | None = Field(
        default=None,
        description="cut depths l_c to recover, e.g. 4,6,8 (one adapter each; 0 <= l_c < L); default: round(3L/4)",
        json_schema_extra={"cli": ["--cut"]},
    )
    loss: Literal["seq", "kl"] = Field(
        default="seq",
        description="seq: cross-entropy on the teacher's greedy answers; kl: token-level KL(teacher || student)",
    )
    temperature: float = Field(default=2.0, gt=0, description="softening temperature of --loss kl")
    lr: float = Field(default=2e-3, gt=0, description="AdamW learning rate of the LoRA weights")
    steps: int = Field(default=150, ge=1, description="training steps per cut")
    batch_size: int = Field(default=8, ge=1, description="training prompts per step (and evaluation batch)")
    save_every: int = Field(
        default=25, ge=1, description="checkpoint every N steps (a killed run resumes there)"
    )
    lora_r: int = Field(default=8, ge=1, description="LoRA rank")
    lora_alpha: float = Field(default=16.0, gt=0, description="LoRA alpha (scale alpha / r)")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the LoRA input")
    target_modules: str = Field(
        default="all",
        description="linear layers of the decoder blocks to adapt: all, or leaf names such as q_proj,v_proj",
    )
    train_data: str | None = Field(
        default=None,
        description="training prompts: a task, data set or JSONL manifest (default: <task>:train)",
    )
    train_limit: int = Field(default=256, ge=1, description="training prompts (the first N)")
    adapter: str | None = Field(
        default=None, description="re-evaluate saved adapters (a run's adapters/ folder) without training"
    )
    decoding: str = Field(
        default="greedy,beam3,sample", description="decoding strategies: greedy, beam<N>, sample"
    )
    num_samples: int = Field(default=5, ge=1, description="draws (seeds) of the sample strategy")
    max_new_tokens: int | None = Field(default=None, ge=1, description="override the tasks' per-kind budgets")
    sentence_model: str | None = Field(default=None, description="None: the bundled all-MiniLM-L6-v2")

    @field_validator("cuts", mode="before")
    @classmethod
    def _cut_list(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return [value]
        if not isinstance(value, str):
            return value
        try:
            cuts = [int(item) for item in value.split(",") if item.strip()]
        except ValueError:
            raise ValueError(
                f"--cut {value!r} is not whole numbers; write e.g. --cut 4 or --cut 4,6,8"
            ) from None
        if not cuts:
            raise ValueError("--cut names no depth; write e.g. --cut 4 or --cut 4,6,8")
        return cuts

    @field_validator("sentence_model", "train_data", "adapter", "per_kind", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    def fingerprint(self) -> str:
        return common.fingerprint(self, FINGERPRINT_KEYS)

    def train_fingerprint(self, cut: int) -> str:
        return common.fingerprint(self, TRAIN_KEYS) + f"-cut{cut}"

    def lora(self) -> lora.LoraSettings:
        return lora.LoraSettings(self.lora_r, self.lora_alpha, self.lora_dropout, self.target_modules)

    def train_settings(self) -> tr.TrainSettings:
        return tr.TrainSettings(
            self.loss,
            self.lr,
            self.steps,
            self.batch_size,
            self.seed,
            self.temperature,
            self.save_every,
            self.chat,
        )


@dataclass
class Item:
    task: str
    kind: str
    sample: Sample

    @property
    def id(self) -> str:
        return f"{self.task}/{self.sample.id}"


class Context:
    """What the batches share: the model, cuts, strategies, adapter weights and the sentence encoder."""

    def __init__(self, adapter: VLMAdapter, config: RecoverConfig, tasks: dict[str, Task], cuts: list[int]):
        self.adapter, self.config, self.tasks, self.cuts = adapter, config, tasks, cuts
        self.strategies = decoding.parse_strategies(config.decoding)
        self.weights: dict[int, tuple[Any, dict]] = {}

    @cached_property
    def encoder(self) -> om.SentenceEncoder:
        return om.get_sentence_encoder(self.config.sentence_model)

    def build(self, task: Task, samples: list[Sample]):
        prompts = [task.prompt(s) for s in samples]
        return self.adapter.build_inputs([s.load_images() for s in samples], prompts, chat=self.config.chat)


# ---------------------------------------------------------------------------------------------- data
def validate(config: RecoverConfig) -> None:
    lora.require_peft()
    decoding.parse_strategies(config.decoding)
    if not config.tasks:
        raise ConfigError("no task given; pass --tasks, e.g. --tasks shapes.")
    negative = [c for c in config.cuts or [] if c < 0]
    if negative:
        raise ConfigError(f"cut depth {negative[0]} is negative; pass cuts 0 <= l_c < L, e.g. --cut 4.")
    if config.cuts is not None and len(set(config.cuts)) != len(config.cuts):
        raise ConfigError(f"--cut {','.join(map(str, config.cuts))} repeats a depth; name each cut once.")
    if config.adapter is not None and not Path(config.adapter).is_dir():
        raise ConfigError(
            f"--adapter {config.adapter} is not a folder; pass the adapters/ folder of a recover run."
        )


def per_kind(task: Task, samples: list[Sample], n: int | None) -> list[Sample]:
    """The first ``n`` samples of each kind, in their original order (all of them without ``n``)."""
    if n is None:
        return samples
    keep = {s.id for group in task.group(samples).values() for s in group[:n]}
    return [s for s in samples if s.id in keep]


def training_tasks(config: RecoverConfig, tasks: dict[str, Task]) -> dict[str, Task]:
    """The training prompts' tasks: ``--train_data``, else each evaluated task's train split."""
    if config.train_data is not None:
        return resolve_all([config.train_data])
    out = {}
    for name, task in tasks.items():
        if "train" not in task.splits:
            raise ConfigError(
                f"task {name!r} has no train split to train the adapters on; pass --train_data manifest.jsonl "
                "(or a task that has one)."
            )
        out[f"{task.name}:train"] = task.with_split("train")
    return out


def check_apart(train: dict[str, list[Sample]], evaluated: dict[str, list[Sample]]) -> None:
    """Refuse training and evaluation data that share a sample id."""
    seen = {s.id for group in train.values() for s in group}
    shared = [s.id for group in evaluated.values() for s in group if s.id in seen]
    if shared:
        raise ConfigError(
            f"{len(shared)} evaluated sample(s) are also training prompts (e.g. {shared[0]!r}); evaluate a held-out "
            "split (e.g. --tasks shapes, which is shapes:test) or pass other --train_data."
        )


def default_cut(num_layers: int) -> int:
    """round(3L/4): on visdepth/shapes-vlm (L = 12) cut 9, the deepest where captions lose at least 20 points
    of ROUGE-L (1.00 -> 0.76 on the first 24 held-out captions); never L, and 0 for L = 1."""
    return min(num_layers - 1, round(3 * num_layers / 4))


# ---------------------------------------------------------------------------------------------- adapters
def adapter_folder(root: Path, cut: int) -> Path:
    """``root/cut<l_c>``, or ``root`` itself when it is one adapter's folder saved for this cut."""
    sub = root / f"cut{cut}"
    if (sub / lora.ADAPTER_CONFIG).is_file():
        return sub
    meta = root / lora.ADAPTER_META
    if (
        (root / lora.ADAPTER_CONFIG).is_file()
        and meta.is_file()
        and json.loads(meta.read_text()).get("cut") == cut
    ):
        return root
    raise ConfigError(
        f"--adapter {root} holds no adapter for cut {cut} (no cut{cut}/ folder); pass --cut to match."
    )


def prepare_adapters(plan: Plan, out: Path) -> None:
    """Every cut's adapter weights into ``plan.state``: loaded, reused, resumed or trained (see the module notes)."""
    config, st = plan.config, plan.state
    ctx: Context = st["ctx"]
    adapter = plan.adapter
    examples = None
    for cut in ctx.cuts:
        fp = config.train_fingerprint(cut)
        if config.adapter is not None:
            folder = adapter_folder(Path(config.adapter), cut)
            peft_config, weights, meta = lora.load_adapter(folder, adapter)
            with lora.attached(adapter, peft_config, weights):  # fit check before any row
                pass
            ctx.weights[cut] = (peft_config, weights)
            st["training"][cut] = TrainingSummary(
                cut=cut,
                source="loaded",
                adapter=str(folder),
                steps=int(meta.get("steps", 0)),
                losses=list(meta.get("losses", [])),
                settings=meta.get("settings", {}),
                train_samples=meta.get("train_samples"),
            )
            continue
        final = out / "adapters" / f"cut{cut}"
        found = lora.existing(final)
        if found is not None:
            meta = read_json(found / lora.ADAPTER_META)
            if meta.get("fingerprint") != fp:
                raise ConfigError(
                    f"{found} holds an adapter trained with other settings; pass another --output_path or delete it."
                )
            peft_config, weights, _ = lora.load_adapter(found, adapter)
            ctx.weights[cut] = (peft_config, weights)
            st["training"][cut] = TrainingSummary(
                cut=cut,
                source="reused",
                adapter=str(found),
                steps=meta["steps"],
                losses=meta["losses"],
                train_samples=meta.get("train_samples"),
                settings=meta["settings"],
            )
            continue
        if examples is None:
            examples = teacher_examples(plan, out)
        peft_config = lora.lora_config(adapter, config.lora())
        settings = config.train_settings()
        with lora.attached(adapter, peft_config, seed=config.seed + 7919 * cut) as peft_model:
            state = tr.train(
                adapter, peft_model, examples, cut, settings, out / "train" / f"cut{cut}", fp, config.progress
            )
            meta = {
                "cut": cut,
                "model": adapter.name,
                "num_layers": adapter.num_layers,
                "fingerprint": fp,
                "steps": state.step,
                "losses": state.losses,
                "train_samples": len(examples),
                "settings": {k: getattr(config, k) for k in TRAIN_KEYS},
            }
            lora.save_adapter(peft_model, final, meta)
            ctx.weights[cut] = (peft_config, lora.adapter_state(peft_model))
        st["training"][cut] = TrainingSummary(
            cut=cut,
            source="resumed" if state.resumed_from else "trained",
            adapter=str(final),
            steps=state.step,
            losses=state.losses,
            resumed_from=state.resumed_from,
            train_samples=len(examples),
            settings=meta["settings"],
        )


def teacher_examples(plan: Plan, out: Path) -> list[tr.Example]:
    """The teacher's greedy answers to the training prompts, kept in ``<run>/train/teacher.json``."""
    config, st = plan.config, plan.state
    path = out / "train" / "teacher.json"
    if path.is_file():
        cached = read_json(path)
        if cached.get("fingerprint") == common.fingerprint(config, TRAIN_KEYS):
            found = tr.examples_from_json(cached["examples"], st["train_samples"], st["train_tasks"])
            if found is not None:
                return found
    examples = tr.teacher_examples(
        plan.adapter,
        st["train_tasks"],
        st["train_samples"],
        chat=config.chat,
        batch_size=config.batch_size,
        progress=config.progress,
    )
    write_json(
        path,
        {"fingerprint": common.fingerprint(config, TRAIN_KEYS), "examples": tr.examples_to_json(examples)},
    )
    return examples


# ---------------------------------------------------------------------------------------------- measuring
def measure_batch(ctx: Context, items: list[Item]) -> list[dict[str, Any]]:
    """Every model's answers with every strategy, scored against the answers and the teacher's greedy answer."""
    adapter, config = ctx.adapter, ctx.config
    task = ctx.tasks[items[0].task]
    kind = items[0].kind
    samples = [it.sample for it in items]
    budget = config.max_new_tokens or task.max_new_tokens_for(kind)
    inputs = ctx.build(task, samples)
    greedy = ctx.strategies[0]
    teacher = decoding.run_strategy(adapter, None, samples, adapter.num_layers, greedy, budget, 1, 0, inputs)
    if config.max_new_tokens is None:
        # every other answer is judged against the teacher's: past twice its longest answer (+8) a model is only
        # rambling (a truncated model may never stop), so the budget ends there
        longest = max(len(adapter.tokenizer(t[0], add_special_tokens=False).input_ids) for t in teacher)
        budget = min(budget, 2 * longest + 8)

    def answers(cut: int) -> dict[str, list[list[str]]]:
        out = {}
        for st in ctx.strategies:
            if cut == adapter.num_layers and st is greedy:
                out[st.name] = teacher
                continue
            out[st.name] = decoding.run_strategy(
                adapter,
                lambda s: ctx.build(task, s),
                samples,
                cut,
                st,
                budget,
                config.num_samples,
                config.seed,
                batch_inputs=inputs,
            )
        return out

    outputs: dict[str, dict[str, list[list[str]]]] = {"full": answers(adapter.num_layers)}
    for cut in ctx.cuts:
        outputs[f"truncated@{cut}"] = answers(cut)
    for cut in ctx.cuts:
        peft_config, weights = ctx.weights[cut]
        with lora.attached(adapter, peft_config, weights):
            outputs[f"recovered@{cut}"] = answers(cut)
    encoder = ctx.encoder if kind in ENCODER_KINDS else None
    rows = []
    for b, (it, sample) in enumerate(zip(items, samples, strict=True)):
        ref = outputs["full"]["greedy"][b][0]
        per_model = {m: {st: texts[b] for st, texts in by_st.items()} for m, by_st in outputs.items()}
        rows.append(
            {
                "task": it.task,
                "sample": sample.id,
                "kind": kind,
                "outputs": per_model,
                "scores": {
                    m: {st: [task.score(sample, t, encoder=encoder) for t in ts] for st, ts in by.items()}
                    for m, by in per_model.items()
                },
                "teacher": {
                    m: {
                        st: [task.compare(sample, ref, t, encoder=encoder) for t in ts]
                        for st, ts in by.items()
                    }
                    for m, by in per_model.items()
                },
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------- experiment
@EXPERIMENTS.register("recover")
class Recover(Experiment):
    """RQ4 through the runner: adapters trained in ``before_rows``; items are (task, sample), batched by kind."""

    name = "recover"
    question = "RQ4: can LoRA self-distillation recover what truncation loses, and does it steady decoding?"
    config_class = RecoverConfig
    result_class = RecoverResult
    #: `visdepth run` trains on the shapes train split whatever it evaluates, so that a study of tasks without a
    #: train split still runs (recorded in train_data); an explicit --train_data wins
    quick = {"per_kind": 4, "steps": 60, "train_limit": 96, "num_samples": 3, "train_data": "shapes:train"}

    def validate(self, config: RecoverConfig) -> None:
        validate(config)

    def load_data(self, config: RecoverConfig) -> dict[str, Any]:
        tasks = resolve_all(config.tasks)
        samples = {
            name: per_kind(task, task.load(config.limit), config.per_kind) for name, task in tasks.items()
        }
        train_tasks, train_samples = {}, {}
        if config.adapter is None:
            train_tasks = training_tasks(config, tasks)
            train_samples = {name: task.load(config.train_limit) for name, task in train_tasks.items()}
            check_apart(train_samples, samples)
        return {
            "tasks": tasks,
            "samples": samples,
            "train_tasks": train_tasks,
            "train_samples": train_samples,
        }

    def plan(self, config: RecoverConfig, adapter: VLMAdapter, data: Any) -> Plan:
        L = adapter.num_layers
        if config.cuts is None:  # concrete in the recorded config
            config = config.model_copy(update={"cuts": [default_cut(L)]})
        for cut in config.cuts:
            validate_cut(adapter, cut)
            if cut == L:
                raise ConfigError(
                    f"cut {cut} is the full model (L = {L}): nothing to recover; pass cuts below {L}, e.g. --cut {L // 2}."
                )
        if config.adapter is None:
            lora.resolve_targets(
                adapter, config.target_modules
            )  # a bad --target_modules fails before training
        tasks, samples = data["tasks"], data["samples"]
        items = [
            Item(name, kind, s)
            for name, task in tasks.items()
            for kind, g in task.group(samples[name]).items()
            for s in g
        ]
        fits = [(it.sample, tasks[it.task].prompt(it.sample)) for it in items]
        fits += [(s, data["train_tasks"][n].prompt(s)) for n, g in data["train_samples"].items() for s in g]
        return Plan(
            config=config,
            adapter=adapter,
            items=items,
            fits=fits,
            batch_size=config.batch_size,
            bucket=lambda item: (item.task, item.kind),
            state={**data, "ctx": Context(adapter, config, tasks, sorted(config.cuts)), "training": {}},
        )

    def before_rows(self, plan: Plan, rows_path: Path) -> None:
        prepare_adapters(plan, rows_path.parent)

    def measure_batch(self, plan: Plan, items: list[Item]) -> list[dict[str, Any]]:
        return measure_batch(plan.state["ctx"], items)

    def summarise(self, plan: Plan, rows: list[dict[str, Any]], extras: dict[str, Any]) -> dict[str, Any]:
        config, st = plan.config, plan.state
        ctx: Context = st["ctx"]
        by_id = {r["id"]: r for r in rows}
        strategies = [s.name for s in ctx.strategies]
        out = {}
        for name, task in st["tasks"].items():
            kinds = {}
            for kind, group in task.group(st["samples"][name]).items():
                kind_rows = [by_id[f"{name}/{s.id}"] for s in group]
                main = score_names(kind, task.answer_metric)[0] if kind != "open" else None
                kinds[kind] = summarise_kind(kind, main, kind_rows, ctx.cuts, strategies, config.seed)
            out[name] = TaskRecovery(task=task.describe(), num_samples=len(st["samples"][name]), kinds=kinds)
        return {
            "num_layers": plan.adapter.num_layers,
            "cuts": ctx.cuts,
            "decoding": [s.describe(config.num_samples) for s in ctx.strategies],
            "training": {str(c): st["training"][c] for c in ctx.cuts},
            "train_data": {
                "source": config.train_data or "the evaluated tasks' train splits",
                "tasks": {n: t.describe() for n, t in st["train_tasks"].items()},
                "samples": {n: len(g) for n, g in st["train_samples"].items()},
            }
            if config.adapter is None
            else {"source": f"adapters loaded from {config.adapter}"},
            "tasks": out,
        }

    def choices(self, plan: Plan) -> dict[str, Any]:
        config = plan.config
        ctx: Context = plan.state["ctx"]
        return {
            "truncation": "drop mode: image tokens in decoder blocks 0..l_c-1 only (visdepth truncate's convention)",
            "student": "the model truncated at l_c (drop mode) with peft LoRA on the decoder blocks' linear layers "
            f"({config.target_modules}); r={config.lora_r}, alpha={config.lora_alpha}, dropout={config.lora_dropout}; "
            "vision tower, projector, embeddings, final norm and head untouched; B initialised to 0, so training "
            "starts from the truncated model",
            "teacher": "the same weights with adapters disabled and no truncation (one copy in memory)",
            "loss": {
                "name": config.loss,
                "semantics": "seq: cross-entropy on the teacher's greedy answer tokens (answer tokens only, EOS "
                "included); kl: tau^2 * KL(teacher || student) of softened next-token distributions at the "
                "teacher's answer positions, mean over tokens",
                "temperature": config.temperature if config.loss == "kl" else None,
            },
            "optimiser": f"AdamW lr={config.lr}, no weight decay, {config.steps} steps of {config.batch_size} "
            "prompts; batch order: seeded permutation per (seed, cut, epoch)",
            "data": "training prompts from the train split (or --train_data), the teacher answering each once, "
            "greedily, with the task's per-kind budget; evaluation on held-out samples (no shared sample id)",
            "decoding": {
                "strategies": [s.describe(config.num_samples) for s in ctx.strategies],
                "greedy": "always run: it is the teacher's reference and the recovery figure's strategy",
                "sample": f"temperature {decoding.SAMPLE_TEMPERATURE}, top-p {decoding.SAMPLE_TOP_P}, top-k off, "
                f"{config.num_samples} draws per question in one call seeded from (seed, sample id)",
                "max_new_tokens": config.max_new_tokens
                or "the teacher's greedy answer: the task's per-kind budget; every other answer of a batch: "
                "min(that budget, 2 x the teacher's longest answer in the batch, in tokens, + 8)",
            },
            "scoring": {
                "ground_truth": "task.score of every answer (multiple choice: the letter read from the text)",
                "teacher": "task.compare with the full model's greedy answer; main per kind: "
                + ", ".join(f"{k} {v}" for k, v in TEACHER_SCORE.items()),
                "sentence_encoder": ctx.encoder.describe()
                if any(it.kind in ENCODER_KINDS for it in plan.items)
                else None,
            },
            "recovered_fraction": "(recovered - truncated) / (full - truncated) of greedy mean main scores; "
            f"percentile bootstrap 95% interval over questions ({N_BOOT} resamples, seed + cut); undefined when "
            "full = truncated",
            "spread": "runs = each strategy, each draw of sample; std (ddof 0) and range of the runs' mean main "
            "scores; consistency = share of questions whose normalised answers are identical in every run; "
            "question variance/std = mean over questions of the variance/std of its main score across runs",
        }


EXPERIMENT = EXPERIMENTS.get("recover")()


def run(config: RecoverConfig, adapter: VLMAdapter | None = None) -> RecoverResult:
    """Run RQ4 through the runner; writes results.json, samples.jsonl, adapters/ and train/ (figures: report)."""
    return runner.run(EXPERIMENT, config, adapter)
