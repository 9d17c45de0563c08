"""The local engine and the Spark engine (local mode) side by side on the same export.

Usage::

    .venv/bin/python benchmarks/spark.py                          # 1M and 10M events
    .venv/bin/python benchmarks/spark.py --events 1000000 --master 'local[2]'

For each size the marketplace (``ringscope.loaders.synthetic``, seed ``--seed``,
Parquet) is generated once and cached under ``--cache``, outside the timing.
The local engine reads the export (pandas, checked as the loader checks it) and
runs every detector (``detect_tables``); the Spark engine starts a session once
and runs ``detect_export`` on the same Parquet files. Printed per engine: seconds
to start (Spark only), seconds of detection (reading included), seconds of the
detectors that run on Spark, the number of findings, and whether the queue has
the same finding ids as the local engine's. Local mode measures overheads, not
a cluster's speed: on one machine Spark pays for shuffles and Python workers
that a cluster spreads over many.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _common import DEFAULT_CACHE, ensure_market, load_average, read_market_tables

from ringscope.jobs.detect import detect_tables
from ringscope.policy import default_policy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--master", default="local[2]")
    args = ap.parse_args(argv)

    from ringscope.engines.spark.detect import SPARK_DETECTORS, detect_export
    from ringscope.engines.spark.session import spark_session

    policy = default_policy()
    t0 = time.perf_counter()
    spark = spark_session(args.master, app_name="ringscope-bench")
    start_s = time.perf_counter() - t0
    rows = []
    for events in args.events:
        folder, _ = ensure_market(args.cache, events, args.seed)
        load_before = load_average()
        t0 = time.perf_counter()
        tables = read_market_tables(folder)
        local_q, local_t = detect_tables(tables, policy)
        local_s = time.perf_counter() - t0
        del tables
        t0 = time.perf_counter()
        result = detect_export(spark, str(folder), policy)
        spark_s = time.perf_counter() - t0
        on_spark = sum(v for k, v in result.timings.items() if k in SPARK_DETECTORS)
        same = [f.id for f in local_q] == [f.id for f in result.findings]
        local_native = sum(v for k, v in local_t.items() if k in SPARK_DETECTORS)
        rows.append((events, "local", "-", local_s, local_native, len(local_q), "-", load_before))
        rows.append(
            (
                events,
                f"spark {args.master}",
                f"{start_s:.1f}",
                spark_s,
                on_spark,
                len(result.findings),
                "yes" if same else "NO",
                load_average(),
            )
        )
    head = (
        "events",
        "engine",
        "start s",
        "detect s",
        "spark-side detectors s",
        "findings",
        "same queue",
        "load average",
    )
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for ev, eng, st, det, native, n, same_q, la in rows:
        print(f"{ev:,} | {eng} | {st} | {det:.1f} | {native:.1f} | {n} | {same_q} | {la}")
    print(f"spark-side detectors: {', '.join(SPARK_DETECTORS)}", file=sys.stderr)
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
