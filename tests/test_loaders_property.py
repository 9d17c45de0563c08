"""Property-based tests of the loaders: any generated table, in any format, either
loads or is rejected row by row with a reason (or, when the file itself cannot be
read, refused as a whole); never a crash, and the store holds exactly the rows that
the report says loaded, batch after batch."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringscope.contract import MAX_ID_LENGTH, ORDER_STATUSES, ROLES
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.validate import REJECT_COLUMNS

FORMATS = ("csv", "csv.gz", "jsonl", "parquet")
_SETTINGS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    """A fresh folder per example (a fixture's folder would be shared by all examples)."""
    with tempfile.TemporaryDirectory(prefix="ringscope-prop-") as folder:
        yield Path(folder)


# --------------------------------------------------------------------------- values

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_ids = st.one_of(
    st.sampled_from(["a1", "a2", "a3", "b1", " a1 ", "c-7", "Ünï", "👤"]),  # repeats
    _text,
    st.just(""),
    st.just("   "),
    st.text(st.sampled_from("xy"), min_size=MAX_ID_LENGTH - 1, max_size=MAX_ID_LENGTH + 2),
    st.sampled_from(["a\x00", "a\nb", "a\tb", "\x7f"]),
)
_roles = st.one_of(
    st.lists(st.sampled_from(ROLES), min_size=1, max_size=3).map("|".join),
    st.sampled_from(["", "admin", "creator||buyer", " Buyer ", "seller|"]),
    _text,
)
_times = st.one_of(
    st.integers(946_684_800, 1_790_000_000).map(str),
    st.datetimes().map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2024-01-01",
            "2024-01-01T00:00:00+14:00",
            "2024-01-01T00:00:00-12:00",
            "2024-01-01T00:00:00+25:00",
            "1700000000000",
            "-1",
            "9999-12-31",
            "nan",
            "",
            "1700000000.5",
            "99999999999999999999999",
        ]
    ),
    _text,
)
_amounts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "1,5", "1e309", "-0", "0x10", " 7 ", "NaN", "Infinity"]),
    _text,
)


def _accounts_rows(draw: Any, n: int) -> list[dict[str, str]]:
    return [
        {"account_id": draw(_ids), "roles": draw(_roles), "created_at": draw(_times)}
        for _ in range(n)
    ]


@st.composite
def _accounts(draw: Any) -> list[dict[str, str]]:
    return _accounts_rows(draw, draw(st.integers(0, 25)))


@st.composite
def _orders(draw: Any) -> list[dict[str, str]]:
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        rows.append(
            {
                "order_id": draw(st.sampled_from(["o1", "o2", "o3"]) | _ids),
                "buyer_id": draw(st.sampled_from(["b1", "b2", "ghost"])),
                "seller_id": "s1",
                "product_id": draw(st.sampled_from(["p1", "p2"])),
                "amount": draw(_amounts),
                "status": draw(st.sampled_from([*ORDER_STATUSES, "Returned", " LOST ", ""])),
                "ts": draw(_times),
                "commission": draw(_amounts | st.just("")),
            }
        )
    return rows


# --------------------------------------------------------------------------- files


def _write_table(folder: Path, table: str, rows: list[dict[str, str]], fmt: str) -> Path:
    columns = list(rows[0]) if rows else []
    path = folder / f"{table}.{fmt}"
    if fmt in ("csv", "csv.gz"):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")  # so that \r in values is quoted
        writer.writerow(columns or _COLUMNS[table])
        writer.writerows([r[c] for c in columns] for r in rows)
        data = buf.getvalue().encode("utf-8")
        path.write_bytes(gzip.compress(data) if fmt == "csv.gz" else data)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        names = columns or _COLUMNS[table]
        pq.write_table(
            pa.table({c: pa.array([r[c] for r in rows], pa.string()) for c in names}), path
        )
    return path


_COLUMNS = {
    "accounts": ["account_id", "roles", "created_at"],
    "orders": ["order_id", "buyer_id", "seller_id", "product_id", "amount", "status", "ts"],
}
_BASE_ACCOUNTS = (
    "account_id,roles,created_at\nb1,buyer,2024-01-01\nb2,buyer,2024-01-01\ns1,seller,2024-01-01\n"
)


def _rejects(path: str | None) -> list[dict[str, str]]:
    if path is None:
        return []
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _check_report(store: EmbeddedStore, report: Any, table: str, n: int) -> list[dict[str, str]]:
    """The invariants every load keeps, whatever the input."""
    t = report.tables[table]
    counts = store.counts()
    assert counts[table] == t.loaded  # the store holds what the report says, no more
    if t.error is not None:  # the file as a whole was refused
        assert t.loaded == 0 and t.rejected == 0
        return []
    assert t.read == n
    assert t.read == t.loaded + t.rejected + t.duplicates
    rejects = _rejects(t.rejects_file)
    assert len(rejects) == t.rejected
    rows = [int(r["row"]) for r in rejects]
    assert len(set(rows)) == len(rows) and all(1 <= r <= n for r in rows)
    assert all(r["reason"].strip() and r["file"] == t.file for r in rejects)
    if rejects:
        assert tuple(rejects[0])[: len(REJECT_COLUMNS)] == REJECT_COLUMNS
    return rejects


# --------------------------------------------------------------------------- properties


