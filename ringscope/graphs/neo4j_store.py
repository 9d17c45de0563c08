"""The Neo4j store: the marketplace graph in Neo4j, raw tables in a columnar side file.

The graph model of DESIGN.md lives in Neo4j (through the official driver, Bolt):
``Account`` (+ ``Creator``/``Seller``/``Buyer``), ``Stream``, ``Product``,
``Order``, ``Identifier`` (+ ``Device``/``IP``/``Payment``/``Phone``/``Address`` for those
kinds; identifiers of other kinds, such as ``email`` or ``cookie``, are only ``Identifier``),
runs as ``Run`` and ``Cluster`` nodes, decisions as ``Decision`` nodes. Every
Cypher statement is in :mod:`ringscope.graphs.cypher`.

The rows of every contract table, raw engagement events included, stay in a
columnar side file (DuckDB, ``settings.columnar_path``): detectors read their
tables from it (:meth:`Neo4jStore.table`), and it decides which rows of a batch are
new, duplicates or conflicts. Neo4j holds what investigators walk: nodes and
relationships, with ENGAGED aggregated per (account, stream).

The two halves belong together, and a store refuses to work on halves that do not
(a side file left from another database, e.g. the default relative path of an
earlier run, would class every row of a load as a duplicate and write nothing to the
graph; a new side file beside a loaded database would give detectors empty tables).
Both keep a *store id*: the database in its one ``StoreInfo`` node (keyed, not a
node of the marketplace: neighbourhoods, paths and counts never show it), the side
file in its ``store_info`` table. On opening, one small query per half
(:meth:`Neo4jStore._pair`):

- the same id: they belong together;
- neither holds marketplace data (table rows; ``Account``, ``Stream``, ...
  nodes) and the database has no id: nothing to check yet; the first
  :meth:`Neo4jStore.write_batch` gives both a new id (opening writes nothing, so an
  empty database stays empty, e.g. for ``ringscope neo4j-import``);
- both hold data and neither has an id (a store from before store ids): both are
  given a new one; ``ringscope neo4j-import`` (:mod:`ringscope.graphs.neo4j_bulk`)
  writes the id into both itself;
- anything else (different ids; one half holding data or an id, the other not) is a
  mismatch: :meth:`Neo4jStore.write_batch`, :meth:`Neo4jStore.rollback_load`,
  :meth:`Neo4jStore.table` and :meth:`Neo4jStore.known_ids` raise ``ConfigError``
  naming the side file, the database, what each holds and the ways out (point
  ``RINGSCOPE_COLUMNAR_PATH`` at the database's side file first; for an empty
  database, remove only the side file; only to start over, wipe the store, saying what
  that deletes). The graph's reads, runs, decisions and the audit log keep working.
  :meth:`Neo4jStore.wipe` empties both halves, ids included, which makes them belong
  together again; it keeps the audit log unless asked to erase it.

Failure semantics of :meth:`Neo4jStore.write_batch`, across the two stores:

1. a DuckDB transaction opens; the batch is sorted into new rows, duplicates and
   conflicts, and the new rows are inserted (not yet visible to anyone else);
2. the graph elements of the new rows are written to Neo4j in **one** Neo4j
   transaction (``session.execute_write``, transient errors retried), as
   ``UNWIND`` statements of :attr:`Neo4jStore.batch_size` rows each, one per label
   (accounts: per combination of role labels, set as the node is created) and per
   relationship type, together with a ``_PendingBatch`` marker node; ENGAGED
   relationships are *set* to the aggregate of every stored event of the pair,
   computed by DuckDB inside the open transaction;
3. the DuckDB transaction commits; then the marker is deleted.

A failure in 1 or 2 rolls both back: nothing of the batch is written anywhere.
The only window is a failure of the DuckDB commit after the Neo4j commit (disk
full, process killed between the two): Neo4j then holds elements of rows the
table side does not, and the batch's marker stays. Every element the table side
proves new is *created* without a check in Neo4j: the nodes and relationships a new
row alone implies, the products, identifiers and SELLS pairs no earlier stored row
has (those that one has are not written at all), ENGAGED of pairs with no earlier
event; but only while no marker of the table is left: with one, every node and
relationship is merged by id with absolute values, so writing the lost batch again,
which the table side sees as new, repairs it exactly. Those elements carry the
batch's ``_load_id`` (nodes, and the relationship types rollbacks look up, see
``cypher.LOAD_ID_RELS``), so :meth:`Neo4jStore.rollback_load` removes them too (and
the load's markers of that table, which lets the table use creates again).

Batch size: each loader batch (200,000 rows by default) is one Neo4j transaction,
so the server needs transaction memory in proportion (``dbms.memory.transaction.total.max``,
70% of the heap by default). With ``db.tx_state.memory_allocation=OFF_HEAP`` (see
``neo4j_local.BENCH_CONF``) the transaction state lives off the heap and a 2 GB heap
loads the 200,000-row batches of ``benchmarks/neo4j_load.py``. Inside the
transaction, statements carry :data:`DEFAULT_BATCH_SIZE` rows (see its comment).
Splitting a batch into smaller transactions was measured and does not pay: 300,000
relationships cost the server as much CPU or more in 20,000-row transactions as in
one (see the Neo4j section of ``benchmarks/README.md``).

Speed: on 1M events (1.6M relationships), 2 shared cores, the load costs ~267 CPU
seconds of the Neo4j server and ~35 of the client, ~5,300 relationships per CPU
second (the version that merged every node and set role labels in extra passes:
~4,900); a busy machine gave 2,300-2,400 relationships/s of wall time, a quiet one
~4,100 before these changes. The server's own cost per relationship (40-110 µs of
CPU with nothing else in the statement) bounds a Cypher load on these machines well
below the 50,000 relationships/s the embedded store exceeds.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import pathlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import duckdb
import neo4j
import numpy as np
import pandas as pd
import pyarrow as pa
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from ringscope.contract import TABLES, TableSpec
from ringscope.errors import ConfigError, NotFoundError, StoreError
from ringscope.graphs import _updates, cypher
from ringscope.graphs._graphwalk import (
    FingerprintCache,
    as_utc,
    bounded_bfs,
    check_node_refs,
    check_rel_types,
    check_window,
    combine_fingerprints,
    decision_with_utc,
    edge_key,
    load_report_from_dict,
    pick_edge,
    props,
    ref_key,
    roles_text,
    run_with,
)
from ringscope.graphs._groupcommit import GroupCommit
from ringscope.graphs.store import Entity
from ringscope.model import (
    NODE_LABELS,
    REL_TYPES,
    BatchResult,
    Decision,
    Edge,
    Finding,
    LoadReport,
    Node,
    NodeRef,
    Path,
    Run,
    Subgraph,
    canonical_json,
    rank,
)
from ringscope.settings import Settings

#: Rows per ``UNWIND`` statement inside a batch's transaction. The whole loader batch
#: is one transaction either way, so this only sets how many round trips and how large
#: a parameter list each statement has: 20,000 (the top of the 5k-20k range usually
#: advised) keeps a 200,000-row batch to ~10 statements per label or type with a few
#: MB of parameters. Measured: 5,000-row statements cost the server the same CPU as
#: 20,000-row ones; in ``benchmarks/neo4j_load.py`` the commits are ~40% of the
#: Neo4j time, the relationship statements (ENGAGED, USES, FOLLOWS) most of the rest.
DEFAULT_BATCH_SIZE: Final = 20_000
#: Elements removed per transaction by rollbacks and wipes.
DELETE_CHUNK: Final = 20_000
#: Most shortest paths looked at to choose the smallest one.
MAX_PATHS: Final = 10_000
#: Runs (a policy and a summary of ~15 kB each) a store keeps once read.
RUNS_KEPT: Final = 256
#: Server notifications the store asks Neo4j not to send. ``UNRECOGNIZED`` says that a
#: statement names a property, label or relationship type the database has not seen
#: yet: normal while a database is young (no decision recorded yet, so no
#: ``decided_at``). The driver logs every notification it receives at WARNING, on every
#: execution, so these would add a log line to every request of the app (the queue
#: reads the decisions) and make the app as slow as its log (a full log pipe stops it).
QUIET_NOTIFICATIONS: Final = (neo4j.NotificationDisabledClassification.UNRECOGNIZED,)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
#: The properties of a Run node that change whenever any other does (see ``RUN_KEYS``).
_RUN_VERSION: Final = ("id", "seq", "status", "finished_at")
_SQL_TYPES: Final = {"str": "VARCHAR", "roles": "VARCHAR", "ts": "TIMESTAMPTZ", "float": "DOUBLE"}
_ENTITY_TABLES: Final = {"account": ("accounts", "account_id"), "stream": ("streams", "stream_id")}
#: The tables whose rows become graph elements (``labels`` stays in the side file only):
#: what makes a side file hold marketplace data, for the pairing of the two halves.
_GRAPH_TABLES: Final = tuple(name for name in TABLES if name != "labels")

#: The aggregate of an (account, stream) pair's events that ENGAGED carries.
_ENGAGED_SQL: Final = """
SELECT e.account_id, e.stream_id,
       count(*) AS n, count(*) FILTER (WHERE kind = 'view') AS views,
       count(*) FILTER (WHERE kind = 'like') AS likes,
       count(*) FILTER (WHERE kind = 'comment') AS comments,
       count(*) FILTER (WHERE kind = 'share') AS shares,
       count(*) FILTER (WHERE kind = 'gift') AS gifts,
       coalesce(sum(amount) FILTER (WHERE kind = 'gift'), 0.0) AS gift_amount,
       min(ts) AS first_ts, max(ts) AS last_ts
