"""Baseline ring finders that ringscope's quality is compared with (benchmark-only code).

Each baseline takes :class:`~ringscope.algorithms.base.MarketTables` and returns
``Finding`` objects, so that ``ringscope.algorithms.evaluate.evaluate`` scores
every method by the same rule. Findings use the kind :data:`KIND`
(``label_propagation``), which ``evaluate`` maps to every abuse kind: a
baseline is not penalised for not saying which kind of abuse it found.

Methods
-------
``neo4j_recipe``
    The common graph-database recipe: weakly connected components over shared
    identifiers (any identifier value used by two or more accounts links them),
    plus Louvain communities over the account interaction graph; every component
    and every community of three or more accounts is flagged.
``shared_ids_practical``
    The stricter industry variant of the identifier recipe: only identifiers
    used by at most ``max_accounts`` (10) accounts link, a pair needs two or
    more such shared identifiers, components of three or more are flagged.
``fraudar``
    FRAUDAR alone (``ringscope.algorithms.dense.fraudar``, log column weighting)
    on account x creator engagement counts and on buyer x seller order counts,
    edge weight ``log(1 + n)``; the top ``k`` blocks of each graph are flagged
    (rows and columns are both accounts).
``louvain``
    Louvain alone on the interaction graph; communities of 3..500 accounts.

The interaction graph links accounts by co-engagement, orders and follows.
Co-engagement follows the graph-database practice (node similarity): each
account keeps its ``top_k`` (10) most similar accounts by Jaccard similarity of
the sets of streams they engaged with, weight = the similarity. Orders link
buyer and seller (weight = number of orders), follows link follower and creator
(weight 1). Louvain is igraph's ``community_multilevel`` (resolution 1) with
igraph's random generator seeded.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import igraph as ig
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.dense import fraudar
from ringscope.model import DetectorInfo, Finding, Member

#: Finding kind of every baseline finding: maps to all abuse kinds in ``evaluate``.
KIND = "label_propagation"

Baseline = Callable[[MarketTables, int], list[Finding]]


def _finding(method: str, members: list[str], score: float, what: str) -> Finding:
    return Finding.build(
        kind=KIND,
        score=score,
        members=[Member(a, "member", score) for a in members],
        explanation=f"{what} of {len(members)} accounts ({method} baseline)",
        detector=DetectorInfo(f"baseline:{method}", "1"),
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
    t: MarketTables,
    acc: _Accounts,
    *,
    max_accounts: int | None = None,
    min_shared: int = 1,
) -> list[np.ndarray]:
    """Connected components (account codes) of the shared-identifier graph.

    An identifier value links the accounts that use it when it is used by at
    least two and (if given) at most ``max_accounts`` accounts; a pair of accounts
    is linked when it shares at least ``min_shared`` such identifiers.
    """
    ids = t.identifiers[["account_id", "kind", "value"]].dropna().drop_duplicates()
    key = pd.factorize(ids["kind"].astype(str) + "\x00" + ids["value"].astype(str))[0]
    a = acc.codes(ids["account_id"])
    df = pd.DataFrame({"key": key, "a": a}).drop_duplicates()
    size = df.groupby("key")["a"].transform("size")
    keep = size >= 2
    if max_accounts is not None:
        keep &= size <= max_accounts
    df = df[keep]
    if min_shared <= 1:
        first = df.groupby("key")["a"].transform("first")
        src, dst = first.to_numpy(), df["a"].to_numpy()
    else:
        pairs = df.merge(df, on="key")
        pairs = pairs[pairs["a_x"] < pairs["a_y"]]
        n = pairs.groupby(["a_x", "a_y"]).size()
        n = n[n >= min_shared]
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


def louvain(g: ig.Graph, seed: int) -> np.ndarray:
    """Louvain community label of every vertex (seeded)."""
    ig.set_random_number_generator(random.Random(seed))
    try:
        part = g.community_multilevel(weights="weight", resolution=1.0)
    finally:
        ig.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=np.int64)


_last: list[tuple[MarketTables, int, np.ndarray]] = []


def _communities(t: MarketTables, acc: _Accounts, seed: int) -> np.ndarray:
    """Louvain labels of the interaction graph, reused for the same tables and seed."""
    if _last and _last[0][0] is t and _last[0][1] == seed:
        return _last[0][2]
    labels = louvain(interaction_graph(t, acc), seed)
    _last[:] = [(t, seed, labels)]
    return labels


# ----------------------------------------------------------------- methods


def neo4j_recipe(t: MarketTables, seed: int) -> list[Finding]:
    """Shared-identifier components plus Louvain communities, size >= 3 flagged."""
    acc = _Accounts(t)
    out: list[Finding] = []
    for comp in identifier_components(t, acc):
        if len(comp) >= 3:
            out.append(
                _finding("neo4j_recipe", list(acc.ids[comp]), 1.0, "shared-identifier component")
            )
    labels = _communities(t, acc, seed)
    for comm in _groups(labels):
        if len(comm) >= 3:
            out.append(_finding("neo4j_recipe", list(acc.ids[comm]), 1.0, "Louvain community"))
    return out


def shared_ids_practical(
    t: MarketTables, seed: int, *, max_accounts: int = 10, min_shared: int = 2
) -> list[Finding]:
    """Components over rarely shared identifiers, two or more shared per pair."""
    acc = _Accounts(t)
    comps = identifier_components(t, acc, max_accounts=max_accounts, min_shared=min_shared)
    return [
        _finding("shared_ids_practical", list(acc.ids[c]), 1.0, "shared-identifier component")
        for c in comps
        if len(c) >= 3
    ]


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


def fraudar_baseline(t: MarketTables, seed: int, *, k: int = 10) -> list[Finding]:
    """Top ``k`` FRAUDAR blocks of the engagement graph and of the order graph."""
    del seed  # FRAUDAR's greedy peeling is deterministic
    e = t.engagements[["account_id", "stream_id"]].merge(
        t.streams[["stream_id", "creator_id"]], on="stream_id", how="inner"
    )
    graphs = [
        _bipartite_counts(e["account_id"], e["creator_id"]),
        _bipartite_counts(t.orders["buyer_id"], t.orders["seller_id"]),
    ]
    blocks: list[tuple[float, list[str]]] = []
    for rows, cols, w, rids, cids in graphs:
        if not len(rows):
            continue
        for b in fraudar(rows, cols, w, n_blocks=k, column_weighting="log", c=5.0):
            members = sorted(set(rids[list(b.rows)]) | set(cids[list(b.cols)]))
            if len(members) >= 3:
                blocks.append((b.score, members))
    top = max((s for s, _ in blocks), default=1.0) or 1.0
    return [_finding("fraudar", m, s / top, "FRAUDAR dense block") for s, m in blocks]


def louvain_alone(
    t: MarketTables, seed: int, *, min_size: int = 3, max_size: int = 500
) -> list[Finding]:
    """Louvain communities of ``min_size``..``max_size`` accounts."""
    acc = _Accounts(t)
    labels = _communities(t, acc, seed)
    return [
        _finding("louvain", list(acc.ids[c]), 1.0, "Louvain community")
        for c in _groups(labels)
        if min_size <= len(c) <= max_size
    ]


BASELINES: dict[str, Baseline] = {
    "neo4j_recipe": neo4j_recipe,
    "shared_ids_practical": shared_ids_practical,
    "fraudar": fraudar_baseline,
    "louvain": louvain_alone,
}
