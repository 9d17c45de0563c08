"""Robustness of detection over many random worlds: worst-decile recall and precision.

Usage::

    .venv/bin/python benchmarks/robustness.py                 # reporting seeds 1000..1029
    .venv/bin/python benchmarks/robustness.py --quick         # 3 small worlds, to try it
    .venv/bin/python benchmarks/robustness.py --seeds 1000 1001 --max-buyers 50000 --json out.json

Each world is ``WorldParams.random(seed)`` of ``ringscope.loaders.synthetic`` (its size,
abuse prevalence, ring sizes and hard negatives all drawn from the seed), with at most
``--max-buyers`` buyers, generated once and cached under ``--cache``/worlds. Worlds run
one at a time. On each:

- **ringscope**: the export is loaded into a fresh embedded store (``load_export``) and
  ``run_detection`` runs with the default policy, as ``ringscope job`` does; in a process
  of its own, whose peak RSS is the world's;
- **baselines** (``baselines.py``: ``neo4j_recipe``, ``louvain``, ``leiden``,
  ``fraudar``), in another process, with the parameters their grid search chose on the
  *tuning* worlds (``--tune-seeds``, default 0..9, at most ``--tune-max-buyers``
  buyers), never on the reporting worlds.

Every method's findings are saved per world under ``--cache``/robustness (keyed by the
code: ringscope's source tree, the policy, the baselines' parameters), so an interrupted
run resumes where it stopped; then all are scored by
``ringscope.algorithms.evaluate.evaluate`` (strict: more than half both ways, the
finding's kind, one to one). Printed, per method:

- per abuse kind and ring size band: rings, and the mean and worst-decile (10th
  percentile over the worlds in which that kind and band has a ring, ``lower``
  interpolation: a value some world had) ring recall, strict and kind-blind;
- per finding kind and finding size band: the same for finding precision;
- per hard-negative kind: the mean and maximum over worlds of the share of its accounts
  named by a finding, and of its groups held by one finding;
- a line per world (seed, buyers, prevalence, findings, recall, precision, seconds,
  peak RSS, labels);
- the worlds that miss the targets, with a line per reason (capped by ``--reasons``).

Targets: worst-decile ring recall >= 0.9 for every abuse kind and finding precision >= 0.9
for every finding kind (over all sizes); every hard-negative kind <= 1% of its accounts
named in every world. A world fails when one of its kinds is under 0.9 or a hard-negative
kind is over 1%.

Seeds below 1000 tune; seeds from 1000 on report. The benchmark refuses to report on a
seed below 1000 unless ``--allow-tuning-seeds``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import (
    DEFAULT_CACHE,
    REPORT_FROM,
    check_report_seeds,
    check_tune_seeds,
    ensure_world,
    load_average,
    load_store,
    peak_rss_mb,
    read_market_tables,
    read_market_truth,
)

from ringscope.algorithms.evaluate import SIZE_BANDS, EvaluationReport, evaluate
from ringscope.model import Finding

TARGET_RECALL = 0.9
TARGET_PRECISION = 0.9
TARGET_HARD_NEGATIVE = 0.01
WORST = 0.1  # the worst decile
METHOD_ORDER = ("ringscope", "neo4j_recipe", "louvain", "leiden", "fraudar")
HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------- cache keys


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout


def ringscope_key() -> str:
    """What ringscope's findings depend on: its source tree (committed and not), the policy."""
    from ringscope import __version__
    from ringscope.policy import default_policy

    h = hashlib.sha256()
    h.update(__version__.encode())
    h.update(default_policy().digest().encode())
    h.update(_git("rev-parse", "HEAD:ringscope").encode())
    h.update(_git("diff", "HEAD", "--", "ringscope").encode())
    return h.hexdigest()[:12]


def baselines_key(params: dict[str, Any]) -> str:
    """What the baselines' findings depend on: their code and the chosen parameters."""
    h = hashlib.sha256((HERE / "baselines.py").read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:12]


def save_findings(path: Path, findings: list[Finding], meta: dict[str, Any]) -> None:
    """Findings (without evidence) and what was measured, gzipped JSON, written atomically."""
    doc = {"meta": meta, "findings": [f.to_dict(evidence=False) for f in findings]}
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as fh:
        json.dump(doc, fh, default=str)
    tmp.replace(path)