FROM main.engagements e SEMI JOIN {pairs} p USING (account_id, stream_id)
GROUP BY e.account_id, e.stream_id
"""


def _q(name: str) -> str:
    """Quote an identifier that comes from the contract (never from data)."""
    return '"' + name.replace('"', '""') + '"'


def _spec(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"table: unknown table {table!r}; use one of {sorted(TABLES)}") from None


# --------------------------------------------------------------------------- values


def _iso(series: pd.Series) -> np.ndarray:
    """UTC timestamps as ``datetime.isoformat()`` strings (``None`` when missing)."""
    out = np.full(len(series), None, dtype=object)
    stamps = pd.to_datetime(series, utc=True)
    mask = stamps.notna().to_numpy()
    if mask.any():
        text = stamps[mask].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
        out[mask] = text.str.replace(".000000+", "+", regex=False).to_numpy(dtype=object)
    return out


def _micros(series: pd.Series) -> np.ndarray:
    """UTC timestamps as microseconds since the epoch (``None`` when missing)."""
    out = np.full(len(series), None, dtype=object)
    stamps = pd.to_datetime(series, utc=True)
    mask = stamps.notna().to_numpy()
    if mask.any():
        values = stamps[mask].dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        out[mask] = values.astype(np.int64).tolist()
    return out


def _plain(series: pd.Series, kind: str) -> np.ndarray:
    """A column as JSON-able Python values (``None`` when missing)."""
    if kind == "ts":
        return _iso(series)
    values = np.array(series.astype(object).to_numpy(dtype=object), dtype=object, copy=True)
    missing = pd.isna(series).to_numpy()
    values[missing] = None
    if kind == "float":
        values[~missing] = [float(v) for v in values[~missing]]
    elif kind == "roles":
        values[~missing] = [roles_text(str(v)) for v in values[~missing]]
    else:
        values[~missing] = [str(v) for v in values[~missing]]
    return values


def _columns(frame: pd.DataFrame, spec: TableSpec) -> dict[str, np.ndarray]:
    return {c.name: _plain(frame[c.name], c.type) for c in spec.columns if c.name in frame}


def _records(cols: dict[str, np.ndarray], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per row, a dict of the columns ``names`` (``None`` when missing)."""
    return [dict(zip(names, v, strict=True)) for v in zip(*(cols[k] for k in names), strict=True)]


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


# --------------------------------------------------------------------------- the store


