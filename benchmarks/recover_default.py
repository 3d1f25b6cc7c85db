"""Wall time of ``visdepth recover`` with default settings on the default model (issue: at most 15 minutes on
2 CPU cores), split into phases from the run's own progress: teacher outputs, training per cut, evaluation.

Run from the repository root: ``PYTHONPATH=src HF_HUB_OFFLINE=1 python benchmarks/recover_default.py [--cut 9]``.
Prints one JSON line: total seconds, the run's summary numbers and where the time went. A shared machine makes
the numbers noisy: say how loaded it was (``uptime``) with them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time


def main(argv: list[str]) -> None:
    from visdepth.experiments.recover import RecoverConfig, run
    from visdepth.models import load

    cut = [int(c) for c in argv[argv.index("--cut") + 1].split(",")] if "--cut" in argv else None
    load_start = time.perf_counter()
    adapter = load("visdepth/shapes-vlm", device="cpu")
    loaded = time.perf_counter() - load_start
    with tempfile.TemporaryDirectory() as out:
        config = RecoverConfig(output_path=out, progress=False, **({"cuts": cut} if cut else {}))
        start = time.perf_counter()
        result = run(config, adapter)
        total = time.perf_counter() - start
    rec = {
        f"{kind}@{c}": {
            "full": r.full,
            "truncated": r.truncated,
            "recovered": r.recovered,
            "fraction": r.fraction.value,
            "spread_std_trunc_to_rec": [ks.spread[f"truncated@{c}"].std, ks.spread[f"recovered@{c}"].std],
        }
        for ks in result.tasks["shapes"].kinds.values()
        for c, r in ks.recovery.items()
        for kind in [ks.kind]
    }
    print(
        json.dumps(
            {
                "seconds": round(total + loaded, 1),
                "load_s": round(loaded, 1),
                "cuts": result.cuts,
                "cpus": os.cpu_count(),
                "loadavg": os.getloadavg(),
                "recovery": rec,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
