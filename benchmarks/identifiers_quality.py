"""Quality and speed of the shared-identifiers detector alone on random worlds.

Usage::

    .venv/bin/python benchmarks/identifiers_quality.py --seeds 1000 1001 1002
    .venv/bin/python benchmarks/identifiers_quality.py --allow-tuning-seeds --seeds 0 1 2 \
        --max-buyers 30000 --cache /tmp/ringscope-bench --json out.json

Each world is ``WorldParams.random(seed)`` (at most ``--max-buyers`` buyers), generated
once and cached like ``robustness.py``'s. Its tables are read without a store, the
``shared_identifiers`` detector runs with the default policy (``--param NAME=VALUE``
overrides one), and its findings are scored by
:func:`ringscope.algorithms.evaluate.evaluate` (strict: more than half both ways, the
finding's kind, one to one) against the whole truth. Printed: per world the incentive
farms found per ring size band, identity-cluster precision, the wrong findings by reason
and by the truth kind they mostly hold, the hard-negative false-positive rates and the
detector's seconds; then over the worlds the mean and worst decile (10th percentile,
``lower`` interpolation) of incentive-farm recall per band and of identity-cluster
precision, and the maximum false-positive rate per hard-negative kind.

Seeds below 1000 tune; seeds from 1000 on report. The benchmark refuses seeds below
1000 unless ``--allow-tuning-seeds``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _common import (
    DEFAULT_CACHE,
    check_report_seeds,
    ensure_world,
    read_market_tables,
    read_market_truth,
)

from ringscope.algorithms.evaluate import SIZE_BANDS, evaluate
from ringscope.algorithms.registry import DETECTORS
from ringscope.policy import default_policy

NAME = "shared_identifiers"
KIND = "incentive_farm"


def _params(overrides: list[str]) -> dict[str, Any]:
    params = dict(default_policy().detectors[NAME].params)
    for item in overrides:
        key, _, value = item.partition("=")
        params[key] = yaml.safe_load(value)
    return params


def run_world(folder: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The detector's figures on one world."""
    tables = read_market_tables(folder)
    truth = read_market_truth(folder)
    t0 = time.perf_counter()
    findings = DETECTORS[NAME].run(tables, params, 0)
    seconds = time.perf_counter() - t0
    report = evaluate(findings, truth)
    bands = report.by_kind_band.get(KIND, {})
    ring_kind = dict(zip(truth["ring_id"], truth["kind"], strict=False))
    wrong = Counter(
        f"{o.reason}:{ring_kind.get(o.ring_any_kind or o.ring, '-')}"
        for o in report.wrong_findings()
    )
    missed = Counter(f"{r.reason}:{r.band}" for r in report.missed_rings() if r.kind == KIND)
    fk = report.by_finding_kind.get("identity_cluster")
    return {
        "findings": len(findings),
        "recall": {b: (m.found, m.rings) for b, m in bands.items() if m.rings},
        "precision": (fk.matched, fk.findings) if fk else (0, 0),
        "wrong": dict(wrong),
        "missed": dict(missed),
        "fp": {k: h.fp_rate or 0.0 for k, h in report.hard_negatives.items()},
        "seconds": round(seconds, 2),
    }


def worst_decile(values: list[float]) -> float:
    return float(np.percentile(values, 10, method="lower")) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1000, 1030)))
    ap.add_argument("--max-buyers", type=int, default=200_000)
    ap.add_argument("--allow-tuning-seeds", action="store_true")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--param", action="append", default=[], help="NAME=VALUE (YAML)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    problem = check_report_seeds(args.seeds, args.allow_tuning_seeds)
    if problem:
        ap.error(problem)
    params = _params(args.param)
    worlds: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:
        folder, _ = ensure_world(args.cache, seed, args.max_buyers)
        w = run_world(folder, params)
        worlds[seed] = w
        rec = " ".join(f"{b}:{f}/{n}" for b, (f, n) in sorted(w["recall"].items()))
        fp = " ".join(f"{k}={v:.3f}" for k, v in sorted(w["fp"].items()) if v)
        print(
            f"seed {seed:4d} {w['seconds']:6.2f}s findings {w['findings']:4d} "
            f"precision {w['precision'][0]}/{w['precision'][1]} recall {rec} | "
            f"missed {w['missed']} wrong {w['wrong']} fp {fp}",
            flush=True,
        )
    print()
    for band in (*SIZE_BANDS[1:], "all"):
        vals = []
        for w in worlds.values():
            if band == "all":
                f = sum(x[0] for x in w["recall"].values())
                n = sum(x[1] for x in w["recall"].values())
            else:
                f, n = w["recall"].get(band, (0, 0))
            if n:
                vals.append(f / n)
        if vals:
            print(
                f"{KIND} recall {band:>6}: worlds {len(vals):3d} mean {np.mean(vals):.3f} "
                f"worst decile {worst_decile(vals):.3f}"
            )
    prec = [m / n for m, n in (w["precision"] for w in worlds.values()) if n]
    if prec:
        print(
            f"identity_cluster precision: worlds {len(prec)} mean {np.mean(prec):.3f} "
            f"worst decile {worst_decile(prec):.3f}"
        )
    kinds = sorted({k for w in worlds.values() for k in w["fp"]})
    for k in kinds:
        vals = [w["fp"].get(k, 0.0) for w in worlds.values()]
        print(f"fp {k:26s} mean {np.mean(vals):.4f} max {max(vals):.4f}")
    wrong: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for w in worlds.values():
        wrong.update(w["wrong"])
        missed.update(w["missed"])
    print("missed", dict(missed.most_common()))
    print("wrong", dict(wrong.most_common()))
    print("seconds", round(sum(w["seconds"] for w in worlds.values()), 1))
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in worlds.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
