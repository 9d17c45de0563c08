"""The red-team catalogue of hostile input files: CSV, gzip CSV, Parquet and JSON Lines.

Each case is an export holding one hostile file, loaded with the ``ringscope load``
command into a store that holds a previous, successful load, in a process of its own
(see ``conftest.py``). Every case states its exit code (0 loaded, 3 rows rejected,
1 file refused) and a fragment of its message: for a refused file, the ``error:``
line that names the file and the reason; for a rejected row, the line of the rejects
file with the file, row, column and reason. Whatever the file, the command must:

- exit with the stated code and print no Python traceback;
- stay within 1 GiB of peak memory (the review that led to this catalogue saw a
  625 KB Parquet file take 2.7 GB and die);
- leave the store exactly as the report says: a refused file leaves its table's
  rows exactly as they were (rows written before the refusal are taken back), other
  tables change only by the rows the report counts as loaded, and only the load
  log gains a record (the refused load's, naming the error).

The headline cases of that review also run through a new interpreter
(``python -m ringscope.cli``), as a user would run them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.exports import ACCOUNTS, ORDERS_HEAD, STREAMS, read_rejects, write_export

from ringscope.contract import MAX_ID_LENGTH, MAX_TEXT_LENGTH, TABLES
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.read import BOMB_FLOOR_BYTES, HEADER_BYTES, MAX_FIELD_BYTES

from .helpers import Ringscope, Run, dump, run_fresh

HEAD = "account_id,roles,created_at\n"
GOOD = "a1,buyer,2024-01-01T00:00:00Z\n"
ROW = {"account_id": "a1", "roles": "buyer", "created_at": "2024-01-01T00:00:00Z"}
#: Peak memory allowed to one ``ringscope load`` of a hostile file.
MAX_RSS_MIB = 1024


@dataclass(frozen=True)
class Stream:
    """A file too large to build in memory, written to its path piece by piece."""

    write: Callable[[Path], None]


Body = str | bytes | Callable[[], bytes] | Stream


# --------------------------------------------------------------------------- builders


def _parquet(
    columns: dict[str, pa.Array | list[object]],
    names: list[str] | None = None,
    **options: Any,
) -> bytes:
    arrays = [c if isinstance(c, pa.Array) else pa.array(c) for c in columns.values()]
    table = pa.table(arrays, names=names or list(columns))
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def _gzip_members(first: bytes, repeated: bytes, total: int) -> bytes:
    """A gzip file of several members (valid, and what ``cat a.gz b.gz`` gives): one
    compressed copy of ``repeated`` stands for each repetition, so the file is small
    while it decompresses to ``total`` bytes."""
    member = gzip.compress(repeated, 9)
    return gzip.compress(first, 9) + member * (total // len(repeated))


def _rows_bomb() -> bytes:
    rows = b"a1,buyer,2024-01-01\n" * 50_000
    return _gzip_members(HEAD.encode(), rows, BOMB_FLOOR_BYTES * 2)


def _line_bomb() -> bytes:
    return _gzip_members(HEAD.encode() + b"a1,buyer,", b"9" * (1 << 20), BOMB_FLOOR_BYTES * 2)


def _nul_bomb() -> bytes:
    return _gzip_members((HEAD + GOOD).encode(), b"\x00" * (1 << 20), BOMB_FLOOR_BYTES * 2)


def _jsonl(*objects: object) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


def _same(n: int, value: object, type_: pa.DataType | None = None) -> pa.DictionaryArray:
    """``n`` rows of one value, dictionary-encoded (one entry, ``n`` indices)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], type_)
    )


def _review_bomb() -> bytes:
    """The review's file, rebuilt: about 600 KB of Parquet whose first row group holds
    250,000 good accounts (a whole first batch, written before anything goes wrong)
    and whose second holds two million rows of one dictionary entry of 1 MiB, which
    a reader that decodes dictionaries whole expands to 2 TB."""
    n, m = 250_000, 2_000_000
    ids = pa.array([f"r{i:07d}" for i in range(n)])
    bomb = pa.table(
        {
            "account_id": _same(m, "x" * (1 << 20)),
            "roles": _same(m, "buyer"),
            "created_at": pa.array(np.full(m, 1_700_000_000, dtype=np.int64)),
        }
    )
    good = pa.table(
        {
            "account_id": pa.DictionaryArray.from_arrays(
                pa.array(np.arange(n, dtype=np.int32)), ids
            ),
            "roles": _same(n, "buyer"),
            "created_at": pa.array(np.full(n, 1_700_000_000, dtype=np.int64)),
        }
    )
    out = io.BytesIO()
    with pq.ParquetWriter(out, bomb.schema, compression="zstd") as writer:
        writer.write_table(good)
        writer.write_table(bomb)
    return out.getvalue()


def _long_line(length: int) -> Stream:
    """JSON Lines whose second line is one string value of ``length`` bytes, written
    in 1 MiB pieces (the test holds none of it)."""

    def write(path: Path) -> None:
        piece = b"x" * (1 << 20)
        with path.open("wb") as out:
            out.write(_jsonl(ROW).encode())
            out.write(b'{"account_id": "a2", "roles": "buyer", "created_at": "2024-01-01", "c": "')
            for _ in range(length >> 20):
                out.write(piece)
            out.write(b'"}\n')
            out.write(_jsonl({**ROW, "account_id": "a3"}).encode())

    return Stream(write)


