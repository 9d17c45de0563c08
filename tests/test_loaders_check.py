"""Reading and checking, without a store: one test per kind of bad input."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.exports import ACCOUNTS, ENGAGEMENTS_HEAD, ORDERS_HEAD, one, write_export

from ringscope.contract import MAX_ID_LENGTH
from ringscope.errors import InputError
from ringscope.loaders.pipeline import check_export, export_problems, read_table
from ringscope.loaders.read import table_file
from ringscope.loaders.validate import KnownIds

SMALL = Path(__file__).parent / "data" / "small-export"


def accounts(tmp_path: Path, body: str | bytes, name: str = "accounts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return path


def orders(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS_HEAD + "".join(r + "\n" for r in rows))
    return path


ORDER = "o1,b1,s1,p1,{amount},completed,2026-11-01T19:20:00Z"


def test_small_export_is_clean() -> None:
    report = check_export(SMALL)
    assert not report.failed
    assert report.rejected == 0
    assert set(report.tables) == {
        "accounts",
        "streams",
        "affiliations",
        "follows",
        "engagements",
        "orders",
        "identifiers",
        "labels",
    }
    assert all(t.loaded == t.read > 0 for t in report.tables.values())


def test_empty_file_fails_the_table(tmp_path: Path) -> None:
    path = accounts(tmp_path, b"")
    with pytest.raises(InputError) as err:
        read_table(path)
    assert err.value.problem is not None
    assert err.value.problem.file == str(path)
    assert "empty" in str(err.value)


def test_header_only_is_an_empty_table(tmp_path: Path) -> None:
    result = read_table(accounts(tmp_path, "account_id,roles,created_at\n"))
    assert result.read == 0
    assert len(result.frame) == 0
    assert list(result.frame.columns) == ["account_id", "roles", "created_at", "country", "status"]
    assert str(result.frame["created_at"].dtype) == "datetime64[us, UTC]"


def test_unknown_column_set(tmp_path: Path) -> None:
    path = accounts(tmp_path, "id,name,when\nx,y,z\n")
    with pytest.raises(InputError) as err:
        read_table(path)
    problem = err.value.problem
    assert problem is not None and problem.file == str(path)
    assert problem.column == "account_id"
    assert "account_id, roles, created_at" in problem.reason
    assert "'id'" in problem.reason


def test_missing_required_column(tmp_path: Path) -> None:
    path = accounts(tmp_path, "account_id,created_at\nx,2024-01-01\n")
    with pytest.raises(InputError) as err:
        read_table(path)
    assert err.value.problem is not None
    assert err.value.problem.column == "roles"
    assert str(path) in str(err.value) and "'roles'" in str(err.value)


def test_wrong_delimiter(tmp_path: Path) -> None:
    path = accounts(tmp_path, "account_id;roles;created_at\nx;buyer;2024-01-01\n")
    with pytest.raises(InputError) as err:
        read_table(path)
    assert "';'-separated" in str(err.value)
    assert str(path) in str(err.value)


def test_non_utf8_bytes_reject_the_row(tmp_path: Path) -> None:
    body = ACCOUNTS.encode() + b"b\xff\xfe3,buyer,2024-01-01,SG\n"
    result = read_table(accounts(tmp_path, body))
    problem = one(result.problems())
    assert (problem.row, problem.column) == (5, "account_id")
    assert "UTF-8" in problem.reason
    assert len(result.frame) == 4


def test_quoted_newlines_load_and_rows_count_records(tmp_path: Path) -> None:
    body = (
        "stream_id,creator_id,started_at,ended_at,title\n"
        'st1,c1,2026-11-01T19:00:00Z,,"two\nlines, and ""quotes"""\n'
        "st2,c1,not-a-time,,plain\n"
    )
    path = tmp_path / "streams.csv"
    path.write_text(body)
    result = read_table(path)
    assert result.frame["title"].tolist() == ['two\nlines, and "quotes"']
    problem = one(result.problems())
    assert (problem.row, problem.column) == (2, "started_at")  # record 2, line 4


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2031-01-01T00:00:00Z", "in the future"),
        ("1970-01-01T00:00:10Z", "before 2000-01-01"),
        ("86400", "before 2000-01-01"),
        ("yesterday", "not a timestamp"),
        ("2026-13-45", "not a timestamp"),
        ("1764000000000", "milliseconds"),
    ],
)
def test_bad_timestamps(tmp_path: Path, value: str, words: str) -> None:
    result = read_table(accounts(tmp_path, f"account_id,roles,created_at\na1,buyer,{value}\n"))
    problem = one(result.problems())
    assert (problem.file, problem.row, problem.column) == (
        str(tmp_path / "accounts.csv"),
        1,
        "created_at",
    )
    assert words in problem.reason
    assert result.frame.empty


