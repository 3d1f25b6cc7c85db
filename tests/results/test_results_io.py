"""Durable JSONL rows, resumption after a kill, atomic JSON and the JSON conversion of numeric types."""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel

from visdepth.errors import VisdepthError
from visdepth.results import JsonlWriter, read_json, read_jsonl, set_seed, to_jsonable, write_json


def test_writer_appends_and_resume_skips_done_ids(tmp_path):
    path = tmp_path / "runs" / "samples.jsonl"
    with JsonlWriter(path) as w:
        assert w.done_ids == set() and len(w) == 0
        w.write({"id": "a", "score": 1.0})
        w.write({"id": "b", "score": np.float32(0.5)})
        # Each row is on disk before the writer is closed.
        assert len(read_jsonl(path)) == 2
    with JsonlWriter(path) as w:
        assert w.done_ids == {"a", "b"} and "a" in w and not w.is_done("c")
        assert [r["id"] for r in w.existing] == ["a", "b"]
        todo = [s for s in ["a", "b", "c"] if s not in w.done_ids]
        for sid in todo:
            w.write({"id": sid, "score": 0.0})
        with pytest.raises(ValueError, match="already"):
            w.write({"id": "a"})
        with pytest.raises(ValueError, match="no 'id'"):
            w.write({"score": 1})
        assert len(w) == 3
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_resume_false_starts_fresh(tmp_path):
    path = tmp_path / "s.jsonl"
    with JsonlWriter(path) as w:
        w.write({"id": 1})
    with JsonlWriter(path, resume=False) as w:
        assert w.done_ids == set()
        w.write({"id": 2})
    assert read_jsonl(path) == [{"id": 2}]


def test_truncated_last_line_is_dropped_and_appending_stays_clean(tmp_path):
    path = tmp_path / "s.jsonl"
    with JsonlWriter(path) as w:
        w.write({"id": "a", "text": "héllo"})
        w.write({"id": "b"})
    # A run killed in the middle of writing row "c" (cut inside a multi-byte character, even).
    full = json.dumps({"id": "c", "text": "é" * 10}, ensure_ascii=False).encode()
    with open(path, "ab") as f:
        f.write(full[: len(full) // 2 + 1])
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]
    with JsonlWriter(path) as w:
        assert w.done_ids == {"a", "b"}
        w.write({"id": "c"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_complete_last_row_without_newline_is_kept(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}', encoding="utf-8")
    with JsonlWriter(path) as w:
        assert w.done_ids == {"a", "b"}
        w.write({"id": "c"})
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b", "c"]


def test_damage_in_the_middle_is_reported(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n{"id": "c"}\n', encoding="utf-8")
    with pytest.raises(VisdepthError, match="line 2"):
        read_jsonl(path)
    with pytest.raises(VisdepthError, match="line 2"):
        JsonlWriter(path)


def test_tuple_key_for_rows_per_sample_and_layer(tmp_path):
    path = tmp_path / "s.jsonl"
    with JsonlWriter(path, key=("id", "layer")) as w:
        w.write({"id": "a", "layer": 0})
        w.write({"id": "a", "layer": np.int64(1)})
    with JsonlWriter(path, key=("id", "layer")) as w:
        assert w.done_ids == {("a", "0"), ("a", "1")}
        assert w.is_done(("a", 1)) and not w.is_done(("a", 2))


class _Color(Enum):
    RED = "red"


@dataclass
class _Point:
    x: float
    y: np.ndarray


class _Model(BaseModel):
    name: str
    when: datetime
    where: Path


def test_write_json_round_trip_with_nan_numpy_torch(tmp_path):
    obj = {
        "nan": float("nan"),
        "inf": -math.inf,
        "np_scalars": [np.float32(1.5), np.int64(3), np.bool_(True), np.float64("nan")],
        "array": np.array([[1.0, np.nan], [2.0, 3.0]]),
        "tensor": torch.tensor([0.5, 1.5], dtype=torch.bfloat16),
        "int_tensor": torch.tensor(7),
        "dtype": torch.float16,
        "device": torch.device("cpu"),
        "tuple": (1, 2),
        "set": {3, 1, 2},
        np.int64(4): "numpy key",
        "enum": _Color.RED,
        "dataclass": _Point(1.0, np.arange(2)),
        "model": _Model(name="m", when=datetime(2026, 1, 2, tzinfo=timezone.utc), where=Path("/x/y")),
    }
    path = write_json(tmp_path / "deep" / "summary.json", obj)
    back = read_json(path)
    assert back == {
        "nan": None,
        "inf": None,
        "np_scalars": [1.5, 3, True, None],
        "array": [[1.0, None], [2.0, 3.0]],
        "tensor": [0.5, 1.5],
        "int_tensor": 7,
        "dtype": "float16",
        "device": "cpu",
        "tuple": [1, 2],
        "set": [1, 2, 3],
        "4": "numpy key",
        "enum": "red",
        "dataclass": {"x": 1.0, "y": [0, 1]},
        "model": {"name": "m", "when": "2026-01-02T00:00:00+00:00", "where": "/x/y"},
    }
    # Strict JSON: no NaN token anywhere, and no temporary files left behind.
    assert "NaN" not in path.read_text()
    assert os.listdir(path.parent) == ["summary.json"]


def test_write_json_replaces_atomically_and_cleans_up_on_failure(tmp_path):
    path = write_json(tmp_path / "s.json", {"v": 1})
    with pytest.raises(TypeError, match="cannot write"):
        write_json(path, {"v": object()})
    assert read_json(path) == {"v": 1}  # the old file is untouched
    assert os.listdir(tmp_path) == ["s.json"]
    write_json(path, {"v": 2})
    assert read_json(path) == {"v": 2}


def test_to_jsonable_passes_plain_values():
    assert to_jsonable({"a": [1, "x", None, True, 2.5]}) == {"a": [1, "x", None, True, 2.5]}


def test_set_seed_makes_draws_repeat():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    assert set_seed(123) == 123
    first = draw()
    set_seed(123)
    assert draw() == first
    assert not torch.are_deterministic_algorithms_enabled()


def test_written_files_get_the_usual_mode(tmp_path):
    """mkstemp's 0600 would hide results from other users of a shared machine."""
    import stat

    umask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_duplicate_ids_are_read_once_and_dropped_on_resume(tmp_path):
    path = tmp_path / "samples.jsonl"
    # what two runs appending at once used to leave: every row twice
    rows = [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"id": "a", "v": 1}, {"id": "b", "v": 3}, {"note": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert len(read_jsonl(path)) == 5  # without a key, every line
    assert read_jsonl(path, key="id") == [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"note": 0}]
    with JsonlWriter(path) as w:
        assert w.existing == [{"id": "a", "v": 1}, {"id": "b", "v": 2}, {"note": 0}]
        assert w.done_ids == {"a", "b"} and len(w) == 3
        with pytest.raises(ValueError, match="already in"):
            w.write({"id": "a", "v": 9})
        w.write({"id": "c", "v": 4})
    # the resumed file holds each id once, the first row of each kept
    assert [r.get("id") for r in read_jsonl(path)] == ["a", "b", None, "c"]
    assert read_jsonl(path)[1]["v"] == 2


def test_duplicates_under_a_tuple_key(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [{"id": "a", "layer": 1}, {"id": "a", "layer": 2}, {"id": "a", "layer": 1, "x": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_jsonl(path, key=("id", "layer")) == rows[:2]
    with JsonlWriter(path, key=("id", "layer")) as w:
        assert len(w) == 2
    assert read_jsonl(path) == rows[:2]
