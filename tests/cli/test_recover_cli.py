"""``visdepth recover`` end to end on a tiny model: results, adapters and figures; a rerun resumes (adapters
reused, rows kept); ``--adapter`` re-evaluates without training; every bad input is one line and exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visdepth.cli import app
from visdepth.results.io import read_jsonl

runner = CliRunner()
BASE = ["--model", "tiny:llava", "--tasks", "shapes", "--no-progress"]
SMALL = ["--limit", "3", "--steps", "3", "--save_every", "2", "--train_limit", "4", "--batch_size", "4",
         "--num_samples", "2", "--decoding", "greedy,beam2,sample", "--max_new_tokens", "3"]  # fmt: skip


def _invoke(*args: str):
    return runner.invoke(app, ["recover", *BASE, *args], catch_exceptions=False)


def test_recover_writes_results_adapters_and_figures_and_resumes(tmp_path):
    out = tmp_path / "a"
    result = _invoke(*SMALL, "--cut", "1,2", "--output_path", str(out))
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*/recover/results.json")
    run = path.parent
    data = json.loads(path.read_text())
    assert data["cuts"] == [1, 2] and [d["name"] for d in data["decoding"]] == ["greedy", "beam2", "sample"]
    for cut in ("1", "2"):
        tr = data["training"][cut]
        assert tr["source"] == "trained" and tr["steps"] == 3 and len(tr["losses"]) == 3
        assert (run / "adapters" / f"cut{cut}" / "adapter_model.safetensors").is_file()
    kinds = data["tasks"]["shapes"]["kinds"]
    some = next(iter(kinds.values()))
    assert set(some["spread"]) == {"full", "truncated@1", "recovered@1", "truncated@2", "recovered@2"}
    assert some["spread"]["full"]["runs"] == ["greedy", "beam2", "sample#0", "sample#1"]
    # the full model is its own teacher
    assert some["recovery"]["1"]["teacher_full"] == pytest.approx(1.0)
    for name in ("recover_loss", "recover_quality_shapes", "recover_spread_shapes"):
        assert (run / "figures" / f"{name}.png").stat().st_size > 10_000
    rows = read_jsonl(run / "samples.jsonl")
    from visdepth.report.html import build_report

    page = build_report(run.parent).read_text()
    assert "RQ4 · Recoverability" in page and "recovered fraction [95%]" in page
    # a rerun reuses the adapters and measures nothing again
    again = _invoke(*SMALL, "--cut", "1,2", "--output_path", str(out))
    assert again.exit_code == 0, again.output
    assert json.loads(path.read_text())["training"]["1"]["source"] == "reused"
    assert read_jsonl(run / "samples.jsonl") == rows
    # re-evaluated from the saved adapters, elsewhere: the same answers
    other = tmp_path / "b"
    loaded = _invoke(*SMALL, "--cut", "1,2", "--adapter", str(run / "adapters"), "--output_path", str(other))
    assert loaded.exit_code == 0, loaded.output
    (path_b,) = other.glob("*/recover/results.json")
    assert json.loads(path_b.read_text())["training"]["2"]["source"] == "loaded"
    rows_b = read_jsonl(path_b.parent / "samples.jsonl")
    assert [r["outputs"] for r in rows_b] == [r["outputs"] for r in rows]


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (["--cut", "4"], "nothing to recover"),
        (["--cut", "9"], "beyond the model's 4 layers"),
        (["--cut", "-1"], "negative"),
        (["--tasks", "photos"], "--train_data manifest.jsonl"),
        (["--train_data", "shapes:test"], "also training prompts"),
        (["--decoding", "greedy,top5"], "beam<N>"),
        (["--target_modules", "qkv"], "use 'all' or some of"),
        (["--adapter", "NOPE"], "is not a folder"),
        (["--adapter", "EMPTY"], "holds no adapter for cut 2"),
        (["--loss", "mse"], "--loss 'mse' is unknown"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, fix):
    (tmp_path / "empty").mkdir()
    args = [
        str(tmp_path / "nope") if a == "NOPE" else str(tmp_path / "empty") if a == "EMPTY" else a
        for a in args
    ]
    if "--cut" not in args:
        args += ["--cut", "2"]
    result = _invoke(*SMALL, "--output_path", str(tmp_path / "out"), *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert fix in lines[0], lines[0]
    assert not list(tmp_path.glob("out/*/recover/results.json"))


def test_missing_peft_names_the_extra(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a)
    )
    result = _invoke(*SMALL, "--cut", "2", "--output_path", str(tmp_path))
    assert (
        result.exit_code == 2
        and "lora extra" in result.output
        and "peft>=0.13" in result.output
        and "visdepth[lora]" in result.output
    ), result.output
