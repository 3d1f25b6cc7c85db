"""The command line: lm-eval style flags, one-line errors that name the fix, nothing computed is lost."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visdepth.cli import app
from visdepth.cli.common import parse_model_args

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_model_args_parsing():
    assert parse_model_args("revision=main,trust_remote_code=true,n=3, x = 0.5") == {
        "revision": "main",
        "trust_remote_code": True,
        "n": 3,
        "x": 0.5,
    }
    assert parse_model_args("") == {}


def test_dynamics_on_tiny_model(tmp_path):
    result = _invoke(
        "dynamics",
        "--model",
        "tiny:qwen2_vl" if _has("tiny:qwen2_vl") else "tiny:llava",
        "--limit",
        "1",
        "--output_path",
        str(tmp_path),
        "--no-progress",
        "--id_methods",
        "twonn",
    )
    assert result.exit_code == 0, result.output
    assert list(tmp_path.glob("*/dynamics/results.json"))


def _has(name: str) -> bool:
    from visdepth.models import tiny_names

    return name in tiny_names()


@pytest.fixture
def manifest(tmp_path):
    from PIL import Image
    from skimage import data

    Image.fromarray(data.coffee()).resize((40, 30)).save(tmp_path / "coffee.png")
    rows = [
        {"id": "ok", "image": "coffee.png", "prompt": "What drink is this?"},
        {"id": "gone", "image": "missing.png", "prompt": "What is this?"},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_missing_image_is_one_line_with_line_number(tmp_path, manifest):
    result = _invoke(
        "dynamics", "--data", str(manifest), "--output_path", str(tmp_path / "o"), "--no-progress"
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "line 2" in text and "missing.png" in text
    assert "Traceback" not in result.output


def test_bad_json_row(tmp_path, manifest):
    manifest.write_text(manifest.read_text() + "{not json\n")
    result = _invoke(
        "dynamics", "--data", str(manifest), "--output_path", str(tmp_path / "o"), "--no-progress"
    )
    assert result.exit_code == 2 and "line" in result.output


def test_unknown_model_names_supported_families(tmp_path):
    result = _invoke("dynamics", "--model", "tiny:nope", "--output_path", str(tmp_path))
    assert result.exit_code == 2
    assert "supported families" in " ".join(result.output.split())


def test_bad_option_value(tmp_path):
    result = _invoke("dynamics", "--entropy_normalize", "log_q", "--output_path", str(tmp_path))
    assert result.exit_code == 2 and "log_min" in result.output


def test_models_and_datasets_listing():
    out = _invoke("models")
    assert out.exit_code == 0 and "llava" in out.output and "tiny:llava" in out.output
    out = _invoke("datasets")
    assert out.exit_code == 0 and "photos" in out.output
