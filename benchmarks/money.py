"""The money detectors alone on random worlds: strict recall and precision per size band.

Usage::

    .venv/bin/python benchmarks/money.py                                  # seeds 1000..1029
    .venv/bin/python benchmarks/money.py --seeds 0 1 2 --allow-tuning-seeds --max-buyers 30000

A quick companion of ``robustness.py`` for ``money_cycles`` and ``money_flows``: each world
is ``WorldParams.random(seed)`` with at most ``--max-buyers`` buyers (generated once and
cached under ``--cache``/worlds, as ``robustness.py`` does), read without a store; the two
detectors run with the default policy (as ``run_detection`` calls them) and their findings
together are scored by ``ringscope.algorithms.evaluate.evaluate`` against the whole truth
(strict: more than half both ways, the finding's kind, one to one). Printed:

- per truth kind ``money_cycle`` and ``money_flow`` and ring size band: rings, the mean and
  worst-decile (10th percentile over the worlds with such rings) ring recall, strict and
  kind-blind;
- per finding kind (``money_cycle``, ``money_flow``) and size band: the same for precision;
- per hard-negative kind the mean and maximum share of its accounts named;
- the reasons of every miss and wrong finding, counted; each detector's seconds per world.

Seeds below 1000 tune; seeds from 1000 on report (a seed below 1000 is refused unless
``--allow-tuning-seeds``). Targets: worst-decile recall and precision >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    DEFAULT_CACHE,
    check_report_seeds,
    ensure_world,
    load_average,
    read_market_tables,
    read_market_truth,
)
from robustness import summarise, world_figures

from ringscope.algorithms.evaluate import evaluate
from ringscope.algorithms.registry import DETECTORS
from ringscope.model import Finding
from ringscope.policy import default_policy

MONEY = ("money_cycles", "money_flows")
KINDS = ("money_cycle", "money_flow")


def run_world(folder: Path, detectors: tuple[str, ...]) -> tuple[dict[str, Any], list[Finding]]:
    """The world's figures (``robustness.world_figures`` plus seconds per detector)."""
    tables = read_market_tables(folder)
    truth = read_market_truth(folder)
    policy = default_policy()
    found: list[Finding] = []
    seconds: dict[str, float] = {}
    for name in detectors:
        section = policy.detectors[name]
        t0 = time.perf_counter()
        found += DETECTORS[name].run(tables, section.params, policy.seed)
        seconds[name] = time.perf_counter() - t0
    report = evaluate(found, truth)
    fig = world_figures(report, truth)
    fig["seconds"] = seconds
    fig["orders"] = len(tables.orders)
    fig["accounts"] = len(tables.accounts)
    return fig, found


def print_summary(worlds: list[dict[str, Any]]) -> None:
    for table, what in (("rings", "ring recall"), ("findings_by_kind", "finding precision")):
        print(f"\n| kind/band | worlds | count | {what} mean | worst decile | any-kind mean |")
        print("|---|---|---|---|---|---|")
        for key, c in summarise(worlds, table).items():
            if key.split("/")[0] not in KINDS:
                continue
            print(
                f"| {key} | {c['worlds']} | {c['count']} | {c['mean']:.3f} | "
                f"{c['worst_decile']:.3f} | {c['mean_any_kind']:.3f} |"
            )
    hn: dict[str, list[float]] = {}
    for w in worlds:
        for k, h in w["hard_negatives"].items():
            hn.setdefault(k, []).append(h["fp_rate"])
    print("\n| hard negative | mean share named | max |")
    print("|---|---|---|")
    for k, v in sorted(hn.items()):
        print(f"| {k} | {np.mean(v):.4f} | {max(v):.4f} |")
    reasons: dict[str, int] = {}
    for w in worlds:
        for table in ("missed_reasons", "wrong_reasons"):
            for k, n in w[table].items():
                if k.split(":")[0] in KINDS:
                    key = f"{'missed' if table == 'missed_reasons' else 'wrong'} {k}"
                    reasons[key] = reasons.get(key, 0) + n
    print("\nreasons:", json.dumps(dict(sorted(reasons.items())), indent=1))
    for name in MONEY:
        s = [w["seconds"][name] for w in worlds if name in w["seconds"]]
        if s:
            print(f"{name}: {np.mean(s):.2f} s mean, {max(s):.2f} s max per world")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1000, 1030)))
    ap.add_argument("--allow-tuning-seeds", action="store_true")
    ap.add_argument("--max-buyers", type=int, default=200_000)
    ap.add_argument("--detectors", nargs="+", default=list(MONEY), choices=list(MONEY))
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--verbose", action="store_true", help="print every miss and wrong finding")
    args = ap.parse_args(argv)
    err = check_report_seeds(args.seeds, args.allow_tuning_seeds)
    if err:
        print(err, file=sys.stderr)
        return 2
    print(load_average())
    worlds: list[dict[str, Any]] = []
    for seed in args.seeds:
        folder, _ = ensure_world(args.cache, seed, args.max_buyers)
        fig, _ = run_world(folder, tuple(args.detectors))
        fig["seed"] = seed
        worlds.append(fig)
        rings = {k: fig["rings"].get(k, {}).get("all", [0, 0, 0]) for k in KINDS}
        finds = {k: fig["findings_by_kind"].get(k, {}).get("all", [0, 0, 0]) for k in KINDS}
        print(
            f"seed {seed}: {fig['accounts']:,} accounts, {fig['orders']:,} orders; "
            + "; ".join(f"{k} rings {r[1]}/{r[0]}" for k, r in rings.items())
            + "; "
            + "; ".join(f"{k} findings {f[1]}/{f[0]}" for k, f in finds.items())
            + "; "
            + ", ".join(f"{n} {s:.1f}s" for n, s in fig["seconds"].items()),
            flush=True,
        )
        if args.verbose:
            for line in fig["missed"] + fig["wrong"]:
                if any(f"({k}," in line for k in KINDS):
                    print("   ", line)
    print_summary(worlds)
    print(load_average())
    if args.json:
        args.json.write_text(json.dumps(worlds, indent=1, default=str), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
