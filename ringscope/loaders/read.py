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

Memory
------
Memory is bounded by design, whatever the file holds. A chunk holds at most
``batch_rows`` rows and, past its first row, at most :data:`BATCH_BYTES` bytes
of values. CSV is streamed through :func:`pyarrow.csv.open_csv` in blocks (a
value longer than :data:`MAX_FIELD_BYTES` fails the file), JSONL line by line
(a line longer than :data:`MAX_FIELD_BYTES` is rejected without being held),
``.gz`` files through a guard against compression bombs (:data:`MAX_EXPANSION`).
Parquet is checked from its footer and its page headers *before* any page is
decompressed (:func:`check_parquet`): the declared rows against the file's
size, every page's size against :data:`MAX_FIELD_BYTES`, and what the pages
decompress to against :data:`MAX_EXPANSION` times the file's size; it is then
read page by page, in batches sized from those headers and from the longest
value of each text column's dictionary, and what the dictionaries decode to
counts against the same expansion guard, so that a small dictionary of long
values repeated over many rows (a dictionary bomb) is refused a few rows in.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import logging
import math
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.Thrift import TType
from thrift.transport.TTransport import TMemoryBuffer

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
#: Longest value the exact CSV reader takes (a longer one fails the file); also the
#: longest JSONL line (a longer one is rejected) and the largest Parquet page.
MAX_FIELD_BYTES = 64 << 20
#: Bytes of values a chunk holds at most (past its first row): a chunk of
#: :data:`DEFAULT_BATCH_ROWS` ordinary rows is far below it.
BATCH_BYTES = 16 << 20
#: A ``.csv.gz`` file may decompress to at most this many times its own size, once
#: past :data:`BOMB_FLOOR_BYTES`: real exports compress 5 to 20 times, while a file
#: of one repeated row (or one endless value) compresses a thousand times.
MAX_EXPANSION = 200
#: Decompressed bytes below which :data:`MAX_EXPANSION` is not applied.
BOMB_FLOOR_BYTES = 32 << 20
#: A Parquet file may declare at most this many rows per byte of file (past
#: :data:`ROWS_FLOOR`): a row of distinct data takes at least a bit or so even
#: dictionary- and run-length-encoded, while a file declaring billions of rows in a
#: few kilobytes is a bomb of time, if not of memory.
MAX_ROWS_PER_BYTE = 8
#: Rows a Parquet file may always declare, whatever its size.
ROWS_FLOOR = 1 << 20
#: Largest Parquet page header read (page statistics can hold long values).
MAX_PAGE_HEADER_BYTES = 1 << 20

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
    if pa.types.is_dictionary(type_):  # dictionary-encoded: its values decide
        type_ = type_.value_type
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
    """Group record batches into tables of ``batch_rows`` rows (the last fewer), or
    fewer when more would hold over :data:`BATCH_BYTES` bytes (rows of huge values).
    A batch larger than that on its own stays whole."""
    pending: list[pa.RecordBatch] = []
    held = held_bytes = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch_rows - held, batch.num_rows)
            part = batch.slice(0, take)
            if held and held_bytes + part.nbytes > BATCH_BYTES:
                yield pa.Table.from_batches(pending).combine_chunks()
                pending, held, held_bytes = [], 0, 0
                continue
            pending.append(part)
            held += take
            held_bytes += part.nbytes
            batch = batch.slice(take)
            if held == batch_rows or held_bytes >= BATCH_BYTES:
                yield pa.Table.from_batches(pending).combine_chunks()
                pending, held, held_bytes = [], 0, 0
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
            held = 0
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
                        value = record[i].encode("utf-8", "surrogateescape")
                        held += len(value)
                        col.append(value)
                if len(rows) + len(problems) >= batch_rows or held >= BATCH_BYTES:
                    yield _exact_chunk(file, keep, cols, rows, problems)
                    cols, rows, problems, held = [[] for _ in keep], [], [], 0
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


def _bomb(file: str, decoded: int, size: int) -> InputError:
    return InputError(
        Problem(
            file,
            None,
            None,
            f"decompresses to more than {MAX_EXPANSION} times its size "
            f"({decoded >> 20} MiB from {size >> 10} KiB): refused as a likely "
            "decompression bomb",
        )
    )


