"""``visdepth truncate``: results and figures from the command line; every bad input is one line and exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visdepth.cli import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["truncate", *args], catch_exceptions=False)


def test_truncate_writes_results_and_figures(tmp_path):
    result = _invoke(
        "--model", "tiny:llava", "--tasks", "photos", "--limit", "4", "--cut", "0,2", "--max_new_tokens", "4",
        "--timing", "--timing_repeats", "1", "--batch_size", "2", "--output_path", str(tmp_path), "--no-progress",
        "--pick-rule", "first",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*/truncate-drop/results.json")
    data = json.loads(path.read_text())
    assert data["cuts"] == [0, 2, 4]
    assert data["pick_rule"] == "first" and data["meta"]["choices"]["pick_rule"]["name"] == "first"
    photos = data["tasks"]["photos"]
    assert set(photos["kinds"]) == {"single_token", "multiple_choice", "exact_match", "caption"}
    # captions are compared with the sentence encoder
    assert photos["kinds"]["caption"]["agreement"]["similarity"][-1] == pytest.approx(1.0)
    timing = data["timing"]
    assert (
        timing["task"] == "photos" and len(timing["prefill_s"]) == 3 and timing["prefill_speedup"][-1] == 1.0
    )
    for name in ("quality_photos", "frontier_photos", "kl_photos"):
        assert (path.parent / "figures" / f"{name}.png").stat().st_size > 10_000
    text = " ".join(result.output.split())
    assert "photos" in text and "budget cut" in text and "measured" in text


@pytest.fixture
def unanswered(tmp_path) -> str:
    row = {"id": "q", "image": "skimage:coffee", "prompt": "What is on the saucer?", "task": "exact_match"}
    path = tmp_path / "unanswered.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return f"local:{path}"


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (["--cut", "99"], "use 0..4"),
        (["--cut", "two"], "--cut 0,4,8"),
        (["--tasks", "nope"], "local:<path.jsonl>"),
        (["--tasks", "UNANSWERED"], "add an 'answer' field"),
        (["--mode", "fast"], "use one of mask, drop, freeze"),
        (["--mode", "drop,fast"], "unknown truncation mode 'fast'"),
        (["--budget", "0"], "outside (0, 1]"),
        (["--budget", "1.5"], "outside (0, 1]"),
        (["--pick_rule", "best"], "use stable, first"),
        (["--pick-rule", "Stable"], "--pick_rule 'Stable' is unknown"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, unanswered, args, fix):
    args = [unanswered if a == "UNANSWERED" else a for a in args]
    result = _invoke("--model", "tiny:llava", "--tasks", "photos", "--output_path", str(tmp_path), "--no-progress",
                     "--no-timing", *args)  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert fix in lines[0]
    assert not list(tmp_path.glob("*/truncate-*/results.json"))


def test_several_modes_from_the_command_line_and_a_yaml_file(tmp_path):
    """``--mode drop,freeze,skip_mlp`` on the command line; ``mode: [...]`` or ``mode: a,b`` in a YAML config."""
    config = tmp_path / "run.yaml"
    config.write_text("mode: [drop, freeze]\ncuts: 0,2\n")
    result = _invoke(
        "--config", str(config), "--model", "tiny:llava", "--tasks", "photos", "--limit", "3", "--mode",
        "drop,freeze,skip_mlp", "--max_new_tokens", "3", "--no-timing", "--batch_size", "3", "--calibration", "2",
        "--output_path", str(tmp_path), "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*/truncate-drop+freeze+skip_mlp/results.json")  # the command line wins
    data = json.loads(path.read_text())
    assert data["modes"] == ["drop", "freeze", "skip_mlp"] and data["cuts"] == [0, 2, 4]
    assert set(data["by_mode"]) == set(data["modes"])
    assert (path.parent / "figures" / "modes_photos.png").stat().st_size > 10_000
    assert (path.parent / "figures" / "contribution.png").stat().st_size > 10_000
    text = " ".join(result.output.split())
    assert "shallowest safe cut per mode" in text and "skip_mlp" in text
    # a YAML comma string is the same list
    from visdepth.cli.options import build_config, read_config_file
    from visdepth.experiments.truncate import TruncateConfig

    config.write_text("mode: drop, freeze\n")
    assert build_config(TruncateConfig, read_config_file(str(config))).modes == ["drop", "freeze"]