def _csv_after_a_batch(rows: int) -> Stream:
    """``rows`` good accounts (more than a batch), then a record whose quote never
    closes: a value longer than the 64 MiB cap."""

    def write(path: Path) -> None:
        with path.open("wb") as out:
            out.write(HEAD.encode())
            out.write(b"".join(b"h%07d,buyer,2024-01-01\n" % i for i in range(rows)))
            out.write(b'h-late,buyer,"')
            piece = b"y" * (1 << 20)
            for _ in range((MAX_FIELD_BYTES >> 20) + 1):
                out.write(piece)

    return Stream(write)


def _truncated_parquet() -> bytes:
    whole = _parquet({"account_id": ["a1", "a2"], "roles": ["buyer"] * 2, "created_at": [1] * 2})
    return whole[: len(whole) // 2]


def _pandas_parquet(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out, index=False)
    return out.getvalue()


def _many_row_groups(n: int) -> bytes:
    table = pa.table(
        {
            "account_id": [f"g{i}" for i in range(n)],
            "roles": ["buyer"] * n,
            "created_at": ["2024-01-01"] * n,
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=1)
    return out.getvalue()


@dataclass(frozen=True)
class Case:
    """One hostile input: ``files`` of an export (the accounts of the previous load are
    added when ``table`` is another table) and what loading it must give for ``table``.

    ``reject`` (exit 3): the row ``row`` is rejected, naming ``column``, with ``words``
    in its reason, and ``loaded`` rows load; ``fail`` (exit 1): the file is refused
    with ``words`` in the ``error:`` line and nothing of it loads; ``load`` (exit 0):
    ``loaded`` rows load.
    """

    id: str
    table: str
    files: dict[str, Body]
    expect: Literal["reject", "fail", "load"]
    words: str = ""
    row: int | None = None
    column: str | None = None
    loaded: int = 0
    stored: dict[str, object] = field(default_factory=dict)  # column -> a stored value

    @property
    def code(self) -> int:
        return {"load": 0, "fail": 1, "reject": 3}[self.expect]


CASES = [
    # ======================================================== folded in from tests/test_hostile.py
    # ---- huge ids and enormous strings
    Case(
        "id-of-1-MiB",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "x" * (1 << 20) + ",buyer,2024-01-01\n"},
        "reject",
        f"longer than {MAX_ID_LENGTH} characters (1048576 characters)",
        row=2,
        column="account_id",
        loaded=1,
    ),
    Case(
        "json-integer-id-of-5000-digits",
        "accounts",
        {
            "accounts.jsonl": _jsonl(
                ROW,
                '{"account_id": ' + "9" * 5000 + ', "roles": "buyer", "created_at": "2024-01-01"}',
            )
        },
        "reject",
        "longer than 256 characters (5000 characters)",
        row=2,
        column="account_id",
        loaded=1,
    ),
    Case(
        "json-integer-id-beyond-64-bits-kept-exactly",
        "accounts",
        {"accounts.jsonl": _jsonl({**ROW, "account_id": 123456789012345678901234567890})},
        "load",
        loaded=1,
        stored={"account_id": "123456789012345678901234567890"},
    ),
    Case(
        "value-of-10-MiB-longer-than-a-read-block",
        "accounts",
        {
            "accounts.csv": "account_id,roles,created_at,country\n"
            "a1,buyer,2024-01-01,SG\na2,buyer,2024-01-01,"
            + "x" * (10 << 20)
            + "\na3,buyer,2024-01-01,MY\n"
        },
        "reject",
        "longer than 256 characters (10485760 characters)",
        row=2,
        column="country",
        loaded=2,
    ),
    Case(
        "stream-title-of-1-MiB",
        "streams",
        {
            "streams.csv": "stream_id,creator_id,started_at,title\n"
            f"st1,c1,2026-11-01T19:00:00Z,{'t' * (1 << 20)}\nst2,c1,2026-11-01T20:00:00Z,ok\n"
        },
        "reject",
        f"longer than {MAX_TEXT_LENGTH} characters",
        row=1,
        column="title",
        loaded=1,
    ),
    Case(
        "header-row-longer-than-64-KiB",
        "accounts",
        {"accounts.csv": "account_id,roles,created_at," + "c" * HEADER_BYTES + "\n" + GOOD},
        "fail",
        "header row longer than 64 KiB",
    ),
    # ---- deep and odd JSON
    Case(
        "json-nested-100000-deep",
        "accounts",
        {"accounts.jsonl": _jsonl(ROW, '{"account_id": ' + "[" * 100_000 + "]" * 100_000 + "}")},
        "reject",
        "JSON nested too deeply",
        row=2,
        loaded=1,
    ),
    Case(
        "json-key-given-twice",
        "accounts",
        {
            "accounts.jsonl": _jsonl(
                '{"account_id": "a1", "account_id": "a2", "roles": "buyer", '
                '"created_at": "2024-01-01"}'
            )
        },
        "reject",
        "key appears more than once",
        row=1,
        column="account_id",
    ),
    Case(
        "json-escaped-lone-surrogate",
        "accounts",
        {
            "accounts.jsonl": _jsonl(
                ROW, '{"account_id": "a\\ud800", "roles": "buyer", "created_at": "2024-01-01"}'
            )
        },
        "reject",
        "lone surrogate",
        row=2,
        column="account_id",
        loaded=1,
    ),
    Case(
        "json-nan-and-infinity-amounts",
        "engagements",
        {
            "streams.csv": STREAMS,
            "engagements.jsonl": "".join(
                '{"account_id": "b1", "stream_id": "st1", "kind": "gift", '
                f'"ts": {ts}, "amount": {amount}}}\n'
                for ts, amount in ((1762000000, "NaN"), (1762000001, "1e999"), (1762000002, "2.5"))
            ),
        },
        "reject",
        "not a finite number",
        row=1,
        column="amount",
        loaded=1,
    ),
    Case(
        "json-top-level-array-and-nested-value",
        "accounts",
        {"accounts.jsonl": _jsonl(ROW, [ROW], {**ROW, "account_id": {"$gt": ""}})},
        "reject",
        "not a JSON object",
        row=2,
        loaded=1,
    ),
    # ---- encodings
    Case(
        "utf16-with-byte-order-mark",
        "accounts",
        {"accounts.csv": (HEAD + GOOD).encode("utf-16")},
        "fail",
        "UTF-16-encoded; files must be UTF-8",
    ),
    Case(
        "utf16-without-byte-order-mark",
        "accounts",
        {"accounts.csv": (HEAD + GOOD).encode("utf-16-le")},
        "fail",
        "header row holds NUL bytes",
    ),
    Case(
        "utf32",
        "accounts",
        {"accounts.csv": (HEAD + GOOD).encode("utf-32")},
        "fail",
        "UTF-32-encoded",
    ),
    Case(
        "latin1-values",
        "accounts",
        {"accounts.csv": (HEAD + "Jos\xe9,buyer,2024-01-01\n" + GOOD).encode("latin-1")},
        "reject",
        "not valid UTF-8 (byte 3)",
        row=1,
        column="account_id",
        loaded=1,
    ),
    Case(
        "binary-file-named-csv",
        "accounts",
        {"accounts.csv": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4},
        "fail",
        "header row is not valid UTF-8",
    ),
    Case(
        "utf8-byte-order-mark-is-fine",
        "accounts",
        {"accounts.csv": b"\xef\xbb\xbf" + (HEAD + GOOD).encode()},
        "load",
        loaded=1,
    ),
    Case(
        "utf8-byte-order-mark-before-json-lines-is-fine",
        "accounts",
        {"accounts.jsonl": b"\xef\xbb\xbf" + _jsonl(ROW, {**ROW, "account_id": "a2"}).encode()},
        "load",
        loaded=2,
    ),
    Case(
        "nul-byte-in-an-id",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a\x002,buyer,2024-01-01\n"},
        "reject",
        "control character (U+0000 at position 2)",
        row=2,
        column="account_id",
        loaded=1,
    ),
    Case(
        "line-break-in-a-quoted-id",
        "accounts",
        {"accounts.csv": HEAD + GOOD + '"a\n2",buyer,2024-01-01\n'},
        "reject",
        "control character (U+000A at position 2)",
        row=2,
        column="account_id",
        loaded=1,
    ),
    Case(
        "line-break-in-a-title-is-fine",
        "streams",
        {
            "streams.csv": "stream_id,creator_id,started_at,title\n"
            'st1,c1,2026-11-01T19:00:00Z,"Deals\nall night"\n'
        },
        "load",
        loaded=1,
        stored={"title": "Deals\nall night"},
    ),
    # ---- duplicated headers
    Case(
        "csv-header-names-a-column-twice",
        "accounts",
        {"accounts.csv": "account_id,roles,created_at,account_id\na1,buyer,2024-01-01,a2\n"},
        "fail",
        "appears 2 times in the header",
    ),
    Case(
        "csv-header-twice-after-trimming-spaces",
        "accounts",
        {"accounts.csv": "account_id, roles ,created_at,roles\na1,buyer,2024-01-01,seller\n"},
        "fail",
        "appears 2 times in the header",
    ),
    Case(
        "parquet-column-twice",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {"a": ["a1"], "b": ["a2"], "c": ["buyer"], "d": ["2024-01-01"]},
                names=["account_id", "account_id", "roles", "created_at"],
            )
        },
        "fail",
        "appears 2 times in the header",
    ),
    # ---- compression bombs
    Case(
        "gzip-bomb-of-one-repeated-row",
        "accounts",
        {"accounts.csv.gz": _rows_bomb},
        "fail",
        "refused as a likely compression bomb",
    ),
    Case(
        "gzip-bomb-of-one-endless-value",
        "accounts",
        {"accounts.csv.gz": _line_bomb},
        "fail",
        "refused as a likely compression bomb",
    ),
    Case(
        "gzip-that-is-not-gzip",
        "accounts",
        {"accounts.csv.gz": (HEAD + GOOD).encode()},
        "fail",
        "Not a gzipped file",
    ),
    # ---- time zones and timestamps
    Case(
        "offsets-from-minus-12-to-plus-14-normalised-to-utc",
        "accounts",
        {
            "accounts.csv": HEAD + "a1,buyer,2024-01-01T00:00:00+14:00\n"
            "a2,buyer,2024-01-01T00:00:00-12:00\na3,buyer,2024-01-01T05:45:00+05:45\n"
        },
        "load",
        loaded=3,
        stored={"created_at": "2023-12-31T10:00:00+00:00"},
    ),
    Case(
        "offset-of-25-hours",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a2,buyer,2024-01-01T00:00:00+25:00\n"},
        "reject",
        "not a timestamp: '2024-01-01T00:00:00+25:00'",
        row=2,
        column="created_at",
        loaded=1,
    ),
    Case(
        "named-time-zone-instead-of-an-offset",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a2,buyer,2024-03-31T02:30:00 Europe/Berlin\n"},
        "reject",
        "expected ISO 8601 or Unix seconds",
        row=2,
        column="created_at",
        loaded=1,
    ),
    Case(
        "same-instant-in-two-zones-is-one-row",
        "labels",
        {
            "labels.csv": "subject_id,label,decided_at\nb1,abusive,2026-11-01T20:00:00+08:00\n"
            "b1,abusive,2026-11-01T12:00:00Z\n"
        },
        "load",
        loaded=1,
    ),
    Case(
        "unix-milliseconds",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a2,buyer,1700000000000\n"},
        "reject",
        "Unix seconds out of range: '1700000000000' (milliseconds?)",
        row=2,
        column="created_at",
        loaded=1,
    ),
    Case(
        "year-9999",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a2,buyer,9999-12-31T23:59:59Z\n"},
        "reject",
        "is in the future",
        row=2,
        column="created_at",
        loaded=1,
    ),
    Case(
        "parquet-int64-extremes-as-unix-seconds",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": ["a1", "a2", "a3"],
                    "roles": ["buyer"] * 3,
                    "created_at": pa.array([1_700_000_000, 2**63 - 1, -(2**63)], pa.int64()),
                }
            )
        },
        "reject",
        "Unix seconds out of range: '9223372036854775807'",
        row=2,
        column="created_at",
        loaded=1,
    ),
    Case(
        "parquet-timestamps-beyond-python-datetime",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": ["a1", "a2"],
                    "roles": ["buyer"] * 2,
                    "created_at": pa.array([1_700_000_000_000, 2**52], pa.timestamp("ms")),
                }
            )
        },
        "reject",
        "is in the future",
        row=2,
        column="created_at",
        loaded=1,
    ),
    Case(
        "parquet-dates-beyond-64-bit-microseconds",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": ["a1", "a2"],
                    "roles": ["buyer"] * 2,
                    "created_at": pa.array([19_700, -1_000_000_000], pa.date32()),
                }
            )
        },
        "reject",
        "not a timestamp",
        row=2,
        column="created_at",
        loaded=1,
    ),
    # ---- numbers and records
    Case(
        "amount-beyond-float-range",
        "orders",
        {
            "orders.csv": ORDERS_HEAD + "o1,b1,s1,p1,1e309,completed,2026-11-01T19:20:00Z\n"
            "o2,b1,s1,p1,10,completed,2026-11-01T19:20:00Z\n"
        },
        "reject",
        "not a finite number: '1e309'",
        row=1,
        column="amount",
        loaded=1,
    ),
    Case(
        "unclosed-quote-swallows-the-rest",
        "accounts",
        {"accounts.csv": HEAD + GOOD + 'a2,"buyer,2024-01-01\na3,buyer,2024-01-01\n'},
        "reject",
        "expected 3 fields, found 2",
        row=2,
        loaded=1,
    ),
    Case(
        "injection-looking-ids-are-data",
        "accounts",
        {
            "accounts.csv": HEAD + '"a\'}) DETACH DELETE n //",buyer,2024-01-01\n'
            "'; DROP TABLE accounts; --,buyer,2024-01-01\n"
        },
        "load",
        loaded=2,
        stored={"account_id": "'; DROP TABLE accounts; --"},
    ),
    # ======================================================== Parquet
    Case(
        "parquet-625-KB-dictionary-bomb-after-250000-good-rows",
        "accounts",
        {"accounts.parquet": _review_bomb},
        "fail",
        "refused as a likely decompression bomb",
    ),
    Case(
        "parquet-dictionary-of-one-mebibyte-value-on-a-million-rows",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": _same(1_000_000, "x" * (1 << 20)),
                    "roles": _same(1_000_000, "buyer"),
                    "created_at": _same(1_000_000, "2024-01-01"),
                },
                compression="zstd",
            )
        },
        "fail",
        "refused as a likely decompression bomb",
    ),
    Case(
        "parquet-declaring-16-million-rows-in-a-hundred-kilobytes",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {c: pa.nulls(1 << 24, pa.string()) for c in ("account_id", "roles", "created_at")},
                compression="zstd",
            )
        },
        "fail",
        "declares 16,777,216 rows in",
    ),
    Case(
        "parquet-value-of-40-MiB-compressed-to-kilobytes",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": ["a1", "a2"],
                    "roles": ["buyer"] * 2,
                    "created_at": ["2024-01-01"] * 2,
                    "country": ["SG", "x" * (40 << 20)],
                },
                compression="zstd",
                use_dictionary=False,
            )
        },
        "fail",
        "refused as a likely decompression bomb",
    ),
    Case(
        "parquet-value-of-1-MiB-rejected-alone",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": ["a1", "x" * (1 << 20), "a3"],
                    "roles": ["buyer"] * 3,
                    "created_at": ["2024-01-01"] * 3,
                },
                use_dictionary=False,
            )
        },
        "reject",
        f"longer than {MAX_ID_LENGTH} characters (1048576 characters)",
        row=2,
        column="account_id",
        loaded=2,
    ),
    Case(
        "parquet-dictionary-encoded-strings-load",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": ["d1", "d2", "d3", "d4"],
                    "roles": ["seller|buyer", "buyer", "buyer", "buyer"],
                    "created_at": ["2024-01-01"] * 4,
                    "country": ["SG", "SG", "MY", None],
                },
                use_dictionary=True,
            )
        },
        "load",
        loaded=4,
        stored={"roles": "buyer|seller", "country": "MY"},
    ),
    Case(
        "parquet-pandas-categoricals-load",
        "accounts",
        {
            "accounts.parquet": lambda: _pandas_parquet(
                pd.DataFrame(
                    {
                        "account_id": pd.Categorical(["k1", "k2", "k3"]),
                        "roles": pd.Categorical(["buyer", "creator", "buyer"]),
                        "created_at": pd.to_datetime(["2024-01-01"] * 3, utc=True),
                        "country": pd.Categorical(["SG", None, "SG"]),
                    }
                )
            )
        },
        "load",
        loaded=3,
        stored={"account_id": "k2", "roles": "creator"},
    ),
    Case(
        "parquet-categorical-of-integers-as-ids",
        "accounts",
        {
            "accounts.parquet": lambda: _pandas_parquet(
                pd.DataFrame(
                    {
                        "account_id": pd.Categorical([101, 102, 101 + 2]),
                        "roles": ["buyer"] * 3,
                        "created_at": [1_700_000_000] * 3,
                    }
                )
            )
        },
        "load",
        loaded=3,
        stored={"account_id": "103"},
    ),
    Case(
        "parquet-binary-ids-not-utf8-with-binary-page-statistics",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": pa.array([b"a1", b"\xff\xfe\x00", b"a3"], pa.binary()),
                    "roles": ["buyer"] * 3,
                    "created_at": ["2024-01-01"] * 3,
                },
                write_page_index=True,
            )
        },
        "reject",
        "not valid UTF-8 (byte 0)",
        row=2,
        column="account_id",
        loaded=2,
    ),
    Case(
        "parquet-truncated-in-the-middle",
        "accounts",
        {"accounts.parquet": _truncated_parquet},
        "fail",
        "cannot read Parquet",
    ),
    Case(
        "parquet-of-random-bytes",
        "accounts",
        {"accounts.parquet": bytes(np.random.default_rng(3).integers(0, 256, 4096, np.uint8))},
        "fail",
        "cannot read Parquet",
    ),
    Case("parquet-empty-file", "accounts", {"accounts.parquet": b""}, "fail", "file is empty"),
    Case(
        "parquet-struct-column-as-an-id",
        "accounts",
        {
            "accounts.parquet": lambda: _parquet(
                {
                    "account_id": pa.array([{"x": "a1"}]),
                    "roles": ["buyer"],
                    "created_at": ["2024-01-01"],
                }
            )
        },
        "fail",
        "column has type struct",
    ),
    Case(
        "parquet-numbers-as-titles",
        "streams",
        {
            "streams.parquet": lambda: _parquet(
                {
                    "stream_id": ["st1"],
                    "creator_id": ["c1"],
                    "started_at": ["2026-11-01T19:00:00Z"],
                    "title": pa.array([float("nan")], pa.float64()),
                }
            )
        },
        "fail",
        "column has type double, expected text",
    ),
    Case(
        "parquet-2000-row-groups-of-one-row",
        "accounts",
        {"accounts.parquet": lambda: _many_row_groups(2000)},
        "load",
        loaded=2000,
    ),
    Case(
        "parquet-with-no-rows",
        "accounts",
        {"accounts.parquet": lambda: _parquet({"account_id": [], "roles": [], "created_at": []})},
        "load",
    ),
    Case(
        "parquet-nan-amount",
        "orders",
        {
            "orders.parquet": lambda: _parquet(
                {
                    "order_id": ["o1", "o2"],
                    "buyer_id": ["b1", "b1"],
                    "seller_id": ["s1", "s1"],
                    "product_id": ["p1", "p1"],
                    "amount": pa.array([float("nan"), 12.5]),
                    "status": ["completed"] * 2,
                    "ts": pa.array([1_762_000_000, 1_762_000_001], pa.timestamp("s", "Asia/Tokyo")),
                }
            )
        },
        "reject",
        "not a finite number",
        row=1,
        column="amount",
        loaded=1,
    ),
    Case(
        "parquet-large-strings-and-decimal-amounts",
        "orders",
        {
            "orders.parquet": lambda: _parquet(
                {
                    "order_id": pa.array(["o1"], pa.large_string()),
                    "buyer_id": pa.array(["b1"], pa.large_string()),
                    "seller_id": ["s1"],
                    "product_id": ["p1"],
                    "amount": pa.array([12], pa.decimal128(10, 2)),
                    "status": ["completed"],
                    "ts": pa.array([1_762_000_000_000], pa.timestamp("ms")),
                }
            )
        },
        "load",
        loaded=1,
    ),
    # ======================================================== JSON Lines
    Case(
        "jsonl-line-of-65-MiB",
        "accounts",
        {"accounts.jsonl": _long_line(65 << 20)},
        "reject",
        "a line longer than 64 MiB (68,157,5",
        row=2,
        loaded=2,
    ),
    Case(
        "jsonl-nan-title-is-missing",
        "streams",
        {
            "streams.jsonl": '{"stream_id": "st1", "creator_id": "c1", '
            '"started_at": "2026-11-01T19:00:00Z", "title": NaN}\n'
        },
        "load",
        loaded=1,
        stored={"title": None},
    ),
    Case(
        "jsonl-nan-in-a-required-id",
        "streams",
        {
            "streams.jsonl": '{"stream_id": "st1", "creator_id": NaN, '
            '"started_at": "2026-11-01T19:00:00Z"}\n'
            '{"stream_id": "st2", "creator_id": "c1", "started_at": "2026-11-01T19:00:00Z"}\n'
        },
        "reject",
        "missing value (NaN)",
        row=1,
        column="creator_id",
        loaded=1,
    ),
    Case(
        "jsonl-infinity-title",
        "streams",
        {
            "streams.jsonl": '{"stream_id": "st1", "creator_id": "c1", '
            '"started_at": "2026-11-01T19:00:00Z", "title": -Infinity}\n'
        },
        "reject",
        "expected text, found -Infinity",
        row=1,
        column="title",
    ),
    Case(
        "jsonl-boolean-id",
        "accounts",
        {"accounts.jsonl": _jsonl(ROW, {**ROW, "account_id": True})},
        "reject",
        "expected a string or a number, found true",
        row=2,
        column="account_id",
        loaded=1,
    ),
    Case("jsonl-empty-file", "accounts", {"accounts.jsonl": b""}, "load"),
    Case("jsonl-only-blank-lines", "accounts", {"accounts.jsonl": "\n\n \n\t\n"}, "load"),
    Case(
        "jsonl-line-not-utf8",
        "accounts",
        {"accounts.jsonl": _jsonl(ROW).encode() + b'{"account_id": "\xff\xfe"}\n'},
        "reject",
        "not valid UTF-8",
        row=2,
        loaded=1,
    ),
    Case(
        "jsonl-crlf-line-ends",
        "accounts",
        {"accounts.jsonl": _jsonl(ROW, {**ROW, "account_id": "a2"}).replace("\n", "\r\n")},
        "load",
        loaded=2,
    ),
    Case(
        "jsonl-without-a-required-key",
        "accounts",
        {"accounts.jsonl": _jsonl({"account_id": "a1", "roles": "buyer"})},
        "fail",
        "required column missing: created_at",
    ),
    Case(
        "jsonl-title-of-10-MiB",
        "streams",
        {
            "streams.jsonl": _jsonl(
                {
                    "stream_id": "st1",
                    "creator_id": "c1",
                    "started_at": "2026-11-01T19:00:00Z",
                    "title": "t" * (10 << 20),
                }
            )
        },
        "reject",
        f"longer than {MAX_TEXT_LENGTH} characters",
        row=1,
        column="title",
    ),
    Case(
        "jsonl-exponent-beyond-float",
        "engagements",
        {
            "streams.csv": STREAMS,
            "engagements.jsonl": '{"account_id": "b1", "stream_id": "st1", "kind": "gift", '
            '"ts": 1762000000, "amount": 1e999999}\n',
        },
        "reject",
        "not a finite number",
        row=1,
        column="amount",
    ),
    # ======================================================== CSV
    Case(
        "csv-unclosed-quote-past-64-MiB-after-250000-good-rows",
        "accounts",
        {"accounts.csv": _csv_after_a_batch(250_000)},
        "fail",
        "a value longer than 64 MiB (an unclosed quote?)",
    ),
    Case("csv-header-only", "accounts", {"accounts.csv": HEAD}, "load"),
    Case("csv-empty-file", "accounts", {"accounts.csv": b""}, "fail", "file is empty"),
    Case(
        "csv-semicolon-separated",
        "accounts",
        {"accounts.csv": "account_id;roles;created_at\na1;buyer;2024-01-01\n"},
        "fail",
        "the header looks ';'-separated",
    ),
    Case(
        "csv-without-a-required-column",
        "accounts",
        {"accounts.csv": "account_id,roles\na1,buyer\n"},
        "fail",
        "required column missing: created_at",
    ),
    Case(
        "csv-unknown-role",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a2,admin|buyer,2024-01-01\n"},
        "reject",
        "unknown role 'admin'",
        row=2,
        column="roles",
        loaded=1,
    ),
    Case(
        "csv-key-repeated-with-other-values",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a1,seller,2024-01-01\n"},
        "reject",
        "duplicate key (account_id='a1') of row 1 with different values (roles)",
        row=2,
        column="account_id",
        loaded=1,
    ),
    Case(
        "csv-negative-amount",
        "orders",
        {
            "orders.csv": ORDERS_HEAD + "o1,b1,s1,p1,-5,completed,2026-11-01T19:20:00Z\n"
            "o2,b1,s1,p1,5,completed,2026-11-01T19:20:00Z\n"
        },
        "reject",
        "negative: -5",
        row=1,
        column="amount",
        loaded=1,
    ),
    Case(
        "csv-commission-above-the-amount",
        "orders",
        {
            "orders.csv": ORDERS_HEAD.replace("\n", ",commission\n")
            + "o1,b1,s1,p1,5,completed,2026-11-01T19:20:00Z,50\n"
        },
        "reject",
        "commission (50) is above amount (5)",
        row=1,
        column="commission",
    ),
    Case(
        "csv-old-mac-line-ends",
        "accounts",
        {"accounts.csv": (HEAD + GOOD + "a2,buyer,2024-01-01\n").replace("\n", "\r")},
        "load",
        loaded=2,
    ),
    Case(
        "csv-formula-looking-ids-are-data",
        "accounts",
        {"accounts.csv": HEAD + '"=HYPERLINK(""http://x"",""y"")",buyer,2024-01-01\n'},
        "load",
        loaded=1,
        stored={"account_id": '=HYPERLINK("http://x","y")'},
    ),
    Case(
        "csv-header-with-5000-extra-columns",
        "accounts",
        {
            "accounts.csv": HEAD.strip()
            + "".join(f",x{i}" for i in range(5000))
            + "\n"
            + GOOD.strip()
            + ",1" * 5000
            + "\n"
        },
        "load",
        loaded=1,
    ),
    Case(
        "csv-record-with-too-many-fields",
        "accounts",
        {"accounts.csv": HEAD + GOOD + "a2,buyer,2024-01-01,extra\n"},
        "reject",
        "expected 3 fields, found 4",
        row=2,
        loaded=1,
    ),
    # ======================================================== gzip CSV
    Case(
        "gzip-truncated",
        "accounts",
        {"accounts.csv.gz": gzip.compress((HEAD + GOOD * 2000).encode())[:200]},
        "fail",
        "cannot read CSV",
    ),
    Case(
        "gzip-with-trailing-garbage",
        "accounts",
        {"accounts.csv.gz": gzip.compress((HEAD + GOOD).encode()) + b"garbage" * 10},
        "fail",
        "Not a gzipped file",
    ),
    Case(
        "gzip-of-utf16",
        "accounts",
        {"accounts.csv.gz": gzip.compress((HEAD + GOOD).encode("utf-16"))},
        "fail",
        "UTF-16-encoded",
    ),
    Case(
        "gzip-of-concatenated-members",
        "accounts",
        {
            "accounts.csv.gz": gzip.compress((HEAD + GOOD).encode())
            + gzip.compress(b"a2,buyer,2024-01-01\n")
        },
        "load",
        loaded=2,
    ),
    Case("gzip-empty-file", "accounts", {"accounts.csv.gz": b""}, "fail", "file is empty"),
    Case("gzip-header-only", "accounts", {"accounts.csv.gz": gzip.compress(HEAD.encode())}, "load"),
    Case(
        "gzip-bomb-of-nul-bytes",
        "accounts",
        {"accounts.csv.gz": _nul_bomb},
        "fail",
        "refused as a likely compression bomb",
    ),
    # ======================================================== whole exports
    Case(
        "table-in-two-files",
        "accounts",
        {"accounts.csv": HEAD + GOOD, "accounts.jsonl": _jsonl(ROW)},
        "fail",
        "table 'accounts' is in several files (accounts.csv, accounts.jsonl); keep one",
    ),
    Case(
        "streams-refused-while-accounts-load",
        "streams",
        {
            "accounts.csv": ACCOUNTS + "n1,creator,2024-01-01,SG\n",
            "streams.csv": "stream_id,creator_id\nst1,n1\n",
        },
        "fail",
        "required column missing: started_at",
    ),
]


