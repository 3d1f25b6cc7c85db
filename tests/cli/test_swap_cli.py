"""``visdepth swap``: writes results and figures; bad --layers, --groups and empty data give exit 2 and one line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from visdepth.cli import app

runner = CliRunner()


def _swap(tmp_path, *args: str):
    base = ["swap", "--model", "tiny:llava", "--output_path", str(tmp_path), "--no-progress"]
    return runner.invoke(app, base + list(args), catch_exceptions=False)


def test_swap_writes_results_and_figures(tmp_path):
    result = _swap(
        tmp_path, "--limit", "1", "--layers", "stride:2", "--groups", "image,text", "--max_new_tokens", "4",
        "--sentence_model", "none",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.glob("*/swap")
    data = json.loads((folder / "results.json").read_text())
    assert data["layers"] == [0, 2, 4] and data["groups"] == ["image", "text"]
    assert data["meta"]["config"]["max_new_tokens"] == 4 and data["identity"]["holds"]
    for name in ("heatmap_kl.png", "heatmap_first_token.png", "distance.png"):
        assert (folder / "figures" / name).stat().st_size > 10_000
    assert "first_token" in result.output and "image" in result.output  # the summary table


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    ("layers", "expected"),
    [("0,9", "use depths 0..4"), ("stride:0", "stride:2"), ("first,last", "use all, a list such as 0,2,4")],
)
def test_bad_layers(tmp_path, layers, expected):
    line = _one_line_error(_swap(tmp_path, "--layers", layers))
    assert expected in line and "--layers" in line
    assert not list(tmp_path.glob("*/swap/results.json"))


def test_unknown_group(tmp_path):
    line = _one_line_error(_swap(tmp_path, "--groups", "image,pixels"))
    assert "'pixels'" in line and "image, text (the control) and text_matched" in line


def test_groups_default_includes_the_size_matched_control():
    import inspect

    from visdepth.cli.swap import command

    assert inspect.signature(command).parameters["groups"].default.default == "image,text,text_matched"
    result = runner.invoke(app, ["swap", "--help"], env={"COLUMNS": "200"})  # one line per help text
    assert result.exit_code == 0, result.output
    assert "default: image,text,text_matched" in result.output and "image group" in result.output


def test_empty_data_set(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    line = _one_line_error(_swap(tmp_path, "--data", str(empty)))
    assert "empty.jsonl" in line
