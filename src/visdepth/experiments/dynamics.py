"""RQ1, representation dynamics: per-layer entropy, intrinsic dimension, curvature and similarity of image vs
text tokens.

A *token cloud* is the set of one group's tokens (image or text) that the metrics see at one layer. Two choices:

- ``per_sample`` (the default): each sample's own tokens. One sample at a time: capture its residual stream at
  every depth, split it into the two groups, measure every layer, append the row to ``samples.jsonl`` and let the
  states go, so memory never holds more than one sample's states.
- ``pooled``: the tokens of ``pool_size`` consecutive samples, concatenated per group (the same tokens at every
  layer, so CKA and cosine with layer l-1 and curvature across depth stay defined). A model that sees 9 image
  tokens per sample gives clouds of ~9 points, too few for entropy, intrinsic dimension or CKA to mean much;
  pooling, as many studies do, gives hundreds. Samples are still captured one at a time and only the pool's
  (subsampled) group states are kept, so memory holds at most one pool: pool_size x tokens x (L+1) x d floats.
  Curvature along the token sequence (``seq_curvature``) runs within one sequence, so it stays per sample and
  is averaged over the pool's samples. Each pool is one row of ``samples.jsonl``, listing its samples.

The summary (mean, spread and quartiles over rows, i.e. samples or pools, per layer) is recomputed from the
JSONL, which is also what makes a killed run resumable.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from visdepth.data import Sample, load_images
from visdepth.errors import ConfigError
from visdepth.experiments import common, runner
from visdepth.experiments.api import Experiment, Plan
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
from visdepth.models import VLMAdapter
from visdepth.registry import EXPERIMENTS
from visdepth.results.io import read_jsonl
from visdepth.results.schemas.dynamics import GROUPS, METRICS, DynamicsResult
from visdepth.tasks.registry import resolve_all

#: metrics that run along one token sequence: in a pooled cloud they are measured per sample and averaged
PER_SEQUENCE_METRICS = ("seq_curvature",)
#: metrics measured on a token cloud as a whole (per sample, or on the pooled cloud)
CLOUD_METRICS = tuple(m for m in METRICS if m not in PER_SEQUENCE_METRICS)
#: the smallest final, partial pool still measured (smaller ones are left out of a pooled run)
MIN_POOL = 2


FINGERPRINT_KEYS = (
    *common.COMMON_FINGERPRINT_KEYS,
    "tasks",
    "exclude_special",
    "entropy_alpha",
    "entropy_normalize",
    "id_methods",
    "mle_k",
    "max_tokens",
    "token_cloud",
    "pool_size",
)
#: fingerprint keys that only matter to pooled runs (left out of a per-sample run's fingerprint)
POOL_KEYS = ("token_cloud", "pool_size")


#: ``token_cloud="auto"`` pools samples whose image group has fewer tokens than this (TwoNN and the Gram spectrum
#: of a handful of points say little; real VLMs give hundreds of image tokens per image)
AUTO_POOL_BELOW = 64


class DynamicsConfig(common.ExperimentConfig):
    """Everything that decides the numbers of a dynamics run (recorded in full in the result file)."""

    exclude_special: bool = Field(
        default=True, description="leave template/special tokens out of the text group"
    )
    entropy_alpha: float = Field(
        default=1.0, gt=0, description="Renyi order of the matrix entropy (1 = Shannon)"
    )
    entropy_normalize: Literal["log_n", "log_d", "log_min", "log_min_nd"] = Field(
        default="log_min",
        description="log_min = log min(N-1, d) (exact maximum after centring), log_min_nd, log_n or log_d",
    )
    entropy_mode: Literal["paper", "skean"] = Field(
        default="paper",
        description="paper: centred, row-normalised Gram spectrum; skean: the reference choices of Skean et al. "
        "2025 (clamped Gram entries, normalised by min(log N, log d))",
    )
    id_methods: tuple[str, ...] = Field(
        default=("twonn", "mle"), description="intrinsic-dimension estimators"
    )
    mle_k: int = Field(default=20, ge=2, description="neighbours of the MLE (Levina-Bickel) estimator")
    max_tokens: int | None = Field(
        default=None,
        description="subsample each sample's groups to at most this many tokens (seeded by seed and sample id) "
        "before measuring or pooling",
    )
    token_cloud: Literal["auto", "per_sample", "pooled"] = Field(
        default="auto",
        description="per_sample: a group's tokens of one sample form one cloud; pooled: the tokens of pool_size "
        f"consecutive samples form one cloud; auto: pooled when a sample has fewer than {AUTO_POOL_BELOW} image "
        "tokens (too few points for entropy or intrinsic dimension), else per_sample",
    )
    pool_size: int = Field(default=64, ge=1, description="samples per pooled cloud (token_cloud=pooled)")
    baseline: bool = Field(default=False, description="also measure the random-init twin of the model")

    def fingerprint(self) -> str:
        """Hash of the fields that change the rows (a resumed run must match it).

        Per-sample rows do not depend on the pooling keys, so a per-sample run leaves them out: its fingerprint
        does not change with an unused ``pool_size`` and matches per-sample runs written before pooling existed.
        """
        pooled = self.token_cloud == "pooled"
        return fingerprint(self, [k for k in FINGERPRINT_KEYS if pooled or k not in POOL_KEYS])


def measure_group(
    states: torch.Tensor, config: DynamicsConfig, segments: Sequence[int] | None = None
) -> dict[str, list[float]]:
    """All per-layer metrics of one token cloud; ``states`` is (L+1, N, d).

    ``segments`` are the token counts of the sequences the cloud concatenates, in order (default: one sequence
    of all N tokens). Every metric is measured on the cloud as a whole except those of ``PER_SEQUENCE_METRICS``,
    which run along one sequence and are averaged over the segments.
    """
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
        out["seq_curvature"].append(_sequence_curvature(Z, segments or [n]))
        if layer == 0:
            out["cka_prev"].append(math.nan)
            out["cos_prev"].append(math.nan)
        else:
            prev = states[layer - 1]
            out["cka_prev"].append(linear_cka(prev, Z) if n >= 2 else math.nan)
            out["cos_prev"].append(mean_cosine(prev, Z))
    return out


def _sequence_curvature(Z: torch.Tensor, segments: Sequence[int]) -> float:
    """Mean of the along-token curvature of each sequence in ``Z`` (rows split by ``segments``), over the
    sequences where it is defined (at least 3 tokens, some non-zero steps); NaN when none is."""
    values = [sequence_curvature(seg) for seg in torch.split(Z, list(segments)) if seg.shape[0] >= 3]
    values = [v for v in values if not math.isnan(v)]
    return math.fsum(values) / len(values) if values else math.nan


def _generator(config: DynamicsConfig, sample_id: str) -> torch.Generator:
    """The token-subsampling generator of one sample, seeded by the run seed and the sample id: a sample keeps
    the same tokens alone or in a pool, in a fresh or a resumed run, whatever was measured before it."""
    digest = hashlib.sha256(f"{config.seed}/{sample_id}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _subsample(index: torch.Tensor, limit: int | None, generator: torch.Generator) -> torch.Tensor:
    if limit is None or index.numel() <= limit:
        return index
    keep = torch.randperm(index.numel(), generator=generator)[:limit]
    return index[keep.sort().values]


def capture_groups(
    adapter: VLMAdapter, sample: Sample, config: DynamicsConfig
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """One sample's states per group, each (L+1, n, d) after ``max_tokens`` subsampling (tokens kept in sequence
    order), and its token counts before subsampling; the sample's full states are let go on return."""
    inputs = adapter.build_inputs(load_images(sample), sample.prompt, chat=config.chat)
    states = capture_states(adapter, inputs)[:, 0]  # (L+1, T, d), float32 on CPU
    index = {
        "image": inputs.image_mask[0].nonzero().flatten().cpu(),
        "text": inputs.text_mask(config.exclude_special)[0].nonzero().flatten().cpu(),
    }
    tokens = {name: int(i.numel()) for name, i in index.items()}
    tokens["total"] = int(inputs.attention_mask.sum())
    tokens["image_spans"] = len(adapter.spans(inputs.image_mask[0]))
    generator = _generator(config, sample.id)
    groups = {name: states[:, _subsample(i, config.max_tokens, generator)] for name, i in index.items()}
    return groups, tokens


