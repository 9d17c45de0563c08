"""Load speed and memory: generate an export, load it into a fresh embedded store.

Usage::

    .venv/bin/python benchmarks/load.py                 # 1M engagement events
    .venv/bin/python benchmarks/load.py --events 10000000
    .venv/bin/python benchmarks/load.py --generator synthetic   # the project's generator

The default export is written here, vectorised with numpy/pyarrow, as CSV with
ISO 8601 timestamps (the slowest path of the loader: every value is text).
Peak RSS is the high-water mark of the load alone (reset after generating,
where Linux allows it). Targets on 2 cores: >= 200,000 events/s, <= 4 GB at 10M.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import load_export

_START = np.datetime64("2026-01-01T00:00:00", "us")


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    return pa.array(np.char.add(prefix, numbers.astype(str)))


def _times(rng: np.random.Generator, n: int, span_s: int) -> pa.Array:
    offsets = rng.integers(0, span_s * 1_000_000, n).astype("timedelta64[us]")
    return pa.array(_START + offsets).cast(pa.timestamp("us", "UTC"))


def generate(out: Path, events: int, seed: int = 0) -> dict[str, int]:
    """Write a plain export with ``events`` engagement events; rows per table."""
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
        pacsv.write_csv(table, out / f"{name}.csv")
    return {name: t.num_rows for name, t in tables.items()}


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--generator", choices=["plain", "synthetic"], default="plain")
    parser.add_argument("--batch-rows", type=int, default=200_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        data = Path(tmp) / "export"
        t0 = time.perf_counter()
        if args.generator == "synthetic":
            from ringscope.loaders.synthetic import generate as synthetic

            synthetic(data, events=args.events, seed=0, fmt="csv")
        else:
            generate(data, args.events)
        gen_s = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in data.iterdir()) / 2**20
        store = EmbeddedStore(Path(tmp) / "bench.duckdb")
        exact_peak = _reset_peak()
        t0 = time.perf_counter()
        report = load_export(
            store, data, rejects_dir=Path(tmp) / "rejects", batch_rows=args.batch_rows
        )
        load_s = time.perf_counter() - t0
        peak = _peak_rss_mb()
        store.close()

    events = report.tables["engagements"].loaded
    rows = sum(t.read for t in report.tables.values())
    print(f"export: {size_mb:,.0f} MB of CSV written in {gen_s:.1f} s ({args.generator})")
    print(
        f"{'events':>12} {'rows (all)':>12} {'seconds':>9} {'events/s':>10} "
        f"{'rows/s':>10} {'peak RSS MB':>12}"
    )
    print(
        f"{events:>12,} {rows:>12,} {load_s:>9.1f} {events / load_s:>10,.0f} "
        f"{rows / load_s:>10,.0f} {peak:>12,.0f}{'' if exact_peak else ' (whole process)'}"
    )
    if report.rejected or report.failed:
        print(f"rejected: {report.rejected}, failed: {report.failed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