def load_findings(path: Path) -> tuple[list[Finding], dict[str, Any]]:
    with gzip.open(path, "rt") as fh:
        doc = json.load(fh)
    fs = [Finding.from_dict({**d, "evidence": {}}) for d in doc["findings"]]
    return fs, doc["meta"]


# ---------------------------------------------------------------------- children


def child_ringscope(folder: Path, out: Path, work: Path) -> None:
    """Load the world into a fresh embedded store and run the default detection."""
    from ringscope.jobs.detect import run_detection
    from ringscope.policy import default_policy

    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        store, report, load_s = load_store(folder, work / "world.duckdb")
        t0 = time.perf_counter()
        policy = default_policy()
        result = run_detection(store, policy)
        detect_s = time.perf_counter() - t0
        labels = store.table("labels")
        accounts = store.table("accounts", columns=["account_id", "roles"])
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lp = policy.detectors.get("label_propagation")
    counts = labels["label"].astype(str).value_counts().to_dict() if len(labels) else {}
    meta = {
        "seconds": load_s + detect_s,
        "load_seconds": load_s,
        "detect_seconds": detect_s,
        "peak_rss_mb": peak_rss_mb(),
        "accounts": len(accounts),
        "buyers": int(accounts["roles"].astype(str).str.contains("buyer").sum()),
        "events": report.tables["engagements"].loaded,
        "labels": {str(k): int(v) for k, v in counts.items()},
        "label_propagation_enabled": lp is None or lp.enabled,
        "label_propagation_findings": sum(
            any(d.name == "label_propagation" for d in f.detectors) for f in result.findings
        ),
    }
    save_findings(out, result.findings, meta)


def child_baselines(folder: Path, out_dir: Path, params_file: Path, seed: int) -> None:
    """Every tuned baseline on the world; one findings file per method."""
    from baselines import run_baselines

    params = json.loads(params_file.read_text())
    tables = read_market_tables(folder)
    for method, (found, seconds) in run_baselines(tables, seed, params).items():
        meta = {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "params": params[method]}
        save_findings(out_dir / f"{method}.json.gz", found, meta)


def run_child(args: list[str], log: Callable[[str], None]) -> bool:
    """This script in a process of its own; False (and the error logged) when it fails."""
    p = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True
    )
    if p.returncode != 0:
        log(f"  FAILED ({' '.join(args[:2])}): exit {p.returncode}: {p.stderr.strip()[-800:]}")
        return False
    return True


# ---------------------------------------------------------------------- per world


def world_figures(report: EvaluationReport, truth: pd.DataFrame) -> dict[str, Any]:
    """What the tables need of one world's evaluation (small and JSON-able)."""
    return {
        "findings": report.findings,
        "recall": report.ring_recall,
        "precision": report.ring_precision,
        "recall_any_kind": report.ring_recall_any_kind,
        "precision_any_kind": report.ring_precision_any_kind,
        "rings": {
            kind: {
                "all": [km.rings, km.found, km.found_any_kind],
                **{
                    b: [bm.rings, bm.found, bm.found_any_kind]
                    for b, bm in report.by_kind_band.get(kind, {}).items()
                },
            }
            for kind, km in report.by_kind.items()
        },
        "findings_by_kind": {
            kind: {
                "all": [fm.findings, fm.matched, fm.matched_any_kind],
                **{
                    b: [bm.findings, bm.matched, bm.matched_any_kind]
                    for b, bm in report.by_finding_kind_band.get(kind, {}).items()
                },
            }
            for kind, fm in report.by_finding_kind.items()
        },
        "hard_negatives": {
            k: {"fp_rate": h.fp_rate or 0.0, "group_flag_rate": h.group_flag_rate or 0.0}
            for k, h in report.hard_negatives.items()
        },
        "missed": [
            f"ring {o.ring_id} ({o.kind}, {o.size}): {o.reason}: {o.detail}"
            for o in report.missed_rings()
        ],
        "missed_by_kind": {
            k: [o.ring_id for o in report.missed_rings() if o.kind == k] for k in report.by_kind
        },
        "wrong": [
            f"finding {o.finding_id} ({o.kind}, {o.size}): {o.reason}: {o.detail}"
            for o in report.wrong_findings()
        ],
        "wrong_by_kind": {
            k: [o.finding_id for o in report.wrong_findings() if o.kind == k]
            for k in report.by_finding_kind
        },
        "missed_reasons": _count(f"{o.kind}: {o.reason}" for o in report.missed_rings()),
        "wrong_reasons": _count(f"{o.kind}: {o.reason}" for o in report.wrong_findings()),
        "abuse_accounts": int(
            truth.loc[~truth["ring_id"].astype(str).str.startswith("hn-"), "account_id"].nunique()
        ),
    }


