"""The contract tables in one DuckDB file: the embedded store's, and the Neo4j store's side file.

Both stores keep every table of the data contract (:mod:`ringscope.contract`) as a
typed DuckDB table (``VARCHAR``, ``TIMESTAMPTZ`` in UTC, ``DOUBLE``) with a hidden
``_load_id`` column naming the load that inserted the row, and a ``loads`` table of
load reports. :class:`DuckTables` is that file: it opens it (one process at a time, as
DuckDB allows), sorts each batch into new rows, duplicates, conflicts and updates,
inserts and updates them, rolls a load back, records loads and reads the tables. The
embedded store adds its runs, findings, decisions and audit log to the same file and
derives its graph from the tables (:mod:`ringscope.graphs.embedded`); the Neo4j store
writes the graph elements of each batch to Neo4j inside the batch's transaction
(:mod:`ringscope.graphs.neo4j_store`); the bulk import loads a side file alone
(:mod:`ringscope.graphs.neo4j_bulk`).

Connections: writes hold the file's lock and use its connection; reads use a cursor of
their own thread (a DuckDB connection to the same database), so that reads run side by
side and no connection is ever used by two threads at once.

Updates. A batch row whose key is stored is a duplicate (same values), an update
(every difference is allowed by its column's ``update`` rule, see
:mod:`ringscope.contract`, and applying the rules changes the stored row) or a
conflict. A row whose differences the rules allow but which changes nothing (an older
export loaded again: a refunded order seen as completed; the same news in other words:
a ``returned`` order seen as ``chargeback``) is a duplicate. An update keeps the stored
row's ``_load_id`` and first copies the row as it was into ``_prior_<table>`` with the
updating load's id, once per load, so that rolling the load back restores it; a load
that is recorded forgets its copies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pathlib
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ringscope.contract import TABLES, Column, TableSpec
from ringscope.errors import StoreError, StoreLocked
from ringscope.graphs._graphwalk import (
    FingerprintCache,
    combine_fingerprints,
    load_report_from_dict,
)
from ringscope.model import BatchResult, LoadReport, canonical_json

log = logging.getLogger("ringscope.graphs")

SQL_TYPES: Final = {"str": "VARCHAR", "roles": "VARCHAR", "ts": "TIMESTAMPTZ", "float": "DOUBLE"}
#: The table and id column of each entity that references name.
ENTITY_TABLES: Final = {"account": ("accounts", "account_id"), "stream": ("streams", "stream_id")}

#: Temporary tables a write leaves for its caller with ``keep=True`` (see :meth:`DuckTables.write`).
NEW_ROWS: Final = "_rs_new"
UPDATED_ROWS: Final = "_rs_upd"

#: Seconds :meth:`DuckTables.close` waits for an interrupted read to stop.
CLOSE_WAIT_S: Final = 5.0


def q(name: str) -> str:
    """Quote an identifier that comes from the contract (never from data)."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def spec_of(table: str) -> TableSpec:
    """The contract's spec of ``table``; ``ValueError`` for an unknown table."""
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"table: unknown table {table!r}; use one of {sorted(TABLES)}") from None


def entity_table(entity: str) -> tuple[str, str]:
    """The table and id column of ``entity``; ``ValueError`` for another entity."""
    if entity not in ENTITY_TABLES:
        raise ValueError(f"entity: {entity!r} is not one of {sorted(ENTITY_TABLES)}")
    return ENTITY_TABLES[entity]


def execute(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> None:
    """Run one statement to its end (DuckDB wants every result consumed)."""
    con.execute(sql, params).fetchall()


def first_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: Any = None
) -> tuple[Any, ...] | None:
    """The first row of a query (the whole result is consumed)."""
    rows = con.execute(sql, params).fetchall()
    return rows[0] if rows else None


# --------------------------------------------------------------------------- connections


def _close_connection(con: duckdb.DuckDBPyConnection) -> None:
    """Close ``con``, interrupting the statement another thread runs on it, if any."""
    deadline = time.monotonic() + CLOSE_WAIT_S
    while True:
        try:
            con.close()
            return
        except duckdb.Error as e:  # in use by another thread
            if time.monotonic() > deadline:
                log.warning("a store connection could not be closed: %s", e)
                return
            with contextlib.suppress(duckdb.Error):
                con.interrupt()
            time.sleep(0.01)


