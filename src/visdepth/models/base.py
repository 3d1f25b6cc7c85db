"""The contract every model family fulfils: one handle over a Hugging Face VLM, whatever its family.

An adapter maps the canonical pieces the study needs (decoder layers, final norm, head, image-token id, how inputs
are built) to the module paths and processor conventions of one family. The rest of visdepth only talks to this
class; it never asks which family it holds. Family files in this folder subclass it and override only what
differs (see llava.py for the smallest one).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from PIL import Image
from torch import nn

from visdepth.errors import ConfigError, InputError, UnsupportedModelError

if TYPE_CHECKING:
    from visdepth.data.sample import Sample

#: ``from_pretrained`` arguments that say where a checkpoint's files are, as opposed to how the model is built
HUB_ARGS = ("revision", "cache_dir", "token", "local_files_only", "subfolder", "trust_remote_code")
#: what ``AutoProcessor`` raises when a part that images never use cannot be built (a video processor whose class
#: needs torchvision, or the class check of its dummy stand-in)
PROCESSOR_LOAD_ERRORS = (ImportError, ValueError, TypeError, AttributeError)


def _rope_factor(config: Any) -> float | None:
    """How far a RoPE scaling stretches ``max_position_embeddings`` (1 without one); ``None`` for dynamic scaling.

    transformers 5 keeps it in ``rope_parameters`` (one dict, or one per layer type as in Gemma 3), older
    releases in ``rope_scaling``.
    """
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if not isinstance(params, dict):
        return 1.0
    groups = [v for v in params.values() if isinstance(v, dict)] or [params]
    factor = 1.0
    for group in groups:
        kind = group.get("rope_type", group.get("type"))
        if kind == "dynamic":
            return None
        if kind not in (None, "default", "mrope"):
            value = group.get("factor")
            if isinstance(value, (int, float)) and value > 1:
                factor = max(factor, float(value))
    return factor


def module_device(module: nn.Module) -> torch.device:
    """The device ``module`` computes on: its accelerate hook's execution device when it has one (weights on
    disk or offloaded to the CPU show as ``meta`` there), else that of its first weight in memory. Works whether or
    not accelerate's hooks are installed (transformers leaves them out for a map holding a single device)."""
    hook = getattr(module, "_hf_hook", None)
    for h in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):
        execution = getattr(h, "execution_device", None)
        if execution is not None:
            return torch.device(f"cuda:{execution}" if isinstance(execution, int) else execution)
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def _map_summary(device_map: dict[str, Any] | None) -> dict[str, int] | None:
    """How many modules of a device map sit on each device (``None`` without a map)."""
    if not device_map:
        return None
    counts: dict[str, int] = {}
    for device in device_map.values():
        counts[str(device)] = counts.get(str(device), 0) + 1
    return counts


def has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


@dataclass
class ModelInputs:
    """A processed, left-padded batch ready for the model, plus the token groups of every position.

    ``tensors`` is what the model's forward takes (input_ids, attention_mask, pixel_values and the family's
    extras). ``image_mask`` marks positions that carry projected vision features; ``special_mask`` marks
    template/special tokens (BOS, role markers, image delimiters) so that the text group can exclude them.
    """

    tensors: dict[str, torch.Tensor]
    image_mask: torch.Tensor
    special_mask: torch.Tensor
    prompts: list[str] = field(default_factory=list)

    @property
    def input_ids(self) -> torch.Tensor:
        return self.tensors["input_ids"]

    @property
    def attention_mask(self) -> torch.Tensor:
        return self.tensors["attention_mask"]

    def text_mask(self, exclude_special: bool = True) -> torch.Tensor:
        """Prompt positions that are neither image nor padding (nor special tokens when asked)."""
        mask = self.attention_mask.bool() & ~self.image_mask
        if exclude_special:
            mask &= ~self.special_mask
        return mask

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ModelInputs:
        moved = {}
        for key, value in self.tensors.items():
            value = value.to(device)
            # only floating inputs (pixel values) follow the model dtype; ids, grids and masks keep theirs
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            moved[key] = value
        return ModelInputs(moved, self.image_mask.to(device), self.special_mask.to(device), self.prompts)


