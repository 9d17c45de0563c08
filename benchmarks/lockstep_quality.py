"""Ring-level quality of the lockstep and dense-block detectors on generated marketplaces.

Usage::

    python benchmarks/lockstep_quality.py --events 200000 --seeds 3 4 5 [--dense]

For each seed a marketplace is generated (or reused) under ``--work``, its tables
are read with pandas (timestamps parsed as UTC), the detectors run, and the
findings are matched to ``truth.csv`` by :func:`ringscope.algorithms.evaluate.evaluate`
(the official rule: a planted ring is found when one finding covers at least half of
its members and at least half of the finding's members are in it). The truth lists a
farm's target creators as ring members too; the lockstep detector names them as
beneficiaries, not members, and a farm still matches because its bots are the large
majority of the ring (``--bots-only`` repeats the match on the bots alone). False
positives on hard negatives: the share of each hard-negative kind's accounts that any
finding names as a member.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from ringscope.algorithms.dense import detect_dense_blocks
from ringscope.algorithms.evaluate import evaluate
from ringscope.algorithms.lockstep import detect_lockstep
from ringscope.model import Finding

TS_COLUMNS = {
    "accounts": ["created_at"],
    "streams": ["started_at", "ended_at"],
    "engagements": ["ts"],
    "orders": ["ts", "refunded_at"],
}
HARD_NEGATIVES = ("household", "carrier_ip", "viral_stream", "fan_club")


def read_table(folder: Path, name: str) -> pd.DataFrame:
    """Read one table of an export (Parquet or CSV), timestamps as UTC."""
    for suffix in (".parquet", ".csv.gz", ".csv"):
        path = folder / f"{name}{suffix}"
        if path.exists():
            df = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
            break
    else:
        raise FileNotFoundError(folder / name)
    for c in TS_COLUMNS.get(name, []):
        if c in df.columns:
            df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    for c in ("account_id", "stream_id", "creator_id", "buyer_id", "seller_id"):
        if c in df.columns:
            df[c] = df[c].astype(str)
    return df


def ensure_market(work: Path, events: int, seed: int) -> Path:
    folder = work / f"m{events}_s{seed}"
    if not (folder / "truth.csv").exists():
        from ringscope.loaders.synthetic import generate

        generate(folder, events=events, seed=seed)
    return folder


def ring_quality(
    findings: list[Finding], truth: pd.DataFrame, kind: str = "engagement_farm"
) -> dict[str, float]:
    rings = {
        rid: set(g["account_id"].astype(str))
        for rid, g in truth[(truth["kind"] == kind) & (truth["role"] != "creator")].groupby(
            "ring_id"
        )
    }
    found_rings: set[str] = set()
    good = 0
    for f in findings:
        members = set(f.member_ids)
        hit = False
        for rid, ring in rings.items():
            inter = len(members & ring)
            if inter >= 0.5 * len(ring) and inter >= 0.5 * len(members):
                found_rings.add(str(rid))
                hit = True
        good += hit
    flagged = set().union(*(set(f.member_ids) for f in findings)) if findings else set()
    out: dict[str, float] = {
        "rings": len(rings),
        "findings": len(findings),
        "recall": len(found_rings) / max(len(rings), 1),
        "precision": good / len(findings) if findings else 1.0,
    }
    for hn in HARD_NEGATIVES:
        accts = set(truth[truth["kind"].str.startswith(hn)]["account_id"].astype(str))
        out[f"fp_{hn}"] = len(accts & flagged) / max(len(accts), 1)
    hn_all = set(
        truth[truth["kind"].str.startswith(HARD_NEGATIVES)]["account_id"].astype(str)
    ) - set(truth[truth["ring_id"].str.match(r"^(ef|cr|if|mc)-")]["account_id"].astype(str))
    out["fp_hard_negatives"] = len(hn_all & flagged) / max(len(hn_all), 1)
    return out


def official_quality(findings: list[Finding], truth: pd.DataFrame) -> dict[str, float]:
    """Engagement-farm recall, finding precision and hard-negative FP per kind (evaluate())."""
    r = evaluate(findings, truth)
    ef = r.by_kind.get("engagement_farm")
    fk = r.by_finding_kind.get(findings[0].kind) if findings else None
    out: dict[str, float] = {
        "rings": float(ef.rings) if ef else 0.0,
        "found": float(ef.found) if ef else 0.0,
        "recall": float(ef.recall or 0.0) if ef else 0.0,
        "findings": float(len(findings)),
        "precision": float(fk.precision or 0.0) if fk else 1.0,
    }
    for kind, hn in sorted(r.hard_negatives.items()):
        out[f"fp_{kind}"] = float(hn.fp_rate or 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    ap.add_argument("--work", type=Path, default=Path("/tmp/ringscope-bench"))
    ap.add_argument("--dense", action="store_true", help="also run the dense-block detector")
    ap.add_argument("--bots-only", action="store_true", help="also match farms on their bots alone")
    args = ap.parse_args()
    for seed in args.seeds:
        folder = ensure_market(args.work, args.events, seed)
        tables = {
            n: read_table(folder, n) for n in ("accounts", "streams", "engagements", "orders")
        }
        truth = pd.read_csv(folder / "truth.csv", dtype=str)
        t = time.perf_counter()
        found = detect_lockstep(
            tables["engagements"], streams=tables["streams"], accounts=tables["accounts"], seed=0
        )
        dt = time.perf_counter() - t
        q = official_quality(found, truth)
        q.update(seconds=round(dt, 2), events=len(tables["engagements"]), seed=seed)
        print("lockstep", json.dumps({k: round(v, 4) for k, v in q.items()}))
        if args.bots_only:
            q = ring_quality(found, truth)
            print("lockstep~bots", json.dumps({k: round(v, 4) for k, v in q.items()}))
        if args.dense:
            t = time.perf_counter()
            dense = detect_dense_blocks(
                tables["engagements"],
                tables["orders"],
                streams=tables["streams"],
                accounts=tables["accounts"],
            )
            dt = time.perf_counter() - t
            blocks = [f for f in dense if f.kind == "dense_block"]
            q = ring_quality(blocks, truth)
            q.update(seconds=round(dt, 2), seed=seed)
            print("dense_block", json.dumps({k: round(v, 4) for k, v in q.items()}))
            orders = [f for f in dense if f.kind == "dense_orders"]
            q = ring_quality(orders, truth, kind="commission_ring")
            print(
                "dense_orders~commission_ring", json.dumps({k: round(v, 4) for k, v in q.items()})
            )


if __name__ == "__main__":
    main()
