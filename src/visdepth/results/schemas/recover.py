"""What a recover (RQ4) results.json holds: per task, kind and cut, the quality of the full, truncated and
recovered (LoRA-distilled) models, the recovered fraction, the spread across decoding strategies, the loss curves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from visdepth.results.meta import RunMeta


class Interval(BaseModel):
    """A statistic with a percentile bootstrap interval over questions (``None``: undefined, see ``note``)."""

    value: float | None
    low: float | None
    high: float | None
    n_boot: int
    note: str | None = None


class Recovery(BaseModel):
    """One kind at one cut, greedy decoding: mean main score of each model and the recovered fraction
    (recovered - truncated) / (full - truncated), against ground truth and against the teacher's outputs."""

    cut: int
    full: float | None
    truncated: float | None
    recovered: float | None
    fraction: Interval
    teacher_full: float | None = Field(
        description="the full model against its own greedy output (1 by construction)"
    )
    teacher_truncated: float | None
    teacher_recovered: float | None
    teacher_fraction: Interval


class Spread(BaseModel):
    """How much one model's results vary across decoding runs (each strategy; each seed of sampling)."""

    runs: list[str]
    scores: list[float | None] = Field(description="mean main score of each run")
    std: float | None = Field(description="standard deviation of the runs' mean scores (ddof 0)")
    range: float | None = Field(description="max - min of the runs' mean scores")
    consistency: float | None = Field(description="share of questions answered identically in every run")
    question_variance: float | None = Field(description="mean over questions of the variance of its scores")
    question_std: float | None = Field(description="mean over questions of the std of its scores")


class KindRecovery(BaseModel):
    kind: str
    n: int
    main_score: str | None
    teacher_score: str
    #: model ("full", "truncated@4", "recovered@4") -> strategy -> metric -> mean over questions (and draws)
    scores: dict[str, dict[str, dict[str, float]]]
    teacher: dict[str, dict[str, dict[str, float]]]
    recovery: dict[str, Recovery] = Field(description="per cut (as a string)")
    spread: dict[str, Spread] = Field(description="per model")


class TaskRecovery(BaseModel):
    task: dict[str, Any]
    num_samples: int
    kinds: dict[str, KindRecovery]


class TrainingSummary(BaseModel):
    cut: int
    source: str = Field(
        description="trained, resumed, reused (a finished adapter of this run) or loaded (--adapter)"
    )
    adapter: str = Field(
        description="the adapter's folder: relative to the run folder when it is this run's own (so a copied run "
        "folder still points at it), the path given to --adapter else"
    )
    steps: int
    losses: list[float]
    resumed_from: int | None = None
    train_samples: int | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class RecoverResult(BaseModel):
    meta: RunMeta
    model: dict[str, Any]
    num_layers: int
    cuts: list[int]
    decoding: list[dict[str, Any]]
    training: dict[str, TrainingSummary]
    train_data: dict[str, Any]
    tasks: dict[str, TaskRecovery]
    files: dict[str, str] = Field(default_factory=dict)