def measure_sample(adapter: VLMAdapter, sample: Sample, config: DynamicsConfig) -> dict[str, Any]:
    """Capture one sample's states and measure both groups' clouds at every layer."""
    groups, tokens = capture_groups(adapter, sample, config)
    return {
        "id": sample.id,
        "tokens": tokens,
        "cloud_tokens": {name: int(s.shape[1]) for name, s in groups.items()},
        "metrics": {name: measure_group(s, config) for name, s in groups.items()},
    }


@dataclass(frozen=True)
class Pool:
    """The samples whose tokens form one pooled cloud per group; ``id`` (``pool-0003``) keys its JSONL row."""

    id: str
    samples: tuple[Sample, ...]

    @property
    def sample_ids(self) -> list[str]:
        return [s.id for s in self.samples]


def make_pools(samples: Sequence[Sample], pool_size: int) -> list[Pool]:
    """Consecutive runs of ``pool_size`` samples in data order, so a pool's samples depend only on the data (and
    a larger ``--limit`` keeps the full pools of a smaller one); a final partial pool is kept if it has at least
    ``MIN_POOL`` samples."""
    chunks = [tuple(samples[i : i + pool_size]) for i in range(0, len(samples), pool_size)]
    if chunks and len(chunks[-1]) < min(pool_size, MIN_POOL):
        chunks.pop()
    return [Pool(f"pool-{i:04d}", chunk) for i, chunk in enumerate(chunks)]


