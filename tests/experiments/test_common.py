"""The resumable loop every experiment shares: batches of like items, rows durable as they come, resume."""

from __future__ import annotations

import errno
import json
import os
import sys
import tempfile
from datetime import datetime
from types import SimpleNamespace

import pytest
from pydantic import BaseModel

from tests.conftest import tiny
from visdepth.errors import ConfigError
from visdepth.experiments import common, dynamics, swap, truncate
from visdepth.experiments.common import check_output_path, resumable_rows, start_run, write_results
from visdepth.results.io import read_jsonl
from visdepth.results.lock import RunLock, RunLockedError
from visdepth.results.meta import RunMeta, run_metadata


def _items(n: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=f"s{i}", kind="a" if i < 5 else "b") for i in range(n)]


def _run(path, items, batches, **kw):
    def measure_batch(batch):
        batches.append([it.id for it in batch])
        return [{"value": it.id.upper()} for it in batch]

    return resumable_rows(
        path, items, config_fingerprint="f", measure_batch=measure_batch, progress=False, **kw
    )


def test_batches_are_runs_of_like_items_still_to_do(tmp_path):
    items, batches = _items(8), []
    rows = _run(tmp_path / "r.jsonl", items, batches, batch_size=2, bucket=lambda it: it.kind)
    assert batches == [["s0", "s1"], ["s2", "s3"], ["s4"], ["s5", "s6"], ["s7"]]
    assert [r["value"] for r in rows] == [it.id.upper() for it in items]
    # a resumed run measures only what is missing, in batches planned over it
    path = tmp_path / "partial.jsonl"
    _run(path, items[:3], [], batch_size=2, bucket=lambda it: it.kind)
    again: list[list[str]] = []
    rows = _run(path, items, again, batch_size=2, bucket=lambda it: it.kind)
    assert again == [["s3", "s4"], ["s5", "s6"], ["s7"]]
    assert [r["id"] for r in rows] == [it.id for it in items]


def test_one_measure_function_and_one_configuration(tmp_path):
    with pytest.raises(ValueError, match="either"):
        resumable_rows(tmp_path / "r.jsonl", _items(1), config_fingerprint="f")
    _run(tmp_path / "r.jsonl", _items(2), [], batch_size=1)
    with pytest.raises(ConfigError, match="different configuration"):
        resumable_rows(tmp_path / "r.jsonl", _items(2), lambda it: {}, config_fingerprint="g")


