"""Shared identifiers: clusters of accounts behind the same devices, IPs and payments.

Accounts are linked through the identifiers they use (``identifiers`` table:
device, ip, payment, phone, address, and kinds the policy's mapping leaves as
they are, which weigh ``other_identifier_weight``). An identifier used by many
accounts says little (a carrier IP shared by thousands links nobody), so each identifier
weighs ``kind_weight / log2(n)`` for ``n`` accounts and nothing above
``max_accounts_per_identifier``. Two accounts are linked when they share at
least ``min_shared`` identifiers whose weights add up to ``min_link_weight``;
a *pool* (one device, payment method or phone used by ``pool_min_accounts`` or
more accounts) links all of its accounts. Connected components of the links
are candidates; each is scored on what separates an incentive farm from a
household: group size, new accounts, accounts created together, many accounts
per device or payment method, and one small first order per account (coupon
farming).

The helpers at the top (:func:`identifier_usage`, :func:`reference_time`,
:func:`strength`, :func:`weighted_score`) are shared by the other order and
identity detectors of this package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, iso
from ringscope.contract import IDENTIFIER_KINDS
from ringscope.model import DetectorInfo, Finding, Member, Signal, rank

NAME = "shared_identifiers"
VERSION = "1.0.0"
KIND = "identity_cluster"

#: How much one shared identifier of each kind says about two accounts being one operator.
KIND_WEIGHTS: dict[str, float] = {
    "device": 1.0,
    "payment": 1.0,
    "phone": 0.8,
    "address": 0.6,
    "ip": 0.4,
}
#: Kinds that can form a pool: one physical device, card or phone behind many accounts.
POOL_KINDS: tuple[str, ...] = ("device", "payment", "phone")


def kind_weight(kind: str, weights: dict[str, float] | None, other: float) -> float:
    """The weight of one shared identifier of ``kind``: from ``weights`` (default
    :data:`KIND_WEIGHTS`); a kind detectors do not know (one the policy's mapping
    left as it is: a cookie, a loyalty card) weighs ``other``, while a known kind
    that ``weights`` leaves out weighs nothing."""
    w = KIND_WEIGHTS if weights is None else weights
    if kind in w:
        return float(w[kind])
    return 0.0 if kind in IDENTIFIER_KINDS else float(other)


#: Plural nouns for explanations.
KIND_NOUNS: dict[str, tuple[str, str]] = {
    "device": ("device", "devices"),
    "payment": ("payment method", "payment methods"),
    "phone": ("phone number", "phone numbers"),
    "address": ("address", "addresses"),
    "ip": ("IP address", "IP addresses"),
}


# --------------------------------------------------------------------------- shared helpers


def count_noun(n: int, kind: str) -> str:
    """``"2 payment methods"``: a count with the right noun for an identifier kind."""
    one, many = KIND_NOUNS.get(kind, (kind, kind + "s"))
    return f"{n} {one if n == 1 else many}"


def strength(value: float, threshold: float) -> float:
    """How strongly a signal fires, in [0, 1].

    1 at or above the threshold; below it, ``0.5 * (value / threshold) ** 2``,
    so that a value half-way to the threshold adds an eighth of the weight.
    """
    if not threshold > 0:
        return 1.0 if value > 0 else 0.0
    if value >= threshold:
        return 1.0
    r = max(0.0, float(value)) / threshold
    return 0.5 * r * r


def weighted_score(parts: Sequence[tuple[str, float, float, float]]) -> tuple[float, list[Signal]]:
    """Score from ``(name, value, threshold, weight)`` parts, and the signals that fired.

    The score is the weighted mean of :func:`strength` over every part (in
    [0, 1]); the returned signals are those whose value reached the threshold.
    """
    total = sum(w for _, _, _, w in parts)
    if total <= 0:
        return 0.0, []
    s = sum(w * strength(v, t) for _, v, t, w in parts) / total
    fired = [
        Signal(name=n, value=round(float(v), 6), threshold=float(t), weight=float(w))
        for n, v, t, w in parts
        if v >= t
    ]
    return min(1.0, max(0.0, s)), fired


def reference_time(*frames: tuple[pd.DataFrame | None, str], as_of: object = None) -> pd.Timestamp:
    """``as_of`` if given, else the latest timestamp in the named columns, else now (UTC)."""
    if as_of is not None:
        t = pd.Timestamp(as_of)  # type: ignore[arg-type]
        return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    latest: list[pd.Timestamp] = []
    for df, col in frames:
        if df is not None and col in df.columns and len(df):
            m = pd.to_datetime(df[col], utc=True).max()
            if not pd.isna(m):
                latest.append(pd.Timestamp(m))
    if latest:
        return max(latest)
    return pd.Timestamp.now(tz="UTC")


def account_created(accounts: pd.DataFrame | None) -> pd.Series:
    """``created_at`` (UTC) indexed by account id; empty when no accounts are given."""
    if accounts is None or not len(accounts) or "created_at" not in accounts.columns:
        return pd.Series([], dtype="datetime64[us, UTC]", index=pd.Index([], dtype=object))
    s = pd.Series(
        pd.to_datetime(accounts["created_at"], utc=True).array,
        index=accounts["account_id"].astype(str).to_numpy(),
    )
    return s[~s.index.duplicated(keep="first")]


def sorted_codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes of ``values`` in sorted order, and the sorted distinct values.

    Comparing two codes compares the two values, so grouping and ordering can
    work on int64 arrays instead of strings.
    """
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64, copy=False), pd.Index(uniques)


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Positions where a new run of equal keys starts in a sorted key array."""
    if not len(sorted_keys):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def pairs_within_groups(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of rows ``(i, j)``, ``i < j``, of the same group, for rows sorted by group.

    ``group`` holds each row's group key, equal keys adjacent. The pairs come
    out ordered by ``i`` then ``j``.
    """
    n = len(group)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    starts = group_starts(group)
    ends = np.r_[starts[1:], n]
    size = ends - starts
    end_of_row = np.repeat(ends, size)
    after = end_of_row - np.arange(n) - 1  # rows after each row in its group
    total = int(after.sum())
    left = np.repeat(np.arange(n, dtype=np.int64), after)
    first = np.cumsum(after) - after  # where each row's pairs start in the output
    right = left + 1 + (np.arange(total, dtype=np.int64) - np.repeat(first, after))
    return left, right


