"""FRAUDAR beside a public implementation (UGFraud's) on the same graph, in the same run.

Usage::

    make bench-fraudar                                          # 1M engagement events
    make bench-fraudar ARGS="--events 200000 --json out.json"
    .venv-compare/bin/python benchmarks/fraudar_compare.py [--events N] [--edges-cap N]

UGFraud (``UGFraud.Detector.Fraudar``, pure Python + scipy) is installed only
in ``.venv-compare`` (``benchmarks/requirements-compare.txt``), never in the
project's own environment; ``make bench-fraudar`` creates that virtualenv and
runs this script with it.

The graph is the account x creator engagement graph of a generated
marketplace (cached, as for ``detect.py``): an edge for every (account, creator)
pair with at least one engagement event on one of the creator's streams.
Both implementations peel the same **binary** matrix with the same column
weights ``1 / log(deg + 5)``: UGFraud's ``logWeightedAveDegree`` and
ringscope's :func:`ringscope.algorithms.dense.peel` (one FRAUDAR round,
``column_weighting="log"``, no edge weights). The comparison is restricted to
binary edges because UGFraud's peeling subtracts the column weight, not the
edge's weight, from a neighbour's priority, which is only right when every
edge weighs 1. Rows and columns are numbered 0.. in both (no empty ones), so
the blocks can be compared index for index.

Printed: edges, wall and CPU seconds and microseconds per edge of each, the
largest growth of resident memory during a call, the speed ratio,
the top block of each (rows, columns, score), whether the blocks are the same
sets, their Jaccard when not, and whether the scores agree within 1e-9
relative. Each block's score is also recomputed from the edges, independently
of both implementations. Last, ringscope's peeling of the *weighted* graph the
detector uses (edge weight ``log(1 + events)``), against the target of
<= 0.7 microseconds per edge.

Timings cover the call of each implementation on its input: edge arrays for
ringscope (whose call merges duplicate edges, weights columns and builds its
adjacency), the scipy matrix for UGFraud (built outside the timing). Numba's
compilation happens before any timing. ringscope is timed ``--repeats`` times
(the median is used in the ratio), UGFraud ``--ugfraud-repeats`` times (the
median too). CPU time is printed beside wall time because the machine may be
shared: wall time then grows with the load, CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import DEFAULT_CACHE, RssSampler, current_rss_mb, ensure_market, load_average
from scipy import sparse

from ringscope.algorithms.dense import Block, peel
from ringscope.loaders.pipeline import read_table
from ringscope.loaders.read import table_file

TARGET_US_PER_EDGE = 0.7
C = 5.0
SCORE_RTOL = 1e-9


def engagement_graph(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Account and creator codes of each distinct (account, creator) edge, and its event count."""
    ev_path, st_path = table_file(folder, "engagements"), table_file(folder, "streams")
    if ev_path is None or st_path is None:
        raise SystemExit(f"{folder} lacks the engagements or the streams table")
    ev = read_table(ev_path).frame[["account_id", "stream_id"]]
    streams = read_table(st_path).frame
    creator = (
        streams.assign(stream_id=streams["stream_id"].astype(str))
        .drop_duplicates("stream_id")
        .set_index("stream_id")["creator_id"]
    )
    cr = ev["stream_id"].astype(str).map(creator)
    ok = ev["account_id"].notna().to_numpy() & cr.notna().to_numpy()
    acodes, _ = pd.factorize(ev["account_id"][ok].astype(str), sort=True)
    ccodes, cids = pd.factorize(cr[ok].astype(str), sort=True)
    n_c = max(len(cids), 1)
    key = acodes.astype(np.int64) * n_c + ccodes.astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    return uniq // n_c, uniq % n_c, counts.astype(np.float64)


def cap_edges(
    rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, cap: int, seed: int
) -> tuple[np.ndarray, ...]:
    """Every edge of a seeded random sample of accounts, as many accounts as fit in ``cap`` edges.

    Sampling whole accounts (rather than edges) keeps each kept account's
    neighbourhood, and so the planted rings among the kept accounts, intact.
    """
    if rows.size <= cap:
        return rows, cols, counts
    rng = np.random.default_rng(seed)
    accounts = np.unique(rows)
    deg = np.bincount(rows, minlength=int(rows.max()) + 1)
    order = rng.permutation(accounts)
    n_keep = int(np.searchsorted(np.cumsum(deg[order]), cap, side="right"))
    keep = np.isin(rows, order[:n_keep])
    return rows[keep], cols[keep], counts[keep]


