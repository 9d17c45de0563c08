"""The state of a synthetic marketplace while it is generated: integer codes, no strings.

Accounts, streams and products are numbered ``0..n-1``; every table is collected as chunks
of numpy arrays and turned into strings only when it is written. Times are Unix seconds.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from ._params import (
    DAY,
    END,
    HISTORY_START,
    HOUR,
    REFERENCE_NOW,
    SPAN_DAYS,
    WorldParams,
    scaled_count,
)

__all__ = ["DAY", "END", "HISTORY_START", "HOUR", "REFERENCE_NOW", "SPAN_DAYS", "scaled_count"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Start of the default world's span (a world's own is :attr:`World.start`).
START = END - SPAN_DAYS * DAY

# codes of the contract's enums
VIEW, LIKE, COMMENT, SHARE, GIFT = range(5)
COMPLETED, CANCELLED, REFUNDED = range(3)
DEVICE, IP, PAYMENT, PHONE, ADDRESS = range(5)
ABUSIVE, LEGIT = range(2)
CREATOR, SELLER, BUYER = 1, 2, 4

#: Relative activity per local hour (UTC+8 market: lunch and evening peaks).
_HOUR_WEIGHTS = np.array(
    [
        *(2.0, 1.2, 0.7, 0.4, 0.3, 0.3, 0.5, 0.9, 1.3, 1.6, 1.8, 2.2),
        *(2.6, 2.4, 2.1, 2.0, 2.1, 2.4, 3.0, 3.8, 4.4, 4.6, 4.0, 3.0),
    ]
)
#: Relative activity per weekday, Monday first (busier weekends).
_WEEKDAY_WEIGHTS = np.array([0.9, 0.9, 0.95, 1.0, 1.15, 1.3, 1.25])
_LOCAL_OFFSET_HOURS = 8


@dataclass
class World:
    """Everything generated so far, as integer codes.

    ``params`` shapes the marketplace (default: :meth:`WorldParams.default` for ``events``);
    ``start``, ``span_days``, ``history_start`` and ``offset_hours`` come from it.
    """

    seed: int
    events: int
    params: WorldParams | None = None
    n_accounts: int = 0
    n_legit: int = 0
    #: creators already given a part (fan club, viral stream, farm target): kept apart
    reserved_creators: set[int] = field(default_factory=set)
    # accounts (chunks)
    _created: list[IntArray] = field(default_factory=list)
    _roles: list[npt.NDArray[np.uint8]] = field(default_factory=list)
    _view_w: list[FloatArray] = field(default_factory=list)
    _buy_w: list[FloatArray] = field(default_factory=list)
    _baseline: list[BoolArray] = field(default_factory=list)
    _abuse: list[BoolArray] = field(default_factory=list)
    # pools of creators and sellers with their popularity
    creators: list[tuple[IntArray, FloatArray]] = field(default_factory=list)
    sellers: list[tuple[IntArray, FloatArray]] = field(default_factory=list)
    # streams (set once)
    stream_creator: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    stream_start: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    stream_end: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    stream_weight: FloatArray = field(default_factory=lambda: np.empty(0, np.float64))
    stream_title: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    # products (set once): seller and price, sorted by seller
    product_seller: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    product_price: FloatArray = field(default_factory=lambda: np.empty(0, np.float64))
    _product_offsets: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    # table chunks
    engagements: list[dict[str, Any]] = field(default_factory=list)
    follows: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    affiliations: list[dict[str, Any]] = field(default_factory=list)
    identifiers: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    truth: list[tuple[str, str, IntArray, str]] = field(default_factory=list)
    # bookkeeping
    planted_events: int = 0
    rings: dict[str, int] = field(default_factory=dict)
    # from the parameters
    start: int = field(init=False, default=START)
    span_days: int = field(init=False, default=SPAN_DAYS)
    history_start: int = field(init=False, default=HISTORY_START)
    offset_hours: float = field(init=False, default=_LOCAL_OFFSET_HOURS)
    _reserved: BoolArray = field(default_factory=lambda: np.zeros(0, bool))
    _streams_by_creator: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    _stream_offsets: IntArray = field(default_factory=lambda: np.empty(0, np.int64))

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = WorldParams.default(self.events)
        p = self.params
        self.span_days = p.span_days
        self.start = END - p.span_days * DAY
        self.history_start = END - p.history_days * DAY
        self.offset_hours = p.utc_offset_hours

    @property
    def p(self) -> WorldParams:
        """The world's parameters."""
        assert self.params is not None
        return self.params

    # ------------------------------------------------------------------ randomness

    def rng(self, name: str) -> np.random.Generator:
        """A generator of its own for one part of the marketplace, so parts stay independent."""
        return np.random.default_rng([self.seed, zlib.crc32(name.encode())])

    # ------------------------------------------------------------------ accounts

    def add_accounts(
        self,
        created: IntArray,
        roles: int | npt.NDArray[np.uint8],
        *,
        view_w: float | FloatArray = 0.0,
        buy_w: float | FloatArray = 0.0,
        baseline: bool = True,
        abuse: bool = False,
    ) -> IntArray:
        """Append accounts; return their indices."""
        n = len(created)
        idx = np.arange(self.n_accounts, self.n_accounts + n, dtype=np.int64)
        self.n_accounts += n
        self._created.append(np.asarray(created, dtype=np.int64))
        self._roles.append(np.broadcast_to(np.asarray(roles, dtype=np.uint8), (n,)).copy())
        self._view_w.append(np.broadcast_to(np.asarray(view_w, dtype=np.float64), (n,)).copy())
        self._buy_w.append(np.broadcast_to(np.asarray(buy_w, dtype=np.float64), (n,)).copy())
        self._baseline.append(np.full(n, baseline))
        self._abuse.append(np.full(n, abuse))
        return idx

    @property
    def created(self) -> IntArray:
        return np.concatenate(self._created) if self._created else np.empty(0, np.int64)

    @property
    def roles(self) -> npt.NDArray[np.uint8]:
        return np.concatenate(self._roles)

    @property
    def view_weight(self) -> FloatArray:
        return np.concatenate(self._view_w)

    @property
    def buy_weight(self) -> FloatArray:
        return np.concatenate(self._buy_w)

    @property
    def baseline(self) -> BoolArray:
        return np.concatenate(self._baseline)

    @property
    def abuse(self) -> BoolArray:
        return np.concatenate(self._abuse)

    def creator_pool(self) -> tuple[IntArray, FloatArray]:
        return (
            np.concatenate([c for c, _ in self.creators]),
            np.concatenate([p for _, p in self.creators]),
        )

    def seller_pool(self) -> tuple[IntArray, FloatArray]:
        return (
            np.concatenate([s for s, _ in self.sellers]),
            np.concatenate([p for _, p in self.sellers]),
        )

    # ------------------------------------------------------------------ tables

    def add_engagements(
        self,
        account: IntArray,
        stream: IntArray,
        kind: IntArray,
        ts: IntArray,
        amount: FloatArray | None = None,
        *,
        planted: bool = True,
    ) -> None:
        n = len(account)
        if amount is None:
            amount = np.full(n, np.nan)
        self.engagements.append(
            {
                "account": account.astype(np.int64),
                "stream": stream.astype(np.int64),
                "kind": kind.astype(np.int8),
                "ts": ts.astype(np.int64),
                "amount": amount.astype(np.float64),
                "planted": np.full(n, planted),
            }
        )
        if planted:
            self.planted_events += n

    def add_follows(self, follower: IntArray, creator: IntArray, ts: IntArray) -> None:
        self.follows.append(
            {"follower": follower.astype(np.int64), "creator": creator.astype(np.int64), "ts": ts}
        )

    def add_orders(
        self,
        buyer: IntArray,
        seller: IntArray,
        product: IntArray,
        amount: FloatArray,
        status: IntArray,
        ts: IntArray,
        *,
        creator: IntArray | None = None,
        stream: IntArray | None = None,
        rate: FloatArray | None = None,
        refund_delay: IntArray | None = None,
    ) -> None:
        """Append orders. ``creator``/``stream`` use -1 for none; ``rate`` gives commission."""
        n = len(buyer)
        minus = np.full(n, -1, dtype=np.int64)
        creator = minus if creator is None else creator.astype(np.int64)
        stream = minus if stream is None else stream.astype(np.int64)
        amount = np.round(np.maximum(amount, 0.5), 2).astype(np.float64)
        commission = np.full(n, np.nan)
        if rate is not None:
            has = creator >= 0
            commission[has] = np.minimum(np.round(amount[has] * rate[has], 2), amount[has])
        refunded_at = np.full(n, -1, dtype=np.int64)
        if refund_delay is not None:
            ref = status == REFUNDED
            lo = ts[ref] + 60
            refunded_at[ref] = np.maximum(lo, np.minimum(ts[ref] + refund_delay[ref], END - 60))
        self.orders.append(
            {
                "buyer": buyer.astype(np.int64),
                "seller": seller.astype(np.int64),
                "product": product.astype(np.int64),
                "amount": amount,
                "status": status.astype(np.int8),
                "ts": ts.astype(np.int64),
                "creator": creator,
                "stream": stream,
                "commission": commission,
                "refunded_at": refunded_at,
            }
        )

    def add_affiliations(
        self, creator: IntArray, seller: IntArray, rate: FloatArray, *, recent: bool = False
    ) -> None:
        self.affiliations.append(
            {
                "creator": creator.astype(np.int64),
                "seller": seller.astype(np.int64),
                "rate": np.round(rate, 3),
                "recent": np.full(len(creator), recent),
            }
        )

    def add_identifiers(self, account: IntArray, kind: int, value: IntArray) -> None:
        self.identifiers.append(
            {
                "account": account.astype(np.int64),
                "kind": np.full(len(account), kind, dtype=np.int8),
                "value": value.astype(np.int64),
            }
        )

    def add_labels(self, account: IntArray, label: int, decided: IntArray) -> None:
        self.labels.append(
            {
                "account": account.astype(np.int64),
                "label": np.full(len(account), label, dtype=np.int8),
                "decided": decided.astype(np.int64),
            }
        )

    def add_truth(self, ring_id: str, kind: str, accounts: IntArray, role: str) -> None:
        self.truth.append((ring_id, kind, np.asarray(accounts, dtype=np.int64), role))

    def count_ring(self, kind: str) -> int:
        """Register one more ring of ``kind``; return its number (from 1)."""
        self.rings[kind] = self.rings.get(kind, 0) + 1
        return self.rings[kind]

    # ------------------------------------------------------------------ parts

    def reserve(self, creators: IntArray) -> None:
        """Give creators a part (fan club, viral stream, farm target) so others avoid them."""
        self.reserved_creators.update(int(c) for c in creators)
        if len(self._reserved) < self.n_accounts:
            grown = np.zeros(self.n_accounts, dtype=bool)
            grown[: len(self._reserved)] = self._reserved
            self._reserved = grown
        self._reserved[np.asarray(creators, dtype=np.int64)] = True

    def unreserved(self, creators: IntArray) -> IntArray:
        """The creators (in their order) that have no part yet."""
        creators = np.asarray(creators, dtype=np.int64)
        mask = self._reserved
        inside = creators < len(mask)
        taken = np.zeros(len(creators), dtype=bool)
        taken[inside] = mask[creators[inside]]
        return creators[~taken]

    def streams_of(self, creators: int | IntArray) -> IntArray:
        """The streams of one or several creators, in stream order."""
        if len(self._stream_offsets) != self.n_accounts + 1:
            order = np.argsort(self.stream_creator, kind="stable").astype(np.int64)
            self._streams_by_creator = order
            self._stream_offsets = np.searchsorted(
                self.stream_creator[order], np.arange(self.n_accounts + 1), side="left"
            )
        c = np.atleast_1d(np.asarray(creators, dtype=np.int64))
        lo, hi = self._stream_offsets[c], self._stream_offsets[c + 1]
        if len(c) == 1:
            return self._streams_by_creator[lo[0] : hi[0]]
        parts = [self._streams_by_creator[a:b] for a, b in zip(lo, hi, strict=True)]
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, np.int64)

    def times(
        self, rng: np.random.Generator, n: int, *, lo: int | None = None, hi: int = END - HOUR
    ) -> IntArray:
        """``n`` times in ``[lo, hi]`` (``lo`` defaults to the span's start) that follow the
        market's daily and weekly rhythm in its local time."""
        return sample_times(
            rng,
            n,
            lo=self.start if lo is None else lo,
            hi=hi,
            start=self.start,
            span_days=self.span_days,
            offset_hours=self.offset_hours,
        )

    # ------------------------------------------------------------------ products

    def products_of(self, rng: np.random.Generator, sellers: IntArray) -> IntArray:
        """One random product of each given seller (every seller has at least one)."""
        if len(self._product_offsets) != self.n_accounts + 1:
            self._product_offsets = np.searchsorted(
                self.product_seller, np.arange(self.n_accounts + 1), side="left"
            )
        lo, hi = self._product_offsets[sellers], self._product_offsets[sellers + 1]
        return lo + (rng.random(len(sellers)) * (hi - lo)).astype(np.int64)


