"""Money cycles: money that goes round a small group of accounts and comes back.

The money graph has an edge buyer -> seller for every order (its amount) and
seller -> creator for every affiliate commission. Edges are aggregated per
pair of accounts; an edge counts when it carries at least ``min_edge_orders``
transfers and ``min_amount`` in total (one-off purchases close no cycle worth
reporting). Hubs (accounts with more than ``max_degree`` counterparties on
those edges, such as a seller everybody buys from) are left out. Strongly
connected components of what remains (scipy, on the whole graph) are the
candidates; inside each small component, networkx enumerates the simple cycles
of ``min_length`` to ``max_length`` accounts (two-account back-and-forth is
ordinary trade). A cycle counts when it was completed at least ``min_rounds``
times, each round within ``max_span_days``. The accounts on counted cycles of
one component form a finding, scored on rounds, the share of the accounts'
outgoing money that stays in the group, round speed, amounts against the
marketplace's typical order, and new accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import iso
from ringscope.algorithms.identifiers import (
    account_created,
    as_float,
    reference_time,
    weighted_score,
)
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, rank

NAME = "money_cycles"
VERSION = "1.0.0"
KIND = "money_cycle"


def _check(min_length: int, max_length: int, min_rounds: int, min_score: float) -> None:
    if min_length < 2:
        raise ValueError("min_length must be at least 2")
    if max_length < min_length:
        raise ValueError("max_length must be at least min_length")
    if max_length > 10:
        raise ValueError("max_length above 10 makes cycle enumeration explode; use at most 10")
    if min_rounds < 1:
        raise ValueError("min_rounds must be at least 1")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")


@dataclass(frozen=True)
class Transfers:
    """The money graph as arrays, sorted by time, then order id, then ``via``.

    ``src`` and ``dst`` are codes into ``accounts`` (the sorted distinct account ids);
    ``t_us`` is microseconds since the epoch (UTC); ``via`` is ``order`` (buyer -> seller)
    or ``commission`` (seller -> creator); ``row`` is the position of the transfer's order
    in the ``orders`` table given, whose ids :meth:`order_ids` returns.
    """

    accounts: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    amount: np.ndarray
    t_us: np.ndarray
    via: np.ndarray
    row: np.ndarray
    orders: pd.Series

    def __len__(self) -> int:
        return len(self.src)

    def order_ids(self, k: np.ndarray | list[int] | None = None) -> np.ndarray:
        """The order ids of transfers ``k`` (all by default), as strings."""
        if k is None:
            return np.asarray(self.orders.to_numpy(dtype=object)[self.row], dtype=object)
        rows = self.row[np.asarray(k, dtype=np.int64)]
        return np.asarray(self.orders.take(rows).to_numpy(dtype=object), dtype=object)


def _sorted_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` (-1 for missing) in the sorted order of their distinct values."""
    codes, uniques = pd.factorize(values)
    order = np.asarray(pc.array_sort_indices(pa.array(np.asarray(uniques, dtype=object))))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    out = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
    return out, np.asarray(uniques, dtype=object)[order]


