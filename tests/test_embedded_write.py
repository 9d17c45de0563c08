"""The embedded store's write path: duplicates and conflicts stay exact across batches,
tables, rollbacks, reopened files and several store objects on one file."""

from __future__ import annotations

from pathlib import Path as FsPath

import numpy as np
import pandas as pd
import pytest
from helpers.tiny_market import frame

from ringscope.graphs.embedded import EmbeddedStore


def events(n: int, start: int = 0) -> pd.DataFrame:
    """``n`` distinct engagement events of account ``b1`` on stream ``st1``."""
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
        np.arange(start, start + n), unit="s"
    )
    return pd.DataFrame(
        {
            "account_id": pd.array(["b1"] * n, dtype="str"),
            "stream_id": pd.array(["st1"] * n, dtype="str"),
            "kind": pd.array(["view"] * n, dtype="str"),
            "ts": pd.Series(ts).dt.as_unit("us"),
            "amount": np.full(n, np.nan),
        }
    )


def test_later_batches_see_the_rows_of_earlier_ones(store: EmbeddedStore) -> None:
    store.write_batch("accounts", frame("accounts"), "L1")
    store.write_batch("streams", frame("streams"), "L1")
    first, second = events(50), events(50, start=25)
    assert store.write_batch("engagements", first, "L1").inserted == 50
    result = store.write_batch("engagements", second, "L1")
    assert (result.inserted, result.duplicates, result.conflicts) == (25, 25, ())
    changed = events(10, start=70)
    changed["amount"] = 1.0  # rows 70..74 are stored without an amount; 75..79 are new
    result = store.write_batch("engagements", changed, "L2")
    assert (result.inserted, result.duplicates, result.conflicts) == (5, 0, (0, 1, 2, 3, 4))
    assert store.counts()["engagements"] == 80


def test_switching_tables_keeps_duplicates_exact(store: EmbeddedStore) -> None:
    accounts = frame("accounts")
    store.write_batch("accounts", accounts.iloc[:3], "L1")
    store.write_batch("streams", frame("streams").iloc[:0], "L1")
    store.write_batch("follows", frame("follows").iloc[:0], "L1")
    store.write_batch("accounts", frame("accounts").iloc[:0], "L1")
    result = store.write_batch("accounts", accounts, "L2")
    assert (result.inserted, result.duplicates) == (len(accounts) - 3, 3)


def test_rolled_back_rows_can_be_written_again(store: EmbeddedStore) -> None:
    accounts = frame("accounts")
    store.write_batch("accounts", accounts, "L1")
    assert store.rollback_load("L1", "accounts") == len(accounts)
    result = store.write_batch("accounts", accounts, "L2")
    assert (result.inserted, result.duplicates) == (len(accounts), 0)
    assert store.write_batch("accounts", accounts, "L3").duplicates == len(accounts)


def test_a_reopened_store_finds_the_stored_keys(tmp_path: FsPath) -> None:
    path = tmp_path / "s.duckdb"
    accounts = frame("accounts")
    with EmbeddedStore(path) as s:
        s.write_batch("accounts", accounts.iloc[:3], "L1")
    changed = accounts.copy()
    changed.loc[0, "country"] = "FR"
    with EmbeddedStore(path) as s:
        result = s.write_batch("accounts", changed, "L2")
        assert (result.inserted, result.duplicates, result.conflicts) == (
            len(accounts) - 3,
            2,
            (0,),
        )


def test_two_store_objects_on_one_file_stay_exact(tmp_path: FsPath) -> None:
    path = tmp_path / "s.duckdb"
    accounts = frame("accounts")
    with EmbeddedStore(path) as a, EmbeddedStore(path) as b:
        a.write_batch("accounts", accounts.iloc[:2], "L1")
        b.write_batch("accounts", accounts.iloc[2:4], "L2")  # written behind a's back
        result = a.write_batch("accounts", accounts, "L3")
        assert (result.inserted, result.duplicates) == (len(accounts) - 4, 4)
        b.rollback_load("L3", "accounts")
        result = a.write_batch("accounts", accounts, "L4")
        assert (result.inserted, result.duplicates) == (len(accounts) - 4, 4)
        assert a.counts()["accounts"] == len(accounts)


def test_a_failed_batch_leaves_later_batches_exact(store: EmbeddedStore) -> None:
    store.write_batch("accounts", frame("accounts"), "L1")
    good = frame("follows")
    store.write_batch("follows", good.iloc[:1], "L1")
    bad = good.astype({"ts": object})
    bad.loc[len(bad) - 1, "ts"] = "not a time"
    with pytest.raises(Exception):  # noqa: B017 - StoreError, checked in test_embedded_store
        store.write_batch("follows", bad, "L2")
    result = store.write_batch("follows", good, "L2")
    assert (result.inserted, result.duplicates) == (len(good) - 1, 1)
