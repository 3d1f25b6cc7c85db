"""Provenance recorded in every result file: versions, git state, machine, device, seed, config and choices.

A result is only comparable with another when both say which code, which packages, which settings and which of
the study's open choices (PAPER.md: entropy alpha, ID estimator, truncation mode...) produced them.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

# Distributions whose versions change results; the optional ones are recorded as None when not installed so a
# reader can tell "absent" from "not checked".
CORE_PACKAGES = ("torch", "transformers", "numpy", "tokenizers", "safetensors", "pillow", "pydantic")
OPTIONAL_PACKAGES = (
    "peft",
    "accelerate",
    "sentence-transformers",
    "scikit-dimension",
    "scikit-learn",
    "scipy",
    "sacrebleu",
    "rouge-score",
    "gguf",
)

_SOURCE_DIR = Path(__file__).resolve().parents[1]  # src/visdepth


class GitInfo(BaseModel):
    """State of the git checkout holding the visdepth source (absent when installed from a wheel)."""

    commit: str | None = Field(description="HEAD commit, None in a repository without commits")
    dirty: bool = Field(description="uncommitted changes (tracked or untracked, not ignored) exist")
    branch: str | None = None


class RunMeta(BaseModel):
    """Everything needed to tell how a result was produced."""

    visdepth_version: str
    python: str
    packages: dict[str, str | None]
    git: GitInfo | None
    hostname: str
    platform: str
    device: str
    device_name: str
    cuda: str | None = Field(
        default=None, description="CUDA version torch was built with, None for CPU builds"
    )
    dtype: str | None
    seed: int | None
    processes: int = Field(default=1, description="processes of a data-parallel run (accelerate / torchrun)")
    started_at: datetime
    finished_at: datetime | None = None
    command: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    choices: dict[str, Any] = Field(default_factory=dict, description="every open choice of PAPER.md made")

    def finish(self) -> RunMeta:
        """Stamp ``finished_at`` with the current UTC time (returns self, for chaining)."""
        self.finished_at = utc_now()
        return self


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def package_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def visdepth_version() -> str:
    """visdepth's installed version; ``0+unknown`` when running from a source tree that was never installed."""
    return package_version("visdepth") or "0+unknown"


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that shape results (core ones, then optional ones, None when absent)."""
    out = {name: package_version(name) for name in CORE_PACKAGES}
    out.update({name: package_version(name) for name in OPTIONAL_PACKAGES})
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_info(path: Path | None = None) -> GitInfo | None:
    """Commit and dirty flag of the checkout holding ``path`` (default: the visdepth source), or None.

    None when git is missing, the folder is no work tree, or the folder is ignored by the enclosing repository:
    a wheel installed into a project's ``.venv`` sits inside that project's checkout, whose hash would lie.
    """
    path = path or _SOURCE_DIR
    if _git(["rev-parse", "--is-inside-work-tree"], path) != "true":
        return None
    if _git(["check-ignore", "-q", "."], path) is not None:  # exit 0 means ignored
        return None
    commit = _git(["rev-parse", "--verify", "-q", "HEAD"], path)
    status = _git(["status", "--porcelain"], path)
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], path) if commit else None
    return GitInfo(commit=commit or None, dirty=bool(status) or not commit, branch=branch)


def _device_str(device: Any) -> str:
    return "cpu" if device is None else str(device)


def device_name(device: Any) -> str:
    """A human name for a torch device: the GPU model for CUDA, the processor for CPU."""
    dev = _device_str(device)
    if dev.startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_name(torch.device(dev))
        except Exception:  # a wrong index or a broken driver must not stop a run from being recorded
            pass
        return "cuda (unavailable)"
    if dev.startswith("mps"):
        return "Apple MPS"
    return platform.processor() or platform.machine() or dev


def cuda_version() -> str | None:
    """The CUDA version of the installed torch build (None for a CPU build or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.version.cuda


def _dtype_str(dtype: Any) -> str | None:
    return None if dtype is None else str(dtype).removeprefix("torch.")


def run_metadata(
    config: dict[str, Any] | BaseModel | None = None,
    choices: dict[str, Any] | None = None,
    seed: int | None = None,
    device: Any = "cpu",
    dtype: Any = None,
    started_at: datetime | None = None,
    processes: int = 1,
) -> RunMeta:
    """Collect the provenance of a run.

    ``config`` is the full configuration (a dict or pydantic model); ``choices`` the open choices of PAPER.md the
    experiment made; ``device`` and ``dtype`` accept torch objects or strings; ``started_at`` is when the run
    began (default: now; metadata is collected at the end of a run, so a run passes the time it started).
    """
    from visdepth.results.io import to_jsonable  # JSON-safe copies, so the record always serialises

    if isinstance(config, BaseModel):
        config = config.model_dump()
    return RunMeta(
        visdepth_version=visdepth_version(),
        python=platform.python_version(),
        packages=package_versions(),
        git=git_info(),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        device=_device_str(device),
        device_name=device_name(device),
        cuda=cuda_version(),
        dtype=_dtype_str(dtype),
        seed=None if seed is None else int(seed),
        processes=int(processes),
        started_at=started_at or utc_now(),
        command=list(sys.argv),
        config=to_jsonable(config or {}),
        choices=to_jsonable(choices or {}),
    )