def test_timestamp_bounds_are_parameters(tmp_path: Path) -> None:
    path = accounts(tmp_path, "account_id,roles,created_at\na1,buyer,1999-06-01\n")
    result = read_table(path, earliest=datetime(1990, 1, 1, tzinfo=UTC))
    assert result.problems() == []
    late = read_table(path, latest=datetime(1999, 1, 1, tzinfo=UTC))
    assert "in the future" in one(late.problems()).reason


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("-5", "negative"),
        ("abc", "not a number"),
        ('"1,5"', "not a number"),
        ("NaN", "not a finite number"),
        ("inf", "not a finite number"),
        ("-Infinity", "not a finite number"),
        ("1e999", "not a finite number"),
    ],
)
def test_bad_amounts(tmp_path: Path, amount: str, words: str) -> None:
    result = read_table(orders(tmp_path, ORDER.format(amount=amount)))
    problem = one(result.problems())
    assert (problem.row, problem.column) == (1, "amount")
    assert words in problem.reason and amount.strip('"') in problem.reason


def test_commission_above_amount_and_refund_before_order(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        ORDERS_HEAD.strip() + ",commission,refunded_at\n"
        "o1,b1,s1,p1,10,refunded,2026-11-01T19:20:00Z,12,2026-11-01T19:00:00Z\n"
    )
    problem = one(read_table(path).problems())
    assert problem.column == "commission|refunded_at"
    assert "commission (12) is above amount (10)" in problem.reason
    assert "refunded_at (2026-11-01T19:00:00+00:00) is before ts" in problem.reason


def test_commission_rate_within_0_and_1(tmp_path: Path) -> None:
    path = tmp_path / "affiliations.csv"
    path.write_text("creator_id,seller_id,commission_rate,since\nc1,s1,1.5,2025-01-01\n")
    problem = one(read_table(path).problems())
    assert (problem.column, problem.reason) == ("commission_rate", "above 1: 1.5")


def test_unknown_enum_names_the_allowed_values(tmp_path: Path) -> None:
    path = tmp_path / "engagements.csv"
    path.write_text(ENGAGEMENTS_HEAD + "b1,st1,hug,2026-11-01T19:00:00Z,\n")
    problem = one(read_table(path).problems())
    assert (problem.row, problem.column) == (1, "kind")
    assert problem.reason == "unknown value 'hug' (allowed: view, like, comment, share, gift)"


def test_roles_are_checked_and_normalised(tmp_path: Path) -> None:
    body = (
        "account_id,roles,created_at\n"
        "a1,seller|creator,2024-01-01\n"
        "a2, buyer | buyer ,2024-01-01\n"
        "a3,admin,2024-01-01\n"
        "a4,,2024-01-01\n"
    )
    result = read_table(accounts(tmp_path, body))
    assert result.frame["roles"].tolist() == ["creator|seller", "buyer"]
    problems = result.problems()
    assert [(p.row, p.column) for p in problems] == [(3, "roles"), (4, "roles")]
    assert "unknown role 'admin'" in problems[0].reason
    assert problems[1].reason == "missing value"


