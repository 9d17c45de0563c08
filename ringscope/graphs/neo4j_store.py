"""The Neo4j store: the marketplace graph in Neo4j, raw tables in a columnar side file.

The graph model of DESIGN.md lives in Neo4j (through the official driver, Bolt):
``Account`` (+ ``Creator``/``Seller``/``Buyer``), ``Stream``, ``Product``,
``Order``, ``Identifier`` (+ ``Device``/``IP``/``Payment``/``Phone``/``Address`` for those
kinds; identifiers of other kinds, such as ``email`` or ``cookie``, are only ``Identifier``),
runs as ``Run`` and ``Cluster`` nodes, decisions as ``Decision`` nodes. Every
Cypher statement is in :mod:`ringscope.graphs.cypher`.

The rows of every contract table, raw engagement events included, stay in a
columnar side file (:class:`SideFile`, ``settings.columnar_path``: the DuckDB table
layer of :mod:`ringscope.graphs.tables`, as in the embedded store): detectors read
their tables from it (:meth:`Neo4jStore.table`), and it decides which rows of a batch
are new, duplicates, conflicts or updates. Neo4j holds what investigators walk: nodes
and relationships, with ENGAGED aggregated per (account, stream), written as the
model of :mod:`ringscope.graphs.graph_model` derives them from the rows.

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
   relationship type, together with a ``_PendingBatch`` marker node; the rows of the
   statements are computed by DuckDB from the batch's new rows inside the open
   transaction (``graph_model.node_rows``, ``rel_rows``), and ENGAGED relationships
   are *set* to the aggregate of every stored event of the pair;
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
batch's ``_load_id`` (nodes, and the relationship types rollbacks look up, marked
``load_id`` in the model), so :meth:`Neo4jStore.rollback_load` removes them too (and
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
import pandas as pd
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from ringscope.contract import TABLES
from ringscope.errors import ConfigError, NotFoundError, StoreError
from ringscope.graphs import cypher
from ringscope.graphs._graphwalk import (
    as_utc,
    bounded_bfs,
    decision_with_utc,
    edge_key,
    pick_edge,
    props,
    ref_key,
    run_with,
)
from ringscope.graphs._groupcommit import GroupCommit
from ringscope.graphs.graph_model import (
    GRAPH_TABLES,
    RelType,
    aggregate_rows,
    node_rows,
    nodes_of,
    pairs_without_rows,
    rel_rows,
    rels_of,
)
from ringscope.graphs.store import AuditQuery, GraphStore, Walk
from ringscope.graphs.tables import (
    NEW_ROWS,
    UPDATED_ROWS,
    DuckTables,
    TableStore,
    execute,
    first_row,
    q,
    spec_of,
)
from ringscope.model import (
    NODE_LABELS,
    REL_TYPES,
    BatchResult,
    Decision,
    Edge,
    Finding,
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

Statements = list[tuple[str, list[dict[str, Any]]]]


def _records(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts (what a statement's ``$rows`` takes)."""
    return con.sql(sql).to_arrow_table().to_pylist()


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


# --------------------------------------------------------------------------- the side file