def transfer_arrays(
    orders: pd.DataFrame | None, *, statuses: tuple[str, ...] = ("completed",)
) -> Transfers:
    """:func:`money_transfers` as :class:`Transfers` arrays (no per-row objects)."""
    empty_i = np.zeros(0, np.int64)
    if orders is None or not len(orders):
        none = pd.Series([], dtype=object)
        return Transfers(np.zeros(0, object), empty_i, empty_i, np.zeros(0), empty_i,
                         np.zeros(0, object), empty_i, none)  # fmt: skip
    n_all = len(orders)
    cols = [orders["buyer_id"], orders["seller_id"]]
    paid = np.zeros(n_all, dtype=bool)
    if "creator_id" in orders.columns and "commission" in orders.columns:
        paid = (orders["creator_id"].notna() & (orders["commission"].astype(float) > 0)).to_numpy()
        cols.append(orders["creator_id"])
    codes, accounts = _sorted_codes(pd.concat(cols, ignore_index=True))
    buyer, seller = codes[:n_all], codes[n_all : 2 * n_all]
    ok = orders["status"].astype(str).isin(statuses).to_numpy() & (buyer >= 0) & (seller >= 0)
    t_all = pd.to_datetime(orders["ts"], utc=True).dt.as_unit("us").astype("int64").to_numpy()
    sale = np.flatnonzero(ok)
    fee = np.flatnonzero(ok & paid)
    rows = np.concatenate([sale, fee])
    src = np.concatenate([buyer[sale], seller[fee]])
    dst = np.concatenate([seller[sale], codes[2 * n_all :][fee] if len(fee) else fee])
    amount = np.concatenate(
        [
            orders["amount"].astype(float).fillna(0.0).to_numpy()[sale],
            orders["commission"].astype(float).to_numpy()[fee] if len(fee) else np.zeros(0),
        ]
    )
    is_order = np.repeat([True, False], [len(sale), len(fee)])
    keep = src != dst
    rows, src, dst, amount, is_order = (
        rows[keep],
        src[keep],
        dst[keep],
        amount[keep],
        is_order[keep],
    )
    t = t_all[rows]
    # order ids break ties of time: rank them only where two transfers share an instant
    by_t = np.argsort(t, kind="stable")
    same = t[by_t][1:] == t[by_t][:-1]
    tied = np.zeros(len(t), dtype=bool)
    tied[by_t[1:][same]] = True
    tied[by_t[:-1][same]] = True
    rank = np.zeros(len(t), dtype=np.int64)
    if tied.any():
        rank[tied] = _sorted_codes(orders["order_id"].iloc[rows[tied]])[0]
    order = np.lexsort((is_order, rank, t))
    return Transfers(
        accounts=accounts,
        src=src[order],
        dst=dst[order],
        amount=amount[order],
        t_us=t[order],
        via=np.where(is_order[order], "order", "commission").astype(object),
        row=rows[order],
        orders=orders["order_id"].astype(str),
    )


def money_transfers(
    orders: pd.DataFrame, *, statuses: tuple[str, ...] = ("completed",)
) -> pd.DataFrame:
    """The money graph as transfers: ``src``, ``dst``, ``amount``, ``ts``, ``order_id``, ``via``.

    One row buyer -> seller per order with a status in ``statuses`` and one
    row seller -> creator per such order with a positive commission. Rows
    are sorted by ``ts`` then ``order_id`` then ``via``.
    """
    cols = ["src", "dst", "amount", "ts", "order_id", "via"]
    if orders is None or not len(orders):
        return pd.DataFrame({c: [] for c in cols})
    tr = transfer_arrays(orders, statuses=statuses)
    return pd.DataFrame(
        {
            "src": tr.accounts[tr.src],
            "dst": tr.accounts[tr.dst],
            "amount": tr.amount,
            "ts": pd.to_datetime(tr.t_us, unit="us", utc=True),
            "order_id": tr.order_ids(),
            "via": tr.via,
        }
    )


def _key(k: Any) -> tuple[int, int]:
    return int(k[0]), int(k[1])


def _rounds(edge_times: list[np.ndarray], span: float) -> tuple[int, list[tuple[int, int]]]:
    """Completed rounds of a cycle: one transfer on every hop, all within ``span`` seconds.

    The order of the transfers within a round does not matter (money may be
    paid forward or paid back first). Greedy and non-overlapping: each
    transfer is used at most once, earliest first. Returns the number of
    rounds and their (start, end) times in seconds.
    """
    ptr = [0] * len(edge_times)
    out: list[tuple[int, int]] = []
    while all(p < len(a) for p, a in zip(ptr, edge_times, strict=True)):
        heads = [int(a[p]) for p, a in zip(ptr, edge_times, strict=True)]
        start = min(heads)
        if max(heads) - start <= span:
            out.append((start, max(heads)))
            ptr = [p + 1 for p in ptr]
        else:
            # the earliest head cannot be part of any round: drop it
            k = heads.index(start)
            ptr[k] += 1
    return len(out), out


