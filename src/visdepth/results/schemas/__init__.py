"""Result schemas, apart from the code that computes them: report/ reads result files through these and never
imports an experiment."""

from visdepth.results.schemas.common import LayerStats
from visdepth.results.schemas.dynamics import DynamicsResult
from visdepth.results.schemas.reason import Interval, ReasonResult, ReasonTaskSummary
from visdepth.results.schemas.swap import DistanceCurve, SwapResult
from visdepth.results.schemas.truncate import (
    DepthPick,
    KindSummary,
    TaskSummary,
    TimingSummary,
    TruncateResult,
)

__all__ = [
    "DepthPick",
    "DistanceCurve",
    "DynamicsResult",
    "Interval",
    "KindSummary",
    "LayerStats",
    "ReasonResult",
    "ReasonTaskSummary",
    "SwapResult",
    "TaskSummary",
    "TimingSummary",
    "TruncateResult",
]
