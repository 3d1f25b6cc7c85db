"""Bad input a new user might type: one red line naming the fix and exit status 2, before the model loads where
the mistake can be seen without it."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from visdepth.cli import app

runner = CliRunner()


def _fails(*args: str, before_load: bool = True) -> str:
    """Run a command that must fail; its one error line (the only line when it fails before loading)."""
    result = runner.invoke(app, [*args, "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    if before_load:
        assert lines == errors, result.output
    return errors[0]


@pytest.fixture
def manifest(tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.coffee()).resize((40, 30)).save(tmp_path / "coffee.png")

    def write(*rows: dict, name: str = "data.jsonl"):
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(path)

    return write


OK_ROW = {"id": "ok", "image": "coffee.png", "prompt": "What drink is this?"}


@pytest.mark.parametrize("command", ["dynamics", "swap", "truncate"])
def test_cuda_without_cuda(command, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    line = _fails(command, "--device", "cuda", "--output_path", str(tmp_path))
    assert "CUDA" in line and "--device cpu" in line


def test_unknown_device_lists_choices(tmp_path):
    line = _fails("dynamics", "--device", "foo", "--output_path", str(tmp_path))
    assert "'foo' is not a device" in line and "auto, cpu, cuda" in line


def test_unknown_dtype(tmp_path):
    line = _fails("swap", "--dtype", "foo", "--output_path", str(tmp_path))
    assert "unknown dtype 'foo'" in line and "float32" in line


@pytest.mark.parametrize(
    ("model_args", "needle"),
    [("a=b=c", "more than one '='"), ("=1", "no valid name"), ("revision", "has no '='")],
)
def test_malformed_model_args(model_args, needle, tmp_path):
    line = _fails("dynamics", "--model_args", model_args, "--output_path", str(tmp_path))
    assert needle in line and "key=value" in line


def test_unknown_model_arg_is_named(tmp_path, manifest):
    line = _fails(
        "dynamics",
        "--model_args",
        "nosuch_arg=1",
        "--data",
        manifest(OK_ROW),
        "--output_path",
        str(tmp_path / "o"),
        before_load=False,
    )
    assert "nosuch_arg=1 is not taken" in line and "fix its spelling or drop it" in line


def test_tiny_model_with_model_args(tmp_path):
    line = _fails("dynamics", "--model", "tiny:llava", "--model_args", "x=1", "--output_path", str(tmp_path))
    assert "take no --model_args" in line


def test_missing_model_folder(tmp_path):
    line = _fails("dynamics", "--model", "./nosuch", "--output_path", str(tmp_path))
    assert "model folder './nosuch' does not exist" in line and "fix the path" in line


def test_hub_id_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = _fails("truncate", "--model", "Qwen/Qwen2.5-VL-3B-Instruct", "--output_path", str(tmp_path))
    assert "not in the local hub cache" in line and "offline" in line


def test_cut_weights_file(tmp_path):
    from visdepth.models import builtin_model_path

    folder = tmp_path / "model"
    shutil.copytree(builtin_model_path("visdepth/shapes-vlm"), folder)
    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:
        f.truncate(3_000_000)
    line = _fails("dynamics", "--model", str(folder), "--output_path", str(tmp_path / "o"))
    assert "model.safetensors" in line and "damaged or incomplete" in line and "re-download" in line


@pytest.mark.parametrize(
    ("command", "option"), [("dynamics", "--data"), ("swap", "--data"), ("truncate", "--tasks")]
)
def test_folder_as_data(command, option, tmp_path, manifest):
    manifest(OK_ROW)
    line = _fails(command, option, str(tmp_path), "--output_path", str(tmp_path / "o"))
    assert "is a folder" in line and "data.jsonl" in line


@pytest.mark.parametrize("bad", ["not_an_image", "cut"])
def test_unreadable_image_before_load(bad, tmp_path, manifest):
    broken = tmp_path / "broken.png"
    if bad == "not_an_image":
        broken.write_text("hello")
    else:
        whole = (tmp_path / "coffee.png").read_bytes()
        broken.write_bytes(whole[: len(whole) // 2])
    path = manifest(OK_ROW, {"id": "b", "image": "broken.png", "prompt": "What is it?"})
    line = _fails("dynamics", "--data", path, "--output_path", str(tmp_path / "o"))
    assert "line 2" in line and "broken.png" in line and "replace it" in line


@pytest.mark.parametrize("command", ["dynamics", "swap", "truncate"])
def test_prompt_longer_than_the_context(command, tmp_path, manifest):
    long_row = {"id": "long", "image": "coffee.png", "prompt": "word " * 1000}
    path = manifest(OK_ROW, long_row)
    option = "--tasks" if command == "truncate" else "--data"
    out = tmp_path / "o"
    line = _fails(command, option, path, "--output_path", str(out), before_load=False)
    assert "sample 'long'" in line and "line 2" in line and "more than the 256 positions" in line
    assert "shorten the prompt" in line
    # refused before the first row was measured
    assert not [p for p in out.rglob("samples*.jsonl") if p.stat().st_size]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("dynamics", "--limit", "0"), "not a positive whole number"),
        (("swap", "--limit", "-1"), "not a positive whole number"),
        (("truncate", "--tasks", "nosuch"), "unknown task 'nosuch'"),
        # data sets and tasks are one namespace: --data is a second spelling of --tasks
        (("dynamics", "--data", "nosuch"), "unknown task 'nosuch'"),
    ],
)
def test_other_bad_options(args, needle, tmp_path):
    line = _fails(*args, "--output_path", str(tmp_path))
    assert needle in line


def test_empty_manifest(tmp_path, manifest):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    line = _fails("dynamics", "--data", str(path), "--output_path", str(tmp_path / "o"))
    assert "has no samples" in line
