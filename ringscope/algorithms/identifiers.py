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
VERSION = "2.1.0"
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


def order_summary(orders: pd.DataFrame | None) -> pd.DataFrame:
    """Per buyer (index ``buyer_id``, sorted): ``n_orders``, and the first order's
    ``first_ts``, ``first_seller`` and ``first_amount`` (first by time, then order id)."""
    cols = ["n_orders", "first_ts", "first_seller", "first_amount"]
    if orders is None or not len(orders):
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols}).rename_axis("buyer_id")
    o = orders[["order_id", "buyer_id", "seller_id", "amount", "ts"]].assign(
        buyer_id=orders["buyer_id"].astype(str),
        seller_id=orders["seller_id"].astype(str),
        order_id=orders["order_id"].astype(str),
    )
    o = o.sort_values(["buyer_id", "ts", "order_id"], kind="stable")
    g = o.groupby("buyer_id", sort=True)
    return pd.DataFrame(
        {
            "n_orders": g.size().astype(np.int64),
            "first_ts": g["ts"].first(),
            "first_seller": g["seller_id"].first(),
            "first_amount": g["amount"].first().astype(float),
        }
    )


# --------------------------------------------------------------------------- detector

#: Window lengths of the creation-burst scan, in days: one hour, doubling (the longest
#: used is the span of the data).
_SCALES_DAYS = tuple(2.0**k / 24.0 for k in range(0, 13))
_LN10 = math.log(10.0)
#: Levels of the coupon scan: accounts whose first order is at most this likely, under
#: the market's own amounts and delays, to be as small and as quick (:func:`coupon_ranks`).
#: Quartering steps, like the doubling window lengths: each level tested costs its share
#: of the correction.
_COUPON_LEVELS = (1.0, 1.0 / 4.0, 1.0 / 16.0, 1.0 / 64.0)


def _check_params(
    max_accounts_per_identifier: int | None,
    min_shared: int,
    min_size: int,
    min_score: float,
    hub_quantile: float = 0.99,
    min_coupon_share: float = 0.5,
) -> None:
    if max_accounts_per_identifier is not None and max_accounts_per_identifier < 2:
        raise ValueError("max_accounts_per_identifier must be at least 2 (or null: derived)")
    if min_shared < 1:
        raise ValueError("min_shared must be at least 1")
    if min_size < 2:
        raise ValueError("min_size must be at least 2")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")
    if not 0.5 <= hub_quantile < 1.0:
        raise ValueError("hub_quantile must be in [0.5, 1)")
    if not 0.0 < min_coupon_share <= 1.0:
        raise ValueError("min_coupon_share must be in (0, 1]")


def hub_limits(usage: pd.DataFrame, quantile: float) -> dict[str, float]:
    """Per identifier kind, the ``quantile`` of accounts per shared identifier.

    The market's own degree distribution: an identifier used by more accounts than
    this is a hub of its kind (a carrier or campus IP, a proxy) whose weight is
    discounted by ``(limit / n) ** 2`` on top of ``1 / log2(n)``."""
    if not len(usage):
        return {}
    per = usage.drop_duplicates("ident")[["kind", "n_accounts"]]
    return {
        str(k): float(np.quantile(g["n_accounts"].to_numpy(dtype=float), quantile))
        for k, g in per.groupby("kind", sort=True)
    }


def household_size(usage: pd.DataFrame, quantile: float) -> int:
    """The most accounts a household shares one device, card or phone with: the
    ``quantile`` of accounts per shared instrument over instruments of at most the
    median-plus-three-MAD size (so that a few big pools cannot move it), at least 2."""
    inst = usage[usage["kind"].isin(POOL_KINDS)].drop_duplicates("ident")["n_accounts"]
    n = inst.to_numpy(dtype=float)
    if not len(n):
        return 2
    med = float(np.median(n))
    mad = float(np.median(np.abs(n - med)))
    small = n[n <= med + 3.0 * max(mad, 1.0)]
    return max(2, math.ceil(float(np.quantile(small, quantile))))


def seller_shares(orders: pd.DataFrame | None, summary: pd.DataFrame) -> pd.Series:
    """Each seller's share of the orders of repeat customers (three orders or more;
    every order when there are none), smoothed by one order per seller.

    The chance that an ordinary new account's first order goes to that seller: learnt
    from customers who keep buying, not from accounts that order once (the suspects)."""
    if orders is None or not len(orders):
        return pd.Series([], dtype=float)
    buyers = orders["buyer_id"].astype(str)
    sellers = orders["seller_id"].astype(str)
    n_orders = summary["n_orders"].reindex(buyers.to_numpy()).to_numpy(dtype=float)
    repeat = n_orders >= 3
    raw = sellers[repeat].value_counts() if repeat.any() else sellers.value_counts()
    every = pd.Index(sellers.unique())
    counts = raw.reindex(every, fill_value=0).astype(float) + 1.0
    return (counts / counts.sum()).sort_index()


def _days(times: pd.Series) -> np.ndarray:
    """Timestamps (any unit, UTC) as float days since the epoch; NaT as NaN."""
    values = pd.to_datetime(times, utc=True).dt.tz_localize(None).to_numpy()
    micros = values.astype("datetime64[us]").astype(np.int64).astype(float)
    return np.where(np.isnat(values), np.nan, micros / 86400e6)


