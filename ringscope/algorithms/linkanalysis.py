"""Link analysis: who benefits, and guilt by association from investigator labels.

:func:`benefit_rank` runs PageRank and HITS on the directed graph of money
and attention (buyer -> seller by order amount, buyer -> creator for
attributed orders, seller -> creator by commission, viewer -> creator by
engagement): the accounts that collect the most are where abuse pays off.

:func:`propagate_labels` spreads investigator decisions over an undirected
account graph built from shared identifiers (discounted by how many accounts
use each), orders (buyer - seller, buyer - creator) and co-engagement on small
streams. Personalised PageRank from the ``legit`` seeds gives trust
(TrustRank); from the ``abusive`` seeds, distrust (anti-TrustRank). Both are
put on a scale of decades below the highest value; the guilt of an account is
its distrust times its share of distrust over trust (each per seed).

:func:`detect_guilt_by_association` turns unlabelled accounts with high guilt,
with the labelled abusers they are linked to, into ``label_propagation``
findings. Labels are a noisy sample of past decisions, with mistakes both ways,
and the accounts nearest to them are usually a piece of a ring rather than all of
it: these findings mostly add accounts and guilt to the cases of other detectors
they overlap (the queue's case stage), and stand alone only when a group is tied
to several abusive labels and to no legit one (``standalone_labels``). With no
abusive label there is nothing to propagate and no finding.
"""

from __future__ import annotations

import warnings
from typing import Any

import igraph as ig
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, iso
from ringscope.algorithms.identifiers import (
    group_starts,
    identifier_pair_rows,
    identifier_usage,
    pairs_within_groups,
)
from ringscope.model import DetectorInfo, Finding, Member, Signal, rank

NAME = "label_propagation"
VERSION = "1.1.0"
KIND = "label_propagation"


def _check_damping(damping: float) -> None:
    if not 0.0 < damping < 1.0:
        raise ValueError("damping must be in (0, 1)")


# --------------------------------------------------------------------------- benefit rank


