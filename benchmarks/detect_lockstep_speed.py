"""Speed and peak memory of the lockstep detector on generated marketplaces.

Usage::

    python benchmarks/detect_lockstep_speed.py --events 200000 1000000 [--seed 1]

For each size a marketplace is generated (or reused) under ``--work``; the
engagements and streams are read, one warm-up call compiles the numba kernel,
and the detector is timed. Peak RSS is the process's high-water mark after the
run (it includes reading the tables).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from lockstep_quality import ensure_market, read_table

from ringscope.algorithms.lockstep import detect_lockstep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, nargs="+", default=[200_000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-bench"))
    args = ap.parse_args()
    for events in args.events:
        folder = ensure_market(args.work, events, args.seed)
        ev = read_table(folder, "engagements")
        streams = read_table(folder, "streams")
        accounts = read_table(folder, "accounts")
        detect_lockstep(ev.head(1000), streams=streams, seed=0)  # compile the kernel
        t = time.perf_counter()
        found = detect_lockstep(ev, streams=streams, accounts=accounts, seed=0)
        dt = time.perf_counter() - t
        rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        row = {
            "events": len(ev),
            "seconds": round(dt, 2),
            "findings": len(found),
            "peak_rss_gb": round(rss_gb, 2),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