def _holder_pid(error: Exception) -> int | None:
    """The process DuckDB names as holding a file's lock (``... held in EXE (PID 123)``)."""
    found = re.search(r"\(PID (\d+)\)", str(error))
    return int(found.group(1)) if found else None


def _describe_pid(pid: int | None) -> str:
    """`` (pid 123: ringscope serve ...)``: who holds the file, as far as this machine tells."""
    if pid is None:
        return ""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = [w.decode("utf-8", "replace") for w in f.read().split(b"\0") if w]
    except OSError:
        words = []
    command = " ".join(pathlib.Path(words[0]).name if i == 0 else w for i, w in enumerate(words))
    if len(command) > 160:
        command = command[:160] + "…"
    return f" (pid {pid}: {command})" if command else f" (pid {pid})"


def _room_hint(error: Exception) -> str:
    """What to do about a write that failed for want of room or permission."""
    text = str(error)
    if "No space left" in text or "File too large" in text or "Disk quota" in text:
        return (
            "; the store's disk is full (or a file size limit is reached): make room and run "
            "the load again (committed batches are kept and skipped)"
        )
    if "Permission denied" in text or "Read-only file system" in text:
        return "; the store's folder or file cannot be written by this user"
    return ""


# --------------------------------------------------------------------------- update rules


def _groups(col: Column) -> list[tuple[int, tuple[str, ...]]]:
    """``(stage, values)`` of every group of the column's stages, in order."""
    return [(i, values) for i, stage in enumerate(col.stages) for values in stage]


def _stage(col: Column, ref: str) -> str:
    """SQL: the stage of value ``ref`` (values no group names: the first stage)."""
    whens = " ".join(f"WHEN {_lit(v)} THEN {i}" for i, values in _groups(col) for v in values)
    return f"(CASE {ref} {whens} ELSE 0 END)"


def _group(col: Column, ref: str) -> str:
    """SQL: the group of value ``ref`` (values no group names: one group, -1)."""
    whens = " ".join(
        f"WHEN {_lit(v)} THEN {g}" for g, (_, values) in enumerate(_groups(col)) for v in values
    )
    return f"(CASE {ref} {whens} ELSE -1 END)"


def _allowed(col: Column, s: str, t: str) -> str:
    """SQL: the incoming value ``s`` may be applied to the stored value ``t``."""
    if col.update in ("earliest", "latest"):
        return "TRUE"
    if col.update == "fill":
        return f"({s} IS NULL OR {t} IS NULL OR {s} = {t})"
    if col.update == "advance":
        # another stage (later: applied; earlier: older news, ignored) or the same news
        # in other words; a value of another group of the same stage is a conflict
        return (
            f"({s} IS NOT DISTINCT FROM {t} OR {_stage(col, s)} <> {_stage(col, t)} "
            f"OR {_group(col, s)} = {_group(col, t)})"
        )
    raise ValueError(f"unknown update rule {col.update!r} of column {col.name!r}")


def _merged(col: Column, s: str, t: str) -> str:
    """SQL: the value of the column once the incoming ``s`` is applied to the stored ``t``."""
    if col.update == "fill":
        return f"coalesce({t}, {s})"
    if col.update in ("earliest", "latest"):
        pick = "<" if col.update == "earliest" else ">"
        return (
            f"(CASE WHEN {s} IS NULL THEN {t} "
            f"WHEN {t} IS NULL OR {s} {pick} {t} THEN {s} ELSE {t} END)"
        )
    if col.update == "advance":
        return f"(CASE WHEN {_stage(col, s)} > {_stage(col, t)} THEN {s} ELSE {t} END)"
    raise ValueError(f"unknown update rule {col.update!r} of column {col.name!r}")


def _same(spec: TableSpec, s: str = "s", t: str = "t") -> str:
    """SQL: the batch row ``s`` holds the values of ``t`` (``NULL`` equal to ``NULL``)."""
    keys = set(spec.key)
    same = " AND ".join(
        f"{s}.{q(c.name)} IS NOT DISTINCT FROM {t}.{q(c.name)}"
        for c in spec.columns
        if c.name not in keys
    )
    return same or "TRUE"


