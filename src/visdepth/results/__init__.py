"""Typed result files: run provenance (:func:`run_metadata`), durable JSONL rows and atomic JSON summaries."""

from visdepth.results.io import (
    JsonlWriter,
    dumps,
    read_json,
    read_jsonl,
    set_seed,
    to_jsonable,
    write_json,
    write_text_atomic,
)
from visdepth.results.meta import GitInfo, RunMeta, git_info, package_versions, run_metadata, visdepth_version

__all__ = [
    "GitInfo",
    "JsonlWriter",
    "RunMeta",
    "dumps",
    "git_info",
    "package_versions",
    "read_json",
    "read_jsonl",
    "run_metadata",
    "set_seed",
    "to_jsonable",
    "visdepth_version",
    "write_json",
    "write_text_atomic",
]
