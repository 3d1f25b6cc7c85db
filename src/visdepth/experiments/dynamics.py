"""RQ1, representation dynamics: per-layer entropy, intrinsic dimension, curvature and similarity of image vs
text tokens.

One sample at a time: capture its residual stream at every depth, split it into the image group and the text
group, measure every layer, append the row to ``samples.jsonl`` and let the states go, so memory never holds more
than one sample's states. The summary (mean, spread and quartiles over samples, per layer) is recomputed from the
JSONL, which is also what makes a killed run resumable.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from visdepth.data import Sample, get_dataset, load_images
from visdepth.defaults import DEFAULT_DATASET_NAME, DEFAULT_MODEL
from visdepth.errors import ConfigError
from visdepth.experiments import common
from visdepth.experiments.common import LayerStats, column_stats, fingerprint
from visdepth.interventions.capture import capture_states
from visdepth.metrics import (
    depth_curvature,
    entropy_choices,
    intrinsic_dimension,
    intrinsic_dimension_choices,
    linear_cka,
    matrix_entropy,
    mean_cosine,
    sequence_curvature,
    skean_entropy,
    skean_entropy_choices,
)
from visdepth.models import VLMAdapter, load
from visdepth.results.io import set_seed, write_json
from visdepth.results.meta import RunMeta, run_metadata

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


FINGERPRINT_KEYS = (
    "model",
    "model_args",
    "data",
    "device",
    "dtype",
    "seed",
    "chat",
    "exclude_special",
    "entropy_alpha",
    "entropy_normalize",
    "id_methods",
    "mle_k",
    "max_tokens",
)


class DynamicsConfig(BaseModel):
    """Everything that decides the numbers of a dynamics run (recorded in full in the result file)."""

    model: str = DEFAULT_MODEL
    model_args: dict[str, Any] = Field(default_factory=dict)
    data: str = DEFAULT_DATASET_NAME
    limit: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    seed: int = 0
    chat: bool = True
    exclude_special: bool = True
    entropy_alpha: float = 1.0
    entropy_normalize: Literal["log_n", "log_d", "log_min", "log_min_nd"] = "log_min"
    entropy_mode: Literal["paper", "skean"] = Field(
        default="paper",
        description="paper: centred, row-normalised Gram spectrum; skean: the reference choices of Skean et al. "
        "2025 (clamped Gram entries, normalised by min(log N, log d))",
    )
    id_methods: tuple[str, ...] = ("twonn", "mle")
    mle_k: int = 20
    max_tokens: int | None = Field(
        default=None, description="subsample each group to at most this many tokens (seeded) before measuring"
    )
    baseline: bool = Field(default=False, description="also measure the random-init twin of the model")
    output_path: str = "outputs"
    log_samples: bool = True
    progress: bool = True

    def fingerprint(self) -> str:
        """Hash of the fields that change per-sample numbers (a resumed run must match it)."""
        return fingerprint(self, FINGERPRINT_KEYS)


class DynamicsResult(BaseModel):
    meta: RunMeta
    model: dict[str, Any]
    num_layers: int
    layers: list[int]
    depth: list[float]
    num_samples: int
    tokens: dict[str, LayerStats | dict[str, float]]
    summary: dict[str, dict[str, LayerStats]]
    baseline: dict[str, dict[str, LayerStats]] | None = None
    files: dict[str, str] = Field(default_factory=dict)


def measure_group(states: torch.Tensor, config: DynamicsConfig) -> dict[str, list[float]]:
    """All per-layer metrics of one token group; ``states`` is (L+1, N, d)."""
    depth = states.shape[0]
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    n = states.shape[1]
    if n == 0:
        return {m: [math.nan] * depth for m in METRICS}
    curvature = depth_curvature(states).tolist()
    for layer in range(depth):
        Z = states[layer]
        if config.entropy_mode == "skean":
            out["entropy"].append(skean_entropy(Z, alpha=config.entropy_alpha, normalized=False))
            out["entropy_norm"].append(skean_entropy(Z, alpha=config.entropy_alpha, normalized=True))
        else:
            out["entropy"].append(matrix_entropy(Z, alpha=config.entropy_alpha))
            out["entropy_norm"].append(
                matrix_entropy(Z, alpha=config.entropy_alpha, normalize=config.entropy_normalize)
            )
        for method in ("twonn", "mle"):
            value = math.nan
            if method in config.id_methods:
                value = intrinsic_dimension(Z, method=method, k=config.mle_k)
            out[f"id_{method}"].append(value)
        out["norm"].append(float(Z.double().norm(dim=-1).mean()))
        out["depth_curvature"].append(curvature[layer])
        out["seq_curvature"].append(sequence_curvature(Z) if n >= 3 else math.nan)
        if layer == 0:
            out["cka_prev"].append(math.nan)
            out["cos_prev"].append(math.nan)
        else:
            prev = states[layer - 1]
            out["cka_prev"].append(linear_cka(prev, Z) if n >= 2 else math.nan)
            out["cos_prev"].append(mean_cosine(prev, Z))
    return out


def _subsample(index: torch.Tensor, limit: int | None, generator: torch.Generator) -> torch.Tensor:
    if limit is None or index.numel() <= limit:
        return index
    keep = torch.randperm(index.numel(), generator=generator)[:limit]
    return index[keep.sort().values]


def measure_sample(
    adapter: VLMAdapter, sample: Sample, config: DynamicsConfig, generator: torch.Generator
) -> dict[str, Any]:
    """Capture one sample's states and measure both groups at every layer."""
    inputs = adapter.build_inputs(load_images(sample), sample.prompt, chat=config.chat)
    states = capture_states(adapter, inputs)[:, 0]  # (L+1, T, d), float32 on CPU
    groups = {
        "image": inputs.image_mask[0].nonzero().flatten(),
        "text": inputs.text_mask(config.exclude_special)[0].nonzero().flatten(),
    }
    row: dict[str, Any] = {"id": sample.id, "tokens": {}, "metrics": {}}
    for name, index in groups.items():
        row["tokens"][name] = int(index.numel())
        index = _subsample(index.cpu(), config.max_tokens, generator)
        row["metrics"][name] = measure_group(states[:, index], config)
    row["tokens"]["total"] = int(inputs.attention_mask.sum())
    row["tokens"]["image_spans"] = len(adapter.spans(inputs.image_mask[0]))
    return row