def _classify(spec: TableSpec, s: str = "s", t: str = "t") -> tuple[str, str]:
    """SQL for a batch row ``s`` matched to the stored row ``t`` of the same key.

    Returns ``(duplicate, update)``: boolean expressions, the first true when the
    row changes nothing (same values, or changes its rules allow that leave the
    stored row as it is), the second when the rules allow every difference and
    the stored row changes. A row for which both are false is a conflict.
    """
    same = _same(spec, s, t)
    rules = spec.updatable
    if not rules:
        return f"({same})", "FALSE"
    keys = set(spec.key)
    fixed = [
        f"{s}.{q(c.name)} IS NOT DISTINCT FROM {t}.{q(c.name)}"
        for c in spec.columns
        if c.name not in keys and c.update is None
    ]
    allowed = " AND ".join(
        fixed + [_allowed(c, f"{s}.{q(c.name)}", f"{t}.{q(c.name)}") for c in rules]
    )
    changes = " OR ".join(
        f"{_merged(c, f'{s}.{q(c.name)}', f'{t}.{q(c.name)}')} IS DISTINCT FROM {t}.{q(c.name)}"
        for c in rules
    )
    duplicate = f"(({same}) OR (({allowed}) AND NOT ({changes})))"
    update = f"(NOT ({same}) AND ({allowed}) AND ({changes}))"
    return duplicate, update


def _prior(table: str) -> str:
    return q(f"_prior_{table}")