@_SETTINGS
@given(rows=_accounts(), fmt=st.sampled_from(FORMATS), batch=st.integers(1, 9))
def test_any_accounts_table_loads_or_is_rejected_row_by_row(
    rows: list[dict[str, str]], fmt: str, batch: int
) -> None:
    with _workdir() as workdir:
        _accounts_property(workdir, rows, fmt, batch)


def _accounts_property(workdir: Path, rows: list[dict[str, str]], fmt: str, batch: int) -> None:
    export = workdir / "export"
    export.mkdir()
    _write_table(export, "accounts", rows, fmt)
    with EmbeddedStore(":memory:") as store:
        report = load_export(store, export, batch_rows=batch, rejects_dir=workdir / "r")
        rejects = _check_report(store, report, "accounts", len(rows))
        stored = set(store.table("accounts")["account_id"])
        rejected_rows = {int(r["row"]) for r in rejects}
        kept = [r for i, r in enumerate(rows, start=1) if i not in rejected_rows]
        # Every row that was not rejected is in the store (trimmed), and nothing else.
        assert stored == {r["account_id"].strip() for r in kept}
        for i, r in enumerate(rows, start=1):
            ident = r["account_id"].strip()
            if not ident or len(ident) > MAX_ID_LENGTH or any(ord(c) < 32 for c in ident):
                assert i in rejected_rows, (i, r)
            if any(p.strip() not in ROLES for p in r["roles"].split("|")):
                assert i in rejected_rows, (i, r)
        # Loading again changes nothing.
        again = load_export(store, export, batch_rows=batch, rejects_dir=workdir / "r2")
        assert again.tables["accounts"].loaded == 0
        assert set(store.table("accounts")["account_id"]) == stored


@_SETTINGS
@given(orders=_orders(), fmt=st.sampled_from(FORMATS), batch=st.integers(1, 9))
def test_any_orders_table_keeps_only_valid_amounts_and_known_buyers(
    orders: list[dict[str, str]], fmt: str, batch: int
) -> None:
    with _workdir() as workdir:
        _orders_property(workdir, orders, fmt, batch)


def _orders_property(workdir: Path, orders: list[dict[str, str]], fmt: str, batch: int) -> None:
    export = workdir / "export"
    export.mkdir()
    (export / "accounts.csv").write_text(_BASE_ACCOUNTS)
    _write_table(export, "orders", orders, fmt)
    with EmbeddedStore(":memory:") as store:
        report = load_export(store, export, batch_rows=batch, rejects_dir=workdir / "r")
        _check_report(store, report, "orders", len(orders))
        stored = store.table("orders")
    if len(stored):
        assert stored["amount"].notna().all() and (stored["amount"] >= 0).all()
        assert (stored["amount"] < float("inf")).all()
        has = stored["commission"].notna()
        assert (stored.loc[has, "commission"] <= stored.loc[has, "amount"]).all()
        assert set(stored["buyer_id"]) <= {"b1", "b2"}
        # statuses are kept as given, trimmed and in lower case; a value no alias of the
        # default mapping names ("lost") loads too, and the report lists it
        assert set(stored["status"]) <= {*ORDER_STATUSES, "returned", "lost"}
        unknown = report.tables["orders"].unknown_values.get("status", {})
        assert set(unknown) <= {"lost"}
        if "lost" in set(stored["status"]):
            assert unknown["lost"] >= 1
        assert stored["order_id"].is_unique


_VALID = (
    b"account_id,roles,created_at,country\n"
    b"a1,buyer,2024-01-01T00:00:00Z,SG\na2,seller|creator,1700000000,MY\n"
    b'a3,buyer,2024-06-01,"Kuala\nLumpur"\n'
)


@_SETTINGS
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_VALID)), st.binary(min_size=1, max_size=4)), max_size=6
    ),
    cut=st.integers(0, len(_VALID) + 24),
    suffix=st.sampled_from([".csv", ".csv.gz", ".jsonl", ".parquet"]),
)
def test_mangled_bytes_never_crash_the_loader(
    edits: list[tuple[int, bytes]], cut: int, suffix: str
) -> None:
    """A valid file with random bytes spliced in and its end cut off, under any name:
    the table is refused as a whole or its rows are checked, and nothing else."""
    with _workdir() as workdir:
        _mangled_property(workdir, edits, cut, suffix)


def _mangled_property(workdir: Path, edits: list[tuple[int, bytes]], cut: int, suffix: str) -> None:
    data = _VALID
    for at, piece in edits:
        data = data[:at] + piece + data[at:]
    data = data[:cut]
    if suffix == ".csv.gz":
        packed = gzip.compress(_VALID)
        data = packed[:cut] if edits else gzip.compress(data)
    elif suffix == ".parquet":
        buf = io.BytesIO()
        pq.write_table(
            pa.table({"account_id": ["a1"], "roles": ["buyer"], "created_at": ["x"]}), buf
        )
        whole = buf.getvalue()
        data = whole[: min(cut * 8, len(whole))] if edits else whole
    export = workdir / "export"
    export.mkdir()
    (export / f"accounts{suffix}").write_bytes(data)
    with EmbeddedStore(":memory:") as store:
        report = load_export(store, export, batch_rows=2, rejects_dir=workdir / "r")
        t = report.tables["accounts"]
        assert store.counts()["accounts"] == t.loaded
        if t.error is None:
            assert t.read == t.loaded + t.rejected + t.duplicates
            assert len(_rejects(t.rejects_file)) == t.rejected
        else:
            assert t.loaded == 0 and str(export) in t.error
