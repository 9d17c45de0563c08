"""Detection speed and memory: load a generated marketplace, run every detector.

Usage::

    .venv/bin/python benchmarks/detect.py                     # 1M engagement events
    .venv/bin/python benchmarks/detect.py --events 10000000   # the 10M target

The marketplace (``ringscope.loaders.synthetic``, seed ``--seed``) is generated
once and cached under ``--cache``, outside the timing. It is loaded into a
fresh EmbeddedStore (timed), then ``run_detection`` runs with the default
policy. Printed: load time, the seconds of each step of the run (reading the
tables, each detector; "queue + save" is the rest: building the ranked queue
and writing the run), the total, and peak RSS of the load and of the detection
(the high-water mark is reset between them where Linux allows it; a polling
sampler backs it up). Targets (at 10M events, 2 cores): full detection
<= 180 s and <= 8 GB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from _common import (
    DEFAULT_CACHE,
    RssSampler,
    ensure_market,
    load_average,
    load_store,
    peak_rss_mb,
    reset_peak_rss,
)

from ringscope.jobs.detect import DETECTORS_WALL, detection_threads, run_detection
from ringscope.policy import default_policy

TARGET_SECONDS = 180.0
TARGET_RSS_MB = 8 * 1024.0
TARGET_EVENTS = 10_000_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--workdir", type=Path, default=None, help="where the store goes")
    ap.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="detectors run at once (default: RINGSCOPE_DETECT_THREADS, else 2 on 2+ cores)",
    )
    args = ap.parse_args(argv)

    print(load_average(), flush=True)
    folder, gen_s = ensure_market(args.cache, args.events, args.seed)
    how = f"generated in {gen_s:.1f} s" if gen_s else "cached"
    print(f"marketplace {folder} ({how})")

    work = (args.workdir or args.cache) / f"store_m{args.events}_s{args.seed}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    store_path = work / "bench.duckdb"
    try:
        exact = reset_peak_rss()
        with RssSampler() as load_rss:
            store, report, load_s = load_store(folder, store_path)
        load_peak = peak_rss_mb() if exact else load_rss.peak_mb
        events = report.tables["engagements"].loaded
        rows = sum(t.read for t in report.tables.values())
        print(
            f"load: {events:,} events, {rows:,} rows in {load_s:.1f} s "
            f"({events / load_s:,.0f} events/s), peak RSS {load_peak:,.0f} MB"
        )

        threads = detection_threads() if args.threads is None else args.threads
        exact = reset_peak_rss()
        with RssSampler() as det_rss:
            t0 = time.perf_counter()

            def progress(step: str, done: int, total: int) -> None:
                elapsed = time.perf_counter() - t0
                print(f"  [{elapsed:7.1f} s] {step} ({done}/{total})", flush=True)

            result = run_detection(store, default_policy(), progress=progress, threads=threads)
            total = time.perf_counter() - t0
        det_peak = peak_rss_mb() if exact else det_rss.peak_mb
        det_peak = max(det_peak, det_rss.peak_mb)
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    steps = dict(result.timings)
    detectors_wall = steps.pop(DETECTORS_WALL)
    own = [k for k in steps if k not in ("read tables", "queue and impact")]
    steps["queue + save"] = max(
        0.0, total - detectors_wall - steps["read tables"] - steps["queue and impact"]
    )
    summary = result.run.summary
    overlap = threads > 1
    print(f"\ndetection on {events:,} events, {threads} detector thread(s) ({load_average()})")
    print(f"{'step':<22} {'seconds':>9} {'share':>6}")
    for name, s in steps.items():
        if name in own:
            # with threads, detectors overlap: each one's own wall time, no share of the total
            share = "" if overlap else f"{s / total:>6.1%}"
            print(f"  {name:<20} {s:>9.2f} {share:>6}")
            if name == own[-1]:
                together = f"{detectors_wall:>9.2f} {detectors_wall / total:>6.1%}"
                print(f"{'detectors together':<22} {together}")
        else:
            print(f"{name:<22} {s:>9.2f} {s / total:>6.1%}")
    print(f"{'total':<22} {total:>9.2f}")
    at_target = args.events >= TARGET_EVENTS
    note = "" if at_target else f" (the targets apply at {TARGET_EVENTS:,} events)"
    print(
        f"\ntotal detection {total:.1f} s (target <= {TARGET_SECONDS:.0f} s: "
        f"{'meets' if total <= TARGET_SECONDS else 'MISSES'}){note}"
    )
    print(
        f"peak RSS during detection {det_peak:,.0f} MB (target <= {TARGET_RSS_MB:,.0f} MB: "
        f"{'meets' if det_peak <= TARGET_RSS_MB else 'MISSES'})"
    )
    print(f"findings {summary.get('findings')}, by kind {summary.get('by_kind')}")
    print(f"accounts flagged {summary.get('accounts_flagged')}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "events": events,
                    "seed": args.seed,
                    "load_seconds": load_s,
                    "load_peak_rss_mb": load_peak,
                    "steps": steps,
                    "detector_threads": threads,
                    "detectors_seconds": detectors_wall,
                    "total_seconds": total,
                    "detect_peak_rss_mb": det_peak,
                    "summary": summary,
                    "load_average": load_average(),
                },
                indent=2,
                default=str,
            )
        )
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
