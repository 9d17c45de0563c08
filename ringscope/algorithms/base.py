"""What every detector shares: its input tables, randomness, and small helpers.

Detectors are pure functions with keyword-only parameters that take the
tables they need (normalised frames of ``ringscope.contract``) and return
canonical :class:`~ringscope.model.Finding` lists. Nothing here touches a store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ringscope.contract import TABLES

Seed = int | np.random.Generator | None


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


def _empty(name: str) -> pd.DataFrame:
    return empty_table(name)


@dataclass(frozen=True)
class MarketTables:
    """The tables of one marketplace, normalised (see ``ringscope.contract``).

    Any table may be empty. ``as_of`` is the reference time for ages
    ("accounts created in the last 9 days"); by default the latest timestamp
    seen in the events and orders.
    """

    accounts: pd.DataFrame = field(default_factory=lambda: _empty("accounts"))
    streams: pd.DataFrame = field(default_factory=lambda: _empty("streams"))
    engagements: pd.DataFrame = field(default_factory=lambda: _empty("engagements"))
    follows: pd.DataFrame = field(default_factory=lambda: _empty("follows"))
    orders: pd.DataFrame = field(default_factory=lambda: _empty("orders"))
    affiliations: pd.DataFrame = field(default_factory=lambda: _empty("affiliations"))
    identifiers: pd.DataFrame = field(default_factory=lambda: _empty("identifiers"))
    labels: pd.DataFrame = field(default_factory=lambda: _empty("labels"))
    as_of: datetime | None = None

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
        return MarketTables(
            accounts=self.accounts,
            streams=streams,
            engagements=engagements,
            follows=since(self.follows, "ts"),
            orders=orders,
            affiliations=self.affiliations,
            identifiers=identifiers,
            labels=self.labels,
            as_of=ref.to_pydatetime(),
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
