"""A catalogue of hostile input to the loaders and the command line, each case with the
clear outcome it must have: rows rejected one by one with file, row, column and reason;
a whole file refused with a reason and its table left as it was; a command that exits
with a message and the right code. Never a crash, never a half-written batch.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_loaders_helpers import ACCOUNTS, ORDERS_HEAD, STREAMS, read_rejects
from typer.testing import CliRunner

from ringscope.cli import app
from ringscope.contract import MAX_ID_LENGTH, MAX_TEXT_LENGTH, TABLES
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.read import BOMB_FLOOR_BYTES, HEADER_BYTES

SMALL = Path(__file__).parent / "data" / "small-export"
HEAD = "account_id,roles,created_at\n"
GOOD = "a1,buyer,2024-01-01T00:00:00Z\n"

Body = str | bytes | Callable[[], bytes]


# --------------------------------------------------------------------------- builders


def _parquet(columns: dict[str, pa.Array | list[object]], names: list[str] | None = None) -> bytes:
    arrays = [c if isinstance(c, pa.Array) else pa.array(c) for c in columns.values()]
    table = pa.table(arrays, names=names or list(columns))
    out = io.BytesIO()
    pq.write_table(table, out)
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


def _jsonl(*objects: object) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects)


ROW = {"account_id": "a1", "roles": "buyer", "created_at": "2024-01-01T00:00:00Z"}


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Case:
    """One hostile input: ``files`` of an export (the base accounts are added when
    ``table`` is another table) and what loading it must give for ``table``.

    ``reject``: the row ``row`` is rejected, naming ``column``, with ``words`` in its
    reason, and ``loaded`` rows load; ``fail``: the file is refused with ``words`` in
    the table's error and nothing of it loads; ``load``: ``loaded`` rows load.
    """

    id: str
    table: str
    files: dict[str, Body]
    expect: Literal["reject", "fail", "load"]
    words: str = ""
    row: int | None = None
    column: str | None = None
    loaded: int = 0
    stored: dict[str, object] = field(default_factory=dict)  # key -> a stored value


CASES = [
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
]


def _write(folder: Path, files: dict[str, Body], table: str) -> None:
    folder.mkdir(parents=True)
    if table != "accounts":
        (folder / "accounts.csv").write_text(ACCOUNTS, encoding="utf-8")
    for name, body in files.items():
        data = body() if callable(body) else body
        path = folder / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_bytes(data.encode("utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_to_the_loader(case: Case, tmp_path: Path) -> None:
    export = tmp_path / "export"
    _write(export, case.files, case.table)
    with EmbeddedStore(tmp_path / "store.duckdb") as store:
        report = load_export(store, export, rejects_dir=tmp_path / "rejects")
        counts = store.counts()
        stored = store.table(case.table) if case.stored else None
    table = report.tables[case.table]
    # Whatever happens, the store holds exactly what the report says was loaded.
    assert {name: t.loaded for name, t in report.tables.items()} == {
        name: counts[name] for name in report.tables
    }
    assert all(counts[t] == 0 for t in TABLES if t not in report.tables)
    if case.expect == "fail":
        assert table.error is not None and case.words in table.error, table.error
        assert table.file is not None and table.file in table.error
        assert table.loaded == 0 and counts[case.table] == 0
        return
    assert table.error is None, table.error
    assert table.read == table.loaded + table.rejected + table.duplicates
    assert table.loaded == case.loaded
    if case.expect == "load":
        assert table.rejected == 0
    else:
        assert table.rejects_file is not None
        csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))  # rejects keep huge values
        rejects = read_rejects(table.rejects_file)
        matching = [r for r in rejects if r["row"] == str(case.row)]
        assert len(matching) == 1, rejects
        assert case.words in matching[0]["reason"], matching[0]["reason"]
        assert matching[0]["column"] == (case.column or "")
        assert matching[0]["file"] == table.file
    if stored is not None:
        for column, value in case.stored.items():
            values = stored[column].tolist()
            shown = [v.isoformat() if hasattr(v, "isoformat") else v for v in values]
            assert value in shown, shown


def test_export_folder_named_through_dot_dot_keeps_rejects_beside_it(tmp_path: Path) -> None:
    export = tmp_path / "exports" / "2026-11-27"
    _write(export, {"accounts.csv": HEAD + GOOD + "a\x00,buyer,2024-01-01\n"}, "accounts")
    roundabout = tmp_path / "exports" / ".." / "exports" / "2026-11-27" / "." / ""
    with EmbeddedStore(tmp_path / "store.duckdb") as store:
        report = load_export(store, roundabout)
    assert report.rejected == 1
    assert report.tables["accounts"].rejects_file == str(
        tmp_path / "exports" / "2026-11-27.rejects" / "accounts.rejects.csv"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "store.duckdb"]


def test_symlinked_table_file_to_a_system_file_is_refused_by_its_columns(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "accounts.csv").symlink_to("/etc/passwd")
    with EmbeddedStore(tmp_path / "store.duckdb") as store:
        report = load_export(store, export, rejects_dir=tmp_path / "r")
        assert store.counts()["accounts"] == 0
    error = report.tables["accounts"].error
    assert error is not None and "required columns missing: account_id, roles, created_at" in error


# --------------------------------------------------------------------------- command line


@dataclass
class Cli:
    folder: Path
    store: Path
    finding: str

    def __call__(self, *args: str | Path) -> tuple[int, str]:
        result = CliRunner().invoke(app, [str(a) for a in args], terminal_width=4000)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"crash: {result.exception!r}\n{result.output}")
        assert "Traceback" not in result.output, result.output
        return result.exit_code, " ".join(result.output.split())


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """The small export loaded and detected once, and a finding of the run."""
    folder = tmp_path_factory.mktemp("cli")
    store = folder / "store.duckdb"
    run = Cli(folder, store, "")
    assert run("load", SMALL, "--store", store)[0] == 0
    assert run("detect", "--store", store)[0] == 0
    code, out = run("findings", "--store", store, "--out", folder / "f.json")
    assert code == 0, out
    run.finding = json.loads((folder / "f.json").read_text())["findings"][0]["id"]
    yield run


def _tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def test_cli_load_of_a_missing_folder(cli: Cli) -> None:
    code, out = cli("load", cli.folder / "nowhere", "--store", cli.store)
    assert code == 1 and "nowhere: not a folder" in out


def test_cli_load_of_a_file_instead_of_a_folder(cli: Cli) -> None:
    code, out = cli("load", SMALL / "accounts.csv", "--store", cli.store)
    assert code == 1 and "accounts.csv: not a folder" in out


def test_cli_load_of_a_folder_without_accounts(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(ORDERS_HEAD)
    code, out = cli("load", tmp_path, "--store", cli.store)
    assert code == 1 and "required table 'accounts' missing" in out


def test_cli_load_into_an_unknown_store_scheme(cli: Cli) -> None:
    code, out = cli("load", SMALL, "--store", "http://evil.example/x")
    assert code == 1 and "unknown store URI 'http://evil.example/x'" in out


def test_cli_load_into_a_folder_as_store(cli: Cli, tmp_path: Path) -> None:
    code, out = cli("load", SMALL, "--store", tmp_path)
    assert code == 1 and f"cannot open store {tmp_path}" in out


def test_cli_load_into_a_file_that_is_not_a_store_leaves_it_alone(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "notes.duckdb"
    other.write_text("my notes\n")
    code, out = cli("load", SMALL, "--store", other)
    assert code == 1 and "not a valid DuckDB database file" in out
    assert other.read_text() == "my notes\n"


def test_cli_load_of_a_utf16_export_is_an_error_naming_the_encoding(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "accounts.csv").write_bytes((HEAD + GOOD).encode("utf-16"))
    code, out = cli("load", tmp_path, "--store", tmp_path / "s.duckdb")
    assert code == 1 and "file is" in out, out  # the note column of the printed report
    with EmbeddedStore(tmp_path / "s.duckdb") as store:
        error = store.loads()[-1].tables["accounts"].error
    assert error is not None and "UTF-16-encoded; files must be UTF-8" in error


def test_cli_load_with_a_nul_in_an_id_exits_3_with_rejects(cli: Cli, tmp_path: Path) -> None:
    export = tmp_path / "export"
    _write(export, {"accounts.csv": HEAD + GOOD + "a\x00,buyer,2024-01-01\n"}, "accounts")
    code, out = cli("load", export, "--store", tmp_path / "s.duckdb")
    assert code == 3 and "rejects:" in out
    rejects = read_rejects(tmp_path / "export.rejects" / "accounts.rejects.csv")
    assert [(r["row"], r["column"]) for r in rejects] == [("2", "account_id")]


@pytest.mark.parametrize(
    "finding", ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "%2e%2e%2fx", "x" * 100_000]
)
def test_cli_export_of_traversal_like_ids_writes_nothing(
    cli: Cli, finding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = _tree(cli.folder.parent)
    code, out = cli("export", finding, "--store", cli.store)
    assert code == 1 and "no finding" in out
    assert len(out) < 3000  # an enormous id is not quoted back whole
    assert _tree(cli.folder.parent) == before and not list(tmp_path.iterdir())


def test_cli_export_to_a_folder_or_a_missing_folder(cli: Cli, tmp_path: Path) -> None:
    code, out = cli("export", cli.finding, "--store", cli.store, "--out", tmp_path)
    assert code == 1 and f"cannot write {tmp_path}: Is a directory" in out
    code, out = cli("export", cli.finding, "--store", cli.store, "--out", tmp_path / "no" / "c.zip")
    assert code == 1 and "No such file or directory" in out


def test_cli_export_to_a_dot_dot_path_writes_there_and_the_zip_holds_plain_names(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    monkeypatch.chdir(inner)
    code, out = cli("export", cli.finding, "--store", cli.store, "--out", "../case.zip")
    assert code == 0, out
    with zipfile.ZipFile(tmp_path / "case.zip") as z:
        names = z.namelist()
        assert z.testzip() is None
    assert "SHA256SUMS" in names
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names), names


def test_cli_findings_with_an_injection_looking_run_id(cli: Cli) -> None:
    code, out = cli("findings", "--store", cli.store, "--run", "' OR 1=1 --")
    assert code == 1 and "no such run: ' OR 1=1 --" in out


def test_cli_findings_out_to_a_folder(cli: Cli, tmp_path: Path) -> None:
    code, out = cli("findings", "--store", cli.store, "--out", tmp_path)
    assert code == 1 and f"cannot write {tmp_path}: Is a directory" in out


def test_cli_bad_usage_exits_2(cli: Cli) -> None:
    assert cli("findings", "--store", cli.store, "--format", "xml")[0] == 2
    assert cli("generate", cli.folder / "g", "--events", "-5")[0] == 2


def _laughs() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 10):
        cur, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        text += f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


@pytest.mark.parametrize(
    ("name", "body", "words"),
    [
        ("laughs.yaml", _laughs(), "a: Extra inputs are not permitted"),
        ("deep.yaml", "[" * 5_000 + "]" * 5_000, "nested too deeply"),
        ("deep.toml", "a = " + "[" * 5_000 + "]" * 5_000, "nested too deeply"),
        ("binary.yaml", bytes(range(256)) * 4, "not UTF-8 text"),
    ],
    ids=["billion-laughs", "deep-yaml", "deep-toml", "binary"],
)
def test_cli_detect_with_a_hostile_policy_file(
    cli: Cli, tmp_path: Path, name: str, body: str | bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    code, out = cli("detect", "--store", cli.store, "--policy", path)
    assert code == 1 and f"policy {path}" in out and words in out, out


def test_cli_evaluate_with_a_binary_truth_file(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_bytes(b"\x00\xff" * 500)
    code, out = cli("evaluate", path, "--store", cli.store)
    assert code == 1 and "truth.csv" in out