def detect_money_cycles(
    orders: pd.DataFrame,
    *,
    accounts: pd.DataFrame | None = None,
    min_length: int = 3,
    max_length: int = 8,
    min_amount: float = 0.0,
    min_edge_orders: int = 2,
    min_rounds: int = 2,
    max_span_days: float = 7.0,
    max_degree: int = 30,
    max_component_size: int = 300,
    max_cycles: int = 2000,
    statuses: tuple[str, ...] = ("completed",),
    new_account_days: float = 30.0,
    min_score: float = 0.5,
    max_evidence: int = 50,
    as_of: datetime | None = None,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Find short cycles of money among accounts, completed repeatedly and quickly.

    Parameters
    ----------
    orders : pandas.DataFrame
        Normalised ``orders`` table.
    accounts : pandas.DataFrame, optional
        Normalised ``accounts`` table, for account ages.
    min_length, max_length : int
        Cycle lengths considered (accounts on the cycle).
    min_amount : float
        An edge (pair of accounts) counts only with at least this much money in total.
    min_edge_orders : int
        ... and at least this many transfers.
    min_rounds : int
        A cycle counts when completed at least this many times.
    max_span_days : float
        One round of a cycle must complete within this many days.
    max_degree : int
        Accounts with more counterparties than this (on counted edges) are
        hubs and are left out.
    max_component_size : int
        Strongly connected components larger than this are not searched for
        cycles (a well-mixed marketplace, not a ring).
    max_cycles : int
        At most this many cycles are enumerated per component.
    statuses : tuple of str
        Order statuses that move money (default: completed only).
    new_account_days : float
        Accounts at most this many days old at ``as_of`` count as new.
    min_score : float
        Groups scoring below this are not reported.
    max_evidence : int
        At most this many rows per evidence list (totals under ``counts``).
    as_of : datetime, optional
        Reference time for ages (default: the latest order time).
    seed : int, numpy.random.Generator or None
        Accepted for the common detector signature; the method is deterministic.

    Returns
    -------
    list of Finding
        Kind ``money_cycle``, ranked by score then id.

    References
    ----------
    .. [1] Tarjan, "Depth-First Search and Linear Graph Algorithms", SIAM J.
       Computing 1(2), 1972 (strongly connected components).
    .. [2] Gupta & Suzumura, "Finding All Bounded-Length Simple Cycles in a
       Directed Graph", arXiv:2105.10094, 2021 (``networkx.simple_cycles``).
    .. [3] Qiu et al., "Real-time Constrained Cycle Detection in Large Dynamic
       Graphs", VLDB 2018 (cycles as a fraud pattern in payments).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-02-01", tz="UTC")
    >>> hops = [("A", "B"), ("B", "C"), ("C", "A")] * 3
    >>> orders = pd.DataFrame({
    ...     "order_id": [f"o{i}" for i in range(9)],
    ...     "buyer_id": [a for a, _ in hops], "seller_id": [b for _, b in hops],
    ...     "product_id": "p", "amount": 500.0, "status": "completed",
    ...     "ts": [t + pd.Timedelta(hours=i) for i in range(9)]})
    >>> [f.member_ids for f in detect_money_cycles(orders, seed=0)]
    [('A', 'B', 'C')]
    """
    _check(min_length, max_length, min_rounds, min_score)
    params: dict[str, Any] = {
        "min_length": min_length,
        "max_length": max_length,
        "min_amount": min_amount,
        "min_edge_orders": min_edge_orders,
        "min_rounds": min_rounds,
        "max_span_days": max_span_days,
        "max_degree": max_degree,
        "max_component_size": max_component_size,
        "max_cycles": max_cycles,
        "statuses": list(statuses),
        "new_account_days": new_account_days,
        "min_score": min_score,
        "as_of": iso(as_of) if as_of is not None else None,
        "seed": seed if isinstance(seed, int) else None,
    }
    info = DetectorInfo(name=NAME, version=VERSION, params=params)
    if orders is None or not len(orders):
        return []
    tr = money_transfers(orders, statuses=statuses)
    if not len(tr):
        return []
    now = reference_time((orders, "ts"), as_of=as_of)
    typical = float(tr.loc[tr["via"] == "order", "amount"].median()) if len(tr) else math.nan
    codes, names = pd.factorize(pd.concat([tr["src"], tr["dst"]], ignore_index=True), sort=True)
    n_tr = len(tr)
    agg = (
        pd.DataFrame({"s": codes[:n_tr], "d": codes[n_tr:], "amount": tr["amount"].to_numpy()})
        .groupby(["s", "d"], sort=True)
        .agg(cnt=("amount", "size"), tot=("amount", "sum"))
    )
    edges = pd.DataFrame(
        {
            "src": np.asarray(names, dtype=object)[agg.index.get_level_values("s")],
            "dst": np.asarray(names, dtype=object)[agg.index.get_level_values("d")],
            "cnt": agg["cnt"].to_numpy(),
            "tot": agg["tot"].to_numpy(),
        }
    )
    cand = candidate_edges(
        edges,
        min_length=min_length,
        min_amount=min_amount,
        min_edge_orders=min_edge_orders,
        max_degree=max_degree,
        max_component_size=max_component_size,
    )
    if not len(cand):
        return []
    created = account_created(accounts)
    return cycle_findings(
        tr[tr["src"].isin(pd.unique(cand["src"]))],
        cand,
        typical=typical,
        now=now,
        created=created,
        know_accounts=len(created) > 0,
        info=info,
        min_length=min_length,
        max_length=max_length,
        min_rounds=min_rounds,
        max_span_days=max_span_days,
        max_cycles=max_cycles,
        new_account_days=new_account_days,
        min_score=min_score,
        max_evidence=max_evidence,
    )


def candidate_edges(
    edges: pd.DataFrame,
    *,
    min_length: int,
    min_amount: float,
    min_edge_orders: int,
    max_degree: int,
    max_component_size: int,
) -> pd.DataFrame:
    """The money graph's edges that may lie on a counted cycle, by component.

    ``edges`` holds one row per pair of accounts: ``src``, ``dst``, ``cnt``
    (transfers) and ``tot`` (money). An edge counts with ``min_edge_orders``
    transfers and ``min_amount`` money; accounts with more than
    ``max_degree`` counted edges are hubs and left out; what remains is split
    into strongly connected components, and the edges inside components of
    ``min_length`` to ``max_component_size`` accounts are returned as
    ``src``, ``dst``, ``comp`` (a label per component), ordered by ``src``
    then ``dst``.
    """
    empty = pd.DataFrame({"src": [], "dst": [], "comp": []})
    e = edges[(edges["cnt"] >= min_edge_orders) & (edges["tot"] >= min_amount)]
    if not len(e):
        return empty
    m = len(e)
    codes, names = pd.factorize(
        pd.concat([e["src"], e["dst"]], ignore_index=True).astype(str), sort=True
    )
    es, ed = codes[:m], codes[m:]
    o = np.lexsort((ed, es))
    es, ed = es[o], ed[o]
    n = len(names)
    # hubs: many distinct counterparties on counted edges
    deg = np.bincount(np.concatenate([es, ed]), minlength=n)
    keep = (deg[es] <= max_degree) & (deg[ed] <= max_degree)
    es, ed = es[keep], ed[keep]
    if not len(es):
        return empty
    graph = sparse.coo_matrix((np.ones(len(es)), (es, ed)), shape=(n, n)).tocsr()
    _, comp = connected_components(graph, directed=True, connection="strong")
    sizes = np.bincount(comp, minlength=int(comp.max()) + 1)
    same = comp[es] == comp[ed]
    es, ed = es[same], ed[same]
    ok_comp = (sizes >= min_length) & (sizes <= max_component_size)
    sel = ok_comp[comp[es]]
    es, ed = es[sel], ed[sel]
    ids = np.asarray(names, dtype=object)
    return pd.DataFrame({"src": ids[es], "dst": ids[ed], "comp": comp[es].astype(np.int64)})


def cycle_findings(
    tr: pd.DataFrame,
    cand: pd.DataFrame,
    *,
    typical: float,
    now: pd.Timestamp,
    created: pd.Series,
    know_accounts: bool,
    info: DetectorInfo,
    min_length: int,
    max_length: int,
    min_rounds: int,
    max_span_days: float,
    max_cycles: int,
    new_account_days: float,
    min_score: float,
    max_evidence: int,
) -> list[Finding]:
    """The findings of :func:`detect_money_cycles` from its candidate edges.

    ``cand`` is what :func:`candidate_edges` returns; ``tr`` holds, in the
    order :func:`money_transfers` gives, at least every transfer whose
    ``src`` is an account of ``cand`` (the transfers of its edges, and all
    the money these accounts paid out). ``typical`` is the median amount of
    all order transfers, ``created`` the accounts' creation times
    (:func:`~ringscope.algorithms.identifiers.account_created`, at least for the
    accounts of ``cand``); with ``know_accounts`` (an accounts table was given)
    the explanation counts the new accounts.
    """
    n_tr, n_e = len(tr), len(cand)
    codes, names = pd.factorize(
        pd.concat([tr["src"], tr["dst"], cand["src"], cand["dst"]], ignore_index=True),
        sort=True,
    )
    tr = tr.assign(s=codes[:n_tr], d=codes[n_tr : 2 * n_tr])
    es = codes[2 * n_tr : 2 * n_tr + n_e]
    ed = codes[2 * n_tr + n_e :]
    edge_comp = cand["comp"].to_numpy(dtype=np.int64)
    tsec = (tr["ts"].astype("int64") // 1_000_000).to_numpy()
    tr = tr.assign(t=tsec)
    edge_set = pd.MultiIndex.from_arrays([es, ed])
    tr_e = tr.set_index(["s", "d"])
    tr_e = tr_e[tr_e.index.isin(edge_set)].sort_index(kind="stable")
    times: dict[tuple[int, int], np.ndarray] = {
        _key(k): np.sort(g["t"].to_numpy()) for k, g in tr_e.groupby(level=[0, 1], sort=True)
    }
    span = max_span_days * 86400.0
    out_money = tr.groupby("s")["amount"].sum()
    findings: list[Finding] = []
    for c in np.unique(edge_comp):
        m = edge_comp == c
        g = nx.DiGraph()
        g.add_edges_from(zip(es[m].tolist(), ed[m].tolist(), strict=True))
        cycles: list[dict[str, Any]] = []
        for k, cyc in enumerate(nx.simple_cycles(g, length_bound=max_length)):
            if k >= max_cycles:
                break
            if len(cyc) < min_length:
                continue
            # canonical rotation: start at the smallest node
            r = cyc.index(min(cyc))
            cyc = cyc[r:] + cyc[:r]
            hops = [(cyc[i], cyc[(i + 1) % len(cyc)]) for i in range(len(cyc))]
            best = _rounds([times[e] for e in hops], span)
            if best[0] >= min_rounds:
                cycles.append({"nodes": cyc, "hops": hops, "rounds": best[0], "spans": best[1]})
        if not cycles:
            continue
        nodes = sorted({v for cy in cycles for v in cy["nodes"]})
        ids = [str(names[v]) for v in nodes]
        hopset = {h for cy in cycles for h in cy["hops"]}
        in_group = tr[tr["s"].isin(nodes) & tr["d"].isin(nodes)]
        on_cycle = in_group[
            pd.MultiIndex.from_arrays([in_group["s"], in_group["d"]]).isin(list(hopset))
        ]
        flow_share = float(in_group["amount"].sum()) / max(
            1e-9, float(out_money.reindex(nodes).fillna(0.0).sum())
        )
        max_rounds = max(cy["rounds"] for cy in cycles)
        spans = np.array([e - s for cy in cycles for s, e in cy["spans"]], dtype=float)
        med_span_h = float(np.median(spans)) / 3600.0
        speed = 1.0 - min(1.0, float(np.median(spans)) / span) if span > 0 else 0.0
        med_amount = float(on_cycle["amount"].median())
        amount_ratio = med_amount / typical if typical and typical > 0 else 0.0
        cr = created.reindex(ids)
        new = ((now - cr).dt.total_seconds() / 86400.0 <= new_account_days).fillna(False)
        parts = [
            ("completed_rounds", float(max_rounds), 3.0, 0.3),
            ("in_group_flow_share", flow_share, 0.5, 0.3),
            ("round_speed", speed, 0.5, 0.15),
            ("amount_vs_typical_order", amount_ratio, 2.0, 0.15),
            ("new_account_share", float(new.mean()), 0.5, 0.1),
        ]
        score, signals = weighted_score(parts)
        if score < min_score:
            continue
        on_count = {v: 0 for v in nodes}
        for cy in cycles:
            for v in cy["nodes"]:
                on_count[v] += cy["rounds"]
        top = max(on_count.values())
        members = [
            Member(
                account_id=str(names[v]),
                role="account",
                score=round(min(1.0, score * (0.6 + 0.4 * on_count[v] / top)), 6),
            )
            for v in nodes
        ]
        bens = sorted({str(names[d]) for d in on_cycle.loc[on_cycle["via"] == "commission", "d"]})
        cyc_rows: list[dict[str, Any]] = sorted(
            (
                {
                    "path": [str(names[v]) for v in cy["nodes"]] + [str(names[cy["nodes"][0]])],
                    "rounds": int(cy["rounds"]),
                    "first_round_start": iso(pd.Timestamp(cy["spans"][0][0], unit="s", tz="UTC")),
                    "last_round_end": iso(pd.Timestamp(cy["spans"][-1][1], unit="s", tz="UTC")),
                }
                for cy in cycles
            ),
            key=lambda r: (-r["rounds"], len(r["path"]), r["path"]),
        )
        order_rows = [
            {
                "order_id": r.order_id,
                "from": str(r.src),
                "to": str(r.dst),
                "via": str(r.via),
                "amount": as_float(r.amount),
                "ts": iso(r.ts),
            }
            for r in on_cycle.head(max_evidence).itertuples(index=False)
        ]
        evidence = {
            "cycles": cyc_rows[:max_evidence],
            "orders": order_rows,
            "counts": [
                {
                    "source": "cycles",
                    "shown": min(len(cyc_rows), max_evidence),
                    "total": len(cyc_rows),
                },
                {"source": "orders", "shown": len(order_rows), "total": len(on_cycle)},
            ],
        }
        best_cy = cyc_rows[0]
        text = (
            f"{len(ids)} accounts moved money in {len(cyc_rows)} cycle(s) of {min_length}-"
            f"{max_length} accounts, e.g. {' -> '.join(best_cy['path'])}: "
            f"{best_cy['rounds']} complete rounds, each within {max_span_days:g} days "
            f"(median round {med_span_h:.1f} hours); {float(on_cycle['amount'].sum()):,.2f} "
            f"went round in {len(on_cycle)} transfers (median {med_amount:,.2f} against a typical "
            f"order of {typical:,.2f}); {flow_share:.0%} of the money these accounts paid out "
            f"went to each other"
        )
        if know_accounts:
            text += f"; {int(new.sum())} of them were created in the last {new_account_days:g} days"
        text += "."
        findings.append(
            Finding.build(
                kind=KIND,
                score=score,
                members=members,
                beneficiaries=[Beneficiary(account_id=b, role="creator") for b in bens],
                signals=signals,
                explanation=text,
                detector=info,
                evidence=evidence,
            )
        )
    return rank(findings)