def test_duplicate_order_id_within_a_file(tmp_path: Path) -> None:
    same = ORDER.format(amount="25")
    other = ORDER.format(amount="30")
    result = read_table(orders(tmp_path, same, "o2,b1,s1,p1,5,completed,1762000000", same, other))
    assert result.duplicates == 1
    assert result.frame["order_id"].tolist() == ["o1", "o2"]
    problem = one(result.problems())
    assert (problem.row, problem.column) == (4, "order_id")
    assert "duplicate key (order_id='o1') of row 1 with different values (amount)" in problem.reason


def test_duplicate_key_in_other_forms_of_the_same_instant(tmp_path: Path) -> None:
    path = tmp_path / "engagements.csv"
    path.write_text(
        ENGAGEMENTS_HEAD
        + "b1,st1,view,2026-11-01T19:00:00Z,\nb1,st1,view,1793559600,\nb1,st1,view,2026-11-02,\n"
    )
    result = read_table(path)
    assert (result.duplicates, len(result.frame), result.problems()) == (1, 2, [])


def test_order_for_an_unknown_buyer(tmp_path: Path) -> None:
    known = KnownIds()
    known.add("account", ["b1", "s1"])
    path = orders(tmp_path, ORDER.format(amount="25"), "o2,ghost,s1,p1,5,completed,1762000000")
    problem = one(read_table(path, known=known).problems())
    assert (problem.row, problem.column, problem.reason) == (
        2,
        "buyer_id",
        "unknown account 'ghost'",
    )


def test_account_id_of_10_kb(tmp_path: Path) -> None:
    big = "x" * 10_240
    result = read_table(accounts(tmp_path, ACCOUNTS + f"{big},buyer,2024-01-01,SG\n"))
    problem = one(result.problems())
    assert (problem.row, problem.column) == (5, "account_id")
    assert f"longer than {MAX_ID_LENGTH} characters (10240 characters)" == problem.reason
    assert len(result.frame) == 4


def test_jsonl_line_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "accounts.jsonl"
    lines = [
        json.dumps({"account_id": "a1", "roles": "buyer", "created_at": 1700000000}),
        "{not json",
        "",
        json.dumps(["a list"]),
        json.dumps({"account_id": "a2", "roles": "buyer", "created_at": {"nested": 1}}),
        json.dumps({"account_id": "a3", "roles": "buyer", "created_at": "2024-01-01", "x": 1}),
    ]
    path.write_text("\n".join(lines) + "\n")
    result = read_table(path)
    assert result.frame["account_id"].tolist() == ["a1", "a3"]
    problems = result.problems()
    assert [(p.row, p.column) for p in problems] == [(2, None), (4, None), (5, "created_at")]
    assert problems[0].reason.startswith("not JSON")
    assert problems[1].reason.startswith("not a JSON object")
    assert "expected a string or a number" in problems[2].reason


def test_jsonl_entirely_not_json_rejects_every_line(tmp_path: Path) -> None:
    path = tmp_path / "accounts.jsonl"
    path.write_text("garbage\nmore garbage\n")
    result = read_table(path)
    assert result.read == 2 and len(result.problems()) == 2 and result.frame.empty


def test_parquet_with_wrong_types_fails_the_table(tmp_path: Path) -> None:
    path = tmp_path / "orders.parquet"
    table = pa.table(
        {
            "order_id": ["o1"],
            "buyer_id": ["b1"],
            "seller_id": ["s1"],
            "product_id": ["p1"],
            "amount": pa.array([{"value": 1.0, "currency": "SGD"}]),
            "status": ["completed"],
            "ts": ["2026-11-01T19:20:00Z"],
        }
    )
    pq.write_table(table, path)
    with pytest.raises(InputError) as err:
        read_table(path)
    problem = err.value.problem
    assert problem is not None
    assert (problem.file, problem.column) == (str(path), "amount")
    assert "struct" in problem.reason and "expected numbers" in problem.reason


def test_parquet_list_column_fails_the_table(tmp_path: Path) -> None:
    path = tmp_path / "accounts.parquet"
    pq.write_table(
        pa.table({"account_id": [["a", "b"]], "roles": ["buyer"], "created_at": ["2024-01-01"]}),
        path,
    )
    with pytest.raises(InputError, match=r"account_id.*list"):
        read_table(path)


