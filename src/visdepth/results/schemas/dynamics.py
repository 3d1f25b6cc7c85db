"""What a dynamics (RQ1) results.json holds: per group, metric and layer, statistics over token clouds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from visdepth.results.meta import RunMeta
from visdepth.results.schemas.common import LayerStats

GROUPS = ("image", "text")
#: per-layer metrics written for every group; ``depth_curvature`` is undefined at layers 0 and 1 (NaN there)
METRICS = (
    "entropy",
    "entropy_norm",
    "id_twonn",
    "id_mle",
    "norm",
    "depth_curvature",
    "seq_curvature",
    "cka_prev",
    "cos_prev",
)
METRIC_LABELS = {
    "entropy": "matrix entropy (nats)",
    "entropy_norm": "normalised matrix entropy",
    "id_twonn": "intrinsic dimension (TwoNN)",
    "id_mle": "intrinsic dimension (MLE)",
    "norm": "mean token L2 norm",
    "depth_curvature": "curvature across depth (rad)",
    "seq_curvature": "curvature along tokens (rad)",
    "cka_prev": "linear CKA with layer l-1",
    "cos_prev": "cosine with own state at l-1",
}


class DynamicsResult(BaseModel):
    meta: RunMeta
    model: dict[str, Any]
    num_layers: int
    layers: list[int]
    depth: list[float]
    num_samples: int
    #: tokens per sample and group before subsampling: mean, min, max over samples
    tokens: dict[str, LayerStats | dict[str, float]]
    token_cloud: Literal["per_sample", "pooled"] = "per_sample"
    pool_size: int | None = None
    #: rows the summary is over: samples (per_sample) or pools (pooled)
    num_clouds: int | None = None
    #: tokens per measured cloud and group (after max_tokens and pooling): mean, min, max over clouds
    cloud_tokens: dict[str, dict[str, float]] = Field(default_factory=dict)
    summary: dict[str, dict[str, LayerStats]]
    baseline: dict[str, dict[str, LayerStats]] | None = None
    files: dict[str, str] = Field(default_factory=dict)
