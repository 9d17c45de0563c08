"""Reading the tables of a marketplace export, in chunks, with row numbers.

Every table of :mod:`ringscope.contract` may come as ``NAME.csv``,
``NAME.csv.gz``, ``NAME.parquet`` or ``NAME.jsonl``. Readers yield
:class:`RawChunk` objects: the contract columns present in the file as Arrow
arrays, *unconverted* (CSV and JSONL values stay text, Parquet values keep
their stored type), together with the 1-based data row number of every row,
so that checking can say exactly which value in which row is bad.

Row numbers
-----------
- CSV: the number of the data *record* (the header is not counted, empty lines
  are skipped and not counted). A record whose quoted value spans several
  lines counts once, so with quoted newlines a row number is not a line number.
- JSONL: the line number (blank lines are skipped but counted).
- Parquet: the position of the row in the file, from 1.

Memory stays bounded by the chunk size: CSV is streamed through
:func:`pyarrow.csv.open_csv`, Parquet through
:meth:`pyarrow.parquet.ParquetFile.iter_batches`, JSONL line by line.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ringscope.contract import SUFFIXES, TABLES, TableSpec
from ringscope.errors import InputError, Problem

log = logging.getLogger("ringscope.loaders")

#: Default number of rows per chunk.
DEFAULT_BATCH_ROWS = 200_000

_CSV_BLOCK_BYTES = 4 << 20
_SHOW = 120

#: Bytes of a CSV file's start looked at for its encoding and header row; a header
#: row must end within them.
HEADER_BYTES = 64 << 10
#: Longest value the exact CSV reader takes (a longer one fails the file).
MAX_FIELD_BYTES = 64 << 20
#: A ``.csv.gz`` file may decompress to at most this many times its own size, once
#: past :data:`BOMB_FLOOR_BYTES`: real exports compress 5 to 20 times, while a file
#: of one repeated row (or one endless value) compresses a thousand times.
MAX_EXPANSION = 200
#: Decompressed bytes below which :data:`MAX_EXPANSION` is not applied.
BOMB_FLOOR_BYTES = 32 << 20

_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)


@dataclass(slots=True)
class RawChunk:
    """Rows of one table as read from one file, before any checking.

    Attributes
    ----------
    file
        The file the rows come from (as given, e.g. ``data/orders.csv``).
    rows
        1-based data row numbers (``int64``), one per row of ``data``.
    data
        The contract columns present in the file, in file form: ``binary`` for
        CSV, ``string`` for JSONL, the stored type for Parquet.
    problems
        Rows that the reader itself could not take apart (a CSV record with the
        wrong number of fields, a JSONL line that is not a JSON object). These
        rows are not in ``data``.
    """

    file: str
    rows: np.ndarray
    data: pa.Table
    problems: list[Problem] = field(default_factory=list)

    @property
    def read(self) -> int:
        """Rows read, including those the reader rejected."""
        return self.data.num_rows + len(self.problems)


class CompressionBomb(Exception):
    """A compressed file expands past :data:`MAX_EXPANSION` times its size."""


class _GuardedGzip(io.RawIOBase):
    """A gzip file's decompressed bytes, refusing to expand past
    :data:`MAX_EXPANSION` times the compressed bytes read so far."""

    def __init__(self, path: Path) -> None:
        self._raw = path.open("rb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="rb")
        self._out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._gz.readinto(buffer)
        self._out += n
        if self._out > BOMB_FLOOR_BYTES and self._out > MAX_EXPANSION * max(self._raw.tell(), 1):
            raise CompressionBomb(
                f"decompresses to more than {MAX_EXPANSION} times its size "
                f"({self._out >> 20} MiB from {max(self._raw.tell(), 1) >> 10} KiB read so far): "
                "refused as a likely compression bomb"
            )
        return n

    def close(self) -> None:
        try:
            self._gz.close()
        finally:
            self._raw.close()
            super().close()


def _open_binary(path: Path) -> io.BufferedReader:
    """The file's bytes, decompressed (and guarded) for ``.gz`` files."""
    if path.name.lower().endswith(".gz"):
        return io.BufferedReader(_GuardedGzip(path), buffer_size=1 << 20)
    return path.open("rb")