def _count(keys: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(keys).items()))


def failures(fig: dict[str, Any], cap: int) -> list[str]:
    """Why a world misses the targets, a line each (at most ``cap`` ring/finding lines)."""
    out: list[str] = []
    details: list[str] = []
    for kind, cells in sorted(fig["rings"].items()):
        n, found, _ = cells["all"]
        if n and found / n < TARGET_RECALL:
            out.append(f"{kind}: ring recall {found}/{n} < {TARGET_RECALL}")
            bad_bands = [
                f"{b} {c[1]}/{c[0]}" for b, c in cells.items() if b != "all" and c[1] < c[0]
            ]
            out[-1] += f" (found per size band with misses: {', '.join(bad_bands)})"
            missed = set(fig["missed_by_kind"].get(kind, []))
            details += [line for line in fig["missed"] if line.split()[1] in missed]
    for kind, cells in sorted(fig["findings_by_kind"].items()):
        n, matched, _ = cells["all"]
        if n and matched / n < TARGET_PRECISION:
            out.append(f"{kind} findings: precision {matched}/{n} < {TARGET_PRECISION}")
            wrong = set(fig["wrong_by_kind"].get(kind, []))
            details += [line for line in fig["wrong"] if line.split()[1] in wrong]
    for kind, h in sorted(fig["hard_negatives"].items()):
        if h["fp_rate"] > TARGET_HARD_NEGATIVE:
            out.append(
                f"{kind}: {h['fp_rate']:.2%} of its accounts named (> {TARGET_HARD_NEGATIVE:.0%})"
            )
    if details:
        out += ["  " + d for d in details[:cap]]
        if len(details) > cap:
            out.append(f"  ... and {len(details) - cap} more")
    return out


# ---------------------------------------------------------------------- over worlds


def worst_decile(values: list[float]) -> float:
    return float(np.quantile(np.asarray(values), WORST, method="lower"))


def _f(x: float | None, width: int = 6) -> str:
    return f"{'-':>{width}}" if x is None else f"{x:>{width}.3f}"


def summarise(worlds: list[dict[str, Any]], table: str) -> dict[str, dict[str, Any]]:
    """Per ``kind/band`` over worlds: count, mean and worst decile, strict and kind-blind.

    ``table`` is ``rings`` (recall) or ``findings_by_kind`` (precision)."""
    cells: dict[str, dict[str, list[float]]] = {}
    for w in worlds:
        for kind, bands in w[table].items():
            for b, (n, ok, ok_any) in bands.items():
                if not n:
                    continue
                c = cells.setdefault(f"{kind}/{b}", {"n": [], "strict": [], "any": []})
                c["n"].append(n)
                c["strict"].append(ok / n)
                c["any"].append(ok_any / n)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(cells, key=_cell_order):
        c = cells[key]
        out[key] = {
            "worlds": len(c["n"]),
            "count": int(sum(c["n"])),
            "mean": float(np.mean(c["strict"])),
            "worst_decile": worst_decile(c["strict"]),
            "mean_any_kind": float(np.mean(c["any"])),
            "worst_decile_any_kind": worst_decile(c["any"]),
        }
    return out


def _cell_order(key: str) -> tuple[str, int]:
    kind, b = key.split("/")
    return kind, -1 if b == "all" else SIZE_BANDS.index(b)


