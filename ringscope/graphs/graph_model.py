"""The graph model, declared once: its nodes and relationships, and where each comes from.

Every store shows the marketplace as one graph (DESIGN.md, "Graph model"), derived
from the tables of the data contract (:mod:`ringscope.contract`). This module says
how, as data: per node label, the table its nodes come from, the columns that make one
node, its properties and the extra labels it takes from a column (through a whitelist);
per relationship type, its table, the labels and columns of its two ends, whether it
stands for one row, for distinct pairs or for an aggregate of rows, its time window and
its properties. The renderings are generated from it:

- the embedded store's SQL, which derives nodes and relationships from the tables when
  they are asked for (:mod:`ringscope.graphs.embedded`);
- the rows the Neo4j store writes with each batch (:func:`node_rows`, :func:`rel_rows`,
  :func:`aggregate_rows`: DuckDB SQL over the side file) and the Cypher statements that
  write them (:mod:`ringscope.graphs.cypher`);
- the CSV files of the bulk import (:mod:`ringscope.graphs.neo4j_bulk`), from the same
  SQL as the batches' rows, so that both give the same properties and types.

Node ids are platform ids; a node made of several columns (an Identifier) has the id
``"<kind>:<value>"``. In Neo4j, times are ISO 8601 strings in UTC, roles the sorted
``|``-joined list, missing values are left out; relationships that windows look at
carry ``_t0`` and ``_t1`` (microseconds since the epoch, see :mod:`ringscope.graphs.cypher`),
and nodes and the relationships marked ``_load_id`` below carry the load that made them.
An Identifier of a kind the whitelist does not name gets no label but ``Identifier``.

The model as :func:`describe` renders it stands in the docstring of
:mod:`ringscope.graphs.store` (a test keeps that copy true).
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ringscope.contract import TABLES
from ringscope.graphs.tables import q
from ringscope.model import NODE_LABELS, REL_TYPES

#: How a property's values are typed: the contract's column types, and ``int`` for counts.
PropType = Literal["str", "roles", "ts", "float", "int"]

#: Extra labels of an Account by role (role -> label).
ROLE_LABELS: dict[str, str] = {"creator": "Creator", "seller": "Seller", "buyer": "Buyer"}
#: Extra labels of an Identifier by kind (kind -> label); other kinds get none.
IDENTIFIER_LABELS: dict[str, str] = {
    "device": "Device",
    "ip": "IP",
    "payment": "Payment",
    "phone": "Phone",
    "address": "Address",
}


@dataclass(frozen=True, slots=True)
class Prop:
    """A property: its name, its type, and the SQL that computes it from a row of the
    source table (for an aggregated relationship, from the group of rows)."""

    name: str
    type: PropType
    sql: str


@dataclass(frozen=True, slots=True)
class ExtraLabels:
    """The labels a node takes from the values of ``column``, through the whitelist
    ``labels`` ((value, label) pairs); ``several``: the column holds ``|``-joined values."""

    column: str
    labels: tuple[tuple[str, str], ...]
    several: bool


def id_sql(columns: Sequence[str]) -> str:
    """SQL of a node id made of ``columns``: the column itself, or the values joined by ``:``."""
    if len(columns) == 1:
        return columns[0]
    return "(" + " || ':' || ".join(columns) + ")"


@dataclass(frozen=True, slots=True)
class NodeType:
    """The nodes of one label: one per row of ``table`` when ``key`` is the table's key,
    else one per distinct value of ``key`` (whose properties then come from ``key`` alone)."""

    label: str
    table: str
    key: tuple[str, ...]
    props: tuple[Prop, ...]
    extra: ExtraLabels | None = None

    @property
    def one_per_row(self) -> bool:
        return self.key == TABLES[self.table].key

    @property
    def id(self) -> str:
        """SQL of the node id."""
        return id_sql(self.key)

    @property
    def extra_labels(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.extra.labels) if self.extra else ()


@dataclass(frozen=True, slots=True)
class End:
    """One end of a relationship: a node label and the columns of its id."""

    label: str
    key: tuple[str, ...]

    @property
    def id(self) -> str:
        return id_sql(self.key)


@dataclass(frozen=True, slots=True)
class Window:
    """The time a window looks at: a ``point`` (``start``), an ``interval`` ``[start,
    end]`` (a missing end: still open) or ``since`` (kept when ``start`` is before the
    window's end). ``start`` and ``end`` are SQL over the source rows."""

    kind: Literal["point", "interval", "since"]
    start: str
    end: str | None = None


#: ``row``: one relationship per row; ``distinct``: one per distinct pair of ends;
#: ``aggregate``: one per pair of ends, its properties aggregates of the pair's rows.
Grouping = Literal["row", "distinct", "aggregate"]


@dataclass(frozen=True, slots=True)
class RelType:
    """The relationships of one type, derived from the rows of ``table``.

    A row whose end column is missing (an optional column of the contract) makes none.
    ``load_id``: the relationship carries the load that made it (rollbacks look it up;
    the others go with a node of their load or are recomputed).
    """

    type: str
    table: str
    source: End
    target: End
    window: Window | None = None
    props: tuple[Prop, ...] = ()
    grouping: Grouping = "row"
    load_id: bool = False

    @property
    def ends(self) -> tuple[str, ...]:
        """The columns of both ends."""
        return (*self.source.key, *self.target.key)

    @property
    def optional(self) -> tuple[str, ...]:
        """The end columns a row may lack."""
        spec = TABLES[self.table]
        return tuple(c for c in self.ends if not spec.column(c).required)

    @property
    def when(self) -> str:
        """SQL: the rows that make a relationship."""
        return " AND ".join(f"{c} IS NOT NULL" for c in self.optional) or "TRUE"

    @property
    def where(self) -> str:
        """`` WHERE`` :attr:`when`, or nothing when every row makes one."""
        return f" WHERE {self.when}" if self.optional else ""


def _columns(table: str, *names: str) -> tuple[Prop, ...]:
    """The contract columns ``names`` of ``table`` (all of them when none) as properties."""
    spec = TABLES[table]
    return tuple(Prop(c.name, c.type, c.name) for c in spec.columns if not names or c.name in names)


def _count(kind: str) -> str:
    return f"count(*) FILTER (WHERE kind = '{kind}')"


NODES: dict[str, NodeType] = {
    n.label: n
    for n in (
        NodeType(
            "Account",
            "accounts",
            ("account_id",),
            _columns("accounts"),
            ExtraLabels("roles", tuple(ROLE_LABELS.items()), several=True),
        ),
        NodeType("Stream", "streams", ("stream_id",), _columns("streams")),
        NodeType("Product", "orders", ("product_id",), _columns("orders", "product_id")),
        NodeType("Order", "orders", ("order_id",), _columns("orders")),
        NodeType(
            "Identifier",
            "identifiers",
            ("kind", "value"),
            _columns("identifiers", "kind", "value"),
            ExtraLabels("kind", tuple(IDENTIFIER_LABELS.items()), several=False),
        ),
    )
}

_ACCOUNT, _STREAM, _ORDER = "Account", "Stream", "Order"

RELS: dict[str, RelType] = {
    r.type: r
    for r in (
        RelType(
            "HOSTED",
            "streams",
            End(_ACCOUNT, ("creator_id",)),
            End(_STREAM, ("stream_id",)),
            Window("interval", "started_at", "ended_at"),
        ),
        RelType(
            "ENGAGED",
            "engagements",
            End(_ACCOUNT, ("account_id",)),
            End(_STREAM, ("stream_id",)),
            Window("interval", "min(ts)", "max(ts)"),
            (
                Prop("views", "int", _count("view")),
                Prop("likes", "int", _count("like")),
                Prop("comments", "int", _count("comment")),
                Prop("shares", "int", _count("share")),
                Prop("gifts", "int", _count("gift")),
                Prop(
                    "gift_amount",
                    "float",
                    "coalesce(sum(amount) FILTER (WHERE kind = 'gift'), 0.0)",
                ),
                Prop("first_ts", "ts", "min(ts)"),
                Prop("last_ts", "ts", "max(ts)"),
            ),
            grouping="aggregate",
        ),
        RelType(
            "FOLLOWS",
            "follows",
            End(_ACCOUNT, ("follower_id",)),
            End(_ACCOUNT, ("creator_id",)),
            Window("point", "ts"),
            _columns("follows", "ts"),
            load_id=True,
        ),
        RelType(
            "PLACED",
            "orders",
            End(_ACCOUNT, ("buyer_id",)),
            End(_ORDER, ("order_id",)),
            Window("point", "ts"),
        ),
        RelType(
            "FOR",
            "orders",
            End(_ORDER, ("order_id",)),
            End("Product", ("product_id",)),
            Window("point", "ts"),
        ),
        RelType(
            "SELLS",
            "orders",
            End(_ACCOUNT, ("seller_id",)),
            End("Product", ("product_id",)),
            grouping="distinct",
            load_id=True,
        ),
        RelType(
            "ATTRIBUTED_TO",
            "orders",
            End(_ORDER, ("order_id",)),
            End(_ACCOUNT, ("creator_id",)),
            Window("point", "ts"),
        ),
        RelType(
            "IN_STREAM",
            "orders",
            End(_ORDER, ("order_id",)),
            End(_STREAM, ("stream_id",)),
            Window("point", "ts"),
        ),
        RelType(
            "AFFILIATE_OF",
            "affiliations",
            End(_ACCOUNT, ("creator_id",)),
            End(_ACCOUNT, ("seller_id",)),
            Window("since", "since"),
            _columns("affiliations", "commission_rate", "since"),
            load_id=True,
        ),
        RelType(
            "USES",
            "identifiers",
            End(_ACCOUNT, ("account_id",)),
            End("Identifier", ("kind", "value")),
            Window("interval", "first_seen", "last_seen"),
            _columns("identifiers", "first_seen", "last_seen"),
            load_id=True,
        ),
    )
}

#: The tables whose rows become graph elements (``labels`` stays in the tables only).
GRAPH_TABLES: tuple[str, ...] = tuple(
    name
    for name in TABLES
    if any(n.table == name for n in NODES.values()) or any(r.table == name for r in RELS.values())
)


def nodes_of(table: str) -> tuple[NodeType, ...]:
    """The node types made from ``table``'s rows, in the model's order."""
    return tuple(n for n in NODES.values() if n.table == table)


def rels_of(table: str) -> tuple[RelType, ...]:
    """The relationship types made from ``table``'s rows, in the model's order."""
    return tuple(r for r in RELS.values() if r.table == table)


def _check() -> None:
    """The model agrees with the data contract, the domain model and what its renderings
    assume (an ``AssertionError`` at import otherwise)."""
    assert tuple(NODES) == NODE_LABELS, (tuple(NODES), NODE_LABELS)
    assert tuple(RELS) == REL_TYPES, (tuple(RELS), REL_TYPES)
    for node in NODES.values():
        assert all(c in TABLES[node.table].names for c in node.key), node.label
        if not node.one_per_row:  # one node per distinct key: its properties come from it
            assert all(p.sql in node.key for p in node.props), node.label
        if node.extra is not None:
            assert node.extra.column in TABLES[node.table].names, node.label
    for rel in RELS.values():
        assert all(c in TABLES[rel.table].names for c in rel.ends), rel.type
        for end in (rel.source, rel.target):
            assert NODES[end.label].key == end.key or len(end.key) == 1, rel.type
        if rel.grouping == "distinct":
            assert rel.window is None and not rel.props, rel.type
        if rel.grouping == "aggregate":
            assert not rel.load_id, rel.type
        if rel.grouping == "row" and not rel.load_id:
            # removed with a node of its load: one end is a node made from the same rows
            per_row = [NODES[e.label] for e in (rel.source, rel.target)]
            assert any(n.table == rel.table and n.one_per_row for n in per_row), rel.type


_check()


# --------------------------------------------------------------------------- Neo4j's values


def iso_sql(sql: str) -> str:
    """SQL: a TIMESTAMPTZ as the text Neo4j holds, ``datetime.isoformat()`` of the UTC
    instant (``2026-01-02T03:04:05+00:00``, with ``.ffffff`` when there are microseconds)."""
    return (
        f"replace(strftime(timezone('UTC', {sql}), '%Y-%m-%dT%H:%M:%S.%f+00:00'), '.000000+', '+')"
    )


def roles_list_sql(sql: str) -> str:
    """SQL: the sorted, distinct roles of a ``|``-joined list (as ``_graphwalk.roles_text``)."""
    return (
        "list_sort(list_distinct(list_filter("
        f"list_transform(string_split({sql}, '|'), lambda x: trim(x)), lambda x: x <> '')))"
    )


def neo4j_sql(prop: Prop) -> str:
    """SQL: a property's value as Neo4j holds it."""
    if prop.type == "ts":
        return iso_sql(prop.sql)
    if prop.type == "roles":
        return f"array_to_string({roles_list_sql(prop.sql)}, '|')"
    return prop.sql


def extra_labels_sql(extra: ExtraLabels) -> str:
    """SQL: the extra labels of a node, each as ``;Label`` (``''`` when none), in the
    whitelist's order."""
    values = roles_list_sql(extra.column) if extra.several else None
    parts = []
    for value, label in extra.labels:
        test = f"list_contains({values}, '{value}')" if values else f"{extra.column} = '{value}'"
        parts.append(f"CASE WHEN {test} THEN ';{label}' ELSE '' END")
    return " || ".join(parts)


#: Types whose import-file header names them (the others are strings).
_CSV_TYPES: Mapping[str, str] = {"float": "double", "int": "long"}


def _as(sql: str, name: str, prop_type: str, csv: bool) -> str:
    """``sql AS name``: in an import file, the name with its type (``amount:double``)."""
    typed = f"{name}:{_CSV_TYPES[prop_type]}" if csv and prop_type in _CSV_TYPES else name
    return f"{sql} AS {q(typed)}"


def _window_columns(rel: RelType, csv: bool) -> list[str]:
    """``_t0`` and ``_t1``: the window's start and end in microseconds since the epoch
    (a point: both; ``since``: ``_t0`` only; no window: neither)."""
    w = rel.window
    if w is None:
        return []
    start = f"epoch_us({w.start})"
    out = [_as(start, "_t0", "int", csv)]
    if w.kind == "point":
        out.append(_as(start, "_t1", "int", csv))
    elif w.kind == "interval":
        assert w.end is not None
        out.append(_as(f"epoch_us({w.end})", "_t1", "int", csv))
    return out


def fresh_sql(table: str, columns: Sequence[str], rows: str, where: str = "") -> str:
    """SQL: the distinct values of ``columns`` in relation ``rows`` (rows of ``table`` just
    inserted: a table name) that no other stored row of ``table`` has: the nodes or
    pairs these rows are the first to imply."""
    cols = ", ".join(columns)
    keys = ", ".join(TABLES[table].key)
    return (
        f"(SELECT DISTINCT {cols} FROM {rows}{where} EXCEPT "
        f"SELECT {cols} FROM main.{table} t ANTI JOIN {rows} n USING ({keys}){where})"
    )


@functools.cache
def _node_select(node: NodeType, csv: bool) -> str:
    cols = [
        _as(node.id, f"id:ID({node.label})" if csv else "id", "str", False),
    ]
    if node.extra is not None:
        labels = extra_labels_sql(node.extra)
        cols.append(f"'{node.label}' || {labels} AS \":LABEL\"" if csv else f"{labels} AS _labels")
    cols += [_as(neo4j_sql(p), p.name, p.type, csv) for p in node.props]
    if csv:
        cols.append("_load_id" if node.one_per_row else "min(_load_id) AS _load_id")
    return ", ".join(cols)


def node_rows(node: NodeType, rows: str, *, fresh: bool = False) -> str:
    """SQL: the nodes of ``node`` that the rows of relation ``rows`` (its table's columns)
    imply, as the Neo4j store writes them: ``id``, the properties, and ``_labels`` (the
    extra labels as ``;Label`` pieces) when the label has extra ones.

    ``fresh`` (``rows`` the rows just inserted, a table name): only the nodes no other
    stored row implies (one node per distinct key; a node per row is new with its row).
    """
    select = _node_select(node, False)
    if node.one_per_row:
        return f"SELECT {select} FROM {rows}"
    key = ", ".join(node.key)
    source = fresh_sql(node.table, node.key, rows) if fresh else rows
    return f"SELECT {select} FROM {source} GROUP BY {key} ORDER BY {key}"


def node_file(node: NodeType) -> str:
    """SQL: an import file of every node of ``node`` (header names typed for the importer)."""
    select = _node_select(node, True)
    group = "" if node.one_per_row else f" GROUP BY {', '.join(node.key)}"
    return f"SELECT {select} FROM main.{node.table}{group}"


@functools.cache
def _rel_select(rel: RelType, csv: bool) -> str:
    start = f":START_ID({rel.source.label})" if csv else "_s"
    end = f":END_ID({rel.target.label})" if csv else "_t"
    cols = [_as(rel.source.id, start, "str", False), _as(rel.target.id, end, "str", False)]
    cols += [_as(neo4j_sql(p), p.name, p.type, csv) for p in rel.props]
    cols += _window_columns(rel, csv)
    if csv and rel.load_id:
        cols.append("_load_id" if rel.grouping == "row" else "min(_load_id) AS _load_id")
    return ", ".join(cols)


def rel_rows(rel: RelType, rows: str, *, fresh: bool = False) -> str:
    """SQL: the relationships of ``rel`` (not an aggregate: see :func:`aggregate_rows`)
    that the rows of relation ``rows`` imply, as the Neo4j store writes them: ``_s`` and
    ``_t`` (the ends' ids), the properties, ``_t0`` and ``_t1``.

    ``fresh`` (``rows`` the rows just inserted): of distinct pairs, only those no other
    stored row implies.
    """
    assert rel.grouping != "aggregate", rel.type
    select = _rel_select(rel, False)
    if rel.grouping == "row":
        return f"SELECT {select} FROM {rows}{rel.where}"
    ends = ", ".join(rel.ends)
    source = fresh_sql(rel.table, rel.ends, rows, rel.where) if fresh else rows
    return f"SELECT {select} FROM {source}{rel.where} GROUP BY {ends} ORDER BY {ends}"


def aggregate_rows(rel: RelType, pairs: str, *, batch: str | None = None) -> str:
    """SQL: the relationships of an aggregated ``rel`` of the pairs of ends in relation
    ``pairs``, each over every stored row of its pair (as :func:`rel_rows` gives them).

    With ``batch`` (the rows just inserted, a table name; ``pairs`` the same), a column
    ``_only`` says whether all of the pair's stored rows are in the batch: no earlier
    row made its relationship.
    """
    assert rel.grouping == "aggregate", rel.type
    ends = ", ".join(rel.ends)
    sql = (
        f"SELECT {_rel_select(rel, False)}, count(*) AS _n FROM main.{rel.table} "
        f"SEMI JOIN (SELECT DISTINCT {ends} FROM {pairs}) p USING ({ends})"
        f"{rel.where} GROUP BY {ends}"
    )
    if batch is None:
        return f"SELECT * EXCLUDE (_n) FROM ({sql})"
    counted = (
        f"SELECT {rel.source.id} AS _s, {rel.target.id} AS _t, count(*) AS _batch "
        f"FROM {batch}{rel.where} GROUP BY ALL"
    )
    return (
        f"SELECT g.* EXCLUDE (_n), g._n = b._batch AS _only FROM ({sql}) g "
        f"JOIN ({counted}) b ON g._s = b._s AND g._t = b._t"
    )


def pairs_without_rows(rel: RelType, pairs: str) -> str:
    """SQL: the pairs of ends in relation ``pairs`` (the ends' columns) that no stored row
    of ``rel``'s table has any more, as ``_s`` and ``_t``: their aggregate is gone."""
    match = " AND ".join(f"e.{c} = p.{c}" for c in rel.ends)
    return (
        f"SELECT {rel.source.id} AS _s, {rel.target.id} AS _t FROM {pairs} p "
        f"WHERE NOT EXISTS (SELECT 1 FROM main.{rel.table} e WHERE {match})"
    )


def rel_file(rel: RelType) -> str:
    """SQL: an import file of every relationship of ``rel``."""
    select = _rel_select(rel, True)
    group = "" if rel.grouping == "row" else f" GROUP BY {', '.join(rel.ends)}"
    return f"SELECT {select} FROM main.{rel.table}{rel.where}{group}"


# --------------------------------------------------------------------------- documentation


def _listed(head: str, parts: Sequence[str], width: int = 88) -> str:
    """One bullet, wrapped: ``head`` then ``parts`` joined by ``; ``."""
    return textwrap.fill(
        f"{head}: {'; '.join(parts)}.", width=width, initial_indent="- ", subsequent_indent="  "
    )


def _cols(columns: Sequence[str]) -> str:
    return columns[0] if len(columns) == 1 else f"({', '.join(columns)})"


def _props(props: Sequence[Prop]) -> str:
    return "properties " + ", ".join(f"{p.name} ({p.type})" for p in props)


def _time(rel: RelType) -> str:
    w = rel.window
    if w is None:
        return "no time (always kept)"
    named = {p.sql: p.name for p in rel.props}
    start = named.get(w.start, w.start)
    if w.kind == "point":
        return f"time {start}"
    if w.kind == "since":
        return f"time {start} (kept if {start} < end)"
    assert w.end is not None
    return f"time [{start}, {named.get(w.end, w.end)}]"


def describe() -> str:
    """The model in words: a bullet per node label and per relationship type."""
    nodes = []
    for n in NODES.values():
        per = "a row" if n.one_per_row else f"a distinct {_cols(n.key)}"
        ident = n.key[0] if len(n.key) == 1 else '"' + ":".join(f"<{c}>" for c in n.key) + '"'
        parts = [f"{per} of {n.table}, id {ident}", _props(n.props)]
        if n.extra is not None:
            parts.append(f"labels {', '.join(n.extra_labels)} by {n.extra.column}")
        nodes.append(_listed(n.label, parts))
    rels = []
    for r in RELS.values():
        per = {"row": "a row", "distinct": "a distinct pair", "aggregate": "a pair"}[r.grouping]
        source = f"{per} of {r.table}"
        if r.optional:
            source += f" with {' and '.join(r.optional)}"
        parts = [f"{source}, {_cols(r.source.key)} -> {_cols(r.target.key)}"]
        if r.grouping == "aggregate":
            parts.append("aggregated over the pair's rows")
        if r.props:
            parts.append(_props(r.props))
        parts.append(_time(r))
        if r.load_id:
            parts.append("marked with _load_id")
        rels.append(_listed(f"{r.type} ({r.source.label} -> {r.target.label})", parts))
    return "\n".join(["Nodes:", "", *nodes, "", "Relationships:", "", *rels])
