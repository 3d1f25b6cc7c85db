"""LoRA adapters on the language-model decoder of a VLM, attached in place with peft and removed afterwards.

The student and the teacher are one set of weights: :func:`attached` injects LoRA layers into the decoder blocks'
linear layers of ``adapter.model`` itself (``get_peft_model`` mutates the model in place and only wraps it), so
the adapter's module references (decoder blocks, final norm, head, base model), on which the truncation hooks sit,
stay the modules that run. Inside the block, ``peft_model.disable_adapter()`` is the teacher; leaving the block
unloads the LoRA layers, restoring the original modules and ``requires_grad`` flags, so the model is exactly the
unmodified one again (for the next experiment of ``visdepth run`` too).

Targets are full module names under the decoder blocks (never a bare ``q_proj``, which could match the vision
tower); adapters are saved with peft's ``save_pretrained`` (``adapter_config.json`` + ``adapter_model.safetensors``)
plus ``visdepth.json`` (cut, model, training settings and loss curve).
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visdepth.errors import ConfigError, InputError
from visdepth.models import VLMAdapter

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_META = "visdepth.json"


def require_peft() -> None:
    """A one-line error naming the extra when peft is not installed."""
    if importlib.util.find_spec("peft") is None:
        raise ConfigError(
            "visdepth recover needs peft, which is not installed; install visdepth's lora extra "
            "(pip install 'visdepth[lora]', or pip install 'peft>=0.13')."
        )


@dataclass(frozen=True)
class LoraSettings:
    r: int
    alpha: float
    dropout: float
    target_modules: str  # "all" or comma-separated leaf names of linear layers inside the decoder blocks


def decoder_linears(adapter: VLMAdapter) -> dict[str, str]:
    """Full module name -> leaf name of every ``nn.Linear`` inside the language-model decoder blocks."""
    names = {id(m): n for n, m in adapter.model.named_modules()}
    out: dict[str, str] = {}
    for layer in adapter.layers:
        prefix = names[id(layer)]
        for name, module in layer.named_modules():
            if isinstance(module, nn.Linear):
                out[f"{prefix}.{name}"] = name.rsplit(".", 1)[-1]
    return out


def resolve_targets(adapter: VLMAdapter, target_modules: str) -> list[str]:
    """The full names LoRA goes on: every decoder linear (``all``) or those with the given leaf names."""
    linears = decoder_linears(adapter)
    if not linears:
        raise InputError(
            f"{adapter.name}: no linear layer found in the decoder blocks; LoRA has nothing to adapt."
        )
    if target_modules.strip().lower() == "all":
        return list(linears)
    wanted = [t.strip() for t in target_modules.split(",") if t.strip()]
    known = sorted(set(linears.values()))
    unknown = [t for t in wanted if t not in known]
    if unknown or not wanted:
        raise ConfigError(
            f"--target_modules {target_modules!r}: {', '.join(unknown) or 'nothing'} is not a linear layer of "
            f"the decoder blocks of {adapter.name}; use 'all' or some of {', '.join(known)}."
        )
    return [full for full, leaf in linears.items() if leaf in wanted]


def lora_config(adapter: VLMAdapter, settings: LoraSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=resolve_targets(adapter, settings.target_modules),
        bias="none",
    )


@contextmanager
def attached(
    adapter: VLMAdapter, config: Any, state: dict[str, torch.Tensor] | None = None, *, seed: int = 0
) -> Iterator[Any]:
    """``adapter.model`` with LoRA layers (``config``, a peft LoraConfig) in its decoder, as a PeftModel.

    ``state`` loads adapter weights (keys as :func:`adapter_state` gives them); without it the weights are peft's
    initialisation under ``seed`` (B = 0, so the student starts as the truncated model). The model stays in eval
    mode (the teacher's function never changes); training switches on LoRA dropout only (:func:`lora_train`).
    """
    from peft import get_peft_model, set_peft_model_state_dict

    model = adapter.model
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft asks transformers' deprecated is_gradient_checkpointing on every wrap: noise, once per batch
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        torch.manual_seed(seed)
        peft_model = get_peft_model(model, config)
    try:
        if state is not None:
            try:
                result = set_peft_model_state_dict(peft_model, state)
            except RuntimeError as err:
                raise InputError(_misfit(adapter, str(err).strip().splitlines()[-1])) from None
            missing = [k for k in result.missing_keys if "lora_" in k]
            if result.unexpected_keys or missing:
                what = (result.unexpected_keys or missing)[0]
                raise InputError(_misfit(adapter, f"weight {what} has no place in it"))
        model.eval()
        yield peft_model
    finally:
        peft_model.unload()
        for name, param in model.named_parameters():
            param.requires_grad_(flags.get(name, param.requires_grad))
        for attr in ("peft_config", "_hf_peft_config_loaded"):
            if attr in model.__dict__:
                delattr(model, attr)
        model.eval()


def lora_train(peft_model: Any, on: bool) -> None:
    """Switch LoRA dropout on (training) or off; every other module stays in eval mode."""
    for name, module in peft_model.named_modules():
        if "lora_dropout" in name and isinstance(module, nn.Dropout):
            module.train(on)


def adapter_state(peft_model: Any) -> dict[str, torch.Tensor]:
    """The adapter's weights, detached copies (peft's key names, without the adapter name)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}


