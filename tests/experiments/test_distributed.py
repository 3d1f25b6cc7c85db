"""Data-parallel rows: two gloo processes under torchrun share out the batches one process would measure, nothing
twice; rows of an earlier run of any process count, or of a killed rank, are reused and merged in item order.
(That two processes write the same results and rows as one, on every experiment: test_distributed_run.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from visdepth.experiments import common, distributed
from visdepth.results.io import read_jsonl
from visdepth.results.lock import RunLock, RunLockedError

WORKER = Path(__file__).with_name("rows_worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def launch(n: int, *args: str, fails: bool = False, timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node n`` (its module form, so any venv's torch serves) on the worker
    script; fails the test with the processes' output when they fail (or, with ``fails``, when they do not)."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        str(WORKER),
    ]
    done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if (done.returncode != 0) != fails:
        pytest.fail(
            f"{n} processes exited with {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        )
    return done


def _row(i: int, **extra) -> str:
    return json.dumps({"id": f"t/{i:03d}", "value": i * i, "config_fingerprint": "fp", **extra}) + "\n"


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_a_run_killed_in_one_rank_resumes_with_another_process_count(tmp_path):
    # left by a killed 3-process run and an earlier one-process run: rank 2 died mid-row
    (tmp_path / "samples.jsonl").write_text(_row(1, reused=True))
    (tmp_path / "samples.rank0.jsonl").write_text(_row(3, reused=True) + _row(0, reused=True))
    (tmp_path / "samples.rank2.jsonl").write_text(_row(5, reused=True) + '{"id": "t/006", "val')
    reused = {f"t/{i:03d}" for i in (0, 1, 3, 5)}
    # two processes take over; rank 1 dies (as if killed) after 2 batches and the launcher stops rank 0
    launch(2, str(tmp_path), "16", "2", "1:2", fails=True)
    calls = {r: (tmp_path / f"calls.{r}").read_text().split("\n")[:-1] for r in (0, 1)}
    measured = [line.split()[0] for r in (0, 1) for line in calls[r]]
    assert calls[0] and calls[1] and len(measured) == len(set(measured))  # both worked, nothing twice
    assert not set(measured) & reused  # what earlier runs finished is not measured again
    # each rank measured its round-robin share of the batches one process would measure (runs of 2 missing
    # items within a bucket of 4), in order
    todo = [SimpleNamespace(id=f"t/{i:03d}", bucket=i // 4) for i in range(16) if f"t/{i:03d}" not in reused]
    batches = [[it.id for it in b] for b in common._batches(todo, 2, lambda it: it.bucket)]
    for r in (0, 1):
        ids = [line.split()[0] for line in calls[r]]
        share = [i for b in distributed.deal(batches, distributed.Ranks(r, 2, r)) for i in b]
        assert ids == share[: len(ids)]
    assert "samples.rank1.jsonl" in {p.name for p in tmp_path.glob("samples*.jsonl")}  # never merged
    done = reused | {r["id"] for p in tmp_path.glob("samples.rank*.jsonl") for r in read_jsonl(p)}

    # one process finishes the run: only what no earlier process finished, every row once, in item order
    items = [SimpleNamespace(id=f"t/{i:03d}") for i in range(16)]
    seen = []

    def measure(item):
        seen.append(item.id)
        return {"value": int(item.id[2:]) ** 2}

    rows = common.resumable_rows(
        tmp_path / "samples.jsonl", items, measure, config_fingerprint="fp", progress=False
    )
    assert sorted(seen) == sorted({it.id for it in items} - done)
    assert [r["id"] for r in rows] == [it.id for it in items]
    assert _ids(tmp_path / "samples.jsonl") == [it.id for it in items]
    assert all(r.get("reused") for r in rows if r["id"] in reused)
    assert sorted(p.name for p in tmp_path.glob("samples*")) == ["samples.jsonl"]


def test_one_process_reuses_and_merges_the_rows_of_a_multi_process_run(tmp_path):
    path = tmp_path / "samples.jsonl"
    (tmp_path / "samples.rank1.jsonl").write_text(_row(2, reused=True) + _row(0, reused=True))
    (tmp_path / "samples.rank0.jsonl").write_text(_row(1, reused=True) + '{"id": "t/00')
    items = [SimpleNamespace(id=f"t/{i:03d}") for i in range(4)]
    seen = []

    def measure(item):
        seen.append(item.id)
        return {"value": 0}

    rows = common.resumable_rows(path, items, measure, config_fingerprint="fp", progress=False)
    assert seen == ["t/003"]
    assert [r["id"] for r in rows] == [it.id for it in items]
    assert _ids(path) == [it.id for it in items]
    assert not list(tmp_path.glob("samples.rank*"))


def test_rows_of_another_configuration_in_a_rank_file_are_refused(tmp_path):
    from visdepth.errors import ConfigError

    (tmp_path / "samples.rank1.jsonl").write_text(_row(0).replace('"fp"', '"other"'))
    with pytest.raises(ConfigError, match="samples.rank1.jsonl holds rows of a different configuration"):
        common.resumable_rows(
            tmp_path / "samples.jsonl",
            [SimpleNamespace(id="t/000")],
            lambda it: {},
            config_fingerprint="fp",
            progress=False,
        )


def test_merge_keeps_rows_outside_the_plan_after_it_and_each_id_once(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(_row(9) + _row(1))
    (tmp_path / "rows.rank3.jsonl").write_text(_row(0) + _row(1, dup=True))
    (tmp_path / "rows.rank10.jsonl").write_text(_row(2))
    (tmp_path / "rows.rankx.jsonl").write_text(_row(4))  # not a rank file
    assert [p.name for p in distributed.rows_files(path)] == [
        "rows.jsonl",
        "rows.rank3.jsonl",
        "rows.rank10.jsonl",
    ]
    common.merge_rows(path, ["t/000", "t/001", "t/002"])
    assert _ids(path) == ["t/000", "t/001", "t/002", "t/009"]
    assert "dup" not in path.read_text()  # the first row of an id wins, as on resume


def test_one_process_is_rank_zero_of_one_without_a_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ranks = distributed.current()
    assert (ranks.rank, ranks.world_size, ranks.is_main, ranks.distributed) == (0, 1, True, False)
    assert distributed.device_for("auto") == "auto"
    assert distributed.writing_path(Path("o/samples.jsonl"), ranks) == Path("o/samples.jsonl")
    other = distributed.Ranks(rank=1, world_size=3, local_rank=1)
    assert distributed.writing_path(Path("o/samples.jsonl"), other) == Path("o/samples.rank1.jsonl")
    assert distributed.deal(list(range(7)), other) == [1, 4]


def test_a_rank_lock_does_not_block_the_folder_lock_but_a_second_folder_lock_is_refused(tmp_path):
    with (
        RunLock(tmp_path),
        RunLock(tmp_path, name=".visdepth.rank1.lock"),
        pytest.raises(RunLockedError, match="another visdepth run"),
    ):
        RunLock(tmp_path).acquire()


def test_data_and_model_parallel_give_each_process_its_own_gpus():
    assert distributed.gpus_of_process(0, 2, 8) == [0, 1, 2, 3]
    assert distributed.gpus_of_process(1, 2, 8) == [4, 5, 6, 7]
    assert distributed.gpus_of_process(2, 3, 8) == [4, 5]
    from visdepth.errors import ConfigError

    with pytest.raises(ConfigError, match="start at most 2 processes"):
        distributed.gpus_of_process(0, 4, 2)
    assert distributed.model_args_for({"device_map": "auto"}) == {
        "device_map": "auto"
    }  # one process: as given
