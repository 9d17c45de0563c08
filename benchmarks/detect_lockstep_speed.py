"""Speed and peak memory of the lockstep detector on generated marketplaces.

Usage::

    python benchmarks/detect_lockstep_speed.py --events 200000 1000000 [--seed 1]

For each size a marketplace is generated (or reused) under ``--work``; the
engagements and streams are read, one warm-up call compiles the numba kernels,
and the detector is timed. ``peak_rss_gb`` is the process's high-water mark after
the run (it includes reading the tables); ``detect_peak_gb`` is the growth of the
high-water mark during the detector alone (after a reset, where Linux allows it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import DEFAULT_CACHE, current_rss_mb, peak_rss_mb, reset_peak_rss
from lockstep_quality import ensure_market, read_table

from ringscope.algorithms.lockstep import detect_lockstep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, nargs="+", default=[200_000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args()
    for events in args.events:
        folder, _ = ensure_market(args.work, events, args.seed)
        ev = read_table(folder, "engagements")
        streams = read_table(folder, "streams")
        accounts = read_table(folder, "accounts")
        detect_lockstep(ev.head(5000), streams=streams, seed=0)  # compile the kernels
        base_mb = current_rss_mb() if reset_peak_rss() else peak_rss_mb()
        t = time.perf_counter()
        found = detect_lockstep(ev, streams=streams, accounts=accounts, seed=0)
        dt = time.perf_counter() - t
        row = {
            "events": len(ev),
            "seconds": round(dt, 2),
            "findings": len(found),
            "peak_rss_gb": round(peak_rss_mb() / 1024, 2),
            "detect_peak_gb": round((peak_rss_mb() - base_mb) / 1024, 2),
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
