"""FRAUDAR peeling against a plain reference and brute force; the dense-block detector."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.dense import (
    NAME,
    VERSION,
    Block,
    _kernel,
    _peel_kernel,
    detect_dense_blocks,
    detect_dense_blocks_tables,
    fraudar,
    peel,
)
from ringscope.errors import InputError
from ringscope.model import canonical_json


def _weighted(rows, cols, w, column_weighting, c):  # type: ignore[no-untyped-def]
    """Edge dict {(r, c): weight} with duplicates summed and the column weighting applied."""
    edges: dict[tuple[int, int], float] = {}
    for r, k, x in zip(rows, cols, w, strict=True):
        edges[(int(r), int(k))] = edges.get((int(r), int(k)), 0.0) + float(x)
    edges = {e: x for e, x in edges.items() if x > 0}
    if column_weighting == "log":
        deg: dict[int, int] = {}
        for _, k in edges:
            deg[k] = deg.get(k, 0) + 1
        edges = {(r, k): x / math.log(deg[k] + c) for (r, k), x in edges.items()}
    return edges


def reference_peel(rows, cols, w, column_weighting="log", c=5.0):  # type: ignore[no-untyped-def]
    """Greedy peeling written for clarity: recompute everything at every step.

    Nodes are ("r", i) and ("c", j), ordered rows first then columns, each by
    index; the node of least (priority, order) goes first; the best prefix is
    the first one reaching the highest g = f(S) / |S|.
    """
    edges = _weighted(rows, cols, w, column_weighting, c)
    nodes = sorted({("r", r) for r, _ in edges}) + sorted({("c", k) for _, k in edges})
    order = {v: i for i, v in enumerate(nodes)}
    alive = set(nodes)

    def inside(r: int, k: int) -> bool:
        return ("r", r) in alive and ("c", k) in alive

    def prio(v: tuple[str, int]) -> float:
        side, i = v
        return sum(
            x
            for (r, k), x in edges.items()
            if ((side == "r" and r == i) or (side == "c" and k == i)) and inside(r, k)
        )

    def f() -> float:
        return sum(x for (r, k), x in edges.items() if inside(r, k))

    best_g, best = f() / len(alive), set(alive)
    while alive:
        v = min(alive, key=lambda u: (prio(u), order[u]))
        alive.remove(v)
        if alive:
            g = f() / len(alive)
            if g > best_g + 1e-12:
                best_g, best = g, set(alive)
    return (
        tuple(sorted(i for s, i in best if s == "r")),
        tuple(sorted(i for s, i in best if s == "c")),
        best_g,
    )


def brute_force(rows, cols, w, column_weighting="log", c=5.0):  # type: ignore[no-untyped-def]
    """The optimum of g over every non-empty subset of rows and columns."""
    edges = _weighted(rows, cols, w, column_weighting, c)
    rs = sorted({r for r, _ in edges})
    cs = sorted({k for _, k in edges})
    best = (-1.0, (), ())
    for nr in range(len(rs) + 1):
        for rsub in itertools.combinations(rs, nr):
            rset = set(rsub)
            for nc in range(len(cs) + 1):
                if nr + nc == 0:
                    continue
                for csub in itertools.combinations(cs, nc):
                    cset = set(csub)
                    f = sum(x for (r, k), x in edges.items() if r in rset and k in cset)
                    g = f / (nr + nc)
                    if g > best[0] + 1e-12:
                        best = (g, rsub, csub)
    return best


def _random_graph(rng: np.random.Generator, n_r: int, n_c: int, m: int):  # type: ignore[no-untyped-def]
    key = rng.choice(n_r * n_c, size=m, replace=False)
    return key // n_c, key % n_c, rng.uniform(0.1, 5.0, size=m)


# --------------------------------------------------------------------------- peeling


@pytest.mark.parametrize("trial", range(25))
@pytest.mark.parametrize("column_weighting", ["log", "none"])
def test_peeling_equals_reference_on_random_weighted_graphs(
    trial: int, column_weighting: str
) -> None:
    rng = np.random.default_rng(1000 + trial)
    n_r, n_c = int(rng.integers(2, 9)), int(rng.integers(2, 8))
    m = int(rng.integers(1, n_r * n_c + 1))
    r, k, w = _random_graph(rng, n_r, n_c, m)
    got = peel(r, k, w, column_weighting=column_weighting)  # type: ignore[arg-type]
    want = reference_peel(r, k, w, column_weighting)
    assert got is not None
    assert (got.rows, got.cols) == want[:2]
    assert got.score == pytest.approx(want[2], rel=1e-9)


def test_weights_are_used_not_just_edges() -> None:
    # a heavy 2x2 block against a light but larger 4x4 block: only weights tell them apart
    heavy = [(0, 0, 10.0), (0, 1, 10.0), (1, 0, 10.0), (1, 1, 10.0)]
    light = [(r, k, 1.0) for r in range(2, 6) for k in range(2, 6)]
    r, k, w = (np.array(x) for x in zip(*(heavy + light), strict=True))
    weighted = peel(r.astype(int), k.astype(int), w, column_weighting="none")
    unweighted = peel(r.astype(int), k.astype(int), None, column_weighting="none")
    assert weighted is not None and unweighted is not None
    assert (weighted.rows, weighted.cols) == ((0, 1), (0, 1))
    assert weighted.score == pytest.approx(40.0 / 4)
    assert (unweighted.rows, unweighted.cols) == ((2, 3, 4, 5), (2, 3, 4, 5))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("column_weighting", ["log", "none"])
def test_planted_block_greedy_reaches_brute_force_optimum(seed: int, column_weighting: str) -> None:
    rng = np.random.default_rng(seed)
    # 6 x 5 graph: a dense weighted 3 x 3 block in light noise
    block = [(r, k, float(rng.uniform(2.0, 3.0))) for r in range(3) for k in range(3)]
    noise = [
        (int(r), int(k), float(rng.uniform(0.1, 0.6)))
        for r, k in {(int(rng.integers(0, 6)), int(rng.integers(0, 5))) for _ in range(8)}
        if not (r < 3 and k < 3)
    ]
    r, k, w = (np.array(x) for x in zip(*(block + noise), strict=True))
    g_opt, r_opt, c_opt = brute_force(r, k, w, column_weighting)
    got = peel(r.astype(int), k.astype(int), w, column_weighting=column_weighting)  # type: ignore[arg-type]
    assert got is not None
    assert got.score == pytest.approx(g_opt, rel=1e-9)
    assert (got.rows, got.cols) == (r_opt, c_opt) == ((0, 1, 2), (0, 1, 2))


def test_compiled_and_plain_kernels_agree() -> None:
    rng = np.random.default_rng(3)
    n, m = 60, 300
    a = rng.integers(0, 30, m)
    b = rng.integers(30, n, m)
    w = rng.uniform(0.1, 2.0, m)
    prio0 = np.bincount(a, weights=w, minlength=n) + np.bincount(b, weights=w, minlength=n)
    src, dst, ew = np.r_[a, b], np.r_[b, a], np.r_[w, w]
    perm = np.argsort(src, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    args = (indptr, dst[perm].astype(np.int64), ew[perm], prio0, float(w.sum()))
    o1, k1, g1 = _peel_kernel(*args)
    o2, k2, g2 = _kernel()(*args)
    assert np.array_equal(o1, o2) and k1 == k2 and g1 == g2


def test_camouflage_does_not_hide_a_block() -> None:
    rng = np.random.default_rng(0)
    # 200 users x 100 products of noise; fraud block 20 x 10; fraud rows also
    # hit popular column 0 (camouflage), which half of everyone uses
    noise_r = rng.integers(0, 200, 1500)
    noise_c = rng.integers(1, 100, 1500)
    pop_r = np.arange(0, 220, 2)
    block_r = np.repeat(np.arange(200, 220), 10)
    block_c = np.tile(np.arange(100, 110), 20)
    r = np.r_[noise_r, pop_r, block_r]
    k = np.r_[noise_c, np.zeros(pop_r.size, dtype=int), block_c]
    [b] = fraudar(r, k)
    # the block's rows come out whole; the popular column may join it (its
    # few heavily discounted edges from the block still lift the average)
    assert b.rows == tuple(range(200, 220))
    assert set(range(100, 110)) <= set(b.cols) <= {0, *range(100, 110)}


def test_several_blocks_and_duplicates() -> None:
    rng = np.random.default_rng(1)
    r = np.r_[
        rng.integers(0, 100, 400),
        np.repeat(np.arange(100, 110), 6),
        np.repeat(np.arange(110, 118), 5),
    ]
    k = np.r_[
        rng.integers(0, 80, 400), np.tile(np.arange(80, 86), 10), np.tile(np.arange(86, 91), 8)
    ]
    # repeated noise edges are merged (weights summed)
    blocks = fraudar(np.r_[r, r[:10]], np.r_[k, k[:10]], n_blocks=2)
    assert [(b.rows, b.cols) for b in blocks] == [
        (tuple(range(100, 110)), tuple(range(80, 86))),
        (tuple(range(110, 118)), tuple(range(86, 91))),
    ]
    assert blocks[0].score >= blocks[1].score
    assert all(isinstance(b, Block) for b in blocks)


def test_fraudar_edge_cases() -> None:
    assert fraudar(np.array([], dtype=int), np.array([], dtype=int)) == []
    [b] = fraudar(np.array([3]), np.array([4]), np.array([2.0]), column_weighting="none")
    assert (b.rows, b.cols, b.score, b.n_edges) == ((3,), (4,), 1.0, 1)
    with pytest.raises(InputError):
        fraudar(np.array([0, 1]), np.array([0]))
    with pytest.raises(InputError):
        fraudar(np.array([-1]), np.array([0]))
    with pytest.raises(InputError):
        fraudar(np.array([0]), np.array([0]), np.array([-1.0]))
    with pytest.raises(InputError):
        fraudar(np.array([0]), np.array([0]), n_blocks=0)


# --------------------------------------------------------------------------- detector

T0 = pd.Timestamp("2024-05-01T00:00:00Z")


def _orders_market(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(1500):  # ordinary buyers spread over 60 sellers
        rows.append((f"b{rng.integers(0, 600):04d}", f"s{rng.integers(0, 60):02d}"))
    for i in range(10):  # a ring: 10 buyers buying again and again from 2 sellers
        for j in range(8):
            rows.append((f"ring{i}", f"s9{j % 2}"))
    return pd.DataFrame(
        {
            "order_id": [f"o{i:05d}" for i in range(len(rows))],
            "buyer_id": [r[0] for r in rows],
            "seller_id": [r[1] for r in rows],
            "product_id": "p",
            "amount": 12.5,
            "status": "completed",
            "ts": [T0 + pd.Timedelta(minutes=i) for i in range(len(rows))],
        }
    ).astype({"ts": "datetime64[us, UTC]"})


def _likes(rows: list[tuple[str, str]]) -> pd.DataFrame:
    """Engagement events: a like per (account, stream) row, a second apart."""
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "stream_id": [r[1] for r in rows],
            "kind": "like",
            "ts": [T0 + pd.Timedelta(seconds=i) for i in range(len(rows))],
            "amount": np.nan,
        }
    ).astype({"ts": "datetime64[us, UTC]"})


def _engagement_market(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    streams = pd.DataFrame(
        {
            "stream_id": [f"st{i:04d}" for i in range(2000)],
            "creator_id": [f"c{i % 400:03d}" for i in range(2000)],
        }
    )
    rows = [
        (f"u{rng.integers(0, 2000):04d}", f"st{rng.integers(0, 2000):04d}") for _ in range(6000)
    ]
    for a in range(15):  # 15 young accounts engaging only with creators c007 and c008
        for s in (7, 8, 407, 408, 807, 808):
            rows += [(f"farm{a:02d}", f"st{s:04d}")] * 3
    ev = _likes(rows)
    ids = sorted(set(ev["account_id"]))
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "roles": "buyer",
            "created_at": [T0 - pd.Timedelta(days=3 if a.startswith("farm") else 500) for a in ids],
        }
    ).astype({"created_at": "datetime64[us, UTC]"})
    return ev, streams, accounts


def test_dense_orders_block_is_found() -> None:
    found = detect_dense_blocks(None, _orders_market(), streams=None, seed=0)
    assert [f.kind for f in found] == ["dense_orders"]
    f = found[0]
    assert f.member_ids == tuple(f"ring{i}" for i in range(10))
    assert [b.account_id for b in f.beneficiaries] == ["s90", "s91"]
    assert {b.role for b in f.beneficiaries} == {"seller"}
    assert len(f.evidence["orders"]) == 80
    assert f.detector.name == NAME and f.detector.version == VERSION
    assert "10 accounts" in f.explanation and "100% of their orders" in f.explanation


def test_dense_engagement_block_is_found() -> None:
    ev, streams, accounts = _engagement_market()
    found = detect_dense_blocks(ev, None, streams=streams, accounts=accounts)
    assert [f.kind for f in found] == ["dense_block"]
    f = found[0]
    assert f.member_ids == tuple(f"farm{a:02d}" for a in range(15))
    assert [b.account_id for b in f.beneficiaries] == ["c007", "c008"]
    assert {s.name: s.value for s in f.signals}["young_account_share"] == 1.0
    assert len(f.evidence["engagements"]) == 30


def test_dense_detector_invariants() -> None:
    ev, streams, accounts = _engagement_market(2)
    tables = MarketTables(
        accounts=accounts, streams=streams, engagements=ev, orders=_orders_market(2)
    )
    one = detect_dense_blocks_tables(tables)
    two = detect_dense_blocks_tables(tables)
    assert canonical_json([f.to_dict() for f in one]) == canonical_json([f.to_dict() for f in two])
    assert sorted(f.kind for f in one) == ["dense_block", "dense_orders"]
    keys = [(-f.score, f.id) for f in one]
    assert keys == sorted(keys)
    for f in one:
        assert 0 <= f.score <= 1
        assert list(f.member_ids) == sorted(f.member_ids)
        assert all(0 <= m.score <= 1 for m in f.members)


def test_dense_detector_on_nothing() -> None:
    assert detect_dense_blocks(None, None, streams=None) == []
    ev, streams, _ = _engagement_market()
    assert detect_dense_blocks(ev.head(0), _orders_market().head(0), streams=streams) == []
    assert detect_dense_blocks(ev.head(1), None, streams=streams) == []
    with pytest.raises(InputError):
        detect_dense_blocks(ev, None, streams=None)
    with pytest.raises(InputError):
        detect_dense_blocks(None, _orders_market(), streams=None, min_focus=2.0)


def _with_fan_club(ev: pd.DataFrame, streams: pd.DataFrame, likes: int = 3) -> pd.DataFrame:
    """A fan club: 60 accounts engaging, again and again (``likes`` per stream), with one
    creator only (c100)."""
    fan_streams = streams.loc[streams["creator_id"] == "c100", "stream_id"].tolist()
    rows = [(f"fan{a:02d}", s) for a in range(60) for s in fan_streams for _ in range(likes)]
    return pd.concat([ev, _likes(rows)], ignore_index=True)


def _signal(f: object, name: str) -> float:
    return {s.name: s.value for s in f.signals}[name]  # type: ignore[attr-defined]


@pytest.mark.parametrize("likes", [3, 20, 30])
def test_gallery_a_farm_stands_alone_and_a_fan_club_does_not(likes: int) -> None:
    """The same market rewired at random (degrees kept) is as dense around one creator's
    fans as the market, but not around accounts sharing the same several creators.

    However devoted the fans (20 or 30 likes per stream make their creator denser than
    the farm), the club is measured against its own creator's audience rewired, so it
    never stands alone, and the farm's standing does not depend on it."""
    from ringscope.algorithms.queue import build_queue

    ev, streams, _ = _engagement_market()
    found = detect_dense_blocks(
        _with_fan_club(ev, streams, likes), None, streams=streams, min_density_ratio=1.0
    )
    by_cols = {tuple(b.account_id for b in f.beneficiaries): f for f in found}
    farm, fans = by_cols[("c007", "c008")], by_cols[("c100",)]
    assert farm.member_ids == tuple(f"farm{a:02d}" for a in range(15))
    assert fans.member_ids == tuple(f"fan{a:02d}" for a in range(60))
    assert _signal(farm, "density_vs_shuffled") > 1.0 and _signal(farm, "stands_alone") == 1.0
    assert _signal(fans, "density_vs_shuffled") <= 1.0 and _signal(fans, "stands_alone") == 0.0
    assert [f.member_ids for f in build_queue(found)] == [farm.member_ids]