class _Baseline:
    """How many ordering accounts the market made in a time interval.

    The actual count (a market-wide spike, a launch day or a migration, is in it), at
    least the count a uniform rate over the market's history gives (so that a quiet
    hour is not a vacuum); the scan leaves the tested group's own accounts out of it."""

    def __init__(self, created_days: np.ndarray, end_days: float) -> None:
        self.t = np.sort(created_days[~np.isnan(created_days)])
        self.total = float(len(self.t))
        history = (end_days - float(self.t[0])) if len(self.t) else 1.0
        self.per_day = self.total / max(history, 1.0)

    def count(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Ordering accounts made in ``[a, b]`` (days)."""
        return (
            np.searchsorted(self.t, b, side="right") - np.searchsorted(self.t, a, side="left")
        ).astype(float)

    def expected(self, a: np.ndarray, b: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Accounts made in ``[a, b]`` other than ``own`` of the tested group, at least
        the uniform rate's."""
        return np.maximum(self.count(a, b) - own, self.per_day * (b - a))


def _poisson_log10_sf(k: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """``log10 P(X >= k)`` for ``X ~ Poisson(mu)``."""
    from scipy import stats

    return np.asarray(stats.poisson.logsf(np.asarray(k) - 1, np.maximum(mu, 1e-300))) / _LN10


def _scan(
    group: np.ndarray,
    t: np.ndarray,
    rate: np.ndarray,
    baseline: _Baseline,
    scales: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Creation bursts within groups: for each row (rows sorted by group then time
    ``t`` in days) and each window length, the rows of its group created in
    ``[t, t + length]`` against ``rate * expected(t, t + length)``.

    The window is anchored at the row, so the count tested is of the *other* rows in
    it. Returns per row the best ``log10`` Poisson tail, the end (exclusive row) of the
    best window and its length."""
    n = len(t)
    best = np.zeros(n)
    stop = np.arange(n) + 1
    length = np.zeros(n)
    if not n:
        return best, stop, length
    span = float(t.max() - t.min()) + max(scales) + 2.0
    key = group.astype(float) * span + (t - t.min())
    for d in scales:
        j = np.searchsorted(key, key + d, side="right")
        # the window starts at a row: the others in it are the count (anchor excluded)
        k = j - np.arange(n)
        mu = rate * baseline.expected(t, t + d, k.astype(float))
        lp = _poisson_log10_sf(k - 1, mu)
        # a burst is mostly excess: the market explains less than half of it
        lp = np.where(k - 1 >= 2.0 * mu, lp, 0.0)
        better = lp < best
        best = np.where(better, lp, best)
        stop = np.where(better, j, stop)
        length = np.where(better, d, length)
    return best, stop, length


def coupon_ranks(
    orders: pd.DataFrame | None,
    summary: pd.DataFrame,
    created: pd.Series,
    start: pd.Timestamp,
) -> pd.DataFrame:
    """How ordinary each buyer's first order is, as two rank p-values (index: buyer).

    ``amount_rank``: the share of the first order's seller's orders placed by repeat
    customers (three orders or more) whose amount is at most the first order's,
    ``(1 + at_most) / (1 + n)`` (1 when the seller has none): small when the order is
    smaller than what the seller's customers buy (a coupon's minimum basket).
    ``delay_rank``: the same share among the delays from creation to first order of repeat
    customers made since ``start``: small when the account ordered sooner after it was
    made than customers do. Both are learnt from customers who keep buying, never from
    the one-order accounts under suspicion; for an ordinary new customer each is uniform
    (or larger: repeat customers order sooner), so their product is a conservative null
    probability of a first order at least this small and this quick."""
    idx = summary.index
    out = pd.DataFrame(
        {"amount_rank": np.ones(len(idx)), "delay_rank": np.ones(len(idx))}, index=idx
    )
    if orders is None or not len(orders) or not len(idx):
        return out
    buyers = orders["buyer_id"].astype(str).to_numpy()
    repeat = summary["n_orders"].reindex(buyers).to_numpy(dtype=float) >= 3
    rep_seller = orders["seller_id"].astype(str).to_numpy()[repeat]
    rep_amount = orders["amount"].to_numpy(dtype=float)[repeat]
    keep = ~np.isnan(rep_amount)
    rep_seller, rep_amount = rep_seller[keep], rep_amount[keep]
    first_seller = summary["first_seller"].astype(str).to_numpy()
    first_amount = summary["first_amount"].to_numpy(dtype=float)
    codes, _ = pd.factorize(np.concatenate([rep_seller, first_seller]))
    n_rep = len(rep_seller)
    is_rep = np.r_[np.ones(n_rep, dtype=np.int64), np.zeros(len(idx), dtype=np.int64)]
    amount = np.r_[rep_amount, first_amount]
    # repeat orders sort before a first order of the same amount: "at most" counts them
    order = np.lexsort((1 - is_rep, amount, codes))
    seller_sorted = codes[order]
    cum = np.cumsum(is_rep[order])
    starts = group_starts(seller_sorted)
    before = np.repeat(cum[starts] - is_rep[order][starts], np.diff(np.r_[starts, len(order)]))
    at_most = cum - before
    per_seller = np.bincount(codes[:n_rep], minlength=int(codes.max()) + 1 if len(codes) else 0)
    rank = np.empty(len(order), dtype=float)
    rank[order] = (1.0 + at_most) / (1.0 + per_seller[seller_sorted])
    amount_rank = rank[n_rep:]
    amount_rank[np.isnan(first_amount)] = 1.0
    out["amount_rank"] = amount_rank
    made = created.reindex(idx)
    delay = (_days(summary["first_ts"]) - _days(made)) if len(idx) else np.zeros(0)
    ref = (
        (summary["n_orders"].to_numpy(dtype=float) >= 3)
        & (made.notna().to_numpy())
        & (_days(made) >= float(_days(pd.Series([start]))[0]))
        & ~np.isnan(delay)
    )
    if ref.any():
        d_ref = np.sort(delay[ref])
        pos = np.searchsorted(d_ref, np.nan_to_num(delay, nan=np.inf), side="right")
        delay_rank = (1.0 + pos) / (1.0 + len(d_ref))
        out["delay_rank"] = np.where(np.isnan(delay), 1.0, np.minimum(1.0, delay_rank))
    return out


def is_crowd(made: np.ndarray, ordered: np.ndarray) -> bool:
    """Whether a cohort is a sale's crowd rather than a farm: its first orders came at one
    moment, not one by one after each account was made.

    An incentive farm's accounts order some time after each is made, so their orders
    spread about as their creations do. A sale's crowd orders at one moment whatever
    when its accounts were made. "One moment" is measured on the cohort's own clock: the
    middle half of its first orders fell within less time than the cohort takes, at its
    own pace of creation (half its accounts per interquartile range of creation times),
    to make one account. No fixed duration: a crowd of a minute among accounts made over
    days, or of an hour among accounts made over months."""
    n = len(made)
    if n < 2:
        return False
    q_made = np.quantile(made, [0.25, 0.75])
    q_ordered = np.quantile(ordered, [0.25, 0.75])
    spread_made = float(q_made[1] - q_made[0])
    spread_ordered = float(q_ordered[1] - q_ordered[0])
    return (n / 2.0) * spread_ordered < spread_made


def crowd_members(
    made: np.ndarray,
    ordered: np.ndarray,
    others: np.ndarray,
    per_day: float,
    min_significance: float,
) -> np.ndarray:
    """Which of a cohort's accounts placed their first order in a sale's crowd: at a
    moment when the seller's *other* new customers crowded in.

    A farm's accounts are made one by one and order one by one; an ordinary customer made
    in the same days who ordered at a flash sale shares the farm's seller and creation
    burst but not its pace. Each account's neighbourhood is one creation step of the
    cohort (:func:`is_crowd`'s clock: the time the cohort takes to make one account)
    centred on its first order; ``others`` (sorted days) are the first orders at the
    seller of accounts outside the cohort, and ``per_day`` their rate over the data. An
    account is in a crowd when the others in its neighbourhood are more than that rate
    explains with a Poisson tail below ``10 ** -min_significance`` corrected for the
    cohort's accounts (Bonferroni). The baseline leaves the cohort out, so a farm's own
    orders never make it a crowd. Returns a boolean per account."""
    n = len(made)
    crowd = np.zeros(n, dtype=bool)
    if n < 2 or not len(others) or per_day <= 0:
        return crowd
    q = np.quantile(made, [0.25, 0.75])
    step = float(q[1] - q[0]) / (n / 2.0)
    if step <= 0:
        return crowd
    k = np.searchsorted(others, ordered + step / 2.0, side="right") - np.searchsorted(
        others, ordered - step / 2.0, side="left"
    )
    mu = np.full(n, per_day * step)
    lp = _poisson_log10_sf(k, mu)
    return (k >= 2.0 * mu) & (lp + math.log10(n) <= -min_significance)


def loner_cohorts(
    seller: np.ndarray,
    made: np.ndarray,
    ordered: np.ndarray,
    coupon: np.ndarray,
    tie: np.ndarray,
    end_days: float,
    scales: Sequence[float],
    min_significance: float,
    min_size: int,
) -> list[tuple[np.ndarray, float, float, float]]:
    """Incentive farms whose accounts share nothing: accounts made in a burst whose first
    order went to the same seller, each placing a small and quick first order.

    Rows are accounts of one or two orders that no identifier links to another account;
    ``seller`` (codes) is the first order's seller, ``made`` and ``ordered`` the creation and
    first order times (days), ``coupon`` the null probability of a first order at least as
    small and quick (:func:`coupon_ranks`) and ``tie`` a rank that breaks ties. At each
    level of :data:`_COUPON_LEVELS`, the accounts whose ``coupon`` is at most the level are
    scanned per seller by creation time (:func:`_scan`: windows of every length in
    ``scales`` from every account, against the seller's share of such accounts times how
    many of them every seller got over the window, until ``end_days``: Kulldorff's
    space-time permutation scan, which a market's own surges of new accounts do not
    fool, as only the seller's excess over them counts); the tail is corrected for every
    account, window length and level tested (Bonferroni) and must reach
    ``min_significance``. Windows are
    taken best first, each only when none of its accounts is in one taken before (the most
    likely cluster, then the next apart from it, as Kulldorff's secondary clusters), so
    that two campaigns at one seller stay two and a busy seller's ordinary customers of
    the weeks around a farm do not join it. A window whose first orders are packed tighter
    than its accounts' delays explain (:func:`is_crowd`, a sale's crowd) is left out.
    Returns per cohort its rows, corrected significance, window length (days) and level."""
    n = len(seller)
    if n < max(2, min_size):
        return []
    penalty = math.log10(max(1, n * len(scales) * len(_COUPON_LEVELS)))
    alpha = 10.0**-min_significance
    candidates: dict[tuple[int, int, int], tuple[float, np.ndarray, float]] = {}
    for li, level in enumerate(_COUPON_LEVELS):
        sel = np.flatnonzero(coupon <= level)
        if len(sel) < min_size:
            continue
        order = sel[np.lexsort((tie[sel], made[sel], seller[sel]))]
        g = seller[order]
        t = made[order]
        # the space-time permutation null: the seller's share of such accounts times
        # how many of them (at every seller) the market made over the window
        market = _Baseline(made[sel], end_days)
        per = np.bincount(g)[g].astype(float)
        rate = per / np.maximum(market.total - per, 1.0)
        best, stop, length = _scan(g, t, rate, market, scales)
        sig = -best - penalty
        k = stop - np.arange(len(order))
        for i in np.flatnonzero((sig >= min_significance) & (k >= min_size)).tolist():
            # a window holding two bursts apart (two campaigns at one seller) is two
            for a, b in _burst_parts(t[i : stop[i]], alpha):
                a, b = a + i, b + i
                if (li, a, b) in candidates or b - a < min_size:
                    continue
                end = max(float(t[b - 1]), float(t[a]) + scales[0])
                expected = rate[a] * market.expected(
                    np.array([t[a]]), np.array([end]), np.array([float(b - a)])
                )
                if b - a - 1 < 2.0 * float(expected[0]):
                    continue
                part = -float(_poisson_log10_sf(np.array([b - a - 1]), expected)[0]) - penalty
                if part >= min_significance:
                    candidates[(li, a, b)] = (part, order[a:b], float(length[i]))
    if not candidates:
        return []
    ranked = sorted(candidates.items(), key=lambda c: (-c[1][0], c[0]))
    claimed = np.zeros(n, dtype=bool)
    out: list[tuple[np.ndarray, float, float, float]] = []
    for (li, _a, _b), (sig_part, rows, window) in ranked:
        if claimed[rows].any():
            continue
        claimed[rows] = True
        if is_crowd(made[rows], ordered[rows]):
            continue
        out.append((rows, sig_part, window, _COUPON_LEVELS[li]))
    return out


def _burst_parts(t: np.ndarray, alpha: float) -> list[tuple[int, int]]:
    """The bursts of sorted times ``t``: split at a gap longer than bursts of their
    density leave, recursively. A gap is too long when, for ``k - 1`` exponential gaps
    at the rate of the sparser side (its accounts over its span), the longest reaching
    it has probability at most ``alpha``; a farm's sparse tail is not cut off by the
    density of its core. Returns ``(start, stop)`` index ranges."""
    k = len(t)
    if k < 3:
        return [(0, k)]
    gaps = np.diff(t)
    cut = int(np.argmax(gaps)) + 1
    g = float(gaps[cut - 1])
    rates = [
        (len(side) - 1) / float(side[-1] - side[0])
        for side in (t[:cut], t[cut:])
        if len(side) >= 2 and side[-1] > side[0]
    ]
    if not rates or g <= 0:
        return [(0, k)]
    rate = min(rates)
    p = -math.expm1((k - 1) * math.log1p(-math.exp(-rate * g))) if rate * g < 700 else 0.0
    if p > alpha:
        return [(0, k)]
    left = _burst_parts(t[:cut], alpha)
    right = [(a + cut, b + cut) for a, b in _burst_parts(t[cut:], alpha)]
    return left + right


def _pair_cohorts(
    cohorts: list[tuple[np.ndarray, float, float, float]],
    seller: np.ndarray,
    made: np.ndarray,
    floor: float,
    min_significance: float,
) -> list[list[int]]:
    """Cohorts at different sellers that are one campaign ordering at two promoted
    sellers: each other's best match by overlap of their creation spans (at least half
    of the longer, lengths at least ``floor``), and creation times that a two-sample
    Kolmogorov-Smirnov test does not tell apart at ``10 ** -min_significance``. Pairs
    only, never chains, so that campaigns of the same days stay apart. Returns the
    cohorts' indices grouped."""
    from scipy import stats

    n = len(cohorts)
    start = np.array([float(made[c[0]].min()) for c in cohorts])
    end = np.array([float(made[c[0]].max()) for c in cohorts])
    where = np.array([int(seller[c[0][0]]) for c in cohorts])
    best = np.arange(n)
    best_f = np.zeros(n)
    order = np.argsort(start, kind="stable")
    active: list[int] = []
    for i in order.tolist():
        active = [j for j in active if end[j] >= start[i]]
        for j in active:
            if where[i] == where[j]:
                continue
            overlap = min(end[i], end[j]) - max(start[i], start[j])
            longer = max(floor, end[i] - start[i], end[j] - start[j])
            f = overlap / longer
            if f > best_f[i]:
                best_f[i], best[i] = f, j
            if f > best_f[j]:
                best_f[j], best[j] = f, i
        active.append(i)
    groups: list[list[int]] = []
    done = np.zeros(n, dtype=bool)
    for i in range(n):
        if done[i]:
            continue
        j = int(best[i])
        if j != i and int(best[j]) == i and best_f[i] >= 0.5 and not done[j]:
            a, b = made[cohorts[i][0]], made[cohorts[j][0]]
            if stats.ks_2samp(a, b).pvalue >= 10.0**-min_significance:
                groups.append(sorted((i, j)))
                done[i] = done[j] = True
                continue
        groups.append([i])
        done[i] = True
    return groups


def identity_links(
    usage: pd.DataFrame,
    *,
    hub: dict[str, float],
    min_shared: int,
    min_link_weight: float,
    pool_min_accounts: int,
    max_accounts_per_identifier: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Links between accounts (codes in ``usage["acc"]``) through shared identifiers.

    Pairs share ``min_shared`` identifiers whose hub-discounted weights add up to
    ``min_link_weight``; pairs are enumerated only for identifiers of at most their
    kind's hub limit (so a carrier IP of 50,000 accounts costs nothing). A device,
    payment method or phone of ``pool_min_accounts`` or more accounts links all of
    them, whatever its size (a star: linear in its accounts). Returns the links' two
    ends, then the two ends of the *weak* pairs: accounts sharing some identifier of at
    most its kind's hub limit without reaching the link's thresholds."""
    kinds = usage["kind"].to_numpy()
    n_acc = usage["n_accounts"].to_numpy(dtype=float)
    limit = np.array([hub.get(str(k), np.inf) for k in kinds], dtype=float)
    if max_accounts_per_identifier is not None:
        limit = np.minimum(limit, float(max_accounts_per_identifier))
    weight = usage["weight"].to_numpy(dtype=float) * np.where(
        n_acc <= limit, 1.0, (limit / n_acc) ** 2
    )
    acc = usage["acc"].to_numpy()
    n_nodes = int(acc.max()) + 1 if len(acc) else 0
    empty = np.zeros(0, dtype=np.int64)
    edges_a: list[np.ndarray] = [empty]
    edges_b: list[np.ndarray] = [empty]
    weak_a, weak_b = empty, empty
    small = usage[n_acc <= limit]
    if len(small):
        w_small = weight[n_acc <= limit]
        pair_i, pair_j = identifier_pair_rows(small)
        if len(pair_i):
            a_small = small["acc"].to_numpy()
            key = a_small[pair_i] * n_nodes + a_small[pair_j]
            grouped = pd.Series(w_small[pair_i]).groupby(key, sort=True)
            agg = pd.DataFrame({"w": grouped.sum(), "k": grouped.size()})
            strong = ((agg["k"] >= min_shared) & (agg["w"] >= min_link_weight)).to_numpy()
            pairs = agg.index.to_numpy(dtype=np.int64)
            edges_a.append(pairs[strong] // n_nodes)
            edges_b.append(pairs[strong] % n_nodes)
            weak_a, weak_b = pairs[~strong] // n_nodes, pairs[~strong] % n_nodes
    pool = usage[usage["kind"].isin(POOL_KINDS).to_numpy() & (n_acc >= pool_min_accounts)]
    if len(pool):
        first = pool.groupby("ident")["acc"].transform("min").to_numpy()
        edges_a.append(first)
        edges_b.append(pool["acc"].to_numpy())
    return (
        np.concatenate(edges_a).astype(np.int64),
        np.concatenate(edges_b).astype(np.int64),
        weak_a.astype(np.int64),
        weak_b.astype(np.int64),
    )


def _component_bursts(
    comp: np.ndarray,
    hit: np.ndarray,
    t: np.ndarray,
    rate: np.ndarray,
    baseline: _Baseline,
    scales: Sequence[float],
) -> pd.DataFrame:
    """Per component, the best creation burst of its hit accounts (see :func:`_scan`):
    ``log10p``, ``burst`` (accounts in the best window) and ``window`` (its days)."""
    rows = np.flatnonzero(hit & ~np.isnan(t))
    if not len(rows):
        return pd.DataFrame({"log10p": [], "burst": [], "window": []}, dtype=float)
    order = rows[np.lexsort((t[rows], comp[rows]))]
    best, stop, length = _scan(comp[order], t[order], rate[order], baseline, scales)
    k = stop - np.arange(len(order))
    frame = pd.DataFrame(
        {"comp": comp[order], "log10p": best, "burst": k.astype(float), "window": length}
    )
    top = frame.sort_values(["comp", "log10p", "burst"], ascending=[True, True, False])
    return top.drop_duplicates("comp").set_index("comp")


def detect_shared_identifiers(
    identifiers: pd.DataFrame,
    *,
    accounts: pd.DataFrame | None = None,
    orders: pd.DataFrame | None = None,
    max_accounts_per_identifier: int | None = None,
    max_accounts_per_instrument: int | None = None,
    min_shared: int = 2,
    min_link_weight: float = 0.5,
    pool_min_accounts: int | None = None,
    min_size: int = 3,
    max_size: int | None = None,
    household_max: int | None = None,
    new_account_days: float | None = None,
    created_window_days: float | None = None,
    small_order_quantile: float = 0.25,
    min_score: float = 0.5,
    kind_weights: dict[str, float] | None = None,
    hub_quantile: float = 0.99,
    household_quantile: float = 0.9,
    min_significance: float = 2.0,
    min_coupon_share: float = 0.5,
    as_of: datetime | None = None,
    max_evidence: int = 50,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Find groups of accounts operated together to farm incentives: shared devices,
    cards and IPs, and accounts made in a burst that each place one first order.

    Candidates come from two independent sources, joined in one graph whose connected
    components are judged:

    - **Shared identifiers.** Each identifier weighs ``kind_weight / log2(n)`` for ``n``
      accounts, and identifiers used by more accounts than their kind's
      ``hub_quantile`` in this market (a carrier, campus or proxy IP) are discounted
      further by ``(limit / n) ** 2`` and pair nobody: no identifier is cut off by a
      fixed cap and no hub links everybody. Two accounts are linked when they share
      ``min_shared`` identifiers weighing ``min_link_weight`` together; a device,
      payment method or phone used by more accounts than a household shares one
      (``pool_min_accounts``, by default one more than the market's
      ``household_quantile`` of accounts per shared instrument) links all of them,
      whatever its size.
      Accounts of one or two orders sharing an identifier below its hub limit are
      joined too (:func:`_identity_groups`).
    - **Creation bursts of accounts that share nothing** (:func:`loner_cohorts`):
      accounts tied to nobody, of one or two orders, made in a burst whose first order
      went to the same seller, more than that seller's share of such accounts explains
      (a space-time permutation scan), at levels of how small and quick their first
      order was against the seller's repeat customers (:func:`coupon_ranks`); cohorts
      at two sellers over the same days are one campaign (:func:`_pair_cohorts`), and
      accounts whose first order came with a sale's crowd are left out
      (:func:`crowd_members`, :func:`is_crowd`).

    A group tied by identifiers is reported when its accounts mostly
    (``min_coupon_share``) placed one or two orders with the first at one of its two
    main sellers, and the creation burst of those accounts is significant: a Poisson
    tail of its accounts made within a window against ``n * q * expected / N`` (``q``:
    the market's chance that an account orders once or twice with its first order at
    those sellers), Bonferroni-corrected for the groups, windows and sellers tested; a
    cohort by its own corrected significance. ``min_significance`` is that corrected
    ``-log10`` p-value (2: one chance in a hundred over the whole run).
    Households (old accounts, made apart, ordering over time) and carrier IPs (no
    links) are left alone; a small farm is found when its sharing and its burst agree,
    a big one whatever its size.

    Parameters
    ----------
    identifiers : pandas.DataFrame
        Normalised ``identifiers`` table (account_id, kind, value, first_seen).
    accounts : pandas.DataFrame, optional
        Normalised ``accounts`` table, for creation times.
    orders : pandas.DataFrame, optional
        Normalised ``orders`` table: first orders, order counts, seller shares.
    max_accounts_per_identifier : int or None
        None (default): no cap, hubs are discounted by the market's quantile. A number:
        identifiers of more accounts than this weigh nothing and link nobody (the
        former fixed cap).
    max_accounts_per_instrument : int or None
        None (default): no cap. A number: the same cap for devices, payment methods
        and phones.
    min_shared : int
        Two accounts are linked only when they share at least this many identifiers
        (or through a pool).
    min_link_weight : float
        ... and when the weights of their shared identifiers add up to at least this.
    pool_min_accounts : int or None
        A device, payment method or phone used by at least this many accounts links
        all of them. None: one more than ``household_max``.
    min_size : int
        Smallest group reported, and fewest accounts of a burst.
    max_size : int or None
        None (default): no limit (a farm of any size is reported). A number: larger
        components are left out.
    household_max : int or None
        Most accounts of a household on one instrument: the accounts-per-instrument
        signal fires only above it. None: the market's ``household_quantile`` of
        accounts per shared device, card or phone (robust to a few big pools).
    new_account_days : float or None
        Accounts created at most this many days before ``as_of`` are new. None: those
        created since the first order of the data (their whole life is in the data).
    created_window_days : float or None
        Accounts created within this many days of the group's median creation time
        count as created together. None: those in the group's most significant
        creation window.
    small_order_quantile : float
        A first order at or below this quantile of all order amounts is small (a
        detail of the explanation: amounts vary too much between markets to decide).
    min_score : float
        Groups scoring below this are not reported.
    kind_weights : dict, optional
        Weight of each identifier kind (default :data:`KIND_WEIGHTS`).
    hub_quantile : float
        Quantile of accounts per identifier, per kind, above which an identifier is a
        hub (discounted, pairs nobody).
    household_quantile : float
        Quantile of accounts per shared instrument taken as the biggest household.
    min_significance : float
        Corrected ``-log10`` p-value a creation burst must reach.
    min_coupon_share : float
        Share of a group's accounts that must have placed one or two orders, the first
        at one of its two main sellers.
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
    .. [3] Kulldorff, "A spatial scan statistic", Communications in Statistics 1997
       (Poisson scan windows of several lengths).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-01-01", tz="UTC")
    >>> ids = pd.DataFrame({
    ...     "account_id": [f"a{i}" for i in range(8)] * 2,
    ...     "kind": ["device"] * 8 + ["payment"] * 8,
    ...     "value": ["d1"] * 8 + ["p1"] * 8,
    ...     "first_seen": [t] * 16})
    >>> acc = pd.DataFrame({"account_id": [f"a{i}" for i in range(8)] + ["old"],
    ...     "roles": "buyer",
    ...     "created_at": [t - pd.Timedelta(days=2)] * 8 + [t - pd.Timedelta(days=900)]})
    >>> orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(9)],
    ...     "buyer_id": [f"a{i}" for i in range(8)] + ["old"], "seller_id": "s",
    ...     "product_id": "p", "amount": 5.0, "status": "completed",
    ...     "ts": [t - pd.Timedelta(days=1)] * 8 + [t - pd.Timedelta(days=30)]})
    >>> found = detect_shared_identifiers(ids, accounts=acc, orders=orders, seed=0)
    >>> [(f.kind, len(f.members)) for f in found]
    [('identity_cluster', 8)]
    """
    _check_params(
        max_accounts_per_identifier,
        min_shared,
        min_size,
        min_score,
        hub_quantile,
        min_coupon_share,
    )
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
        "hub_quantile": hub_quantile,
        "household_quantile": household_quantile,
        "min_significance": min_significance,
        "min_coupon_share": min_coupon_share,
        "other_identifier_weight": other_identifier_weight,
        "as_of": iso(as_of) if as_of is not None else None,
        "seed": seed if isinstance(seed, int) else None,
    }
    info = DetectorInfo(name=NAME, version=VERSION, params=params)
    big = np.iinfo(np.int64).max // 4
    usage = identifier_usage(
        identifiers,
        max_accounts_per_identifier=big,
        kind_weights=kind_weights,
        max_accounts_per_instrument=(
            big if max_accounts_per_instrument is None else max_accounts_per_instrument
        ),
        other_weight=other_identifier_weight,
    )
    if max_accounts_per_identifier is not None and len(usage):
        keep = usage["kind"].isin(POOL_KINDS) | (usage["n_accounts"] <= max_accounts_per_identifier)
        usage = usage[keep.to_numpy()]
    now = reference_time(
        (identifiers, "first_seen"),
        (identifiers, "last_seen"),
        (orders, "ts"),
        (accounts, "created_at"),
        as_of=as_of,
    )
    summary = order_summary(orders)
    return _find(
        usage=usage,
        summary=summary,
        created=account_created(accounts),
        shares=seller_shares(orders, summary),
        amounts=(
            orders["amount"].to_numpy(dtype=float)
            if orders is not None and len(orders)
            else np.zeros(0, dtype=float)
        ),
        orders=orders,
        now=now,
        p=params,
        info=info,
        max_evidence=max_evidence,
    )


def _find(
    *,
    usage: pd.DataFrame,
    summary: pd.DataFrame,
    created: pd.Series,
    shares: pd.Series,
    amounts: np.ndarray,
    orders: pd.DataFrame | None,
    now: pd.Timestamp,
    p: dict[str, Any],
    info: DetectorInfo,
    max_evidence: int,
) -> list[Finding]:
    """The detector once its inputs are tables of one row per account (``summary``,
    ``created``), per seller (``shares``) and per account-identifier (``usage``, as
    :func:`identifier_usage` returns it): shared by the local and the Spark engines."""
    min_size = int(p["min_size"])
    min_sig = float(p["min_significance"])
    ordered = summary.index[summary["n_orders"].to_numpy(dtype=float) > 0]
    cr_ordered = created.reindex(ordered).dropna()
    now_days = float(_days(pd.Series([now]))[0])
    baseline = _Baseline(_days(cr_ordered), now_days)
    first_ts = pd.to_datetime(summary["first_ts"], utc=True) if len(summary) else None
    data_start = first_ts.min() if first_ts is not None and len(first_ts) else now
    span_days = max(1.0 / 24.0, (now - data_start).total_seconds() / 86400.0)
    scales = [d for d in _SCALES_DAYS if d <= 2 * span_days] or [_SCALES_DAYS[0]]
    start_days = float(_days(pd.Series([data_start]))[0])
    small_amount = (
        float(np.quantile(amounts[~np.isnan(amounts)], float(p["small_order_quantile"])))
        if len(amounts) and (~np.isnan(amounts)).any()
        else math.nan
    )
    env = _Env(
        p=p,
        summary=summary,
        created=created,
        baseline=baseline,
        scales=scales,
        now_days=now_days,
        start_days=start_days,
    )
    groups, linked = _identity_groups(usage, shares, env)
    groups += _loner_groups(summary, created, orders, data_start, linked, env)
    passing = [g for g in groups if g["score"] >= float(p["min_score"]) and g["n"] >= min_size]
    passing = [g for g in passing if g["significance"] >= min_sig]
    if not passing:
        return []
    group_accounts = set(np.concatenate([g["names"] for g in passing]).tolist())
    group_orders = (
        orders[orders["buyer_id"].astype(str).isin(group_accounts)]
        if orders is not None and len(orders)
        else None
    )
    findings = [
        _finding(
            x=g,
            group_orders=group_orders,
            now=now,
            p=p,
            small_amount=small_amount,
            info=info,
            max_evidence=max_evidence,
        )
        for g in passing
    ]
    return rank(findings)


class _Env:
    """What every group of one run is judged against: the policy's parameters, the
    per-account tables, the market's creations and the scan's window lengths."""

    def __init__(
        self,
        *,
        p: dict[str, Any],
        summary: pd.DataFrame,
        created: pd.Series,
        baseline: _Baseline,
        scales: Sequence[float],
        now_days: float,
        start_days: float,
    ) -> None:
        self.p = p
        self.summary = summary
        self.created = created
        self.baseline = baseline
        self.scales = list(scales)
        self.now_days = now_days
        self.start_days = start_days
        self.min_size = int(p["min_size"])
        self.min_sig = float(p["min_significance"])

    def is_new(self, t_days: np.ndarray) -> np.ndarray:
        """Accounts made since the data starts (or within ``new_account_days``)."""
        known = ~np.isnan(t_days)
        if self.p["new_account_days"] is not None:
            age = self.now_days - np.nan_to_num(t_days, nan=-np.inf)
            return known & (age <= float(self.p["new_account_days"]))
        return known & (np.nan_to_num(t_days, nan=-np.inf) >= self.start_days)

    def score(
        self,
        *,
        significance: float,
        n: int,
        coupon_share: float,
        together_share: float,
        new_share: float,
        per_instrument: float,
    ) -> tuple[float, list[Signal]]:
        """A group's score from its signals (:func:`weighted_score`)."""
        return weighted_score(
            [
                ("significance", significance, self.min_sig, 0.3),
                ("group_size", float(n), float(self.min_size), 0.05),
                ("coupon_order_share", coupon_share, float(self.p["min_coupon_share"]), 0.25),
                ("created_together_share", together_share, 0.5, 0.2),
                ("new_account_share", new_share, 0.5, 0.15),
                ("accounts_per_instrument", per_instrument, 2.0, 0.05),
            ]
        )

    def together(self, t: np.ndarray, hit: np.ndarray, window: float) -> np.ndarray:
        """Accounts made within the group's densest window of ``window`` days of its hit
        accounts (or within ``created_window_days`` of their median)."""
        known = ~np.isnan(t)
        if self.p["created_window_days"] is not None:
            med = float(np.nanmedian(t)) if known.any() else math.nan
            return known & (
                np.abs(np.nan_to_num(t - med, nan=np.inf)) <= float(self.p["created_window_days"])
            )
        t_hit = np.sort(t[hit & known])
        if not len(t_hit):
            return np.zeros(len(t), dtype=bool)
        j = np.searchsorted(t_hit, t_hit + window, side="right") - np.arange(len(t_hit))
        start = float(t_hit[int(np.argmax(j))])
        return known & (t >= start) & (t <= start + window)


def _identity_groups(
    usage: pd.DataFrame, shares: pd.Series, env: _Env
) -> tuple[list[dict[str, Any]], pd.Index]:
    """Groups of accounts that identifiers tie together, judged as incentive farms; and
    every account tied to another (the rest are left to :func:`_loner_groups`).

    Accounts are linked by :func:`identity_links`; two accounts of one or two orders that
    share an identifier without reaching a link's thresholds (one card or one IP of a
    farm's small pools) are joined too, as an operator's accounts, not a household's,
    place one coupon order each. A group is judged when most of it (``min_coupon_share``)
    placed one or two orders with the first at one of the group's two main sellers, and
    its significance is that of those accounts' creation burst: a Poisson tail of them
    made within a window against ``n * q * expected / N`` (``q``: the market's chance
    that an account orders once or twice with its first order at those sellers),
    Bonferroni-corrected for the groups, windows and sellers tested. The group reported
    is the whole group: a commission ring's buyers who order again belong to it too."""
    p = env.p
    min_size = env.min_size
    summary = env.summary
    if not len(usage):
        return [], pd.Index([], dtype=object)
    hub = hub_limits(usage, float(p["hub_quantile"]))
    household = (
        int(p["household_max"])
        if p["household_max"] is not None
        else household_size(usage, float(p["household_quantile"]))
    )
    pool_min = int(p["pool_min_accounts"]) if p["pool_min_accounts"] is not None else household + 1
    # no identifier of a household's size is a hub, however few identifiers a kind has
    hub = {k: max(v, float(household)) for k, v in hub.items()}
    names = pd.Index(np.unique(usage["account_id"].astype(str).to_numpy(dtype=object)))
    use = usage.assign(acc=names.get_indexer(usage["account_id"].astype(str)))
    ea, eb, wa, wb = identity_links(
        use,
        hub=hub,
        min_shared=int(p["min_shared"]),
        min_link_weight=float(p["min_link_weight"]),
        pool_min_accounts=pool_min,
        max_accounts_per_identifier=p["max_accounts_per_identifier"],
    )
    s = summary.reindex(names)
    n_orders_all = s["n_orders"].fillna(0).to_numpy(dtype=float)
    few_all = (n_orders_all >= 1) & (n_orders_all <= 2)
    weak = few_all[wa] & few_all[wb]
    a = np.concatenate([ea, wa[weak]])
    b = np.concatenate([eb, wb[weak]])
    n_nodes = len(names)
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n_nodes, n_nodes)).tocsr()
    _, comp = connected_components(graph, directed=False)
    linked = np.zeros(n_nodes, dtype=bool)
    linked[a] = True
    linked[b] = True
    size = np.bincount(comp[linked], minlength=int(comp.max()) + 1)[comp]
    cand = linked & (size >= min_size)
    if p["max_size"] is not None:
        cand &= size <= int(p["max_size"])
    linked_names = names[linked]
    if not cand.any():
        return [], linked_names

    # per-account features of the candidates
    nodes = np.flatnonzero(cand)
    acc_names = names[nodes]
    comp_of = comp[nodes]
    seller_col = s["first_seller"].iloc[nodes]
    seller = seller_col.astype(object).where(seller_col.notna(), "").astype(str).to_numpy()
    few = few_all[nodes]
    t_days = _days(env.created.reindex(acc_names))
    # each component's two main first-order sellers among accounts with few orders
    fs = pd.DataFrame({"comp": comp_of, "seller": seller})[few]
    top = (
        fs.groupby(["comp", "seller"])
        .size()
        .rename("k")
        .reset_index()
        .sort_values(["comp", "k", "seller"], ascending=[True, False, True], kind="stable")
        .groupby("comp")
        .head(2)
    )
    top_key = set(zip(top["comp"].tolist(), top["seller"].tolist(), strict=True))
    in_top = np.fromiter(
        ((c, x) in top_key for c, x in zip(comp_of.tolist(), seller.tolist(), strict=True)),
        dtype=bool,
        count=len(comp_of),
    )
    hit = few & in_top
    share_of = shares.reindex(top["seller"]).fillna(0.0).to_numpy(dtype=float)
    top_share = pd.Series(share_of).groupby(top["comp"].to_numpy()).sum()
    n_sellers = pd.Series(seller[few]).groupby(comp_of[few]).nunique()
    r_few = float(np.mean((summary["n_orders"] <= 2).to_numpy())) if len(summary) else 1.0
    comp_n = pd.Series(comp_of).value_counts().sort_index()
    comp_hits = pd.Series(hit.astype(int)).groupby(comp_of).sum().reindex(comp_n.index)
    eligible = comp_hits.index[
        (comp_hits >= min_size) & (comp_hits >= float(p["min_coupon_share"]) * comp_n)
    ]
    if not len(eligible):
        return [], linked_names
    q = r_few * top_share.reindex(comp_n.index).fillna(0.0)
    rate_comp = (comp_n * q / max(env.baseline.total, 1.0)).reindex(comp_of).to_numpy(float)
    in_elig = np.isin(comp_of, eligible.to_numpy())
    bursts = _component_bursts(comp_of, hit & in_elig, t_days, rate_comp, env.baseline, env.scales)
    correction = (
        math.log10(max(1, len(eligible)))
        + np.log10(np.maximum(1.0, comp_hits.reindex(bursts.index).to_numpy(dtype=float)))
        + math.log10(len(env.scales))
        + np.log10(np.maximum(1.0, n_sellers.reindex(bursts.index).fillna(1).to_numpy(float)))
    )
    significance = pd.Series(-bursts["log10p"].to_numpy() - correction, index=bursts.index)
    is_new_all = env.is_new(t_days)
    shared_all = use[cand[use["acc"].to_numpy()]]
    shared_all = shared_all.assign(comp=comp[shared_all["acc"].to_numpy()])
    shared_all = shared_all[
        shared_all.groupby(["comp", "ident"])["acc"].transform("size").to_numpy() >= 2
    ]
    degree = np.bincount(np.concatenate([a, b]), minlength=n_nodes)
    by_comp = pd.Series(np.arange(len(comp_of))).groupby(comp_of).indices
    out: list[dict[str, Any]] = []
    for c in eligible.tolist():
        sig = float(significance.get(c, -np.inf))
        if not sig >= env.min_sig:
            continue
        pos = np.asarray(by_comp[c])
        n = len(pos)
        window = float(bursts["window"].get(c, env.scales[-1]))
        together = env.together(t_days[pos], hit[pos], window)
        sh = shared_all[shared_all["comp"].to_numpy() == c]
        n_strong = int(sh[sh["kind"].isin(POOL_KINDS)]["ident"].nunique())
        per_instrument = n / n_strong if n_strong and n > household else 0.0
        is_new = is_new_all[pos]
        score, signals = env.score(
            significance=sig,
            n=n,
            coupon_share=float(hit[pos].mean()),
            together_share=float(together.mean()),
            new_share=float(is_new.mean()),
            per_instrument=per_instrument,
        )
        out.append(
            {
                "names": np.asarray(acc_names[pos], dtype=object),
                "degree": degree[nodes[pos]].astype(float),
                "n": n,
                "score": score,
                "signals": signals,
                "significance": sig,
                "sh": sh,
                "coupon": hit[pos],
                "together": together,
                "is_new": is_new,
                "per_instrument": per_instrument,
                "window": window,
            }
        )
    return out, linked_names


def _loner_groups(
    summary: pd.DataFrame,
    created: pd.Series,
    orders: pd.DataFrame | None,
    data_start: pd.Timestamp,
    linked: pd.Index,
    env: _Env,
) -> list[dict[str, Any]]:
    """Incentive farms among accounts that share nothing with anyone: the cohorts of
    :func:`loner_cohorts` (accounts of one or two orders), those at two sellers joined
    by :func:`_pair_cohorts`. A cohort also takes the accounts of more orders made over
    its span whose first order, as small and quick, went to its seller: the burst is the
    operation's, whether or not each account ordered again (a commission ring's buyers
    made together), and it is judged, like a group tied by identifiers, by the share of
    its accounts that placed one or two orders (``min_coupon_share``)."""
    if not len(summary):
        return []
    n_orders = summary["n_orders"].to_numpy(dtype=float)
    made_all = _days(created.reindex(summary.index))
    ordered_all = _days(summary["first_ts"])
    known = (
        (n_orders >= 1)
        & ~np.isnan(made_all)
        & ~np.isnan(ordered_all)
        & ~np.asarray(summary.index.isin(linked), dtype=bool)
    )
    ok = known & (n_orders <= 2)
    if ok.sum() < env.min_size:
        return []
    ranks = coupon_ranks(orders, summary, created, data_start)
    coupon_all = (ranks["amount_rank"] * ranks["delay_rank"]).to_numpy(dtype=float)
    seller_all, _ = pd.factorize(summary["first_seller"].astype(str))
    rows = np.flatnonzero(ok)
    seller_code = seller_all[rows]
    made = made_all[rows]
    ordered = ordered_all[rows]
    tie = np.arange(len(rows))  # the summary is sorted by account id
    cohorts = loner_cohorts(
        seller_code,
        made,
        ordered,
        coupon_all[rows],
        tie,
        env.now_days,
        env.scales,
        env.min_sig,
        env.min_size,
    )
    if not cohorts:
        return []
    # accounts of three orders or more, by seller then creation: a cohort's other members
    more = np.flatnonzero(known & (n_orders > 2))
    more = more[np.lexsort((made_all[more], seller_all[more]))]
    key_more = seller_all[more].astype(float) * 1e6 + made_all[more] - env.start_days
    # every account's first order by seller then time: the crowds a cohort is checked for
    firsts = np.flatnonzero(~np.isnan(ordered_all))
    firsts = firsts[np.lexsort((ordered_all[firsts], seller_all[firsts]))]
    first_seller = seller_all[firsts]
    span_days = max(env.scales[0], env.now_days - env.start_days)
    out: list[dict[str, Any]] = []
    empty_shared = pd.DataFrame(
        {c: pd.Series([], dtype=object) for c in ("account_id", "kind", "value", "ident")}
    )
    for group in _pair_cohorts(cohorts, seller_code, made, env.scales[0], env.min_sig):
        parts = []
        for i in group:
            c_rows, _sig, _window, level = cohorts[i]
            x = float(seller_code[c_rows[0]])
            at = firsts[
                np.searchsorted(first_seller, int(x), side="left") : np.searchsorted(
                    first_seller, int(x), side="right"
                )
            ]
            others = np.sort(ordered_all[np.setdiff1d(at, rows[c_rows])])
            crowd = crowd_members(
                made[c_rows], ordered[c_rows], others, len(others) / span_days, env.min_sig
            )
            c_rows = c_rows[~crowd]
            if not len(c_rows):
                continue
            lo = x * 1e6 + float(made[c_rows].min()) - env.start_days
            hi = x * 1e6 + float(made[c_rows].max()) - env.start_days
            ext = more[
                np.searchsorted(key_more, lo, side="left") : np.searchsorted(
                    key_more, hi, side="right"
                )
            ]
            parts += [rows[c_rows], ext[coupon_all[ext] <= level]]
        if not parts:
            continue
        pos = np.unique(np.concatenate(parts))
        sig = max(cohorts[i][1] for i in group)
        window = max(cohorts[i][2] for i in group)
        n = len(pos)
        hit = n_orders[pos] <= 2
        coupon_share = float(hit.mean())
        if coupon_share < float(env.p["min_coupon_share"]):
            continue
        is_new = env.is_new(made_all[pos])
        together = env.together(made_all[pos], hit, window)
        score, signals = env.score(
            significance=sig,
            n=n,
            coupon_share=coupon_share,
            together_share=float(together.mean()),
            new_share=float(is_new.mean()),
            per_instrument=0.0,
        )
        out.append(
            {
                "names": np.asarray(summary.index[pos], dtype=object),
                "degree": np.full(n, float(n - 1)),
                "n": n,
                "score": score,
                "signals": signals,
                "significance": sig,
                "sh": empty_shared,
                "coupon": hit,
                "together": together,
                "is_new": is_new,
                "per_instrument": 0.0,
                "window": window,
            }
        )
    return out


def _finding(
    *,
    x: dict[str, Any],
    group_orders: pd.DataFrame | None,
    now: pd.Timestamp,
    p: dict[str, Any],
    small_amount: float,
    info: DetectorInfo,
    max_evidence: int,
) -> Finding:
    """One reported group: members, evidence and explanation."""
    group = [str(a) for a in x["names"]]
    score, signals = x["score"], x["signals"]
    n = len(group)
    order = np.argsort(np.asarray(group, dtype=object), kind="stable")
    group = [group[i] for i in order]
    coupon, together, is_new = x["coupon"][order], x["together"][order], x["is_new"][order]
    deg = x["degree"][order] / max(1, n - 1)
    own = (is_new.astype(float) + coupon.astype(float) + np.minimum(1.0, deg)) / 3.0
    mscores = np.clip(score * (0.6 + 0.4 * own), 0.0, 1.0)
    members = [
        Member(account_id=a, role="account", score=round(float(s), 6))
        for a, s in zip(group, mscores, strict=True)
    ]
    shared = x["sh"]
    rows: list[dict[str, Any]] = []
    for _, g in shared.groupby("ident", sort=True):
        accs = sorted(g["account_id"].astype(str).tolist())
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
    n_orders_total = 0
    if group_orders is not None and len(group_orders):
        og = group_orders[group_orders["buyer_id"].astype(str).isin(set(group))].sort_values(
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
    evidence: dict[str, list[dict[str, Any]]] = {
        "identifiers": cap_rows(rows, max_evidence),
        "orders": order_rows,
        "counts": [
            {"source": "identifiers", "shown": min(len(rows), max_evidence), "total": len(rows)},
            {"source": "orders", "shown": len(order_rows), "total": n_orders_total},
        ],
    }
    if len(shared):
        kinds = shared.drop_duplicates("ident")["kind"].value_counts().sort_index()
        what = ", ".join(count_noun(int(v), str(k)) for k, v in kinds.items())
        text = f"{n} accounts share {what} ({len(rows)} identifiers used by few other accounts)"
    else:
        text = f"{n} accounts share no identifier but were made in one burst"
    if x["per_instrument"]:
        text += f", {x['per_instrument']:.1f} accounts per device/payment/phone"
    if p["new_account_days"] is not None:
        text += f". {int(is_new.sum())} were created in the {p['new_account_days']:g} days "
        text += f"before {now.date().isoformat()}"
    else:
        text += f". {int(is_new.sum())} were created after the data starts"
    if p["created_window_days"] is not None:
        text += f", {int(together.sum())} within {p['created_window_days']:g} days of each other"
    else:
        text += f", {int(together.sum())} within the same {x['window']:g} days"
    text += f"; {int(coupon.sum())} placed one or two orders, the first at one of the "
    text += "group's two main sellers"
    if not math.isnan(small_amount):
        text += f" (a small order is at most {small_amount:.2f})"
    text += "."
    return Finding.build(
        kind=KIND,
        score=score,
        members=members,
        signals=signals,
        explanation=text,
        detector=info,
        evidence=evidence,
    )
