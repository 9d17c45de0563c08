"""Baseline ring finders, configured as a practitioner would, that ringscope is compared with.

Benchmark-only code. Each baseline takes :class:`~ringscope.algorithms.base.MarketTables`
and returns ``Finding`` objects, so that ``ringscope.algorithms.evaluate.evaluate``
scores every method by the same strict rule. Baseline findings have the kind
:data:`KIND` (``label_propagation``), which ``evaluate`` lets find every abuse kind: a
baseline is not penalised for not saying which kind of abuse it found (its kind-aware and
kind-blind figures are the same).

Methods
-------
``neo4j_recipe``
    The graph-database recipe over shared identifiers, as practitioners configure it
    (link accounts that share identifiers used by few accounts, require two or more
    independent shared identifiers, take connected components): an identifier value
    links the accounts that use it only when at most ``max_accounts`` accounts use it
    (the cap that keeps carrier IPs out); a pair of accounts is linked when it shares
    identifiers of at least ``min_kinds`` different kinds (two IPs of one carrier are not
    independent evidence; a device and a card are); weakly connected components of
    ``min_size`` .. ``max_size`` accounts are flagged.
``louvain``
    Louvain on the account interaction graph; communities of ``min_size`` ..
    ``max_size`` accounts whose internal edge density (edges inside over pairs) is at
    least ``min_density`` are flagged.
``leiden``
    Leiden (modularity, ``resolution``) on the same graph, flagged by the same size
    window and density floor. Leiden's communities are connected and a resolution above
    1 keeps small rings apart (the resolution limit of modularity).
``fraudar``
    FRAUDAR alone (``ringscope.algorithms.dense.fraudar``, log column weighting) on
    account x creator engagement counts and on buyer x seller order counts, edge weight
    ``log(1 + n)``; the first ``k`` blocks of each graph are flagged (rows and columns
    are both accounts).

The interaction graph links accounts by co-engagement, orders and follows. Co-engagement
follows the graph-database practice (node similarity): each account keeps its ``top_k``
(10) most similar accounts by Jaccard similarity of the sets of streams they engaged with,
weight = the similarity. Orders link buyer and seller (weight = number of orders), follows
link follower and creator (weight 1). Louvain is igraph's ``community_multilevel``, Leiden
igraph's ``community_leiden``, both with igraph's random generator seeded.

Tuning
------
Every parameter above is chosen by :func:`tune`: a small grid (:data:`GRIDS`) searched on
*tuning* worlds (seeds below 1000), keeping per method the setting with the best ring F1
(the harmonic mean of strict ring recall and ring precision, pooled over the worlds:
matched rings over rings, matched findings over findings); ties go to the earlier grid
point. Counts are cached per world and the choice as JSON (see :func:`tune`); no
reporting world is ever looked at. The grids are what a practitioner would try:
identifier caps of 5 to 100 accounts, at least 3 or 6 accounts per component (households
have a few), at most 20 to 1,000 accounts per component or community, density floors of
0 to 0.5, Leiden resolutions of 1 to 16, and 1 to 20 FRAUDAR blocks.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import igraph as ig
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.dense import fraudar
from ringscope.algorithms.evaluate import evaluate, is_hard_negative
from ringscope.model import DetectorInfo, Finding, Member

#: Finding kind of every baseline finding: finds every abuse kind in ``evaluate``.
KIND = "label_propagation"
#: Part of the tuning cache key: change it when a baseline's code changes.
VERSION = "2"

Params = dict[str, Any]

#: The grid each method's parameters are searched on (every combination).
GRIDS: dict[str, dict[str, list[Any]]] = {
    "neo4j_recipe": {
        "max_accounts": [5, 10, 20, 50, 100],
        "min_kinds": [2, 3],
        "min_size": [3, 6],
        "max_size": [50, 200, 1000],
    },
    "louvain": {
        "min_size": [3],
        "max_size": [20, 50, 200, 500],
        "min_density": [0.0, 0.1, 0.3, 0.5],
    },
    "leiden": {
        "resolution": [1.0, 4.0, 16.0],
        "min_size": [3],
        "max_size": [20, 50, 200, 500],
        "min_density": [0.0, 0.1, 0.3, 0.5],
    },
    "fraudar": {"k": [1, 2, 5, 10, 20], "min_size": [3]},
}


def grid_points(method: str) -> list[Params]:
    """Every combination of ``method``'s grid, in a fixed order."""
    grid = GRIDS[method]
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def _finding(method: str, members: Iterable[str], score: float, what: str) -> Finding:
    ids = list(members)
    return Finding.build(
        kind=KIND,
        score=score,
        members=[Member(a, "member", score) for a in ids],
        explanation=f"{what} of {len(ids)} accounts ({method} baseline)",
        detector=DetectorInfo(f"baseline:{method}", VERSION),
    )