class Neo4jStore:
    """The investigators' store: Neo4j for the graph, a DuckDB side file for the tables.

    Parameters
    ----------
    uri
        Bolt URI of the server (``neo4j://host:7687``, ``bolt://...``).
    auth
        ``(user, password)``, or ``None`` for a server without authentication.
    database
        The Neo4j database every statement names.
    columnar_path
        The DuckDB side file that keeps every table's rows (created when missing).
    batch_size
        Rows per ``UNWIND`` statement inside a batch's transaction.
    max_retry_time
        Seconds the driver keeps retrying a transaction that failed on a transient
        error or a lost connection before the store gives up with a ``StoreError``
        (the driver's ``max_transaction_retry_time``; default its 30 s).

    Raises
    ------
    StoreError
        The server cannot be reached, the credentials are refused, or the side
        file cannot be opened.
    """

    uri: str
    #: The id the database and the side file share (see the module docstring); ``None``
    #: while neither is claimed yet or when they do not belong together.
    store_id: str | None = None
    #: Why the side file and the database do not belong together (``None`` when they do).
    mismatch: str | None = None

    def __init__(
        self,
        uri: str,
        *,
        auth: tuple[str, str] | None = None,
        database: str = "neo4j",
        columnar_path: str | pathlib.Path = "ringscope-events.duckdb",
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_retry_time: float | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.uri = uri
        self.database = database
        self.batch_size = batch_size
        self.columnar_path = str(columnar_path)
        self._init_side_state()
        self._audit_writer: GroupCommit[dict[str, Any]] = GroupCommit(self._write_audit)
        #: Runs as read, by (id, seq, status, finished_at), see :meth:`_runs_in`.
        self._runs_read: dict[tuple[Any, ...], Run] = {}
        self._runs_read_lock = threading.Lock()
        self._seq_lock = threading.Lock()
        self._last_seq = 0
        try:
            retry: dict[str, Any] = (
                {} if max_retry_time is None else {"max_transaction_retry_time": max_retry_time}
            )
            self._driver = neo4j.GraphDatabase.driver(
                uri,
                auth=auth,
                notifications_disabled_classifications=QUIET_NOTIFICATIONS,
                **retry,
            )
            self._driver.verify_connectivity()
        except (Neo4jError, ServiceUnavailable, SessionExpired, ValueError, OSError) as e:
            raise StoreError(f"cannot connect to Neo4j at {uri}: {e}") from e
        try:
            self._open_columnar()
            self._setup_graph()
            self._pair()
        except BaseException:
            self.close()
            raise

    def _init_side_state(self) -> None:
        """The state of the side file's side (also of stores without a server)."""
        #: Seconds and rows spent per load statement (for benchmarks).
        self.load_stats: dict[str, tuple[float, int]] = {}
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._fingerprint = FingerprintCache()

    @classmethod
    def connect(cls, uri: str, *, settings: Settings) -> Neo4jStore:
        """Open the store at ``uri`` with the credentials, database and side file of
        ``settings``."""
        password = settings.neo4j_password.get_secret_value()
        auth = (settings.neo4j_user, password) if password else None
        if not settings.columnar_path:
            raise ConfigError("RINGSCOPE_COLUMNAR_PATH is empty: the Neo4j store needs a side file")
        return cls(
            uri, auth=auth, database=settings.neo4j_database, columnar_path=settings.columnar_path
        )

    # ------------------------------------------------------------------ plumbing
    def _open_columnar(self) -> None:
        path = self.columnar_path
        if path != ":memory:":
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(path)
            self._con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as e:
            raise StoreError(f"cannot open the columnar file {path}: {e}") from e
        with self._columnar("create tables") as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS loads (seq BIGINT NOT NULL, load_id VARCHAR NOT NULL,"
                " fingerprint VARCHAR NOT NULL, report VARCHAR NOT NULL)"
            )
            con.execute(
                "CREATE TABLE IF NOT EXISTS store_info (key VARCHAR PRIMARY KEY,"
                " store_id VARCHAR NOT NULL)"
            )
            for spec in TABLES.values():
                cols = ", ".join(f"{_q(c.name)} {_SQL_TYPES[c.type]}" for c in spec.columns)
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS main.{_q(spec.name)} ({cols}, _load_id VARCHAR)"
                )

    def _setup_graph(self) -> None:
        """Uniqueness constraints on every id (before any ``MERGE``) and the other
        indexes; the runs' ``started_ns`` where runs recorded before it lack it."""
        for statement in cypher.CONSTRAINTS:
            self._query(statement)
        self._query(cypher.RUN_STARTED_NS)

    # ------------------------------------------------------------------ pairing
    def _pair(self) -> None:
        """Check that the side file and the database belong together (module docstring).

        Sets :attr:`store_id` (they share one), or :attr:`mismatch` (they do not), or
        neither (both hold no marketplace data and the database no id: the first
        :meth:`write_batch` claims them). Two small queries, one per half; a pair from
        before store ids (both holding data, neither an id) is given one.
        """
        side_id, rows = self._side_state()
        graph_id, nodes = self._graph_state()
        self.store_id, self.mismatch = None, None
        if side_id is not None and side_id == graph_id:
            self.store_id = side_id
            return
        side_data = any(rows[name] for name in _GRAPH_TABLES)
        graph_data = any(nodes.values())
        if not side_data and not graph_data and graph_id is None:
            return
        if side_data and graph_data and side_id is None and graph_id is None:
            self._claim()
            return
        self.mismatch = self._mismatch_text(side_id, rows, graph_id, nodes)

    def _side_state(self) -> tuple[str | None, dict[str, int]]:
        """The side file's store id and rows per table."""
        counts = ", ".join(f"(SELECT count(*) FROM main.{_q(name)})" for name in TABLES)
        with self._reading("read the side file's store id") as con:
            (row,) = con.execute(
                f"SELECT (SELECT max(store_id) FROM store_info), {counts}"
            ).fetchall()
        return row[0], {name: int(n) for name, n in zip(TABLES, row[1:], strict=True)}

    def _graph_state(self) -> tuple[str | None, dict[str, int]]:
        """The database's store id and nodes per label of the marketplace."""
        records = self._query(cypher.STORE_STATE, key=cypher.STORE_INFO_KEY)
        if not records:
            raise StoreError(f"Neo4j at {self.uri} answered nothing to the store id query")
        counts = [int(n) for n in records[0]["counts"]]
        return records[0]["store_id"], dict(zip(NODE_LABELS, counts, strict=True))

    def _record_side_id(self, store_id: str | None) -> None:
        """Make ``store_id`` the side file's store id (``None``: no id)."""
        with self._columnar("record the store id") as con:
            con.execute("DELETE FROM store_info")
            if store_id is not None:
                con.execute(
                    "INSERT INTO store_info VALUES ($key, $id)",
                    {"key": cypher.STORE_INFO_KEY, "id": store_id},
                )

    def _claim(self) -> None:
        """Give the side file, then the database, a new store id.

        The database keeps an id another store gave it first (two stores claiming one
        database at once): this store is then mismatched. A failure between the two
        writes leaves a side file id beside a database without one: two empty halves
        are claimed again on the next write; two loaded ones (a pair from before store
        ids) are then mismatched (the refusal gives the ways out).
        """
        new = uuid.uuid4().hex

        def work(tx: neo4j.ManagedTransaction) -> str:
            tx.run(cypher.LOCK_STORE, key=cypher.STORE_INFO_KEY).consume()
            rec = tx.run(cypher.CLAIM_STORE, key=cypher.STORE_INFO_KEY, store_id=new)
            return str(rec.single(strict=True)["store_id"])

        self._record_side_id(new)
        held: str = self._write("record the store id", work)
        if held == new:
            self.store_id, self.mismatch = new, None
        else:
            self._pair()

    def _check_paired(self, what: str, *, claim: bool = False) -> None:
        """Refuse ``what`` on a mismatched store; with ``claim`` (a write), claim an
        unclaimed one first; without it, look again whether another store claimed it.

        Raises
        ------
        ConfigError
            The side file and the database do not belong together.
        """
        with self._lock:
            if self.store_id is None and self.mismatch is None:
                if claim:
                    self._claim()
                else:
                    self._pair()
            if self.mismatch is not None:
                raise ConfigError(f"{what}: {self.mismatch}")

    def _mismatch_text(
        self,
        side_id: str | None,
        rows: dict[str, int],
        graph_id: str | None,
        nodes: dict[str, int],
    ) -> str:
        """What each half holds and the ways out."""

        def named(store_id: str | None) -> str:
            return f"store id {store_id}" if store_id else "no store id"

        held = ", ".join(f"{n:,} {name} rows" for name, n in rows.items() if n) or "no rows"
        graph = ", ".join(f"{n:,} {label} nodes" for label, n in nodes.items() if n) or (
            f"no {', '.join(NODE_LABELS[:-1])} or {NODE_LABELS[-1]} nodes"
        )
        path = self.columnar_path
        if str(path) != ":memory:":
            path = str(pathlib.Path(path).resolve())
        if not any(nodes.values()) and graph_id is None:
            afresh = (
                f"As this database holds no data, you may also remove the side file {path} "
                "alone (nothing else) and load again."
            )
        else:
            afresh = (
                "Only to start over from nothing: wipe the store (Neo4jStore.wipe()), which "
                "deletes the marketplace graph, runs, findings and decisions in the database "
                "and every row of the side file (the audit log is kept), then load the "
                "exports again."
            )
        return (
            f"the side file {path} and Neo4j database {self.database!r} at {self.uri} do not "
            f"belong together: the side file holds {held} ({named(side_id)}); the database "
            f"holds {graph} ({named(graph_id)}). Loads and detection are refused so that the "
            "two do not diverge; nothing was changed. First, point RINGSCOPE_COLUMNAR_PATH "
            f"at the side file this database was loaded with. {afresh}"
        )

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError(f"store {self.uri} is closed")
        return self._con

    @contextlib.contextmanager
    def _columnar(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB transaction: committed at the end, rolled back on any error."""
        with self._lock:
            con = self._connection()
            try:
                con.execute("BEGIN TRANSACTION")
            except duckdb.Error as e:
                raise StoreError(f"{what}: {e}") from e
            try:
                yield con
                con.execute("COMMIT")
            except BaseException as e:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                if isinstance(e, duckdb.Error):
                    raise StoreError(f"{what}: {e}") from e
                raise

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            con = self._connection()
            try:
                yield con
            except duckdb.Error as e:
                raise StoreError(f"{what}: {e}") from e

    @contextlib.contextmanager
    def _neo4j(self, what: str) -> Iterator[None]:
        """Translate driver errors into ``StoreError``."""
        try:
            yield
        except (ServiceUnavailable, SessionExpired) as e:
            raise StoreError(f"{what}: Neo4j at {self.uri} is unreachable: {e}") from e
        except Neo4jError as e:
            raise StoreError(f"{what}: {e}") from e

    def _query(self, statement: str, **params: Any) -> list[neo4j.Record]:
        """One statement in its own transaction (``execute_query``)."""
        with self._neo4j("query"):
            records, _, _ = self._driver.execute_query(statement, params, database_=self.database)
        return records

    def _write(self, what: str, work: Callable[[neo4j.ManagedTransaction], Any]) -> Any:
        """One unit of work in one write transaction (retried on transient errors)."""
        with self._neo4j(what), self._driver.session(database=self.database) as session:
            return session.execute_write(work)

    def _read(self, what: str, work: Callable[[neo4j.ManagedTransaction], Any]) -> Any:
        with self._neo4j(what), self._driver.session(database=self.database) as session:
            return session.execute_read(work)

    def close(self) -> None:
        """Close the driver and the side file."""
        with self._lock:
            if self._con is not None:
                con, self._con = self._con, None
                with contextlib.suppress(duckdb.Error):
                    con.close()
            driver = getattr(self, "_driver", None)
            if driver is not None:
                driver.close()

    def __enter__(self) -> Neo4jStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Neo4jStore({self.uri!r}, database={self.database!r})"

    def wipe(self, *, erase_audit_log: bool = False) -> None:
        """Remove every node and relationship of the database but the audit log, and every
        row of the side file: the marketplace, runs, findings and decisions go, the audit
        log's entries stay (the trail of who decided and saw what is a record to keep;
        ``erase_audit_log=True`` removes it too, e.g. for a test database).

        The store id goes too (the database's StoreInfo node with the rest): the two
        empty halves then belong together whatever they held before, and the next
        :meth:`write_batch` gives them a new id."""
        while True:
            records = self._query(cypher.WIPE_BATCH, limit=DELETE_CHUNK, audit=erase_audit_log)
            if not records or not records[0]["removed"]:
                break
        self._fingerprint.forget()
        with self._columnar("wipe") as con:
            con.execute("DELETE FROM loads")
            con.execute("DELETE FROM store_info")
            for name in TABLES:
                con.execute(f"DELETE FROM main.{_q(name)}")
        with self._lock:
            self.store_id, self.mismatch = None, None
        self._fingerprint.forget()

    # ------------------------------------------------------------------ loading
    def write_batch(self, table: str, frame: pd.DataFrame, load_id: str) -> BatchResult:
        """Write one validated, normalised batch of ``table``, atomically across both stores.

        The side file sorts the rows into new rows, duplicates (key stored with
        identical values; ``NULL`` equal to ``NULL``) and conflicts (key stored
        with other values); a row repeating a key earlier in the batch counts as
        a duplicate or conflict of that row. The graph elements of the new rows
        go to Neo4j in one transaction before the side file commits (see the
        module's failure semantics).

        The first write into a store neither half of which is claimed yet gives both
        a store id (see the module docstring).

        Raises
        ------
        ValueError
            Unknown table, or a required column is missing from ``frame``.
        StoreError
            The batch cannot be converted or written; nothing is written.
        ConfigError
            The side file and the database do not belong together; nothing is written.
        """
        spec = _spec(table)
        missing = [c for c in spec.required if c not in frame.columns]
        if missing:
            raise ValueError(f"frame: table {table!r} needs columns {missing}")
        self._check_paired(f"write {table}", claim=True)
        if len(frame) == 0:
            return BatchResult(inserted=0, duplicates=0)
        with self._columnar(f"write {table}") as con:
            started = time.perf_counter()
            result = self._insert_new(con, spec, frame, load_id)
            self._stat("(side file: sort and insert the batch)", started, len(frame))
            token: str | None = None
            statements: list[tuple[str, list[Any]]] = []
            if result.inserted:
                # engagements go to the graph as per-pair aggregates computed in DuckDB
                new = (
                    pd.DataFrame()
                    if table == "engagements"
                    else con.sql("SELECT * FROM _rs_new").arrow().read_all().to_pandas()
                )
                create = self._creates_allowed(table)
                started = time.perf_counter()
                statements = self._graph_statements(con, spec, new, create=create)
                self._stat("(rows for the graph statements)", started, result.inserted)
            if result.updated:
                # the stored rows as updated, merged into the graph with their new values
                statements += self._graph_statements(
                    con, spec, self._stored_rows(con, spec, "_rs_upd"), create=False
                )
                con.execute("DROP TABLE _rs_upd")
            if statements:
                token = self._write_graph(f"write {table}", statements, load_id, pending=table)
            con.execute("DROP TABLE IF EXISTS _rs_new")
            started = time.perf_counter()
        self._stat("(side file: commit)", started, result.inserted)
        if token is not None:  # both sides committed: this batch is not half-written
            self._query(cypher.CLEAR_PENDING, token=token)
        return result

    def _insert_new(
        self, con: duckdb.DuckDBPyConnection, spec: TableSpec, frame: pd.DataFrame, load_id: str
    ) -> BatchResult:
        """Sort the batch against the stored table and insert its new rows (kept in ``_rs_new``)."""
        present = [c.name for c in spec.columns if c.name in frame.columns]
        n = len(frame)
        try:
            data = pa.Table.from_pandas(frame[present], preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise StoreError(f"write {spec.name}: batch cannot be converted: {e}") from e
        data = data.append_column("_rs_pos", pa.array(np.arange(n, dtype=np.int64)))
        casts = []
        for c in spec.columns:
            sql_type = _SQL_TYPES[c.type]
            if c.name not in present:
                expr = f"CAST(NULL AS {sql_type})"
            elif c.type == "float":
                expr = f"NULLIF(CAST(f.{_q(c.name)} AS {sql_type}), 'NaN'::DOUBLE)"
            else:
                expr = f"CAST(f.{_q(c.name)} AS {sql_type})"
            casts.append(f"{expr} AS {_q(c.name)}")
        keys = spec.key
        others = [c for c in spec.names if c not in keys]
        on = " AND ".join(f"s.{_q(k)} = t.{_q(k)}" for k in keys)
        same = " AND ".join(f"s.{_q(c)} IS NOT DISTINCT FROM t.{_q(c)}" for c in others) or "TRUE"
        duplicate, update = _updates.classify(spec)
        cols = ", ".join(_q(c) for c in spec.names)
        key_cols = ", ".join(_q(k) for k in keys)
        stored = f"t.{_q(keys[0])} IS NOT NULL"
        con.register("_rs_frame", data)
        try:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _rs_batch AS "
                f"WITH s AS (SELECT f._rs_pos, {', '.join(casts)} FROM _rs_frame f) "
                f"SELECT s.*, NOT ({stored}) AS _rs_new, {duplicate} AS _rs_same, "
                f"coalesce({stored} AND {update}, FALSE) AS _rs_upd "
                f"FROM s LEFT JOIN main.{_q(spec.name)} t ON {on}"
            )
        finally:
            con.unregister("_rs_frame")
        # A key repeated inside the batch: the first row stands, later ones compare to it.
        key_on = " AND ".join(f"s.{_q(k)} = f.{_q(k)}" for k in keys)
        con.execute(
            "UPDATE _rs_batch SET _rs_new = FALSE, _rs_same = x.same, _rs_upd = FALSE FROM ("
            f"SELECT s._rs_pos AS pos, {same} AS same FROM _rs_batch s "
            f"JOIN (SELECT {key_cols}, min(_rs_pos) AS _rs_first FROM _rs_batch WHERE _rs_new "
            f"GROUP BY {key_cols} HAVING count(*) > 1) f ON {key_on} "
            "JOIN _rs_batch t ON t._rs_pos = f._rs_first WHERE s._rs_pos <> f._rs_first"
            ") x WHERE _rs_batch._rs_pos = x.pos"
        )
        row = con.execute(
            "SELECT count(*) FILTER (WHERE _rs_new), "
            "count(*) FILTER (WHERE NOT _rs_new AND _rs_same), "
            "count(*) FILTER (WHERE NOT _rs_new AND _rs_upd) FROM _rs_batch"
        ).fetchone()
        inserted, duplicates, updated = (
            (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)
        )
        conflicts = tuple(
            int(r[0])
            for r in con.execute(
                "SELECT _rs_pos FROM _rs_batch WHERE NOT _rs_new AND NOT _rs_same "
                "AND NOT _rs_upd ORDER BY _rs_pos"
            ).fetchall()
        )
        if updated:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE _rs_upd AS SELECT {cols} FROM _rs_batch "
                "WHERE NOT _rs_new AND _rs_upd "
                f"QUALIFY row_number() OVER (PARTITION BY {key_cols} ORDER BY _rs_pos) = 1"
            )
            _updates.apply(con, spec, "_rs_upd", load_id)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _rs_new AS SELECT {cols} FROM _rs_batch WHERE _rs_new"
        )
        if inserted:
            con.execute(
                f"INSERT INTO main.{_q(spec.name)} ({cols}, _load_id) "
                f"SELECT {cols}, $load_id FROM _rs_new",
                {"load_id": load_id},
            )
        con.execute("DROP TABLE _rs_batch")
        return BatchResult(
            inserted=inserted, duplicates=duplicates, conflicts=conflicts, updated=updated
        )

    def _graph_statements(
        self, con: duckdb.DuckDBPyConnection, spec: TableSpec, new: pd.DataFrame, *, create: bool
    ) -> list[tuple[str, list[Any]]]:
        """The Cypher statements (with their rows) that put ``new`` rows into the graph.

        One statement per label (accounts: per combination of role labels) and per
        relationship type, properties named one by one. With ``create``, every element
        the side file proves new is CREATEd: the nodes and relationships a new table
        row alone implies, the products, identifiers and SELLS pairs no earlier stored
        row has (those that one has are left alone), and ENGAGED of pairs whose every
        stored event is in the batch; ENGAGED of other pairs is MERGEd (set to the new
        aggregate). Without ``create``, everything is MERGEd.
        """
        table = spec.name
        rel = cypher.REL_STATEMENTS
        pick = 1 if create else 0
        if table == "engagements":
            rows, only_new = self._engaged_rows(con, "_rs_new", split=create)
            out: list[tuple[str, list[Any]]] = [(cypher.MERGE_ENGAGED, rows)]
            if only_new:
                out.append((rel["ENGAGED"][1], only_new))
            return out
        cols = _columns(new, spec)
        if table == "accounts":
            names = cypher.ACCOUNT_PROPS
            rows = _records(cols, names)
            for row in rows:
                row["id"] = row["account_id"]
            by_labels: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                roles = (row["roles"] or "").split("|")
                labels = tuple(label for r, label in cypher.ROLE_LABELS.items() if r in roles)
                by_labels.setdefault(labels, []).append(row)
            build = cypher.create_accounts if create else cypher.merge_accounts
            return [(build(labels), group) for labels, group in sorted(by_labels.items())]
        if table == "streams":
            names = cypher.STREAM_PROPS
            t0, t1 = _micros(new["started_at"]), _micros(new["ended_at"])
            rows = _records(cols, names)
            for i, row in enumerate(rows):
                row["id"] = row["stream_id"]
                row["_t0"], row["_t1"] = t0[i], t1[i]
            nodes_statement = cypher.CREATE_STREAMS if create else cypher.MERGE_STREAMS
            return [(nodes_statement, rows), (rel["HOSTED"][pick], rows)]
        if table == "affiliations":
            t0 = _micros(new["since"])
            rows = _records(cols, ("creator_id", "seller_id", "commission_rate", "since"))
            for i, row in enumerate(rows):
                row["_t0"] = t0[i]
            return [(rel["AFFILIATE_OF"][pick], rows)]
        if table == "follows":
            t0 = _micros(new["ts"])
            rows = [
                {"follower_id": f, "creator_id": c, "ts": ts, "_t0": t, "_t1": t}
                for f, c, ts, t in zip(
                    cols["follower_id"], cols["creator_id"], cols["ts"], t0, strict=True
                )
            ]
            return [(rel["FOLLOWS"][pick], rows)]
        if table == "orders":
            names = cypher.ORDER_PROPS
            t0 = _micros(new["ts"])
            rows = _records(cols, names)
            for i, row in enumerate(rows):
                row["id"] = row["order_id"]
                row["_t0"] = row["_t1"] = t0[i]
            if create:
                products = [p for (p,) in self._new_values(con, spec, ("product_id",))]
                sells = self._new_values(con, spec, ("seller_id", "product_id"))
            else:
                products = list(dict.fromkeys(r["product_id"] for r in rows))
                sells = list(dict.fromkeys((r["seller_id"], r["product_id"]) for r in rows))
            return [
                (cypher.CREATE_PRODUCTS if create else cypher.MERGE_PRODUCTS, products),
                (cypher.CREATE_ORDERS if create else cypher.MERGE_ORDERS, rows),
                (rel["PLACED"][pick], rows),
                (rel["FOR"][pick], rows),
                (rel["SELLS"][pick], [{"seller_id": a, "product_id": b} for a, b in sells]),
                (rel["ATTRIBUTED_TO"][pick], [r for r in rows if r["creator_id"] is not None]),
                (rel["IN_STREAM"][pick], [r for r in rows if r["stream_id"] is not None]),
            ]
        if table == "identifiers":
            t0, t1 = _micros(new["first_seen"]), _micros(new["last_seen"])
            rows = [
                {
                    "id": f"{k}:{v}",
                    "kind": k,
                    "account_id": a,
                    "first_seen": fs,
                    "last_seen": ls,
                    "_t0": s0,
                    "_t1": s1,
                }
                for a, k, v, fs, ls, s0, s1 in zip(
                    cols["account_id"],
                    cols["kind"],
                    cols["value"],
                    cols["first_seen"],
                    cols["last_seen"],
                    t0,
                    t1,
                    strict=True,
                )
            ]
            nodes: dict[str, list[dict[str, Any]]] = {}
            seen: set[str] = set()
            if create:  # identifiers of earlier rows are in the graph already: skip them
                fresh = {f"{k}:{v}" for k, v in self._new_values(con, spec, ("kind", "value"))}
                seen = {row["id"] for row in rows if row["id"] not in fresh}
            for row, value in zip(rows, cols["value"], strict=True):
                if row["id"] not in seen:
                    seen.add(row["id"])
                    nodes.setdefault(cypher.identifier_statement_key(row["kind"]), []).append(
                        {"id": row["id"], "kind": row["kind"], "value": value}
                    )
            node_statements = cypher.CREATE_IDENTIFIERS if create else cypher.MERGE_IDENTIFIERS
            out = [(node_statements[kind], nodes[kind]) for kind in sorted(nodes)]
            out.append((rel["USES"][pick], rows))
            return out
        return []  # labels: table side only

    @staticmethod
    def _stored_rows(con: duckdb.DuckDBPyConnection, spec: TableSpec, keys_of: str) -> pd.DataFrame:
        """The stored rows of the table whose keys are in relation ``keys_of``."""
        cols = ", ".join(f"t.{_q(c)}" for c in spec.names)
        on = " AND ".join(f"k.{_q(c)} = t.{_q(c)}" for c in spec.key)
        return (
            con.sql(f"SELECT {cols} FROM main.{_q(spec.name)} t SEMI JOIN {keys_of} k ON {on}")
            .arrow()
            .read_all()
            .to_pandas()
        )

    @staticmethod
    def _new_values(
        con: duckdb.DuckDBPyConnection, spec: TableSpec, columns: Sequence[str]
    ) -> list[tuple[Any, ...]]:
        """Distinct values of ``columns`` among the batch's new rows (``_rs_new``, already
        inserted) that no other stored row of the table has, sorted: the nodes (or
        SELLS pairs) this batch is the first to imply."""
        cols = ", ".join(_q(c) for c in columns)
        keys = ", ".join(_q(k) for k in spec.key)
        sql = (
            f"SELECT DISTINCT {cols} FROM _rs_new EXCEPT "
            f"SELECT {cols} FROM main.{_q(spec.name)} t ANTI JOIN _rs_new n USING ({keys}) "
            f"ORDER BY {cols}"
        )
        return [tuple(r) for r in con.execute(sql).fetchall()]

    def _engaged_rows(
        self, con: duckdb.DuckDBPyConnection, pairs: str, *, split: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """ENGAGED of the (account, stream) pairs in relation ``pairs``, from every stored event.

        With ``split`` (``pairs`` being the batch's new events, already inserted), the
        pairs all of whose stored events are in the batch come second: no earlier row
        made their relationship, so it can be created without a check. Otherwise every
        pair comes first (to be merged) and the second list is empty.
        """
        sql = _ENGAGED_SQL.format(pairs=pairs)
        if split:
            sql = (
                f"WITH b AS (SELECT account_id, stream_id, count(*) AS batch_n FROM {pairs} "
                "GROUP BY account_id, stream_id) "
                f"SELECT g.*, g.n = b.batch_n AS only_batch FROM ({sql}) g "
                "JOIN b USING (account_id, stream_id)"
            )
        agg = con.sql(sql).arrow().read_all().to_pandas()
        first, last = _iso(agg["first_ts"]), _iso(agg["last_ts"])
        t0, t1 = _micros(agg["first_ts"]), _micros(agg["last_ts"])
        counts = {k: agg[k].astype(np.int64).tolist() for k in ("views", "likes", "comments")}
        counts |= {k: agg[k].astype(np.int64).tolist() for k in ("shares", "gifts")}
        amount = agg["gift_amount"].astype(float).tolist()
        accounts, streams = agg["account_id"].tolist(), agg["stream_id"].tolist()
        rows = [
            {
                "account_id": accounts[i],
                "stream_id": streams[i],
                "views": counts["views"][i],
                "likes": counts["likes"][i],
                "comments": counts["comments"][i],
                "shares": counts["shares"][i],
                "gifts": counts["gifts"][i],
                "gift_amount": amount[i],
                "first_ts": first[i],
                "last_ts": last[i],
                "_t0": t0[i],
                "_t1": t1[i],
            }
            for i in range(len(agg))
        ]
        if not split:
            return rows, []
        only = agg["only_batch"].to_numpy(dtype=bool)
        return (
            [r for r, o in zip(rows, only, strict=True) if not o],
            [r for r, o in zip(rows, only, strict=True) if o],
        )

    def _write_graph(
        self,
        what: str,
        statements: list[tuple[str, list[Any]]],
        load_id: str,
        *,
        pending: str | None = None,
    ) -> str | None:
        """Run ``statements`` in one Neo4j write transaction, ``batch_size`` rows at a time.

        With ``pending`` (a table name), the transaction also records a pending-batch
        marker for that table, which :meth:`write_batch` removes once the side file has
        committed (see :meth:`_creates_allowed`); the marker's token is returned (``None``
        when nothing was written or without ``pending``).
        """
        if not any(rows for _, rows in statements):
            return None
        stats = self.load_stats
        token = uuid.uuid4().hex
        spent_in_statements = [0.0]

        def work(tx: neo4j.ManagedTransaction) -> None:
            spent_in_statements[0] = 0.0
            if pending is not None:
                tx.run(cypher.MARK_PENDING, table=pending, load_id=load_id, token=token).consume()
            for statement, rows in statements:
                started = time.perf_counter()
                for chunk in _chunks(rows, self.batch_size):
                    tx.run(statement, rows=chunk, load_id=load_id).consume()
                if rows:
                    spent_in_statements[0] += time.perf_counter() - started
                    self._stat(" ".join(statement.split()), started, len(rows))

        try:
            started = time.perf_counter()
            self._write(what, work)
            total = time.perf_counter() - started
            spent, count = stats.get("(neo4j: begin and commit)", (0.0, 0))
            stats["(neo4j: begin and commit)"] = (spent + total - spent_in_statements[0], count + 1)
        except (TypeError, ValueError) as e:  # a value the driver cannot send
            raise StoreError(f"{what}: {e}") from e
        return token if pending is not None else None

    def _stat(self, key: str, started: float, rows: int) -> None:
        """Add the time since ``started`` and ``rows`` to :attr:`load_stats` under ``key``."""
        spent, count = self.load_stats.get(key, (0.0, 0))
        self.load_stats[key] = (spent + time.perf_counter() - started, count + rows)

    def _creates_allowed(self, table: str) -> bool:
        """Whether the new rows' relationships can be CREATEd for ``table``.

        A batch's graph commits in Neo4j before its rows commit in the side file; a
        marker node recorded in the graph transaction and removed after the side file
        commits tells whether an earlier batch of the table may have reached Neo4j
        alone (process killed between the two commits). While such a marker is left,
        batches of the table MERGE every relationship (writing the lost batch again
        then repairs it exactly); :meth:`rollback_load` of the marker's load removes it.
        """
        records = self._query(cypher.PENDING_TABLES, table=table)
        return not records or not records[0]["n"]

    def rollback_load(self, load_id: str, table: str) -> int:
        """Remove the rows of ``table`` that load ``load_id`` inserted, and the graph
        elements only they created. Returns the number of rows removed.

        Neo4j is cleaned first, in transactions of :data:`DELETE_CHUNK` elements,
        then the side file commits; a rollback that fails half-way can be run again.

        Raises
        ------
        ConfigError
            The side file and the database do not belong together.
        """
        spec = _spec(table)
        self._check_paired(f"roll back load {load_id} of {table}")
        with self._columnar(f"roll back load {load_id} of {table}") as con:
            pairs = None
            if table == "engagements":
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE _rs_pairs AS SELECT DISTINCT account_id, "
                    "stream_id FROM main.engagements WHERE _load_id = $load_id",
                    {"load_id": load_id},
                )
                pairs = "_rs_pairs"
            row = con.execute(
                f"DELETE FROM main.{_q(spec.name)} WHERE _load_id = $load_id", {"load_id": load_id}
            ).fetchone()
            removed = int(row[0]) if row else 0
            if pairs is not None:
                kept, _ = self._engaged_rows(con, pairs)
                gone = (
                    con.sql(
                        "SELECT account_id, stream_id FROM _rs_pairs p WHERE NOT EXISTS ("
                        "SELECT 1 FROM main.engagements e WHERE e.account_id = p.account_id "
                        "AND e.stream_id = p.stream_id)"
                    )
                    .arrow()
                    .read_all()
                    .to_pylist()
                )
                con.execute("DROP TABLE _rs_pairs")
                self._write_graph(
                    f"roll back engagements of {load_id}",
                    [(cypher.DELETE_ENGAGED, gone), (cypher.MERGE_ENGAGED, kept)],
                    load_id,
                )
            for statement in self._rollback_statements(table):
                self._delete_all(statement, load_id)
            restored = _updates.restore(con, spec, load_id)
            if restored is not None:
                # the rows the load updated, with their values from before it
                self._write_graph(
                    f"restore the {table} rows {load_id} updated",
                    self._graph_statements(
                        con, spec, self._stored_rows(con, spec, restored), create=False
                    ),
                    load_id,
                )
                con.execute(f"DROP TABLE {restored}")
            self._query(cypher.CLEAR_PENDING_LOAD, table=table, load_id=load_id)
        return removed

    @staticmethod
    def _rollback_statements(table: str) -> list[str]:
        out: list[str] = []
        if table in cypher.ROLLBACK_NODES:
            out.append(cypher.ROLLBACK_NODES[table])
        if table in cypher.ROLLBACK_RELS:
            out.append(cypher.ROLLBACK_RELS[table])
        if table == "orders":
            out.append(cypher.ROLLBACK_SELLS)
        if table in cypher.ROLLBACK_ORPHANS:
            out.append(cypher.ROLLBACK_ORPHANS[table])
        return out

    def _delete_all(self, statement: str, load_id: str) -> None:
        while True:
            records = self._query(statement, load_id=load_id, limit=DELETE_CHUNK)
            if not records or not records[0]["removed"]:
                return

    def known_ids(self, entity: Entity, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that name a stored account (``entity="account"``) or stream."""
        if entity not in _ENTITY_TABLES:
            raise ValueError(f"entity: {entity!r} is not one of {sorted(_ENTITY_TABLES)}")
        table, column = _ENTITY_TABLES[entity]
        self._check_paired(f"known {entity} ids")
        wanted = pa.table({"id": pa.array(list(dict.fromkeys(ids)), pa.string())})
        if wanted.num_rows == 0:
            return set()
        with self._reading(f"known {entity} ids") as con:
            con.register("_rs_ids", wanted)
            try:
                rows = con.execute(
                    f"SELECT i.id FROM _rs_ids i SEMI JOIN main.{table} t ON t.{column} = i.id"
                ).fetchall()
            finally:
                con.unregister("_rs_ids")
        return {r[0] for r in rows}

    def record_load(self, report: LoadReport) -> None:
        """Keep ``report``; recording the same ``load_id`` again replaces it in place.

        The load is complete: the copies of the rows it updated, kept for
        :meth:`rollback_load`, are dropped."""
        body = canonical_json(report.to_dict())
        self._fingerprint.forget()
        with self._columnar(f"record load {report.load_id}") as con:
            _updates.forget(con, report.load_id)
            exists = con.execute(
                "SELECT count(*) FROM loads WHERE load_id = $id", {"id": report.load_id}
            ).fetchone()
            if exists and exists[0]:
                con.execute(
                    "UPDATE loads SET fingerprint = $fp, report = $body WHERE load_id = $id",
                    {"fp": report.fingerprint, "body": body, "id": report.load_id},
                )
            else:
                con.execute(
                    "INSERT INTO loads SELECT coalesce(max(seq), 0) + 1, $id, $fp, $body "
                    "FROM loads",
                    {"id": report.load_id, "fp": report.fingerprint, "body": body},
                )
        self._fingerprint.forget()

    def loads(self) -> list[LoadReport]:
        """Every recorded load, oldest first."""
        with self._reading("read loads") as con:
            rows = con.execute("SELECT report FROM loads ORDER BY seq").fetchall()
        return [load_report_from_dict(json.loads(r[0])) for r in rows]

    def fingerprint(self) -> str:
        """SHA-256 over the recorded loads' fingerprints, oldest first.

        Kept in memory once read (the app asks on every page): only this process
        writes the side file (DuckDB locks it), and :meth:`record_load` and
        :meth:`wipe`, which change the loads, forget it."""

        def read() -> str:
            with self._reading("fingerprint") as con:
                rows = con.execute("SELECT fingerprint FROM loads ORDER BY seq").fetchall()
            return combine_fingerprints(r[0] for r in rows)

        return self._fingerprint.get(read)

    # ------------------------------------------------------------------ reading
    def counts(self) -> dict[str, int]:
        """Rows per contract table (every table, 0 when empty)."""
        sql = " UNION ALL ".join(
            f"SELECT '{name}', count(*) FROM main.{_q(name)}" for name in TABLES
        )
        with self._reading("counts") as con:
            rows = con.execute(sql).fetchall()
        return {str(name): int(n) for name, n in rows}

    def graph_counts(self) -> dict[str, int]:
        """Nodes per label and relationships per type of the graph model (all keys present)."""

        def work(tx: neo4j.ManagedTransaction) -> dict[str, int]:
            out: dict[str, int] = {}
            for label in NODE_LABELS:
                out[label] = int(tx.run(cypher.count_label(label)).single(strict=True)["n"])
            for rel in REL_TYPES:
                out[rel] = int(tx.run(cypher.count_rel(rel)).single(strict=True)["n"])
            return out

        result: dict[str, int] = self._read("graph counts", work)
        return result

    def table(self, name: str, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A whole contract table from the side file, normalised and sorted by its key.

        Strings in pandas' ``str`` dtype (missing: NaN), timestamps
        ``datetime64[us, UTC]`` (missing: NaT), numbers ``float64`` (missing: NaN).

        Raises
        ------
        ConfigError
            The side file and the database do not belong together: its tables are not
            the graph's.
        """
        spec = _spec(name)
        wanted = list(spec.names) if columns is None else list(columns)
        unknown = [c for c in wanted if c not in spec.names]
        if unknown:
            raise ValueError(f"columns: {unknown} are not columns of {name!r}")
        self._check_paired(f"read {name}")
        cols = ", ".join(_q(c) for c in wanted) or "*"
        sql = f"SELECT {cols} FROM main.{_q(name)} ORDER BY {', '.join(_q(k) for k in spec.key)}"
        with self._reading(f"read {name}") as con:
            data = con.sql(sql).arrow().read_all()
        return data.to_pandas().reset_index(drop=True)

    # ------------------------------------------------------------------ graph
    @staticmethod
    def _node_props(label: str, stored: dict[str, Any]) -> dict[str, Any]:
        return props({k: v for k, v in stored.items() if k != "id" and not k.startswith("_")})

    @staticmethod
    def _window(value: datetime | None) -> int | None:
        if value is None:
            return None
        return (value - _EPOCH) // timedelta(microseconds=1)

    def neighbourhood(
        self,
        seeds: Sequence[NodeRef],
        *,
        hops: int = 1,
        rel_types: Sequence[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 200,
    ) -> Subgraph:
        """Nodes within ``hops`` of the seeds, per :meth:`GraphStore.neighbourhood`.

        One read transaction; each level is one ``MATCH`` from the frontier (a
        parameter of element ids) over the allowed relationships in the window.

        Raises
        ------
        NotFoundError
            When no seed exists.
        ValueError
            Negative ``hops``, ``limit`` < 1, an unknown label or relationship type.
        """
        if hops < 0:
            raise ValueError(f"hops: must be >= 0, got {hops}")
        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        wanted = check_node_refs(seeds, "seeds")
        types = list(check_rel_types(rel_types))
        start, end = check_window(start, end)
        window: dict[str, Any] = {"start": self._window(start), "end": self._window(end)}

        def work(tx: neo4j.ManagedTransaction) -> Subgraph:
            eids: dict[NodeRef, str] = {}
            refs: dict[str, NodeRef] = {}
            node_props: dict[NodeRef, dict[str, Any]] = {}
            for label in sorted({r.label for r in wanted}):
                ids = [r.id for r in wanted if r.label == label]
                for rec in tx.run(cypher.seeds_query(label), ids=ids):
                    ref = NodeRef(label, rec["id"])
                    eids[ref], refs[rec["eid"]] = rec["eid"], ref
                    node_props[ref] = self._node_props(label, rec["props"])
            existing = [r for r in wanted if r in eids]
            if not existing:
                shown = ", ".join(str(r) for r in wanted[:5])
                raise NotFoundError(f"no such node: {shown}")
            seen = {eids[r] for r in existing}

            def expand(frontier: Sequence[NodeRef], want: int) -> list[NodeRef]:
                found: list[NodeRef] = []
                result = tx.run(
                    cypher.EXPAND,
                    frontier=[eids[r] for r in frontier],
                    seen=list(seen),
                    types=types,
                    node_labels=list(NODE_LABELS),
                    want=max(want, 0),
                    **window,
                )
                for rec in result:
                    if rec["label"] is None:
                        continue
                    ref = NodeRef(rec["label"], rec["id"])
                    eids[ref], refs[rec["eid"]] = rec["eid"], ref
                    node_props[ref] = self._node_props(ref.label, rec["props"])
                    found.append(ref)
                found.sort(key=ref_key)
                seen.update(eids[r] for r in found[: max(want, 0)])
                return found

            held, truncated = bounded_bfs(existing, hops=hops, limit=limit, expand=expand)
            edges = [
                Edge(refs[rec["a"]], refs[rec["b"]], rec["type"], self._rel_props(rec["props"]))
                for rec in tx.run(
                    cypher.EDGES_BETWEEN,
                    **cypher.held_params([eids[r] for r in held]),
                    types=types,
                    **window,
                )
            ]
            nodes = tuple(Node(r, node_props.get(r, {})) for r in sorted(held, key=ref_key))
            return Subgraph(
                nodes=nodes, edges=tuple(sorted(edges, key=edge_key)), truncated=truncated
            )

        result: Subgraph = self._read("neighbourhood", work)
        return result

    @staticmethod
    def _rel_props(stored: dict[str, Any]) -> dict[str, Any]:
        return props({k: v for k, v in stored.items() if not k.startswith("_")})

    def shortest_path(
        self,
        a: NodeRef,
        b: NodeRef,
        *,
        rel_types: Sequence[str] | None = None,
        max_hops: int = 6,
    ) -> Path | None:
        """A shortest undirected path from ``a`` to ``b``, per :meth:`GraphStore.shortest_path`.

        ``allShortestPaths`` bounded by ``max_hops`` gives every shortest path (at
        most :data:`MAX_PATHS`); the one whose (label, id) sequence is smallest is
        kept, and between two consecutive nodes the relationship smallest by
        (type, source, target).

        Raises
        ------
        NotFoundError
            When ``a`` or ``b`` does not exist.
        """
        if max_hops < 0:
            raise ValueError(f"max_hops: must be >= 0, got {max_hops}")
        check_node_refs([a, b], "a, b")
        types = check_rel_types(rel_types)

        def work(tx: neo4j.ManagedTransaction) -> Path | None:
            ends: dict[NodeRef, dict[str, Any]] = {}
            for ref in (a, b):
                rec = tx.run(cypher.node_query(ref.label), id=ref.id).single()
                if rec is None:
                    raise NotFoundError(f"no such node: {ref}")
                ends[ref] = self._node_props(ref.label, rec["props"])
            if a == b:
                return Path(nodes=(Node(a, ends[a]),), edges=())
            if max_hops == 0:
                return None
            query = cypher.shortest_paths_query(a.label, b.label, types, max_hops)
            best: tuple[list[tuple[str, str]], list[Any]] | None = None
            for rec in tx.run(
                query, a=a.id, b=b.id, max_paths=MAX_PATHS, node_labels=list(NODE_LABELS)
            ):
                seq = [(n[0], n[1]) for n in rec["nodes"]]
                if best is None or seq < best[0]:
                    best = (seq, rec["nodes"])
            if best is None:
                return None
            _, nodes = best
            path_nodes = [Node(NodeRef(n[0], n[1]), self._node_props(n[0], n[2])) for n in nodes]
            edges = self._edges_among(tx, [n.ref for n in path_nodes], types)
            path_edges: list[Edge] = []
            for u, v in itertools.pairwise(path_nodes):
                edge = pick_edge(edges, u.ref, v.ref)
                if edge is None:
                    raise StoreError(f"shortest path: no relationship between {u.ref} and {v.ref}")
                path_edges.append(edge)
            return Path(nodes=tuple(path_nodes), edges=tuple(path_edges))

        result: Path | None = self._read("shortest path", work)
        return result

    def _edges_among(
        self, tx: neo4j.ManagedTransaction, refs: Sequence[NodeRef], types: Sequence[str]
    ) -> list[Edge]:
        eids: dict[str, NodeRef] = {}
        for label in sorted({r.label for r in refs}):
            ids = [r.id for r in refs if r.label == label]
            for rec in tx.run(cypher.seeds_query(label), ids=ids):
                eids[rec["eid"]] = NodeRef(label, rec["id"])
        return [
            Edge(eids[rec["a"]], eids[rec["b"]], rec["type"], self._rel_props(rec["props"]))
            for rec in tx.run(
                cypher.EDGES_BETWEEN,
                **cypher.held_params(list(eids)),
                types=list(types),
                start=None,
                end=None,
            )
        ]

    # ------------------------------------------------------------------ runs and findings
    @staticmethod
    def _run_props(run: Run) -> dict[str, Any]:
        return {
            "id": run.id,
            "started_at": run.started_at.isoformat(),
            # the start as one number, in an index: see cypher.RUN_KEYS_NEWEST
            "started_ns": (run.started_at - _EPOCH) // timedelta(microseconds=1) * 1000,
            "status": run.status,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "policy": canonical_json(run.policy),
            "data_fingerprint": run.data_fingerprint,
            "summary": canonical_json(run.summary),
            "seq": time.time_ns(),
        }

    @staticmethod
    def _run_from(p: dict[str, Any]) -> Run:
        finished = p.get("finished_at")
        return Run(
            id=p["id"],
            started_at=datetime.fromisoformat(p["started_at"]),
            status=p["status"],
            finished_at=datetime.fromisoformat(finished) if finished else None,
            policy=json.loads(p.get("policy") or "{}"),
            data_fingerprint=p.get("data_fingerprint", ""),
            summary=json.loads(p.get("summary") or "{}"),
        )

    def begin_run(self, run: Run) -> None:
        """Record ``run`` with status ``running``.

        Raises
        ------
        StoreError
            When a run with that id is already recorded.
        """
        run = run_with(run, status="running")

        def work(tx: neo4j.ManagedTransaction) -> None:
            if tx.run(cypher.RUN_EXISTS, id=run.id).single() is not None:
                raise StoreError(f"run {run.id} is already recorded")
            tx.run(cypher.MERGE_RUN, id=run.id, props=self._run_props(run)).consume()

        self._write(f"begin run {run.id}", work)

    def complete_run(
        self, run_id: str, findings: list[Finding], summary: dict[str, object]
    ) -> None:
        """Write the findings of a run as ``Cluster`` nodes and mark it succeeded, in
        one transaction. Completing a run again replaces its findings and summary.

        Raises
        ------
        NotFoundError
            Unknown run.
        ValueError
            Two findings with the same id.
        """
        ids = [f.id for f in findings]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"findings: repeated finding ids {dup[:5]}")
        rows = [
            {
                "id": f.id,
                "kind": f.kind,
                "score": f.score,
                "rank": i,
                "finding": canonical_json(f.to_dict()),
                "members": [
                    {"account_id": m.account_id, "role": m.role, "score": float(m.score)}
                    for m in f.members
                ],
            }
            for i, f in enumerate(rank(findings))
        ]

        def work(tx: neo4j.ManagedTransaction) -> None:
            if tx.run(cypher.RUN_EXISTS, id=run_id).single() is None:
                raise NotFoundError(f"no such run: {run_id}")
            tx.run(cypher.DELETE_RUN_CLUSTERS, run_id=run_id).consume()
            for chunk in _chunks(rows, 1000):
                tx.run(cypher.CREATE_CLUSTERS, run_id=run_id, rows=chunk).consume()
            tx.run(cypher.LINK_DECISIONS_TO_CLUSTERS, run_id=run_id).consume()
            props_ = {
                "status": "succeeded",
                "finished_at": datetime.now(UTC).isoformat(),
                "summary": canonical_json(summary),
            }
            tx.run(cypher.MERGE_RUN, id=run_id, props=props_).consume()

        self._write(f"complete run {run_id}", work)

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark a run failed; ``error`` is kept as ``summary["error"]``.

        Raises
        ------
        NotFoundError
            Unknown run.
        """

        def work(tx: neo4j.ManagedTransaction) -> None:
            rec = tx.run(cypher.GET_RUN, id=run_id).single()
            if rec is None:
                raise NotFoundError(f"no such run: {run_id}")
            summary = json.loads(rec["props"].get("summary") or "{}")
            summary["error"] = error
            props_ = {
                "status": "failed",
                "finished_at": datetime.now(UTC).isoformat(),
                "summary": canonical_json(summary),
            }
            tx.run(cypher.MERGE_RUN, id=run_id, props=props_).consume()

        self._write(f"fail run {run_id}", work)

    def runs(self, *, status: str | None = None, limit: int | None = None) -> list[Run]:
        """Every run (only those of ``status``; the ``limit`` newest), newest first (by
        ``started_at``, then the later recorded).

        One read transaction: the runs' order keys, then the chosen runs whole (their
        policies and summaries grow with every run kept)."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit: must be >= 0, got {limit}")
        runs: list[Run] = self._read("read runs", lambda tx: self._runs_in(tx, status, limit))
        return runs

    def _runs_in(
        self, tx: neo4j.ManagedTransaction, status: str | None, limit: int | None
    ) -> list[Run]:
        """The runs of ``status`` (every run when ``None``; the ``limit`` newest), newest
        first, in ``tx``.

        The order keys of the runs are read (of the ``limit`` newest only, ordered by
        the server too, when ``limit`` is given), then the chosen runs whole, except those
        read before: a run's properties change only together with its status and
        ``finished_at`` (see ``cypher.RUN_KEYS``), so the runs read are kept by (id,
        seq, status, finished_at) and read again when one of those changed. The runs
        returned may be the kept objects (``Run`` is frozen; its policy and summary
        dicts are not to be changed)."""
        keys = sorted(
            (
                (
                    datetime.fromisoformat(r["started_at"]),
                    r["seq"] or 0,
                    r["id"],
                    (r["id"], r["seq"], r["status"], r["finished_at"]),
                )
                for r in (
                    tx.run(cypher.RUN_KEYS, status=status)
                    if limit is None
                    else tx.run(cypher.RUN_KEYS_NEWEST, status=status, limit=limit)
                )
            ),
            reverse=True,
        )[:limit]
        with self._runs_read_lock:
            found = {k[2]: self._runs_read[k[3]] for k in keys if k[3] in self._runs_read}
        missing = {k[2]: k[3] for k in keys if k[2] not in found}
        if missing:
            records = tx.run(cypher.RUNS_BY_ID, ids=list(missing))
            read = {r["props"]["id"]: r["props"] for r in records}
            with self._runs_read_lock:
                for run_id, props_ in read.items():
                    found[run_id] = run = self._run_from(props_)
                    version = missing[run_id]
                    # kept only when read as its keys said (not changed in between)
                    if version == tuple(props_.get(k) for k in _RUN_VERSION):
                        self._runs_read[version] = run
                while len(self._runs_read) > RUNS_KEPT:
                    del self._runs_read[next(iter(self._runs_read))]
        return [found[k[2]] for k in keys if k[2] in found]

    def get_run(self, run_id: str) -> Run:
        """The run ``run_id``; ``NotFoundError`` when unknown."""
        records = self._query(cypher.GET_RUN, id=run_id)
        if not records:
            raise NotFoundError(f"no such run: {run_id}")
        return self._run_from(records[0]["props"])

    def latest_run(self) -> Run | None:
        """The newest succeeded run, or ``None`` (``runs(status="succeeded", limit=1)``)."""
        found = self.runs(status="succeeded", limit=1)
        return found[0] if found else None

    def queue_state(
        self, cases_of: Callable[[Run], Iterable[str]] | None = None
    ) -> tuple[Run | None, dict[str, str]]:
        """:meth:`latest_run` and :meth:`latest_decisions` (of the cases
        ``cases_of(run)`` names, when given) in one read transaction (what the app's
        queue reads on every request; a transaction costs the server more than these
        statements). ``cases_of`` may be called again when the transaction is retried.
        Not part of ``GraphStore``."""

        def work(tx: neo4j.ManagedTransaction) -> tuple[Run | None, dict[str, str]]:
            latest = self._runs_in(tx, "succeeded", 1)
            run = latest[0] if latest else None
            if run is not None and cases_of is not None:
                cases = sorted(set(cases_of(run)))
                records = tx.run(cypher.LATEST_DECISIONS_OF, cases=cases)
            else:
                records = tx.run(cypher.LATEST_DECISIONS)
            return run, {r["finding_id"]: r["decision"] for r in records}

        state: tuple[Run | None, dict[str, str]] = self._read("queue state", work)
        return state

    def case_state(
        self, case_of: Callable[[list[Run]], str], *, limit: int | None = None
    ) -> tuple[list[Run], list[Decision]]:
        """The succeeded runs (the ``limit`` newest, newest first) and the decisions of
        the case that ``case_of(runs)`` names (as :meth:`decisions`), in one transaction
        (what the app reads on every view of a finding: one transaction instead of two).
        ``case_of`` may be called again when the transaction is retried; what it raises
        is raised here. Not part of ``GraphStore``.

        The transaction is routed as a write (it writes nothing), as :meth:`decisions`'
        ``execute_query`` is: on a cluster the leader answers, which has every decision
        already recorded (a follower may lag; on one server this costs nothing more)."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit: must be >= 0, got {limit}")

        def work(tx: neo4j.ManagedTransaction) -> tuple[list[Run], list[Decision]]:
            runs = self._runs_in(tx, "succeeded", limit)
            case = case_of(runs)
            return runs, self._decisions_of(list(tx.run(cypher.CASE_DECISIONS, finding_id=case)))

        state: tuple[list[Run], list[Decision]] = self._write("read runs and decisions", work)
        return state

    def findings(self, run_id: str | None = None) -> list[Finding]:
        """The findings of ``run_id`` (default: the latest succeeded run), ranked.

        Raises
        ------
        NotFoundError
            Unknown ``run_id``.
        """
        if run_id is None:
            latest = self.latest_run()
            if latest is None:
                return []
            run_id = latest.id
        else:
            self.get_run(run_id)
        records = self._query(cypher.FINDINGS, run_id=run_id)
        return rank([Finding.from_dict(json.loads(r["finding"])) for r in records])

    def record_decision(self, decision: Decision) -> None:
        """Keep an investigator's decision as a ``Decision`` node linked to the finding's
        clusters (every decision is kept, none replaced)."""
        d = decision_with_utc(decision)

        def work(tx: neo4j.ManagedTransaction) -> None:
            tx.run(
                cypher.CREATE_DECISION,
                finding_id=d.finding_id,
                decision=d.decision,
                decided_by=d.decided_by,
                decided_at=d.decided_at.isoformat(),
                note=d.note,
                seq=time.time_ns(),
            ).consume()

        self._write(f"record decision on {d.finding_id}", work)

    def latest_decisions(self, cases: Iterable[str] | None = None) -> dict[str, str]:
        """The latest decision of every case that has one (case id -> decision), as the
        last of :meth:`decisions` per case; only of ``cases`` when given (read through
        the index, not every decision). Not part of ``GraphStore``."""
        if cases is None:
            records = self._query(cypher.LATEST_DECISIONS)
        else:
            records = self._query(cypher.LATEST_DECISIONS_OF, cases=sorted(set(cases)))
        return {r["finding_id"]: r["decision"] for r in records}

    def decisions(self, finding_id: str | None = None) -> list[Decision]:
        """Decisions, oldest first (by ``decided_at``, then the earlier recorded)."""
        if finding_id is None:
            records = self._query(cypher.DECISIONS)
        else:
            records = self._query(cypher.CASE_DECISIONS, finding_id=finding_id)
        return self._decisions_of(records)

    @staticmethod
    def _decisions_of(records: Sequence[neo4j.Record]) -> list[Decision]:
        """Decisions from records of ``props``, oldest first (by ``decided_at``, then the
        earlier recorded)."""
        out = [
            Decision(
                finding_id=p["finding_id"],
                decision=p["decision"],
                decided_by=p["decided_by"],
                decided_at=as_utc(datetime.fromisoformat(p["decided_at"]))
                or datetime.fromisoformat(p["decided_at"]),
                note=p.get("note", ""),
            )
            for p in (r["props"] for r in records)
        ]
        seqs = [r["props"].get("seq", 0) for r in records]
        order = sorted(range(len(out)), key=lambda i: (out[i].decided_at, seqs[i]))
        return [out[i] for i in order]

    # ------------------------------------------------------------------ audit log
    def append_audit(
        self,
        who: str,
        action: str,
        subject: str,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Append one ``AuditEntry`` node to the append-only audit log (see
        ``GraphStore.append_audit``); ``detail`` is kept as canonical JSON.

        Returns once the entry is committed. Entries appended by several threads at
        once are created together, in one transaction (see
        :mod:`ringscope.graphs._groupcommit`)."""
        with self._seq_lock:
            # the clock in ns, but never the same or a lower number twice in this process
            seq = self._last_seq = max(time.time_ns(), self._last_seq + 1)
        self._audit_writer.append(
            {
                "seq": seq,
                "at": datetime.now(UTC).isoformat(),
                "who": who,
                "action": action,
                "subject": subject,
                "detail": canonical_json(detail or {}),
            }
        )

    def _write_audit(self, entries: Sequence[dict[str, Any]]) -> None:
        self._query(cypher.APPEND_AUDIT, entries=list(entries))

    def audit_log(
        self,
        *,
        who: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, object]]:
        """Audit entries, newest first (see ``GraphStore.audit_log``)."""
        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        if offset < 0:
            raise ValueError(f"offset: must be >= 0, got {offset}")
        records = self._query(
            cypher.AUDIT_LOG, who=who, action=action, subject=subject, limit=limit, offset=offset
        )
        return [
            {
                "seq": int(p["seq"]),
                "at": as_utc(datetime.fromisoformat(p["at"])) or datetime.fromisoformat(p["at"]),
                "who": p["who"],
                "action": p["action"],
                "subject": p["subject"],
                "detail": json.loads(p["detail"]),
            }
            for p in (r["props"] for r in records)
        ]

    # ------------------------------------------------------------------ job leases
    def acquire_lease(
        self,
        name: str,
        token: str,
        holder: dict[str, Any],
        ttl_s: float,
        *,
        take_over: Callable[[dict[str, Any]], bool],
    ) -> dict[str, Any] | None:
        """Take lease ``name`` (see ``ringscope.jobs.lock.LeasedStore``): free,
        expired, or ``take_over(its holder)``; else return its holder."""

        def work(tx: neo4j.ManagedTransaction) -> dict[str, Any] | None:
            rec = tx.run(cypher.LEASE_LOCK, name=name).single(strict=True)
            props, now = rec["props"], rec["now"]
            if props.get("token") and props.get("expires_at", 0) > now:
                current: dict[str, Any] = json.loads(props.get("holder") or "{}")
                if not take_over(current):
                    return current
            tx.run(
                cypher.LEASE_TAKE,
                name=name,
                token=token,
                holder=json.dumps(holder, sort_keys=True),
                ttl_ms=int(ttl_s * 1000),
            ).consume()
            return None

        result: dict[str, Any] | None = self._write("acquire the job lease", work)
        return result

    def renew_lease(self, name: str, token: str, ttl_s: float) -> bool:
        records = self._query(cypher.LEASE_RENEW, name=name, token=token, ttl_ms=int(ttl_s * 1000))
        return bool(records and records[0]["held"])

    def release_lease(self, name: str, token: str) -> None:
        self._query(cypher.LEASE_RELEASE, name=name, token=token)
