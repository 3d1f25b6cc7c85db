"""Every cut's adapter for a recover run: loaded (``--adapter``), reused (a finished adapter of the same
settings in the run folder), resumed from a checkpoint, or trained; and the teacher's answers it learns from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from visdepth.errors import ConfigError
from visdepth.experiments.api import Plan
from visdepth.experiments.recovery import lora
from visdepth.experiments.recovery import train as tr
from visdepth.experiments.recovery.measure import Context
from visdepth.results.io import read_json, write_json
from visdepth.results.schemas.recover import TrainingSummary

if TYPE_CHECKING:
    from visdepth.experiments.recover import RecoverConfig  # noqa: F401


def adapter_folder(root: Path, cut: int) -> Path:
    """``root/cut<l_c>``, or ``root`` itself when it is one adapter's folder saved for this cut."""
    sub = root / f"cut{cut}"
    if (sub / lora.ADAPTER_CONFIG).is_file():
        return sub
    meta = root / lora.ADAPTER_META
    if (
        (root / lora.ADAPTER_CONFIG).is_file()
        and meta.is_file()
        and json.loads(meta.read_text()).get("cut") == cut
    ):
        return root
    raise ConfigError(
        f"--adapter {root} holds no adapter for cut {cut} (no cut{cut}/ folder); pass --cut to match."
    )


def prepare_adapters(plan: Plan, out: Path) -> None:
    """Every cut's adapter weights into ``plan.state``: loaded, reused, resumed or trained (see the module notes)."""
    config, st = plan.config, plan.state
    ctx: Context = st["ctx"]
    adapter = plan.adapter
    examples = None
    for cut in ctx.cuts:
        fp = config.train_fingerprint(cut)
        if config.adapter is not None:
            folder = adapter_folder(Path(config.adapter), cut)
            peft_config, weights, meta = lora.load_adapter(folder, adapter)
            with lora.attached(adapter, peft_config, weights):  # fit check before any row
                pass
            ctx.weights[cut] = (peft_config, weights)
            st["training"][cut] = TrainingSummary(
                cut=cut,
                source="loaded",
                adapter=str(folder),
                steps=int(meta.get("steps", 0)),
                losses=list(meta.get("losses", [])),
                settings=meta.get("settings", {}),
                train_samples=meta.get("train_samples"),
            )
            continue
        final = out / "adapters" / f"cut{cut}"
        found = lora.existing(final)
        if found is not None:
            meta = read_json(found / lora.ADAPTER_META)
            if meta.get("fingerprint") != fp:
                raise ConfigError(
                    f"{found} holds an adapter trained with other settings; pass another --output_path or delete it."
                )
            peft_config, weights, _ = lora.load_adapter(found, adapter)
            ctx.weights[cut] = (peft_config, weights)
            st["training"][cut] = TrainingSummary(
                cut=cut,
                source="reused",
                adapter=str(found.relative_to(out)) if found.is_relative_to(out) else str(found),
                steps=meta["steps"],
                losses=meta["losses"],
                train_samples=meta.get("train_samples"),
                settings=meta["settings"],
            )
            continue
        if examples is None:
            examples = teacher_examples(plan, out)
        peft_config = lora.lora_config(adapter, config.lora())
        settings = config.train_settings()
        with lora.attached(adapter, peft_config, seed=config.seed + 7919 * cut) as peft_model:
            state = tr.train(
                adapter, peft_model, examples, cut, settings, out / "train" / f"cut{cut}", fp, config.progress
            )
            meta = {
                "cut": cut,
                "model": adapter.name,
                "num_layers": adapter.num_layers,
                "fingerprint": fp,
                "steps": state.step,
                "losses": state.losses,
                "train_samples": len(examples),
                "settings": config.train_record(),
            }
            lora.save_adapter(peft_model, final, meta)
            ctx.weights[cut] = (peft_config, lora.adapter_state(peft_model))
        st["training"][cut] = TrainingSummary(
            cut=cut,
            source="resumed" if state.resumed_from else "trained",
            adapter=str(final.relative_to(out)),
            steps=state.step,
            losses=state.losses,
            resumed_from=state.resumed_from,
            train_samples=len(examples),
            settings=meta["settings"],
        )


def teacher_examples(plan: Plan, out: Path) -> list[tr.Example]:
    """The teacher's greedy answers to the training prompts, kept in ``<run>/train/teacher.json``."""
    config, st = plan.config, plan.state
    path = out / "train" / "teacher.json"
    if path.is_file():
        cached = read_json(path)
        if cached.get("fingerprint") == config.teacher_fingerprint():
            found = tr.examples_from_json(cached["examples"], st["train_samples"], st["train_tasks"])
            if found is not None:
                return found
    examples = tr.teacher_examples(
        plan.adapter,
        st["train_tasks"],
        st["train_samples"],
        chat=config.chat,
        batch_size=config.batch_size,
        progress=config.progress,
    )
    write_json(
        path,
        {"fingerprint": config.teacher_fingerprint(), "examples": tr.examples_to_json(examples)},
    )
    return examples