class _Accounts:
    """Account ids to dense integer codes (every account any table names)."""

    def __init__(self, t: MarketTables) -> None:
        parts = [
            t.accounts["account_id"],
            t.engagements["account_id"],
            t.streams["creator_id"],
            t.orders["buyer_id"],
            t.orders["seller_id"],
            t.follows["follower_id"],
            t.follows["creator_id"],
            t.identifiers["account_id"],
        ]
        ids = pd.concat([p.dropna().astype(str) for p in parts], ignore_index=True).unique()
        self.ids = np.sort(np.asarray(ids, dtype=object))
        self.index = pd.Index(self.ids)

    def codes(self, s: pd.Series) -> np.ndarray:
        return np.asarray(self.index.get_indexer(s.astype(str)), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)


def _groups(labels: np.ndarray, keep: np.ndarray | None = None) -> list[np.ndarray]:
    """Members (codes) of each label, optionally only the codes where ``keep``."""
    codes = np.arange(len(labels))
    if keep is not None:
        codes = codes[keep]
    order = np.argsort(labels[codes], kind="stable")
    codes = codes[order]
    lab = labels[codes]
    cuts = np.flatnonzero(np.diff(lab)) + 1
    return np.split(codes, cuts)


# ----------------------------------------------------------------- shared identifiers


def identifier_components(
    t: MarketTables, acc: _Accounts, *, max_accounts: int, min_kinds: int
) -> list[np.ndarray]:
    """Connected components (account codes) of the shared-identifier graph.

    An identifier value links the accounts that use it when at least two and at most
    ``max_accounts`` accounts use it; a pair of accounts is linked when it shares such
    identifiers of at least ``min_kinds`` different kinds.
    """
    ids = t.identifiers[["account_id", "kind", "value"]].dropna().drop_duplicates()
    key = pd.factorize(ids["kind"].astype(str) + "\x00" + ids["value"].astype(str))[0]
    kind = pd.factorize(ids["kind"].astype(str))[0]
    df = pd.DataFrame({"key": key, "kind": kind, "a": acc.codes(ids["account_id"])})
    df = df.drop_duplicates(["key", "a"])
    size = df.groupby("key")["a"].transform("size")
    df = df[(size >= 2) & (size <= max_accounts)]
    pairs = df.merge(df[["key", "a"]], on="key")
    pairs = pairs[pairs["a_x"] < pairs["a_y"]]
    n = pairs.drop_duplicates(["a_x", "a_y", "kind"]).groupby(["a_x", "a_y"]).size()
    n = n[n >= min_kinds]
    src = n.index.get_level_values(0).to_numpy()
    dst = n.index.get_level_values(1).to_numpy()
    m = len(acc)
    graph = sp.coo_matrix((np.ones(len(src)), (src, dst)), shape=(m, m)).tocsr()
    _, labels = connected_components(graph, directed=False)
    linked = np.zeros(m, dtype=bool)
    linked[src] = True
    linked[dst] = True
    return [g for g in _groups(labels, linked) if len(g) >= 2]


# ----------------------------------------------------------------- interaction graph


def coengagement_topk(
    t: MarketTables, acc: _Accounts, *, top_k: int = 10, chunk_nnz: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each account's ``top_k`` most similar accounts by Jaccard of engaged streams."""
    e = t.engagements[["account_id", "stream_id"]].dropna().drop_duplicates()
    rows = acc.codes(e["account_id"])
    cols, _ = pd.factorize(e["stream_id"].astype(str))
    m = len(acc)
    a = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(m, int(cols.max()) + 1)
    )
    at = a.T.tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    # rows per chunk so that the product stays near chunk_nnz entries
    col_deg = np.asarray(a.sum(axis=0)).ravel()
    work = np.asarray(a @ col_deg).ravel()
    out_s, out_d, out_w = [], [], []
    start = 0
    while start < m:
        stop = start + 1
        budget = work[start]
        while stop < m and budget + work[stop] <= chunk_nnz:
            budget += work[stop]
            stop += 1
        prod = a[start:stop] @ at
        prod.sort_indices()
        s = prod.tocoo()
        r = s.row.astype(np.int64)
        c = s.col.astype(np.int64)
        keep = r + start != c
        r, c, inter = r[keep], c[keep], s.data[keep].astype(np.float64)
        jac = inter / (deg[r + start] + deg[c] - inter)
        # one stable sort: by row, then similarity descending, then column
        order = np.argsort(r + (1.0 - jac) * 0.5, kind="stable")
        r, c, jac = r[order] + start, c[order], jac[order]
        first = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
        rank = np.arange(len(r)) - np.repeat(first, np.diff(np.r_[first, len(r)]))
        sel = rank < top_k
        out_s.append(r[sel])
        out_d.append(c[sel])
        out_w.append(jac[sel])
        start = stop
    if not out_s:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(out_s), np.concatenate(out_d), np.concatenate(out_w)


