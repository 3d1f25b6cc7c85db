"""``visdepth reason``: results, figures and the printed summary from the command line; bad input is one line
and exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visdepth.cli import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["reason", *args], catch_exceptions=False)


def test_reason_writes_results_figures_and_examples(tmp_path):
    result = _invoke(
        "--model", "tiny:llava", "--tasks", "photos", "--limit", "1", "--cut", "2", "--max_new_tokens", "5",
        "--budgets", "1,2", "--answer_pattern", r"(?P<answer>\S)\s*$", "--bootstrap", "50",
        "--gen_kwargs", "repetition_penalty=1.0", "--output_path", str(tmp_path), "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*/reason-drop/results.json")
    data = json.loads(path.read_text())
    assert data["cuts"] == [2, 4] and data["budgets"] == [1.0, 2.0]
    photos = data["tasks"]["photos"]
    assert photos["num_samples"] == 1  # the first of the photos set's chain-of-thought questions
    assert set(photos["shares"]) >= {"chain_differs", "answer_differs", "same_answer_different_path"}
    assert all(len(v) == 2 for v in photos["shares"].values())
    assert photos["trajectory"]["similarity"][-1] == pytest.approx(
        1.0
    )  # MiniLM: the full chain against itself
    assert data["meta"]["config"]["gen_kwargs"] == {"repetition_penalty": 1.0}
    # the photos samples of other kinds are left out (no chain-of-thought format), and the results say so
    assert data["meta"]["choices"]["prompts"]["left_out"]["samples"]["photos"] > 0
    for name in ("claim_photos", "compensate_photos", "trajectory_photos"):
        assert (path.parent / "figures" / f"{name}.png").stat().st_size > 10_000
    text = " ".join(result.output.split())
    assert "reasoning under truncation" in text and "more often than the answer" in text
    # the report's RQ5 section: the claim, its verdict and the per-cut table
    from visdepth.report.html import build_report

    page = build_report(path.parent.parent).read_text()
    assert "RQ5 · Reasoning under truncation" in page and "path differs" in page
    assert "How the verdict is reached" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--answer_pattern", "answer is ("], "is not a valid regular expression"),
        (["--answer_pattern", "answer"], "has no group for the answer"),
        (["--budgets", "0"], "is not positive"),
        (["--tasks", "blink"], "has no chain-of-thought samples"),
    ],
)
def test_reason_bad_input_is_one_line(tmp_path, args, message):
    result = _invoke("--model", "tiny:llava", "--output_path", str(tmp_path), *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