def measure_pool(adapter: VLMAdapter, pool: Pool, config: DynamicsConfig) -> dict[str, Any]:
    """Capture the pool's samples one by one, concatenate each group's tokens over them and measure the pooled
    clouds at every layer (``PER_SEQUENCE_METRICS`` per sample, averaged)."""
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in GROUPS}
    sample_tokens = []
    for sample in pool.samples:
        groups, tokens = capture_groups(adapter, sample, config)
        sample_tokens.append(tokens)
        for name in GROUPS:
            parts[name].append(groups[name])
    row: dict[str, Any] = {
        "samples": pool.sample_ids,
        "tokens": {key: sum(t[key] for t in sample_tokens) for key in sample_tokens[0]},
        "sample_tokens": sample_tokens,
        "cloud_tokens": {},
        "metrics": {},
    }
    for name in GROUPS:
        segments = [int(p.shape[1]) for p in parts[name]]
        cloud = torch.cat(parts.pop(name), dim=1)  # (L+1, sum of segments, d)
        row["cloud_tokens"][name] = sum(segments)
        row["metrics"][name] = measure_group(cloud, config, segments)
    return row


def summarise(rows: list[dict[str, Any]], key: str = "metrics") -> dict[str, dict[str, LayerStats]]:
    """Per group and metric: per-layer mean, std, median and quartiles over rows (samples, or pools), ignoring
    NaN. A single row gives its own values with std 0."""
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
        "token_cloud": _cloud_choices(config),
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
        "baseline": "random-init twin (same config and processor, weights drawn with seed + 1 by transformers' "
        "init, except weights it zero-initialises that carry signal, such as Gemma 3's image projection, drawn "
        "from N(0, initializer_range): VLMAdapter.zero_init_redraw)"
        if config.baseline
        else None,
        "prompt_format": "chat template" if config.chat else "raw prompt with image placeholders first",
    }


