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
settings fail before anything is trained); :meth:`Recover.prepare` runs inside the runner's lock of the run
folder, before any row is measured (in a data-parallel run on the main process only; the others then load the
saved adapters in :meth:`Recover.before_rows`), and trains (or resumes training, or reuses a finished adapter of the same
settings, or loads ``--adapter``; :mod:`~visdepth.experiments.recovery.adapters`) every cut's adapter into ``<run>/adapters/cut<l_c>/``, with checkpoints in
``<run>/train/cut<l_c>/``. Rows are then measured and resumed by the runner like every other experiment's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from visdepth.data import Sample
from visdepth.errors import ConfigError
from visdepth.experiments import common, runner
from visdepth.experiments.api import Experiment, Plan
from visdepth.experiments.recovery import decoding, lora
from visdepth.experiments.recovery import train as tr
from visdepth.experiments.recovery.adapters import prepare_adapters
from visdepth.experiments.recovery.measure import ENCODER_KINDS, Context, Item, measure_batch
from visdepth.experiments.recovery.summary import N_BOOT, TEACHER_SCORE, summarise_kind
from visdepth.interventions.truncate import validate_cut
from visdepth.models import VLMAdapter
from visdepth.registry import EXPERIMENTS
from visdepth.results.schemas.recover import RecoverResult, TaskRecovery
from visdepth.tasks import Task, score_names
from visdepth.tasks.registry import resolve_all

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
        return common.cut_list(value, allow_all=False)

    @field_validator("sentence_model", "train_data", "adapter", "per_kind", mode="before")
    @classmethod
    def _none(cls, value: Any) -> Any:
        return common.none_word(value)

    def fingerprint(self) -> str:
        return common.fingerprint(self, FINGERPRINT_KEYS)

    def teacher_fingerprint(self) -> str:
        """Hash of what the teacher's training answers depend on (model, data, prompts, seed...)."""
        return common.fingerprint(self, TRAIN_KEYS)

    def train_fingerprint(self, cut: int) -> str:
        """Hash of what the adapter of ``cut`` depends on (its folder records it)."""
        return self.teacher_fingerprint() + f"-cut{cut}"

    def train_record(self) -> dict[str, Any]:
        """The training settings an adapter's visdepth.json records."""
        return {k: getattr(self, k) for k in TRAIN_KEYS}

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
# ---------------------------------------------------------------------------------------------- experiment
@EXPERIMENTS.register("recover")
class Recover(Experiment):
    """RQ4 through the runner: adapters trained in ``prepare``; items are (task, sample), batched by kind."""

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

    def prepare(self, plan: Plan, out: Path) -> None:
        prepare_adapters(plan, out)

    def before_rows(self, plan: Plan, rows_path: Path) -> None:
        # the other processes of a data-parallel run load what the main one trained and saved in prepare
        if set(plan.state["ctx"].weights) != set(plan.state["ctx"].cuts):
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
