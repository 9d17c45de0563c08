"""Checking every row of a chunk against the data contract, vectorised.

:func:`check_chunk` turns a :class:`~ringscope.loaders.read.RawChunk` into a
:class:`CheckedChunk`: the rows that pass, in the normalised form of
:mod:`ringscope.contract`, and the rows that fail with the file, row, column
and reason of every problem. The work is done column by column with Arrow
compute kernels, numpy and pandas; Python only runs per *distinct* value (roles)
or per *rejected* row (to word the reasons).

Normalisation
-------------
- text: surrounding whitespace removed; an empty value is missing (null)
- codes (order statuses, identifier kinds): text in lower case, kept as given;
  values the default policy's mapping does not know are counted, not rejected
- timestamps: ISO 8601 with or without zone (no zone means UTC), a date alone,
  or Unix seconds (integer or decimal) -> ``datetime64[us, UTC]``. Each value is
  read as it says: one column may mix offsets (``+08:00``, ``-05:00``, ``Z``),
  values without a zone and Unix seconds. Stored (Parquet) timestamps are
  instants whatever zone they carry; naive ones are UTC.
- numbers -> ``float64``; NaN, infinity, text and negatives are rejected
- roles: any order, separated by ``|`` -> sorted, distinct, ``|``-joined
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ringscope.contract import (
    MAX_CODE_LENGTH,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    ROLES,
    TABLES,
    Column,
    TableSpec,
)
from ringscope.errors import InputError, Problem
from ringscope.graphs.store import LoadTarget
from ringscope.loaders.read import RawChunk, arrow_type_problem

#: Timestamps before this instant are rejected (default of ``earliest``).
DEFAULT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: Timestamps later than now plus this are rejected (default of ``latest``).
FUTURE_SLACK = timedelta(days=1)

#: Columns of free text, allowed up to :data:`~ringscope.contract.MAX_TEXT_LENGTH`
#: characters; every other text column is an identifier or a code, allowed up to
#: :data:`~ringscope.contract.MAX_ID_LENGTH`.
FREE_TEXT: frozenset[tuple[str, str]] = frozenset({("streams", "title"), ("labels", "note")})

#: ``(earlier, later)`` timestamp columns: ``later`` may not be before ``earlier``.
ORDERED_TIMES: dict[str, tuple[tuple[str, str], ...]] = {
    "streams": (("started_at", "ended_at"),),
    "orders": (("ts", "refunded_at"),),
    "identifiers": (("first_seen", "last_seen"),),
}
#: ``(part, whole)`` number columns: ``part`` may not exceed ``whole``.
NOT_ABOVE: dict[str, tuple[tuple[str, str], ...]] = {"orders": (("commission", "amount"),)}

#: Leading columns of a rejects file; the table's own columns follow.
REJECT_COLUMNS: tuple[str, ...] = ("file", "row", "column", "reason")

_UNIX_RE = r"^[+-]?\d+(\.\d*)?$"
_UNIX_PARTS = r"^(?P<sign>[+-]?)(?P<int>\d+)(?:\.(?P<frac>\d*))?$"
_NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_NON_FINITE = re.compile(r"^\s*[+-]?(nan|inf|infinity)\s*$", re.IGNORECASE)
_MAX_UNIX_DIGITS = 12
_SHOW = 80
_TS_TYPE = pa.timestamp("us", "UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Entity = Literal["account", "stream"]


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return repr(text[:_SHOW] + "…") if len(text) > _SHOW else repr(text)


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class CheckedChunk:
    """The outcome of checking one chunk.

    Attributes
    ----------
    frame
        Rows that passed, normalised, with every column of the table spec
        (absent optional columns as nulls), index ``0..n-1``.
    rows
        The file row number of each row of ``frame``.
    rejects
        One line per rejected row: ``file, row, column, reason`` and then the
        row's original values as text. When a row has several problems,
        ``column`` lists them joined by ``|`` and ``reason`` joins
        ``column: reason`` parts with ``; ``.
    duplicates
        Rows skipped because an identical row came earlier in the chunk.
    read
        Rows the chunk held, including those the reader already rejected.
    unknown
        Per order status or identifier kind column, the values of ``frame`` that the
        default policy's mapping does not know, with their counts.
    """

    table: str
    file: str
    frame: pd.DataFrame
    rows: np.ndarray
    rejects: pd.DataFrame
    duplicates: int
    read: int
    #: Per code column, the values of ``frame`` the default policy's mapping does not
    #: know (they load all the same), with their counts: see :func:`unknown_values`.
    unknown: dict[str, dict[str, int]] = field(default_factory=dict)

    def problems(self) -> list[Problem]:
        """The rejects as :class:`~ringscope.errors.Problem` objects."""
        return rejects_to_problems(self.rejects)


def rejects_to_problems(rejects: pd.DataFrame) -> list[Problem]:
    """Turn a rejects frame (see :class:`CheckedChunk`) into problems."""
    out: list[Problem] = []
    for file, row, column, reason in zip(
        rejects["file"], rejects["row"], rejects["column"], rejects["reason"], strict=True
    ):
        out.append(
            Problem(
                str(file),
                None if pd.isna(row) else int(row),
                None if pd.isna(column) or column == "" else str(column),
                str(reason),
            )
        )
    return out


class KnownIds:
    """Accounts and streams that references may name.

    Ids added with :meth:`add` (rows loaded earlier in this load) are held in
    memory; other ids are looked up in ``store`` (when given) once, and the
    ones found are remembered.
    """

    def __init__(self, store: LoadTarget | None = None) -> None:
        self._store = store
        self._ids: dict[Entity, set[str]] = {"account": set(), "stream": set()}

    def add(self, entity: Entity, ids: Iterable[Any]) -> None:
        """Remember ``ids`` as existing."""
        self._ids[entity].update([i for i in ids if isinstance(i, str)])

    def forget_all(self, entity: Entity) -> None:
        """Forget every id of ``entity`` (its table was rolled back); the store
        is asked again for the ids that references name."""
        self._ids[entity].clear()

    def unknown(self, entity: Entity, values: pa.Array | np.ndarray) -> np.ndarray:
        """Boolean mask of ``values`` (ids; nulls count as known) that name nothing known."""
        arr = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        held = self._ids[entity]
        distinct = pc.unique(arr.drop_null()).to_pylist()
        if held.issuperset(distinct):  # the usual case, decided in C
            return np.zeros(len(arr), dtype=bool)
        missing = [u for u in distinct if u not in held]
        if missing and self._store is not None:
            found = self._store.known_ids(entity, missing)
            held.update(found)
            missing = [u for u in missing if u not in found]
        if not missing:
            return np.zeros(len(arr), dtype=bool)
        return _mask(pc.is_in(arr, value_set=pa.array(missing, pa.string())))


# --------------------------------------------------------------------------- problem collection


class _Rejects:
    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.parts: list[tuple[np.ndarray, str, list[str]]] = []

    def add(self, mask: np.ndarray, column: str, reason: Any) -> None:
        """Reject the rows in ``mask``; ``reason`` is a text or a function from
        positions to one text per position."""
        pos = np.flatnonzero(mask)
        if not len(pos):
            return
        reasons = [reason] * len(pos) if isinstance(reason, str) else list(reason(pos))
        self.bad[pos] = True
        self.parts.append((pos, column, reasons))


# --------------------------------------------------------------------------- value parsing


def _mask(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _byte_lengths(arr: pa.Array) -> np.ndarray:
    """Length in bytes of every value (0 for nulls), from the offsets alone."""
    return np.asarray(pc.fill_null(pc.binary_length(arr), 0).to_numpy(), dtype=np.int64)


def _is_null(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _to_text(arr: pa.Array, column: str, rej: _Rejects) -> pa.Array:
    """Any accepted column as trimmed text, empty values as null. Invalid UTF-8
    values are rejected and become null."""
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        try:
            arr = pc.cast(arr, pa.string())
        except pa.ArrowInvalid:
            arr = _decode_utf8(arr, column, rej)
    elif not pa.types.is_string(t):
        arr = pc.cast(arr, pa.string())
    arr = pc.utf8_trim_whitespace(arr)
    # Byte lengths come from the offsets alone: cheap; most columns hold no empty value.
    if not _mask(pc.equal(pc.binary_length(arr), 0)).any():
        return arr
    return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)


#: Control characters refused in identifiers and codes (C0 and DEL), and in free
#: text (the same but tab, line feed and carriage return).
_CONTROL = "[\\x00-\\x1f\\x7f]"
_CONTROL_IN_TEXT = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]"


def _control_chars(text: pa.Array, free: bool) -> np.ndarray:
    """Where a value holds a control character (a NUL byte, a line break in an id...).

    Values of printable ASCII alone, the usual case, are decided by one fast
    kernel; the regular expression runs on the others only."""
    plain = _mask(pc.ascii_is_printable(text)) | _is_null(text)
    out = np.zeros(len(text), dtype=bool)
    if plain.all():
        return out
    pos = np.flatnonzero(~plain)
    pattern = _CONTROL_IN_TEXT if free else _CONTROL
    out[pos] = _mask(pc.match_substring_regex(text.take(pa.array(pos)), pattern))
    return out


def _control_reason(value: str, free: bool) -> str:
    allowed = "\t\n\r" if free else ""
    at = next(i for i, c in enumerate(value) if (ord(c) < 32 or ord(c) == 127) and c not in allowed)
    return (
        f"holds a control character (U+{ord(value[at]):04X} at position {at + 1}): {_show(value)}"
    )


def _decode_utf8(arr: pa.Array, column: str, rej: _Rejects) -> pa.Array:
    values: list[str | None] = []
    bad = np.zeros(len(arr), dtype=bool)
    raw: list[bytes | None] = arr.to_pylist()
    shown: dict[int, str] = {}
    for i, b in enumerate(raw):
        if b is None:
            values.append(None)
            continue
        try:
            values.append(b.decode("utf-8"))
        except UnicodeDecodeError as exc:
            values.append(None)
            bad[i] = True
            shown[i] = f"not valid UTF-8 (byte {exc.start}): {b[:_SHOW]!r}"
    rej.add(bad, column, lambda pos: [shown[int(p)] for p in pos])
    return pa.array(values, pa.string())


def parse_timestamps(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column of timestamps to microseconds since the epoch (UTC).

    Parameters
    ----------
    arr
        Text (ISO 8601 with or without zone, no zone meaning UTC, or Unix
        seconds), Arrow timestamps or dates (naive ones are UTC), or numbers
        (Unix seconds).

    Returns
    -------
    micros : numpy.ndarray of int64
        Microseconds since 1970-01-01T00:00:00Z; meaningless where not ``ok``.
    ok : numpy.ndarray of bool
        Where a value was present and parsed.
    """
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return _stored_times(arr)
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        secs = np.asarray(
            pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=float
        )
        ok = np.isfinite(secs) & (np.abs(secs) < 10.0**_MAX_UNIX_DIGITS)
        micros = np.zeros(n, dtype=np.int64)
        if pa.types.is_integer(t):
            ints = np.asarray(pc.cast(pc.fill_null(arr, 0), pa.int64()).to_numpy(), dtype=np.int64)
            micros[ok] = ints[ok] * 1_000_000
        else:
            micros[ok] = np.round(secs[ok] * 1e6).astype(np.int64)
        return micros, ok
    if not pa.types.is_string(t):
        arr = pc.cast(arr, pa.string())
    for target in (_TS_TYPE, pa.timestamp("us")):
        try:
            return _ts_numpy(pc.cast(pc.cast(arr, target), _TS_TYPE))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    return _parse_mixed(arr)