def summarise(rows: list[dict[str, Any]], key: str = "metrics") -> dict[str, dict[str, LayerStats]]:
    """Per group and metric: per-layer mean, std, median and quartiles over samples, ignoring NaN."""
    summary: dict[str, dict[str, LayerStats]] = {}
    for group in GROUPS:
        summary[group] = {}
        for metric in METRICS:
            values = np.array([r[key][group][metric] for r in rows], dtype=float)  # (samples, L+1)
            values = np.where(values == None, np.nan, values).astype(float)  # noqa: E711 (JSON nulls)
            summary[group][metric] = column_stats(values)
    return summary


def choices(config: DynamicsConfig) -> dict[str, Any]:
    """Every open choice of the study that this run made, as recorded in its results."""
    return {
        "layer_convention": "layer 0 = decoder input embeddings; layer l = output of block l, before final norm",
        "text_group": "prompt tokens minus image, padding"
        + (" and special tokens" if config.exclude_special else ""),
        "token_cloud": "per_sample",
        "token_subsample": config.max_tokens,
        "entropy": skean_entropy_choices(alpha=config.entropy_alpha)
        if config.entropy_mode == "skean"
        else entropy_choices(alpha=config.entropy_alpha, normalize=config.entropy_normalize),
        "intrinsic_dimension": {
            m: intrinsic_dimension_choices(method=m, k=config.mle_k) for m in config.id_methods
        },
        "curvature": {
            "depth_curvature": "paper: mean over tokens of the angle between updates h_l-h_(l-1) and h_(l-1)-h_(l-2)",
            "seq_curvature": "Skean et al. 2025: mean angle between consecutive token differences within a layer",
        },
        "similarity": "cka_prev: linear CKA (Kornblith 2019) between a group's states at l-1 and l; "
        "cos_prev: mean cosine of each token's states at l-1 and l",
        "baseline": "random-init twin (same config and processor, weights drawn with seed + 1)"
        if config.baseline
        else None,
        "prompt_format": "chat template" if config.chat else "raw prompt with image placeholders first",
    }


