"""Evidence export speed: the case file of a finding with about 2,000 members.

Usage::

    .venv/bin/python benchmarks/export.py                   # 2,000 members, 100k events
    .venv/bin/python benchmarks/export.py --members 500 1000 2000 --events 200000

A generated marketplace (cached under ``--cache``) is loaded into a fresh
embedded store, outside the timing. For each ``--members`` size the store gets a
finding made of that many real accounts: the accounts that engaged most on the
marketplace's streams, as an engagement farm, with the busiest creator among
them as beneficiary and, as evidence, the accounts' real engagement events
(``--max-engagements`` at most), orders and identifiers, as the detectors write
them. Then ``ringscope export FINDING_ID`` is run as users run it (its own
process, the store given by ``--store``) and timed from start to exit; the ZIP is
checked (``SHA256SUMS``, every file present). The same export inside this
process (``export_case``, imports done) is timed too, split into reading the
store and building the files.

Printed per size: members, evidence rows, graph nodes, wall seconds of the command
and the CPU seconds it used (user + system: on a busy machine the wall time is
mostly waiting for a core), seconds in-process (gather + build), ZIP size, and the
machine's load average. Target: <= 10 s for 2,000 members (checked on wall time).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from _common import DEFAULT_CACHE, ensure_market, load_average, load_store

from ringscope.api.export import FILES, build_files, export_case, gather
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Run, Signal

TARGET_S = 10.0


def _iso(t: Any) -> str:
    return pd.Timestamp(t).tz_convert("UTC").isoformat()


def _rows(frame: pd.DataFrame, time_cols: tuple[str, ...]) -> list[dict[str, Any]]:
    """Evidence rows as detectors write them: JSON-able values, ISO times, no missing ones."""
    out = []
    for rec in frame.to_dict("records"):
        row: dict[str, Any] = {}
        for k, v in rec.items():
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                continue
            row[k] = _iso(v) if k in time_cols else (float(v) if isinstance(v, float) else v)
        out.append(row)
    return out


def farm_finding(store: EmbeddedStore, size: int, max_engagements: int) -> Finding:
    """A finding of ``size`` real accounts with their real events as evidence."""
    eng = store.table("engagements")
    streams = store.table("streams")
    top = eng.groupby("account_id").size().sort_values(ascending=False, kind="stable")
    ids = sorted(str(a) for a in top.index[:size])
    if len(ids) < size:
        raise SystemExit(f"only {len(ids)} accounts engaged; use more --events")
    mine = eng[eng["account_id"].isin(ids)].sort_values(["ts", "account_id", "stream_id"])
    creators = mine.merge(streams[["stream_id", "creator_id"]], on="stream_id")
    creator = str(creators["creator_id"].value_counts().index[0])
    orders = store.table("orders")
    orders = orders[orders["buyer_id"].isin(ids)]
    idf = store.table("identifiers")
    idf = idf[idf["account_id"].isin(ids)]
    shown = mine.head(max_engagements)
    evidence = {
        "engagements": _rows(shown, ("ts",)),
        "orders": _rows(orders, ("ts", "refunded_at")),
        "identifiers": _rows(idf, ("first_seen", "last_seen")),
        "counts": [
            {"source": "engagements", "shown": len(shown), "total": len(mine)},
            {"source": "orders", "shown": len(orders), "total": len(orders)},
            {"source": "identifiers", "shown": len(idf), "total": len(idf)},
        ],
    }
    per = top.loc[ids]
    members = [Member(a, "engager", round(float(n) / float(per.max()), 4)) for a, n in per.items()]
    detector = DetectorInfo("benchmark_farm", "1", {"members": size})
    return Finding.build(
        kind="engagement_farm",
        score=0.9,
        members=members,
        beneficiaries=[Beneficiary(creator, "creator")],
        signals=[Signal("synchrony", 0.8, 0.5, 0.6), Signal("account_age", 0.3, 0.5, 0.4)],
        explanation=f"{size} accounts engaged on the same streams, most of them hosted by "
        f"{creator}.",
        detector=detector,
        evidence=evidence,
    )


def save(store: EmbeddedStore, finding: Finding) -> str:
    """Record a run that holds ``finding`` only; its id."""
    run_id = f"bench-{len(finding.members)}-{finding.id[-8:]}"
    now = datetime.now(UTC)
    store.begin_run(
        Run(
            id=run_id,
            started_at=now,
            status="running",
            policy={"version": "benchmark"},
            data_fingerprint=store.fingerprint(),
        )
    )
    store.complete_run(run_id, [finding], {"findings": 1})
    return run_id


def check_zip(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        if names != list(FILES):
            raise SystemExit(f"unexpected files in the case file: {names}")
        sums = z.read("SHA256SUMS").decode().splitlines()
        for line in sums:
            digest, name = line.split("  ", 1)
            if hashlib.sha256(z.read(name)).hexdigest() != digest:
                raise SystemExit(f"SHA256SUMS does not match {name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--members", type=int, nargs="+", default=[2000])
    p.add_argument("--max-engagements", type=int, default=5000)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = p.parse_args()
    data, _ = ensure_market(args.cache, args.events, args.seed)
    work = Path(tempfile.mkdtemp(prefix="ringscope-export-bench-"))
    rows = []
    try:
        store, _report, load_s = load_store(data, work / "bench.duckdb")
        print(f"loaded {args.events} events in {load_s:.1f} s", file=sys.stderr)
        cases = []
        for size in args.members:
            f = farm_finding(store, size, args.max_engagements)
            save(store, f)
            cases.append(f)
        for f in cases:
            t0 = time.perf_counter()
            inp = gather(store, f.id)
            t1 = time.perf_counter()
            case = build_files(inp, created_at=datetime.now(UTC))
            case.to_zip()
            t2 = time.perf_counter()
            in_process = (t1 - t0, t2 - t1, len(inp.subgraph.nodes))
            # once more through export_case (audited), as the API does
            export_case(store, f.id, who="benchmark", via="api")
            rows.append((f, in_process))
        store.close()
        table = []
        for f, (gather_s, build_s, nodes) in rows:
            out = work / f"{f.id}.zip"
            cmd = [sys.executable, "-m", "ringscope.cli", "export", f.id]
            cmd += ["--store", str(work / "bench.duckdb"), "--out", str(out)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            if done.returncode != 0:
                raise SystemExit(f"ringscope export failed:\n{done.stderr}")
            blob = out.read_bytes()
            check_zip(blob)
            evidence_rows = sum(len(v) for k, v in f.evidence.items() if k != "counts")
            table.append(
                [
                    str(len(f.members)),
                    str(evidence_rows),
                    str(nodes),
                    f"{wall:.2f}",
                    f"{cpu:.2f}",
                    f"{gather_s:.2f} + {build_s:.2f}",
                    f"{len(blob) / 1e6:.2f} MB",
                    "ok" if wall <= TARGET_S else "OVER",
                ]
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = ["members", "evidence rows", "graph nodes", "command s", "command CPU s"]
    head += ["in-process s", "ZIP"]
    head += [f"<= {TARGET_S:.0f} s"]
    widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head))]
    print(f"ringscope export, {args.events} events, seed {args.seed}; {load_average()}")
    for r in [head, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