def benefit_rank(
    orders: pd.DataFrame | None,
    engagements: pd.DataFrame | None,
    streams: pd.DataFrame | None,
    *,
    damping: float = 0.85,
) -> pd.DataFrame:
    """PageRank and HITS on the graph of money and attention: who benefits.

    Parameters
    ----------
    orders : pandas.DataFrame or None
        Normalised ``orders``: edges buyer -> seller (amount), buyer -> creator
        (amount of attributed orders), seller -> creator (commission).
    engagements : pandas.DataFrame or None
        Normalised ``engagements``: edges account -> the stream's creator
        (one per event, gifts by amount).
    streams : pandas.DataFrame or None
        Normalised ``streams``, to find each stream's creator.
    damping : float
        PageRank damping factor.

    Returns
    -------
    pandas.DataFrame
        Columns ``account_id``, ``pagerank`` (sums to 1), ``hub``,
        ``authority`` (HITS, scaled to a maximum of 1), sorted by pagerank
        descending then account id. Edge weights are ``log1p`` of the totals
        per pair and relation.

    References
    ----------
    .. [1] Page, Brin, Motwani & Winograd, "The PageRank Citation Ranking:
       Bringing Order to the Web", Stanford InfoLab, 1999.
    .. [2] Kleinberg, "Authoritative Sources in a Hyperlinked Environment",
       JACM 46(5), 1999.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> orders = pd.DataFrame({"order_id": ["o1", "o2"], "buyer_id": ["b1", "b2"],
    ...     "seller_id": "s1", "product_id": "p", "amount": 10.0,
    ...     "status": "completed", "ts": t})
    >>> benefit_rank(orders, None, None)["account_id"].iloc[0]
    's1'
    """
    _check_damping(damping)
    cols = ["account_id", "pagerank", "hub", "authority"]
    parts: list[pd.DataFrame] = []
    if orders is not None and len(orders):
        o = orders.dropna(subset=["buyer_id", "seller_id"])
        amt = o["amount"].astype(float).fillna(0.0)
        parts.append(
            pd.DataFrame(
                {"s": o["buyer_id"].astype(str), "d": o["seller_id"].astype(str), "w": amt}
            ).assign(rel="order")
        )
        if "creator_id" in o.columns:
            a = o[o["creator_id"].notna()]
            aw = a["amount"].astype(float).fillna(0.0)
            parts.append(
                pd.DataFrame(
                    {"s": a["buyer_id"].astype(str), "d": a["creator_id"].astype(str), "w": aw}
                ).assign(rel="attributed")
            )
            if "commission" in a.columns:
                cw = a["commission"].astype(float).fillna(0.0)
                parts.append(
                    pd.DataFrame(
                        {"s": a["seller_id"].astype(str), "d": a["creator_id"].astype(str), "w": cw}
                    ).assign(rel="commission")
                )
    if (
        engagements is not None
        and len(engagements)
        and streams is not None
        and len(streams)
        and "creator_id" in streams.columns
    ):
        host = streams.drop_duplicates("stream_id").set_index("stream_id")["creator_id"]
        e = engagements.dropna(subset=["account_id", "stream_id"])
        cr = host.reindex(e["stream_id"]).to_numpy()
        gift = (
            e["amount"].astype(float).fillna(0.0).to_numpy()
            if "amount" in e.columns
            else np.zeros(len(e))
        )
        ew = pd.DataFrame({"s": e["account_id"].astype(str).to_numpy(), "d": cr, "w": 1.0 + gift})
        parts.append(ew.dropna(subset=["d"]).assign(d=lambda x: x["d"].astype(str), rel="engage"))
    if not parts:
        return pd.DataFrame(
            {c: pd.Series([], dtype=object if c == "account_id" else float) for c in cols}
        )
    edges = pd.concat(parts, ignore_index=True)
    edges = edges[edges["s"] != edges["d"]]
    accounts = pd.Index(sorted(set(edges["s"]) | set(edges["d"])))
    per_rel = edges.groupby(["s", "d", "rel"], sort=True)["w"].sum().reset_index()
    per_rel["w"] = np.log1p(per_rel["w"].to_numpy(dtype=float))
    agg = per_rel.groupby(["s", "d"], sort=True)["w"].sum()
    agg = agg[agg > 0]
    n = len(accounts)
    src = accounts.get_indexer(agg.index.get_level_values(0))
    dst = accounts.get_indexer(agg.index.get_level_values(1))
    g = ig.Graph(n=n, edges=np.column_stack([src, dst]), directed=True)
    g.es["weight"] = agg.to_numpy(dtype=float)
    if g.ecount():
        pr = np.asarray(g.pagerank(directed=True, damping=damping, weights="weight"))
        with warnings.catch_warnings():
            # igraph warns when many scores are zero (accounts that only buy or only sell)
            warnings.simplefilter("ignore", RuntimeWarning)
            hub = np.asarray(g.hub_score(weights="weight"))
            auth = np.asarray(g.authority_score(weights="weight"))
    else:
        pr = np.full(n, 1.0 / max(1, n))
        hub = np.zeros(n)
        auth = np.zeros(n)
    out = pd.DataFrame(
        {
            "account_id": accounts.to_numpy(dtype=object),
            "pagerank": np.round(pr, 12),
            "hub": np.round(np.clip(hub, 0.0, 1.0), 12),
            "authority": np.round(np.clip(auth, 0.0, 1.0), 12),
        }
    )
    return out.sort_values(["pagerank", "account_id"], ascending=[False, True]).reset_index(
        drop=True
    )


# --------------------------------------------------------------------------- propagation


def latest_labels(labels: pd.DataFrame | None) -> pd.Series:
    """The latest decision per subject: a Series label by subject id (sorted)."""
    if labels is None or not len(labels):
        return pd.Series([], dtype=object)
    lab = labels.dropna(subset=["subject_id", "label"])
    if "decided_at" in lab.columns:
        lab = lab.assign(_t=pd.to_datetime(lab["decided_at"], utc=True)).sort_values(
            ["subject_id", "_t"], kind="stable"
        )
    last = lab.groupby(lab["subject_id"].astype(str), sort=True)["label"].last()
    return last.astype(str)


