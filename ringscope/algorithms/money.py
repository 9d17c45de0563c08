"""The money graph and what ordinary trade looks like on it: shared by the money detectors.

The money graph has a transfer buyer -> seller for every order (its amount) and seller ->
creator for every affiliate commission (:func:`transfer_arrays`). :class:`Activity` is the
market's ordinary trade as the money detectors (:mod:`~ringscope.algorithms.cycles`,
:mod:`~ringscope.algorithms.flows`) weigh a coincidence against it: the amounts of every
transfer (how likely an amount, or a band of amounts, is), each account's payments in and
out per second over the data's time span and on its busiest days (how likely a payment
within some time of another is), and each account's counterparties against the market's
own degree quantile (hubs). It is built from counts only (:func:`activity_from_counts`),
so that an engine that counts elsewhere (Spark) builds the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Each account's busiest days kept (the busiest one outside a given stretch is asked for).
BUSY_DAYS = 4


# --------------------------------------------------------------------------- transfers


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


# --------------------------------------------------------------------------- activity


@dataclass(frozen=True)
class Activity:
    """What ordinary trade looks like: the amounts, and each account's activity.

    ``amounts`` are every transfer's amount, sorted; ``n_in``/``n_out`` each account's
    payments in/out and ``rate_in``/``rate_out`` the same per second over ``span`` seconds;
    ``degree`` its distinct counterparties; ``hub_degree`` the market's ``hub_quantile``
    quantile of ``degree`` (over accounts with any); ``busy_in``/``busy_out`` each
    account's :data:`BUSY_DAYS` busiest days of payments in/out (counts and days, busiest
    first).
    """

    amounts: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    rate_in: np.ndarray
    rate_out: np.ndarray
    degree: np.ndarray
    hub_degree: float
    span: float
    mean: float
    var: float
    busy_in: tuple[np.ndarray, np.ndarray]
    busy_out: tuple[np.ndarray, np.ndarray]

    def busiest_rate(
        self, acc: np.ndarray, first_day: np.ndarray, last_day: np.ndarray, inflow: bool
    ) -> np.ndarray:
        """Each account's payment rate on its busiest day outside ``[first_day, last_day]``.

        Marketplace trade comes in bursts (a live stream, a flash sale): a burst of an
        account that has had such days before is ordinary for it.
        """
        busy = self.busy_in if inflow else self.busy_out
        count, day = busy[0][acc], busy[1][acc]
        outside = (day < first_day[:, None]) | (day > last_day[:, None])
        # given a first payment that day, the others came at this rate (a day of one
        # payment says nothing about bursts)
        best = np.maximum(np.where(outside, count, 0).max(axis=1) - 1, 0)
        return np.asarray(best / 86_400.0, dtype=float)

    def log_amount_band(self, x: np.ndarray, width: np.ndarray) -> np.ndarray:
        """log P(a market amount lies within ``[x * exp(-width), x * exp(width)]``), per row.

        At least one amount in the market counts (the band's own), so the log is finite.
        """
        a = self.amounts
        if not len(a):
            return np.zeros(len(x))
        lo = np.asarray(x, dtype=float) * np.exp(-np.asarray(width, dtype=float))
        hi = np.asarray(x, dtype=float) * np.exp(np.asarray(width, dtype=float))
        cnt = np.searchsorted(a, hi, "right") - np.searchsorted(a, lo, "left")
        return np.asarray(np.log(np.maximum(cnt, 1) / len(a)), dtype=float)


def busiest_days(
    acc: np.ndarray, day: np.ndarray, count: np.ndarray, n_accounts: int, keep: int = BUSY_DAYS
) -> tuple[np.ndarray, np.ndarray]:
    """Each account's ``keep`` busiest days from ``(account, day, payments)`` counts.

    Returns counts and days, ``(n_accounts, keep)`` each, busiest first (ties: earlier
    day first); missing entries have count 0 and the smallest day.
    """
    counts = np.zeros((n_accounts, keep), dtype=np.int64)
    days = np.full((n_accounts, keep), np.iinfo(np.int64).min, dtype=np.int64)
    if not len(acc):
        return counts, days
    o = np.lexsort((day, -count, acc))
    a, d, cnt = acc[o], day[o], count[o]
    first = np.searchsorted(a, a, "left")
    rank = np.arange(len(a)) - first
    top = rank < keep
    counts[a[top], rank[top]] = cnt[top]
    days[a[top], rank[top]] = d[top]
    return counts, days


def day_counts(acc: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(account, day, payments)`` for every account-day with payments."""
    if not len(acc):
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    d0 = int(day.min())
    width = int(day.max()) - d0 + 1
    key, cnt = np.unique(acc.astype(np.int64) * width + (day - d0), return_counts=True)
    return key // width, key % width + d0, cnt


def activity_from_counts(
    *,
    amount_values: np.ndarray,
    amount_counts: np.ndarray,
    n_in: np.ndarray,
    n_out: np.ndarray,
    degree: np.ndarray,
    days_in: tuple[np.ndarray, np.ndarray, np.ndarray],
    days_out: tuple[np.ndarray, np.ndarray, np.ndarray],
    span: float,
    hub_degree: float,
) -> Activity:
    """The :class:`Activity` of counts: distinct amounts and how often each was paid, per
    account payments in, out and counterparties, per account-day payments in and out
    (``(account, day, count)`` arrays, accounts numbered as in ``n_in``), the data's time
    span (seconds) and the hub degree (:func:`degree_quantile`)."""
    amounts = np.repeat(np.asarray(amount_values, dtype=float), amount_counts)
    amounts.sort()
    n = len(n_in)
    return Activity(
        amounts=amounts,
        n_in=n_in,
        n_out=n_out,
        rate_in=n_in / span,
        rate_out=n_out / span,
        degree=degree,
        hub_degree=hub_degree,
        span=span,
        mean=float(amounts.mean()) if len(amounts) else 0.0,
        var=float(amounts.var()) if len(amounts) else 0.0,
        busy_in=busiest_days(*days_in, n),
        busy_out=busiest_days(*days_out, n),
    )


def degree_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """The ``q`` quantile of counterparties per account (``values`` seen ``counts`` times;
    accounts without any left out), at least 1: the market's hub degree."""
    keep = np.asarray(values) > 0
    active = np.repeat(np.asarray(values)[keep], np.asarray(counts)[keep])
    return max(float(np.quantile(active, q)), 1.0) if len(active) else 1.0


def market_activity(
    src: np.ndarray,
    dst: np.ndarray,
    amount: np.ndarray,
    t: np.ndarray,
    n_accounts: int,
    *,
    hub_quantile: float,
    min_span: float,
) -> Activity:
    """The :class:`Activity` of transfers ``src -> dst`` (account codes), amounts and
    times (seconds); the span is at least ``min_span`` seconds."""
    values, counts = np.unique(amount, return_counts=True)
    a, b = np.minimum(src, dst), np.maximum(src, dst)
    pairs = np.unique(a.astype(np.int64) * n_accounts + b)
    degree = np.bincount(
        np.concatenate([pairs // n_accounts, pairs % n_accounts]), minlength=n_accounts
    )
    day = (t // 86_400).astype(np.int64)
    span = max(float(t.max() - t.min()), min_span) if len(t) else min_span
    return activity_from_counts(
        amount_values=values,
        amount_counts=counts,
        n_in=np.bincount(dst, minlength=n_accounts),
        n_out=np.bincount(src, minlength=n_accounts),
        degree=degree,
        days_in=day_counts(dst, day),
        days_out=day_counts(src, day),
        span=span,
        hub_degree=degree_quantile(*np.unique(degree, return_counts=True), hub_quantile),
    )


def new_accounts(
    names: np.ndarray, created: pd.Series, now: pd.Timestamp, days: float
) -> np.ndarray:
    """Whether each of ``names`` was created at most ``days`` days before ``now``
    (``created``: creation times by account id; an account without one is not new)."""
    age = (now - created.reindex(pd.Index(names, dtype=object))).dt.total_seconds()
    return np.asarray((age / 86400.0 <= days).fillna(False).to_numpy(dtype=bool))


def hub_discount(degree_outside: np.ndarray, hub_degree: float) -> np.ndarray:
    """``1 / (1 + log2(d / hub_degree))`` above the hub degree, 1 at or below it."""
    ratio = np.maximum(np.asarray(degree_outside, dtype=float) / hub_degree, 1.0)
    return np.asarray(1.0 / (1.0 + np.log2(ratio)), dtype=float)
