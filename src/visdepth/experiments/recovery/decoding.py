"""Decoding strategies for RQ4's stability question: greedy, beam search and nucleus sampling, each run with the
model truncated at a cut (drop mode, KV cache) or whole.

``greedy`` and ``beam<N>`` are deterministic and run batched. ``sample`` (temperature 0.7, top-p 0.9, no top-k)
draws ``num_samples`` answers per question in one call seeded from (seed, sample id), one sample at a time, so a
question's draws do not depend on which other questions shared its batch (a resumed run draws the same).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from visdepth.errors import ConfigError
from visdepth.interventions import TruncationCache, truncate_visual_depth
from visdepth.models import VLMAdapter
from visdepth.models.base import ModelInputs
from visdepth.models.compat import cache_kwarg

SAMPLE_TEMPERATURE = 0.7
SAMPLE_TOP_P = 0.9


@dataclass(frozen=True)
class Strategy:
    name: str
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    sampled: bool = False

    def describe(self, num_samples: int) -> dict[str, Any]:
        runs = num_samples if self.sampled else 1
        return {"name": self.name, "generate": self.gen_kwargs, "runs": runs}


def parse_strategies(text: str | list[str]) -> list[Strategy]:
    """``greedy,beam3,sample`` -> strategies, greedy always first (it is the teacher and the recovery figure)."""
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    out: dict[str, Strategy] = {"greedy": Strategy("greedy", {"do_sample": False, "num_beams": 1})}
    for name in names:
        beam = re.fullmatch(r"beam(\d+)", name)
        if name == "greedy":
            continue
        if beam and int(beam.group(1)) >= 2:
            n = int(beam.group(1))
            out[name] = Strategy(name, {"do_sample": False, "num_beams": n, "num_return_sequences": 1})
        elif name == "sample":
            out[name] = Strategy(
                name,
                {"do_sample": True, "temperature": SAMPLE_TEMPERATURE, "top_p": SAMPLE_TOP_P, "top_k": 0},
                True,
            )
        else:
            raise ConfigError(
                f"--decoding {name!r} is unknown; use greedy, beam<N> (N >= 2, e.g. beam3) or sample, comma-separated."
            )
    return list(out.values())


def sample_seed(seed: int, sample_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{sample_id}".encode()).digest()[:4], "little")


@torch.no_grad()
def generate(
    adapter: VLMAdapter, inputs: ModelInputs, cut: int, max_new_tokens: int, **gen_kwargs: Any
) -> list[str]:
    """Decoded texts of ``model.generate`` with visual depth ``cut`` (drop mode); with ``num_return_sequences``
    the texts of sample ``b`` are consecutive."""
    with truncate_visual_depth(adapter, inputs, cut, "drop"):
        kwargs = adapter.model_kwargs(inputs.to(adapter.device, adapter.dtype))
        if cut < adapter.num_layers:
            kwargs[cache_kwarg(adapter.model)] = TruncationCache()
        out = adapter.model.generate(
            **kwargs,
            max_new_tokens=max_new_tokens,
            use_cache=True,
            return_dict_in_generate=True,
            pad_token_id=getattr(adapter.tokenizer, "pad_token_id", None),
            suppress_tokens=[adapter.image_token_id],
            **gen_kwargs,
        )
    tokens = out.sequences[:, inputs.input_ids.shape[1] :].cpu()
    return [t.strip() for t in adapter.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


def run_strategy(
    adapter: VLMAdapter,
    build: Any,
    samples: list[Any],
    cut: int,
    strategy: Strategy,
    max_new_tokens: int,
    num_samples: int,
    seed: int,
    batch_inputs: ModelInputs | None = None,
) -> list[list[str]]:
    """Per sample, the texts of one strategy (one text, or ``num_samples`` draws); ``build(samples)`` makes inputs."""
    if not strategy.sampled:
        inputs = batch_inputs if batch_inputs is not None else build(samples)
        return [[t] for t in generate(adapter, inputs, cut, max_new_tokens, **strategy.gen_kwargs)]
    out = []
    for s in samples:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(seed, s.id))
            texts = generate(
                adapter,
                build([s]),
                cut,
                max_new_tokens,
                num_return_sequences=num_samples,
                **strategy.gen_kwargs,
            )
        out.append(texts)
    return out