def account_graph(
    *,
    identifiers: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    engagements: pd.DataFrame | None = None,
    extra_accounts: list[str] | tuple[str, ...] = (),
    max_accounts_per_identifier: int = 30,
    identifier_weight: float = 1.0,
    order_weight: float = 0.5,
    engagement_weight: float = 0.25,
    max_stream_engagers: int = 50,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
) -> tuple[pd.Index, pd.DataFrame]:
    """The undirected account graph used for label propagation.

    Returns the sorted account index and the edges ``a``, ``b`` (positions,
    a < b), ``weight`` and ``via`` (the relations behind the edge, joined by
    ``+``: ``identifier``, ``order``, ``co_engagement``), sorted by ``a`` then
    ``b``. Identifier links weigh ``identifier_weight * kind_weight / log2(n)``
    per shared identifier used by ``n`` accounts (a kind detectors do not know
    weighs ``other_identifier_weight``); order links
    ``order_weight * log1p(orders)``; co-engagement links
    ``engagement_weight / (n - 1)`` per stream with ``n`` engaged accounts,
    for streams with at most ``max_stream_engagers``.

    Accounts are coded once as integers in sorted order and the links are
    built and summed on those codes. An edge's weight is the sum of its
    links in a fixed order (identifiers by identifier, then orders, then
    co-engagement by the account's first engagement on the stream), so the
    same tables always give the same bits.
    """
    usage = identifier_usage(
        identifiers,
        max_accounts_per_identifier=max_accounts_per_identifier,
        other_weight=other_identifier_weight,
    )
    # relations present in the input, even when they link nobody
    any_relation = bool(len(usage)) or (orders is not None and bool(len(orders)))
    o = orders.dropna(subset=["buyer_id", "seller_id"]) if orders is not None else None
    if o is not None and not len(o):
        o = None
    e = engagements.dropna(subset=["account_id", "stream_id"]) if engagements is not None else None
    if e is not None and not len(e):
        e = None

    # every account id, coded once: code order is string order
    columns: list[pd.Series] = [pd.Series(list(map(str, extra_accounts)), dtype=object)]
    if len(usage):
        columns.append(usage["account_id"].astype(str))
    creator = None
    if o is not None:
        columns += [o["buyer_id"].astype(str), o["seller_id"].astype(str)]
        if "creator_id" in o.columns:
            creator = o[o["creator_id"].notna()]
            columns.append(creator["creator_id"].astype(str))
    if e is not None:
        eng_acc_code, eng_acc = pd.factorize(e["account_id"].astype(str))
        columns.append(pd.Series(np.asarray(eng_acc, dtype=object)))
    accounts = pd.Index(
        pd.concat([pd.Series(c.to_numpy(dtype=object)) for c in columns], ignore_index=True)
        .drop_duplicates()
        .sort_values()
        .to_numpy(dtype=object)
    )
    n_acc = max(1, len(accounts))

    def code(values: pd.Series) -> np.ndarray:
        return accounts.get_indexer(values.astype(str)).astype(np.int64)

    keys: list[np.ndarray] = []  # a * n_acc + b per link, a < b
    weights: list[np.ndarray] = []
    flags: list[np.ndarray] = []
    if len(usage):
        i, j = identifier_pair_rows(usage)
        acc = code(usage["account_id"])
        w = usage["weight"].to_numpy(dtype=float)
        keys.append(acc[i] * n_acc + acc[j])
        weights.append(identifier_weight * w[i])
        flags.append(np.full(len(i), _VIA_FLAG["identifier"], dtype=np.int64))
    if o is not None:
        ends = [(code(o["buyer_id"]), code(o["seller_id"]))]
        if creator is not None:
            ends.append((code(creator["buyer_id"]), code(creator["creator_id"])))
        x = np.concatenate([s for s, _ in ends])
        y = np.concatenate([d for _, d in ends])
        x, y = np.minimum(x, y)[x != y], np.maximum(x, y)[x != y]
        pair, cnt = np.unique(x * n_acc + y, return_counts=True)
        keys.append(pair)
        weights.append(order_weight * np.log1p(cnt.astype(float)))
        flags.append(np.full(len(pair), _VIA_FLAG["order"], dtype=np.int64))
    if e is not None:
        k, w = _co_engagement_links(
            accounts.get_indexer(pd.Index(eng_acc)).astype(np.int64)[eng_acc_code],
            pd.factorize(e["stream_id"].astype(str))[0].astype(np.int64),
            n_acc,
            engagement_weight=engagement_weight,
            max_stream_engagers=max_stream_engagers,
        )
        keys.append(k)
        weights.append(w)
        flags.append(np.full(len(k), _VIA_FLAG["co_engagement"], dtype=np.int64))
        any_relation = any_relation or bool(len(k))
    if not any_relation:
        idx = pd.Index(sorted(set(map(str, extra_accounts))), dtype=object)
        return idx, pd.DataFrame({"a": [], "b": [], "weight": [], "via": []})
    key = np.concatenate([np.zeros(0, dtype=np.int64), *keys])
    weight = np.concatenate([np.zeros(0, dtype=float), *weights])
    flag = np.concatenate([np.zeros(0, dtype=np.int64), *flags])
    positive = weight > 0
    key, weight, flag = key[positive], weight[positive], flag[positive]
    # sum per edge, each edge's links in the order they were listed
    summed = pd.Series(weight).groupby(key, sort=True).sum()
    edge_key = summed.index.to_numpy(dtype=np.int64)
    by_key = np.argsort(key, kind="stable")
    via = np.bitwise_or.reduceat(flag[by_key], group_starts(key[by_key])) if len(key) else flag
    a_code, b_code = edge_key // n_acc, edge_key % n_acc
    extra = accounts.get_indexer(pd.Index(list(map(str, extra_accounts)), dtype=object))
    linked = np.zeros(len(accounts), dtype=bool)
    linked[a_code] = True
    linked[b_code] = True
    linked[extra] = True
    used = np.flatnonzero(linked)
    nodes = pd.Index(accounts.to_numpy(dtype=object)[used], dtype=object)
    out = pd.DataFrame(
        {
            "a": np.searchsorted(used, a_code),
            "b": np.searchsorted(used, b_code),
            "weight": summed.to_numpy(dtype=float),
            "via": np.asarray([_VIA_NAME.get(f, "") for f in range(8)], dtype=object)[via],
        }
    )
    return nodes, out