class VLMAdapter:
    """One handle over a loaded VLM: structure, inputs and token groups.

    Subclasses set ``family`` and ``model_types`` (the ``config.model_type`` values they serve) and override the
    hooks below where their family differs from the LLaVA-style default.
    """

    family: ClassVar[str] = "base"
    model_types: ClassVar[tuple[str, ...]] = ()
    #: names of tiny random variants this family can build (``tiny:<variant>``)
    tiny_variants: ClassVar[tuple[str, ...]] = ()
    #: the key under which the processor wants images (flat list vs one list per sample)
    nested_images: ClassVar[bool] = False
    #: the processor class (its name in ``transformers``) per ``config.model_type`` that a checkpoint's processor is
    #: rebuilt as when ``AutoProcessor`` cannot load it; a model type without one gets AutoProcessor's error
    processor_classes: ClassVar[dict[str, str]] = {}
    #: whether that rebuild is tried where torchvision is installed too (``False``: AutoProcessor's error stands)
    rebuild_with_torchvision: ClassVar[bool] = True

    def __init__(self, model: nn.Module, processor: Any, name: str):
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.name = name
        self.config = model.config
        warned = getattr(self.tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):
            # the tokenizer's "longer than the maximum" warning: check_context refuses such prompts itself,
            # against the model's limit rather than the tokenizer's
            warned["sequence-length-is-longer-than-the-specified-maximum"] = True
        if getattr(self.tokenizer, "padding_side", None) is not None:
            # generation continues on the right, so prompts of unequal length are padded on the left
            self.tokenizer.padding_side = "left"

    # ------------------------------------------------------------------ structure
    @property
    def base_model(self) -> nn.Module:
        """The model without its head (``model.model`` in every transformers 5 VLM)."""
        return self.model.model

    @property
    def language_model(self) -> nn.Module:
        return self.base_model.language_model

    @property
    def layers(self) -> nn.ModuleList:
        return self.language_model.layers

    @property
    def norm(self) -> nn.Module:
        return self.language_model.norm

    @property
    def lm_head(self) -> nn.Module:
        return self.model.get_output_embeddings()

    @property
    def embed_tokens(self) -> nn.Module:
        return self.model.get_input_embeddings()

    @property
    def num_layers(self) -> int:
        """L, the number of decoder blocks; layer states are indexed 0..L (0 = embedding output)."""
        return len(self.layers)

    @property
    def text_config(self) -> Any:
        return self.config.get_text_config()

    @property
    def hidden_size(self) -> int:
        return self.text_config.hidden_size

    @property
    def image_token_id(self) -> int:
        for key in ("image_token_id", "image_token_index"):
            value = getattr(self.config, key, None)
            if value is not None:
                return int(value)
        raise InputError(f"{self.name}: the config names no image token id; set config.image_token_id.")

    @property
    def device(self) -> torch.device:
        """Where inputs go: the input embedding's device. In a model sharded by a ``device_map`` that is where
        accelerate runs the embedding (the CPU for a part kept on disk); the blocks may sit elsewhere, so
        interventions move what they carry to each block's tensors rather than assume this device."""
        return module_device(self.embed_tokens)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the weights (of those in memory, when part of a sharded model is offloaded)."""
        for param in self.model.parameters():
            if param.device.type != "meta" and param.is_floating_point():
                return param.dtype
        return next(self.model.parameters()).dtype

    @property
    def device_map(self) -> dict[str, Any] | None:
        """The ``device_map`` the model was loaded with (module -> device, ``"cpu"`` or ``"disk"``), if any."""
        return getattr(self.model, "hf_device_map", None)

    # ------------------------------------------------------------------ token groups
    def image_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Positions holding projected vision features, found from the ids (several images: several spans)."""
        return input_ids == self.image_token_id

    def special_token_ids(self) -> set[int]:
        """Ids of template/special tokens (BOS, EOS, pad, role markers, image delimiters), never the image id."""
        ids = set(getattr(self.tokenizer, "all_special_ids", []) or [])
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        ids.update(int(i) for i, tok in added.items() if getattr(tok, "special", False))
        ids.discard(self.image_token_id)
        return ids

    def special_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        special = torch.tensor(
            sorted(self.special_token_ids()), dtype=input_ids.dtype, device=input_ids.device
        )
        return torch.isin(input_ids, special) & ~self.image_mask(input_ids)

    @staticmethod
    def spans(mask: torch.Tensor) -> list[tuple[int, int]]:
        """Contiguous [start, end) runs of True in a 1-D mask: one per image (or tile group)."""
        flags = mask.to(torch.int8).tolist()
        runs, start = [], None
        for i, flag in enumerate(flags + [0]):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                runs.append((start, i))
                start = None
        return runs

    # ------------------------------------------------------------------ inputs
    def format_prompt(self, prompt: str, num_images: int, chat: bool = True) -> str:
        """The prompt text with one image placeholder per image, through the chat template when there is one."""
        template = getattr(self.processor, "chat_template", None) or getattr(
            self.tokenizer, "chat_template", None
        )
        if chat and template:
            content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": prompt}]
            messages = [{"role": "user", "content": content}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.image_placeholder() * num_images + prompt

    def image_placeholder(self) -> str:
        """What one image looks like in a raw (template-free) prompt; the processor expands it."""
        return getattr(self.processor, "image_token", None) or "<image>"

    def process(self, texts: list[str], images: list[list[Image.Image]]) -> dict[str, torch.Tensor]:
        """Call the family's processor on formatted texts; override when the processor cannot be used as is."""
        image_arg: Any = images if self.nested_images else [im for group in images for im in group]
        out = self.processor(text=texts, images=image_arg or None, return_tensors="pt", padding=True)
        return dict(out)

    def build_inputs(
        self,
        images: Sequence[Sequence[Image.Image]] | Sequence[Image.Image],
        prompts: Sequence[str] | str,
        chat: bool = True,
        labels: Sequence[str] | None = None,
    ) -> ModelInputs:
        """Model inputs for a batch of samples (a sample = its images + a prompt), padded on the left.

        A prompt longer than the model's context is refused (:meth:`check_context`); ``labels`` name the samples
        in that message (``sample 'x' (data.jsonl line 3)``).
        """
        if isinstance(prompts, str):
            prompts, images = [prompts], [list(images)]  # type: ignore[list-item]
        groups = [list(g) for g in images]  # type: ignore[arg-type]
        if len(groups) != len(prompts):
            raise InputError(
                f"got {len(prompts)} prompts but {len(groups)} image lists; give one list per prompt."
            )
        for i, group in enumerate(groups):
            if not group:
                raise InputError(
                    f"sample {i} has no image; visdepth studies image tokens, so give every prompt an image."
                )
        texts = [self.format_prompt(p, len(g), chat=chat) for p, g in zip(prompts, groups, strict=True)]
        rgb = [[im.convert("RGB") for im in g] for g in groups]
        try:
            tensors = self.process(texts, rgb)
        except (ValueError, IndexError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InputError(
                f"{self.name}: the processor could not build inputs ({first}); check that the prompt and the "
                "number of images match the model's expectations."
            ) from err
        tensors = self.add_extras(tensors)
        ids = tensors["input_ids"]
        if "attention_mask" not in tensors:
            tensors["attention_mask"] = torch.ones_like(ids)
        image_mask = self.image_mask(ids)
        for i in range(len(groups)):
            if not bool(image_mask[i].any()):
                raise InputError(
                    f"sample {i}: no image token survived processing; the prompt template of {self.name} "
                    "may be dropping the image placeholder."
                )
        inputs = ModelInputs(tensors, image_mask, self.special_mask(ids), list(prompts))
        self.check_context(inputs, labels)
        return inputs

    # ------------------------------------------------------------------ context length
    @property
    def context_limit(self) -> int | None:
        """The most positions the language model was built for, or ``None`` where its config does not say.

        That is the text config's ``max_position_embeddings``, times the factor of a RoPE scaling meant to
        stretch it (linear, YaRN...); ``None`` (nothing refused) when the value is missing or the scaling is
        dynamic, which sets no fixed limit.
        """
        limit = getattr(self.text_config, "max_position_embeddings", None)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            return None
        factor = _rope_factor(self.text_config)
        return None if factor is None else int(limit * factor)

    def check_context(self, inputs: ModelInputs, labels: Sequence[str] | None = None) -> None:
        """Refuse a batch holding a prompt longer than :attr:`context_limit` (an :class:`InputError` naming the
        sample, its length and the limit): past it the model's states are not what it was trained to produce."""
        limit = self.context_limit
        if limit is None:
            return
        for i, n in enumerate(inputs.attention_mask.sum(dim=1).tolist()):
            if n > limit:
                if labels is not None:
                    who = labels[i]
                else:
                    prompt = inputs.prompts[i] if i < len(inputs.prompts) else ""
                    head = prompt[:30] + ("..." if len(prompt) > 30 else "")
                    who = f"sample {i} of the batch (prompt {head!r})"
                raise InputError(
                    f"{who} is {int(n)} tokens long with its images, more than the {limit} positions of "
                    f"{self.name} (max_position_embeddings); shorten the prompt or give it fewer or smaller images."
                )

    def check_fits(
        self, samples: Sequence[Sample], prompts: Sequence[str] | None = None, *, chat: bool = True
    ) -> None:
        """Build every sample's inputs once and refuse the first longer than the model's context, so a run stops
        before its first row rather than at the long sample; ``prompts`` default to the samples' own.

        Experiments call this after loading the model (the tokenizer and image processor count the tokens) and
        before measuring. Nothing is built where :attr:`context_limit` is unknown.
        """
        if self.context_limit is None:
            return
        for i, sample in enumerate(samples):
            prompt = sample.prompt if prompts is None else prompts[i]
            self.build_inputs([sample.load_images()], [prompt], chat=chat, labels=[sample.describe()])

    def add_extras(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Family-specific extra inputs derived from the ids (e.g. Qwen's ``mm_token_type_ids``)."""
        return tensors

    def model_kwargs(self, inputs: ModelInputs) -> dict[str, torch.Tensor]:
        """Keyword arguments for ``model(...)`` / ``model.generate(...)``."""
        return dict(inputs.tensors)

    def describe(self) -> dict[str, Any]:
        """What a result file records about the model."""
        return {
            "name": self.name,
            "family": self.family,
            "model_type": self.config.model_type,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "image_token_id": self.image_token_id,
            "dtype": str(self.dtype).replace("torch.", ""),
            "attn_implementation": getattr(self.text_config, "_attn_implementation", None),
            "num_parameters": sum(p.numel() for p in self.model.parameters()),
            "device_map": _map_summary(self.device_map),
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, model_id: str, **model_args: Any) -> VLMAdapter:
        """Adapter for a checkpoint; ``processor_``-prefixed arguments go to the processor, the rest to the model."""
        from transformers import AutoConfig, AutoModelForImageTextToText

        processor_args = {
            k.removeprefix("processor_"): model_args.pop(k)
            for k in list(model_args)
            if k.startswith("processor_")
        }
        hub_args = {k: v for k, v in model_args.items() if k in HUB_ARGS}
        config = AutoConfig.from_pretrained(model_id, **hub_args)
        processor = cls.load_processor(model_id, config.model_type, **processor_args)
        try:
            model = AutoModelForImageTextToText.from_pretrained(
                model_id, **cls.model_load_args(config, model_args)
            )
        except TypeError as err:
            # unknown kwargs reach the model class's __init__ after from_pretrained and the config took theirs
            found = re.search(r"unexpected keyword argument '(\w+)'", str(err))
            if found is None or found.group(1) not in model_args:
                raise
            raise ConfigError(
                f"--model_args {found.group(1)}={model_args[found.group(1)]!r} is not taken by "
                f"{type(config).__name__.removesuffix('Config')}'s from_pretrained or config; fix its spelling or "
                "drop it (processor settings take a processor_ prefix, e.g. processor_use_fast=false)."
            ) from None
        return cls(model, processor, model_id)

    @classmethod
    def model_load_args(cls, config: Any, model_args: dict[str, Any]) -> dict[str, Any]:
        """The arguments for the model's ``from_pretrained``; override where the family must change them."""
        return model_args

    @classmethod
    def load_processor(cls, model_id: str, model_type: str, **processor_args: Any) -> Any:
        """The checkpoint's processor: ``AutoProcessor``'s when it loads, else rebuilt without its video part.

        With torchvision installed ``AutoProcessor`` gives the standard processor. Without it, it fails on a part
        that images never use (a video processor whose class needs torchvision, or the class check of its dummy);
        the processor is then rebuilt as ``processor_classes[model_type]`` by ``rebuild_processor``. Where the
        rebuild fails too, AutoProcessor's error is raised, with the rebuild's as its cause.
        """
        import transformers

        try:
            return transformers.AutoProcessor.from_pretrained(model_id, **processor_args)
        except PROCESSOR_LOAD_ERRORS as err:
            name = cls.processor_classes.get(model_type)
            if name is None or (not cls.rebuild_with_torchvision and has_torchvision()):
                raise
            try:
                return cls.rebuild_processor(getattr(transformers, name), model_id, **processor_args)
            except Exception as rebuild_err:
                raise err from rebuild_err

    @classmethod
    def rebuild_processor(cls, processor_cls: Any, model_id: str, **processor_args: Any) -> Any:
        """``processor_cls`` assembled as ``AutoProcessor`` assembles it, less its video (and audio) part.

        The image processor loads with the PIL backend, the tokenizer on its own, and the processor is built from
        them and its saved settings (token counts, chat template; ``processor_args`` override them) through
        ``tiny.build_processor``, which lets the absent parts pass the class check. Families override this to
        add what their processor needs around it.
        """
        from transformers import AutoImageProcessor, AutoTokenizer

        from visdepth.models.tiny import build_processor

        settings, overrides = processor_cls.get_processor_dict(model_id, **processor_args)
        parts = {
            "image_processor": AutoImageProcessor.from_pretrained(
                model_id, **{"backend": "pil", **processor_args}
            ),
            "tokenizer": AutoTokenizer.from_pretrained(model_id, **processor_args),
        }
        args = [parts.get(name) for name in processor_cls.get_attributes()]
        return build_processor(lambda: processor_cls.from_args_and_dict(args, settings, **overrides))

    @classmethod
    def zero_init_redraw(cls, config: Any) -> dict[str, float]:
        """Parameters that transformers initialises to zeros but that carry signal, with the std to draw them from.

        A checkpoint always overwrites them, so the zeros only show in a model built from its config: a tiny
        model, or the random-init twin, whose images would otherwise carry nothing (Gemma 3's projection) or no
        position (InternVL's patch embeddings). Families with such weights override this.
        """
        return {}

    def random_twin(self, seed: int = 0) -> VLMAdapter:
        """The same architecture and processor with freshly initialised weights: the baseline that tells learnt
        structure from what the architecture alone produces.

        Weights follow transformers' init, except those of :meth:`zero_init_redraw`, drawn from N(0, std) so that
        the twin's image tokens carry its (random) image features as every other family's do.
        """
        from visdepth.models.tiny import seeded_init

        redraw = self.zero_init_redraw(self.config)
        twin = seeded_init(type(self.model), self.config, seed, redraw=redraw).to(dtype=self.dtype)
        device_map = self.device_map
        if device_map and len(set(device_map.values())) > 1 and "disk" not in device_map.values():
            from accelerate import dispatch_model

            twin = dispatch_model(twin, device_map=device_map)  # spread as the model is, so it fits as well
        else:
            twin = twin.to(device=self.device)
        return type(self)(twin, self.processor, f"{self.name} (random init)")

    @classmethod
    def build_tiny(cls, variant: str, seed: int = 0) -> VLMAdapter:
        """A tiny random-weight instance of one of this family's ``tiny_variants``, built offline by
        :func:`visdepth.models.tiny.build_random` (a fresh one on every call)."""
        from visdepth.models.tiny import build_random

        if variant not in cls.tiny_variants:
            raise UnsupportedModelError(
                f"{cls.family} has no tiny variant {variant!r}; choose one of {', '.join(cls.tiny_variants)}"
            )
        return build_random(variant, seed=seed)