class SideFile(DuckTables):
    """The Neo4j store's columnar side file: the contract tables and the loads
    (:class:`~ringscope.graphs.tables.DuckTables`), and the store id it shares with its
    database (a ``store_info`` table; see the module docstring).

    The bulk import (:mod:`ringscope.graphs.neo4j_bulk`) fills one before its database
    exists: loading into it alone writes every table exactly as a load through
    :class:`Neo4jStore` does.
    """

    def __init__(self, path: str | pathlib.Path) -> None:
        super().__init__(path, noun="the columnar file", setup=self._setup, load_times=False)

    @staticmethod
    def _setup(con: duckdb.DuckDBPyConnection) -> None:
        execute(
            con,
            "CREATE TABLE IF NOT EXISTS store_info (key VARCHAR PRIMARY KEY,"
            " store_id VARCHAR NOT NULL)",
        )

    def state(self) -> tuple[str | None, dict[str, int]]:
        """The side file's store id and rows per table, in one query."""
        counts = ", ".join(f"(SELECT count(*) FROM main.{q(name)})" for name in TABLES)
        with self.reading("read the side file's store id") as con:
            row = first_row(con, f"SELECT (SELECT max(store_id) FROM store_info), {counts}")
        assert row is not None
        return row[0], {name: int(n) for name, n in zip(TABLES, row[1:], strict=True)}

    def record_store_id(self, store_id: str | None) -> None:
        """Make ``store_id`` the side file's store id (``None``: no id)."""
        with self.transaction("record the store id") as con:
            execute(con, "DELETE FROM store_info")
            if store_id is not None:
                execute(
                    con,
                    "INSERT INTO store_info VALUES ($key, $id)",
                    {"key": cypher.STORE_INFO_KEY, "id": store_id},
                )

    def new_store_id(self) -> str:
        """Give the side file a new store id (a bulk-imported database gets the same one);
        returns it."""
        store_id = uuid.uuid4().hex
        self.record_store_id(store_id)
        return store_id

    def empty(self, con: duckdb.DuckDBPyConnection) -> None:
        """Every row, load record and the store id deleted, in the open transaction."""
        super().empty(con)
        execute(con, "DELETE FROM store_info")


# --------------------------------------------------------------------------- the store