# ---------------------------------------------------------------------- sampling helpers


def _day_weights(start: int, span_days: int) -> FloatArray:
    first = datetime.fromtimestamp(start, UTC).weekday()
    w = _WEEKDAY_WEIGHTS[(first + np.arange(span_days)) % 7]
    return w / w.sum()


def sample_times(
    rng: np.random.Generator,
    n: int,
    *,
    lo: int = START,
    hi: int = END - HOUR,
    start: int = START,
    span_days: int = SPAN_DAYS,
    offset_hours: float = _LOCAL_OFFSET_HOURS,
) -> IntArray:
    """``n`` times in ``[lo, hi]`` that follow the daily and weekly rhythm of a market whose
    span starts at ``start`` and whose local time is UTC + ``offset_hours``
    (:meth:`World.times` passes a world's own)."""
    days = rng.choice(span_days, size=n, p=_day_weights(start, span_days))
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    utc_second = (hours * HOUR - round(offset_hours * HOUR)) % DAY
    t = start + days * DAY + utc_second + rng.integers(0, HOUR, size=n)
    span = hi - lo
    # fold times outside [lo, hi] back in, keeping the hour of day where possible
    out = (t < lo) | (t > hi)
    if out.any():
        t[out] = lo + (t[out] - start) % max(span, 1)
    return t.astype(np.int64)


