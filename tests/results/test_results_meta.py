"""Run metadata: versions, git state, device, seed, config and the study's open choices."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from visdepth.results import RunMeta, dumps, git_info, run_metadata, write_json
from visdepth.results.meta import visdepth_version


def test_metadata_records_versions_config_and_choices(tmp_path):
    config = {"model": "tiny-llava", "layers": [0, 1, 2], "out": tmp_path, "eps": float("nan")}
    choices = {"entropy_alpha": 1.0, "entropy_normalise": True, "id_estimator": "twonn"}
    meta = run_metadata(config, choices, seed=7, device=torch.device("cpu"), dtype=torch.bfloat16)

    assert meta.visdepth_version == visdepth_version() and meta.visdepth_version
    assert meta.python.count(".") == 2
    for pkg in ("torch", "transformers", "numpy"):
        assert meta.packages[pkg], pkg
    for pkg in ("peft", "sentence-transformers", "scikit-dimension"):
        assert pkg in meta.packages  # recorded even when absent (as None)
    assert meta.config == {"model": "tiny-llava", "layers": [0, 1, 2], "out": str(tmp_path), "eps": None}
    assert meta.choices == choices
    assert (meta.seed, meta.device, meta.dtype) == (7, "cpu", "bfloat16")
    assert meta.device_name and meta.hostname and meta.platform
    assert meta.started_at.tzinfo is not None and meta.finished_at is None
    assert meta.finish().finished_at >= meta.started_at

    # It serialises and reads back as the same record.
    path = write_json(tmp_path / "meta.json", meta)
    again = RunMeta.model_validate(json.loads(path.read_text()))
    assert again == meta
    assert json.loads(dumps(meta))["packages"]["torch"] == torch.__version__


def test_metadata_defaults():
    meta = run_metadata()
    assert meta.config == {} and meta.choices == {} and meta.seed is None and meta.dtype is None


def _git(repo, *args):
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_git_info_commit_dirty_and_ignored_folders(tmp_path):
    try:
        _git(tmp_path, "init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    info = git_info(tmp_path)
    assert info is not None and info.commit is None and info.dirty  # no commit yet: nothing is recorded

    (tmp_path / ".gitignore").write_text("venv/\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "first")
    info = git_info(tmp_path)
    assert info is not None and len(info.commit) == 40 and not info.dirty
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_info(tmp_path).dirty

    # A package installed into an ignored virtual environment must not claim the project's hash.
    pkg = tmp_path / "venv" / "site-packages" / "visdepth"
    pkg.mkdir(parents=True)
    assert git_info(pkg) is None


def test_git_info_outside_a_repository(tmp_path):
    # tmp_path is not inside a work tree (pytest's temp root is under /tmp or similar).
    if subprocess.run(["git", "-C", str(tmp_path), "rev-parse"], capture_output=True).returncode == 0:
        pytest.skip("the temporary folder lies inside a git work tree")
    assert git_info(tmp_path) is None