def compact(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber rows and columns 0.. so that no row or column is empty."""
    _, r = np.unique(rows, return_inverse=True)
    _, c = np.unique(cols, return_inverse=True)
    return r.astype(np.int64), c.astype(np.int64)


@dataclass
class Timing:
    """Wall and CPU seconds of each timed call, and the largest peak RSS growth (MB)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_growth_mb: float = 0.0


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, Timing]:
    """The last result of ``repeats`` calls of ``fn``, and their :class:`Timing`."""
    t = Timing()
    result: Any = None
    for _ in range(repeats):
        result = None
        base = current_rss_mb()
        with RssSampler(interval_s=0.05) as rss:
            c0, t0 = time.process_time(), time.perf_counter()
            result = fn()
            t.wall.append(time.perf_counter() - t0)
            t.cpu.append(time.process_time() - c0)
        t.rss_growth_mb = max(t.rss_growth_mb, rss.peak_mb - base)
    return result, t


def block_score(
    rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, rset: set[int], cset: set[int]
) -> float:
    """``g(S) = f(S) / |S|`` of a block, recomputed from the edges and their weights."""
    if not rset and not cset:
        return 0.0
    rmask = np.zeros(int(rows.max()) + 1, dtype=bool)
    cmask = np.zeros(int(cols.max()) + 1, dtype=bool)
    rmask[list(rset)] = True
    cmask[list(cset)] = True
    inside = rmask[rows] & cmask[cols]
    return float(weight[inside].sum() / (len(rset) + len(cset)))


