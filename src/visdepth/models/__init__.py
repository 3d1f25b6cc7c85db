"""The model layer: ``load`` any supported Hugging Face VLM (or a tiny random one by name) into one handle.

Families register themselves by ``config.model_type`` when their module is imported below; adding a family is
adding one file here and one import line.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch

from visdepth.defaults import DEFAULT_MODEL
from visdepth.errors import ConfigError, UnsupportedModelError
from visdepth.models.base import ModelInputs, VLMAdapter
from visdepth.models.compat import check_structure
from visdepth.models.files import check_model_source
from visdepth.models.registry import (
    adapter_for,
    supported_families,
    supported_model_types,
    tiny_adapter,
    tiny_names,
)
from visdepth.models.tiny import build_random

DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

# One module per family; importing it registers its adapter.
FAMILY_MODULES = ("llava", "qwen2_vl", "gemma3", "paligemma", "idefics3", "internvl")
for _name in FAMILY_MODULES:
    importlib.import_module(f"visdepth.models.{_name}")

# Trained models that ship inside visdepth (no download): name -> (package, folder); visdepth.defaults names the
# default of every command.
BUILTIN_MODELS = {"visdepth/shapes-vlm": ("visdepth.reference", "shapes_vlm")}

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "ModelInputs",
    "VLMAdapter",
    "builtin_model_path",
    "load",
    "resolve_device",
    "resolve_dtype",
    "tiny_names",
]


def builtin_model_path(name: str) -> str:
    """The folder of a built-in model (``visdepth/shapes-vlm``), loadable by plain transformers too."""
    from importlib import resources

    package, folder = BUILTIN_MODELS[name]
    return str(resources.files(package) / folder)


#: what ``--device`` takes, for messages
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto`` -> the first GPU when there is one, else the CPU; anything else is checked against this machine.

    Raises :class:`~visdepth.errors.ConfigError` for a string that names no device, or a device this machine
    lacks (``cuda`` where torch sees no GPU), so that the mistake shows before anything is loaded.
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(str(device).strip().lower())
        except (RuntimeError, ValueError):
            raise ConfigError(f"--device {device!r} is not a device; use {DEVICE_CHOICES}.") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "torch here is a CPU-only build" if torch.version.cuda is None else "torch finds no CUDA GPU"
            )
            raise ConfigError(
                f"--device {device!r} asks for a CUDA GPU but {why}; use --device cpu, or --device auto to take a "
                "GPU only where there is one."
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(
                f"--device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}; pick one "
                "of them or use --device auto."
            )
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(
                f"--device {device!r} asks for Apple's MPS, which this machine lacks; use --device cpu or auto."
            )
        return dev
    raise ConfigError(f"--device {device!r} is not a device visdepth runs on; use {DEVICE_CHOICES}.")


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype | None:
    """``auto`` keeps the checkpoint's dtype on GPU and uses float32 on CPU (half precision is slow there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return None if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise UnsupportedModelError(
            f"unknown dtype {dtype!r}; use --dtype with one of auto, {', '.join(sorted(DTYPES))}."
        )
    return DTYPES[dtype]


def _supported_sentence() -> str:
    return (
        f"supported families: {', '.join(supported_families())} "
        f"(model types {', '.join(supported_model_types())}); tiny test models: {', '.join(tiny_names())}."
    )


def load(
    model: str = DEFAULT_MODEL,
    *,
    device: str | None = "auto",
    dtype: str | torch.dtype | None = "auto",
    attn_implementation: str = "sdpa",
    seed: int = 0,
    **model_args: Any,
) -> VLMAdapter:
    """Load a VLM by hub id, local path or built-in name and return its adapter.

    Built-in names: ``visdepth/shapes-vlm`` (the default), a LLaVA trained on the ``shapes`` benchmark.

    ``tiny:<variant>`` builds a tiny random model of that family offline (weights drawn from ``seed``);
    ``model_args`` go to ``from_pretrained`` (``processor_``-prefixed ones to the processor).
    ``attn_implementation`` defaults to ``sdpa``: interventions need an explicit attention mask, which the
    flash-attention kernels do not take.
    """
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    sharded = model_args.get("device_map") is not None
    if sharded:
        # accelerate places (and casts) the weights while loading; a dispatched model must not be moved after
        model_args = sharding_args(model_args, dev, torch_dtype)
    if model.startswith("tiny:"):
        variant = model.removeprefix("tiny:")
        cls = tiny_adapter(variant)
        if cls is None:
            raise UnsupportedModelError(f"unknown tiny model {model!r}; {_supported_sentence()}")
        if model_args:
            raise ConfigError(
                f"tiny models are built from a config and take no --model_args (got {', '.join(model_args)}); "
                "leave --model_args out or load a checkpoint folder."
            )
        adapter = build_random(variant, seed=seed)
        adapter.model.config._attn_implementation = attn_implementation
        _set_attn(adapter, attn_implementation)
    elif model in BUILTIN_MODELS:
        adapter = _load_pretrained(builtin_model_path(model), attn_implementation, **model_args)
        adapter.name = model
    else:
        adapter = _load_pretrained(model, attn_implementation, **model_args)
    check_structure(adapter)
    if not sharded:
        adapter.model.to(device=dev, dtype=torch_dtype) if torch_dtype else adapter.model.to(dev)
    return adapter


