"""Load speed and memory: load a generated export into a fresh embedded store, per format.

Usage::

    .venv/bin/python benchmarks/load.py                       # 1M events, Parquet and CSV
    .venv/bin/python benchmarks/load.py --events 10000000     # 10M events
    .venv/bin/python benchmarks/load.py --formats csv         # one format
    .venv/bin/python benchmarks/load.py --generator plain     # a simpler, faster-to-make export

The export comes from the project's synthetic marketplace generator
(:func:`ringscope.loaders.synthetic.generate`, all eight tables, seed 1) unless
``--generator plain`` asks for the small vectorised one below (accounts,
streams, engagements, orders). Each export is generated once into a cache
folder (``--cache``, default ``$XDG_CACHE_HOME/ringscope/bench-load``, i.e.
``~/.cache/ringscope/bench-load``) and reused by
later runs; generating is never timed. Every load runs in a fresh process, so
that its peak RSS is its own; ``cpu s`` (user + system seconds of that process)
is steadier than wall time on a shared machine. The store file goes to a
temporary folder beside the cache and is removed afterwards.

Targets on 2 cores: >= 200,000 events/s and peak RSS <= 4 GB at 10M events,
for CSV as well as Parquet.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

_START = np.datetime64("2026-01-01T00:00:00", "us")
_FORMATS = ("parquet", "csv")
_SUFFIX = {"parquet": ".parquet", "csv": ".csv"}
_SEED = 1


# --------------------------------------------------------------------------- the plain export


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pa.array(np.char.add(prefix, numbers.astype(str)))


def _times(rng: np.random.Generator, n: int, span_s: int) -> pa.Array:
    offsets = rng.integers(0, span_s * 1_000_000, n).astype("timedelta64[us]")
    return pa.array(_START + offsets).cast(pa.timestamp("us", "UTC"))


def generate_plain(out: Path, events: int, fmt: str, seed: int = _SEED) -> dict[str, int]:
    """Write a plain export with ``events`` engagement events in ``fmt``; rows per table."""
    rng = np.random.default_rng(seed)
    n_acc = max(1_000, events // 50)
    n_creators = max(10, n_acc // 100)
    n_streams = max(10, events // 500)
    roles = np.where(np.arange(n_acc) < n_creators, "creator", "buyer")
    roles[n_creators : 2 * n_creators] = "seller"
    tables: dict[str, pa.Table] = {
        "accounts": pa.table(
            {
                "account_id": _ids("a", np.arange(n_acc)),
                "roles": pa.array(roles),
                "created_at": _times(rng, n_acc, 86_400 * 30),
                "country": pa.array(rng.choice(["SG", "MY", "ID", "TH"], n_acc)),
            }
        ),
        "streams": pa.table(
            {
                "stream_id": _ids("s", np.arange(n_streams)),
                "creator_id": _ids("a", rng.integers(0, n_creators, n_streams)),
                "started_at": _times(rng, n_streams, 86_400 * 300),
                "title": pa.array(np.full(n_streams, "Live deals")),
            }
        ),
        "engagements": pa.table(
            {
                "account_id": _ids("a", rng.integers(0, n_acc, events)),
                "stream_id": _ids("s", rng.integers(0, n_streams, events)),
                "kind": pa.array(
                    rng.choice(
                        ["view", "like", "comment", "share", "gift"],
                        events,
                        p=[0.7, 0.15, 0.08, 0.05, 0.02],
                    )
                ),
                "ts": _times(rng, events, 86_400 * 300),
                "amount": pa.array(np.round(rng.uniform(0, 50, events), 2)),
            }
        ),
    }
    n_orders = max(100, events // 20)
    amount = np.round(rng.uniform(1, 200, n_orders), 2)
    tables["orders"] = pa.table(
        {
            "order_id": _ids("o", np.arange(n_orders)),
            "buyer_id": _ids("a", rng.integers(2 * n_creators, n_acc, n_orders)),
            "seller_id": _ids("a", rng.integers(n_creators, 2 * n_creators, n_orders)),
            "product_id": _ids("p", rng.integers(0, 5_000, n_orders)),
            "amount": pa.array(amount),
            "status": pa.array(
                rng.choice(["completed", "cancelled", "refunded"], n_orders, p=[0.9, 0.05, 0.05])
            ),
            "ts": _times(rng, n_orders, 86_400 * 300),
            "commission": pa.array(np.round(amount * 0.1, 2)),
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if fmt == "csv":
            pacsv.write_csv(table, out / f"{name}.csv")
        else:
            pq.write_table(table, out / f"{name}.parquet")
    return {name: t.num_rows for name, t in tables.items()}


# --------------------------------------------------------------------------- the cache


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ringscope" / "bench-load"


def export_dir(cache: Path, generator: str, events: int, fmt: str) -> Path:
    """The cached export for these settings, generated first when missing.

    The export is written to a temporary folder and renamed when complete, so
    that an interrupted run never leaves a half-written export to be reused.
    """
    target = cache / f"{generator}-{events}-seed{_SEED}-{fmt}"
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache))
    try:
        started = time.perf_counter()
        if generator == "synthetic":
            from ringscope.loaders.synthetic import generate

            generate(partial, events=events, seed=_SEED, fmt=fmt)  # type: ignore[arg-type]
        else:
            generate_plain(partial, events, fmt)
        partial.rename(target)
        print(
            f"generated {target} in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return target


def _export_mb(data: Path, fmt: str) -> float:
    return sum(p.stat().st_size for p in data.iterdir() if p.name.endswith(_SUFFIX[fmt])) / 2**20


# --------------------------------------------------------------------------- one load


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def load_once(data: Path, store_path: Path, batch_rows: int) -> dict[str, Any]:
    """Load ``data`` into a new store at ``store_path``; what it took (this process)."""
    from ringscope.graphs.embedded import EmbeddedStore
    from ringscope.loaders.pipeline import load_export

    store = EmbeddedStore(store_path)
    cpu0, t0 = _cpu_s(), time.perf_counter()
    report = load_export(
        store, data, rejects_dir=store_path.parent / "rejects", batch_rows=batch_rows
    )
    seconds = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    store.close()
    return {
        "events": report.tables["engagements"].loaded,
        "rows": sum(t.read for t in report.tables.values()),
        "seconds": seconds,
        "cpu": cpu,
        "peak_mb": _peak_rss_mb(),
        "rejected": report.rejected,
        "failed": report.failed,
    }


def _measure(data: Path, batch_rows: int, workdir: Path) -> dict[str, Any]:
    """Run :func:`load_once` in a fresh process and return what it printed."""
    with tempfile.TemporaryDirectory(prefix="load-", dir=workdir) as tmp:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(data),
                str(Path(tmp) / "bench.duckdb"),
                str(batch_rows),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--formats", default=",".join(_FORMATS), help="comma-separated: parquet,csv"
    )
    parser.add_argument("--generator", choices=["synthetic", "plain"], default="synthetic")
    parser.add_argument("--batch-rows", type=int, default=200_000)
    parser.add_argument(
        "--cache",
        type=Path,
        default=_default_cache(),
        help="folder of generated exports, reused between runs",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        data, store, batch_rows = args.child
        print(json.dumps(load_once(Path(data), Path(store), int(batch_rows))))
        return 0

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown:
        parser.error(f"unknown format(s): {', '.join(unknown)} (use {', '.join(_FORMATS)})")
    exports = {f: export_dir(args.cache, args.generator, args.events, f) for f in formats}

    header = (
        f"{'format':<8} {'export MB':>9} {'events':>12} {'rows (all)':>12} {'seconds':>8} "
        f"{'cpu s':>7} {'events/s':>10} {'rows/s':>10} {'peak RSS MB':>12}"
    )
    print(f"load into a new embedded store, {args.generator} export, {os.cpu_count()} cores")
    print(header)
    problems = False
    for fmt, data in exports.items():
        r = _measure(data, args.batch_rows, args.cache)
        print(
            f"{fmt:<8} {_export_mb(data, fmt):>9,.0f} {r['events']:>12,} {r['rows']:>12,} "
            f"{r['seconds']:>8.1f} {r['cpu']:>7.1f} {r['events'] / r['seconds']:>10,.0f} "
            f"{r['rows'] / r['seconds']:>10,.0f} {r['peak_mb']:>12,.0f}",
            flush=True,
        )
        if r["rejected"] or r["failed"]:
            problems = True
            print(f"{fmt}: rejected {r['rejected']}, failed {r['failed']}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