def print_method(method: str, worlds: list[dict[str, Any]]) -> dict[str, Any]:
    """The tables of one method over the worlds; returns the same as a dict."""
    recall = summarise(worlds, "rings")
    precision = summarise(worlds, "findings_by_kind")
    print(f"\n== {method}: {len(worlds)} worlds ==")
    for title, cells, target in (
        ("ring recall per abuse kind and ring size", recall, TARGET_RECALL),
        ("finding precision per finding kind and finding size", precision, TARGET_PRECISION),
    ):
        print(f"\n{title} (mean and worst decile over the worlds that have such)")
        print(
            f"{'kind':<18} {'size':<7} {'worlds':>6} {'count':>6} {'mean':>6} {'worst':>6}  "
            f"{'kind-blind mean':>15} {'worst':>6}  target"
        )
        for key, c in cells.items():
            kind, b = key.split("/")
            verdict = ""
            if b == "all":
                verdict = "meets" if c["worst_decile"] >= target else "MISSES"
            print(
                f"{kind:<18} {b:<7} {c['worlds']:>6} {c['count']:>6} {_f(c['mean'])} "
                f"{_f(c['worst_decile'])}  {_f(c['mean_any_kind'], 15)} "
                f"{_f(c['worst_decile_any_kind'])}  {verdict}"
            )
    reasons: dict[str, dict[str, int]] = {}
    for key, title in (("missed_reasons", "missed rings"), ("wrong_reasons", "wrong findings")):
        total: Counter[str] = Counter()
        for w in worlds:
            total.update(w.get(key, {}))
        reasons[key] = dict(total.most_common())
        print(f"\n{title} by kind and reason, over all worlds")
        for what, n in total.most_common():
            print(f"  {what:<40} {n:>6}")
    hn: dict[str, dict[str, float]] = {}
    kinds = sorted({k for w in worlds for k in w["hard_negatives"]})
    print("\nhard negatives: share of accounts named, share of groups held (over worlds)")
    print(f"{'kind':<24} {'worlds':>6} {'mean':>7} {'max':>7} {'groups mean':>11} {'max':>7}")
    for k in kinds:
        rates = [w["hard_negatives"][k]["fp_rate"] for w in worlds if k in w["hard_negatives"]]
        groups = [
            w["hard_negatives"][k]["group_flag_rate"] for w in worlds if k in w["hard_negatives"]
        ]
        hn[k] = {
            "worlds": len(rates),
            "mean": float(np.mean(rates)),
            "max": float(np.max(rates)),
            "groups_mean": float(np.mean(groups)),
            "groups_max": float(np.max(groups)),
        }
        h = hn[k]
        ok = "" if h["max"] <= TARGET_HARD_NEGATIVE else "  MISSES"
        print(
            f"{k:<24} {h['worlds']:>6} {h['mean']:>7.2%} {h['max']:>7.2%} "
            f"{h['groups_mean']:>11.2%} {h['groups_max']:>7.2%}{ok}"
        )
    return {"recall": recall, "precision": precision, "reasons": reasons, "hard_negatives": hn}


