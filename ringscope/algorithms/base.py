"""What every detector shares: its input tables, randomness, and small helpers.

Detectors are pure functions with keyword-only parameters that take the
tables they need (normalised frames of ``ringscope.contract``) and return
canonical :class:`~ringscope.model.Finding` lists. Nothing here touches a store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from ringscope.contract import IDENTIFIER_KIND_ALIASES, ORDER_STATUS_ALIASES, TABLES

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Seed = int | np.random.Generator | None

#: How much one shared identifier of a kind the policy does not map (a cookie, a
#: loyalty card number...) says about two accounts being one operator: as much as
#: the weakest kind detectors know, an IP address (see
#: :data:`ringscope.algorithms.identifiers.KIND_WEIGHTS`). The policy's
#: ``mapping.other_identifier_weight``.
OTHER_IDENTIFIER_WEIGHT = 0.4


@dataclass(frozen=True)
class ValueMap:
    """How the order statuses and identifier kinds of an export map to the ones
    detectors know (the policy's ``mapping``, see :mod:`ringscope.policy`).

    ``order_statuses`` and ``identifier_kinds`` map a value (lower case) to a
    canonical one of :data:`~ringscope.contract.ORDER_STATUSES` and
    :data:`~ringscope.contract.IDENTIFIER_KINDS`; a value they do not name is kept
    as it is (an identifier of such a kind weighs ``other_identifier_weight``).
    """

    order_statuses: Mapping[str, str]
    identifier_kinds: Mapping[str, str]
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT

    @staticmethod
    def from_aliases(
        order_statuses: Mapping[str, Any],
        identifier_kinds: Mapping[str, Any],
        other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
    ) -> ValueMap:
        """From canonical value -> its aliases (each canonical value maps to itself)."""

        def invert(aliases: Mapping[str, Any]) -> dict[str, str]:
            out = {canonical: canonical for canonical in aliases}
            out.update({v: canonical for canonical, vs in aliases.items() for v in vs})
            return out

        return ValueMap(
            invert(order_statuses), invert(identifier_kinds), float(other_identifier_weight)
        )

    @staticmethod
    def default() -> ValueMap:
        """The default policy's mapping (:data:`~ringscope.contract.ORDER_STATUS_ALIASES`,
        :data:`~ringscope.contract.IDENTIFIER_KIND_ALIASES`)."""
        return ValueMap.from_aliases(ORDER_STATUS_ALIASES, IDENTIFIER_KIND_ALIASES)


def _map_column(
    frame: pd.DataFrame, column: str, mapping: Mapping[str, str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``frame`` with ``column`` mapped through ``mapping`` (other values kept), and the
    values ``mapping`` does not name with their counts. Works on the distinct values."""
    if frame.empty or column not in frame.columns:
        return frame, {}
    codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
    if not len(uniques):
        return frame, {}
    values = [str(u) for u in uniques]
    counts = np.bincount(codes[codes >= 0], minlength=len(values))
    unmapped = {v: int(counts[i]) for i, v in enumerate(values) if v not in mapping}
    if all(mapping.get(v, v) == v for v in values):
        return frame, dict(sorted(unmapped.items()))
    # the mapped distinct values in the column's own dtype (taking from them is several
    # times faster than having pandas infer the dtype of a new column), one more for nulls
    dtype: Any = frame[column].dtype
    table = pd.array([*(mapping.get(v, v) for v in values), None], dtype=dtype)
    out = pd.Series(
        table.take(np.where(codes < 0, len(values), codes)), index=frame.index, name=column
    )
    return frame.assign(**{column: out}), dict(sorted(unmapped.items()))


