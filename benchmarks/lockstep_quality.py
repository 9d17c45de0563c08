"""Ring-level quality of the lockstep and dense-block detectors on generated marketplaces.

Usage::

    python benchmarks/lockstep_quality.py --events 200000 --seeds 1000 1001 1002 [--dense]
    python benchmarks/lockstep_quality.py --worlds --seeds 1000 ... 1029 [--max-buyers 30000]

For each seed a marketplace is generated (or reused) under ``--work``, its tables
are read with pandas (timestamps parsed as UTC), the detectors run, and the
findings are matched to ``truth.csv`` by :func:`ringscope.algorithms.evaluate.evaluate`
(the strict rule: a planted ring is found when one finding holds more than half of
its members, more than half of the finding's members are in it, and the finding's
kind finds the ring's kind; one finding per ring, duplicates count as wrong). The
truth lists a farm's target creators as ring members too; the lockstep detector names
them as beneficiaries, not members, and a farm still matches because its bots are
the large majority of the ring (``--bots-only`` repeats the match on the bots alone).
False positives on hard negatives: the share of each hard-negative kind's accounts
that any finding names as a member.

With ``--worlds`` each seed is a random world (``WorldParams.random(seed)``, at most
``--max-buyers`` buyers, cached as ``robustness.py`` caches them) and the lockstep
detector runs alone on its tables as the detection job calls it; the figures are
``robustness.py``'s, for ``engagement_farm`` findings only: per ring size band the mean
and worst-decile ring recall and finding precision over the worlds, the reasons of the
misses and wrong findings, and the share of each hard-negative kind's accounts named
(mean and maximum over worlds), with the detector's seconds per world.

Seeds below 1000 tune the detectors; seeds from 1000 on report. The benchmark
refuses seeds below 1000 unless ``--allow-tuning-seeds``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from _common import (
    DEFAULT_CACHE,
    check_report_seeds,
    ensure_market,
    ensure_world,
    read_market_tables,
    read_market_truth,
)

from ringscope.algorithms.dense import detect_dense_blocks
from ringscope.algorithms.evaluate import evaluate, is_hard_negative
from ringscope.algorithms.lockstep import detect_lockstep, detect_lockstep_tables
from ringscope.model import Finding

TS_COLUMNS = {
    "accounts": ["created_at"],
    "streams": ["started_at", "ended_at"],
    "engagements": ["ts"],
    "orders": ["ts", "refunded_at"],
}


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


def ring_quality(
    findings: list[Finding], truth: pd.DataFrame, kind: str = "engagement_farm"
) -> dict[str, float]:
    """Recall of ``kind``'s rings without their creators, precision of all ``findings``
    and false positives per hard-negative kind, by :func:`evaluate`'s strict rule."""
    t = truth.astype(str)
    hard = t["kind"].map(is_hard_negative).astype(bool)
    sub = t[hard | ((t["kind"] == kind) & (t["role"] != "creator"))]
    r = evaluate(findings, sub)
    km = r.by_kind.get(kind)
    out: dict[str, float] = {
        "rings": float(km.rings) if km else 0.0,
        "findings": float(len(findings)),
        "recall": float(km.recall or 0.0) if km else 0.0,
        "precision": float(r.ring_precision) if r.ring_precision is not None else 1.0,
    }
    for hn, h in sorted(r.hard_negatives.items()):
        out[f"fp_{hn}"] = float(h.fp_rate or 0.0)
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


def run_worlds(seeds: list[int], cache: Path, max_buyers: int, show: int) -> None:
    """The lockstep detector alone on random worlds, summarised as ``robustness.py`` does."""
    from robustness import print_method, world_figures

    figures = []
    for seed in seeds:
        folder, _ = ensure_world(cache, seed, max_buyers)
        tables = read_market_tables(folder)
        truth = read_market_truth(folder)
        t = time.perf_counter()
        found = detect_lockstep_tables(tables, seed=0)
        dt = time.perf_counter() - t
        fig = world_figures(evaluate(found, truth), truth)
        fig.update(seed=seed)
        figures.append(fig)
        ef = fig["rings"].get("engagement_farm", {}).get("all", [0, 0, 0])
        fk = fig["findings_by_kind"].get("engagement_farm", {}).get("all", [0, 0, 0])
        hn = {k: round(h["fp_rate"], 4) for k, h in fig["hard_negatives"].items()}
        print(
            f"seed {seed:>4} buyers {tables.accounts.shape[0]:>7,} events "
            f"{len(tables.engagements):>9,} farms found {ef[1]}/{ef[0]} findings right "
            f"{fk[1]}/{fk[0]} {dt:6.1f} s fan_club {hn.get('fan_club', 0):.2%} viral_stream "
            f"{hn.get('viral_stream', 0):.2%}",
            flush=True,
        )
        farm_lines = [x for x in fig["missed"] + fig["wrong"] if "engagement_farm" in x]
        for line in farm_lines[:show]:
            print(f"    {line}")
    print_method("lockstep", figures)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--worlds", action="store_true", help="random worlds (lockstep alone)")
    ap.add_argument("--max-buyers", type=int, default=30_000, help="with --worlds")
    ap.add_argument("--show", type=int, default=6, help="miss lines per world, with --worlds")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002])
    ap.add_argument("--allow-tuning-seeds", action="store_true")
    ap.add_argument("--work", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--dense", action="store_true", help="also run the dense-block detector")
    ap.add_argument("--bots-only", action="store_true", help="also match farms on their bots alone")
    args = ap.parse_args()
    problem = check_report_seeds(args.seeds, args.allow_tuning_seeds)
    if problem:
        ap.error(problem)
    if args.worlds:
        run_worlds(args.seeds, args.work, args.max_buyers, args.show)
        return
    for seed in args.seeds:
        folder, _ = ensure_market(args.work, args.events, seed)
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