def _expansion_limit(size: int) -> int:
    """Bytes a file of ``size`` bytes may decompress to (see :data:`MAX_EXPANSION`)."""
    return max(BOMB_FLOOR_BYTES, MAX_EXPANSION * size)


class _Compact(TCompactProtocol):
    """Thrift's compact protocol, reading strings as bytes: page statistics hold
    binary values that are not UTF-8."""

    def readString(self) -> bytes:
        return bytes(self.readBinary())


@dataclass(frozen=True, slots=True)
class _Page:
    kind: int  # parquet.thrift PageType: 0 data, 1 index, 2 dictionary, 3 data v2
    header: int  # bytes of the header
    uncompressed: int
    compressed: int
    values: int  # values of a data page, entries of a dictionary page


def _page_header(raw: bytes) -> _Page:
    """Decode a Parquet ``PageHeader`` (parquet.thrift) from the start of ``raw``.

    Only the sizes and value counts are kept; every other field is skipped.
    Raises ``EOFError``-like transport errors when ``raw`` ends inside the header.
    """
    buffer = TMemoryBuffer(raw)
    proto = _Compact(
        buffer, string_length_limit=MAX_PAGE_HEADER_BYTES, container_length_limit=1 << 16
    )
    sizes = {1: -1, 2: -1, 3: -1}
    values = 0
    proto.readStructBegin()
    while True:
        _, ftype, fid = proto.readFieldBegin()
        if ftype == TType.STOP:
            break
        if fid in sizes and ftype == TType.I32:
            sizes[fid] = proto.readI32()
        elif fid in (5, 7, 8) and ftype == TType.STRUCT:
            # DataPageHeader, DictionaryPageHeader, DataPageHeaderV2: num_values is field 1
            proto.readStructBegin()
            while True:
                _, inner, iid = proto.readFieldBegin()
                if inner == TType.STOP:
                    break
                if iid == 1 and inner == TType.I32:
                    values = proto.readI32()
                else:
                    proto.skip(inner)
                proto.readFieldEnd()
            proto.readStructEnd()
        else:
            proto.skip(ftype)
        proto.readFieldEnd()
    proto.readStructEnd()
    return _Page(sizes[1], buffer.cstringio_buf.tell(), sizes[2], sizes[3], values)


def _pages(handle: IO[bytes], file: str, start: int, length: int) -> Iterator[tuple[_Page, int]]:
    """The page headers of one column chunk (``length`` bytes from ``start``), each
    with the offset of its page, read without reading or decompressing the pages."""
    pos, end = start, start + length
    while pos < end:
        want = 1024
        while True:
            handle.seek(pos)
            raw = handle.read(min(want, end - pos))
            try:
                page = _page_header(raw)
                break
            except Exception as exc:  # a header cut short by ``want``, or not a header
                if len(raw) < want or want >= MAX_PAGE_HEADER_BYTES:
                    raise InputError(
                        Problem(file, None, None, f"cannot read Parquet: bad page header ({exc})")
                    ) from exc
                want *= 16
        if (
            page.uncompressed < 0
            or page.compressed < 0
            or pos + page.header + page.compressed > end
        ):
            raise InputError(
                Problem(file, None, None, "cannot read Parquet: a page runs past its column chunk")
            )
        yield page, pos + page.header
        pos += page.header + page.compressed


#: Parquet's compression codecs by pyarrow's names (the deprecated Hadoop LZ4 is not
#: among them: its dictionaries are read the slow, safe way).
_CODECS = {
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "ZSTD": "zstd",
    "LZ4_RAW": "lz4_raw",
}
_LENGTH = struct.Struct("<I")


