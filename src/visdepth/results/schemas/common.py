"""Schema pieces every experiment's results share."""

from __future__ import annotations

from pydantic import BaseModel


class LayerStats(BaseModel):
    """One metric of one group across depth: per-layer statistics over samples (NaN-aware)."""

    mean: list[float | None]
    std: list[float | None]
    median: list[float | None]
    q25: list[float | None]
    q75: list[float | None]
    count: list[int]