class Neo4jStore(TableStore, GraphStore):
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
        #: Seconds and rows spent per load statement (for benchmarks).
        self.load_stats: dict[str, tuple[float, int]] = {}
        self._lock = threading.RLock()
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
            self._tables: SideFile = SideFile(columnar_path)
        except BaseException:
            self._driver.close()
            raise
        try:
            self._setup_graph()
            self._pair()
        except BaseException:
            self.close()
            raise

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
        side_id, rows = self._tables.state()
        graph_id, nodes = self._graph_state()
        self.store_id, self.mismatch = None, None
        if side_id is not None and side_id == graph_id:
            self.store_id = side_id
            return
        side_data = any(rows[name] for name in GRAPH_TABLES)
        graph_data = any(nodes.values())
        if not side_data and not graph_data and graph_id is None:
            return
        if side_data and graph_data and side_id is None and graph_id is None:
            self._claim()
            return
        self.mismatch = self._mismatch_text(side_id, rows, graph_id, nodes)

    def _graph_state(self) -> tuple[str | None, dict[str, int]]:
        """The database's store id and nodes per label of the marketplace."""
        records = self._query(cypher.STORE_STATE, key=cypher.STORE_INFO_KEY)
        if not records:
            raise StoreError(f"Neo4j at {self.uri} answered nothing to the store id query")
        counts = [int(n) for n in records[0]["counts"]]
        return records[0]["store_id"], dict(zip(NODE_LABELS, counts, strict=True))

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

        self._tables.record_store_id(new)
        held: str = self._write("record the store id", work)
        if held == new:
            self.store_id, self.mismatch = new, None
        else:
            self._pair()

    def _tables_for(self, what: str) -> DuckTables:
        """The side file's tables, once :meth:`_check_paired` allows ``what``."""
        self._check_paired(what)
        return self._tables

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
            self._tables.close()
            self._driver.close()

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
        with self._tables.transaction("wipe") as con:
            self._tables.empty(con)
        self._tables.forget_fingerprint()
        with self._lock:
            self.store_id, self.mismatch = None, None

    # ------------------------------------------------------------------ loading
    def write_batch(self, table: str, frame: pd.DataFrame, load_id: str) -> BatchResult:
        """Write one validated, normalised batch of ``table``, atomically across both stores.

        The side file sorts the rows into new rows, duplicates (key stored with
        identical values; ``NULL`` equal to ``NULL``), updates and conflicts (key stored
        with other values); a row repeating a key earlier in the batch counts as a
        duplicate or conflict of that row (:meth:`DuckTables.write`). The graph elements
        of the new and updated rows go to Neo4j in one transaction before the side file
        commits (see the module's failure semantics).

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
        spec = self._tables.check_batch(table, frame)
        self._check_paired(f"write {table}", claim=True)
        if len(frame) == 0:
            return BatchResult(inserted=0, duplicates=0)
        with self._tables.transaction(f"write {table}") as con:
            started = time.perf_counter()
            result = self._tables.write(con, spec, frame, load_id, keep=True)
            self._stat("(side file: sort and insert the batch)", started, len(frame))
            token: str | None = None
            statements: Statements = []
            if result.inserted:
                create = self._creates_allowed(table)
                started = time.perf_counter()
                statements = self._graph_statements(con, table, NEW_ROWS, create=create)
                self._stat("(rows for the graph statements)", started, result.inserted)
            if result.updated:
                # the stored rows as updated, merged into the graph with their new values
                updated = DuckTables.stored_rows(spec, UPDATED_ROWS)
                statements += self._graph_statements(con, table, updated, create=False)
                execute(con, f"DROP TABLE {UPDATED_ROWS}")
            if statements:
                token = self._write_graph(f"write {table}", statements, load_id, pending=table)
            execute(con, f"DROP TABLE {NEW_ROWS}")
            started = time.perf_counter()
        self._stat("(side file: commit)", started, result.inserted)
        if token is not None:  # both sides committed: this batch is not half-written
            self._query(cypher.CLEAR_PENDING, token=token)
        return result

    def _graph_statements(
        self, con: duckdb.DuckDBPyConnection, table: str, rows: str, *, create: bool
    ) -> Statements:
        """The Cypher statements (with their rows) that put the rows of relation ``rows``
        (rows of ``table``) into the graph, as the model derives them.

        One statement per label (with extra labels: per combination of them) and per
        relationship type, properties named one by one. With ``create`` (``rows`` the
        batch's new rows, inserted), every element the side file proves new is
        CREATEd: the nodes and relationships a new table row alone implies, the
        products, identifiers and SELLS pairs no earlier stored row has (those that one
        has are left alone), and ENGAGED of pairs whose every stored event is in the
        batch; ENGAGED of other pairs is MERGEd (set to the new aggregate). Without
        ``create``, everything is MERGEd.
        """
        out: Statements = []
        for node in nodes_of(table):
            first: dict[str, dict[str, Any]] = {}  # per id (ids joined by ':' may meet)
            for row in _records(con, node_rows(node, rows, fresh=create)):
                first.setdefault(row["id"], row)
            by_labels: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in first.values():
                labels = row.pop("_labels", None)
                key = tuple(label for label in labels.split(";") if label) if labels else ()
                by_labels.setdefault(key, []).append(row)
            for labels, group in sorted(by_labels.items()):
                out.append((cypher.node_statement(node, labels, create=create), group))
        for rel in rels_of(table):
            if rel.grouping == "aggregate":
                merged, created = self._aggregate(con, rel, rows, batch=create)
                out.append((cypher.rel_statement(rel, create=False), merged))
                if created:
                    out.append((cypher.rel_statement(rel, create=True), created))
            else:
                rel_records = _records(con, rel_rows(rel, rows, fresh=create))
                out.append((cypher.rel_statement(rel, create=create), rel_records))
        return out

    @staticmethod
    def _aggregate(
        con: duckdb.DuckDBPyConnection, rel: RelType, pairs: str, *, batch: bool = False
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """An aggregated ``rel`` of the pairs in relation ``pairs``, from every stored row.

        With ``batch`` (``pairs`` being the batch's new rows, already inserted), the
        pairs all of whose stored rows are in the batch come second: no earlier row made
        their relationship, so it can be created without a check. Otherwise every pair
        comes first (to be merged) and the second list is empty.
        """
        records = _records(con, aggregate_rows(rel, pairs, batch=pairs if batch else None))
        if not batch:
            return records, []
        merged: list[dict[str, Any]] = []
        created: list[dict[str, Any]] = []
        for row in records:
            (created if row.pop("_only") else merged).append(row)
        return merged, created

    def _write_graph(
        self,
        what: str,
        statements: Statements,
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
        elements only they created; put back the rows it updated as they were. Returns
        the number of rows removed.

        Neo4j is cleaned first, in transactions of :data:`DELETE_CHUNK` elements,
        then the side file commits; a rollback that fails half-way can be run again.

        Raises
        ------
        ConfigError
            The side file and the database do not belong together.
        """
        spec = spec_of(table)
        self._check_paired(f"roll back load {load_id} of {table}")
        aggregated = [r for r in rels_of(table) if r.grouping == "aggregate"]
        with self._tables.transaction(f"roll back load {load_id} of {table}") as con:
            for i, rel in enumerate(aggregated):  # the pairs whose aggregate changes
                execute(
                    con,
                    f"CREATE OR REPLACE TEMP TABLE _rs_pairs_{i} AS SELECT DISTINCT "
                    f"{', '.join(rel.ends)} FROM main.{q(table)} WHERE _load_id = $load_id",
                    {"load_id": load_id},
                )
            removed = self._tables.remove_load(con, spec, load_id)
            for i, rel in enumerate(aggregated):
                kept, _ = self._aggregate(con, rel, f"_rs_pairs_{i}")
                gone = _records(con, pairs_without_rows(rel, f"_rs_pairs_{i}"))
                execute(con, f"DROP TABLE _rs_pairs_{i}")
                self._write_graph(
                    f"roll back {rel.type} of {load_id}",
                    [
                        (cypher.delete_rels(rel), gone),
                        (cypher.rel_statement(rel, create=False), kept),
                    ],
                    load_id,
                )
            for statement in cypher.rollback_statements(table):
                self._delete_all(statement, load_id)
            restored = self._tables.restore_load(con, spec, load_id)
            if restored is not None:
                # the rows the load updated, with their values from before it
                self._write_graph(
                    f"restore the {table} rows {load_id} updated",
                    self._graph_statements(
                        con, table, DuckTables.stored_rows(spec, restored), create=False
                    ),
                    load_id,
                )
                execute(con, f"DROP TABLE {restored}")
            self._query(cypher.CLEAR_PENDING_LOAD, table=table, load_id=load_id)
        return removed

    def _delete_all(self, statement: str, load_id: str) -> None:
        while True:
            records = self._query(statement, load_id=load_id, limit=DELETE_CHUNK)
            if not records or not records[0]["removed"]:
                return

    # ------------------------------------------------------------------ reading
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

    # ------------------------------------------------------------------ graph
    @staticmethod
    def _node_props(label: str, stored: dict[str, Any]) -> dict[str, Any]:
        return props({k: v for k, v in stored.items() if k != "id" and not k.startswith("_")})

    @staticmethod
    def _window(value: datetime | None) -> int | None:
        if value is None:
            return None
        return (value - _EPOCH) // timedelta(microseconds=1)

    def _neighbourhood(self, walk: Walk, limit: int) -> Subgraph:
        """:meth:`GraphStore.neighbourhood` of a checked walk: one read transaction; each
        level is one ``MATCH`` from the frontier (a parameter of element ids) over the
        allowed relationships in the window."""
        wanted, hops, rels, start, end = walk
        types = list(rels)
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

    def _shortest_path(
        self, a: NodeRef, b: NodeRef, types: tuple[str, ...], max_hops: int
    ) -> Path | None:
        """:meth:`GraphStore.shortest_path` with checked arguments: ``allShortestPaths``
        bounded by ``max_hops`` gives every shortest path (at most :data:`MAX_PATHS`);
        the one whose (label, id) sequence is smallest is kept, and between two
        consecutive nodes the relationship smallest by (type, source, target)."""

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

    def _runs(self, status: str | None, limit: int | None) -> list[Run]:
        """:meth:`GraphStore.runs` in one read transaction: the runs' order keys, then the
        chosen runs whole (their policies and summaries grow with every run kept)."""
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

    def queue_state(
        self, cases_of: Callable[[Run], Iterable[str]] | None = None
    ) -> tuple[Run | None, dict[str, str]]:
        """:meth:`latest_run` and :meth:`latest_decisions` (of the cases
        ``cases_of(run)`` names, when given) in one read transaction (what the app's
        queue reads on every request; a transaction costs the server more than these
        statements). ``cases_of`` may be called again when the transaction is retried."""

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
        is raised here.

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
        the index, not every decision)."""
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

    def _audit_log(self, query: AuditQuery) -> list[dict[str, object]]:
        who, action, subject, limit, offset = query
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