def _misfit(adapter: VLMAdapter, why: str) -> str:
    return (
        f"the adapter does not fit {adapter.name} ({why}); pass an adapter folder saved by visdepth recover for "
        "this model."
    )


def save_adapter(peft_model: Any, folder: Path, meta: dict[str, Any]) -> None:
    """``save_pretrained`` (safetensors) plus ``visdepth.json``; written to a temporary folder first, then moved."""
    from visdepth.results.io import write_json

    tmp = folder.with_name(folder.name + ".tmp")
    _remove(tmp)
    peft_model.save_pretrained(str(tmp), safe_serialization=True)
    write_json(tmp / ADAPTER_META, meta)
    replace_folder(tmp, folder)


def replace_folder(tmp: Path, folder: Path) -> None:
    """Move ``tmp`` to ``folder``, replacing it, so that a kill leaves either the old or the new folder whole."""
    old = folder.with_name(folder.name + ".old")
    _remove(old)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    _remove(old)


def _remove(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path)


def existing(folder: Path) -> Path | None:
    """``folder``, or its ``.old`` twin when a kill fell between the two renames of :func:`replace_folder`."""
    for path in (folder, folder.with_name(folder.name + ".old")):
        if (path / ADAPTER_WEIGHTS).is_file() and (path / ADAPTER_CONFIG).is_file():
            return path
    return None


def load_adapter(folder: Path, adapter: VLMAdapter) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
    """(LoraConfig, weights, visdepth meta) of a saved adapter folder; one-line errors when it cannot serve."""
    from peft import LoraConfig
    from safetensors.torch import load_file

    if not (folder / ADAPTER_WEIGHTS).is_file() or not (folder / ADAPTER_CONFIG).is_file():
        raise InputError(
            f"--adapter {folder} holds no {ADAPTER_WEIGHTS} and {ADAPTER_CONFIG}; pass the adapters folder of a "
            "visdepth recover run (or one of its cut<l_c> folders)."
        )
    try:
        config = LoraConfig.from_pretrained(str(folder))
    except (ValueError, TypeError, json.JSONDecodeError) as err:
        raise InputError(f"--adapter {folder}: {ADAPTER_CONFIG} is not a LoRA config ({err}).") from None
    meta_path = folder / ADAPTER_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if meta.get("num_layers") not in (None, adapter.num_layers):
        raise InputError(
            _misfit(
                adapter,
                f"it was trained on a {meta['num_layers']}-layer decoder, this one has {adapter.num_layers}",
            )
        )
    weights = load_file(str(folder / ADAPTER_WEIGHTS))
    # peft saves a shortened set of name suffixes ("up_proj"), which could also match linear layers outside the
    # decoder (a vision tower's); the weights name the exact modules, so those are the targets
    targets = sorted(
        {k.removeprefix("base_model.model.").split(".lora_")[0] for k in weights if ".lora_" in k}
    )
    if not targets:
        raise InputError(f"--adapter {folder}: {ADAPTER_WEIGHTS} holds no LoRA weight.")
    names = dict(adapter.model.named_modules())
    absent = [t for t in targets if t not in names]
    if absent:
        raise InputError(_misfit(adapter, f"it adapts {absent[0]}, which this model has not"))
    config.target_modules = targets
    return config, weights, meta
