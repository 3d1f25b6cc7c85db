"""``visdepth run``: every experiment on one model, then the report; a rerun resumes; --config and the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from visdepth.cli import app
from visdepth.experiments import EXPERIMENTS

runner = CliRunner()
FAST = ["--model", "tiny:llava", "--tasks", "photos", "--limit", "2", "--no-progress"]


def _rows(folder):
    return {p.parent.name: p.read_text().count("\n") for p in folder.rglob("samples*.jsonl")}


def test_run_writes_every_experiment_and_the_report_then_resumes(tmp_path):
    config = tmp_path / "run.yaml"
    # a per-experiment section of the config file; the command line still wins for shared options
    config.write_text("swap:\n  layers: 0,2\n  sentence_model: none\ntruncate:\n  timing: false\nlimit: 5\n")
    args = ["run", *FAST, "--output_path", str(tmp_path / "out"), "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "tiny-llava"
    assert {p.name for p in folder.iterdir()} >= {"dynamics", "swap", "truncate-drop", "report.html"}
    swap = json.loads((folder / "swap" / "results.json").read_text())
    assert swap["layers"] == [0, 2] and swap["num_samples"] == 2  # the section, and --limit over the file's 5
    assert json.loads((folder / "truncate-drop" / "results.json").read_text())["timing"] is None
    dynamics = json.loads((folder / "dynamics" / "results.json").read_text())
    assert dynamics["baseline"] is not None  # run's quick options: the random-init twin is measured
    for name in ("dynamics", "swap", "truncate-drop"):
        assert (folder / name / "figures").is_dir()
    before = _rows(folder)
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert _rows(folder) == before  # nothing measured twice


def test_run_chooses_experiments_and_refuses_unknown_ones_before_loading(tmp_path):
    result = runner.invoke(
        app, ["run", *FAST, "--experiments", "dynamics,swp", "--output_path", str(tmp_path)]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown experiment 'swp'" in lines[0] and "swap" in lines[0]
    assert not any(tmp_path.iterdir())
    ok = runner.invoke(app, ["run", *FAST, "--experiments", "dynamics", "--output_path", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert {p.name for p in (tmp_path / "tiny-llava").iterdir()} == {"dynamics", "report.html"}


def test_a_bad_value_in_a_config_section_names_the_experiment(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("truncate:\n  budget: 2\n")
    result = runner.invoke(app, ["run", *FAST, "--config", str(config), "--output_path", str(tmp_path)])
    assert result.exit_code == 2
    assert "budget" in result.output and "(in truncate)" in result.output


def test_every_option_has_its_help_from_the_config_field():
    for name, cls in EXPERIMENTS.items():
        for field_name, field in cls.config_class.model_fields.items():
            assert field.description, (
                f"{name}: config field {field_name} has no description (its --help text)"
            )


def test_config_file_values_are_overridden_by_the_command_line(tmp_path):
    config = tmp_path / "opts.yaml"
    config.write_text("limit: 3\nid-methods: [twonn]\nmodel: tiny:llava\ntasks: photos\n")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["dynamics", "--config", str(config), "--limit", "2", "--output_path", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "tiny-llava" / "dynamics" / "results.json").read_text())
    assert data["meta"]["config"]["limit"] == 2 and data["meta"]["config"]["id_methods"] == ["twonn"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("limit: [1\n")
    result = runner.invoke(app, ["dynamics", "--config", str(bad)])
    assert result.exit_code == 2 and "not valid YAML" in result.output