def _cloud_choices(config: DynamicsConfig) -> dict[str, Any]:
    auto = (
        f"--token_cloud auto (the default) pools when a sample has fewer than {AUTO_POOL_BELOW} image tokens"
    )
    if config.token_cloud == "per_sample":
        return {"mode": "per_sample", "cloud": "one sample's tokens of a group", "statistics_over": "samples",
                "auto_rule": auto}  # fmt: skip
    return {
        "auto_rule": auto,
        "mode": "pooled",
        "pool_size": config.pool_size,
        "cloud": "a group's tokens concatenated over the samples of a pool (the same tokens at every layer)",
        "pools": f"consecutive samples in data order; a final partial pool is kept with >= {MIN_POOL} samples; "
        "each row lists its samples",
        "pooled_metrics": list(CLOUD_METRICS),
        "per_sample_metrics": {
            m: "measured per sample, mean over the pool's samples" for m in PER_SEQUENCE_METRICS
        },
        "statistics_over": "pools",
    }


def _check_pools(path: Path, pools: list[Pool], config_fingerprint: str) -> None:
    """Refuse to resume from a file whose pool of the same id holds other samples (the data or --limit changed,
    e.g. a final partial pool that has grown)."""
    if not path.exists():
        return
    expected = {pool.id: pool.sample_ids for pool in pools}
    for row in read_jsonl(path):
        mine = row.get("config_fingerprint") == config_fingerprint and row.get("id") in expected
        if mine and row.get("samples") != expected[row["id"]]:
            raise ConfigError(
                f"{path}: {row['id']} holds other samples than this run's pool (the data or --limit "
                "changed); pass another --output_path or delete the file."
            )


def validate(config: DynamicsConfig) -> None:
    """Raise a one-line ConfigError for a setting that cannot work, before any data or model is loaded (ranges
    such as entropy_alpha > 0 and pool_size >= 1 are declared on the fields and checked when the config is made)."""
    unknown = set(config.id_methods) - {"twonn", "mle"}
    if unknown:
        raise ConfigError(f"unknown intrinsic-dimension method(s) {sorted(unknown)}; use twonn and/or mle.")


def _count_stats(counts: list[int]) -> dict[str, float]:
    return {"mean": float(np.mean(counts)), "min": float(np.min(counts)), "max": float(np.max(counts))}


def _require_a_pool(samples: list[Sample], config: DynamicsConfig) -> None:
    if not make_pools(samples, config.pool_size):
        raise ConfigError(
            f"{len(samples)} sample(s) make no pool (a partial pool needs {MIN_POOL}); raise --limit or lower "
            "--pool_size."
        )


def resolve_token_cloud(config: DynamicsConfig, adapter: VLMAdapter, samples: list[Sample]) -> DynamicsConfig:
    """``auto`` made concrete from the first sample's image-token count and the number of samples (the resolved
    value is what is recorded and fingerprinted, so an auto run and an explicit run of the same choice resume each
    other)."""
    inputs = adapter.build_inputs(load_images(samples[0]), samples[0].prompt, chat=config.chat)
    n_image = int(inputs.image_mask[0].sum())
    few = n_image < AUTO_POOL_BELOW and bool(make_pools(samples, config.pool_size))
    cloud = "pooled" if few else "per_sample"  # a single sample makes no pool: measure it alone
    return config.model_copy(update={"token_cloud": cloud})


def load_samples(config: DynamicsConfig) -> list[Sample]:
    """The samples of every task in ``config.tasks`` (``limit`` each), prompts in each task's own format."""
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    for name, task in resolve_all(config.tasks).items():
        loaded = task.load(limit=config.limit)
        if not loaded:
            raise ConfigError(f"task {name!r} has no samples; check --tasks and --limit.")
        for sample in loaded:
            if sample.id in seen:
                raise ConfigError(
                    f"sample id {sample.id!r} is in both {seen[sample.id]!r} and {name!r}; run them separately."
                )
            seen[sample.id] = name
            # the model sees the prompt the task formats (multiple-choice options, answer instructions)
            samples.append(sample.model_copy(update={"prompt": task.prompt(sample)}))
    return samples