# ---------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 1000..1029")
    ap.add_argument("--tune-seeds", type=int, nargs="+", default=None, help="default 0..9")
    ap.add_argument("--max-buyers", type=int, default=None, help="default 200,000")
    ap.add_argument("--tune-max-buyers", type=int, default=None, help="default 30,000")
    ap.add_argument("--quick", action="store_true", help="3 small worlds, 3 small tuning worlds")
    ap.add_argument("--methods", nargs="+", default=list(METHOD_ORDER), choices=METHOD_ORDER)
    ap.add_argument("--allow-tuning-seeds", action="store_true")
    ap.add_argument(
        "--baseline-minutes",
        type=float,
        default=None,
        help="start no baseline world after this many minutes of baselines (default: no limit)",
    )
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--reasons", type=int, default=8, help="reason lines per failing world")
    ap.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    # one step in a process of its own (used by the benchmark itself)
    ap.add_argument("--child", choices=["ringscope", "baselines"], help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--params", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds = args.seeds or [1000, 1001, 1002]
        args.tune_seeds = args.tune_seeds or [0, 1, 2]
        args.max_buyers = args.max_buyers or 20_000
        args.tune_max_buyers = args.tune_max_buyers or 10_000
    args.seeds = args.seeds or list(range(REPORT_FROM, REPORT_FROM + 30))
    args.tune_seeds = args.tune_seeds or list(range(10))
    args.max_buyers = args.max_buyers or 200_000
    args.tune_max_buyers = args.tune_max_buyers or 30_000
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child == "ringscope":
        child_ringscope(args.folder, args.out, args.out.parent / "store")
        return 0
    if args.child == "baselines":
        child_baselines(args.folder, args.out, args.params, args.seed)
        return 0
    for problem in (
        check_report_seeds(args.seeds, args.allow_tuning_seeds),
        check_tune_seeds(args.tune_seeds),
    ):
        if problem:
            print(problem, file=sys.stderr)
            return 2

    def log(msg: str) -> None:
        print(msg, flush=True)

    cache: Path = args.cache
    log(load_average())
    log(
        f"reporting seeds {args.seeds[0]}..{args.seeds[-1]} ({len(args.seeds)} worlds, at most "
        f"{args.max_buyers:,} buyers); baselines tuned on seeds {args.tune_seeds} "
        f"(at most {args.tune_max_buyers:,} buyers)"
    )
    if any(s < REPORT_FROM for s in args.seeds):
        log("WARNING: some reporting seeds are tuning seeds: these figures are not held out")
    baselines = [m for m in args.methods if m != "ringscope"]
    params: dict[str, Any] = {}
    if baselines:
        params = tune_baselines(args, baselines, log)
    root = cache / "robustness"
    rs_dir = root / f"ringscope-{ringscope_key()}"
    bl_dir = root / f"baselines-{baselines_key(params)}"
    params_file = bl_dir / "params.json"
    if baselines:
        bl_dir.mkdir(parents=True, exist_ok=True)
        params_file.write_text(json.dumps(params, indent=1))
    rs_dir.mkdir(parents=True, exist_ok=True)
    log(f"findings cached in {rs_dir}" + (f" and {bl_dir}" if baselines else ""))

    def rs_file(seed: int) -> Path:
        return rs_dir / f"w{seed}_b{args.max_buyers}.json.gz"

    def bl_file(seed: int, method: str) -> Path:
        return bl_dir / f"w{seed}_b{args.max_buyers}" / f"{method}.json.gz"

    # ringscope first on every world, then the baselines: a run cut short still has
    # ringscope's figures on every world
    folders: dict[int, Path] = {}
    gen_seconds: dict[int, float] = {}
    for seed in args.seeds:
        t0 = time.perf_counter()
        folders[seed], gen_seconds[seed] = ensure_world(cache, seed, args.max_buyers)
        if "ringscope" in args.methods and not rs_file(seed).is_file():
            run_child(
                [
                    "--child",
                    "ringscope",
                    "--folder",
                    str(folders[seed]),
                    "--out",
                    str(rs_file(seed)),
                ],
                log,
            )
            log(f"seed {seed}: ringscope done [{time.perf_counter() - t0:.0f} s]")
    started = time.perf_counter()
    skipped: list[int] = []
    for seed in args.seeds if baselines else []:
        if all(bl_file(seed, m).is_file() for m in baselines):
            continue
        if args.baseline_minutes is not None and time.perf_counter() - started > 60 * (
            args.baseline_minutes
        ):
            skipped.append(seed)
            continue
        t0 = time.perf_counter()
        bl_file(seed, baselines[0]).parent.mkdir(exist_ok=True)
        run_child(
            [
                *("--child", "baselines", "--folder", str(folders[seed])),
                *("--out", str(bl_file(seed, baselines[0]).parent)),
                *("--params", str(params_file), "--seed", str(seed)),
            ],
            log,
        )
        log(f"seed {seed}: baselines done [{time.perf_counter() - t0:.0f} s]")
    if skipped:
        log(f"baselines not run (past --baseline-minutes) on seeds {skipped}")

    per_method: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
    lines: list[dict[str, Any]] = []
    for seed in args.seeds:
        truth = read_market_truth(folders[seed])
        line: dict[str, Any] = {"seed": seed, "generate_seconds": round(gen_seconds[seed], 1)}
        for method in args.methods:
            path = rs_file(seed) if method == "ringscope" else bl_file(seed, method)
            if not path.is_file():
                line.setdefault("not_run", []).append(method)
                continue
            found, meta = load_findings(path)
            fig = world_figures(evaluate(found, truth), truth)
            fig.update(seed=seed, meta=meta)
            per_method[method].append(fig)
            if method == "ringscope":
                line.update(meta)
                line["prevalence"] = fig["abuse_accounts"] / max(meta["accounts"], 1)
                line.update({k: fig[k] for k in ("findings", "recall", "precision")})
        lines.append(line)

    summaries = {m: print_method(m, per_method[m]) for m in args.methods if per_method[m]}
    print_world_lines(lines)
    failing = print_failures(per_method, args.reasons)
    print_labels(lines)
    log(load_average())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "seeds": args.seeds,
                    "tune_seeds": args.tune_seeds,
                    "max_buyers": args.max_buyers,
                    "tune_max_buyers": args.tune_max_buyers,
                    "baseline_params": params,
                    "worlds": lines,
                    "summaries": summaries,
                    "failing": failing,
                    "per_world": per_method,
                },
                indent=1,
                default=str,
            )
        )
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def tune_baselines(
    args: argparse.Namespace, methods: list[str], log: Callable[[str], None]
) -> dict[str, Any]:
    """The baselines' parameters, tuned on the tuning worlds (cached)."""
    from baselines import TuningWorld, tune

    def reader(folder: Path) -> Callable[[], tuple[Any, pd.DataFrame]]:
        return lambda: (read_market_tables(folder), read_market_truth(folder))

    worlds = []
    for seed in args.tune_seeds:
        folder, _ = ensure_world(args.cache, seed, args.tune_max_buyers)
        worlds.append(TuningWorld(folder.name, seed, reader(folder)))
    chosen = tune(worlds, args.cache / "robustness" / "tuning", methods, log=log)
    for m, c in chosen.items():
        log(
            f"{m}: {c['params']} (tuning ring F1 {c['f1']:.3f}, recall "
            f"{_f(c['recall'], 0)}, precision {_f(c['precision'], 0)})"
        )
    return {m: c["params"] for m, c in chosen.items()}