def interaction_graph(t: MarketTables, acc: _Accounts, *, top_k: int = 10) -> ig.Graph:
    """Undirected weighted account graph: co-engagement, orders, follows."""
    cs, cd, cw = coengagement_topk(t, acc, top_k=top_k)
    o = t.orders[["buyer_id", "seller_id"]].dropna()
    os_, od = acc.codes(o["buyer_id"]), acc.codes(o["seller_id"])
    f = t.follows[["follower_id", "creator_id"]].dropna()
    fs, fd = acc.codes(f["follower_id"]), acc.codes(f["creator_id"])
    src = np.concatenate([cs, os_, fs])
    dst = np.concatenate([cd, od, fd])
    w = np.concatenate([cw, np.ones(len(os_)), np.ones(len(fs))])
    ok = (src >= 0) & (dst >= 0) & (src != dst)
    src, dst, w = src[ok], dst[ok], w[ok]
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    key = lo * len(acc) + hi
    uniq, inv = np.unique(key, return_inverse=True)
    weight = np.bincount(inv, weights=w)
    edges = np.column_stack([uniq // len(acc), uniq % len(acc)])
    g = ig.Graph(n=len(acc), edges=edges, directed=False)
    g.es["weight"] = weight
    return g


def _bipartite_counts(left: pd.Series, right: pd.Series) -> tuple[np.ndarray, ...]:
    ok = left.notna().to_numpy() & right.notna().to_numpy()
    lc, lids = pd.factorize(left[ok].astype(str))
    rc, rids = pd.factorize(right[ok].astype(str))
    key = lc.astype(np.int64) * max(len(rids), 1) + rc
    uniq, n = np.unique(key, return_counts=True)
    return (
        uniq // max(len(rids), 1),
        uniq % max(len(rids), 1),
        np.log1p(n.astype(np.float64)),
        np.asarray(lids, dtype=object),
        np.asarray(rids, dtype=object),
    )


def louvain(g: ig.Graph, seed: int) -> np.ndarray:
    """Louvain community label of every vertex (seeded)."""
    ig.set_random_number_generator(random.Random(seed))
    try:
        part = g.community_multilevel(weights="weight", resolution=1.0)
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=np.int64)


def leiden(g: ig.Graph, seed: int, resolution: float) -> np.ndarray:
    """Leiden community label of every vertex (modularity at ``resolution``, seeded)."""
    ig.set_random_number_generator(random.Random(seed))
    try:
        part = g.community_leiden(
            objective_function="modularity",
            weights="weight",
            resolution=resolution,
            n_iterations=-1,
        )
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=np.int64)


def internal_edges(g: ig.Graph, labels: np.ndarray) -> np.ndarray:
    """Number of edges inside each community (indexed by label)."""
    edges = np.asarray(g.get_edgelist(), dtype=np.int64).reshape(-1, 2)
    inside = labels[edges[:, 0]] == labels[edges[:, 1]]
    return np.bincount(labels[edges[inside, 0]], minlength=int(labels.max(initial=-1)) + 1)


def dense_communities(
    labels: np.ndarray, inner: np.ndarray, *, min_size: int, max_size: int, min_density: float
) -> list[np.ndarray]:
    """Communities of ``min_size``..``max_size`` vertices whose share of their possible
    pairs that are edges is at least ``min_density``."""
    out = []
    for c in _groups(labels):
        n = len(c)
        if min_size <= n <= max_size and inner[labels[c[0]]] >= min_density * n * (n - 1) / 2:
            out.append(c)
    return out


# ----------------------------------------------------------------- one world


