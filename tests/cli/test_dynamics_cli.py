"""``visdepth dynamics --token_cloud pooled --pool_size N``: the options reach the run, bad values are one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visdepth.cli import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["dynamics", "--no-progress", *args], catch_exceptions=False)


def test_pooled_token_clouds(tmp_path):
    result = _invoke(
        "--model", "tiny:llava", "--limit", "2", "--output_path", str(tmp_path), "--id_methods", "twonn",
        "--token_cloud", "pooled", "--pool_size", "2", "--entropy_normalize", "log_min_nd",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*/dynamics/results.json")
    data = json.loads(path.read_text())
    assert data["token_cloud"] == "pooled" and data["pool_size"] == 2 and data["num_clouds"] == 1
    assert data["meta"]["config"]["entropy_normalize"] == "log_min_nd"
    assert "2 samples in 1 pool," in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--pool_size", "0"), "--pool_size must be at least 1"),
        (("--token_cloud", "pooles"), "per_sample, pooled"),
    ],
)
def test_bad_pooling_options_are_one_line_errors(tmp_path, args, expected):
    result = _invoke(
        "--model", "tiny:llava", "--token_cloud", "pooled", "--output_path", str(tmp_path), *args
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and expected in result.output
    assert not list(tmp_path.iterdir())  # refused before anything was loaded or written