def test_duplicate_ids_in_an_existing_file_are_kept_once(tmp_path):
    path = tmp_path / "samples.jsonl"
    rows = [{"id": i, "value": i.upper(), "config_fingerprint": "f"} for i in ("s0", "s1", "s0", "s1")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    batches: list[list[str]] = []
    out = _run(path, _items(3), batches, batch_size=2)
    assert batches == [["s2"]]  # only the missing sample is measured
    assert [r["id"] for r in out] == ["s0", "s1", "s2"]
    assert [r["id"] for r in read_jsonl(path)] == ["s0", "s1", "s2"]  # and the file holds each id once
    _run(path, _items(3), batches, batch_size=2)
    assert [r["id"] for r in read_jsonl(path)] == ["s0", "s1", "s2"]


# ---------------------------------------------------------------------------------------------- output path
def test_output_path_that_is_or_lies_under_a_file_is_refused(tmp_path):
    file = tmp_path / "somefile"
    file.write_text("x")
    with pytest.raises(ConfigError) as info:
        check_output_path(file / "sub" / "deeper")
    assert str(info.value) == (
        f"--output_path {file / 'sub' / 'deeper'} lies under {file}, which is a file, not a folder; pass a folder "
        "path (a missing folder is created)."
    )
    with pytest.raises(ConfigError, match=r"somefile is a file, not a folder; pass a folder path"):
        check_output_path(file)
    # a folder that does not exist yet is fine, and checking it creates nothing
    assert check_output_path(tmp_path / "new" / "runs") == tmp_path / "new" / "runs"
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["somefile"]


def test_output_path_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(common.tempfile, "TemporaryFile", refused)
    with pytest.raises(ConfigError) as info:
        check_output_path(tmp_path / "runs")
    assert str(info.value) == (
        f"--output_path {tmp_path / 'runs'} (its nearest existing folder {tmp_path}) cannot be written to "
        "(permission denied); pass a folder you can write to."
    )
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(common.tempfile, "TemporaryFile", read_only)
    with pytest.raises(ConfigError, match=r"cannot be written to \(read-only file system\)"):
        check_output_path(tmp_path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sysfs")
def test_a_real_unwritable_folder_is_refused():
    # sysfs refuses new files even to root (chmod would not stop root)
    try:
        with tempfile.TemporaryFile(dir="/sys"):
            pytest.skip("/sys accepts files here")
    except OSError:
        pass
    with pytest.raises(
        ConfigError, match=r"^--output_path /sys/visdepth-runs \(its nearest existing folder /sys\)"
    ):
        check_output_path("/sys/visdepth-runs")


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the output path was checked")


@pytest.mark.parametrize(
    "module, make",
    [
        (
            dynamics,
            lambda out: dynamics.DynamicsConfig(model="tiny:llava", data="photos", limit=1, output_path=out),
        ),
        (swap, lambda out: swap.SwapConfig(model="tiny:llava", data="photos", limit=1, output_path=out)),
        (
            truncate,
            lambda out: truncate.TruncateConfig(model="tiny:llava", tasks=["photos"], output_path=out),
        ),
    ],
    ids=["dynamics", "swap", "truncate"],
)
def test_every_experiment_checks_the_output_path_before_loading_the_model(
    tmp_path, monkeypatch, module, make
):
    file = tmp_path / "somefile"
    file.write_text("x")
    from visdepth.experiments import runner

    monkeypatch.setattr(runner, "load", _no_model)  # the one runner loads every experiment's model
    with pytest.raises(ConfigError, match="lies under .*somefile, which is a file"):
        module.run(make(str(file / "sub")))


# ---------------------------------------------------------------------------------------------- start and finish
def test_write_results_stamps_the_real_start_and_the_finish(tmp_path):
    started_at = start_run(common.ExperimentConfig(output_path=str(tmp_path)))
    meta = run_metadata()  # collected at the end of a run: its own started_at is "now"
    assert meta.started_at >= started_at and meta.finished_at is None

    class Result(BaseModel):
        meta: RunMeta
        files: dict[str, str] = {}

    result = write_results(Result(meta=meta), tmp_path, True, started_at=started_at)
    data = json.loads((tmp_path / "results.json").read_text())
    assert result.meta.started_at == started_at
    assert datetime.fromisoformat(data["meta"]["started_at"]) == started_at
    assert datetime.fromisoformat(data["meta"]["finished_at"]) >= started_at


# ---------------------------------------------------------------------------------------------- one run per folder
def test_a_second_run_into_a_locked_folder_is_refused_and_writes_nothing(tmp_path):
    config = truncate.TruncateConfig(
        model="tiny:llava", tasks=["photos"], limit=2, timing=False, output_path=str(tmp_path), progress=False
    )
    folder = truncate.run_dir(config, "tiny:llava")
    with RunLock(folder), pytest.raises(RunLockedError, match="another visdepth run .* is writing to"):
        truncate.run(config, tiny("tiny:llava"))
    assert sorted(p.name for p in folder.iterdir()) == []  # no rows, no results, the lock file gone


def test_the_cli_refuses_a_locked_folder_in_one_line_with_exit_2(tmp_path):
    from typer.testing import CliRunner

    from visdepth.cli import app

    folder = tmp_path / "tiny-llava" / "truncate-drop"
    with RunLock(folder):
        result = CliRunner().invoke(
            app,
            ["truncate", "--model", "tiny:llava", "--tasks", "photos", "--limit", "1", "--no-timing",
             "--output_path", str(tmp_path), "--no-progress"],
        )  # fmt: skip
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"error: another visdepth run (pid {os.getpid()}" in text and "pass another --output_path" in text
    assert "Traceback" not in result.output