def check_random_state(seed: Seed) -> np.random.Generator:
    """Normalise a seed once: an int, a Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, int | np.integer):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be an int, a numpy Generator or None, not {type(seed).__name__}")


def seed_int(seed: Seed, default: int = 0) -> int:
    """An int seed for C libraries (igraph, leidenalg) that take one."""
    if seed is None:
        return default
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    return int(seed)


def empty_table(name: str) -> pd.DataFrame:
    """An empty frame with the normalised columns and dtypes of a contract table."""
    spec = TABLES[name]
    data: dict[str, pd.Series] = {}
    for c in spec.columns:
        if c.type == "ts":
            data[c.name] = pd.Series([], dtype="datetime64[us, UTC]")
        elif c.type == "float":
            data[c.name] = pd.Series([], dtype="float64")
        else:
            data[c.name] = pd.Series([], dtype="object")
    return pd.DataFrame(data)


@dataclass(frozen=True)
class MarketTables:
    """The tables of one marketplace, normalised (see ``ringscope.contract``).

    Any table may be empty. ``as_of`` is the reference time for ages
    ("accounts created in the last 9 days"); by default the latest timestamp
    seen in the events and orders.

    ``other_identifier_weight`` is the weight of an identifier of a kind the
    detectors do not know, and ``unmapped`` lists, per ``table.column``, the
    values that :meth:`mapped` left as they are, with their counts.
    """

    accounts: pd.DataFrame = field(default_factory=lambda: empty_table("accounts"))
    streams: pd.DataFrame = field(default_factory=lambda: empty_table("streams"))
    engagements: pd.DataFrame = field(default_factory=lambda: empty_table("engagements"))
    follows: pd.DataFrame = field(default_factory=lambda: empty_table("follows"))
    orders: pd.DataFrame = field(default_factory=lambda: empty_table("orders"))
    affiliations: pd.DataFrame = field(default_factory=lambda: empty_table("affiliations"))
    identifiers: pd.DataFrame = field(default_factory=lambda: empty_table("identifiers"))
    labels: pd.DataFrame = field(default_factory=lambda: empty_table("labels"))
    as_of: datetime | None = None
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame]) -> MarketTables:
        """Tables from a mapping of contract table name to frame (missing ones empty)."""
        got: dict[str, Any] = {f.name: frames[f.name] for f in fields(cls) if f.name in frames}
        return cls(**got)

    def reference_time(self) -> pd.Timestamp:
        """``as_of`` if set, else the latest event/order time, else now."""
        if self.as_of is not None:
            t = pd.Timestamp(self.as_of)
            return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        latest = [
            s.max()
            for s in (self.engagements.get("ts"), self.orders.get("ts"))
            if s is not None and len(s)
        ]
        if latest:
            return pd.Timestamp(max(latest))
        return pd.Timestamp(datetime.now(UTC))

    def window(self, days: float | None) -> MarketTables:
        """The activity of the last ``days`` days before :meth:`reference_time`.

        Engagements, follows and orders keep the rows at or after the cut,
        streams those that started at or after it (or that a kept engagement
        or order names), identifiers those not last seen before it (an identifier
        with no ``last_seen`` is still in use). Accounts, affiliations and
        labels are kept whole. ``as_of`` is fixed to the reference time, so
        ages are measured from the same moment as on all the data.
        ``None`` returns the tables unchanged.
        """
        if days is None:
            return self
        ref = self.reference_time()
        cut = ref - pd.Timedelta(days=days)

        def since(frame: pd.DataFrame, column: str) -> pd.DataFrame:
            if frame.empty or column not in frame:
                return frame
            return frame[(frame[column] >= cut).to_numpy()].reset_index(drop=True)

        engagements = since(self.engagements, "ts")
        orders = since(self.orders, "ts")
        streams = self.streams
        if not streams.empty and "started_at" in streams:
            keep = (streams["started_at"] >= cut).to_numpy().copy()
            for used in (engagements, orders):
                if not used.empty and "stream_id" in used:
                    keep |= streams["stream_id"].isin(used["stream_id"].dropna()).to_numpy()
            streams = streams[keep].reset_index(drop=True)
        identifiers = self.identifiers
        if not identifiers.empty and "last_seen" in identifiers:
            last = identifiers["last_seen"]
            identifiers = identifiers[(last.isna() | (last >= cut)).to_numpy()].reset_index(
                drop=True
            )
        return replace(
            self,
            streams=streams,
            engagements=engagements,
            follows=since(self.follows, "ts"),
            orders=orders,
            identifiers=identifiers,
            as_of=ref.to_pydatetime(),
        )

    def mapped(self, value_map: ValueMap | None = None) -> MarketTables:
        """The tables as detectors see them: order statuses and identifier kinds mapped
        through ``value_map`` (default :meth:`ValueMap.default`) to the canonical ones.

        Values the mapping does not name are kept as they are (a detector that looks
        for ``refunded`` does not count a ``disputed`` order; an identifier of an
        unmapped kind weighs ``value_map.other_identifier_weight``) and listed in
        :attr:`unmapped` as ``{"orders.status": {value: rows}, "identifiers.kind":
        {...}}``. Mapping canonical tables again changes nothing.
        """
        return map_tables(self, value_map, _map_column)


#: ``map_column(frame, column, mapping) -> (mapped frame, {unmapped value: rows})``.
MapColumn = Callable[[Any, str, Mapping[str, str]], tuple[Any, dict[str, int]]]
_Tables = TypeVar("_Tables", bound="DataclassInstance")


def map_tables(tables: _Tables, value_map: ValueMap | None, map_column: MapColumn) -> _Tables:
    """``tables`` (a dataclass with ``orders`` and ``identifiers`` frames of any engine,
    ``other_identifier_weight`` and ``unmapped``) with order statuses and identifier kinds
    mapped by ``map_column`` through ``value_map`` (default :meth:`ValueMap.default`):
    see :meth:`MarketTables.mapped`."""
    vm = value_map or ValueMap.default()
    t: Any = tables
    orders, statuses = map_column(t.orders, "status", vm.order_statuses)
    identifiers, kinds = map_column(t.identifiers, "kind", vm.identifier_kinds)
    unmapped = {
        name: counts
        for name, counts in (("orders.status", statuses), ("identifiers.kind", kinds))
        if counts
    }
    return replace(
        tables,
        orders=orders,
        identifiers=identifiers,
        other_identifier_weight=vm.other_identifier_weight,
        unmapped=unmapped,
    )


def iso(ts: object) -> str | None:
    """An ISO 8601 UTC string for evidence rows (None for missing)."""
    if ts is None or (isinstance(ts, float) and np.isnan(ts)) or ts is pd.NaT:
        return None
    t = pd.Timestamp(ts)  # type: ignore[arg-type]
    if pd.isna(t):
        return None
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    return t.tz_convert("UTC").isoformat()