def world_line(w: dict[str, Any]) -> str:
    if "accounts" not in w:
        return f"seed {w['seed']}: ringscope did not run (crashed, or left out by --methods)"
    return (
        f"seed {w['seed']:>5} buyers {w['buyers']:>7,} prevalence {w['prevalence']:>6.2%} "
        f"findings {w['findings']:>4} recall {_f(w['recall'], 5)} precision "
        f"{_f(w['precision'], 5)} {w['seconds']:>6.1f} s peak {w['peak_rss_mb']:>6,.0f} MB "
        f"labels {sum(w['labels'].values()):>4} (propagation findings "
        f"{w['label_propagation_findings']})"
    )


def print_world_lines(lines: list[dict[str, Any]]) -> None:
    print("\nper world (ringscope: load + detect seconds, peak RSS of its process)")
    for w in lines:
        print(world_line(w))


def print_failures(per_method: dict[str, list[dict[str, Any]]], cap: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method, worlds in per_method.items():
        bad = {w["seed"]: failures(w, cap) for w in worlds}
        bad = {s: r for s, r in bad.items() if r}
        out[method] = bad
        print(f"\n{method}: {len(bad)} of {len(worlds)} worlds miss the targets")
        if method != "ringscope":
            continue
        for seed, reasons in bad.items():
            print(f"seed {seed}:")
            for r in reasons:
                print(f"  {r}")
    return out


def print_labels(lines: list[dict[str, Any]]) -> None:
    ran = [w for w in lines if "labels" in w]
    if not ran:
        return
    labelled = sum(1 for w in ran if sum(w["labels"].values()))
    used = sum(1 for w in ran if w["label_propagation_findings"])
    enabled = all(w["label_propagation_enabled"] for w in ran)
    print(
        f"\nlabels: {labelled} of {len(ran)} worlds had investigator labels (the generator's "
        f"past decisions on some planted abusers and ordinary accounts); label propagation "
        f"{'was enabled and ' if enabled else 'was NOT enabled in every world; '}"
        f"made findings from them in {used} worlds"
    )


if __name__ == "__main__":
    raise SystemExit(main())
