"""Shared detector helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from ringscope.algorithms.base import MarketTables, check_random_state, iso


def test_reference_time_accepts_naive_and_aware_datetimes() -> None:
    naive = MarketTables(as_of=datetime(2026, 1, 1)).reference_time()
    aware = MarketTables(as_of=datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))))
    assert naive == pd.Timestamp("2026-01-01T00:00:00Z")
    assert aware.reference_time() == naive


def test_reference_time_defaults_to_latest_event() -> None:
    ev = pd.DataFrame(
        {"ts": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"], utc=True)}
    )
    assert MarketTables(engagements=ev).reference_time() == pd.Timestamp("2026-01-03T00:00:00Z")


def test_seed_rule() -> None:
    g = np.random.default_rng(1)
    assert check_random_state(g) is g
    assert check_random_state(3).integers(0, 1000) == np.random.default_rng(3).integers(0, 1000)
    with pytest.raises(TypeError):
        check_random_state("x")  # type: ignore[arg-type]


def test_iso_is_utc_and_none_for_missing() -> None:
    assert iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00+00:00"
    assert iso(None) is None and iso(pd.NaT) is None


def test_window_keeps_the_last_days_of_activity_and_the_reference_time() -> None:
    def ts(*days: float) -> pd.Series:
        base = pd.Timestamp("2026-01-01T00:00:00Z")
        return pd.Series([base + pd.Timedelta(days=d) for d in days]).astype("datetime64[us, UTC]")

    ev = pd.DataFrame({"account_id": ["a", "b", "c"], "stream_id": ["s1", "s2", "s1"]})
    ev["ts"] = ts(0, 8, 10)
    orders = pd.DataFrame({"order_id": ["o1", "o2"], "stream_id": ["s3", None]})
    orders["ts"] = ts(9, 1)
    streams = pd.DataFrame({"stream_id": ["s1", "s2", "s3", "s4"]})
    streams["started_at"] = ts(0, 8, 2, 1)
    ids = pd.DataFrame({"account_id": ["a", "b", "c"], "value": ["d1", "d2", "d3"]})
    ids["last_seen"] = ts(1, 9, 0)
    ids.loc[2, "last_seen"] = pd.NaT
    full = MarketTables(engagements=ev, orders=orders, streams=streams, identifiers=ids)

    w = full.window(3)
    assert w.reference_time() == full.reference_time() == pd.Timestamp("2026-01-11T00:00:00Z")
    assert list(w.engagements.account_id) == ["b", "c"]
    assert list(w.orders.order_id) == ["o1"]
    # s2 started inside; s1 before but a kept engagement names it; s3 a kept order
    assert list(w.streams.stream_id) == ["s1", "s2", "s3"]
    assert list(w.identifiers.value) == ["d2", "d3"]  # d3 has no last_seen: still in use
    assert full.window(None) is full
    assert len(full.window(30).engagements) == 3