@contextlib.contextmanager
def _csv_source(path: Path) -> Iterator[str | io.BufferedReader]:
    """What :func:`pyarrow.csv.open_csv` reads: the path of a plain file (read
    natively), the guarded decompressed stream of a ``.gz`` file."""
    if not path.name.lower().endswith(".gz"):
        yield str(path)
        return
    with _open_binary(path) as stream:
        yield stream


class ExactReadNeeded(Exception):
    """The fast CSV reader met a record it cannot place exactly (for instance
    one with too many fields); the file must be read again with the exact,
    slower reader (:func:`iter_raw_chunks` with ``exact=True``)."""


# --------------------------------------------------------------------------- finding files


def table_file(data_dir: str | Path, table: str) -> Path | None:
    """The file that holds ``table`` in ``data_dir``, or ``None`` when absent.

    Parameters
    ----------
    data_dir
        Folder of the export.
    table
        Name of a table of the contract.

    Returns
    -------
    pathlib.Path or None

    Raises
    ------
    InputError
        When more than one file holds the table (e.g. ``accounts.csv`` and
        ``accounts.parquet``): which one is meant is ambiguous.
    """
    folder = Path(data_dir)
    found = [folder / f"{table}{suffix}" for suffix in SUFFIXES]
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InputError(
            Problem(
                str(folder), None, None, f"table {table!r} is in several files ({names}); keep one"
            )
        )
    return found[0] if found else None


def file_format(path: Path) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file name (``.csv.gz`` is ``csv``)."""
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".jsonl"):
        return "jsonl"
    raise InputError(
        Problem(
            str(path), None, None, "unknown file type (expected one of " + ", ".join(SUFFIXES) + ")"
        )
    )


# --------------------------------------------------------------------------- column checks


def _missing_columns(file: str, spec: TableSpec, names: list[str]) -> None:
    missing = [c for c in spec.required if c not in names]
    if not missing:
        return
    shown = ", ".join(repr(n[:_SHOW]) for n in names[:20]) or "nothing"
    reason = (
        f"required column{'s' if len(missing) > 1 else ''} missing: {', '.join(missing)} "
        f"(the file has: {shown})"
    )
    if len(names) == 1:
        for sep in (";", "\t", "|"):
            if sep in names[0]:
                reason += f"; the header looks {sep!r}-separated, but files must be comma-separated"
                break
    raise InputError(Problem(file, None, missing[0], reason))


def _duplicate_columns(file: str, spec: TableSpec, names: list[str]) -> None:
    """A contract column named twice: which of the two holds the values is unclear."""
    for name in spec.names:
        count = names.count(name)
        if count > 1:
            raise InputError(
                Problem(file, None, name, f"appears {count} times in the header; keep one")
            )


def _log_extra(file: str, spec: TableSpec, names: list[str]) -> list[str]:
    extra = [n for n in names if n not in spec.names]
    if extra:
        log.info("%s: ignoring columns not in the contract: %s", file, ", ".join(extra))
    return extra


def arrow_type_problem(spec: TableSpec, column: str, type_: pa.DataType) -> str | None:
    """Why a stored (Parquet) column of ``type_`` cannot hold ``column``, or ``None``.

    Text is always accepted (it is parsed value by value); otherwise numbers
    need a numeric type, timestamps a timestamp, date or numeric (Unix
    seconds) type, identifiers text or integers.
    """
    kind = spec.column(column).type
    if pa.types.is_string(type_) or pa.types.is_large_string(type_) or pa.types.is_binary(type_):
        return None
    if pa.types.is_large_binary(type_) or pa.types.is_null(type_):
        return None
    if kind == "float" and (
        pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_)
    ):
        return None
    if kind == "ts" and (
        pa.types.is_timestamp(type_)
        or pa.types.is_date(type_)
        or pa.types.is_integer(type_)
        or pa.types.is_floating(type_)
    ):
        return None
    if kind in ("str", "roles") and pa.types.is_integer(type_):
        return None
    expected = {
        "float": "numbers or text",
        "ts": "timestamps, Unix seconds or text",
        "str": "text",
        "roles": "text",
    }[kind]
    return f"column has type {type_}, expected {expected}"


# --------------------------------------------------------------------------- readers


def iter_raw_chunks(
    path: str | Path,
    spec: TableSpec | str,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    exact: bool = False,
) -> Iterator[RawChunk]:
    """Read one table file in chunks of at most ``batch_rows`` rows.

    Parameters
    ----------
    path
        A ``.csv``, ``.csv.gz``, ``.parquet`` or ``.jsonl`` file.
    spec
        The table's spec (or its name in :data:`ringscope.contract.TABLES`).
    batch_rows
        Rows per chunk.
    exact
        CSV only: use the record-by-record reader, which places every record
        exactly (and rejects records with the wrong number of fields). The
        default fast reader raises :class:`ExactReadNeeded` when it meets such
        a record.

    Yields
    ------
    RawChunk

    Raises
    ------
    InputError
        The file cannot be read at all: empty, not in its format, truncated,
        a required column is missing, a Parquet column of an unusable type.
    ExactReadNeeded
        See ``exact``.
    """
    spec = TABLES[spec] if isinstance(spec, str) else spec
    path = Path(path)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    fmt = file_format(path)
    if fmt == "csv":
        if exact:
            yield from _csv_exact(path, spec, batch_rows)
        else:
            yield from _csv_fast(path, spec, batch_rows)
    elif fmt == "parquet":
        yield from _parquet(path, spec, batch_rows)
    else:
        yield from _jsonl(path, spec, batch_rows)


def _rebatch(batches: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.Table]:
    """Group record batches into tables of exactly ``batch_rows`` rows (the last fewer)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch_rows - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == batch_rows:
                yield pa.Table.from_batches(pending).combine_chunks()
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending).combine_chunks()