@dataclass
class World:
    """One marketplace as the baselines see it; what is costly is computed once.

    The interaction graph and each community partition are shared by ``louvain`` and
    ``leiden`` and by every grid point, and so are FRAUDAR's blocks (the first ``k`` of
    the 20 peeled)."""

    tables: MarketTables
    seed: int
    acc: _Accounts = field(init=False)
    _memo: dict[Any, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.acc = _Accounts(self.tables)

    def _get(self, key: Any, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def graph(self) -> ig.Graph:
        return self._get("graph", lambda: interaction_graph(self.tables, self.acc))

    def partition(self, algorithm: str, resolution: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Community labels and edges inside each community."""

        def make() -> tuple[np.ndarray, np.ndarray]:
            g = self.graph()
            if algorithm == "louvain":
                labels = louvain(g, self.seed)
            else:
                labels = leiden(g, self.seed, resolution)
            return labels, internal_edges(g, labels)

        return self._get(("partition", algorithm, resolution), make)

    def identifier_components(self, max_accounts: int, min_kinds: int) -> list[np.ndarray]:
        return self._get(
            ("ids", max_accounts, min_kinds),
            lambda: identifier_components(
                self.tables, self.acc, max_accounts=max_accounts, min_kinds=min_kinds
            ),
        )

    def fraudar_blocks(self) -> list[list[tuple[float, list[str]]]]:
        """Per graph (engagement, orders), its first 20 blocks as (score, members)."""
        return self._get("fraudar", lambda: _fraudar_blocks(self.tables, FRAUDAR_MAX_BLOCKS))


#: Blocks FRAUDAR peels per graph; ``k`` takes the first ``k`` of them.
FRAUDAR_MAX_BLOCKS = max(GRIDS["fraudar"]["k"])


def _fraudar_blocks(t: MarketTables, n_blocks: int) -> list[list[tuple[float, list[str]]]]:
    e = t.engagements[["account_id", "stream_id"]].merge(
        t.streams[["stream_id", "creator_id"]], on="stream_id", how="inner"
    )
    graphs = [
        _bipartite_counts(e["account_id"], e["creator_id"]),
        _bipartite_counts(t.orders["buyer_id"], t.orders["seller_id"]),
    ]
    out: list[list[tuple[float, list[str]]]] = []
    for rows, cols, w, rids, cids in graphs:
        blocks: list[tuple[float, list[str]]] = []
        if len(rows):
            for b in fraudar(rows, cols, w, n_blocks=n_blocks, column_weighting="log", c=5.0):
                blocks.append((b.score, sorted(set(rids[list(b.rows)]) | set(cids[list(b.cols)]))))
        out.append(blocks)
    return out


# ----------------------------------------------------------------- methods


def neo4j_recipe(w: World, p: Params) -> list[Finding]:
    """Components over rarely shared identifiers, ``min_kinds`` kinds shared per pair."""
    comps = w.identifier_components(int(p["max_accounts"]), int(p["min_kinds"]))
    return [
        _finding("neo4j_recipe", w.acc.ids[c], 1.0, "shared-identifier component")
        for c in comps
        if p["min_size"] <= len(c) <= p["max_size"]
    ]


def _communities(w: World, p: Params, algorithm: str, resolution: float) -> list[Finding]:
    labels, inner = w.partition(algorithm, resolution)
    comms = dense_communities(
        labels,
        inner,
        min_size=int(p["min_size"]),
        max_size=int(p["max_size"]),
        min_density=float(p["min_density"]),
    )
    what = f"{algorithm.capitalize()} community"
    return [_finding(algorithm, w.acc.ids[c], 1.0, what) for c in comms]


def louvain_alone(w: World, p: Params) -> list[Finding]:
    """Louvain communities in the size window, at or above the density floor."""
    return _communities(w, p, "louvain", 1.0)


def leiden_alone(w: World, p: Params) -> list[Finding]:
    """Leiden communities in the size window, at or above the density floor."""
    return _communities(w, p, "leiden", float(p["resolution"]))


def fraudar_alone(w: World, p: Params) -> list[Finding]:
    """The first ``k`` FRAUDAR blocks of the engagement and of the order graph."""
    blocks = [b for per_graph in w.fraudar_blocks() for b in per_graph[: int(p["k"])]]
    blocks = [(s, m) for s, m in blocks if len(m) >= p["min_size"]]
    top = max((s for s, _ in blocks), default=1.0) or 1.0
    return [_finding("fraudar", m, s / top, "FRAUDAR dense block") for s, m in blocks]


Method = Callable[[World, Params], list[Finding]]

METHODS: dict[str, Method] = {
    "neo4j_recipe": neo4j_recipe,
    "louvain": louvain_alone,
    "leiden": leiden_alone,
    "fraudar": fraudar_alone,
}


# ----------------------------------------------------------------- tuning


@dataclass(frozen=True)
class TuningWorld:
    """A tuning world: its name (for the cache), and how to read it when needed."""

    name: str
    seed: int
    read: Callable[[], tuple[MarketTables, pd.DataFrame]]


_COUNTS = ("rings", "found", "findings", "matched")


def _ring_f1(c: dict[str, int]) -> tuple[float, float | None, float | None]:
    rec = c["found"] / c["rings"] if c["rings"] else None
    prec = c["matched"] / c["findings"] if c["findings"] else None
    if not rec or not prec:
        return 0.0, rec, prec
    return 2 * rec * prec / (rec + prec), rec, prec


def _grid_counts(w: World, truth: pd.DataFrame, method: str) -> list[dict[str, int]]:
    """Strict ring counts of every grid point of ``method`` on one world."""
    out = []
    for p in grid_points(method):
        r = evaluate(METHODS[method](w, p), truth)
        out.append(
            {
                "rings": r.rings,
                "found": r.rings_found,
                "findings": r.findings,
                "matched": r.findings_matched,
            }
        )
    return out


def cache_key(worlds: list[TuningWorld], methods: list[str]) -> str:
    """What a tuning result depends on: the worlds, the grids, the baselines' code."""
    doc = {
        "version": VERSION,
        "grids": {m: GRIDS[m] for m in methods},
        "worlds": [w.name for w in worlds],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def tune(
    worlds: list[TuningWorld],
    cache_dir: Path,
    methods: list[str] | None = None,
    *,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Each method's best grid point on the tuning ``worlds`` (see the module's Tuning).

    Counts per world are cached in ``cache_dir`` as they are made (a crash loses one
    world), and the choice in ``cache_dir/tuned-<key>.json``. Returns, per method, the
    chosen ``params`` and their pooled ``f1``, ``recall`` and ``precision``.
    """
    methods = list(methods or METHODS)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(worlds, methods)
    final = cache_dir / f"tuned-{key}.json"
    if final.is_file():
        return dict(json.loads(final.read_text())["methods"])
    totals = {m: [dict.fromkeys(_COUNTS, 0) for _ in grid_points(m)] for m in methods}
    for tw in worlds:
        part = cache_dir / f"tune-{key}-{tw.name}.json"
        if part.is_file():
            counts = json.loads(part.read_text())
        else:
            log(f"tuning baselines on {tw.name}")
            tables, truth = tw.read()
            # ring counts need the abuse rings only; hard negatives are half a million rows
            truth = truth[~truth["kind"].astype(str).map(is_hard_negative).astype(bool)]
            w = World(tables, tw.seed)
            counts = {m: _grid_counts(w, truth, m) for m in methods}
            part.write_text(json.dumps(counts))
            del w, tables, truth
        for m in methods:
            for acc, c in zip(totals[m], counts[m], strict=True):
                for k in acc:
                    acc[k] += c[k]
    chosen: dict[str, dict[str, Any]] = {}
    for m in methods:
        points = grid_points(m)
        scored = [_ring_f1(c) for c in totals[m]]
        best = max(range(len(points)), key=lambda i: (scored[i][0], -i))
        f1, rec, prec = scored[best]
        chosen[m] = {"params": points[best], "f1": f1, "recall": rec, "precision": prec}
    final.write_text(
        json.dumps(
            {"worlds": [w.name for w in worlds], "grids": GRIDS, "methods": chosen}, indent=1
        )
    )
    return chosen


def run_baselines(
    tables: MarketTables, seed: int, params: dict[str, Params]
) -> dict[str, tuple[list[Finding], float]]:
    """Every method of ``params`` on one marketplace: its findings and seconds.

    The interaction graph is built once, for the first community method that needs it,
    and its seconds are counted there."""
    w = World(tables, seed)
    out: dict[str, tuple[list[Finding], float]] = {}
    for method, p in params.items():
        t0 = time.perf_counter()
        found = METHODS[method](w, p)
        out[method] = (found, time.perf_counter() - t0)
    return out