def run_dir(config: DynamicsConfig, adapter_name: str) -> Path:
    return common.run_dir(config.output_path, adapter_name, "dynamics")


def _measure_all(
    adapter: VLMAdapter,
    samples: list[Sample],
    config: DynamicsConfig,
    path: Path,
    label: str,
) -> list[dict[str, Any]]:
    """Measure every sample not already in ``path`` and return all rows of this configuration."""
    generator = torch.Generator().manual_seed(config.seed)
    return common.resumable_rows(
        path,
        samples,
        lambda sample: measure_sample(adapter, sample, config, generator),
        config_fingerprint=config.fingerprint(),
        label=label,
        progress=config.progress,
    )


def run(config: DynamicsConfig, adapter: VLMAdapter | None = None) -> DynamicsResult:
    """Run RQ1 on a model and data set; writes results.json, samples.jsonl and figures under the output path."""
    set_seed(config.seed)
    if config.entropy_alpha <= 0:
        raise ConfigError(
            f"entropy alpha must be > 0, got {config.entropy_alpha}; use 1 for Shannon entropy."
        )
    unknown = set(config.id_methods) - {"twonn", "mle"}
    if unknown:
        raise ConfigError(f"unknown intrinsic-dimension method(s) {sorted(unknown)}; use twonn and/or mle.")
    samples = get_dataset(config.data, limit=config.limit)
    if not samples:
        raise ConfigError(f"data set {config.data!r} has no samples; check --data and --limit.")
    if adapter is None:
        adapter = load(
            config.model, device=config.device, dtype=config.dtype, seed=config.seed, **config.model_args
        )
    out = run_dir(config, adapter.name)
    out.mkdir(parents=True, exist_ok=True)
    rows = _measure_all(adapter, samples, config, out / "samples.jsonl", "dynamics")
    L = adapter.num_layers
    baseline = None
    if config.baseline:
        # seed + 1: a tiny model is itself a random init drawn with `seed`, and its twin must differ from it
        twin = adapter.random_twin(seed=config.seed + 1)
        base_rows = _measure_all(twin, samples, config, out / "samples_random_init.jsonl", "random-init twin")
        baseline = summarise(base_rows)
    token_counts = {
        g: {
            "mean": float(np.mean([r["tokens"][g] for r in rows])),
            "min": float(np.min([r["tokens"][g] for r in rows])),
            "max": float(np.max([r["tokens"][g] for r in rows])),
        }
        for g in GROUPS
    }
    result = DynamicsResult(
        meta=run_metadata(
            config=config.model_dump(),
            choices=choices(config),
            seed=config.seed,
            device=adapter.device,
            dtype=adapter.dtype,
        ),
        model=adapter.describe(),
        num_layers=L,
        layers=list(range(L + 1)),
        depth=[layer / L for layer in range(L + 1)],
        num_samples=len(rows),
        tokens=token_counts,
        summary=summarise(rows),
        baseline=baseline,
    )
    from visdepth.report.dynamics import plot_dynamics

    figures = plot_dynamics(result, out / "figures")
    result.files = {"samples": "samples.jsonl", **{k: str(p.relative_to(out)) for k, p in figures.items()}}
    if not config.log_samples:
        # the per-sample rows were needed for resuming; drop them only once the summary is safely written
        write_json(out / "results.json", result)
        (out / "samples.jsonl").unlink(missing_ok=True)
        result.files.pop("samples")
    write_json(out / "results.json", result)
    return result
