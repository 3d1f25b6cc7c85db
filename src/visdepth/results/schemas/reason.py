"""What a reason (RQ5) results.json holds: per task and cut, how often the chain of thought and the final answer
differ from the full model's (with bootstrap intervals), the trajectory measures, the accuracies of direct,
chain-of-thought, budget-capped and teacher-forced answers, and the largest divergences."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from visdepth.results.meta import RunMeta

SHARE_LABELS = {
    "chain_differs": "reasoning path differs from the full model's",
    "answer_differs": "final answer differs from the full model's",
    "same_answer_different_path": "same answer, different path",
    "different_answer_same_path": "different answer, same path",
}
TRAJECTORY_LABELS = {
    "edit_distance": "token edit distance / length",
    "rougeL": "ROUGE-L vs full chain",
    "similarity": "MiniLM cosine vs full chain",
    "first_token_rel": "first differing token / chain length",
    "first_step_rel": "first differing step / steps",
    "length_ratio": "length / full chain's length",
}


class Interval(BaseModel):
    """A mean over samples and its percentile bootstrap interval (``low`` = ``high`` = mean when constant)."""

    mean: float | None
    low: float | None
    high: float | None
    n: int


class ReasonTaskSummary(BaseModel):
    task: dict[str, Any]
    num_samples: int
    #: how many samples had their chain-of-thought prompt from the task's own format or the wrapper
    prompt_sources: dict[str, int]
    #: samples whose full-model chain has no extractable answer (their answers never agree)
    full_unextracted: int
    #: claim name (SHARE_LABELS) -> per cut
    shares: dict[str, list[Interval]]
    #: per cut: share(chain differs) - share(answer differs), paired over samples
    gap: list[Interval]
    #: trajectory measure (TRAJECTORY_LABELS) -> mean per cut
    trajectory: dict[str, list[float | None]]
    #: cot, direct, budget_<b>, teacher_forced -> accuracy against the ground truth per cut
    accuracy: dict[str, list[Interval]]
    #: same keys -> agreement with the full model's answer (direct: with its direct answer) per cut
    agreement: dict[str, list[float | None]]
    #: same keys -> samples whose answer could not be extracted, per cut
    unextracted: dict[str, list[int]]
    #: the samples whose reasoning moved furthest from the full model's (below L), with both chains
    examples: list[dict[str, Any]]
    #: "same answer, different path" at the deepest cuts, with both chains
    same_answer_examples: list[dict[str, Any]] = Field(default_factory=list)


class ReasonResult(BaseModel):
    meta: RunMeta
    model: dict[str, Any]
    num_layers: int
    cuts: list[int]
    depth: list[float]
    mode: str
    budgets: list[float]
    confidence_level: float
    tasks: dict[str, ReasonTaskSummary]
    files: dict[str, str] = Field(default_factory=dict)