def identifier_usage(
    identifiers: pd.DataFrame | None,
    *,
    max_accounts_per_identifier: int,
    kind_weights: dict[str, float] | None = None,
    max_accounts_per_instrument: int | None = None,
    other_weight: float = OTHER_IDENTIFIER_WEIGHT,
) -> pd.DataFrame:
    """Account-identifier links of identifiers used by 2 to ``max_accounts_per_identifier``.

    Returns one row per (account, identifier) with columns ``account_id``,
    ``kind``, ``value``, ``ident`` (an integer code of the identifier: its
    rank among the distinct (kind, value) pairs of the table),
    ``n_accounts`` (accounts using it, over the whole table), ``weight``
    (``kind_weight / log2(n_accounts)``, see :func:`kind_weight`: a kind
    detectors do not know weighs ``other_weight``) and ``first_seen`` (the
    earliest over the account's rows), sorted by ``ident`` then ``account_id``.
    Devices, payment methods and phones (one physical instrument each) may
    have their own, higher cap, ``max_accounts_per_instrument``.
    """
    cols = ["account_id", "kind", "value", "ident", "n_accounts", "weight", "first_seen"]
    if identifiers is None or not len(identifiers):
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
    df = identifiers[["account_id", "kind", "value", "first_seen"]].dropna(
        subset=["account_id", "kind", "value"]
    )
    if not len(df):
        empty = {"ident": np.int64, "n_accounts": np.int64, "weight": float}
        return pd.DataFrame({c: pd.Series([], dtype=empty.get(c, object)) for c in cols})
    value_code, values = pd.factorize(df["value"].astype(str))
    # a value on a single row is an identifier of a single account: it links nobody
    repeated = np.bincount(value_code)[value_code] >= 2
    df, value_code = df[repeated], value_code[repeated]
    kind_code, kinds = sorted_codes(df["kind"].astype(str))
    acc_code, accs = pd.factorize(df["account_id"].astype(str))
    first_seen = pd.to_datetime(df["first_seen"], utc=True)
    # one row per (identifier, account), with the earliest first_seen
    ident_all, _ = pd.factorize(kind_code * len(values) + value_code)
    link = ident_all.astype(np.int64) * len(accs) + acc_code
    order = np.argsort(link, kind="stable")
    starts = group_starts(link[order])
    rows = order[starts]
    never = np.iinfo(np.int64).max
    utc = first_seen.dt.tz_localize(None).to_numpy()
    seen = np.where(np.isnat(utc), never, utc.view(np.int64))[order]
    first = np.minimum.reduceat(seen, starts) if len(starts) else seen
    n_accounts = np.bincount(ident_all[rows]).astype(np.int64)[ident_all[rows]]
    row_kind = kind_code[rows]
    is_pool = np.asarray(kinds.isin(POOL_KINDS), dtype=bool)[row_kind]
    instrument_cap = (
        max_accounts_per_identifier
        if max_accounts_per_instrument is None
        else max_accounts_per_instrument
    )
    cap = np.where(is_pool, instrument_cap, max_accounts_per_identifier)
    in_range = (n_accounts >= 2) & (n_accounts <= cap)
    kind_w = np.array([kind_weight(str(k), kind_weights, other_weight) for k in kinds], float)
    weight = np.zeros(len(rows), dtype=float)
    weight[in_range] = kind_w[row_kind[in_range]] / np.log2(n_accounts[in_range].astype(float))
    keep = np.flatnonzero(in_range & (weight > 0))
    rows, first, n_accounts, weight, row_kind = (
        rows[keep],
        first[keep],
        n_accounts[keep],
        weight[keep],
        row_kind[keep],
    )
    # number the identifiers kept in (kind, value) order, and sort by them and account
    value_rank, _ = sorted_codes(pd.Series(values.take(value_code[rows])))
    acc_rank, _ = sorted_codes(pd.Series(accs.take(acc_code[rows])))
    _, ident = np.unique(row_kind * max(1, len(rows)) + value_rank, return_inverse=True)
    ident = ident.astype(np.int64).ravel()
    by = np.lexsort((acc_rank, ident))
    rows, first, n_accounts, weight, row_kind, ident = (
        rows[by],
        first[by],
        n_accounts[by],
        weight[by],
        row_kind[by],
        ident[by],
    )
    seen_kept = pd.Series(first).astype(np.dtype(f"datetime64[{first_seen.dt.unit}]"))
    seen_kept[first == never] = pd.NaT
    return pd.DataFrame(
        {
            "account_id": accs.take(acc_code[rows]),
            "kind": kinds.take(row_kind),
            "value": values.take(value_code[rows]),
            "ident": ident,
            "n_accounts": n_accounts,
            "weight": weight,
            "first_seen": seen_kept.dt.tz_localize("UTC").array,
        }
    )[cols]


