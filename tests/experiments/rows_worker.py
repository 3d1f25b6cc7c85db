"""Run by tests/experiments/test_distributed.py under torchrun: one rank of a resumable-rows loop, no model.

Every item's row records which rank measured it; each measured id is also appended to ``<folder>/calls.<rank>``
so the test can tell that every missing item was measured exactly once across ranks."""

import os
import sys
from pathlib import Path
from types import SimpleNamespace

from visdepth.experiments import common, distributed

folder, count, batch_size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
# "<rank>:<n>": that rank dies (as if killed) once it has measured n items
die_rank, die_after = map(int, sys.argv[4].split(":")) if len(sys.argv) > 4 else (-1, 0)
ranks = distributed.current()
items = [SimpleNamespace(id=f"t/{i:03d}", bucket=i // 4) for i in range(count)]


def measure_batch(batch):
    calls = folder / f"calls.{ranks.rank}"
    if ranks.rank == die_rank and calls.exists() and len(calls.read_text().splitlines()) >= die_after:
        os._exit(9)
    with open(folder / f"calls.{ranks.rank}", "a") as f:
        f.writelines(f"{it.id} {len(batch)}\n" for it in batch)
    return [{"value": int(it.id[2:]) ** 2, "batch": [b.id for b in batch]} for it in batch]


with common.lock_run_dir(folder):
    rows = common.resumable_rows(
        folder / "samples.jsonl",
        items,
        config_fingerprint="fp",
        measure_batch=measure_batch,
        batch_size=batch_size,
        bucket=lambda it: it.bucket,
        progress=False,
    )
assert [r["id"] for r in rows] == [it.id for it in items], "every rank returns every row, in item order"
print(f"rank {ranks.rank}/{ranks.world_size} ok", flush=True)
