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