def _has_prior(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = first_row(
        con,
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = $t",
        {"t": f"_prior_{table}"},
    )
    return bool(row and row[0])


def _apply_updates(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: str, load_id: str
) -> None:
    """Apply the update rows in relation ``rows`` (the table's columns) to the stored
    rows of the same key, keeping a copy of each stored row as it was before
    ``load_id`` first changed it."""
    table = spec.name
    execute(
        con,
        f"CREATE TABLE IF NOT EXISTS main.{_prior(table)} AS "
        f"SELECT *, NULL::VARCHAR AS _by_load FROM main.{q(table)} WHERE FALSE",
    )
    on = " AND ".join(f"u.{q(k)} = t.{q(k)}" for k in spec.key)
    seen = " AND ".join(f"p.{q(k)} = t.{q(k)}" for k in spec.key)
    execute(
        con,
        f"INSERT INTO main.{_prior(table)} SELECT t.*, $load_id FROM main.{q(table)} t "
        f"SEMI JOIN {rows} u ON {on} WHERE NOT EXISTS (SELECT 1 FROM main.{_prior(table)} p "
        f"WHERE p._by_load = $load_id AND {seen})",
        {"load_id": load_id},
    )
    sets = ", ".join(
        f"{q(c.name)} = {_merged(c, f'u.{q(c.name)}', f't.{q(c.name)}')}" for c in spec.updatable
    )
    execute(con, f"UPDATE main.{q(table)} AS t SET {sets} FROM {rows} u WHERE {on}")


# --------------------------------------------------------------------------- the file


class DuckTables:
    """One DuckDB file (or ``:memory:``) holding the contract tables and their loads.

    Parameters
    ----------
    path
        The database file (created when missing, with its folder) or ``":memory:"``.
    noun
        What the file is, for messages (``store``, ``the columnar file``).
    setup
        Called with the connection inside the transaction that creates the tables,
        to create the owner's own tables and check them (its errors close the file).
    load_times
        Whether the ``loads`` table has a ``recorded_at`` column (the embedded store's).

    Raises
    ------
    StoreError
        When the file cannot be opened or set up; :class:`~ringscope.errors.StoreLocked`
        when another process holds it.
    """

    def __init__(
        self,
        path: str | pathlib.Path,
        *,
        noun: str = "store",
        setup: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
        load_times: bool = True,
    ) -> None:
        self.path = str(path)
        self.noun = noun
        self._setup_owner = setup
        self._load_times = load_times
        self._lock = threading.RLock()
        self._local = threading.local()
        self._cursors: list[tuple[weakref.ref[threading.Thread], duckdb.DuckDBPyConnection]] = []
        self._fingerprint = FingerprintCache()
        self._con: duckdb.DuckDBPyConnection | None = None
        #: Raised at each opening: a thread's read cursor belongs to one opening.
        self._opening = 0
        if self.path != ":memory:":
            pathlib.Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._open()

    # ------------------------------------------------------------------ plumbing
    def _open(self) -> None:
        """Connect to the file, set the session up and create the tables."""
        try:
            con = duckdb.connect(self.path)
        except duckdb.IOException as e:
            if "lock" in str(e).lower():
                pid = _holder_pid(e)
                raise StoreLocked(
                    f"{self.noun} {self.path} is in use by another process{_describe_pid(pid)} "
                    "(DuckDB allows one process at a time; close the other one)",
                    pid,
                ) from e
            raise StoreError(f"cannot open {self.noun} {self.path}: {e}{_room_hint(e)}") from e
        except duckdb.Error as e:
            raise StoreError(f"cannot open {self.noun} {self.path}: {e}{_room_hint(e)}") from e
        with self._lock:
            self._con = con
            self._opening += 1
        try:
            execute(con, "SET TimeZone = 'UTC'")
            execute(con, "SET enable_progress_bar = false")
            with self.transaction("create schema") as tx:
                times = ", recorded_at TIMESTAMPTZ NOT NULL" if self._load_times else ""
                execute(
                    tx,
                    "CREATE TABLE IF NOT EXISTS loads (seq BIGINT NOT NULL, load_id VARCHAR NOT "
                    f"NULL, fingerprint VARCHAR NOT NULL, report VARCHAR NOT NULL{times})",
                )
                for spec in TABLES.values():
                    cols = ", ".join(f"{q(c.name)} {SQL_TYPES[c.type]}" for c in spec.columns)
                    table = f"main.{q(spec.name)} ({cols}, _load_id VARCHAR)"
                    execute(tx, f"CREATE TABLE IF NOT EXISTS {table}")
                if self._setup_owner is not None:
                    self._setup_owner(tx)
        except BaseException:
            self.close()
            raise

    @property
    def is_open(self) -> bool:
        return self._con is not None

    def reopen(self) -> bool:
        """Open the file again after :meth:`close` (``False``: it was open); what was
        kept of it (the fingerprint) is read again, as another process may have written
        meanwhile. Raises :class:`~ringscope.errors.StoreLocked` while another process
        holds it."""
        if self.path == ":memory:":
            raise StoreError(f"an in-memory {self.noun} cannot be opened again")
        with self._lock:
            if self._con is not None:
                return False
            self._fingerprint.forget()
            self._open()
            return True

    def close(self) -> None:
        """Close the file (further calls raise ``StoreError``).

        A read still running in another thread is interrupted: DuckDB refuses to close
        a connection in use, and the file would stay locked until that thread let go of
        its cursor."""
        with self._lock:
            if self._con is not None:
                con, self._con = self._con, None
                for _thread, cur in self._cursors:
                    _close_connection(cur)
                self._cursors = []
                _close_connection(con)

    def __enter__(self) -> DuckTables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DuckTables({self.path!r})"

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError(f"{self.noun} {self.path} is closed")
        return self._con

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """One write transaction, under the file's lock: committed at the end, rolled
        back on any error (DuckDB's errors raised as ``StoreError`` naming ``what``)."""
        with self._lock:
            con = self._connection()
            try:
                execute(con, "BEGIN TRANSACTION")
            except duckdb.Error as e:
                raise StoreError(f"{what}: {e}") from e
            try:
                yield con
                execute(con, "COMMIT")
            except BaseException as e:
                with contextlib.suppress(duckdb.Error):
                    execute(con, "ROLLBACK")
                if isinstance(e, duckdb.Error):
                    raise StoreError(f"{what}: {e}{_room_hint(e)}") from e
                raise

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's read connection to the database (made on first use)."""
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is not None and self._con is not None and self._local.opening == self._opening:
            return cur
        with self._lock:
            con = self._connection()
            # cursors of threads that ended are closed (no thread can use them any more)
            alive = []
            for thread, old in self._cursors:
                if thread() is None or not thread().is_alive():  # type: ignore[union-attr]
                    with contextlib.suppress(duckdb.Error):
                        old.close()
                else:
                    alive.append((thread, old))
            try:
                cur = con.cursor()
                execute(cur, "SET TimeZone = 'UTC'")
                execute(cur, "SET enable_progress_bar = false")
            except duckdb.Error as e:
                raise StoreError(f"{self.noun} {self.path}: cannot open a read cursor: {e}") from e
            alive.append((weakref.ref(threading.current_thread()), cur))
            self._cursors = alive
            self._local.opening = self._opening
        self._local.cursor = cur
        return cur

    @contextlib.contextmanager
    def reading(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """This thread's read cursor (no lock: reads run side by side), errors translated."""
        con = self._cursor()
        try:
            yield con
        except duckdb.Error as e:
            if self._con is None:
                raise StoreError(f"{what}: {self.noun} {self.path} is closed") from e
            raise StoreError(f"{what}: {e}") from e

    # ------------------------------------------------------------------ loading
    @staticmethod
    def check_batch(table: str, frame: pd.DataFrame) -> TableSpec:
        """The spec of ``table``; ``ValueError`` for an unknown table or a frame without
        its required columns."""
        spec = spec_of(table)
        missing = [c for c in spec.required if c not in frame.columns]
        if missing:
            raise ValueError(f"frame: table {table!r} needs columns {missing}")
        return spec

    def write(
        self,
        con: duckdb.DuckDBPyConnection,
        spec: TableSpec,
        frame: pd.DataFrame,
        load_id: str,
        *,
        keep: bool = False,
    ) -> BatchResult:
        """Write one validated, normalised batch in the open transaction of ``con``.

        The batch is handed to DuckDB as an Arrow table. One hash join against the
        stored table finds the rows whose key is stored: duplicates (same values,
        ``NULL`` equal to ``NULL``), updates (see the module docstring, applied) and
        conflicts (other values, not written). Rows repeating a key earlier in the same
        batch count as duplicates or conflicts of that earlier row. The other rows are
        inserted, tagged with ``load_id``. No primary-key index is kept: at millions of
        rows an ART index on the four-column engagement key made loads several times
        slower than a hash join per batch.

        With ``keep``, the inserted rows stay in the temporary table :data:`NEW_ROWS`
        and the updated rows' keys (the first row of each) in :data:`UPDATED_ROWS`
        when any (the table's columns), for the caller to read and drop; otherwise the
        rows are inserted straight from the Arrow table.

        Raises
        ------
        StoreError
            When the batch cannot be converted.
        """
        table = spec.name
        n = len(frame)
        present = [c.name for c in spec.columns if c.name in frame.columns]
        try:
            data = pa.Table.from_pandas(frame[present], preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise StoreError(f"write {table}: batch cannot be converted: {e}") from e
        data = data.append_column("_rs_pos", pa.array(np.arange(n, dtype=np.int64)))
        casts = []
        for c in spec.columns:
            sql_type = SQL_TYPES[c.type]
            if c.name not in present:
                expr = f"CAST(NULL AS {sql_type})"
            elif c.type == "float":
                expr = f"NULLIF(CAST(f.{q(c.name)} AS {sql_type}), 'NaN'::DOUBLE)"
            else:
                expr = f"CAST(f.{q(c.name)} AS {sql_type})"
            casts.append(f"{expr} AS {q(c.name)}")
        keys = spec.key
        src = f"(SELECT f._rs_pos, {', '.join(casts)} FROM _rs_frame f)"
        on = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in keys)
        duplicate, update = _classify(spec)
        cols = ", ".join(q(c) for c in spec.names)
        key_cols = ", ".join(q(k) for k in keys)
        con.register("_rs_frame", data)
        try:
            # Rows whose key is stored: duplicates (nothing changes), updates the
            # columns' rules allow, or conflicts.
            execute(
                con,
                "CREATE OR REPLACE TEMP TABLE _rs_match AS SELECT s._rs_pos, "
                f"{duplicate} AS same, {update} AS upd FROM {src} s "
                f"JOIN main.{q(table)} t ON {on}",
            )
            # Keys repeated inside the batch: the first row stands, later ones compare
            # to it. A hash finds candidates cheaply; the exact check runs only then.
            repeated = first_row(
                con,
                f"SELECT count(*) FROM (SELECT hash({key_cols}) AS h FROM {src} s "
                "GROUP BY h HAVING count(*) > 1)",
            )
            if repeated and repeated[0]:
                self._match_repeats(con, spec, src, key_cols)
            row = first_row(
                con,
                "SELECT count(*), count(*) FILTER (WHERE same), count(*) FILTER (WHERE upd) "
                "FROM _rs_match",
            )
            matched, duplicates, updated = (
                (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
            )
            conflicts = tuple(
                int(r[0])
                for r in con.execute(
                    "SELECT _rs_pos FROM _rs_match WHERE NOT same AND NOT upd ORDER BY _rs_pos"
                ).fetchall()
            )
            if updated:
                execute(
                    con,
                    f"CREATE OR REPLACE TEMP TABLE {UPDATED_ROWS} AS SELECT {cols} FROM {src} s "
                    "SEMI JOIN _rs_match m ON s._rs_pos = m._rs_pos AND m.upd "
                    f"QUALIFY row_number() OVER (PARTITION BY {key_cols} "
                    "ORDER BY s._rs_pos) = 1",
                )
                _apply_updates(con, spec, UPDATED_ROWS, load_id)
                if not keep:
                    execute(con, f"DROP TABLE {UPDATED_ROWS}")
            inserted = n - matched
            new = f"{src} s ANTI JOIN _rs_match m ON s._rs_pos = m._rs_pos"
            if keep:
                execute(con, f"CREATE OR REPLACE TEMP TABLE {NEW_ROWS} AS SELECT {cols} FROM {new}")
                new = NEW_ROWS
            if inserted:
                execute(
                    con,
                    f"INSERT INTO main.{q(table)} ({cols}, _load_id) "
                    f"SELECT {cols}, $load_id FROM {new}",
                    {"load_id": load_id},
                )
            execute(con, "DROP TABLE _rs_match")
        finally:
            con.unregister("_rs_frame")
        return BatchResult(
            inserted=inserted, duplicates=duplicates, conflicts=conflicts, updated=updated
        )

    @staticmethod
    def _match_repeats(
        con: duckdb.DuckDBPyConnection, spec: TableSpec, src: str, key_cols: str
    ) -> None:
        """Add to ``_rs_match`` the later rows of keys repeated in the batch (not stored)."""
        key_on = " AND ".join(f"s.{q(k)} = f.{q(k)}" for k in spec.key)
        execute(
            con,
            f"CREATE OR REPLACE TEMP TABLE _rs_first AS SELECT {key_cols}, "
            f"min(_rs_pos) AS _rs_first FROM {src} s "
            "WHERE _rs_pos NOT IN (SELECT _rs_pos FROM _rs_match) "
            f"GROUP BY {key_cols} HAVING count(*) > 1",
        )
        execute(
            con,
            f"INSERT INTO _rs_match SELECT s._rs_pos, {_same(spec)}, FALSE FROM {src} s "
            f"JOIN _rs_first f ON {key_on} JOIN {src} t ON t._rs_pos = f._rs_first "
            "WHERE s._rs_pos <> f._rs_first",
        )
        execute(con, "DROP TABLE _rs_first")

    def write_batch(self, table: str, frame: pd.DataFrame, load_id: str) -> BatchResult:
        """:meth:`write` in a transaction of its own (``GraphStore.write_batch``)."""
        spec = self.check_batch(table, frame)
        if len(frame) == 0:
            return BatchResult(inserted=0, duplicates=0)
        with self.transaction(f"write {table}") as con:
            return self.write(con, spec, frame, load_id)

    @staticmethod
    def remove_load(con: duckdb.DuckDBPyConnection, spec: TableSpec, load_id: str) -> int:
        """Delete the rows of the table that load ``load_id`` inserted; how many."""
        row = first_row(
            con, f"DELETE FROM main.{q(spec.name)} WHERE _load_id = $load_id", {"load_id": load_id}
        )
        return int(row[0]) if row else 0

    @staticmethod
    def restore_load(con: duckdb.DuckDBPyConnection, spec: TableSpec, load_id: str) -> str | None:
        """Put back the stored rows ``load_id`` updated, as they were before it.

        Returns the name of a temporary table holding the restored rows (the table's
        columns), for the caller to read and drop, or ``None`` when the load updated
        nothing. The copies are removed."""
        table = spec.name
        if not spec.updatable or not _has_prior(con, table):
            return None
        params: dict[str, Any] = {"load_id": load_id}
        cols = ", ".join(q(c) for c in spec.names)
        execute(
            con,
            f"CREATE OR REPLACE TEMP TABLE _rs_restored AS SELECT {cols} "
            f"FROM main.{_prior(table)} WHERE _by_load = $load_id",
            params,
        )
        row = first_row(con, "SELECT count(*) FROM _rs_restored")
        if not row or not row[0]:
            execute(con, "DROP TABLE _rs_restored")
            return None
        on = " AND ".join(f"p.{q(k)} = t.{q(k)}" for k in spec.key)
        sets = ", ".join(f"{q(c.name)} = p.{q(c.name)}" for c in spec.updatable)
        execute(con, f"UPDATE main.{q(table)} AS t SET {sets} FROM _rs_restored p WHERE {on}")
        execute(con, f"DELETE FROM main.{_prior(table)} WHERE _by_load = $load_id", params)
        return "_rs_restored"

    def rollback_load(self, load_id: str, table: str) -> int:
        """Remove the rows of ``table`` that load ``load_id`` inserted, and put back the
        rows it updated as they were (until the load is recorded), in one transaction;
        the number removed (``GraphStore.rollback_load``)."""
        spec = spec_of(table)
        with self.transaction(f"roll back load {load_id} of {table}") as con:
            removed = self.remove_load(con, spec, load_id)
            restored = self.restore_load(con, spec, load_id)
            if restored is not None:
                execute(con, f"DROP TABLE {restored}")
        return removed

    @staticmethod
    def stored_rows(spec: TableSpec, keys_of: str) -> str:
        """SQL: the stored rows of the table (its columns) whose keys are in relation
        ``keys_of``."""
        cols = ", ".join(f"t.{q(c)}" for c in spec.names)
        on = " AND ".join(f"k.{q(c)} = t.{q(c)}" for c in spec.key)
        return f"(SELECT {cols} FROM main.{q(spec.name)} t SEMI JOIN {keys_of} k ON {on})"

    def record_load(self, report: LoadReport) -> None:
        """Keep ``report``; recording the same ``load_id`` again replaces it in place.

        The load is complete: the copies of the rows it updated, kept for
        :meth:`rollback_load`, are dropped."""
        body = canonical_json(report.to_dict())
        self._fingerprint.forget()
        with self.transaction(f"record load {report.load_id}") as con:
            for spec in TABLES.values():
                if spec.updatable and _has_prior(con, spec.name):
                    execute(
                        con,
                        f"DELETE FROM main.{_prior(spec.name)} WHERE _by_load = $load_id",
                        {"load_id": report.load_id},
                    )
            params: dict[str, Any] = {"id": report.load_id, "fp": report.fingerprint, "body": body}
            exists = first_row(
                con, "SELECT count(*) FROM loads WHERE load_id = $id", {"id": report.load_id}
            )
            if exists and exists[0]:
                execute(
                    con,
                    "UPDATE loads SET fingerprint = $fp, report = $body WHERE load_id = $id",
                    params,
                )
            elif self._load_times:
                execute(
                    con,
                    "INSERT INTO loads SELECT coalesce(max(seq), 0) + 1, $id, $fp, $body, "
                    "$now FROM loads",
                    {**params, "now": datetime.now(UTC)},
                )
            else:
                execute(
                    con,
                    "INSERT INTO loads SELECT coalesce(max(seq), 0) + 1, $id, $fp, $body "
                    "FROM loads",
                    params,
                )
        self._fingerprint.forget()

    def forget_fingerprint(self) -> None:
        """The loads changed other than by :meth:`record_load` (a wipe)."""
        self._fingerprint.forget()

    def empty(self, con: duckdb.DuckDBPyConnection) -> None:
        """Delete every row and load record, in the open transaction of ``con``."""
        self._fingerprint.forget()
        execute(con, "DELETE FROM loads")
        for name in TABLES:
            execute(con, f"DELETE FROM main.{q(name)}")

    # ------------------------------------------------------------------ reading
    def known_ids(self, entity: str, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that name a stored account (``entity="account"``) or stream."""
        table, column = entity_table(entity)
        wanted = pa.table({"id": pa.array(list(dict.fromkeys(ids)), pa.string())})
        if wanted.num_rows == 0:
            return set()
        with self.reading(f"known {entity} ids") as con:
            con.register("_rs_ids", wanted)
            try:
                rows = con.execute(
                    f"SELECT i.id FROM _rs_ids i SEMI JOIN main.{table} t ON t.{column} = i.id"
                ).fetchall()
            finally:
                con.unregister("_rs_ids")
        return {r[0] for r in rows}

    def loads(self) -> list[LoadReport]:
        """Every recorded load, oldest first."""
        with self.reading("read loads") as con:
            rows = con.execute("SELECT report FROM loads ORDER BY seq").fetchall()
        return [load_report_from_dict(json.loads(r[0])) for r in rows]

    def fingerprint(self) -> str:
        """SHA-256 over the recorded loads' fingerprints, oldest first (see
        :func:`ringscope.graphs._graphwalk.combine_fingerprints`); kept in memory until
        a load is recorded (:class:`~ringscope.graphs._graphwalk.FingerprintCache`):
        only this process writes the file (DuckDB locks it)."""

        def read() -> str:
            with self.reading("fingerprint") as con:
                rows = con.execute("SELECT fingerprint FROM loads ORDER BY seq").fetchall()
            return combine_fingerprints(r[0] for r in rows)

        return self._fingerprint.get(read)

    def counts(self) -> dict[str, int]:
        """Rows per contract table (every table, 0 when empty)."""
        sql = " UNION ALL ".join(
            f"SELECT '{name}', count(*) FROM main.{q(name)}" for name in TABLES
        )
        with self.reading("counts") as con:
            rows = dict(con.execute(sql).fetchall())
        return {name: int(rows[name]) for name in TABLES}

    def is_empty(self) -> bool:
        """Whether no load is recorded and every table is empty."""
        return not self.loads() and not any(self.counts().values())

    @staticmethod
    def select(name: str, columns: Sequence[str] | None = None, ordered: bool = True) -> str:
        """SQL reading ``columns`` (default all) of table ``name``, sorted by its key
        unless not ``ordered``; ``ValueError`` for an unknown table or column."""
        spec = spec_of(name)
        wanted = list(spec.names) if columns is None else list(columns)
        unknown = [c for c in wanted if c not in spec.names]
        if unknown:
            raise ValueError(f"columns: {unknown} are not columns of {name!r}")
        cols = ", ".join(q(c) for c in wanted) or "*"
        sql = f"SELECT {cols} FROM main.{q(name)}"
        return sql + f" ORDER BY {', '.join(q(k) for k in spec.key)}" if ordered else sql

    def arrow(self, sql: str, what: str) -> pa.Table:
        """The result of ``sql`` as an Arrow table (strings ``string``, timestamps
        ``timestamp[us, tz=UTC]``, numbers ``double``)."""
        with self.reading(what) as con:
            return con.sql(sql).to_arrow_table()


class TableStore:
    """The methods of :class:`~ringscope.graphs.store.GraphStore` a store answers from
    its :class:`DuckTables` (the embedded store's file, the Neo4j store's side file).

    A store sets ``_tables``; one whose tables may be refused (a Neo4j side file that
    is not its database's) checks in :meth:`_tables_for`.
    """

    _tables: DuckTables

    def _tables_for(self, what: str) -> DuckTables:
        """The tables, for ``what``: a store may refuse them (``ConfigError``)."""
        return self._tables

    def known_ids(self, entity: str, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that name a stored account (``entity="account"``) or stream."""
        entity_table(entity)
        return self._tables_for(f"known {entity} ids").known_ids(entity, ids)

    def record_load(self, report: LoadReport) -> None:
        """Keep ``report``; recording the same ``load_id`` again replaces it in place.
        The copies of the rows the load updated, kept for rollbacks, are dropped."""
        self._tables.record_load(report)

    def loads(self) -> list[LoadReport]:
        """Every recorded load, oldest first."""
        return self._tables.loads()

    def fingerprint(self) -> str:
        """SHA-256 over the recorded loads' fingerprints, oldest first; kept in memory
        until a load is recorded."""
        return self._tables.fingerprint()

    def counts(self) -> dict[str, int]:
        """Rows per contract table (every table, 0 when empty)."""
        return self._tables.counts()

    def table_arrow(
        self, name: str, *, columns: Sequence[str] | None = None, ordered: bool = True
    ) -> pa.Table:
        """:meth:`table` as an Arrow table (strings ``string``, timestamps
        ``timestamp[us, tz=UTC]``, numbers ``double``), for detectors that work on Arrow.

        ``ordered=False`` skips the sort by key, which is most of the cost on
        large tables (10M engagement rows: about 10 s of CPU sorted, 1.3 s not).
        """
        sql = DuckTables.select(name, columns, ordered)
        return self._tables_for(f"read {name}").arrow(sql, f"read {name}")

    def table(self, name: str, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A whole contract table, normalised and sorted by its key.

        Strings in pandas' ``str`` dtype (missing: NaN), timestamps
        ``datetime64[us, UTC]`` (missing: NaT), numbers ``float64`` (missing: NaN).
        ``columns`` picks and orders columns (default: all contract columns).
        """
        return self.table_arrow(name, columns=columns).to_pandas().reset_index(drop=True)