def _numbered(file: str, tables: Iterator[pa.Table]) -> Iterator[RawChunk]:
    start = 1
    for table in tables:
        rows = np.arange(start, start + table.num_rows, dtype=np.int64)
        start += table.num_rows
        yield RawChunk(file, rows, table)


def _arrow_error(file: str, exc: Exception, what: str) -> InputError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(Problem(file, None, None, f"cannot read {what}: {text[:300]}"))


def _sniff_csv(path: Path) -> None:
    """Check the start of a CSV file: not empty, UTF-8, a header row of sane length."""
    file = str(path)
    try:
        with _open_binary(path) as handle:
            head = handle.read(HEADER_BYTES + 1)
    except CompressionBomb as exc:
        raise InputError(Problem(file, None, None, str(exc))) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise _arrow_error(file, exc, "CSV") from exc
    for bom, name in _BOMS:
        if head.startswith(bom):
            raise InputError(
                Problem(file, None, None, f"file is {name}-encoded; files must be UTF-8")
            )
    head = head.removeprefix(b"\xef\xbb\xbf")
    if not head.strip():
        raise InputError(Problem(file, None, None, "file is empty (no header row)"))
    end = min((i for i in (head.find(b"\n"), head.find(b"\r")) if i >= 0), default=-1)
    if end < 0 and len(head) > HEADER_BYTES:
        raise InputError(
            Problem(
                file, None, None, f"header row longer than {HEADER_BYTES >> 10} KiB (no line end)"
            )
        )
    line = head if end < 0 else head[:end]
    if b"\x00" in line:
        raise InputError(
            Problem(
                file,
                None,
                None,
                "header row holds NUL bytes: the file is binary or not UTF-8 "
                "(UTF-16 without a byte order mark?); files must be UTF-8 text",
            )
        )
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            Problem(
                file,
                None,
                None,
                f"header row is not valid UTF-8 (byte {exc.start}): {line[:_SHOW]!r}; "
                "files must be UTF-8",
            )
        ) from exc


def _csv_header(path: Path) -> list[str]:
    file = str(path)
    if path.stat().st_size == 0:
        raise InputError(Problem(file, None, None, "file is empty (no header row)"))
    _sniff_csv(path)
    with _csv_source(path) as source:
        try:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(block_size=HEADER_BYTES * 2),
                # Only the header matters here; bad records are found by the real read.
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=lambda _row: "skip"
                ),
            )
        except CompressionBomb as exc:
            raise InputError(Problem(file, None, None, str(exc))) from exc
        except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
            if "Empty CSV file" in str(exc):
                raise InputError(
                    Problem(file, None, None, "file is empty (no header row)")
                ) from exc
            if "straddl" in str(exc):  # a first record longer than the block
                raise ExactReadNeeded(str(exc)) from exc
            raise _arrow_error(file, exc, "CSV") from exc
        try:
            names = list(reader.schema.names)
        except UnicodeDecodeError as exc:  # a quoted header spanning lines with bad bytes
            raise InputError(Problem(file, None, None, "header row is not valid UTF-8")) from exc
        finally:
            reader.close()
    return names