def test_the_null_keeps_every_target_audience() -> None:
    """Rewired, one column with all its rows is as dense as in the market; the farm's
    two creators together are not; the rewiring is the same every time."""
    from ringscope.algorithms.dense import _bipartite, _peel_once, null_density, rewired

    ev, streams, _ = _engagement_market()
    creator = ev["stream_id"].map(streams.set_index("stream_id")["creator_id"])
    g = _bipartite(ev["account_id"], creator, count_weighting="log")
    null = rewired(g)
    assert all((x == y).all() for x, y in zip(null, rewired(g), strict=True))
    # every target keeps its audience's weight (an account drawn twice for one target
    # is one edge of both weights)
    kept = np.bincount(null[1], weights=null[2], minlength=g.col_ids.size)
    assert kept == pytest.approx(np.bincount(g.cols, weights=g.weights))
    c7 = int(np.searchsorted(g.col_ids, "c007"))
    star = _peel_once(
        g.rows[g.cols == c7], g.cols[g.cols == c7], g.weights[g.cols == c7],
        column_weighting="log", c=5.0,
    )  # fmt: skip
    assert star is not None
    one = null_density(null, np.array([c7]), column_weighting="log", c=5.0)
    assert one == pytest.approx(star.score)
    (farm,) = detect_dense_blocks(ev, None, streams=streams)
    cols = np.searchsorted(g.col_ids, [b.account_id for b in farm.beneficiaries])
    assert null_density(null, cols, column_weighting="log", c=5.0) > 0
    assert _signal(farm, "density_vs_shuffled") > 1.0
    assert null_density(null, np.array([10**6]), column_weighting="log", c=5.0) == 0.0