#: Microseconds per unit of a stored timestamp or date (nanoseconds are divided).
_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1, "date32": 86_400_000_000, "date64": 1_000}


def _stored_times(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Stored timestamps or dates to microseconds, values beyond the range of
    ``int64`` microseconds (about 292,000 years) not ``ok`` rather than wrapped."""
    t = arr.type
    unit = t.unit if pa.types.is_timestamp(t) else str(t).split("[")[0]
    ok = ~_is_null(arr)
    ints = pc.cast(arr, pa.int32()) if unit == "date32" else pc.cast(arr, pa.int64())
    raw = np.asarray(pc.fill_null(ints, 0).to_numpy(), dtype=np.int64)
    if unit == "ns":
        return raw // 1000, ok
    factor = _PER_UNIT[unit]
    ok &= np.abs(raw) <= np.iinfo(np.int64).max // factor
    return np.where(ok, raw, 0) * factor, ok


def _texts(arr: pa.Array) -> list[Any]:
    """The values of ``arr`` for messages: text as is, other types cast to text
    by Arrow (Python's ``datetime`` cannot hold every stored timestamp)."""
    if not (
        pa.types.is_string(arr.type)
        or pa.types.is_large_string(arr.type)
        or pa.types.is_binary(arr.type)
        or pa.types.is_large_binary(arr.type)
        or pa.types.is_null(arr.type)
    ):
        arr = pc.cast(arr, pa.string())
    return list(arr.to_pylist())


def _ts_numpy(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    ok = ~_is_null(arr)
    micros = np.asarray(pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy(), dtype=np.int64)
    return micros, ok


def _parse_mixed(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Value by value form detection, still vectorised: Unix seconds by regex
    and exact integer arithmetic, the rest with pandas' ISO 8601 parser."""
    n = len(arr)
    micros = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    text = pc.utf8_trim_whitespace(arr)
    numeric = _mask(pc.match_substring_regex(text, _UNIX_RE))
    if numeric.any():
        pos = np.flatnonzero(numeric)
        parts = pc.extract_regex(text.take(pa.array(pos)), _UNIX_PARTS)
        ints = parts.field("int")
        fits = _mask(pc.less_equal(pc.utf8_length(ints), _MAX_UNIX_DIGITS))
        whole = np.asarray(
            pc.cast(pc.if_else(pa.array(fits), ints, "0"), pa.int64()).to_numpy(), dtype=np.int64
        )
        frac_text = pc.utf8_slice_codeunits(
            pc.utf8_rpad(pc.fill_null(parts.field("frac"), ""), 6, "0"), 0, 6
        )
        frac = np.asarray(pc.cast(frac_text, pa.int64()).to_numpy(), dtype=np.int64)
        sign = np.where(_mask(pc.equal(parts.field("sign"), "-")), -1, 1)
        micros[pos] = sign * (whole * 1_000_000 + frac)
        ok[pos] = fits
    rest = np.flatnonzero(~numeric & ~_is_null(text))
    if len(rest):
        values = pd.Series(text.take(pa.array(rest)).to_pandas(), dtype=object)
        parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
        index = pd.DatetimeIndex(parsed).as_unit("us")
        good = ~np.asarray(index.isna())
        micros[rest[good]] = index.asi8[good]
        ok[rest] = good
    return micros, ok


def parse_numbers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column of numbers to ``float64``.

    Returns
    -------
    values : numpy.ndarray of float64
        NaN where not parsed.
    parsed : numpy.ndarray of bool
        Where a value was present and had the form of a number (it may still
        be infinite, e.g. ``1e999``). ``NaN`` and ``inf`` are not numbers here.
    """
    t = arr.type
    n = len(arr)
    if pa.types.is_null(t):
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if not pa.types.is_string(t):
        values = np.asarray(
            pc.cast(arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False),
            dtype=np.float64,
        )
        return values, np.isfinite(values)
    text = pc.utf8_trim_whitespace(arr)
    form = _mask(pc.match_substring_regex(text, _NUMBER_RE))
    clean = pc.if_else(pa.array(form), text, pa.scalar(None, pa.string()))
    values = np.asarray(pc.cast(clean, pa.float64()).to_numpy(zero_copy_only=False), dtype=float)
    return values, form


# --------------------------------------------------------------------------- checking


def _iso(micros: int) -> str:
    return pd.Timestamp(int(micros), unit="us", tz="UTC").isoformat()


def check_chunk(
    chunk: RawChunk,
    spec: TableSpec | str,
    *,
    known: KnownIds | None = None,
    earliest: datetime = DEFAULT_EARLIEST,
    latest: datetime | None = None,
) -> CheckedChunk:
    """Check every row of ``chunk`` and normalise the rows that pass.

    Parameters
    ----------
    chunk
        Rows as read by :func:`~ringscope.loaders.read.iter_raw_chunks`.
    spec
        The table's spec or name.
    known
        Accounts and streams that references may name; ``None`` skips the
        reference checks.
    earliest, latest
        Timestamps outside ``[earliest, latest]`` are rejected; ``latest``
        defaults to now plus one day.

    Returns
    -------
    CheckedChunk

    Raises
    ------
    InputError
        When a column of the chunk has a type that cannot hold its values
        (Parquet), or a required column is missing from a non-empty chunk.
    """
    spec = TABLES[spec] if isinstance(spec, str) else spec
    if earliest.tzinfo is None:
        raise ValueError("earliest must be timezone-aware")
    latest = latest if latest is not None else datetime.now(UTC) + FUTURE_SLACK
    if latest.tzinfo is None:
        raise ValueError("latest must be timezone-aware")
    lo = (earliest - _EPOCH) // timedelta(microseconds=1)
    hi = (latest - _EPOCH) // timedelta(microseconds=1)

    data = chunk.data
    n = data.num_rows
    file = chunk.file
    rej = _Rejects(n)
    arrays: dict[str, pa.Array] = {}
    times: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    present = set(data.column_names)

    for col in spec.columns:
        name = col.name
        if name not in present:
            if col.required and n:
                raise InputError(Problem(file, None, name, "required column missing"))
            arrays[name] = pa.nulls(
                n, {"ts": _TS_TYPE, "float": pa.float64()}.get(col.type, pa.string())
            )
            if col.type == "ts":
                times[name] = (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool))
            elif col.type == "float":
                numbers[name] = (np.full(n, np.nan), np.zeros(n, dtype=bool))
            continue
        raw = (
            data.column(name).combine_chunks() if n else pa.array([], data.schema.field(name).type)
        )
        why = arrow_type_problem(spec, name, raw.type)
        if why:
            raise InputError(Problem(file, None, name, why))
        if col.type == "ts":
            arrays[name] = _check_ts(raw, name, col.required, rej, lo, hi, times)
        elif col.type == "float":
            arrays[name] = _check_number(raw, name, col, rej, numbers)
        else:
            text = _to_text(raw, name, rej)
            missing = _is_null(text)
            if col.required:
                rej.add(missing & ~rej.bad, name, "missing value")
            if col.type == "roles":
                text = _normalise_roles(text, name, rej)
            else:
                if col.known is not None:  # a code: kept as given, in lower case
                    text = pc.utf8_lower(text)
                limit = _text_limit(spec, col)
                length = _byte_lengths(text)
                if (length > limit).any():  # a character takes one byte or more
                    length = np.asarray(
                        pc.fill_null(pc.utf8_length(text), 0).to_numpy(), dtype=np.int64
                    )
                rej.add(
                    length > limit,
                    name,
                    lambda pos, ln=length, lim=limit: [
                        f"longer than {lim} characters ({ln[p]} characters)" for p in pos
                    ],
                )
                if not col.enum:
                    free = (spec.name, name) in FREE_TEXT
                    rej.add(
                        _control_chars(text, free) & ~rej.bad,
                        name,
                        lambda pos, t=text, f=free: [
                            _control_reason(v, f) for v in t.take(pa.array(pos)).to_pylist()
                        ],
                    )
                if col.enum:
                    allowed = col.enum
                    inside = _mask(pc.is_in(text, value_set=pa.array(allowed, pa.string())))
                    rej.add(
                        ~inside & ~missing,
                        name,
                        lambda pos, t=text, a=allowed: [
                            f"unknown value {_show(v)} (allowed: {', '.join(a)})"
                            for v in t.take(pa.array(pos)).to_pylist()
                        ],
                    )
            arrays[name] = text

    _check_relations(spec.name, rej, times, numbers)
    if known is not None:
        _check_references(spec, arrays, known, rej)
    dup = _check_duplicates(spec, arrays, chunk.rows, rej)

    good = ~rej.bad & ~dup
    table = pa.table({name: arrays[name] for name in spec.names})
    if n:
        table = table.filter(pa.array(good))
    frame = table.to_pandas()
    return CheckedChunk(
        table=spec.name,
        file=file,
        frame=frame,
        rows=chunk.rows[good],
        rejects=_rejects_frame(spec, chunk, rej),
        duplicates=int(dup.sum()),
        read=chunk.read,
        unknown=unknown_values(spec, table),
    )


def _text_limit(spec: TableSpec, col: Column) -> int:
    """The longest value a text column takes (characters)."""
    if col.known is not None:
        return MAX_CODE_LENGTH
    return MAX_TEXT_LENGTH if (spec.name, col.name) in FREE_TEXT else MAX_ID_LENGTH


def unknown_values(spec: TableSpec, table: pa.Table) -> dict[str, dict[str, int]]:
    """Per code column of ``spec`` (see :attr:`~ringscope.contract.Column.known`), the
    values of ``table`` that the default policy's mapping does not know, with their
    counts; columns without such values are left out."""
    out: dict[str, dict[str, int]] = {}
    for col in spec.columns:
        if col.known is None or col.name not in table.column_names:
            continue
        values = table.column(col.name)
        known = pc.is_in(values, value_set=pa.array(col.known, pa.string()))
        other = pc.and_(pc.invert(known), pc.is_valid(values))
        counts = pc.value_counts(values.filter(pc.fill_null(other, False))).to_pylist()
        if counts:
            out[col.name] = {
                c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: c["values"])
            }
    return out


def _check_ts(
    raw: pa.Array,
    name: str,
    required: bool,
    rej: _Rejects,
    lo: int,
    hi: int,
    times: dict[str, tuple[np.ndarray, np.ndarray]],
) -> pa.Array:
    is_text = not (
        pa.types.is_timestamp(raw.type)
        or pa.types.is_date(raw.type)
        or pa.types.is_integer(raw.type)
        or pa.types.is_floating(raw.type)
        or pa.types.is_null(raw.type)
    )
    src = _to_text(raw, name, rej) if is_text else raw
    missing = _is_null(src)
    micros, ok = parse_timestamps(src)
    if required:
        rej.add(missing & ~rej.bad, name, "missing value")

    def shown(pos: np.ndarray) -> list[Any]:
        return _texts(src.take(pa.array(pos)))

    def bad_form(pos: np.ndarray) -> list[str]:
        out = []
        for v in shown(pos):
            reason = f"not a timestamp: {_show(v)} (expected ISO 8601 or Unix seconds)"
            if isinstance(v, str) and v.strip().lstrip("+-").isdigit():
                reason = f"Unix seconds out of range: {_show(v)} (milliseconds?)"
            out.append(reason)
        return out

    rej.add(~ok & ~missing, name, bad_form)
    early = ok & (micros < lo)
    late = ok & (micros > hi)
    rej.add(
        early,
        name,
        lambda pos: [f"{_show(v)} is before {_iso(lo)} (earliest allowed)" for v in shown(pos)],
    )

    def future(pos: np.ndarray) -> list[str]:
        out = []
        for p, v in zip(pos, shown(pos), strict=True):
            reason = f"{_show(v)} is in the future (later than {_iso(hi)})"
            if micros[p] > 10**11 * 1_000_000:
                reason += "; milliseconds instead of seconds?"
            out.append(reason)
        return out

    rej.add(late, name, future)
    valid = ok & ~early & ~late
    times[name] = (micros, valid)
    return pa.array(micros, type=_TS_TYPE, mask=~valid)


def _check_number(
    raw: pa.Array,
    name: str,
    col: Any,
    rej: _Rejects,
    numbers: dict[str, tuple[np.ndarray, np.ndarray]],
) -> pa.Array:
    src = raw
    if (
        pa.types.is_binary(raw.type)
        or pa.types.is_large_binary(raw.type)
        or pa.types.is_string(raw.type)
        or pa.types.is_large_string(raw.type)
    ):
        src = _to_text(raw, name, rej)
    missing = _is_null(src)
    values, form = parse_numbers(src)
    if col.required:
        rej.add(missing & ~rej.bad, name, "missing value")

    def shown(pos: np.ndarray) -> list[Any]:
        return _texts(src.take(pa.array(pos)))

    def not_number(pos: np.ndarray) -> list[str]:
        return [
            f"not a finite number: {_show(v)}"
            if isinstance(v, str) and _NON_FINITE.match(v)
            else f"not a number: {_show(v)}"
            for v in shown(pos)
        ]

    rej.add(~form & ~missing, name, not_number)
    finite = np.isfinite(values)
    rej.add(
        form & ~finite, name, lambda pos: [f"not a finite number: {_show(v)}" for v in shown(pos)]
    )
    valid = form & finite
    if col.non_negative:
        neg = valid & (values < 0)
        rej.add(neg, name, lambda pos: [f"negative: {values[p]:g}" for p in pos])
        valid &= ~neg
    if col.max_value is not None:
        above = valid & (values > col.max_value)
        rej.add(above, name, lambda pos: [f"above {col.max_value:g}: {values[p]:g}" for p in pos])
        valid &= ~above
    numbers[name] = (values, valid)
    return pa.array(np.where(valid, values, np.nan), type=pa.float64(), mask=~valid)


def _normalise_roles(text: pa.Array, name: str, rej: _Rejects) -> pa.Array:
    values = text.to_numpy(zero_copy_only=False)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    normal: list[str | None] = []
    bad_reason: dict[int, str] = {}
    for i, u in enumerate(uniques):
        parts = [p.strip() for p in str(u).split("|")]
        unknown = [p for p in parts if p not in ROLES]
        if unknown:
            normal.append(None)
            bad_reason[i] = (
                f"unknown role {_show(unknown[0])} in {_show(u)} (allowed: {', '.join(ROLES)}, "
                "several joined by '|')"
            )
        else:
            normal.append("|".join(sorted(set(parts))))
    mapped = np.array([*normal, None], dtype=object)[codes]  # code -1 -> None
    bad = np.isin(codes, list(bad_reason)) if bad_reason else np.zeros(len(codes), dtype=bool)
    rej.add(bad, name, lambda pos: [bad_reason[int(codes[p])] for p in pos])
    return pa.array(mapped, pa.string())


def _check_relations(
    table: str,
    rej: _Rejects,
    times: dict[str, tuple[np.ndarray, np.ndarray]],
    numbers: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    for first, then in ORDERED_TIMES.get(table, ()):
        a, a_ok = times[first]
        b, b_ok = times[then]
        wrong = a_ok & b_ok & (b < a)
        rej.add(
            wrong,
            then,
            lambda pos, a=a, b=b, f=first, t=then: [
                f"{t} ({_iso(b[p])}) is before {f} ({_iso(a[p])})" for p in pos
            ],
        )
    for part, whole in NOT_ABOVE.get(table, ()):
        x, x_ok = numbers[part]
        y, y_ok = numbers[whole]
        wrong = x_ok & y_ok & (x > y)
        rej.add(
            wrong,
            part,
            lambda pos, x=x, y=y, pt=part, w=whole: [
                f"{pt} ({x[p]:g}) is above {w} ({y[p]:g})" for p in pos
            ],
        )


def _check_references(
    spec: TableSpec, arrays: dict[str, pa.Array], known: KnownIds, rej: _Rejects
) -> None:
    for ref in spec.references:
        column = arrays[ref.column]
        cand = ~rej.bad & ~_is_null(column)
        if not cand.any():
            continue
        unknown = np.zeros(len(cand), dtype=bool)
        unknown[cand] = known.unknown(ref.entity, column.filter(pa.array(cand)))
        rej.add(
            unknown,
            ref.column,
            lambda pos, c=column, e=ref.entity: [
                f"unknown {e} {_show(v)}" for v in c.take(pa.array(pos)).to_pylist()
            ],
        )


_HASHER: duckdb.DuckDBPyConnection | None = None
_HASHER_LOCK = threading.Lock()


def _key_hash(columns: list[pa.Array]) -> np.ndarray:
    """One ``uint64`` per row hashing the key columns together (equal keys, equal
    hashes), computed by DuckDB's ``hash()`` in an in-memory database of its own:
    several times faster than dictionary-encoding every text column."""
    global _HASHER
    with _HASHER_LOCK:
        if _HASHER is None:
            _HASHER = duckdb.connect(":memory:")
            _HASHER.execute("SET enable_progress_bar = false")
        con = _HASHER.cursor()  # one cursor per call: callers may run in several threads
    try:
        keys = pa.table({f"k{i}": col for i, col in enumerate(columns)})
        con.register("_rs_keys", keys)
        names = ", ".join(f"k{i}" for i in range(len(columns)))
        # A plain projection keeps the rows in order.
        got = con.execute(f"SELECT hash({names}) AS h FROM _rs_keys").fetchnumpy()
    finally:
        con.close()
    return np.asarray(got["h"], dtype=np.uint64)


def _check_duplicates(
    spec: TableSpec, arrays: dict[str, pa.Array], rows: np.ndarray, rej: _Rejects
) -> np.ndarray:
    """Mark rows identical to an earlier row (returned mask) and reject rows
    that repeat an earlier row's key with other values."""
    n = len(rej.bad)
    dup = np.zeros(n, dtype=bool)
    cand = np.flatnonzero(~rej.bad)
    if len(cand) < 2:
        return dup
    take = pa.array(cand)
    # A 64-bit hash of each key finds the candidates fast; the exact comparison
    # below runs on them alone, so a hash collision cannot cause a wrong result.
    hashed = _key_hash([arrays[k].take(take) for k in spec.key])
    repeated = np.asarray(pd.Series(hashed).duplicated(keep=False), dtype=bool)
    if not repeated.any():
        return dup
    sub = cand[repeated]
    full = pa.table({k: arrays[k] for k in spec.names}).take(pa.array(sub)).to_pandas()
    later = np.asarray(full.duplicated(subset=list(spec.key), keep="first"), dtype=bool)
    same = np.asarray(full.duplicated(keep="first"), dtype=bool)
    dup[sub[same]] = True
    conflict = later & ~same
    if conflict.any():
        group = np.asarray(full.groupby(list(spec.key), sort=False, dropna=False).ngroup())
        _, first_at = np.unique(group, return_index=True)
        first_of_group = dict(zip(np.unique(group), first_at, strict=True))
        reasons: dict[int, str] = {}
        for i in np.flatnonzero(conflict):
            j = first_of_group[group[i]]
            differ = [
                c
                for c in spec.names
                if not (
                    (pd.isna(full.iloc[i][c]) and pd.isna(full.iloc[j][c]))
                    or full.iloc[i][c] == full.iloc[j][c]
                )
            ]
            key_text = ", ".join(f"{k}={_show(full.iloc[i][k])}" for k in spec.key)
            reasons[int(sub[i])] = (
                f"duplicate key ({key_text}) of row {rows[sub[j]]} with different values "
                f"({', '.join(differ)})"
            )
        mask = np.zeros(n, dtype=bool)
        mask[sub[conflict]] = True
        rej.add(mask, "|".join(spec.key), lambda pos: [reasons[int(p)] for p in pos])
    return dup


def _original_text(values: list[Any]) -> list[str]:
    out = []
    for v in values:
        if v is None:
            out.append("")
        elif isinstance(v, bytes):
            out.append(v.decode("utf-8", "backslashreplace"))
        else:
            out.append(str(v))
    return out


def _rejects_frame(spec: TableSpec, chunk: RawChunk, rej: _Rejects) -> pd.DataFrame:
    columns = [*REJECT_COLUMNS, *spec.names]
    if not rej.parts and not chunk.problems:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})
    by_pos: dict[int, list[tuple[str, str]]] = {}
    for pos, column, reasons in rej.parts:
        for p, r in zip(pos.tolist(), reasons, strict=True):
            by_pos.setdefault(p, []).append((column, r))
    order = {name: i for i, name in enumerate(spec.names)}
    for problems in by_pos.values():
        problems.sort(key=lambda cr: order.get(cr[0].split("|")[0], len(order)))
    positions = sorted(by_pos)
    records: dict[str, list[Any]] = {c: [] for c in columns}
    if positions:
        taken = chunk.data.take(pa.array(positions, pa.int64()))
        originals = {
            name: _original_text(_texts(taken.column(name).combine_chunks()))
            if name in taken.column_names
            else [""] * len(positions)
            for name in spec.names
        }
        for i, p in enumerate(positions):
            problems = by_pos[p]
            records["file"].append(chunk.file)
            records["row"].append(int(chunk.rows[p]))
            if len(problems) == 1:
                records["column"].append(problems[0][0])
                records["reason"].append(problems[0][1])
            else:
                records["column"].append("|".join(dict.fromkeys(c for c, _ in problems)))
                records["reason"].append("; ".join(f"{c}: {r}" for c, r in problems))
            for name in spec.names:
                records[name].append(originals[name][i])
    for problem in chunk.problems:
        records["file"].append(problem.file)
        records["row"].append(problem.row)
        records["column"].append(problem.column or "")
        records["reason"].append(problem.reason)
        for name in spec.names:
            records[name].append("")
    frame = pd.DataFrame(records, columns=columns)
    return frame.sort_values("row", kind="stable").reset_index(drop=True)