def pick_weighted(rng: np.random.Generator, weights: FloatArray, n: int) -> IntArray:
    """``n`` indices drawn with replacement in proportion to ``weights``, in random order."""
    p = np.asarray(weights, dtype=np.float64)
    p = p / p.sum()
    counts = rng.multinomial(n, p)
    idx = np.repeat(np.arange(len(p), dtype=np.int64), counts)
    rng.shuffle(idx)
    return idx


def pick_unique(
    rng: np.random.Generator, pool: IntArray, n: int, weights: FloatArray | None = None
) -> IntArray:
    """``min(n, len(pool))`` distinct members of ``pool`` (weighted if given)."""
    n = min(n, len(pool))
    if weights is None:
        return rng.choice(pool, size=n, replace=False)
    # Efraimidis-Spirakis keys: weighted sampling without replacement in one sort
    keys = np.log(rng.random(len(pool))) / np.maximum(weights, 1e-12)
    return pool[np.argpartition(-keys, n - 1)[:n]] if n else pool[:0]


def chunk_sizes(rng: np.random.Generator, total: int, lo: int, hi: int) -> IntArray:
    """Sizes in ``[lo, hi]`` that sum to at most ``total``."""
    sizes = rng.integers(lo, hi + 1, size=max(1, total // lo + 1))
    cum = np.cumsum(sizes)
    return sizes[cum <= total].astype(np.int64)
