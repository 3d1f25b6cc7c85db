"""The one runner every experiment goes through: seeding, validation, loading, run folder, resume, metadata,
writing.

The order is the same for all of them and is what makes a run safe to kill: options are checked and data is read
before the model loads; the run folder is locked (a second run into it is refused); the experiment's one-off work
(``prepare``: recover trains its adapters there) leaves resumable files in the folder; items are measured stage by
stage, every one a fsync'd JSONL row, so a rerun of the same command measures only what is missing; the summary is
recomputed from all rows and written atomically with the full config, versions, git state, device, dtype, seed
and every open choice. Nothing is drawn here (see :mod:`visdepth.report`).

Started by ``accelerate launch`` or ``torchrun``, every process runs this same function: each measures its share
of the items on its own device and the main process merges the rows and writes the one results.json
(:mod:`visdepth.experiments.distributed`); a one-process run is unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visdepth.experiments import common, distributed
from visdepth.experiments.api import Experiment
from visdepth.models import VLMAdapter, load
from visdepth.registry import EXPERIMENTS
from visdepth.results.io import read_json
from visdepth.results.meta import run_metadata


def run(experiment: Experiment | str, config: Any, adapter: VLMAdapter | None = None) -> Any:
    """Run ``experiment`` (an instance or a registered name) with ``config``; returns its typed result.

    ``adapter`` reuses an already loaded model (``visdepth run`` loads it once for every experiment).
    """
    exp = EXPERIMENTS.get(experiment)() if isinstance(experiment, str) else experiment
    if not isinstance(config, exp.config_class):
        config = exp.config_class(**config)
    started_at = common.start_run(config)
    exp.validate(config)
    data = exp.load_data(config)
    ranks = distributed.current()
    if adapter is None:
        adapter = load(
            config.model,
            device=distributed.device_for(config.device),
            dtype=config.dtype,
            seed=config.seed,
            **distributed.model_args_for(config.model_args),
        )
    plan = exp.plan(config, adapter, data)
    if plan.fits:
        # a prompt past the model's context is refused here, before any row is measured
        samples, prompts = zip(*plan.fits, strict=True)
        adapter.check_fits(list(samples), list(prompts), chat=plan.config.chat)
    out = run_folder(exp, plan.config, adapter.name)
    with common.lock_run_dir(out):
        path = out / "samples.jsonl"
        if ranks.is_main:
            exp.prepare(plan, out)
        distributed.barrier()
        order = [plan.item_id(it) for it in plan.items]
        # rows files a killed multi-process run left are merged first, so before_rows reads every row
        common.gather_rows(path, order)
        measured: dict[str, dict[str, Any]] = {}
        for stage in sorted({plan.stage(it) for it in plan.items}) or [0]:
            exp.before_rows(plan, path)
            staged = [it for it in plan.items if plan.stage(it) == stage]
            for row in common.resumable_rows(
                path,
                staged,
                config_fingerprint=plan.config.fingerprint(),
                measure_batch=lambda batch: exp.measure_batch(plan, batch),
                batch_size=plan.batch_size,
                bucket=plan.bucket,
                item_id=plan.item_id,
                label=exp.name,
                progress=plan.config.progress,
                order=order,
            ):
                measured[row["id"]] = row
        rows = [measured[i] for i in order if i in measured]
        # every rank: an experiment's own resumable rows (a baseline) are shared out like the main ones
        extras = exp.after_rows(plan, rows, out)
        if not ranks.is_main:
            result = None
        else:
            result = exp.result_class(
                meta=run_metadata(
                    config=plan.config.model_dump(),
                    choices=exp.choices(plan),
                    seed=plan.config.seed,
                    device=adapter.device,
                    dtype=adapter.dtype,
                    processes=ranks.world_size,
                ),
                model=adapter.describe(),
                **exp.summarise(plan, rows, extras),
            )
            result = common.write_results(result, out, plan.config.log_samples, started_at=started_at)
    if result is None:  # the other ranks return what the main one wrote (the lock's exit waited for it)
        result = exp.result_class.model_validate(read_json(out / "results.json"))
    return result


def run_folder(exp: Experiment, config: Any, model_name: str) -> Path:
    """``<output_path>/<model slug>/<experiment folder>``."""
    return common.run_dir(config.output_path, model_name, exp.folder(config))