def _longest_entry(handle: IO[bytes], offset: int, page: _Page, codec: str) -> int | None:
    """Bytes of the longest value of a dictionary page of text (PLAIN-encoded byte
    arrays: a 4-byte length, then the value), or ``None`` when the page cannot be
    read here (an unknown codec, a page that is not what its header says). The page
    is at most :data:`MAX_FIELD_BYTES` decompressed (checked before)."""
    handle.seek(offset)
    raw = handle.read(page.compressed)
    try:
        if codec == "UNCOMPRESSED":
            data = raw
        elif codec in _CODECS:
            data = pa.decompress(
                raw, decompressed_size=page.uncompressed, codec=_CODECS[codec], asbytes=True
            )
        else:
            return None
    except (pa.ArrowException, ValueError, OSError):
        return None
    longest, pos, end = 0, 0, len(data)
    for _ in range(page.values):
        if pos + 4 > end:
            return None
        (length,) = _LENGTH.unpack_from(data, pos)
        pos += 4 + length
        if length > longest:
            longest = length
    return longest if pos <= end else None


@dataclass(frozen=True, slots=True)
class ParquetPlan:
    """What :func:`check_parquet` found: how to read the file within bounded memory.

    Attributes
    ----------
    dictionary
        Text columns stored dictionary-encoded whose dictionaries could not be
        measured here (read as dictionaries and decoded slice by slice).
    expanded
        Text columns stored dictionary-encoded whose longest dictionary value is
        known (decoded by Arrow, in batches sized for that value).
    batch_rows
        Rows per read batch, so that a batch stays near :data:`BATCH_BYTES` even
        if every value were the longest of its dictionary.
    decoded
        Bytes all pages of the read columns decompress to.
    """

    dictionary: tuple[str, ...]
    expanded: tuple[str, ...]
    batch_rows: int
    decoded: int


def check_parquet(
    path: str | Path, metadata: pq.FileMetaData, columns: list[str], batch_rows: int
) -> ParquetPlan:
    """Check a Parquet file from its footer and page headers, before reading it.

    Refused (``InputError``) when the file declares more rows than
    :data:`MAX_ROWS_PER_BYTE` per byte of file (past :data:`ROWS_FLOOR`), when a
    column chunk runs outside the file, when a page (a dictionary page too) is
    larger than :data:`MAX_FIELD_BYTES` decompressed, or when the pages of the
    read ``columns`` decompress to more than :data:`MAX_EXPANSION` times the
    file's size (past :data:`BOMB_FLOOR_BYTES`). The footer's own sizes are
    checked first; the page headers are then walked, since a crafted footer can
    understate what its pages hold. The dictionary pages of text columns are
    read (not their data pages) for their longest value, which sizes the read
    batches: a dictionary of one long value repeated over many rows (a dictionary
    bomb) is read a few rows at a time, and refused by the expansion guard.
    """
    file = str(path)
    size = Path(path).stat().st_size
    rows = metadata.num_rows
    if rows < 0 or rows > max(ROWS_FLOOR, MAX_ROWS_PER_BYTE * size):
        raise InputError(
            Problem(
                file,
                None,
                None,
                f"declares {rows:,} rows in {size:,} bytes (more than {MAX_ROWS_PER_BYTE} "
                "rows per byte): refused as a likely decompression bomb",
            )
        )
    schema = metadata.schema
    leaves = {j: schema.column(j).path for j in range(metadata.num_columns)}
    wanted = {j: name for j, name in leaves.items() if name in columns}
    limit = _expansion_limit(size)
    declared = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for j in wanted:
            declared += max(group.column(j).total_uncompressed_size, 0)
    if declared > limit:
        raise _bomb(file, declared, size)
    decoded = 0
    dictionary: set[str] = set()
    longest: dict[str, int] = {}
    per_row: dict[str, float] = {}
    with Path(path).open("rb", buffering=0) as handle:
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            for j, name in wanted.items():
                chunk = group.column(j)
                start = (
                    chunk.dictionary_page_offset
                    if chunk.has_dictionary_page and chunk.dictionary_page_offset
                    else chunk.data_page_offset
                )
                length = chunk.total_compressed_size
                if start is None or start < 0 or length < 0 or start + length > size:
                    raise InputError(
                        Problem(
                            file,
                            None,
                            name,
                            "cannot read Parquet: a column chunk runs past the end",
                        )
                    )
                text = chunk.physical_type == "BYTE_ARRAY"
                for page, offset in _pages(handle, file, start, length):
                    if page.uncompressed > MAX_FIELD_BYTES:
                        raise InputError(
                            Problem(
                                file,
                                None,
                                name,
                                f"a page decompresses to {page.uncompressed:,} bytes, more than "
                                f"{MAX_FIELD_BYTES >> 20} MiB",
                            )
                        )
                    decoded += page.uncompressed
                    if decoded > limit:
                        raise _bomb(file, decoded, size)
                    if page.kind == 2 and text:
                        entry = _longest_entry(handle, offset, page, chunk.compression)
                        if entry is None:
                            dictionary.add(name)
                        else:
                            longest[name] = max(longest.get(name, 0), entry)
                    elif page.kind in (0, 3) and page.values > 0:
                        # bytes per row of a data page; the widest page sets the batch size
                        per_row[name] = max(per_row.get(name, 0.0), page.uncompressed / page.values)
    expanded = sorted(set(longest) - dictionary)
    width = sum(per_row.values()) + sum(longest[n] + 4 for n in expanded)
    rows_per_batch = batch_rows if width <= 0 else int(min(batch_rows, BATCH_BYTES / width))
    return ParquetPlan(tuple(sorted(dictionary)), tuple(expanded), max(1, rows_per_batch), decoded)


