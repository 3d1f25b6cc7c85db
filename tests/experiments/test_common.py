"""The resumable loop every experiment shares: batches of like items, rows durable as they come, resume."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from visdepth.errors import ConfigError
from visdepth.experiments.common import resumable_rows


def _items(n: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=f"s{i}", kind="a" if i < 5 else "b") for i in range(n)]


def _run(path, items, batches, **kw):
    def measure_batch(batch):
        batches.append([it.id for it in batch])
        return [{"value": it.id.upper()} for it in batch]

    return resumable_rows(
        path, items, config_fingerprint="f", measure_batch=measure_batch, progress=False, **kw
    )


def test_batches_are_runs_of_like_items_still_to_do(tmp_path):
    items, batches = _items(8), []
    rows = _run(tmp_path / "r.jsonl", items, batches, batch_size=2, bucket=lambda it: it.kind)
    assert batches == [["s0", "s1"], ["s2", "s3"], ["s4"], ["s5", "s6"], ["s7"]]
    assert [r["value"] for r in rows] == [it.id.upper() for it in items]
    # a resumed run measures only what is missing, in batches planned over it
    path = tmp_path / "partial.jsonl"
    _run(path, items[:3], [], batch_size=2, bucket=lambda it: it.kind)
    again: list[list[str]] = []
    rows = _run(path, items, again, batch_size=2, bucket=lambda it: it.kind)
    assert again == [["s3", "s4"], ["s5", "s6"], ["s7"]]
    assert [r["id"] for r in rows] == [it.id for it in items]


def test_one_measure_function_and_one_configuration(tmp_path):
    with pytest.raises(ValueError, match="either"):
        resumable_rows(tmp_path / "r.jsonl", _items(1), config_fingerprint="f")
    _run(tmp_path / "r.jsonl", _items(2), [], batch_size=1)
    with pytest.raises(ConfigError, match="different configuration"):
        resumable_rows(tmp_path / "r.jsonl", _items(2), lambda it: {}, config_fingerprint="g")