def _co_engagement_links(
    account: np.ndarray,
    stream: np.ndarray,
    n_acc: int,
    *,
    engagement_weight: float,
    max_stream_engagers: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Co-engagement links from engagement rows given as account and stream codes.

    One link per pair of accounts engaged on the same stream with 2 to
    ``max_stream_engagers`` engaged accounts, weighing
    ``engagement_weight / (n - 1)``. Returns the pair keys
    (``a * n_acc + b``, a < b) and weights, ordered by the position of the
    first engagement of ``a`` on the stream.
    """
    # first engagement of each account on each stream, in engagement order
    first = ~pd.Series(account * (int(stream.max()) + 1) + stream).duplicated().to_numpy()
    account, stream = account[first], stream[first]
    size = np.bincount(stream)
    n = size[stream]
    rows = np.flatnonzero((n >= 2) & (n <= max_stream_engagers))
    rows = rows[np.argsort(stream[rows], kind="stable")]
    i, j = pairs_within_groups(stream[rows])
    i, j = rows[i], rows[j]
    a_first = account[i] < account[j]
    left = np.where(a_first, i, j)
    lo = np.minimum(account[i], account[j])
    hi = np.maximum(account[i], account[j])
    order = np.argsort(left, kind="stable")
    w = engagement_weight / (n[i].astype(float) - 1.0)
    return (lo * n_acc + hi)[order], w[order]


_VIA_FLAG = {"identifier": 1, "order": 2, "co_engagement": 4}
_VIA_NAME = {k: "+".join(n for n, f in _VIA_FLAG.items() if k & f) for k in range(1, 8)}


def _decade_scale(x: np.ndarray, decades: float) -> np.ndarray:
    top = float(x.max()) if len(x) else 0.0
    if top <= 0:
        return np.zeros_like(x)
    with np.errstate(divide="ignore"):
        lg = np.log10(np.where(x > 0, x / top, 1e-300))
    return np.clip(1.0 + lg / decades, 0.0, 1.0)


def propagate_labels(
    labels: pd.DataFrame,
    *,
    identifiers: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    engagements: pd.DataFrame | None = None,
    damping: float = 0.85,
    decades: float = 3.0,
    max_accounts_per_identifier: int = 30,
    identifier_weight: float = 1.0,
    order_weight: float = 0.5,
    engagement_weight: float = 0.25,
    max_stream_engagers: int = 50,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
) -> pd.DataFrame:
    """Trust, distrust and guilt of every account from investigator labels.

    Parameters
    ----------
    labels : pandas.DataFrame
        Normalised ``labels`` (subject_id, label, decided_at); the latest
        decision per subject counts. ``legit`` subjects seed trust,
        ``abusive`` subjects seed distrust.
    identifiers, orders, engagements : pandas.DataFrame, optional
        The tables the account graph is built from (see :func:`account_graph`).
    damping : float
        Probability of following a link rather than jumping back to a seed.
    decades : float
        Trust and distrust are scaled to [0, 1] over this many decades below
        their highest value (``1 + log10(x / max) / decades``, clipped).
    max_accounts_per_identifier, identifier_weight, order_weight, \
engagement_weight, max_stream_engagers, other_identifier_weight
        See :func:`account_graph`.

    Returns
    -------
    pandas.DataFrame
        Columns ``account_id``, ``trust``, ``distrust``, ``guilt`` (all in
        [0, 1]) and ``label`` (the seed label or None), for every account in
        the graph, sorted by guilt descending then account id. ``guilt`` is
        ``distrust * d / (d + t)`` where ``d`` and ``t`` are the raw scores
        per seed; it is 0 wherever no abusive seed reaches.

    References
    ----------
    .. [1] Gyöngyi, Garcia-Molina & Pedersen, "Combating Web Spam with
       TrustRank", VLDB 2004.
    .. [2] Krishnan & Raj, "Web Spam Detection with Anti-Trust Rank",
       AIRWeb 2006.
    .. [3] Haveliwala, "Topic-Sensitive PageRank", WWW 2002.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> ids = pd.DataFrame({"account_id": ["x", "y", "y", "z"],
    ...     "kind": "device", "value": ["d1", "d1", "d2", "d2"], "first_seen": t})
    >>> labels = pd.DataFrame({"subject_id": ["x"], "label": ["abusive"], "decided_at": [t]})
    >>> out = propagate_labels(labels, identifiers=ids)
    >>> out["account_id"].tolist()[-1]  # z is two hops away from the abuser
    'z'
    >>> bool(out["guilt"].between(0, 1).all())
    True
    """
    _check_damping(damping)
    seeds = latest_labels(labels)
    nodes, edges = account_graph(
        identifiers=identifiers,
        orders=orders,
        engagements=engagements,
        extra_accounts=tuple(seeds.index),
        max_accounts_per_identifier=max_accounts_per_identifier,
        identifier_weight=identifier_weight,
        order_weight=order_weight,
        engagement_weight=engagement_weight,
        max_stream_engagers=max_stream_engagers,
        other_identifier_weight=other_identifier_weight,
    )
    return _scores(nodes, edges, seeds, damping=damping, decades=decades)


def _node_scores(
    nodes: pd.Index, edges: pd.DataFrame, seeds: pd.Series, *, damping: float, decades: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.Series]:
    """Trust, distrust and guilt (rounded to 9 decimals) and the seed label, in node order."""
    n = len(nodes)
    g = ig.Graph(n=n, directed=False)
    g.add_edges(edges[["a", "b"]].to_numpy(dtype=np.int64))
    weight = edges["weight"].to_numpy(dtype=float).tolist()
    lab = seeds.reindex(nodes)

    def ppr(which: str) -> tuple[np.ndarray, int]:
        mask = (lab == which).to_numpy()
        k = int(mask.sum())
        if k == 0:
            return np.zeros(n), 0
        reset = (mask / k).tolist()
        kw: dict[str, Any] = {"weights": weight} if g.ecount() else {}
        pr = g.personalized_pagerank(directed=False, damping=damping, reset=reset, **kw)
        return np.asarray(pr, dtype=float), k

    t_raw, kt = ppr("legit")
    d_raw, kd = ppr("abusive")
    trust = _decade_scale(t_raw, decades)
    distrust = _decade_scale(d_raw, decades)
    d_per = d_raw * (kd + kt) / max(1, kd)
    t_per = t_raw * (kd + kt) / max(1, kt)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(d_per + t_per > 0, d_per / (d_per + t_per), 0.0)
    guilt = np.clip(distrust * share, 0.0, 1.0)
    return np.round(trust, 9), np.round(distrust, 9), np.round(guilt, 9), lab


def _scores(
    nodes: pd.Index, edges: pd.DataFrame, seeds: pd.Series, *, damping: float, decades: float
) -> pd.DataFrame:
    cols = ["account_id", "trust", "distrust", "guilt", "label"]
    if len(nodes) == 0:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    trust, distrust, guilt, lab = _node_scores(
        nodes, edges, seeds, damping=damping, decades=decades
    )
    # nodes are sorted: position breaks ties in guilt as the account id would
    order = np.lexsort((np.arange(len(nodes)), -guilt))
    out = pd.DataFrame(
        {
            "account_id": nodes.to_numpy(dtype=object)[order],
            "trust": trust[order],
            "distrust": distrust[order],
            "guilt": guilt[order],
            "label": lab.astype(object).where(lab.notna(), None).to_numpy()[order],
        }
    )
    return out


def detect_guilt_by_association(
    labels: pd.DataFrame | None,
    *,
    identifiers: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    engagements: pd.DataFrame | None = None,
    min_score: float = 0.6,
    damping: float = 0.85,
    decades: float = 3.0,
    max_accounts_per_identifier: int = 30,
    identifier_weight: float = 1.0,
    order_weight: float = 0.5,
    engagement_weight: float = 0.25,
    max_stream_engagers: int = 50,
    max_evidence: int = 50,
    standalone_labels: int | None = None,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Unlabelled accounts strongly linked to labelled abusers, as findings.

    Parameters
    ----------
    labels : pandas.DataFrame or None
        Normalised ``labels``. With no ``abusive`` label there is nothing to
        propagate and the result is empty.
    identifiers, orders, engagements : pandas.DataFrame, optional
        The tables the account graph is built from.
    min_score : float
        Unlabelled accounts with guilt at least this are suspects.
    damping, decades, max_accounts_per_identifier, identifier_weight, \
order_weight, engagement_weight, max_stream_engagers, other_identifier_weight
        See :func:`propagate_labels`.
    max_evidence : int
        At most this many rows per evidence list (totals under ``counts``).
    standalone_labels : int or None
        A group may stand alone in the queue (signal ``stands_alone`` 1, see
        :mod:`ringscope.algorithms.queue`) only when it holds at least this many
        accounts labelled abusive, every one of its unlabelled accounts is linked
        directly to two of them or more, and none of its accounts is linked to an
        account labelled legit. Labels are a noisy sample of past decisions: one
        wrong ``abusive`` label makes a household look guilty, several labels
        agreeing on the same accounts rarely are all wrong. Other groups only add
        their accounts and guilt to the cases they overlap. None (the default): no
        group stands alone. On 24 tuning worlds (strict evaluation) the groups that
        met the rule with 2 or 3 labels were pieces of bigger rings or mixed two
        rings (1 right of 8 with 2 labels, none of 2 with 3): the accounts nearest to
        labels are rarely most of a ring.
    seed : int, numpy.random.Generator or None
        Accepted for the common detector signature; the method is deterministic.

    Returns
    -------
    list of Finding
        Kind ``label_propagation``: one per connected group of suspects and
        the labelled abusers they link to (roles ``associate`` and
        ``labelled_abusive``), ranked by score then id. Signals say how many
        labels the run used (``labels_used``), how many abusive and legit labels
        the group is linked to, and whether it may stand alone.

    References
    ----------
    .. [1] Gyöngyi, Garcia-Molina & Pedersen, "Combating Web Spam with
       TrustRank", VLDB 2004.
    .. [2] Krishnan & Raj, "Web Spam Detection with Anti-Trust Rank",
       AIRWeb 2006.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> ids = pd.DataFrame({"account_id": ["x", "y", "x", "y"],
    ...     "kind": ["device", "device", "payment", "payment"],
    ...     "value": ["d1", "d1", "p1", "p1"], "first_seen": t})
    >>> labels = pd.DataFrame({"subject_id": ["x"], "label": ["abusive"], "decided_at": [t]})
    >>> [f.member_ids for f in detect_guilt_by_association(labels, identifiers=ids, seed=0)]
    [('x', 'y')]
    """
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")
    params: dict[str, Any] = {
        "min_score": min_score,
        "damping": damping,
        "decades": decades,
        "max_accounts_per_identifier": max_accounts_per_identifier,
        "identifier_weight": identifier_weight,
        "order_weight": order_weight,
        "engagement_weight": engagement_weight,
        "max_stream_engagers": max_stream_engagers,
        "standalone_labels": standalone_labels,
        "other_identifier_weight": other_identifier_weight,
        "seed": seed if isinstance(seed, int) else None,
    }
    info = DetectorInfo(name=NAME, version=VERSION, params=params)
    seeds = latest_labels(labels)
    if not (seeds == "abusive").any():
        return []
    graph_kw: dict[str, Any] = {
        "max_accounts_per_identifier": max_accounts_per_identifier,
        "identifier_weight": identifier_weight,
        "order_weight": order_weight,
        "engagement_weight": engagement_weight,
        "max_stream_engagers": max_stream_engagers,
        "other_identifier_weight": other_identifier_weight,
    }
    _check_damping(damping)
    nodes, edges = account_graph(
        identifiers=identifiers,
        orders=orders,
        engagements=engagements,
        extra_accounts=tuple(seeds.index),
        **graph_kw,
    )
    return guilt_findings(
        labels,
        nodes,
        edges,
        info=info,
        min_score=min_score,
        damping=damping,
        decades=decades,
        max_evidence=max_evidence,
        standalone_labels=standalone_labels,
    )


def guilt_findings(
    labels: pd.DataFrame | None,
    nodes: pd.Index,
    edges: pd.DataFrame,
    *,
    info: DetectorInfo,
    min_score: float,
    damping: float,
    decades: float,
    max_evidence: int,
    standalone_labels: int | None = None,
) -> list[Finding]:
    """The findings of :func:`detect_guilt_by_association` from its account graph.

    ``nodes`` and ``edges`` are what :func:`account_graph` returns for the
    labels' subjects as extra accounts; the Spark engine builds them on the
    cluster and hands them here.
    """
    seeds = latest_labels(labels)
    if not (seeds == "abusive").any() or not len(nodes):
        return []
    _, _, guilt, lab = _node_scores(nodes, edges, seeds, damping=damping, decades=decades)
    is_abusive = (lab == "abusive").to_numpy(dtype=bool)
    is_legit = (lab == "legit").to_numpy(dtype=bool)
    n_labels = int(seeds.isin(["abusive", "legit"]).sum())
    suspect = (lab.isna().to_numpy() & (guilt >= min_score)).astype(bool)
    keep = is_abusive | suspect
    if not suspect.any():
        return []
    ea_all = edges["a"].to_numpy(dtype=int)
    eb_all = edges["b"].to_numpy(dtype=int)
    e = edges[keep[ea_all] & keep[eb_all]]
    n = len(nodes)
    # per account: linked to a legit label; number of abusive labels it is linked to
    legit_nb = np.zeros(n, dtype=bool)
    legit_nb[ea_all[is_legit[eb_all]]] = True
    legit_nb[eb_all[is_legit[ea_all]]] = True
    abusive_nb = np.bincount(ea_all[is_abusive[eb_all]], minlength=n) + np.bincount(
        eb_all[is_abusive[ea_all]], minlength=n
    )
    ea = e["a"].to_numpy(dtype=int)
    eb = e["b"].to_numpy(dtype=int)
    adj = sparse.coo_matrix((np.ones(len(e)), (ea, eb)), shape=(n, n)).tocsr()
    _, comp = connected_components(adj, directed=False)
    # kept nodes by component (in node order), links by component (heaviest first)
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(comp[kept], kind="stable")]
    kept_comp = comp[kept]
    e_weight = e["weight"].to_numpy(dtype=float)
    e_comp = comp[ea]
    by_comp = np.lexsort((eb, ea, -e_weight, e_comp))
    e_sorted = e.iloc[by_comp]
    e_comp_sorted = e_comp[by_comp]
    lab_rows = (
        labels.assign(subject_id=labels["subject_id"].astype(str))
        if labels is not None
        else pd.DataFrame()
    )
    label_of: dict[str, pd.DataFrame] = {}
    if len(lab_rows):
        abusive_ids = set(nodes.to_numpy(dtype=object)[is_abusive].tolist())
        lr_all = lab_rows.sort_values(["subject_id", "decided_at"], kind="stable")
        lr_all = lr_all[lr_all["subject_id"].isin(abusive_ids)]
        label_of = {str(k): g for k, g in lr_all.groupby("subject_id", sort=False)}
    findings: list[Finding] = []
    for c in np.unique(comp[suspect]).tolist():
        first, last = np.searchsorted(kept_comp, [c, c + 1])
        grp = kept[first:last]
        sus = [int(v) for v in grp if suspect[v]]
        abu = [int(v) for v in grp if is_abusive[v]]
        if not abu:
            continue  # only suspects linked to each other through nobody labelled
        top = sorted((guilt[v] for v in sus), reverse=True)[:3]
        score = float(np.mean(top))
        members = [Member(str(nodes[v]), "associate", round(float(guilt[v]), 6)) for v in sus]
        members += [Member(str(nodes[v]), "labelled_abusive", 1.0) for v in abu]
        lo, hi = np.searchsorted(e_comp_sorted, [c, c + 1])
        ge = e_sorted.iloc[lo:hi]
        link_rows = [
            {
                "a": str(nodes[int(r.a)]),
                "b": str(nodes[int(r.b)]),
                "weight": round(float(r.weight), 6),
                "via": str(r.via),
            }
            for r in ge.head(max_evidence).itertuples(index=False)
        ]
        abu_ids = sorted({str(nodes[v]) for v in abu})
        label_rows: list[dict[str, Any]] = []
        if len(lab_rows):
            got = [label_of[a] for a in abu_ids if a in label_of]
            lr = pd.concat(got) if got else lab_rows.iloc[:0]
            for r in lr.head(max_evidence).itertuples(index=False):
                label_rows.append(
                    {
                        "subject_id": str(r.subject_id),
                        "label": str(r.label),
                        "decided_at": iso(r.decided_at),
                        "source": None
                        if "source" not in lr.columns or pd.isna(getattr(r, "source", None))
                        else str(r.source),
                    }
                )
        vias = sorted({v for x in ge["via"] for v in str(x).split("+")})
        legit_ties = int(legit_nb[grp].sum())
        multi = float(np.mean(abusive_nb[sus] >= 2)) if sus else 0.0
        alone = (
            standalone_labels is not None
            and len(abu) >= standalone_labels
            and legit_ties == 0
            and multi >= 1.0
        )
        signals = [
            Signal("top_guilt", round(score, 6), min_score, 1.0),
            Signal("labelled_abusers_linked", float(len(abu)), float(standalone_labels or 0), 0.0),
            Signal("legit_labels_linked", float(legit_ties), 0.0, 0.0),
            Signal("associates_tied_to_two_labels", round(multi, 6), 1.0, 0.0),
            Signal("labels_used", float(n_labels), 1.0, 0.0),
            Signal("stands_alone", 1.0 if alone else 0.0, 1.0, 0.0),
        ]
        text = (
            f"{len(sus)} unlabelled account(s) are closely linked to {len(abu)} account(s) "
            f"labelled abusive by investigators (through {', '.join(vias) or 'links'}): guilt "
            f"from personalised PageRank from the abusive labels, against trust from legit "
            f"labels, reaches {max(top):.2f} (threshold {min_score:.2f})."
        )
        findings.append(
            Finding.build(
                kind=KIND,
                score=score,
                members=members,
                signals=signals,
                explanation=text,
                detector=info,
                evidence={
                    "links": link_rows,
                    "labels": label_rows,
                    "counts": [
                        {"source": "links", "shown": len(link_rows), "total": len(ge)},
                        {"source": "labels", "shown": len(label_rows), "total": len(abu_ids)},
                    ],
                },
            )
        )
    return rank(findings)