def sharding_args(
    model_args: dict[str, Any], device: torch.device, dtype: torch.dtype | None
) -> dict[str, Any]:
    """``from_pretrained`` arguments of a model sharded by accelerate (``--model_args device_map=auto``).

    The dtype goes to ``from_pretrained`` (a dispatched model cannot be cast afterwards). ``max_memory`` may be one
    size for every GPU (``max_memory=20GiB``) or a mapping (from a ``--config`` file: ``{0: 20GiB, cpu: 60GiB}``,
    whose digit keys become GPU indices). ``device_map=auto`` on a machine without a GPU keeps everything on the CPU
    unless ``max_memory`` says otherwise; parts that fit nowhere go to ``offload_folder`` on disk.
    """
    args = dict(model_args)
    if dtype is not None:
        args.setdefault("dtype", dtype)
    memory = args.get("max_memory")
    if isinstance(memory, (str, int)):
        gpus = torch.cuda.device_count() if device.type == "cuda" else 0
        if not gpus:
            raise ConfigError(
                f"--model_args max_memory={memory} is a size per GPU but this machine has none; give a mapping in "
                "a --config file (model_args: {max_memory: {cpu: 8GiB}}) or leave max_memory out."
            )
        args["max_memory"] = dict.fromkeys(range(gpus), memory)
    elif isinstance(memory, dict):
        args["max_memory"] = {int(k) if str(k).isdigit() else k: v for k, v in memory.items()}
    device_map = args["device_map"]
    if isinstance(device_map, str) and device_map not in ACCELERATE_MAPS and not _is_device(device_map):
        raise ConfigError(
            f"--model_args device_map={device_map!r} is not one accelerate knows; use auto, balanced, "
            "balanced_low_0, sequential, a device (cpu, cuda:0), or a mapping of module names to devices in a "
            "--config file."
        )
    return args


#: the device maps accelerate computes itself
ACCELERATE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def _is_device(name: str) -> bool:
    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        return False
    return True


def _set_attn(adapter: VLMAdapter, implementation: str) -> None:
    """Tiny models are built from configs, so set the attention kernel on every sub-config."""
    try:
        adapter.model.set_attn_implementation(implementation)
    except (AttributeError, ValueError):  # older API: set it on the configs
        for cfg in (adapter.config, adapter.text_config):
            cfg._attn_implementation = implementation


def _load_pretrained(model_id: str, attn_implementation: str, **model_args: Any) -> VLMAdapter:
    from transformers import AutoConfig

    trust = bool(model_args.get("trust_remote_code", False))
    check_model_source(
        model_id,
        revision=model_args.get("revision"),
        cache_dir=model_args.get("cache_dir"),
        known=[*BUILTIN_MODELS, *tiny_names()],
    )
    try:
        config = AutoConfig.from_pretrained(model_id, trust_remote_code=trust)
    except (OSError, ValueError) as err:
        raise UnsupportedModelError(
            f"could not read a config for {model_id!r} ({str(err).splitlines()[0]}); give a hub id, a local "
            f"folder with config.json, or a built-in name. {_supported_sentence()}"
        ) from err
    cls = adapter_for(config.model_type)
    if cls is None:
        kind = "a text-only model" if not hasattr(config, "vision_config") else "not a supported VLM"
        raise UnsupportedModelError(
            f"{model_id!r} has model type {config.model_type!r}, {kind}; {_supported_sentence()}"
        )
    model_args.setdefault("attn_implementation", attn_implementation)
    return cls.from_pretrained(model_id, **model_args)
