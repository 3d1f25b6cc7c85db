"""Capture the residual stream of the language-model decoder at every depth.

Layer 0 is the decoder's input (the merged text + projected image embeddings) and layer l the output of decoder
block l, taken *before* the final norm, so the last state is comparable with the others. Hooks are used rather
than ``output_hidden_states`` because transformers replaces the last hidden state with the normed one, and
because the same hook points are where later interventions replace or remove states.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from visdepth.models.base import ModelInputs, VLMAdapter


def _first_tensor(value: Any) -> torch.Tensor:
    """Decoder blocks return a tensor in transformers 5 but a tuple in some families and older releases."""
    return value[0] if isinstance(value, tuple | list) else value


def layer_input(args: tuple, kwargs: dict) -> torch.Tensor:
    """The hidden states a decoder block was called with (positional or keyword)."""
    return args[0] if args else kwargs["hidden_states"]


@dataclass
class StateRecorder:
    """Collects one tensor per depth (0..L) during a forward pass, moved to ``device``/``dtype`` as they come."""

    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32
    states: list[torch.Tensor] = field(default_factory=list)

    def keep(self, tensor: torch.Tensor) -> None:
        self.states.append(tensor.detach().to(device=self.device, dtype=self.dtype))


@contextmanager
def record_states(
    adapter: VLMAdapter, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Iterator[StateRecorder]:
    """Within the block, every forward pass of the decoder appends layers 0..L to ``recorder.states``."""
    recorder = StateRecorder(device=device, dtype=dtype)
    layers = adapter.layers

    def grab_input(_module: Any, args: tuple, kwargs: dict) -> None:
        recorder.keep(layer_input(args, kwargs))

    def grab_output(_module: Any, _args: tuple, output: Any) -> None:
        recorder.keep(_first_tensor(output))

    handles = [layers[0].register_forward_pre_hook(grab_input, with_kwargs=True)]
    handles += [layer.register_forward_hook(grab_output) for layer in layers]
    try:
        yield recorder
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def capture_states(
    adapter: VLMAdapter,
    inputs: ModelInputs,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """States of every position at every depth: a tensor (L+1, batch, tokens, hidden) before the final norm.

    Runs the model without its head, so no vocabulary-sized logits are formed.
    """
    kwargs = adapter.model_kwargs(inputs.to(adapter.device, adapter.dtype))
    with record_states(adapter, device=device, dtype=dtype) as recorder:
        adapter.base_model(**kwargs, use_cache=False)
    expected = adapter.num_layers + 1
    if len(recorder.states) != expected:  # pragma: no cover - a family whose forward skips or repeats blocks
        raise RuntimeError(f"captured {len(recorder.states)} layer states, expected {expected}")
    return torch.stack(recorder.states)
