"""The load pipeline against the real embedded store: rejects, failures, idempotence."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from helpers.exports import (
    ACCOUNTS,
    ENGAGEMENTS_HEAD,
    ORDERS_HEAD,
    STREAMS,
    read_rejects,
    write_export,
)

from ringscope.errors import InputError
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import (
    CONFLICT_REASON,
    default_rejects_dir,
    fingerprint_export,
    load_export,
)
from ringscope.loaders.validate import REJECT_COLUMNS

SMALL = Path(__file__).parent / "data" / "small-export"


@pytest.fixture
def loaded(store: EmbeddedStore, tmp_path: Path) -> EmbeddedStore:
    """A store already holding the small export."""
    report = load_export(store, SMALL, rejects_dir=tmp_path / "first.rejects")
    assert report.rejected == 0 and not report.failed
    return store


def test_small_export_loads_and_reloads_idempotently(store: EmbeddedStore, tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    first = load_export(
        store, SMALL, rejects_dir=tmp_path / "r", progress=lambda t, n: seen.append((t, n))
    )
    counts = store.counts()
    second = load_export(store, SMALL, rejects_dir=tmp_path / "r")
    assert store.counts() == counts
    assert first.fingerprint == second.fingerprint == fingerprint_export(SMALL)
    assert first.load_id != second.load_id
    for name, table in first.tables.items():
        again = second.tables[name]
        assert table.loaded == table.read == counts[name] > 0
        assert (again.read, again.loaded, again.duplicates, again.rejected) == (
            table.read,
            0,
            table.read,
            0,
        )
    assert [r.load_id for r in store.loads()] == [first.load_id, second.load_id]
    assert ("engagements", 60) in seen and ("accounts", 0) in seen
    assert not (tmp_path / "r").exists()  # no rejects, no files


def test_missing_accounts_file(store: EmbeddedStore, tmp_path: Path) -> None:
    folder = write_export(tmp_path / "x", {"streams.csv": STREAMS}, accounts=False)
    with pytest.raises(InputError, match="required table 'accounts' missing"):
        load_export(store, folder)
    assert sum(store.counts().values()) == 0


def test_empty_accounts_file_fails_table_and_rejects_references(
    loaded: EmbeddedStore, tmp_path: Path
) -> None:
    before = loaded.counts()
    folder = write_export(
        tmp_path / "x",
        {
            "accounts.csv": b"",
            "streams.csv": STREAMS,
            "orders.csv": ORDERS_HEAD + "o-new,by-0001,sl-001,p1,5,completed,1762000000\n",
        },
    )
    report = load_export(loaded, folder)
    accounts = report.tables["accounts"]
    assert (
        accounts.error is not None
        and "accounts.csv" in accounts.error
        and "empty" in accounts.error
    )
    # c1 is not in the store: the stream naming it is rejected; by-0001 was loaded before.
    assert report.tables["streams"].rejected == 1
    assert report.tables["orders"].loaded == 1
    after = loaded.counts()
    assert after == {**before, "orders": before["orders"] + 1}


def test_rejects_file_layout_and_default_place(store: EmbeddedStore, tmp_path: Path) -> None:
    folder = write_export(
        tmp_path / "export",
        {
            "orders.csv": ORDERS_HEAD
            + "o1,b1,s1,p1,-5,completed,2026-11-01T19:20:00Z\n"
            + "o2,b1,s1,p1,5,completed,2031-01-01T00:00:00Z\n"
            + "o3,b1,s1,p1,5,completed,1762000000\n"
        },
    )
    report = load_export(store, folder)
    orders = report.tables["orders"]
    assert (orders.read, orders.loaded, orders.rejected) == (3, 1, 2)
    assert orders.rejects_file == str(default_rejects_dir(folder) / "orders.rejects.csv")
    assert default_rejects_dir(folder) == tmp_path / "export.rejects"
    lines = read_rejects(orders.rejects_file)
    assert list(lines[0]) == [*REJECT_COLUMNS, *store.table("orders").columns]
    assert [(r["row"], r["column"]) for r in lines] == [("1", "amount"), ("2", "ts")]
    assert lines[0]["reason"] == "negative: -5" and lines[0]["amount"] == "-5"
    assert (
        lines[1]["file"] == str(folder / "orders.csv") and lines[1]["ts"] == "2031-01-01T00:00:00Z"
    )
    # A second load of a clean export replaces the old rejects file.
    (folder / "orders.csv").write_text(ORDERS_HEAD + "o3,b1,s1,p1,5,completed,1762000000\n")
    again = load_export(store, folder)
    assert again.tables["orders"].rejects_file is None
    assert not Path(orders.rejects_file).exists()


def test_bad_rows_reject_and_the_rest_loads(loaded: EmbeddedStore, tmp_path: Path) -> None:
    before = loaded.counts()
    body = (
        ENGAGEMENTS_HEAD
        + "by-0001,st-0001,hug,2026-11-01T19:00:00Z,\n"
        + "by-0001,st-0001,like,2026-11-01T19:00:00Z,\n"
        + "by-0001,nowhere,like,2026-11-01T19:00:00Z,\n"
        + "ghost,st-0001,like,2026-11-01T19:00:00Z,\n"
        + "by-0001,st-0001,gift,2026-11-01T19:00:00Z,NaN\n"
    )
    folder = write_export(tmp_path / "x", {"engagements.csv": body}, accounts=False)
    (folder / "accounts.csv").write_text("account_id,roles,created_at\n")
    report = load_export(loaded, folder, rejects_dir=tmp_path / "rj")
    table = report.tables["engagements"]
    assert (table.read, table.loaded, table.rejected) == (5, 1, 4)
    lines = read_rejects(tmp_path / "rj" / "engagements.rejects.csv")
    assert [(r["row"], r["column"]) for r in lines] == [
        ("1", "kind"),
        ("3", "stream_id"),
        ("4", "account_id"),
        ("5", "amount"),
    ]
    assert lines[0]["reason"] == "unknown value 'hug' (allowed: view, like, comment, share, gift)"
    assert lines[1]["reason"] == "unknown stream 'nowhere'"
    assert lines[2]["reason"] == "unknown account 'ghost'"
    assert loaded.counts() == {**before, "engagements": before["engagements"] + 1}


def test_duplicate_order_across_two_loads(loaded: EmbeddedStore, tmp_path: Path) -> None:
    before = loaded.counts()
    stored = loaded.table("orders").iloc[[0, 1]].reset_index(drop=True)
    folder = write_export(tmp_path / "x", {"accounts.csv": "account_id,roles,created_at\n"})
    stored.to_parquet(folder / "orders.parquet")
    report = load_export(loaded, folder, rejects_dir=tmp_path / "rj")
    assert (report.tables["orders"].duplicates, report.tables["orders"].rejected) == (2, 0)
    changed = stored.copy()
    changed["amount"] = changed["amount"] + [0.0, 1.0]
    changed.to_parquet(folder / "orders.parquet")
    report = load_export(loaded, folder, rejects_dir=tmp_path / "rj")
    orders = report.tables["orders"]
    assert (orders.loaded, orders.duplicates, orders.rejected) == (0, 1, 1)
    line = read_rejects(tmp_path / "rj" / "orders.rejects.csv")[0]
    assert (line["row"], line["column"], line["reason"]) == ("2", "order_id", CONFLICT_REASON)
    assert line["order_id"] == stored.loc[1, "order_id"]
    assert loaded.counts() == before
    assert loaded.table("orders").iloc[1]["amount"] == stored.loc[1, "amount"]


def test_duplicate_order_within_a_file(store: EmbeddedStore, tmp_path: Path) -> None:
    o1 = "o1,b1,s1,p1,25,completed,2026-11-01T19:20:00Z\n"
    body = ORDERS_HEAD + o1 + o1 + "o1,b1,s1,p1,26,completed,2026-11-01T19:20:00Z\n"
    folder = write_export(tmp_path / "x", {"orders.csv": body})
    report = load_export(store, folder, rejects_dir=tmp_path / "rj")
    orders = report.tables["orders"]
    assert (orders.read, orders.loaded, orders.duplicates, orders.rejected) == (3, 1, 1, 1)
    line = read_rejects(tmp_path / "rj" / "orders.rejects.csv")[0]
    assert line["row"] == "3" and "of row 1 with different values (amount)" in line["reason"]


def test_duplicate_across_chunks_of_one_load(store: EmbeddedStore, tmp_path: Path) -> None:
    o1 = "o1,b1,s1,p1,25,completed,2026-11-01T19:20:00Z\n"
    body = ORDERS_HEAD + o1 + "o2,b1,s1,p1,1,completed,1762000000\n" + o1.replace("25", "30")
    folder = write_export(tmp_path / "x", {"orders.csv": body})
    report = load_export(store, folder, rejects_dir=tmp_path / "rj", batch_rows=2)
    orders = report.tables["orders"]
    assert (orders.loaded, orders.rejected) == (2, 1)
    assert read_rejects(tmp_path / "rj" / "orders.rejects.csv")[0]["row"] == "3"


def test_truncated_gzip_rolls_the_table_back(loaded: EmbeddedStore, tmp_path: Path) -> None:
    before = loaded.counts()
    rows = "".join(
        f"by-{1 + i % 30:04d},st-{1 + i % 20:04d},view,{1762000000 + i},\n" for i in range(600_000)
    )
    data = gzip.compress((ENGAGEMENTS_HEAD + rows).encode(), compresslevel=1)
    folder = write_export(
        tmp_path / "x",
        {"engagements.csv.gz": data[: int(len(data) * 0.8)], "orders.csv": ORDERS_HEAD},
        accounts=False,
    )
    shutil.copy(SMALL / "accounts.csv", folder / "accounts.csv")
    report = load_export(loaded, folder, batch_rows=20_000)
    table = report.tables["engagements"]
    assert table.error is not None and "engagements.csv.gz" in table.error
    assert table.read >= 20_000 and table.loaded == 0  # batches were written, then taken back
    assert report.failed
    assert report.tables["orders"].error is None
    assert loaded.counts() == before


def test_parquet_with_wrong_types_leaves_store_unchanged(
    loaded: EmbeddedStore, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    before = loaded.counts()
    folder = write_export(tmp_path / "x", {"accounts.csv": ACCOUNTS})
    pq.write_table(
        pa.table(
            {
                "order_id": ["o1"],
                "buyer_id": ["b1"],
                "seller_id": ["s1"],
                "product_id": ["p1"],
                "amount": pa.array([[1.0, 2.0]]),
                "status": ["completed"],
                "ts": ["2026-11-01T19:20:00Z"],
            }
        ),
        folder / "orders.parquet",
    )
    report = load_export(loaded, folder)
    error = report.tables["orders"].error
    assert (
        error is not None and "orders.parquet" in error and "'amount'" in error and "list" in error
    )
    assert loaded.counts() == {**before, "accounts": before["accounts"] + 4}


def test_malformed_record_restarts_exactly_without_double_counting(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    good = "".join(f"o{i},b1,s1,p1,5,completed,{1762000000 + i}\n" for i in range(30))
    more = "".join(f"q{i},b1,s1,p1,5,completed,{1762000000 + i}\n" for i in range(30))
    body = ORDERS_HEAD + good + "oX,b1,s1,p1,5,completed,1762000000,extra\n" + more
    folder = write_export(tmp_path / "x", {"orders.csv": body})
    report = load_export(store, folder, rejects_dir=tmp_path / "rj", batch_rows=7)
    orders = report.tables["orders"]
    assert (orders.read, orders.loaded, orders.rejected, orders.duplicates) == (61, 60, 1, 0)
    assert store.counts()["orders"] == 60
    line = read_rejects(tmp_path / "rj" / "orders.rejects.csv")[0]
    assert line["row"] == "31" and "expected 7 fields, found 8" in line["reason"]