def test_binary_garbage_parquet_fails_the_table(tmp_path: Path) -> None:
    path = tmp_path / "accounts.parquet"
    path.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(InputError, match="cannot read Parquet"):
        read_table(path)


def test_truncated_gzip_fails_the_table(tmp_path: Path) -> None:
    rows = "".join(f"a{i},buyer,2024-01-01\n" for i in range(50_000))
    data = gzip.compress(("account_id,roles,created_at\n" + rows).encode())
    path = accounts(tmp_path, data[: len(data) // 2], "accounts.csv.gz")
    with pytest.raises(InputError) as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_record_with_too_many_fields_is_rejected_alone(tmp_path: Path) -> None:
    body = ACCOUNTS + "b3,buyer,2024-01-01,SG,extra,fields\nb4,buyer,2024-01-01,SG\n"
    result = read_table(accounts(tmp_path, body))
    problem = one(result.problems())
    assert problem.row == 5 and "expected 4 fields, found 6" in problem.reason
    assert result.frame["account_id"].tolist() == ["c1", "s1", "b1", "b2", "b4"]
    assert result.rows.tolist() == [1, 2, 3, 4, 6]


def test_two_files_for_one_table(tmp_path: Path) -> None:
    write_export(tmp_path, {"accounts.csv": ACCOUNTS, "accounts.jsonl": "{}\n"})
    with pytest.raises(InputError, match=r"accounts\.csv, accounts\.jsonl"):
        table_file(tmp_path, "accounts")
    report = check_export(tmp_path)
    assert report.tables["accounts"].error is not None


def test_extra_columns_are_ignored(tmp_path: Path) -> None:
    result = read_table(
        accounts(tmp_path, "account_id,roles,created_at,shoe_size\na,buyer,2024-01-01,44\n")
    )
    assert "shoe_size" not in result.frame.columns and result.problems() == []


def test_export_problems_name_file_row_and_column(tmp_path: Path) -> None:
    write_export(tmp_path, {"orders.csv": ORDERS_HEAD + "o1,b1,nobody,p1,5,completed,1762000000\n"})
    problem = one(export_problems(tmp_path))
    assert (Path(problem.file).name, problem.row, problem.column) == ("orders.csv", 1, "seller_id")
    assert str(problem).endswith("row 1, column 'seller_id': unknown account 'nobody'")


def test_length_limits_count_characters_not_bytes(tmp_path: Path) -> None:
    fits = "é" * MAX_ID_LENGTH  # twice as many bytes as characters
    too_long = "é" * (MAX_ID_LENGTH + 1)
    body = ACCOUNTS + f"{fits},buyer,2024-01-01,SG\n{too_long},buyer,2024-01-01,SG\n"
    result = read_table(accounts(tmp_path, body))
    problem = one(result.problems())
    assert (problem.row, problem.column) == (6, "account_id")
    assert problem.reason == (
        f"longer than {MAX_ID_LENGTH} characters ({MAX_ID_LENGTH + 1} characters)"
    )
    assert fits in set(result.frame["account_id"])


def test_blank_values_are_missing_in_every_column(tmp_path: Path) -> None:
    body = ACCOUNTS + "b3,buyer,2024-01-01,  \nb4,buyer,2024-01-01,\n"
    result = read_table(accounts(tmp_path, body))
    assert result.problems() == []
    countries = result.frame.set_index("account_id")["country"]
    assert countries.isna()["b3"] and countries.isna()["b4"] and countries["c1"] == "SG"


def test_key_hash_is_equal_for_equal_keys_only() -> None:
    from ringscope.loaders.validate import _key_hash

    ids = pa.array(["a", "b", "a", "a", None, None])
    kinds = pa.array(["x", "x", "x", "y", "x", "x"])
    when = pa.array([1, 1, 1, 1, 2, 2], pa.timestamp("us", "UTC"))
    h = _key_hash([ids, kinds, when])
    assert h.dtype == np.uint64 and len(h) == 6
    assert h[0] == h[2] and h[4] == h[5]
    assert len({int(h[i]) for i in (0, 1, 3, 4)}) == 4
