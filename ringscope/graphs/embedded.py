"""The embedded store: the whole marketplace graph in one local DuckDB file.

The contract tables are stored as typed DuckDB tables, each with a hidden
``_load_id`` column that names the load which inserted the row
(:mod:`ringscope.graphs.tables`, the same layer as the Neo4j store's side file). The
graph model is not materialised: every node and relationship is derived from the
tables when it is asked for, by SQL generated from the model
(:mod:`ringscope.graphs.graph_model`), so a load is one append per table and a walk
is a few SQL queries per hop whatever the size of the store.

Beyond :class:`~ringscope.graphs.store.GraphStore`, :class:`EmbeddedStore` offers
:meth:`~EmbeddedStore.table_arrow`, :meth:`~EmbeddedStore.schema_version`,
:meth:`~EmbeddedStore.build_graph_index` and context-manager support.

Conventions of :meth:`EmbeddedStore.table`: strings come back in pandas' default
string dtype (``str``; a missing value is NaN, test it with ``pandas.isna``),
timestamps as ``datetime64[us, UTC]`` (NaT when missing), numbers as
``float64`` (NaN when missing); rows are sorted by the contract key.

Choices the protocol leaves open, made in :mod:`ringscope.graphs._graphwalk` so
that every store makes them alike: missing node and relationship properties are
left out (not ``None``); HOSTED, PLACED, FOR, SELLS, ATTRIBUTED_TO and IN_STREAM
carry no properties; ENGAGED properties cover all of a pair's events, the window
only decides whether the edge is shown; a path uses, between two consecutive
nodes, the relationship smallest by (type, source, target); bad arguments
(unknown table, column, label or relationship type) raise ``ValueError``; runs
list newest first by ``started_at`` then by recording order, decisions oldest
first by ``decided_at`` then by recording order; ``fail_run`` keeps the error as
``summary["error"]``.

DuckDB lets one process write a database file; a second process that opens the
same file gets a :class:`~ringscope.errors.StoreLocked` naming the holder's pid
(:mod:`ringscope.graphs.sharing` is how a job asks the investigator app to step
aside, and :meth:`EmbeddedStore.reopen` how the job gives the file back meanwhile
and takes it again). Inside a process the
store may be shared between threads: writes hold the store's lock and use its
connection; reads use a cursor of their own thread (a DuckDB connection to the
same database), so that reads run side by side and no connection is ever used
by two threads at once.

A neighbourhood walk is a few SQL queries per hop, whose cost grows with the
tables. A process that walks again and again (the investigator app) gets an
in-memory :class:`~ringscope.graphs._adjacency.AdjacencyIndex` of the derived
graph instead: the second walk of one or more hops on the same data starts
building it in a background thread (a process that walks once, such as a
case-file export, never pays for it); walks wait for the build up to
:data:`GRAPH_INDEX_WAIT_S` seconds, walk in SQL after that, and every walk
after it uses the index. It holds the data as of its build: any
``write_batch`` or ``rollback_load`` makes it stale and the next walks start
over. Stores with more than :attr:`EmbeddedStore.graph_index_max_rows` table
rows (or with the limit set to 0) always walk in SQL. Both walks give the same
results; :meth:`EmbeddedStore.build_graph_index` builds the index at once.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import pathlib
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import duckdb
import pandas as pd
import pyarrow as pa

from ringscope.errors import NotFoundError, StoreError
from ringscope.graphs._adjacency import AdjacencyIndex
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
from ringscope.graphs.graph_model import GRAPH_TABLES, NODES, RELS, NodeType, RelType
from ringscope.graphs.store import AuditQuery, GraphStore, Walk
from ringscope.graphs.tables import DuckTables, TableStore, execute, first_row, q
from ringscope.model import (
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

#: Version of the layout below; a file with another version is refused.
SCHEMA_VERSION: Final = 1

#: The embedded store's own tables, beside the contract tables and ``loads``.
_INTERNAL_TABLES: Final = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (seq BIGINT NOT NULL, id VARCHAR NOT NULL, "
    "started_at TIMESTAMPTZ NOT NULL, status VARCHAR NOT NULL, finished_at TIMESTAMPTZ, "
    "policy VARCHAR NOT NULL, data_fingerprint VARCHAR NOT NULL, summary VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS findings (run_id VARCHAR NOT NULL, finding_id VARCHAR NOT NULL, "
    "kind VARCHAR NOT NULL, score DOUBLE NOT NULL, body VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS finding_members (run_id VARCHAR NOT NULL, "
    "finding_id VARCHAR NOT NULL, account_id VARCHAR NOT NULL, role VARCHAR NOT NULL, "
    "score DOUBLE NOT NULL)",
    "CREATE TABLE IF NOT EXISTS decisions (seq BIGINT NOT NULL, finding_id VARCHAR NOT NULL, "
    "decision VARCHAR NOT NULL, decided_by VARCHAR NOT NULL, decided_at TIMESTAMPTZ NOT NULL, "
    "note VARCHAR NOT NULL)",
)

# --------------------------------------------------------------------------- graph derivation
# The nodes and relationships of the model (ringscope.graphs.graph_model), as SQL over
# the contract tables.


def _node_sql(node: NodeType, nodes: str | None) -> str:
    """The stored nodes of ``node`` with their id (``_id``) and properties: those among
    the ``(label, id)`` pairs of relation ``nodes``, or every one when ``None``."""
    cols = ", ".join(f"{p.sql} AS {q(p.name)}" for p in node.props)
    distinct = "" if node.one_per_row else "DISTINCT "
    if nodes is not None:
        where = f" WHERE {node.id} IN (SELECT id FROM {nodes} WHERE label = '{node.label}')"
    else:
        where = "" if node.one_per_row else f" WHERE {node.id} IS NOT NULL"
    return f"SELECT {distinct}{node.id} AS _id, {cols} FROM main.{node.table}{where}"


def _count_sql(table: str, columns: Sequence[str] | None, where: str = "") -> str:
    """How many rows of ``table`` (distinct values of ``columns`` when given) ``where``."""
    if columns is None:
        return f"SELECT count(*) FROM main.{table}{where}"
    return f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(columns)} FROM main.{table}{where})"


#: Per label and relationship type of the model: the SQL counting its elements.
_COUNT_SQL: Final = {
    **{n.label: _count_sql(n.table, None if n.one_per_row else n.key) for n in NODES.values()},
    **{
        r.type: _count_sql(r.table, None if r.grouping == "row" else r.ends, r.where)
        for r in RELS.values()
    },
}

#: Default of :attr:`EmbeddedStore.graph_index_max_rows`: about 1 GB of memory at most.
GRAPH_INDEX_MAX_ROWS: Final = 5_000_000

#: Walks (of one hop or more) on unchanged data after which the adjacency index is built.
GRAPH_INDEX_AFTER_WALKS: Final = 2
#: Seconds a walk waits for the index being built before it walks in SQL.
GRAPH_INDEX_WAIT_S: Final = 5.0

log = logging.getLogger("ringscope.graphs")

#: Data version per database (file path, or the store for ``:memory:``), raised after
#: every committed change of the contract tables by any store of this process.
_DATA_VERSIONS: dict[str, int] = {}
_DATA_VERSIONS_LOCK = threading.Lock()


def _window_conditions(rel: RelType, start: datetime | None, end: datetime | None) -> list[str]:
    """SQL conditions keeping ``rel`` inside ``[start, end)`` (``$start``/``$end``)."""
    w = rel.window
    out: list[str] = []
    if w is None:
        return out
    if w.kind == "point":
        if start is not None:
            out.append(f"{w.start} >= $start")
        if end is not None:
            out.append(f"{w.start} < $end")
    elif w.kind == "interval":
        if end is not None:
            out.append(f"{w.start} < $end")
        if start is not None:
            out.append(f"({w.end} IS NULL OR {w.end} >= $start)")
    elif w.kind == "since" and end is not None:
        out.append(f"{w.start} < $end")
    return out


def _windowed(rel: RelType, select: str, where: list[str], group: str, window: list[str]) -> str:
    """``SELECT select FROM rel's table WHERE where``, inside the window: on the rows, or
    for an aggregated relationship on the groups (``group``)."""
    aggregate = rel.grouping == "aggregate"
    conditions = [*where, rel.when, *([] if aggregate else window)]
    sql = f"SELECT {select} FROM main.{rel.table} WHERE {' AND '.join(conditions)}"
    if aggregate:
        sql += f" GROUP BY {group}"
        if window:
            sql += " HAVING " + " AND ".join(window)
    return sql


def _branch_sql(
    rel: RelType, outward: bool, front: str, start: datetime | None, end: datetime | None
) -> str:
    """Pairs (frontier node, neighbour) over ``rel`` with the frontier on one side."""
    here, there = (rel.source, rel.target) if outward else (rel.target, rel.source)
    select = (
        f"'{here.label}' AS f_label, {here.id} AS f_id, '{there.label}' AS n_label, "
        f"{there.id} AS n_id"
    )
    where = [f"{here.id} IN (SELECT id FROM {front} WHERE label = '{here.label}')"]
    return _windowed(rel, select, where, "ALL", _window_conditions(rel, start, end))


def _adjacency_sql(
    front: str,
    rels: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    labels: Iterable[str] = NODES,
) -> str:
    """Every (frontier node, neighbour) pair over ``rels`` in either direction.

    Only the branches that start from one of ``labels`` (the labels present in
    the frontier) are kept, so that no table is scanned for nothing.
    """
    present = set(labels)
    parts = [
        _branch_sql(rel, outward, front, start, end)
        for rel in (RELS[t] for t in rels)
        for outward in (True, False)
        if (rel.source if outward else rel.target).label in present
    ]
    if not parts:
        return "SELECT NULL AS f_label, NULL AS f_id, NULL AS n_label, NULL AS n_id WHERE FALSE"
    return " UNION ALL ".join(f"({p})" for p in parts)


def _edges_sql(rel: RelType, nodes: str, start: datetime | None, end: datetime | None) -> str:
    """Every ``rel`` relationship in the window between two nodes of ``nodes``."""
    where = [
        f"{end_.id} IN (SELECT id FROM {nodes} WHERE label = '{end_.label}')"
        for end_ in (rel.source, rel.target)
    ]
    cols = [f"{rel.source.id} AS _s", f"{rel.target.id} AS _t"]
    cols += [f"{p.sql} AS {p.name}" for p in rel.props]
    distinct = "DISTINCT " if rel.grouping == "distinct" else ""
    return _windowed(
        rel, distinct + ", ".join(cols), where, "_s, _t", _window_conditions(rel, start, end)
    )


def _index_rel_sql(rel: RelType) -> str:
    """Every ``rel`` relationship with its window times (microseconds) and properties."""
    w = rel.window
    times = (w.start, w.end if w.kind == "interval" else None) if w is not None else (None, None)
    t0, t1 = (f"epoch_us({c})" if c else "NULL::BIGINT" for c in times)
    select = [f"{rel.source.id} AS _s", f"{rel.target.id} AS _t", f"{t0} AS _w0", f"{t1} AS _w1"]
    select += [f"{p.sql} AS {p.name}" for p in rel.props]
    where = f"{rel.when} AND {rel.source.id} IS NOT NULL AND {rel.target.id} IS NOT NULL"
    distinct = "DISTINCT " if rel.grouping == "distinct" else ""
    sql = f"SELECT {distinct}{', '.join(select)} FROM main.{rel.table} WHERE {where}"
    return sql + " GROUP BY _s, _t" if rel.grouping == "aggregate" else sql


def _params(sql: str, **values: Any) -> dict[str, Any]:
    """The named parameters that ``sql`` uses (DuckDB refuses unused ones)."""
    return {k: v for k, v in values.items() if f"${k}" in sql}


# --------------------------------------------------------------------------- the store


class EmbeddedStore(TableStore, GraphStore):
    """The default store: one DuckDB file (or ``:memory:``), persistent and transactional.

    Parameters
    ----------
    path
        The database file (created when missing) or ``":memory:"``.

    Raises
    ------
    StoreError
        When the file cannot be opened or was written with another schema version;
        :class:`~ringscope.errors.StoreLocked` when another process holds it.
    """

    uri: str
    #: Largest store (rows of the graph's tables) whose graph is held in memory for
    #: neighbourhood walks; 0 walks in SQL always.
    graph_index_max_rows: int = GRAPH_INDEX_MAX_ROWS

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = str(path)
        self.uri = self.path
        self._index_lock = threading.Lock()
        self._index: tuple[tuple[int, int], AdjacencyIndex | None] | None = None
        self._index_walks: tuple[tuple[int, int], int] = ((-1, -1), 0)
        self._index_building: tuple[int, int] | None = None
        self._index_built = threading.Event()
        self._audit_writer: GroupCommit[tuple[Any, ...]] = GroupCommit(self._write_audit)
        self._version_key = (
            f":memory:{id(self)}" if self.path == ":memory:" else os.path.realpath(self.path)
        )
        self._tables = DuckTables(self.path, setup=self._setup)

    # ------------------------------------------------------------------ plumbing
    def _setup(self, con: duckdb.DuckDBPyConnection) -> None:
        """The store's own tables, and the check of the file's layout version."""
        for stmt in _INTERNAL_TABLES:
            execute(con, stmt)
        row = first_row(con, "SELECT max(version) FROM schema_version")
        version = row[0] if row else None
        if version is None:
            execute(con, "INSERT INTO schema_version VALUES ($v)", {"v": SCHEMA_VERSION})
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}; "
                f"this ringscope reads version {SCHEMA_VERSION}"
            )

    def reopen(self) -> None:
        """Open the file again after :meth:`close`, as the same store object.

        A job closes the file while its detectors run on tables it has read, so that
        the investigator app can use it meanwhile (see :mod:`ringscope.graphs.sharing`),
        and reopens it to save the run. What this process kept of the data (the
        fingerprint, the graph index) is read again: another process may have written.
        Raises :class:`~ringscope.errors.StoreLocked` while another process holds it.
        """
        if self._tables.reopen():
            self._data_changed()

    def _transaction(
        self, what: str
    ) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """One write transaction (see :meth:`DuckTables.transaction`)."""
        return self._tables.transaction(what)

    def _reading(self, what: str) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """This thread's read cursor (see :meth:`DuckTables.reading`)."""
        return self._tables.reading(what)

    def _data_version(self) -> int:
        with _DATA_VERSIONS_LOCK:
            return _DATA_VERSIONS.get(self._version_key, 0)

    def _data_changed(self) -> None:
        """Raise the data version (after a committed change of the contract tables)."""
        with _DATA_VERSIONS_LOCK:
            _DATA_VERSIONS[self._version_key] = _DATA_VERSIONS.get(self._version_key, 0) + 1

    @staticmethod
    def _put(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> None:
        """Replace temporary table ``name`` with ``data``."""
        view = f"{name}_in"
        con.register(view, data)
        try:
            execute(con, f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {view}")
        finally:
            con.unregister(view)

    @classmethod
    def _put_nodes(cls, con: duckdb.DuckDBPyConnection, name: str, refs: Sequence[NodeRef]) -> None:
        cls._put(con, name, cls._nodes_arrow(refs))

    @staticmethod
    def _nodes_arrow(refs: Sequence[NodeRef]) -> pa.Table:
        """Node references as an Arrow table ``(label, id)``."""
        return pa.table(
            {
                "label": pa.array([r.label for r in refs], pa.string()),
                "id": pa.array([r.id for r in refs], pa.string()),
            }
        )

    def close(self) -> None:
        """Close the file (further calls raise ``StoreError``).

        A read still running in another thread (a graph index built in the background)
        is interrupted: DuckDB refuses to close a connection in use, and the file would
        stay locked until that thread let go of its cursor, keeping out the job that
        the investigator app closes the file for."""
        self._tables.close()
        self._index = None

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddedStore({self.path!r})"

    def schema_version(self) -> int:
        """The layout version of the file (:data:`SCHEMA_VERSION`)."""
        with self._reading("schema version") as con:
            row = first_row(con, "SELECT max(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------------ loading
    def write_batch(self, table: str, frame: pd.DataFrame, load_id: str) -> BatchResult:
        """Write one validated, normalised batch of ``table`` in one transaction
        (see :meth:`DuckTables.write`).

        Raises
        ------
        ValueError
            Unknown table, or a required column is missing from ``frame``.
        StoreError
            When the batch cannot be converted or written; nothing is written.
        """
        result = self._tables.write_batch(table, frame, load_id)
        if len(frame):
            self._data_changed()
        return result

    def rollback_load(self, load_id: str, table: str) -> int:
        """Remove the rows of ``table`` that load ``load_id`` inserted, and put back the
        rows it updated as they were (until the load is recorded); the number removed.

        Graph elements are derived from the tables, so the nodes and
        relationships only those rows made disappear with them.
        """
        removed = self._tables.rollback_load(load_id, table)
        self._data_changed()
        return removed

    # ------------------------------------------------------------------ reading
    def graph_counts(self) -> dict[str, int]:
        """Nodes per label and relationships per type of the graph model (all keys present)."""
        sql = " UNION ALL ".join(f"SELECT '{k}', ({c})" for k, c in _COUNT_SQL.items())
        with self._reading("graph counts") as con:
            rows = dict(con.execute(sql).fetchall())
        return {k: int(rows[k]) for k in _COUNT_SQL}

    # ------------------------------------------------------------------ graph
    def _node_props(
        self, con: duckdb.DuckDBPyConnection, nodes: str
    ) -> dict[NodeRef, dict[str, Any]]:
        """The stored nodes among the ``(label, id)`` pairs of ``nodes``, with properties."""
        out: dict[NodeRef, dict[str, Any]] = {}
        for label, node in NODES.items():
            cur = con.execute(_node_sql(node, nodes))
            names = [d[0] for d in cur.description or ()]
            for row in cur.fetchall():
                values = dict(zip(names, row, strict=True))
                node_id = values.pop("_id")
                out[NodeRef(label, str(node_id))] = props(values)
        return out

    def _edges(
        self,
        con: duckdb.DuckDBPyConnection,
        nodes: str,
        rels: Sequence[str],
        start: datetime | None,
        end: datetime | None,
    ) -> list[Edge]:
        edges: list[Edge] = []
        for t in rels:
            rel = RELS[t]
            sql = _edges_sql(rel, nodes, start, end)
            cur = con.execute(sql, _params(sql, start=start, end=end))
            names = [d[0] for d in cur.description or ()]
            for row in cur.fetchall():
                values = dict(zip(names, row, strict=True))
                s, d = values.pop("_s"), values.pop("_t")
                edges.append(
                    Edge(
                        NodeRef(rel.source.label, str(s)),
                        NodeRef(rel.target.label, str(d)),
                        t,
                        props(values),
                    )
                )
        return sorted(edges, key=edge_key)

    def _neighbourhood(self, walk: Walk, limit: int) -> Subgraph:
        """:meth:`GraphStore.neighbourhood` of a checked walk: from the adjacency index
        when built, else each hop is one SQL query (the union, over the allowed
        relationship types and both directions, of the rows touching the frontier,
        minus the nodes already held, ordered by (label, id) and cut at the room left).
        """
        wanted, hops, rels, start, end = walk
        index = self._graph_index(hops)
        if index is not None:
            existing, sub = index.neighbourhood(
                wanted, hops=hops, rels=rels, start=start, end=end, limit=limit
            )
            if not existing:
                shown = ", ".join(str(r) for r in wanted[:5])
                raise NotFoundError(f"no such node: {shown}")
            return sub
        with self._reading("neighbourhood") as con:
            try:
                self._put_nodes(con, "_rs_seeds", wanted)
                found = self._node_props(con, "_rs_seeds")
                existing = [r for r in wanted if r in found]
                if not existing:
                    shown = ", ".join(str(r) for r in wanted[:5])
                    raise NotFoundError(f"no such node: {shown}")
                self._put_nodes(con, "_rs_held", existing)

                def expand(frontier: Sequence[NodeRef], want: int) -> list[NodeRef]:
                    self._put_nodes(con, "_rs_front", frontier)
                    labels = {r.label for r in frontier}
                    adjacency = _adjacency_sql("_rs_front", rels, start, end, labels)
                    sql = (
                        f"SELECT DISTINCT n_label, n_id FROM ({adjacency}) a "
                        "WHERE NOT EXISTS (SELECT 1 FROM _rs_held h "
                        "WHERE h.label = a.n_label AND h.id = a.n_id) "
                        "ORDER BY n_label, n_id LIMIT $want"
                    )
                    rows = con.execute(
                        sql, _params(sql, start=start, end=end, want=max(want, 0))
                    ).fetchall()
                    new = [NodeRef(str(lbl), str(i)) for lbl, i in rows]
                    # All of them are held unless one more than fits came back, and
                    # then the walk stops: the table stays equal to the held nodes.
                    if new:
                        con.register("_rs_new_in", self._nodes_arrow(new))
                        try:
                            execute(con, "INSERT INTO _rs_held SELECT * FROM _rs_new_in")
                        finally:
                            con.unregister("_rs_new_in")
                    return new

                held, truncated = bounded_bfs(existing, hops=hops, limit=limit, expand=expand)
                self._put_nodes(con, "_rs_held", held)
                node_props = self._node_props(con, "_rs_held")
                edges = self._edges(con, "_rs_held", rels, start, end)
            finally:
                for t in ("_rs_seeds", "_rs_held", "_rs_front"):
                    execute(con, f"DROP TABLE IF EXISTS {t}")
        nodes = tuple(Node(r, node_props.get(r, {})) for r in sorted(held, key=ref_key))
        return Subgraph(nodes=nodes, edges=tuple(edges), truncated=truncated)

    def _index_key(self) -> tuple[int, int]:
        return (self._data_version(), self.graph_index_max_rows)

    @property
    def graph_index(self) -> AdjacencyIndex | None:
        """The adjacency index of the current data, when built (see the module docstring)."""
        cached = self._index
        return cached[1] if cached is not None and cached[0] == self._index_key() else None

    def _graph_index(self, hops: int) -> AdjacencyIndex | None:
        """The index for a walk of ``hops``, or ``None`` to walk in SQL; counts the
        walks and starts the build in the background when it is time."""
        key = self._index_key()
        cached = self._index
        if cached is not None and cached[0] == key:
            return cached[1]
        if hops == 0 or key[1] <= 0:
            return None
        with self._index_lock:
            built = self._index_built
            if self._index_building != key:
                seen, walks = self._index_walks
                walks = walks + 1 if seen == key else 1
                self._index_walks = (key, walks)
                if walks < GRAPH_INDEX_AFTER_WALKS:
                    return None
                self._index_building = key
                built = self._index_built = threading.Event()
                threading.Thread(
                    target=self._build_in_background,
                    args=(key, built),
                    name="ringscope-graph-index",
                    daemon=True,
                ).start()
        # walks in SQL side by side would slow the build and each other down
        built.wait(GRAPH_INDEX_WAIT_S)
        cached = self._index
        return cached[1] if cached is not None and cached[0] == key else None

    def _build_in_background(self, key: tuple[int, int], built: threading.Event) -> None:
        try:
            index = self._build_graph_index(key[1])
        except Exception as e:  # the walks go on in SQL; the next change tries again
            log.warning("store %s: graph index not built: %s", self.path, e)
            index = None
        with self._index_lock:
            self._index = (key, index)
            self._index_building = None
        built.set()

    def build_graph_index(self) -> AdjacencyIndex | None:
        """Build the adjacency index of the current data now (``None`` when the store
        is larger than :attr:`graph_index_max_rows`); later walks use it."""
        key = self._index_key()
        index = self._build_graph_index(key[1])
        with self._index_lock:
            self._index = (key, index)
        return index

    def warm_up(self) -> None:
        """Build the adjacency index now (see :meth:`build_graph_index`): the investigator
        app's walks then never wait for it."""
        self.build_graph_index()

    def _build_graph_index(self, max_rows: int) -> AdjacencyIndex | None:
        if max_rows <= 0:
            return None
        with self._reading("graph index") as con:
            sql = " UNION ALL ".join(f"SELECT count(*) FROM main.{q(t)}" for t in GRAPH_TABLES)
            if sum(int(r[0]) for r in con.execute(sql).fetchall()) > max_rows:
                return None
            nodes = {
                label: con.sql(_node_sql(node, None)).to_arrow_table()
                for label, node in NODES.items()
            }
            rels = {
                t: (
                    r.source.label,
                    r.target.label,
                    r.window.kind if r.window else "",
                    con.sql(_index_rel_sql(r)).to_arrow_table(),
                )
                for t, r in RELS.items()
            }
        return AdjacencyIndex.build(nodes, rels)

    def _shortest_path(
        self, a: NodeRef, b: NodeRef, rels: tuple[str, ...], max_hops: int
    ) -> Path | None:
        """:meth:`GraphStore.shortest_path` with checked arguments.

        Bidirectional breadth-first search in SQL: two temporary tables hold
        each side's distances, and each step expands the side with the smaller
        frontier until the sides meet (length ``L = ka + kb``) or ``max_hops``
        is reached. Every shortest path crosses the meeting layer ``M`` (nodes
        at ``ka`` from ``a`` and ``kb`` from ``b``). The nodes that lie on a
        shortest path are then found layer by layer, backwards from ``M`` to
        ``a`` and forwards from ``M`` to ``b``; the chosen path starts at ``a``
        and takes at each step the smallest (label, id) neighbour in the next
        layer (the links between layers are kept while the layers are found),
        which gives the lexicographically smallest sequence. Work is bounded by
        the nodes within ``max_hops`` of the two ends: one adjacency query per
        search level and per layer, at most ``2 * max_hops``.

        Between two consecutive nodes, the relationship smallest by (type,
        source, target) is used (:func:`~ringscope.graphs._graphwalk.pick_edge`).
        """
        temps = ("_rs_ends", "_rs_da", "_rs_db", "_rs_layer", "_rs_links", "_rs_step", "_rs_path")
        with self._reading("shortest path") as con:
            try:
                self._put_nodes(con, "_rs_ends", [a, b])
                found = self._node_props(con, "_rs_ends")
                for end_ in (a, b):
                    if end_ not in found:
                        raise NotFoundError(f"no such node: {end_}")
                if a == b:
                    return Path(nodes=(Node(a, found[a]),), edges=())
                sequence = self._path_nodes(con, a, b, rels, max_hops)
                if sequence is None:
                    return None
                self._put_nodes(con, "_rs_path", sequence)
                node_props = self._node_props(con, "_rs_path")
                edges = self._edges(con, "_rs_path", rels, None, None)
            finally:
                for t in temps:
                    execute(con, f"DROP TABLE IF EXISTS {t}")
        path_edges: list[Edge] = []
        for u, v in itertools.pairwise(sequence):
            edge = pick_edge(edges, u, v)
            if edge is None:  # the walk only steps along stored relationships
                raise StoreError(f"shortest path: no relationship between {u} and {v}")
            path_edges.append(edge)
        return Path(
            nodes=tuple(Node(r, node_props.get(r, {})) for r in sequence),
            edges=tuple(path_edges),
        )

    @staticmethod
    def _labels(con: duckdb.DuckDBPyConnection, sql: str, level: int) -> set[str]:
        return {str(r[0]) for r in con.execute(sql, {"lvl": level}).fetchall()}

    def _path_nodes(
        self,
        con: duckdb.DuckDBPyConnection,
        a: NodeRef,
        b: NodeRef,
        rels: Sequence[str],
        max_hops: int,
    ) -> list[NodeRef] | None:
        """The (label, id)-smallest shortest path from ``a`` to ``b`` as node refs."""
        for side, ref in (("_rs_da", a), ("_rs_db", b)):
            execute(
                con, f"CREATE OR REPLACE TEMP TABLE {side} (label VARCHAR, id VARCHAR, d INTEGER)"
            )
            execute(con, f"INSERT INTO {side} VALUES ($l, $i, 0)", {"l": ref.label, "i": ref.id})
        depth = {"_rs_da": 0, "_rs_db": 0}
        size = {"_rs_da": 1, "_rs_db": 1}
        met = False
        while depth["_rs_da"] + depth["_rs_db"] < max_hops:
            side = "_rs_da" if size["_rs_da"] <= size["_rs_db"] else "_rs_db"
            other = "_rs_db" if side == "_rs_da" else "_rs_da"
            k = depth[side]
            front = f"(SELECT label, id FROM {side} WHERE d = $lvl)"
            labels = self._labels(con, f"SELECT DISTINCT label FROM {side} WHERE d = $lvl", k)
            adjacency = _adjacency_sql(front, rels, None, None, labels)
            sql = (
                f"INSERT INTO {side} SELECT DISTINCT n_label, n_id, $lvl + 1 FROM ({adjacency}) x "
                f"WHERE NOT EXISTS (SELECT 1 FROM {side} s WHERE s.label = x.n_label "
                "AND s.id = x.n_id)"
            )
            row = first_row(con, sql, {"lvl": k})
            added = int(row[0]) if row else 0
            if added == 0:
                return None  # one side's component is exhausted: no path at all
            depth[side] = k + 1
            size[side] = added
            row = first_row(
                con,
                f"SELECT count(*) FROM {side} s JOIN {other} o USING (label, id) WHERE s.d = $lvl",
                {"lvl": k + 1},
            )
            if row and row[0]:
                met = True
                break
        if not met:
            return None
        ka, kb = depth["_rs_da"], depth["_rs_db"]
        length = ka + kb
        # Layer p holds the nodes at position p of some shortest path; a link (p, u, v)
        # joins u at position p - 1 to v at position p along such a path.
        execute(
            con,
            "CREATE OR REPLACE TEMP TABLE _rs_layer AS SELECT x.label, x.id, $ka AS p "
            "FROM _rs_da x JOIN _rs_db y USING (label, id) WHERE x.d = $ka AND y.d = $kb",
            {"ka": ka, "kb": kb},
        )
        execute(
            con,
            "CREATE OR REPLACE TEMP TABLE _rs_links (p INTEGER, u_label VARCHAR, u_id VARCHAR, "
            "v_label VARCHAR, v_id VARCHAR)",
        )
        front = "(SELECT label, id FROM _rs_layer WHERE p = $src_p)"
        steps = [(p, p + 1, "_rs_da", p) for p in range(ka - 1, -1, -1)]
        steps += [(p, p - 1, "_rs_db", length - p) for p in range(ka + 1, length + 1)]
        for dst_p, src_p, side, dist in steps:
            labels = self._labels(con, "SELECT DISTINCT label FROM _rs_layer WHERE p = $lvl", src_p)
            adjacency = _adjacency_sql(front, rels, None, None, labels)
            execute(
                con,
                "CREATE OR REPLACE TEMP TABLE _rs_step AS SELECT DISTINCT x.* "
                f"FROM ({adjacency}) x JOIN {side} s "
                "ON s.label = x.n_label AND s.id = x.n_id AND s.d = $dist",
                {"src_p": src_p, "dist": dist},
            )
            execute(
                con,
                "INSERT INTO _rs_layer SELECT DISTINCT n_label, n_id, $dst_p FROM _rs_step",
                {"dst_p": dst_p},
            )
            link = (
                "$p, n_label, n_id, f_label, f_id"
                if dst_p < src_p
                else "$p, f_label, f_id, n_label, n_id"
            )
            execute(
                con,
                f"INSERT INTO _rs_links SELECT {link} FROM _rs_step",
                {"p": max(src_p, dst_p)},
            )
        sequence = [a]
        for p in range(1, length + 1):
            here = sequence[-1]
            row = first_row(
                con,
                "SELECT v_label, v_id FROM _rs_links WHERE p = $p AND u_label = $l AND u_id = $i "
                "ORDER BY v_label, v_id LIMIT 1",
                {"p": p, "l": here.label, "i": here.id},
            )
            if row is None:  # every node of a layer lies on a shortest path
                raise StoreError(f"shortest path: walk from {a} to {b} lost its way at step {p}")
            sequence.append(NodeRef(str(row[0]), str(row[1])))
        return sequence

    # ------------------------------------------------------------------ runs and findings
    @staticmethod
    def _run_from_row(row: Sequence[Any]) -> Run:
        return Run(
            id=row[0],
            started_at=as_utc(row[1]) or row[1],
            status=row[2],
            finished_at=as_utc(row[3]),
            policy=json.loads(row[4]),
            data_fingerprint=row[5],
            summary=json.loads(row[6]),
        )

    _RUN_COLS: Final = "id, started_at, status, finished_at, policy, data_fingerprint, summary"

    def begin_run(self, run: Run) -> None:
        """Record ``run`` with status ``running``.

        Raises
        ------
        StoreError
            When a run with that id is already recorded.
        """
        run = run_with(run, status="running")
        with self._transaction(f"begin run {run.id}") as con:
            exists = first_row(con, "SELECT count(*) FROM runs WHERE id = $id", {"id": run.id})
            if exists and exists[0]:
                raise StoreError(f"run {run.id} is already recorded")
            execute(
                con,
                "INSERT INTO runs SELECT coalesce(max(seq), 0) + 1, $id, $started, $status, "
                "$finished, $policy, $fp, $summary FROM runs",
                {
                    "id": run.id,
                    "started": run.started_at,
                    "status": run.status,
                    "finished": run.finished_at,
                    "policy": canonical_json(run.policy),
                    "fp": run.data_fingerprint,
                    "summary": canonical_json(run.summary),
                },
            )

    def _require_run(self, con: duckdb.DuckDBPyConnection, run_id: str) -> None:
        row = first_row(con, "SELECT count(*) FROM runs WHERE id = $id", {"id": run_id})
        if not row or not row[0]:
            raise NotFoundError(f"no such run: {run_id}")

    def complete_run(
        self, run_id: str, findings: list[Finding], summary: dict[str, object]
    ) -> None:
        """Write the findings of a run and mark it succeeded, in one transaction.

        Completing a run again replaces its findings and summary.

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
        body = pa.table(
            {
                "run_id": pa.array([run_id] * len(findings), pa.string()),
                "finding_id": pa.array(ids, pa.string()),
                "kind": pa.array([f.kind for f in findings], pa.string()),
                "score": pa.array([f.score for f in findings], pa.float64()),
                "body": pa.array([canonical_json(f.to_dict()) for f in findings], pa.string()),
            }
        )
        members = [(f.id, m) for f in findings for m in f.members]
        member_rows = pa.table(
            {
                "run_id": pa.array([run_id] * len(members), pa.string()),
                "finding_id": pa.array([fid for fid, _ in members], pa.string()),
                "account_id": pa.array([m.account_id for _, m in members], pa.string()),
                "role": pa.array([m.role for _, m in members], pa.string()),
                "score": pa.array([float(m.score) for _, m in members], pa.float64()),
            }
        )
        with self._transaction(f"complete run {run_id}") as con:
            self._require_run(con, run_id)
            execute(con, "DELETE FROM findings WHERE run_id = $id", {"id": run_id})
            execute(con, "DELETE FROM finding_members WHERE run_id = $id", {"id": run_id})
            for name, data in (("findings", body), ("finding_members", member_rows)):
                con.register("_rs_rows", data)
                try:
                    execute(con, f"INSERT INTO {name} SELECT * FROM _rs_rows")
                finally:
                    con.unregister("_rs_rows")
            execute(
                con,
                "UPDATE runs SET status = 'succeeded', finished_at = $now, summary = $summary "
                "WHERE id = $id",
                {"now": datetime.now(UTC), "summary": canonical_json(summary), "id": run_id},
            )

    def fail_run(self, run_id: str, error: str) -> None:
        """Mark a run failed; ``error`` is kept as ``summary["error"]``.

        Raises
        ------
        NotFoundError
            Unknown run.
        """
        with self._transaction(f"fail run {run_id}") as con:
            self._require_run(con, run_id)
            row = first_row(con, "SELECT summary FROM runs WHERE id = $id", {"id": run_id})
            summary = json.loads(row[0]) if row else {}
            summary["error"] = error
            execute(
                con,
                "UPDATE runs SET status = 'failed', finished_at = $now, summary = $summary "
                "WHERE id = $id",
                {"now": datetime.now(UTC), "summary": canonical_json(summary), "id": run_id},
            )

    def _runs(self, status: str | None, limit: int | None) -> list[Run]:
        with self._reading("read runs") as con:
            rows = con.execute(
                f"SELECT {self._RUN_COLS} FROM runs "
                "WHERE $status IS NULL OR status = $status "
                "ORDER BY started_at DESC, seq DESC LIMIT $limit",
                {"status": status, "limit": limit},
            ).fetchall()
        return [self._run_from_row(r) for r in rows]

    def get_run(self, run_id: str) -> Run:
        """The run ``run_id``; ``NotFoundError`` when unknown."""
        with self._reading(f"read run {run_id}") as con:
            row = first_row(
                con, f"SELECT {self._RUN_COLS} FROM runs WHERE id = $id", {"id": run_id}
            )
        if row is None:
            raise NotFoundError(f"no such run: {run_id}")
        return self._run_from_row(row)

    def _run_for_findings(self, run_id: str | None) -> str | None:
        if run_id is None:
            latest = self.latest_run()
            return None if latest is None else latest.id
        with self._reading(f"read run {run_id}") as con:
            self._require_run(con, run_id)
        return run_id

    def findings(self, run_id: str | None = None) -> list[Finding]:
        """The findings of ``run_id`` (default: the latest succeeded run), ranked.

        Raises
        ------
        NotFoundError
            Unknown ``run_id``.
        """
        rid = self._run_for_findings(run_id)
        if rid is None:
            return []
        with self._reading(f"read findings of {rid}") as con:
            rows = con.execute(
                "SELECT body FROM findings WHERE run_id = $id", {"id": rid}
            ).fetchall()
        return rank([Finding.from_dict(json.loads(r[0])) for r in rows])

    def findings_for_account(self, account_id: str, run_id: str | None = None) -> list[Finding]:
        """The findings of a run (default: the latest succeeded) that have
        ``account_id`` as a member, ranked: only those are read.

        Raises
        ------
        NotFoundError
            Unknown ``run_id``.
        """
        rid = self._run_for_findings(run_id)
        if rid is None:
            return []
        with self._reading(f"read findings of {account_id}") as con:
            rows = con.execute(
                "SELECT f.body FROM findings f WHERE f.run_id = $id AND f.finding_id IN "
                "(SELECT finding_id FROM finding_members WHERE run_id = $id "
                "AND account_id = $account)",
                {"id": rid, "account": account_id},
            ).fetchall()
        return rank([Finding.from_dict(json.loads(r[0])) for r in rows])

    def record_decision(self, decision: Decision) -> None:
        """Keep an investigator's decision (every decision is kept, none replaced)."""
        d = decision_with_utc(decision)
        with self._transaction(f"record decision on {d.finding_id}") as con:
            execute(
                con,
                "INSERT INTO decisions SELECT coalesce(max(seq), 0) + 1, $fid, $decision, $by, "
                "$at, $note FROM decisions",
                {
                    "fid": d.finding_id,
                    "decision": d.decision,
                    "by": d.decided_by,
                    "at": d.decided_at,
                    "note": d.note,
                },
            )

    def latest_decisions(self, cases: Iterable[str] | None = None) -> dict[str, str]:
        """The latest decision of every case that has one (case id -> decision), as the
        last of :meth:`decisions` per case; only of ``cases`` when given."""
        sql = "SELECT finding_id, arg_max(decision, (decided_at, seq)) FROM decisions"
        params: dict[str, Any] = {}
        if cases is not None:
            params["cases"] = sorted(set(cases))
            if not params["cases"]:
                return {}
            sql += " WHERE finding_id IN (SELECT unnest($cases::VARCHAR[]))"
        with self._reading("read the latest decisions") as con:
            rows = con.execute(sql + " GROUP BY finding_id", params).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def decisions(self, finding_id: str | None = None) -> list[Decision]:
        """Decisions, oldest first (by ``decided_at``, then the earlier recorded)."""
        sql = "SELECT finding_id, decision, decided_by, decided_at, note FROM decisions"
        params: dict[str, Any] = {}
        if finding_id is not None:
            sql += " WHERE finding_id = $fid"
            params["fid"] = finding_id
        sql += " ORDER BY decided_at, seq"
        with self._reading("read decisions") as con:
            rows = con.execute(sql, params).fetchall()
        return [
            Decision(
                finding_id=r[0],
                decision=r[1],
                decided_by=r[2],
                decided_at=as_utc(r[3]) or r[3],
                note=r[4],
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ audit log
    _AUDIT_TABLE: Final = (
        "CREATE TABLE IF NOT EXISTS audit_log (seq BIGINT NOT NULL, at_ TIMESTAMPTZ NOT NULL, "
        "who VARCHAR NOT NULL, action VARCHAR NOT NULL, subject VARCHAR NOT NULL, "
        "detail VARCHAR NOT NULL)"
    )

    def _ensure_audit(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create the audit table on first use (stores written before it existed get it too)."""
        if not getattr(self, "_audit_ready", False):
            execute(con, self._AUDIT_TABLE)
            self._audit_ready = True

    def append_audit(
        self,
        who: str,
        action: str,
        subject: str,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Append one entry to the append-only audit log (see ``GraphStore.append_audit``).

        Returns once the entry is committed. Entries appended by several threads at
        once are committed together, in one transaction (see
        :mod:`ringscope.graphs._groupcommit`), in the order they arrived."""
        entry = (datetime.now(UTC), who, action, subject, canonical_json(detail or {}))
        self._audit_writer.append(entry)

    def _write_audit(self, entries: Sequence[tuple[Any, ...]]) -> None:
        """Append ``entries`` (at, who, action, subject, detail) in one transaction,
        numbered on from the last entry, in their order."""
        rows = ", ".join(
            f"(${k * 6 + 1}::BIGINT, ${k * 6 + 2}::TIMESTAMPTZ, ${k * 6 + 3}, ${k * 6 + 4}, "
            f"${k * 6 + 5}, ${k * 6 + 6})"
            for k in range(len(entries))
        )
        params: list[Any] = []
        for pos, entry in enumerate(entries, start=1):
            params += [pos, *entry]
        what = f"audit {entries[0][2]} {entries[0][3]}" + (
            f" and {len(entries) - 1} more" if len(entries) > 1 else ""
        )
        with self._transaction(what) as con:
            self._ensure_audit(con)
            execute(
                con,
                "INSERT INTO audit_log SELECT m.last + v.pos, v.at_, v.who, v.action, "
                f"v.subject, v.detail FROM (VALUES {rows}) v(pos, at_, who, action, subject, "
                "detail), (SELECT coalesce(max(seq), 0) AS last FROM audit_log) m",
                params,
            )

    def _audit_log(self, query: AuditQuery) -> list[dict[str, object]]:
        who, action, subject, limit, offset = query
        sql = "SELECT seq, at_, who, action, subject, detail FROM audit_log WHERE true"
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for name, value in (("who", who), ("action", action), ("subject", subject)):
            if value is not None:
                sql += f" AND {name} = ${name}"
                params[name] = value
        sql += " ORDER BY seq DESC LIMIT $limit OFFSET $offset"
        with self._transaction("read audit log") as con:
            self._ensure_audit(con)
            rows = con.execute(sql, params).fetchall()
        return [
            {
                "seq": int(r[0]),
                "at": as_utc(r[1]) or r[1],
                "who": r[2],
                "action": r[3],
                "subject": r[4],
                "detail": json.loads(r[5]),
            }
            for r in rows
        ]