def _csv_fast(path: Path, spec: TableSpec, batch_rows: int) -> Iterator[RawChunk]:
    file = str(path)
    raw_names = _csv_header(path)
    names = [n.strip() for n in raw_names]
    _missing_columns(file, spec, names)
    _duplicate_columns(file, spec, names)
    _log_extra(file, spec, names)
    include = [raw for raw, name in zip(raw_names, names, strict=True) if name in spec.names]
    bad_row = False

    def on_invalid(_row: Any) -> str:
        nonlocal bad_row
        bad_row = True
        return "error"

    try:
        with _csv_source(path) as source:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=True),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True, invalid_row_handler=on_invalid
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={raw: pa.binary() for raw in include},
                    include_columns=include,
                    strings_can_be_null=False,
                ),
            )
            renames = [n.strip() for n in reader.schema.names]
            batches = (b.rename_columns(renames) for b in reader)
            yield from _numbered(file, _rebatch(batches, batch_rows))
    except CompressionBomb as exc:
        raise InputError(Problem(file, None, None, str(exc))) from exc
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        # A record longer than a block ("straddles two block boundaries") is placed
        # by the exact reader, which rejects it alone.
        if bad_row or "CSV parse error" in str(exc) or "straddl" in str(exc):
            raise ExactReadNeeded(str(exc)) from exc
        raise _arrow_error(file, exc, "CSV") from exc


def _open_text(path: Path) -> io.TextIOWrapper:
    # The caller closes the wrapper, which closes the file.
    return io.TextIOWrapper(
        _open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def _csv_exact(path: Path, spec: TableSpec, batch_rows: int) -> Iterator[RawChunk]:
    """Record by record with :mod:`csv`: slower, but every record is placed and
    records with the wrong number of fields are rejected one by one."""
    file = str(path)
    if path.stat().st_size == 0:
        raise InputError(Problem(file, None, None, "file is empty (no header row)"))
    _sniff_csv(path)
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_BYTES))
    number = 0
    try:
        with _open_text(path) as text:
            records = csv.reader(text, strict=False)
            header = next(records, None)
            if header is None:
                raise InputError(Problem(file, None, None, "file is empty (no header row)"))
            names = [n.strip() for n in header]
            _missing_columns(file, spec, names)
            _duplicate_columns(file, spec, names)
            _log_extra(file, spec, names)
            keep = [(i, n) for i, n in enumerate(names) if n in spec.names]
            width = len(names)
            cols: list[list[bytes]] = [[] for _ in keep]
            rows: list[int] = []
            problems: list[Problem] = []
            for record in records:
                if not record:
                    continue
                number += 1
                if len(record) != width:
                    shown = ",".join(record)[:_SHOW]
                    problems.append(
                        Problem(
                            file,
                            number,
                            None,
                            f"expected {width} fields, found {len(record)}: {shown!r}",
                        )
                    )
                else:
                    rows.append(number)
                    for col, (i, _) in zip(cols, keep, strict=True):
                        col.append(record[i].encode("utf-8", "surrogateescape"))
                if len(rows) + len(problems) >= batch_rows:
                    yield _exact_chunk(file, keep, cols, rows, problems)
                    cols, rows, problems = [[] for _ in keep], [], []
            if rows or problems:
                yield _exact_chunk(file, keep, cols, rows, problems)
    except CompressionBomb as exc:
        raise InputError(Problem(file, None, None, str(exc))) from exc
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise InputError(
                Problem(
                    file,
                    number + 1,
                    None,
                    f"a value longer than {MAX_FIELD_BYTES >> 20} MiB (an unclosed quote?)",
                )
            ) from exc
        raise _arrow_error(file, exc, "CSV") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise _arrow_error(file, exc, "CSV") from exc


def _exact_chunk(
    file: str,
    keep: list[tuple[int, str]],
    cols: list[list[bytes]],
    rows: list[int],
    problems: list[Problem],
) -> RawChunk:
    data = pa.table(
        {name: pa.array(col, pa.binary()) for (_, name), col in zip(keep, cols, strict=True)}
    )
    return RawChunk(file, np.asarray(rows, dtype=np.int64), data, problems)