def _write(folder: Path, files: dict[str, Body], table: str) -> None:
    """The export of a case: its files, and the accounts of the previous load when
    the case is about another table (they load as duplicates)."""
    folder.mkdir(parents=True)
    ready = {n: b() if callable(b) else b for n, b in files.items() if not isinstance(b, Stream)}
    write_export(folder, ready, accounts=table != "accounts")  # type: ignore[arg-type]
    for name, body in files.items():
        if isinstance(body, Stream):
            body.write(folder / name)


def _new_loads(before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The reports of the loads ``after`` holds and ``before`` did not."""
    known = {row[1] for row in before}
    return [json.loads(row[3]) for row in after if row[1] not in known]


def _check_run(case: Case, run: Run, export: Path, before: dict[str, Any], store: Path) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.code == case.code, (run.code, run.stderr)
    assert run.maxrss_mib <= MAX_RSS_MIB, f"peak memory {run.maxrss_mib:.0f} MiB"
    after = dump(store)
    [report] = _new_loads(before["loads"], after["loads"])  # this load, recorded once
    loaded = {t: r["loaded"] for t, r in report["tables"].items()}
    # Every table holds what it held plus the rows the report counts as loaded.
    for name in TABLES:
        if name == "loads":
            continue
        assert len(after[name]) == len(before[name]) + loaded.get(name, 0), name
    this = report["tables"][case.table]
    if case.expect == "fail":
        # The refused file's table is exactly as it was, and one error line says why.
        assert after[case.table] == before[case.table]
        assert this["loaded"] == 0 and case.words in this["error"], this["error"]
        lines = [line for line in run.errors if case.words in line]
        assert len(lines) == 1, run.errors
        assert str(export) in lines[0], lines[0]
        assert case.table in lines[0], lines[0]
        rejects = export.parent / f"{export.name}.rejects" / f"{case.table}.rejects.csv"
        assert not rejects.exists()  # rows of a refused file are not listed one by one
        return
    assert this["error"] is None, this["error"]
    assert this["loaded"] == case.loaded
    assert this["read"] == this["loaded"] + this["rejected"] + this["duplicates"]
    if case.expect == "load":
        assert this["rejected"] == 0 and not run.errors, run.stderr
    else:
        assert this["rejects_file"] is not None and "rejects:" in run.stderr
        csv.field_size_limit(1 << 27)  # rejects keep long values whole
        matching = [r for r in read_rejects(this["rejects_file"]) if r["row"] == str(case.row)]
        assert len(matching) == 1, matching
        assert case.words in matching[0]["reason"], matching[0]["reason"]
        assert matching[0]["column"] == (case.column or "")
        assert matching[0]["file"] == this["file"]
    if case.stored:
        with EmbeddedStore(store) as opened:
            stored = opened.table(case.table)
        for column, value in case.stored.items():
            values = stored[column].tolist()
            shown = [v.isoformat() if hasattr(v, "isoformat") else v for v in values]
            if value is None:  # missing, not the text "nan"
                assert any(pd.isna(v) for v in values) and "nan" not in shown, shown
            else:
                assert value in shown, shown


def test_the_catalogue_is_large_enough() -> None:
    formats = {Path(n).name.split(".", 1)[1] for c in CASES for n in c.files}
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    assert {"csv", "csv.gz", "parquet", "jsonl"} <= formats


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_file(case: Case, ringscope: Ringscope, store_copy: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    _write(export, case.files, case.table)
    before = dump(store_copy)
    run = ringscope("load", export, "--store", store_copy, cwd=tmp_path)
    _check_run(case, run, export, before, store_copy)


# --------------------------------------------------------------------------- as a user runs it


def test_the_review_parquet_bomb_in_a_new_interpreter(store_copy: Path, tmp_path: Path) -> None:
    """The review's reproduction: ``ringscope load`` of the 625 KB Parquet file died with
    ``ArrowMemoryError`` at 2.7 GB after writing 200,000 rows and recording no load."""
    case = next(c for c in CASES if c.id.startswith("parquet-625-KB"))
    export = tmp_path / "export"
    _write(export, case.files, case.table)
    size = (export / "accounts.parquet").stat().st_size
    assert 500_000 < size < 700_000, size
    before = dump(store_copy)
    run = run_fresh("load", export, "--store", store_copy, cwd=tmp_path)
    _check_run(case, run, export, before, store_copy)


def test_a_300_MB_json_line_in_a_new_interpreter(store_copy: Path, tmp_path: Path) -> None:
    """The review's second reproduction: one line of 300 MB took 3.95 GB and left a
    314 MB rejects file. The line is now rejected alone, without being held."""
    case = Case(
        "jsonl-line-of-300-MB",
        "accounts",
        {"accounts.jsonl": _long_line(300 << 20)},
        "reject",
        "a line longer than 64 MiB (314,572,8",
        row=2,
        loaded=2,
    )
    export = tmp_path / "export"
    _write(export, case.files, case.table)
    before = dump(store_copy)
    run = run_fresh("load", export, "--store", store_copy, cwd=tmp_path)
    _check_run(case, run, export, before, store_copy)
    rejects = tmp_path / "export.rejects" / "accounts.rejects.csv"
    assert rejects.stat().st_size < 4096
    (export / "accounts.jsonl").unlink()  # 300 MB: not left for the end of the session


def test_the_traceback_is_shown_when_asked(ringscope: Ringscope, tmp_path: Path) -> None:
    quiet = ringscope("load", tmp_path / "nowhere", cwd=tmp_path)
    assert quiet.code == 1 and "Traceback" not in quiet.stderr
    assert quiet.errors == [f"error: {tmp_path / 'nowhere'}: not a folder"], quiet.stderr
    loud = ringscope("load", tmp_path / "nowhere", cwd=tmp_path, env={"RINGSCOPE_DEBUG": "1"})
    assert loud.code == 1 and "Traceback (most recent call last)" in loud.stderr
    assert "InputError" in loud.stderr and loud.errors == quiet.errors
