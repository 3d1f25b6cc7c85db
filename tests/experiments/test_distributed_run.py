"""``torchrun --nproc_per_node 2 -m visdepth run`` (gloo, the default model, every registered experiment) writes
the same results.json and rows as one process, metadata aside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from visdepth.experiments import EXPERIMENTS

SRC = Path(__file__).resolve().parents[2] / "src"
#: a few samples each; truncate's timing is measured seconds, which no two runs share
OPTIONS = {"limit": 2, "progress": False}
SECTIONS = {"truncate": {"timing": False}}


def _launch_two(out: Path, config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "visdepth", "run", "--limit", "2", "--no-progress", "--output_path", str(out)]
    cmd += ["--config", str(config)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(one-process folder, two-process folder): the two-process run goes on while one process runs here."""
    from visdepth.cli.run import plan_configs
    from visdepth.experiments import runner
    from visdepth.models import load

    root = tmp_path_factory.mktemp("distributed")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(SECTIONS))
    two = _launch_two(root / "two", config)
    try:
        chosen = plan_configs("all", {**OPTIONS, "output_path": str(root / "one")}, SECTIONS)
        first = next(iter(chosen.values()))[1]
        adapter = load(first.model, device="cpu", dtype=first.dtype, seed=first.seed)
        for exp, cfg in chosen.values():
            runner.run(exp, cfg, adapter)
        output, _ = two.communicate(timeout=300)
    finally:
        two.kill()
    assert two.returncode == 0, output[-6000:]
    return root / "one", root / "two"


def _folders(root: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in root.glob("*/*/results.json")}


@pytest.mark.parametrize("name", EXPERIMENTS.names())
def test_two_processes_write_what_one_writes(runs, name):
    one, two = (_folders(r) for r in runs)
    folder = next(f for f in one if f == name or f.startswith(f"{name}-"))
    a, b = (json.loads((d[folder] / "results.json").read_text()) for d in (one, two))
    assert a["meta"]["processes"] == 1 and b["meta"]["processes"] == 2
    assert {k: v for k, v in b.items() if k != "meta"} == {k: v for k, v in a.items() if k != "meta"}
    rows = sorted(p.name for p in one[folder].glob("samples*.jsonl"))
    assert rows and rows == sorted(p.name for p in two[folder].glob("samples*.jsonl"))  # no rank file left
    for name_ in rows:  # every row, in the same order, whichever process measured it
        assert (two[folder] / name_).read_text() == (one[folder] / name_).read_text()


def test_the_main_process_alone_draws_and_reports(runs):
    _, two = runs
    assert len(list(two.glob("*/report.html"))) == 1
    assert not list(two.glob("**/.visdepth*.lock"))
