"""What a truncate (RQ3) results.json holds: per task and kind, quality, closeness and cost at every cut."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from visdepth.results.meta import RunMeta
from visdepth.results.schemas.common import LayerStats

PickRule = Literal["stable", "first"]
PICK_RULES: tuple[str, ...] = get_args(PickRule)


class DepthPick(BaseModel):
    """A chosen cut depth and what it keeps and saves (``None`` fields: not defined for this pick)."""

    criterion: Literal["budget", "vtw"]
    cut: int | None
    depth: float | None
    quality: float | None
    full_quality: float | None
    quality_ratio: float | None
    kl: float | None = Field(
        description="mean KL(full || cut): calibration set for vtw, evaluated samples else"
    )
    prefill_flops_ratio: float | None = Field(description="as computed in the run's mode (mask mode: 1)")
    decode_flops_ratio: float | None
    kv_cache_bytes_ratio: float | None
    drop_prefill_flops_ratio: float | None = Field(
        default=None, description="what drop mode computes at this cut (in a mask run: what drop would spend)"
    )
    note: str | None = None


class KindSummary(BaseModel):
    """One kind of samples of one task, per cut (lists are aligned with ``TruncateResult.cuts``)."""

    kind: str
    n: int
    main_score: str | None
    scores: dict[str, list[float | None]]
    agreement: dict[str, list[float | None]] = Field(description="closeness to the unmodified model's output")
    kl: LayerStats
    compute: dict[str, list[float]]
    budget: DepthPick | None
    vtw: DepthPick | None = Field(description="the task's VTW cut, with this kind's quality there")


class TaskSummary(BaseModel):
    task: dict[str, Any]
    num_samples: int
    kinds: dict[str, KindSummary]
    quality: list[float | None] = Field(description="mean over kinds of each kind's main score, per cut")
    kl: LayerStats
    compute: dict[str, list[float]]
    calibration: dict[str, Any]
    budget: DepthPick
    vtw: DepthPick
    contribution: LayerStats | None = Field(
        default=None,
        description="ShortV's layer contribution per block l = 0..L-1 over the calibration samples: KL(full || "
        "block l's image updates removed), nats",
    )


class TimingSummary(BaseModel):
    """Measured cost per cut on a fixed batch (medians over repeats, seconds; peak memory in bytes)."""

    task: str
    samples: list[str]
    mode: str
    repeats: int
    new_tokens: int
    clock: str
    prefill_s: list[float]
    generate_1_s: list[float]
    generate_n_s: list[float]
    decode_per_token_s: list[float]
    peak_memory_bytes: list[int | None]
    prefill_speedup: list[float]
    decode_speedup: list[float]


class TruncateResult(BaseModel):
    meta: RunMeta
    model: dict[str, Any]
    num_layers: int
    cuts: list[int]
    depth: list[float]
    mode: str = Field(description="the run's first (main) mode, whose summaries are under tasks")
    modes: list[str] = Field(default_factory=list, description="every mode of the run (empty: just mode)")
    budget: float
    vtw_threshold: float
    pick_rule: PickRule
    tasks: dict[str, TaskSummary]
    by_mode: dict[str, dict[str, TaskSummary]] = Field(
        default_factory=dict, description="mode -> task -> summary, for runs of several modes"
    )
    timing: TimingSummary | None = None
    timing_by_mode: dict[str, TimingSummary] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)

    def mode_list(self) -> list[str]:
        """Every mode of the run (older single-mode results: their one mode)."""
        return self.modes or [self.mode]

    def summaries(self, mode: str) -> dict[str, TaskSummary]:
        """Task summaries in ``mode``."""
        return self.by_mode.get(mode) or (self.tasks if mode == self.mode else {})

    def timing_in(self, mode: str) -> TimingSummary | None:
        return self.timing_by_mode.get(mode) or (self.timing if mode == self.mode else None)

    def budget_picks(self) -> list[tuple[str, str | None, dict[str, DepthPick | None]]]:
        """Per task, then per kind of it: ``(task, kind or None for the task, {mode: its budget pick})``, in the
        order of the first mode's summaries (a mode without that task or kind gives None)."""
        rows = []
        for name, task in self.summaries(self.mode_list()[0]).items():
            for kind in [None, *task.kinds]:
                picks: dict[str, DepthPick | None] = {}
                for mode in self.mode_list():
                    t = self.summaries(mode).get(name)
                    picks[mode] = None if t is None else t.budget if kind is None else t.kinds[kind].budget
                rows.append((name, kind, picks))
        return rows