class _Expansion:
    """Bytes decoded from dictionaries so far, against :func:`_expansion_limit`."""

    def __init__(self, file: str, size: int, start: int) -> None:
        self.file, self.size = file, size
        self.limit = _expansion_limit(size)
        self.decoded = start

    def add(self, n: int) -> None:
        self.decoded += n
        if self.decoded > self.limit:
            raise _bomb(self.file, self.decoded, self.size)


def _is_text(type_: pa.DataType) -> bool:
    return (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_binary(type_)
        or pa.types.is_large_binary(type_)
    )


def _decoded(batch: pa.RecordBatch, expansion: _Expansion) -> Iterator[pa.RecordBatch]:
    """``batch`` with its dictionary columns decoded, in slices of at most
    :data:`BATCH_BYTES` decoded bytes (one row at least), each counted by
    ``expansion`` before it is decoded."""
    text = [
        i
        for i, f in enumerate(batch.schema)
        if pa.types.is_dictionary(f.type) and _is_text(f.type.value_type)
    ]
    if not text:
        yield _plain(batch)
        return
    widths = np.zeros(batch.num_rows, dtype=np.int64)
    for i in text:
        column = batch.column(i)
        lengths = pc.fill_null(pc.binary_length(column.dictionary), 0)
        widths += np.asarray(
            pc.fill_null(pc.take(lengths, column.indices), 0).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
    ends = np.cumsum(widths)
    start = 0
    while start < batch.num_rows:
        base = int(ends[start - 1]) if start else 0
        stop = int(np.searchsorted(ends, base + BATCH_BYTES, side="right"))
        stop = max(stop, start + 1)
        expansion.add(int(ends[stop - 1]) - base)
        yield _plain(batch.slice(start, stop - start))
        start = stop


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Dictionary columns decoded to their value type (others as they are)."""
    if not any(pa.types.is_dictionary(f.type) for f in batch.schema):
        return batch
    arrays = [
        pc.take(c.dictionary, c.indices) if pa.types.is_dictionary(c.type) else c
        for c in batch.columns
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _parquet(path: Path, spec: TableSpec, batch_rows: int) -> Iterator[RawChunk]:
    file = str(path)
    size = path.stat().st_size
    if size == 0:
        raise InputError(Problem(file, None, None, "file is empty"))
    try:
        with pq.ParquetFile(path) as head:
            metadata = head.metadata
            schema = head.schema_arrow
    except (pa.ArrowException, OSError) as exc:
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
    plan = check_parquet(path, metadata, include, batch_rows)
    try:
        # No pre-buffering and a buffered stream: pages are read one by one, not
        # whole column chunks.
        pf = pq.ParquetFile(
            path,
            metadata=metadata,
            read_dictionary=list(plan.dictionary),
            buffer_size=1 << 20,
            pre_buffer=False,
        )
    except (pa.ArrowException, OSError) as exc:
        raise _arrow_error(file, exc, "Parquet") from exc
    expansion = _Expansion(file, size, plan.decoded)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in pf.iter_batches(batch_size=plan.batch_rows, columns=include):
            # what Arrow decoded from dictionaries counts against the expansion guard
            expansion.add(sum(batch.column(name).nbytes for name in plan.expanded))
            yield from _decoded(batch, expansion)

    try:
        yield from _numbered(file, _rebatch(batches(), batch_rows))
    except (pa.ArrowException, OSError) as exc:
        raise _arrow_error(file, exc, "Parquet") from exc
    finally:
        pf.close()


def _lines(handle: IO[bytes]) -> Iterator[tuple[bytes | None, int]]:
    """The lines of ``handle`` with their length in bytes; a line longer than
    :data:`MAX_FIELD_BYTES` comes as ``None``, read past in pieces, never held whole."""
    while True:
        line = handle.readline(MAX_FIELD_BYTES + 1)
        if not line:
            return
        if len(line) <= MAX_FIELD_BYTES or line.endswith(b"\n"):
            yield line, len(line)
            continue
        length = len(line)
        while not line.endswith(b"\n"):
            line = handle.readline(1 << 20)
            if not line:
                break
            length += len(line)
        yield None, length


def _jsonl(path: Path, spec: TableSpec, batch_rows: int) -> Iterator[RawChunk]:
    """JSON Lines: one object per line, parsed line by line so that a bad line
    is rejected alone. Numbers are kept as their text; nested values and
    booleans are rejected; a line longer than :data:`MAX_FIELD_BYTES` is
    rejected without being read into memory."""
    file = str(path)
    names = spec.names
    seen: set[str] = set()
    checked = False
    cols: dict[str, list[str | None]] = {n: [] for n in names}
    rows: list[int] = []
    problems: list[Problem] = []
    held = 0

    def flush() -> RawChunk:
        nonlocal cols, rows, problems, checked, held
        if rows and not checked:
            _missing_columns(file, spec, sorted(seen))
            _log_extra(file, spec, sorted(seen))
            checked = True
        present = [n for n in names if n in seen] if checked else []
        # With no good row yet, ``present`` is empty and so is the table.
        data = pa.table({n: pa.array(cols[n], pa.string()) for n in present})
        chunk = RawChunk(file, np.asarray(rows, dtype=np.int64), data, problems)
        cols, rows, problems, held = {n: [] for n in names}, [], [], 0
        return chunk

    try:
        with path.open("rb") as handle:
            for number, (line, length) in enumerate(_lines(handle), start=1):
                if line is None:
                    problem: Problem | None = Problem(
                        file,
                        number,
                        None,
                        f"a line longer than {MAX_FIELD_BYTES >> 20} MiB ({length:,} bytes)",
                    )
                elif not line.strip():
                    continue
                else:
                    problem = _json_row(file, number, line, spec, cols, seen)
                    held += length
                if problem is None:
                    rows.append(number)
                else:
                    problems.append(problem)
                if len(rows) + len(problems) >= batch_rows or held >= BATCH_BYTES:
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
    spec: TableSpec,
    cols: dict[str, list[str | None]],
    seen: set[str],
) -> Problem | None:
    """Parse one JSONL line into ``cols``; a :class:`Problem` when it cannot be.

    Integers keep their text exactly (however many digits); a key given twice,
    nesting deeper than Python's recursion limit and escaped lone surrogates
    (``"\\ud800"``, not text) reject the line. In a text column (identifiers,
    codes, free text) ``NaN``, as pandas writes a missing value, is a missing
    value (the line is rejected when the column is required), and
    ``Infinity`` is rejected: neither becomes the text ``"nan"`` or ``"inf"``.
    Number and timestamp columns keep them as text, for the checks to reject.
    """
    names = spec.names
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
        elif math.isfinite(value) or spec.column(name).type in ("float", "ts"):
            values.append(repr(value))
        elif math.isnan(value) and not spec.column(name).required:
            values.append(None)
        elif math.isnan(value):
            return Problem(file, number, name, "missing value (NaN)")
        else:
            return Problem(file, number, name, f"expected text, found {json.dumps(value)}")
    seen.update(obj.keys())
    for name, value in zip(names, values, strict=True):
        cols[name].append(value)
    return None