@EXPERIMENTS.register("dynamics")
class Dynamics(Experiment):
    """RQ1 through the runner: items are samples (per_sample) or pools of samples (pooled)."""

    name = "dynamics"
    question = "RQ1: how do image and text token representations evolve with depth?"
    config_class = DynamicsConfig
    result_class = DynamicsResult
    quick = {"limit": 256, "baseline": True}

    def validate(self, config: DynamicsConfig) -> None:
        validate(config)

    def load_data(self, config: DynamicsConfig) -> list[Sample]:
        samples = load_samples(config)
        if config.token_cloud == "pooled":
            _require_a_pool(samples, config)
        return samples

    def plan(self, config: DynamicsConfig, adapter: VLMAdapter, data: list[Sample]) -> Plan:
        if config.token_cloud == "auto":
            config = resolve_token_cloud(config, adapter, data)
            if config.token_cloud == "pooled":
                _require_a_pool(data, config)
        pooled = config.token_cloud == "pooled"
        items = make_pools(data, config.pool_size) if pooled else data
        return Plan(
            config=config,
            adapter=adapter,
            items=items,
            fits=[(s, s.prompt) for s in data],
            state={"samples": data, "measure": measure_pool if pooled else measure_sample},
        )

    def before_rows(self, plan: Plan, rows_path: Path) -> None:
        if plan.config.token_cloud == "pooled":
            _check_pools(rows_path, list(plan.items), plan.config.fingerprint())

    def measure_batch(self, plan: Plan, items: list[Any]) -> list[dict[str, Any]]:
        return [plan.state["measure"](plan.adapter, item, plan.config) for item in items]

    def after_rows(self, plan: Plan, rows: list[dict[str, Any]], out: Path) -> dict[str, Any]:
        if not plan.config.baseline:
            return {}
        # seed + 1: a tiny model is itself a random init drawn with `seed`, and its twin must differ from it
        twin = plan.adapter.random_twin(seed=plan.config.seed + 1)
        base_rows = common.resumable_rows(
            out / "samples_random_init.jsonl",
            plan.items,
            measure_batch=lambda batch: [plan.state["measure"](twin, item, plan.config) for item in batch],
            config_fingerprint=plan.config.fingerprint(),
            label="random-init twin",
            progress=plan.config.progress,
        )
        return {"baseline": summarise(base_rows)}

    def summarise(self, plan: Plan, rows: list[dict[str, Any]], extras: dict[str, Any]) -> dict[str, Any]:
        config, L = plan.config, plan.adapter.num_layers
        # a pooled row lists its samples' token counts; a per-sample row is its own (rows from before cloud_tokens
        # was recorded fall back to the counts before subsampling)
        sample_tokens = [t for r in rows for t in r.get("sample_tokens", [r["tokens"]])]
        cloud_tokens = [r.get("cloud_tokens", r["tokens"]) for r in rows]
        return {
            "num_layers": L,
            "layers": list(range(L + 1)),
            "depth": [layer / L for layer in range(L + 1)],
            "num_samples": len(sample_tokens),
            "tokens": {g: _count_stats([t[g] for t in sample_tokens]) for g in GROUPS},
            "token_cloud": config.token_cloud,
            "pool_size": config.pool_size if config.token_cloud == "pooled" else None,
            "num_clouds": len(rows),
            "cloud_tokens": {g: _count_stats([t[g] for t in cloud_tokens]) for g in GROUPS},
            "summary": summarise(rows),
            "baseline": extras.get("baseline"),
        }

    def choices(self, plan: Plan) -> dict[str, Any]:
        return choices(plan.config)


EXPERIMENT = EXPERIMENTS.get("dynamics")()


def run(config: DynamicsConfig, adapter: VLMAdapter | None = None) -> DynamicsResult:
    """Run RQ1 on a model and tasks through the runner; writes results.json and samples.jsonl (figures: report)."""
    return runner.run(EXPERIMENT, config, adapter)


def run_dir(config: DynamicsConfig, adapter_name: str) -> Path:
    return common.run_dir(config.output_path, adapter_name, EXPERIMENT.folder(config))
