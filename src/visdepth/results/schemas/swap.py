"""What a swap (RQ2) results.json holds: the (l_a, l_b) grids per group and metric, and distance curves."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from visdepth.results.meta import RunMeta

MAIN_METRICS = ("similarity", "first_token", "kl")
METRIC_LABELS = {
    "similarity": "semantic similarity (MiniLM cosine)",
    "first_token": "first-token agreement",
    "kl": "KL(full || swapped), first token (nats)",
    "agreement": "answer agreement",
    "identical": "identical text",
    "rougeL": "ROUGE-L vs full output",
    "bleu_sentence": "mean sentence BLEU vs full output",
}
#: summary names of row metrics whose mean is not what the plain name means elsewhere: ``bleu`` in a summary is
#: corpus BLEU, and a cell's mean over samples of sentence BLEU is not that
SUMMARY_NAMES = {"bleu": "bleu_sentence"}


class DistanceCurve(BaseModel):
    """One metric against the gap ``|l_a - l_b|``: means over the pairs at each gap and over samples."""

    distance: list[int]
    #: distance / L
    relative: list[float]
    all: list[float | None]
    #: pairs with l_a < l_b: the swapped group carries shallower states than the rest
    a_below_b: list[float | None]
    #: pairs with l_a > l_b: the swapped group carries deeper states than the rest
    a_above_b: list[float | None]
    count: list[int]


class SwapResult(BaseModel):
    meta: RunMeta
    model: dict[str, Any]
    task: dict[str, Any]
    num_layers: int
    layers: list[int]
    depth: list[float]
    groups: list[str]
    num_samples: int
    metrics: list[str]
    #: mean swapped positions per sample, per group
    tokens: dict[str, float]
    #: group -> metric -> (len(layers) x len(layers)) means over samples; rows l_a, columns l_b
    matrices: dict[str, dict[str, list[list[float | None]]]]
    curves: dict[str, dict[str, DistanceCurve]]
    #: group -> metric -> mean over the off-diagonal pairs (the headline number)
    off_diagonal: dict[str, dict[str, float | None]]
    #: how close the diagonal (l_a = l_b) came to the unmodified model, over every sample and group
    identity: dict[str, Any]
    files: dict[str, str] = Field(default_factory=dict)