def identifier_pair_rows(usage: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(i, j)`` in ``usage`` of every pair of accounts sharing an identifier.

    Account ``i`` sorts before account ``j``; pairs are ordered by ``i`` then
    ``j`` (the order of a self-join of ``usage`` on ``ident``).
    """
    if not len(usage):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    ident = usage["ident"].to_numpy()
    acc, _ = sorted_codes(usage["account_id"])
    by_ident = np.argsort(ident, kind="stable")
    i, j = pairs_within_groups(ident[by_ident])
    i, j = by_ident[i], by_ident[j]
    # the pair's first account is the one that sorts first; equal accounts pair with nobody
    left = np.where(acc[i] < acc[j], i, j)
    right = np.where(acc[i] < acc[j], j, i)
    distinct = acc[i] != acc[j]
    o = np.lexsort((right[distinct], left[distinct]))
    return left[distinct][o], right[distinct][o]


def identifier_pairs(usage: pd.DataFrame) -> pd.DataFrame:
    """All unordered account pairs sharing an identifier: ``a``, ``b`` (a < b), ``ident``."""
    if not len(usage):
        return pd.DataFrame({"a": [], "b": [], "ident": []}, dtype=object)
    i, j = identifier_pair_rows(usage)
    accounts = usage["account_id"].to_numpy()
    return pd.DataFrame({"a": accounts[i], "b": accounts[j], "ident": usage["ident"].to_numpy()[i]})


def as_float(x: Any) -> float:
    """``float(x)`` for a value read from a frame row."""
    return float(x)


def _as_int(x: Any) -> int:
    return int(x)


def cap_rows(rows: list[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """The first ``cap`` rows (evidence lists are capped; totals go in ``counts``)."""
    return rows[: max(0, cap)]


# --------------------------------------------------------------------------- detector


def _check_params(
    max_accounts_per_identifier: int, min_shared: int, min_size: int, min_score: float
) -> None:
    if max_accounts_per_identifier < 2:
        raise ValueError("max_accounts_per_identifier must be at least 2")
    if min_shared < 1:
        raise ValueError("min_shared must be at least 1")
    if min_size < 2:
        raise ValueError("min_size must be at least 2")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")


def _first_orders(orders: pd.DataFrame | None, accounts: set[str]) -> pd.DataFrame:
    if orders is None or not len(orders):
        return pd.DataFrame(columns=["buyer_id", "n_orders", "first_amount", "first_ts"])
    o = orders[orders["buyer_id"].astype(str).isin(accounts)]
    if not len(o):
        return pd.DataFrame(columns=["buyer_id", "n_orders", "first_amount", "first_ts"])
    o = o.assign(buyer_id=o["buyer_id"].astype(str)).sort_values(
        ["buyer_id", "ts", "order_id"], kind="stable"
    )
    g = o.groupby("buyer_id", sort=True)
    return pd.DataFrame(
        {
            "n_orders": g.size(),
            "first_amount": g["amount"].first().astype(float),
            "first_ts": g["ts"].first(),
        }
    ).reset_index()


def detect_shared_identifiers(
    identifiers: pd.DataFrame,
    *,
    accounts: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    max_accounts_per_identifier: int = 30,
    max_accounts_per_instrument: int = 200,
    min_shared: int = 2,
    min_link_weight: float = 0.5,
    pool_min_accounts: int = 6,
    min_size: int = 3,
    max_size: int = 500,
    household_max: int = 5,
    new_account_days: float = 30.0,
    created_window_days: float = 7.0,
    small_order_quantile: float = 0.25,
    min_score: float = 0.55,
    kind_weights: dict[str, float] | None = None,
    as_of: datetime | None = None,
    max_evidence: int = 50,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Find clusters of accounts operated together, seen through shared identifiers.

    Parameters
    ----------
    identifiers : pandas.DataFrame
        Normalised ``identifiers`` table (account_id, kind, value, first_seen).
    accounts : pandas.DataFrame, optional
        Normalised ``accounts`` table, for account ages.
    orders : pandas.DataFrame, optional
        Normalised ``orders`` table, for the coupon-farming signal (one small
        first order per account).
    max_accounts_per_identifier : int
        IPs and addresses used by more accounts than this link nobody (carrier
        IPs, campus networks, public Wi-Fi).
    max_accounts_per_instrument : int
        The same cap for devices, payment methods and phones: one instrument
        behind dozens of accounts is a pool, not noise.
    min_shared : int
        Two accounts are linked only when they share at least this many
        identifiers (or through a pool).
    min_link_weight : float
        ... and when the weights of their shared identifiers add up to at least this.
    pool_min_accounts : int
        A device, payment method or phone used by at least this many accounts
        links all of them (a pool of accounts behind one instrument).
    min_size, max_size : int
        Components outside this size range are not reported.
    household_max : int
        Groups up to this size may be a household sharing a tablet and a
        card: for them, many accounts per device or payment method says nothing.
    new_account_days : float
        Accounts created at most this many days before ``as_of`` are new.
    created_window_days : float
        Accounts created within this many days of the group's median creation
        time count as created together.
    small_order_quantile : float
        A first order at or below this quantile of all order amounts is small.
    min_score : float
        Components scoring below this are not reported.
    kind_weights : dict, optional
        Weight of each identifier kind (default :data:`KIND_WEIGHTS`).
    other_identifier_weight : float
        Weight of a kind detectors do not know (neither one of
        :data:`~ringscope.contract.IDENTIFIER_KINDS` nor mapped to one by the
        policy's ``mapping``): the policy's ``mapping.other_identifier_weight``.
    as_of : datetime, optional
        Reference time for ages (default: the latest timestamp in the input).
    max_evidence : int
        At most this many rows per evidence list (totals under ``counts``).
    seed : int, numpy.random.Generator or None
        Accepted for the common detector signature; the method is deterministic.

    Returns
    -------
    list of Finding
        Kind ``identity_cluster``, ranked by score then id.

    References
    ----------
    .. [1] Stringhini et al., "EvilCohort: Detecting Communities of Malicious
       Accounts on Online Services", USENIX Security 2015.
    .. [2] Cao et al., "Uncovering Large Groups of Active Malicious Accounts in
       Online Social Networks" (SynchroTrap), CCS 2014.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> ids = pd.DataFrame({
    ...     "account_id": [f"a{i}" for i in range(8)] * 2,
    ...     "kind": ["device"] * 8 + ["payment"] * 8,
    ...     "value": ["d1"] * 8 + ["p1"] * 8,
    ...     "first_seen": [t] * 16})
    >>> acc = pd.DataFrame({"account_id": [f"a{i}" for i in range(8)],
    ...     "roles": "buyer", "created_at": [t - pd.Timedelta(days=2)] * 8})
    >>> [f.kind for f in detect_shared_identifiers(ids, accounts=acc, seed=0)]
    ['identity_cluster']
    """
    _check_params(max_accounts_per_identifier, min_shared, min_size, min_score)
    params: dict[str, Any] = {
        "max_accounts_per_identifier": max_accounts_per_identifier,
        "max_accounts_per_instrument": max_accounts_per_instrument,
        "min_shared": min_shared,
        "min_link_weight": min_link_weight,
        "pool_min_accounts": pool_min_accounts,
        "min_size": min_size,
        "max_size": max_size,
        "household_max": household_max,
        "new_account_days": new_account_days,
        "created_window_days": created_window_days,
        "small_order_quantile": small_order_quantile,
        "min_score": min_score,
        "kind_weights": dict(KIND_WEIGHTS if kind_weights is None else kind_weights),
        "other_identifier_weight": other_identifier_weight,
        "as_of": iso(as_of) if as_of is not None else None,
        "seed": seed if isinstance(seed, int) else None,
    }
    info = DetectorInfo(name=NAME, version=VERSION, params=params)
    usage = identifier_usage(
        identifiers,
        max_accounts_per_identifier=max_accounts_per_identifier,
        kind_weights=kind_weights,
        max_accounts_per_instrument=max_accounts_per_instrument,
        other_weight=other_identifier_weight,
    )
    if not len(usage):
        return []
    now = reference_time(
        (identifiers, "first_seen"),
        (identifiers, "last_seen"),
        (orders, "ts"),
        (accounts, "created_at"),
        as_of=as_of,
    )

    # links between accounts
    acc_codes, acc_names = pd.factorize(usage["account_id"], sort=True)
    usage = usage.assign(acc=acc_codes.astype(np.int64))
    n_nodes = len(acc_names)
    pair_i, pair_j = identifier_pair_rows(usage)
    edges_a: list[np.ndarray] = []
    edges_b: list[np.ndarray] = []
    if len(pair_i):
        acc = usage["acc"].to_numpy()
        key = acc[pair_i] * n_nodes + acc[pair_j]
        w = pd.Series(usage["weight"].to_numpy(dtype=float)[pair_i])
        grouped = w.groupby(key, sort=False)
        agg = pd.DataFrame({"w": grouped.sum(), "k": grouped.size()})
        agg = agg[(agg["k"] >= min_shared) & (agg["w"] >= min_link_weight)]
        if len(agg):
            linked_key = agg.index.to_numpy(dtype=np.int64)
            edges_a.append(linked_key // n_nodes)
            edges_b.append(linked_key % n_nodes)
    pool = usage[usage["kind"].isin(POOL_KINDS) & (usage["n_accounts"] >= pool_min_accounts)]
    if len(pool):
        first = pool.groupby("ident")["acc"].transform("min").to_numpy()
        edges_a.append(first)
        edges_b.append(pool["acc"].to_numpy())
    if not edges_a:
        return []
    ea = np.concatenate(edges_a)
    eb = np.concatenate(edges_b)
    graph = sparse.coo_matrix((np.ones(len(ea)), (ea, eb)), shape=(n_nodes, n_nodes)).tocsr()
    _, comp = connected_components(graph, directed=False)
    linked = np.zeros(n_nodes, dtype=bool)
    linked[ea] = True
    linked[eb] = True
    comp_sizes = np.bincount(comp[linked], minlength=int(comp.max()) + 1)

    created = account_created(accounts)
    amounts = (
        orders["amount"].to_numpy(dtype=float)
        if orders is not None and len(orders)
        else np.zeros(0, dtype=float)
    )
    amounts = amounts[~np.isnan(amounts)]
    small_amount = float(np.quantile(amounts, small_order_quantile)) if len(amounts) else math.nan

    comp_sizes_all = np.zeros(int(comp.max()) + 1, dtype=np.int64)
    comp_sizes_all[: len(comp_sizes)] = comp_sizes
    node_size = comp_sizes_all[comp]
    in_cand = linked & (node_size >= min_size) & (node_size <= max_size)
    cand_nodes = np.flatnonzero(in_cand)
    if not len(cand_nodes):
        return []
    names = np.asarray(acc_names, dtype=object)[cand_nodes]
    comp_of = comp[cand_nodes]
    first_orders = _first_orders(orders, set(names.tolist())).set_index("buyer_id")
    degree = np.asarray((graph + graph.T).astype(bool).sum(axis=1)).ravel()
    # node features
    cr = created.reindex(names)
    known = cr.notna().to_numpy()
    age_days = ((now - cr).dt.total_seconds() / 86400.0).to_numpy(dtype=float)
    new_arr = known & (np.nan_to_num(age_days, nan=np.inf) <= new_account_days)
    cr_days = np.where(known, cr.astype("int64").to_numpy() / 86400e6, np.nan)
    med = pd.Series(cr_days).groupby(comp_of).transform("median").to_numpy(dtype=float)
    together_arr = known & (np.abs(np.nan_to_num(cr_days - med, nan=np.inf)) <= created_window_days)
    fo = first_orders.reindex(names)
    if len(fo) and not math.isnan(small_amount):
        n_ord = fo["n_orders"].fillna(0).to_numpy(dtype=float)
        first_amt = fo["first_amount"].to_numpy(dtype=float)
        coupon_arr = (
            (n_ord >= 1) & (n_ord <= 2) & (np.nan_to_num(first_amt, nan=np.inf) <= small_amount)
        )
    else:
        coupon_arr = np.zeros(len(names), dtype=bool)
    # identifiers shared inside each candidate component
    cu = usage[in_cand[usage["acc"].to_numpy()]]
    cu = cu.assign(comp=comp[cu["acc"].to_numpy()])
    cu = cu[cu.groupby(["comp", "ident"])["acc"].transform("size") >= 2]
    n_strong_by_comp = cu[cu["kind"].isin(POOL_KINDS)].groupby("comp")["ident"].nunique()
    feats = pd.DataFrame(
        {
            "comp": comp_of,
            "new": new_arr,
            "together": together_arr,
            "coupon": coupon_arr,
        }
    ).groupby("comp", sort=True)
    comp_feats = feats.agg(
        n=("new", "size"),
        new=("new", "mean"),
        together=("together", "mean"),
        coupon=("coupon", "mean"),
    )
    node_pos = {int(c): np.flatnonzero(comp_of == c) for c in comp_feats.index}

    findings: list[Finding] = []
    passing: list[tuple[int, float, list[Signal]]] = []
    n_strong_of = n_strong_by_comp.reindex(comp_feats.index, fill_value=0).to_numpy()
    for c, n_f, new_f, coupon_f, together_f, n_strong_f in zip(
        comp_feats.index.tolist(),
        comp_feats["n"].to_numpy(dtype=float).tolist(),
        comp_feats["new"].to_numpy(dtype=float).tolist(),
        comp_feats["coupon"].to_numpy(dtype=float).tolist(),
        comp_feats["together"].to_numpy(dtype=float).tolist(),
        n_strong_of.tolist(),
        strict=True,
    ):
        n = int(n_f)
        n_strong = int(n_strong_f)
        per_instrument = n / n_strong if n_strong and n > household_max else 0.0
        parts = [
            ("group_size", float(n), 6.0, 0.15),
            ("new_account_share", new_f, 0.5, 0.25),
            ("accounts_per_instrument", per_instrument, 2.5, 0.2),
            ("coupon_order_share", coupon_f, 0.5, 0.25),
            ("created_together_share", together_f, 0.7, 0.15),
        ]
        score, signals = weighted_score(parts)
        if score >= min_score:
            passing.append((_as_int(c), score, signals))
    if not passing:
        return []
    # orders of the passing components' accounts, in table order
    passing_accounts = set(names[np.isin(comp_of, [p[0] for p in passing])].tolist())
    group_orders = (
        orders[orders["buyer_id"].astype(str).isin(passing_accounts)]
        if orders is not None and len(orders)
        else orders
    )
    cu_by_comp = {
        int(k): g for k, g in cu[cu["comp"].isin([p[0] for p in passing])].groupby("comp")
    }
    for c, score, signals in passing:
        pos = node_pos[c]
        group = [str(x) for x in names[pos]]
        gset = set(group)
        n = len(group)
        shared = cu_by_comp.get(c, cu.iloc[:0])
        is_new = new_arr[pos]
        together = together_arr[pos]
        coupon = coupon_arr[pos]
        n_strong = int(shared[shared["kind"].isin(POOL_KINDS)]["ident"].nunique())
        per_instrument = n / n_strong if n_strong and n > household_max else 0.0
        # member scores
        deg = degree[cand_nodes[pos]] / max(1, n - 1)
        own = (is_new.astype(float) + coupon.astype(float) + np.minimum(1.0, deg)) / 3.0
        mscores = np.clip(score * (0.6 + 0.4 * own), 0.0, 1.0)
        members = [
            Member(account_id=a, role="account", score=round(float(s), 6))
            for a, s in zip(group, mscores, strict=True)
        ]
        # evidence
        rows: list[dict[str, Any]] = []
        for _, g in shared.groupby("ident", sort=True):
            accs = sorted(g["account_id"].tolist())
            rows.append(
                {
                    "kind": str(g["kind"].iloc[0]),
                    "value": str(g["value"].iloc[0]),
                    "accounts": accs[:20],
                    "n_accounts": len(accs),
                    "n_accounts_total": int(g["n_accounts"].iloc[0]),
                    "first_seen": iso(g["first_seen"].min()),
                }
            )
        rows.sort(key=lambda r: (-r["n_accounts"], r["kind"], r["value"]))
        order_rows: list[dict[str, Any]] = []
        if group_orders is not None and len(group_orders):
            og = group_orders[group_orders["buyer_id"].astype(str).isin(gset)].sort_values(
                ["ts", "order_id"], kind="stable"
            )
            for r in og.head(max_evidence).itertuples(index=False):
                order_rows.append(
                    {
                        "order_id": str(r.order_id),
                        "buyer_id": str(r.buyer_id),
                        "seller_id": str(r.seller_id),
                        "amount": as_float(r.amount),
                        "status": str(r.status),
                        "ts": iso(r.ts),
                    }
                )
            n_orders_total = len(og)
        else:
            n_orders_total = 0
        evidence: dict[str, list[dict[str, Any]]] = {
            "identifiers": cap_rows(rows, max_evidence),
            "orders": order_rows,
            "counts": [
                {
                    "source": "identifiers",
                    "shown": min(len(rows), max_evidence),
                    "total": len(rows),
                },
                {"source": "orders", "shown": len(order_rows), "total": n_orders_total},
            ],
        }
        kinds = shared.drop_duplicates("ident")["kind"].value_counts().sort_index()
        what = ", ".join(count_noun(int(v), str(k)) for k, v in kinds.items())
        text = f"{n} accounts share {what} ({len(rows)} identifiers used by few other accounts)"
        if per_instrument:
            text += f", {per_instrument:.1f} accounts per device/payment/phone"
        text += f". {int(is_new.sum())} were created in the {new_account_days:g} days before "
        text += f"{now.date().isoformat()}"
        text += f", {int(together.sum())} within {created_window_days:g} days of each other"
        if not math.isnan(small_amount):
            text += f"; {int(coupon.sum())} placed one or two orders starting with a small one "
            text += f"(at most {small_amount:.2f})"
        text += "."
        findings.append(
            Finding.build(
                kind=KIND,
                score=score,
                members=members,
                signals=signals,
                explanation=text,
                detector=info,
                evidence=evidence,
            )
        )
    return rank(findings)