def _parquet(path: Path, spec: TableSpec, batch_rows: int) -> Iterator[RawChunk]:
    file = str(path)
    if path.stat().st_size == 0:
        raise InputError(Problem(file, None, None, "file is empty"))
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise _arrow_error(file, exc, "Parquet") from exc
    names = list(schema.names)
    _missing_columns(file, spec, names)
    _duplicate_columns(file, spec, names)
    _log_extra(file, spec, names)
    include = [n for n in names if n in spec.names]
    for name in include:
        why = arrow_type_problem(spec, name, schema.field(name).type)
        if why:
            raise InputError(Problem(file, None, name, why))
    try:
        batches = pf.iter_batches(batch_size=batch_rows, columns=include)
        yield from _numbered(file, _rebatch(batches, batch_rows))
    except (pa.ArrowInvalid, OSError) as exc:
        raise _arrow_error(file, exc, "Parquet") from exc
    finally:
        pf.close()


def _jsonl(path: Path, spec: TableSpec, batch_rows: int) -> Iterator[RawChunk]:
    """JSON Lines: one object per line, parsed line by line so that a bad line
    is rejected alone. Numbers are kept as their text; nested values and
    booleans are rejected."""
    file = str(path)
    names = spec.names
    seen: set[str] = set()
    checked = False
    cols: dict[str, list[str | None]] = {n: [] for n in names}
    rows: list[int] = []
    problems: list[Problem] = []

    def flush() -> RawChunk:
        nonlocal cols, rows, problems, checked
        if rows and not checked:
            _missing_columns(file, spec, sorted(seen))
            _log_extra(file, spec, sorted(seen))
            checked = True
        present = [n for n in names if n in seen] if checked else []
        # With no good row yet, ``present`` is empty and so is the table.
        data = pa.table({n: pa.array(cols[n], pa.string()) for n in present})
        chunk = RawChunk(file, np.asarray(rows, dtype=np.int64), data, problems)
        cols, rows, problems = {n: [] for n in names}, [], []
        return chunk

    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                problem = _json_row(file, number, line, names, cols, seen)
                if problem is None:
                    rows.append(number)
                else:
                    problems.append(problem)
                if len(rows) + len(problems) >= batch_rows:
                    yield flush()
            if rows or problems:
                yield flush()
    except OSError as exc:
        raise _arrow_error(file, exc, "JSONL") from exc


class _DuplicateKey(Exception):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


#: One decoder for every line (``json.loads`` with options builds one per call).
_DECODER = json.JSONDecoder(parse_int=str, object_pairs_hook=_object)


def _has_lone_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_row(
    file: str,
    number: int,
    line: bytes,
    names: tuple[str, ...],
    cols: dict[str, list[str | None]],
    seen: set[str],
) -> Problem | None:
    """Parse one JSONL line into ``cols``; a :class:`Problem` when it cannot be.

    Integers keep their text exactly (however many digits); a key given twice,
    nesting deeper than Python's recursion limit and escaped lone surrogates
    (``"\\ud800"``, not text) reject the line.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Problem(file, number, None, f"not valid UTF-8 (byte {exc.start}): {line[:_SHOW]!r}")
    if number == 1:
        text = text.removeprefix("\ufeff")  # a byte order mark some tools write
    try:
        obj = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return Problem(file, number, None, f"not JSON ({exc.msg}): {text.strip()[:_SHOW]!r}")
    except RecursionError:
        return Problem(file, number, None, "JSON nested too deeply")
    except _DuplicateKey as exc:
        return Problem(file, number, str(exc)[:_SHOW], "key appears more than once in the object")
    if not isinstance(obj, dict):
        return Problem(file, number, None, f"not a JSON object: {text.strip()[:_SHOW]!r}")
    values: list[str | None] = []
    escaped = "\\u" in text
    for name in names:
        value = obj.get(name)
        if value is None:
            values.append(value)
        elif isinstance(value, str):
            if escaped and _has_lone_surrogate(value):
                return Problem(file, number, name, "holds an escaped lone surrogate (not text)")
            values.append(value)
        elif isinstance(value, bool) or not isinstance(value, float):
            shown = json.dumps(value)[:_SHOW]
            return Problem(file, number, name, f"expected a string or a number, found {shown}")
        else:
            values.append(repr(value))
    seen.update(obj.keys())
    for name, value in zip(names, values, strict=True):
        cols[name].append(value)
    return None
