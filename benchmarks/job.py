"""The nightly job: one night's export loaded over a store that holds the history.

Usage::

    .venv/bin/python benchmarks/job.py                                   # 10M + 1M, embedded
    .venv/bin/python benchmarks/job.py --history 1000000 --night 100000  # quicker
    .venv/bin/python benchmarks/job.py --store neo4j --history 1000000 --night 100000
    .venv/bin/python benchmarks/job.py --window-days 7                   # detect on 7 days

A marketplace of ``history + night`` engagement events is generated once and
cached (``--cache``). It is cut in time: the latest ``night`` events, and
every other row (orders, follows, accounts, streams, identifiers,
affiliations) from the first of them on, make the night's export; the rest
is the history. Outside the timing, the history is loaded into a fresh store
and detected once (yesterday's run, which the night's run is compared with).
Then ``run_job`` runs on the night's export, as ``ringscope job`` does:
load, detect, compare, write back, under the job lock. Printed: each phase's
seconds, the total, peak RSS, and the run's changes. Target (10M history,
1M night, 2 cores): the job in <= 5 minutes.

With ``--store neo4j`` a local Neo4j is started from the project's Maven
module (or ``--uri`` names one); loading a 10M history into Neo4j takes long
on 2 cores, so give a smaller ``--history`` there.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import pandas as pd
from _common import DEFAULT_CACHE, RssSampler, ensure_market, load_average

from ringscope.contract import LOAD_ORDER
from ringscope.jobs.detect import run_detection
from ringscope.jobs.job import run_job
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.read import table_file
from ringscope.policy import default_policy
from ringscope.settings import Settings

TARGET_SECONDS = 300.0

#: The time column that puts a row of each table into the history or the night.
TIME_OF = {
    "accounts": "created_at",
    "streams": "started_at",
    "affiliations": "since",
    "follows": "ts",
    "engagements": "ts",
    "orders": "ts",
    "identifiers": "first_seen",
}


def _read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def split_market(folder: Path, night_events: int, out: Path) -> tuple[Path, Path, pd.Timestamp]:
    """Cut the export in ``folder`` in time: ``out/history`` and ``out/night``."""
    history, night = out / "history", out / "night"
    done = out / "split.done"
    if done.is_file():
        return history, night, pd.Timestamp(done.read_text().strip())
    shutil.rmtree(out, ignore_errors=True)
    history.mkdir(parents=True)
    night.mkdir(parents=True)
    events = _read(_must(folder, "engagements"))
    ts = pd.to_datetime(events["ts"], utc=True, format="ISO8601")
    cut = ts.sort_values().iloc[len(ts) - night_events]
    del events, ts
    for name in LOAD_ORDER:
        path = table_file(folder, name)
        if path is None:
            continue
        frame = _read(path)
        column = TIME_OF.get(name)
        if column is None or column not in frame:
            late = pd.Series(False, index=frame.index)
        else:
            late = pd.to_datetime(frame[column], utc=True, format="ISO8601") >= cut
        for target, rows in ((history, frame[~late]), (night, frame[late])):
            rows.to_parquet(target / f"{name}.parquet", index=False)
    done.write_text(cut.isoformat())
    return history, night, cut


def _must(folder: Path, name: str) -> Path:
    path = table_file(folder, name)
    if path is None:
        raise SystemExit(f"{folder} has no {name} table")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--history", type=int, default=10_000_000, help="events already stored")
    ap.add_argument("--night", type=int, default=1_000_000, help="events of the night")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", choices=("embedded", "neo4j"), default="embedded")
    ap.add_argument("--uri", default=None, help="an existing Neo4j (else a local one)")
    ap.add_argument("--window-days", type=float, default=None, help="policy window_days")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args(argv)

    print(load_average(), flush=True)
    total_events = args.history + args.night
    folder, gen_s = ensure_market(args.cache, total_events, args.seed)
    print(f"marketplace {folder} ({f'generated in {gen_s:.1f} s' if gen_s else 'cached'})")
    t0 = time.perf_counter()
    history, night, cut = split_market(
        folder, args.night, args.cache / f"job_h{args.history}_n{args.night}_s{args.seed}"
    )
    print(f"cut at {cut.isoformat()} ({time.perf_counter() - t0:.1f} s)", flush=True)

    work = args.cache / f"job-store-{args.store}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    policy = default_policy()
    if args.window_days is not None:
        policy = policy.model_copy(update={"window_days": args.window_days})
    local = None
    try:
        if args.store == "embedded":
            uri = str(work / "store.duckdb")
            settings = Settings(store=uri, work_dir=str(work / "var"))
        else:
            uri = args.uri
            if uri is None:
                from ringscope.graphs.neo4j_local import BENCH_CONF, start_local_neo4j

                local = start_local_neo4j(
                    work, name="job", heap="4g", pagecache="4g", conf=BENCH_CONF
                )
                uri = local.uri
            settings = Settings(
                store=uri, work_dir=str(work / "var"), columnar_path=str(work / "events.duckdb")
            )
        from ringscope.graphs import open_store

        store = open_store(uri, settings=settings)
        try:
            if args.store == "neo4j":
                store.wipe()  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            before = load_export(store, history, rejects_dir=work / "rejects")
            history_load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            yesterday = run_detection(store, policy)
            history_detect_s = time.perf_counter() - t0
            stored = store.counts()
        finally:
            store.close()
        print(
            f"history: {stored['engagements']:,} events stored in {history_load_s:.1f} s, "
            f"yesterday's run {history_detect_s:.1f} s, {len(yesterday.findings)} findings, "
            f"{before.rejected} rejected rows",
            flush=True,
        )

        phases: dict[str, float] = {}
        started = time.perf_counter()
        marks = {"load": started}

        def load_progress(table: str, rows: int) -> None:
            pass

        def detect_progress(step: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if "detect" not in marks:
                marks["detect"] = now
                phases["load"] = now - marks["load"]
            print(f"  [{now - started:7.1f} s] {step} ({done}/{total})", flush=True)

        with RssSampler() as rss:
            result = run_job(
                night,
                store_uri=uri,
                policy=policy,
                settings=settings,
                load_progress=load_progress,
                detect_progress=detect_progress,
            )
        total = time.perf_counter() - started
    finally:
        if local is not None:
            local.stop()
    phases["detect, compare, write back"] = total - phases.get("load", 0.0)
    load = result.load
    night_rows = sum(t.loaded for t in load.tables.values()) if load else 0
    print(f"\nnightly job on {args.store} ({load_average()})")
    print(f"{'phase':<30} {'seconds':>9}")
    for name, s in phases.items():
        print(f"{name:<30} {s:>9.1f}")
    print(f"{'total':<30} {total:>9.1f}")
    for step, s in result.detection.timings.items():
        print(f"  {step:<28} {s:>9.1f}")
    print(
        f"\nhistory {stored['engagements']:,} events; night {args.night:,} events "
        f"({night_rows:,} new rows, {load.rejected if load else 0} rejected); "
        f"window {policy.window_days or 'all data'}"
    )
    print(f"peak RSS {rss.peak_mb:,.0f} MB")
    summary = result.summary()
    print(f"findings {summary['findings']}, changes {summary['changes']}")
    at_target = args.history >= 10_000_000 and args.night >= 1_000_000
    verdict = "meets" if total <= TARGET_SECONDS else "MISSES"
    note = "" if at_target else " (the target applies to 10M history + 1M night)"
    print(f"job {total:.1f} s (target <= {TARGET_SECONDS:.0f} s: {verdict}){note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