def jaccard(a: tuple[set[int], set[int]], b: tuple[set[int], set[int]]) -> float:
    """Jaccard of two blocks over their rows and columns (as UGFraud's evaluation defines it)."""
    inter = len(a[0] & b[0]) + len(a[1] & b[1])
    union = len(a[0] | b[0]) + len(a[1] | b[1])
    return inter / union if union else 1.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument(
        "--edges-cap",
        type=int,
        default=0,
        help="keep the edges of a random sample of accounts, at most this many (0: all)",
    )
    ap.add_argument("--repeats", type=int, default=5, help="timed runs of ringscope's peel")
    ap.add_argument("--ugfraud-repeats", type=int, default=1, help="timed runs of UGFraud")
    ap.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    args = ap.parse_args(argv)
    try:
        from UGFraud.Detector.Fraudar import logWeightedAveDegree
    except ImportError:
        print(
            "UGFraud is not installed here: run `make bench-fraudar`, which installs it into "
            ".venv-compare (benchmarks/requirements-compare.txt) and runs this script there.",
            file=sys.stderr,
        )
        return 2

    print(load_average(), flush=True)
    folder, gen_s = ensure_market(args.cache, args.events, args.seed)
    print(f"marketplace {folder} ({f'generated in {gen_s:.1f} s' if gen_s else 'cached'})")
    t0 = time.perf_counter()
    rows, cols, counts = engagement_graph(folder)
    n_all = rows.size
    if args.edges_cap > 0:
        rows, cols, counts = cap_edges(rows, cols, counts, args.edges_cap, args.seed)
    rows, cols = compact(rows, cols)
    n_r, n_c, n_e = int(rows.max()) + 1, int(cols.max()) + 1, int(rows.size)
    capped = f" (the edges of sampled accounts, of {n_all:,})" if n_e < n_all else ""
    print(
        f"engagement graph: {n_r:,} accounts x {n_c:,} creators, {n_e:,} edges{capped}, "
        f"built in {time.perf_counter() - t0:.1f} s"
    )

    # the same binary matrix for UGFraud; its column weights, for the independent check
    t0 = time.perf_counter()
    matrix = sparse.csr_matrix((np.ones(n_e, dtype=np.int64), (rows, cols)), shape=(n_r, n_c))
    print(f"scipy matrix built in {time.perf_counter() - t0:.2f} s (outside the timings)")
    col_w = 1.0 / np.log(np.bincount(cols, minlength=n_c).astype(np.float64) + C)
    edge_w = col_w[cols]

    peel(np.array([0, 1]), np.array([0, 0]))  # compile (or load) the numba kernel first

    ours, ours_t = timed(lambda: peel(rows, cols, None, column_weighting="log", c=C), args.repeats)
    assert isinstance(ours, Block)
    print(f"ringscope peel: {', '.join(f'{s:.3f}' for s in ours_t.wall)} s", flush=True)
    ugf, ugf_t = timed(lambda: logWeightedAveDegree(matrix), args.ugfraud_repeats)
    print(
        f"UGFraud logWeightedAveDegree: {', '.join(f'{s:.2f}' for s in ugf_t.wall)} s", flush=True
    )
    (ugf_rows, ugf_cols), ugf_score = ugf
    ugf_block = ({int(x) for x in ugf_rows}, {int(x) for x in ugf_cols})
    ours_block = (set(ours.rows), set(ours.cols))
    ugf_score = float(ugf_score)

    same = ours_block == ugf_block
    jac = jaccard(ours_block, ugf_block)
    rel = abs(ours.score - ugf_score) / max(abs(ours.score), abs(ugf_score), 1e-300)
    ours_check = block_score(rows, cols, edge_w, *ours_block)
    ugf_check = block_score(rows, cols, edge_w, *ugf_block)

    # ringscope on the weighted graph the detector peels: weight log(1 + events)
    weights = np.log1p(counts)
    wblock, w_t = timed(
        lambda: peel(rows, cols, weights, column_weighting="log", c=C), args.repeats
    )
    assert isinstance(wblock, Block)

    med = statistics.median
    print(
        f"\nFRAUDAR on {n_e:,} binary edges, column weights 1/log(deg + {C:g}) ({load_average()})"
    )
    head = (
        f"{'implementation':<30} {'wall s':>8} {'us/edge':>8} {'CPU s':>8} {'us/edge':>8} "
        f"{'peak MB':>8} {'rows':>6} {'cols':>5} {'score':>13}"
    )
    print(head)
    print("-" * len(head))
    table: list[tuple[str, Timing, int, int, float]] = [
        ("ringscope peel (numba)", ours_t, len(ours.rows), len(ours.cols), ours.score),
        ("UGFraud logWeightedAveDegree", ugf_t, len(ugf_block[0]), len(ugf_block[1]), ugf_score),
        ("ringscope peel, weighted graph", w_t, len(wblock.rows), len(wblock.cols), wblock.score),
    ]
    for name, t, nr, nc, sc in table:
        wall, cpu = med(t.wall), med(t.cpu)
        print(
            f"{name:<30} {wall:>8.3f} {wall / n_e * 1e6:>8.3f} {cpu:>8.3f} {cpu / n_e * 1e6:>8.3f} "
            f"{t.rss_growth_mb:>8.0f} {nr:>6} {nc:>5} {sc:>13.9f}"
        )
    ratio = med(ugf_t.wall) / med(ours_t.wall)
    cpu_ratio = med(ugf_t.cpu) / max(med(ours_t.cpu), 1e-9)
    print(
        f"(medians of {len(ours_t.wall)} runs of ringscope and {len(ugf_t.wall)} of UGFraud; "
        "peak MB: largest growth of resident memory during a call)"
    )
    print(f"\nspeed ratio UGFraud / ringscope: {ratio:,.0f}x wall, {cpu_ratio:,.0f}x CPU")
    print(f"same top block (row and column sets): {'yes' if same else 'NO'}")
    if not same:
        print(
            f"  Jaccard {jac:.4f}; rows only in ringscope's {len(ours_block[0] - ugf_block[0])}, "
            f"only in UGFraud's {len(ugf_block[0] - ours_block[0])}; columns only in "
            f"ringscope's {len(ours_block[1] - ugf_block[1])}, only in UGFraud's "
            f"{len(ugf_block[1] - ours_block[1])}"
        )
    print(
        f"scores equal within {SCORE_RTOL:g} relative: {'yes' if rel <= SCORE_RTOL else 'NO'} "
        f"(relative difference {rel:.2e})"
    )
    print(
        f"scores recomputed from the edges: ringscope's block {ours_check:.9f}, "
        f"UGFraud's block {ugf_check:.9f}"
    )
    w_us = med(w_t.wall) / n_e * 1e6
    print(
        f"\nringscope on the weighted graph: {w_us:.3f} us/edge wall, "
        f"{med(w_t.cpu) / n_e * 1e6:.3f} us/edge CPU (target <= {TARGET_US_PER_EDGE} us/edge: "
        f"{'meets' if w_us <= TARGET_US_PER_EDGE else 'MISSES'} on wall time)"
    )
    print(load_average())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "events": args.events,
                    "seed": args.seed,
                    "edges": n_e,
                    "edges_before_cap": n_all,
                    "rows": n_r,
                    "cols": n_c,
                    "ringscope": asdict(ours_t),
                    "ugfraud": asdict(ugf_t),
                    "ringscope_weighted": asdict(w_t),
                    "speed_ratio_wall": ratio,
                    "speed_ratio_cpu": cpu_ratio,
                    "ringscope_block": {
                        "rows": len(ours.rows),
                        "cols": len(ours.cols),
                        "score": ours.score,
                        "score_from_edges": ours_check,
                    },
                    "ugfraud_block": {
                        "rows": len(ugf_block[0]),
                        "cols": len(ugf_block[1]),
                        "score": ugf_score,
                        "score_from_edges": ugf_check,
                    },
                    "same_block": same,
                    "jaccard": jac,
                    "score_relative_difference": rel,
                    "weighted_us_per_edge": w_us,
                    "load_average": load_average(),
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
