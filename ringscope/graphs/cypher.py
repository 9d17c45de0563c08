"""Every Cypher statement of the Neo4j store, in one place.

Values always travel as parameters. Labels and relationship types appear in the
text only from the whitelists of the graph model (:data:`NODE_LABELS`,
:data:`REL_TYPES`, and the extra labels of :mod:`ringscope.graphs.graph_model`); the
statements that need one are built by the functions below, which refuse anything
else. The load and rollback statements are generated from the model
(:mod:`ringscope.graphs.graph_model`), one per node label and relationship type.

Conventions of the stored graph:

- every node of the model has a unique ``id`` (its platform id; an Identifier's
  is ``"<kind>:<value>"``);
- nodes, and the relationships the model marks ``load_id``, carry ``_load_id``, the
  load that created them (for rollbacks);
- relationships that windows look at carry ``_t0`` and ``_t1``: the start and end
  of their interval in microseconds since the epoch (``_t1`` absent means "still
  open"; a point in time has ``_t0 = _t1``; no ``_t0`` means "always kept").
  Properties starting with ``_`` are never handed out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ringscope.graphs.graph_model import NODES, RELS, NodeType, RelType, nodes_of, rels_of
from ringscope.model import NODE_LABELS, REL_TYPES

#: Every label a node of the model may carry beyond its own (a whitelist).
EXTRA_LABELS: tuple[str, ...] = tuple(label for n in NODES.values() for label in n.extra_labels)
#: Nodes of the model that have a uniqueness constraint on ``id``.
ID_LABELS: tuple[str, ...] = (*NODE_LABELS, "Run")
#: The label of the one node that names the pair of a database and its side file (see
#: :data:`STORE_STATE`). Not a node of the marketplace: never in :data:`NODE_LABELS`, so
#: neighbourhoods, paths and counts do not show it.
STORE_INFO_LABEL = "StoreInfo"
#: The ``key`` of that node (unique): one per database.
STORE_INFO_KEY = "ringscope"

# --------------------------------------------------------------------------- schema

CONSTRAINTS: tuple[str, ...] = (
    *(
        f"CREATE CONSTRAINT {label.lower()}_id IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"
        for label in ID_LABELS
    ),
    "CREATE CONSTRAINT cluster_run_id IF NOT EXISTS "
    "FOR (n:Cluster) REQUIRE (n.run_id, n.id) IS UNIQUE",
    "CREATE INDEX decision_finding IF NOT EXISTS FOR (n:Decision) ON (n.finding_id)",
    # the newest runs, in the index's order (see RUN_KEYS_NEWEST)
    "CREATE INDEX run_started_ns IF NOT EXISTS FOR (n:Run) ON (n.started_ns)",
    # a decision is linked to the case's clusters of every run (see CREATE_DECISION)
    "CREATE INDEX cluster_id IF NOT EXISTS FOR (n:Cluster) ON (n.id)",
    "CREATE CONSTRAINT job_lease_name IF NOT EXISTS FOR (n:JobLease) REQUIRE n.name IS UNIQUE",
    f"CREATE CONSTRAINT store_info_key IF NOT EXISTS FOR (n:{STORE_INFO_LABEL}) "
    "REQUIRE n.key IS UNIQUE",
    # What rollbacks look up: the elements a load created (without these, every
    # rollback step scans the whole label or relationship type).
    *(
        f"CREATE INDEX {label.lower()}_load_id IF NOT EXISTS FOR (n:{label}) ON (n._load_id)"
        for label in NODES
    ),
    # Markers of batches whose side-file rows are not committed yet (see MARK_PENDING).
    "CREATE INDEX pending_batch_table IF NOT EXISTS FOR (n:_PendingBatch) ON (n.table)",
    "CREATE INDEX pending_batch_token IF NOT EXISTS FOR (n:_PendingBatch) ON (n.token)",
    *(
        f"CREATE INDEX {rel.lower()}_load_id IF NOT EXISTS FOR ()-[r:{rel}]-() ON (r._load_id)"
        for rel, r in RELS.items()
        if r.load_id
    ),
)

#: Wait until every index (and constraint) is online (after a bulk import, see
#: ``neo4j_bulk``: the schema is created on the imported data).
AWAIT_INDEXES = "CALL db.awaitIndexes($timeout)"

# --------------------------------------------------------------------------- loading
# Every load statement is one ``UNWIND $rows`` over one label (and, for labels with extra
# ones, one combination of them) or one relationship type; relationships are matched on
# both ends by id (unique-index seeks). The rows come from the model's SQL
# (``graph_model.node_rows``, ``rel_rows``, ``aggregate_rows``): a node's ``id`` and
# properties, a relationship's ``_s``, ``_t`` (its ends' ids), properties, ``_t0`` and
# ``_t1``. Two versions of each: CREATE, for elements the side file has just proved new
# (a row new to the table; a product, identifier or SELLS pair no stored row had), used
# when the store knows that no earlier write of the table can have reached Neo4j alone
# (see ``Neo4jStore.write_batch``); and MERGE with absolute values otherwise, so that
# writing a lost batch again repairs it exactly. ``$load_id`` marks what a load created.


def _set(var: str, names: Sequence[str], src: str = "row") -> str:
    """``var.a = row.a, var.b = row.b, ...``: properties named one by one. (A map
    ``SET var += row.props`` hides which properties change, and the planner then adds
    Eager operators that buffer every row of the statement.) Names come from the
    model, never from data; a ``null`` value removes the property."""
    return ", ".join(f"{var}.{name} = {src}.{name}" for name in names)


def _map(names: Sequence[str], src: str = "row") -> str:
    """``{id: row.id, a: row.a, ..., _load_id: $load_id}``: the properties of a created
    node (a ``null`` value sets nothing)."""
    return (
        "{" + ", ".join([f"{n}: {src}.{n}" for n in ("id", *names)] + ["_load_id: $load_id"]) + "}"
    )


def _extra_labels(node: NodeType, labels: Sequence[str]) -> str:
    """``:Creator:Buyer``: extra labels of ``node``, checked against its whitelist."""
    unknown = [label for label in labels if label not in node.extra_labels]
    if unknown:
        raise ValueError(f"unknown {node.label} labels {unknown}")
    return "".join(f":{label}" for label in labels)


@functools.cache
def node_statement(node: NodeType, labels: tuple[str, ...] = (), *, create: bool) -> str:
    """Write the nodes ``$rows`` of ``node`` that carry the extra ``labels`` (one statement
    per combination): CREATE them with their properties, or MERGE them by id and set
    their properties (a node per distinct key: on creation only, its properties being
    those of its id) and labels."""
    extra = _extra_labels(node, labels)
    names = [p.name for p in node.props]
    if create:
        return f"""
UNWIND $rows AS row
CREATE (:{node.label}{extra} {_map(names)})
"""
    merge = f"""
UNWIND $rows AS row
MERGE (n:{node.label} {{id: row.id}})
"""
    if node.one_per_row:
        sets = _set("n", names) + (f", n{extra}" if extra else "")
        return merge + f"ON CREATE SET n._load_id = $load_id\nSET {sets}\n"
    merge += f"ON CREATE SET n._load_id = $load_id, {_set('n', names)}\n"
    return merge + (f"SET n{extra}\n" if extra else "")


@functools.cache
def rel_statement(rel: RelType, *, create: bool) -> str:
    """``UNWIND $rows``: match both ends by id, then CREATE or MERGE the relationship and
    set its properties, ``_t0`` and ``_t1``, and ``_load_id`` (on creation) when the
    model marks it."""
    names = [p.name for p in rel.props]
    if rel.window is not None:
        names += ["_t0"] if rel.window.kind == "since" else ["_t0", "_t1"]
    head = f"""
UNWIND $rows AS row
MATCH (a:{rel.source.label} {{id: row._s}})
MATCH (b:{rel.target.label} {{id: row._t}})
"""
    sets = _set("r", names)
    if create:
        items = ", ".join(
            (["r._load_id = $load_id"] if rel.load_id else []) + ([sets] if sets else [])
        )
        return head + f"CREATE (a)-[r:{rel.type}]->(b)\n" + (f"SET {items}\n" if items else "")
    body = f"MERGE (a)-[r:{rel.type}]->(b)\n"
    if rel.load_id:
        body += "ON CREATE SET r._load_id = $load_id\n"
    return head + body + (f"SET {sets}\n" if sets else "")


@functools.cache
def delete_rels(rel: RelType) -> str:
    """Delete the relationships ``$rows`` (``_s``, ``_t``) of ``rel``: aggregated ones whose
    pair has no row left."""
    return f"""
UNWIND $rows AS row
MATCH (:{rel.source.label} {{id: row._s}})-[r:{rel.type}]->(:{rel.target.label} {{id: row._t}})
DELETE r
"""


#: A batch's graph is written, its side-file rows not yet committed (one node per batch).
MARK_PENDING = """
CREATE (:_PendingBatch {token: $token, table: $table, load_id: $load_id})
"""

PENDING_TABLES = "MATCH (m:_PendingBatch {table: $table}) RETURN count(m) AS n"

CLEAR_PENDING = "MATCH (m:_PendingBatch {token: $token}) DELETE m"

CLEAR_PENDING_LOAD = "MATCH (m:_PendingBatch {table: $table, load_id: $load_id}) DELETE m"

# --------------------------------------------------------------------------- rollback
# What a load created for a table, in this order: the nodes of its rows (with their
# relationships: HOSTED with its Stream; PLACED, FOR, ATTRIBUTED_TO and IN_STREAM with
# their Order), the relationships marked with the load, those of distinct pairs no row
# supports any more, then the nodes of distinct keys that nothing points at any more.
# ENGAGED is recomputed from the side file instead.


def _delete_nodes(label: str) -> str:
    """Nodes a load created, with their relationships."""
    return f"""
MATCH (n:{label} {{_load_id: $load_id}})
WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS removed
"""


def _delete_marked(rel: str) -> str:
    """Relationships a load created."""
    return f"""
MATCH ()-[r:{rel} {{_load_id: $load_id}}]->()
WITH r LIMIT $limit
DELETE r
RETURN count(*) AS removed
"""


def _delete_orphans(label: str) -> str:
    """Nodes a load created that nothing points at any more."""
    return f"""
MATCH (n:{label} {{_load_id: $load_id}})
WHERE NOT EXISTS {{ (n)--() }}
WITH n LIMIT $limit
DELETE n
RETURN count(*) AS removed
"""


#: Relationships of distinct pairs a load created that no stored row supports any more,
#: per type: how Neo4j finds a supporting row (SELLS: an order of the seller for the
#: product, found from the product).
UNSUPPORTED: dict[str, str] = {
    "SELLS": """
MATCH (s:Account)-[r:SELLS {_load_id: $load_id}]->(p:Product)
WHERE NOT EXISTS { MATCH (o:Order)-[:FOR]->(p) WHERE o.seller_id = s.id }
WITH r LIMIT $limit
DELETE r
RETURN count(*) AS removed
""",
}


@functools.cache
def rollback_statements(table: str) -> tuple[str, ...]:
    """The statements that remove what a load created for ``table``'s rows (each with
    ``$load_id`` and ``$limit``, returning ``removed``; run until it is 0)."""
    nodes, rels = nodes_of(table), rels_of(table)
    return (
        *(_delete_nodes(n.label) for n in nodes if n.one_per_row),
        *(_delete_marked(r.type) for r in rels if r.load_id and r.grouping == "row"),
        *(UNSUPPORTED[r.type] for r in rels if r.load_id and r.grouping == "distinct"),
        *(_delete_orphans(n.label) for n in nodes if not n.one_per_row),
    )


# --------------------------------------------------------------------------- reading


def count_label(label: str) -> str:
    """``MATCH (n:Label) RETURN count(n)`` for a whitelisted label (served by the count store)."""
    allowed = (*NODE_LABELS, *EXTRA_LABELS)
    if label not in allowed:
        raise ValueError(f"unknown node label {label!r}")
    return f"MATCH (n:{label}) RETURN count(n) AS n"


def count_rel(rel_type: str) -> str:
    """``MATCH ()-[r:TYPE]->() RETURN count(r)`` for a whitelisted type (count store)."""
    check_rel_types([rel_type])
    return f"MATCH ()-[r:{rel_type}]->() RETURN count(r) AS n"


def check_rel_types(rel_types: Sequence[str]) -> tuple[str, ...]:
    """The relationship types, checked against the model's whitelist."""
    unknown = [t for t in rel_types if t not in REL_TYPES]
    if unknown:
        raise ValueError(f"unknown relationship types {unknown}; expected some of {REL_TYPES}")
    return tuple(rel_types)


def seeds_query(label: str) -> str:
    """Nodes of one whitelisted label by id, with their element ids."""
    if label not in NODE_LABELS:
        raise ValueError(f"unknown node label {label!r}; expected one of {NODE_LABELS}")
    return f"""
MATCH (n:{label}) WHERE n.id IN $ids
RETURN elementId(n) AS eid, n.id AS id, properties(n) AS props
"""


#: A relationship is inside the window [$start, $end) (microseconds; null = unbounded)
#: when its interval [_t0, _t1] overlaps it; relationships without _t0 are always inside.
_IN_WINDOW = """
(r._t0 IS NULL OR (($end IS NULL OR r._t0 < $end)
                   AND ($start IS NULL OR r._t1 IS NULL OR r._t1 >= $start)))
"""

#: The not yet seen neighbours of a frontier (element ids), over allowed relationships.
EXPAND = f"""
MATCH (n)-[r]-(m)
WHERE elementId(n) IN $frontier AND type(r) IN $types AND {_IN_WINDOW}
  AND NOT elementId(m) IN $seen
WITH DISTINCT m
WITH m, [l IN labels(m) WHERE l IN $node_labels][0] AS label
WHERE label IS NOT NULL
RETURN elementId(m) AS eid, label, m.id AS id, properties(m) AS props
ORDER BY label, id
LIMIT $want
"""

#: Every allowed relationship in the window between two held nodes (``$held``, and
#: ``$held_set``: the same element ids as the keys of a map). Each relationship is found
#: from its start node: the held nodes' outgoing relationships are read, never their
#: incoming ones. The end is looked up in the map, which the planner cannot turn into a
#: seek: with ``elementId(b) IN $held`` it started from the ends and read every incoming
#: relationship of the held streams, products and identifiers (thousands each: 3,915
#: relationships read for the 11 nodes of one account's neighbourhood, 11 to 25 now).
EDGES_BETWEEN = f"""
MATCH (a)-[r]->(b)
WHERE elementId(a) IN $held AND $held_set[elementId(b)] IS NOT NULL AND type(r) IN $types
  AND {_IN_WINDOW}
RETURN elementId(a) AS a, type(r) AS type, elementId(b) AS b, properties(r) AS props
"""


def held_params(held: Sequence[str]) -> dict[str, Any]:
    """The parameters of :data:`EDGES_BETWEEN` for the element ids ``held``."""
    return {"held": list(held), "held_set": dict.fromkeys(held, True)}


def shortest_paths_query(
    a_label: str, b_label: str, rel_types: Sequence[str], max_hops: int
) -> str:
    """All shortest undirected paths between two nodes over whitelisted types."""
    for label in (a_label, b_label):
        if label not in NODE_LABELS:
            raise ValueError(f"unknown node label {label!r}; expected one of {NODE_LABELS}")
    types = "|".join(check_rel_types(rel_types))
    if not isinstance(max_hops, int) or max_hops < 1:
        raise ValueError(f"max_hops must be a positive integer, got {max_hops!r}")
    return f"""
MATCH (a:{a_label} {{id: $a}}), (b:{b_label} {{id: $b}})
MATCH p = allShortestPaths((a)-[:{types}*..{max_hops}]-(b))
WITH p LIMIT $max_paths
RETURN [n IN nodes(p) | [[l IN labels(n) WHERE l IN $node_labels][0], n.id, properties(n)]]
         AS nodes
"""


def node_query(label: str) -> str:
    """One node of a whitelisted label by id."""
    if label not in NODE_LABELS:
        raise ValueError(f"unknown node label {label!r}; expected one of {NODE_LABELS}")
    return f"MATCH (n:{label} {{id: $id}}) RETURN properties(n) AS props"


# --------------------------------------------------------------------------- runs and findings

MERGE_RUN = """
MERGE (r:Run {id: $id})
SET r += $props
"""

RUN_EXISTS = "MATCH (r:Run {id: $id}) RETURN r.status AS status"

DELETE_RUN_CLUSTERS = """
MATCH (c:Cluster {run_id: $run_id})
DETACH DELETE c
"""

CREATE_CLUSTERS = """
MATCH (run:Run {id: $run_id})
UNWIND $rows AS row
CREATE (c:Cluster {run_id: $run_id, id: row.id, kind: row.kind, score: row.score,
                   rank: row.rank, finding: row.finding})
CREATE (c)-[:FOUND_IN]->(run)
WITH c, row
UNWIND row.members AS m
MATCH (a:Account {id: m.account_id})
CREATE (a)-[:MEMBER_OF {role: m.role, score: m.score}]->(c)
"""

LINK_DECISIONS_TO_CLUSTERS = """
MATCH (d:Decision), (c:Cluster {run_id: $run_id})
WHERE d.finding_id = c.id
MERGE (d)-[:DECIDES]->(c)
"""

GET_RUN = "MATCH (r:Run {id: $id}) RETURN properties(r) AS props"

#: The runs' order keys only (of status ``$status``, every run when null), without their
#: policies and summaries: the store orders them by ``started_at`` as a time, then ``seq``.
#: With ``status`` and ``finished_at``, which change whenever a run's other properties do
#: (``begin_run`` writes them all; ``complete_run`` and ``fail_run`` set both with the
#: summary), so that a reader can tell whether the properties it read before still hold.
RUN_KEYS = """
MATCH (r:Run) WHERE $status IS NULL OR r.status = $status
RETURN r.id AS id, r.started_at AS started_at, r.seq AS seq, r.status AS status,
       r.finished_at AS finished_at
"""

#: :data:`RUN_KEYS` of the ``$limit`` newest runs, ordered by the server the way the
#: store orders them (the start as a time, then ``seq``, then id), read in the order of
#: the index on ``started_ns`` (the start in ns since the epoch): a nightly job keeps a
#: run a night, and a page that wants the newest one or twenty should neither take in
#: every run's keys (1,000 runs cost the queue 40 ms, most of it the app's) nor have
#: the server parse every run's start (6 ms of its CPU).
RUN_KEYS_NEWEST = """
MATCH (r:Run) WHERE r.started_ns IS NOT NULL AND ($status IS NULL OR r.status = $status)
WITH r ORDER BY r.started_ns DESC, coalesce(r.seq, 0) DESC, r.id DESC
LIMIT $limit
RETURN r.id AS id, r.started_at AS started_at, r.seq AS seq, r.status AS status,
       r.finished_at AS finished_at
"""

#: ``started_ns`` for runs recorded before it was (run when the store is opened).
RUN_STARTED_NS = """
MATCH (r:Run) WHERE r.started_ns IS NULL
WITH r, datetime(r.started_at) AS t
SET r.started_ns = t.epochSeconds * 1000000000 + t.nanosecond
"""

#: Runs by id, whole.
RUNS_BY_ID = "MATCH (r:Run) WHERE r.id IN $ids RETURN properties(r) AS props"

FINDINGS = """
MATCH (c:Cluster {run_id: $run_id})
RETURN c.finding AS finding ORDER BY c.rank
"""

CREATE_DECISION = """
CREATE (d:Decision {finding_id: $finding_id, decision: $decision, decided_by: $decided_by,
                    decided_at: $decided_at, note: $note, seq: $seq})
WITH d
OPTIONAL MATCH (c:Cluster {id: $finding_id})
FOREACH (x IN CASE WHEN c IS NULL THEN [] ELSE [c] END | MERGE (d)-[:DECIDES]->(x))
"""

DECISIONS = """
MATCH (d:Decision)
RETURN properties(d) AS props ORDER BY d.decided_at, d.seq
"""

#: The latest decision of every case that has one (what the queue shows): one row per
#: case instead of every decision.
LATEST_DECISIONS = """
MATCH (d:Decision)
WITH d ORDER BY d.decided_at, d.seq
WITH d.finding_id AS finding_id, collect(d.decision) AS decisions
RETURN finding_id, decisions[-1] AS decision
"""

#: The latest decision of the cases ``$cases`` that have one, through the index on
#: ``Decision.finding_id``: what a run's queue needs, however many decisions older
#: cases have gathered (every decision ever recorded is kept).
LATEST_DECISIONS_OF = """
MATCH (d:Decision) WHERE d.finding_id IN $cases
WITH d ORDER BY d.decided_at, d.seq
WITH d.finding_id AS finding_id, collect(d.decision) AS decisions
RETURN finding_id, decisions[-1] AS decision
"""

#: One case's decisions, through the index on ``Decision.finding_id`` (a predicate
#: ``$finding_id IS NULL OR ...`` would read every decision).
CASE_DECISIONS = """
MATCH (d:Decision {finding_id: $finding_id})
RETURN properties(d) AS props ORDER BY d.decided_at, d.seq
"""

# --------------------------------------------------------------------------- maintenance

#: Up to ``$limit`` nodes with their relationships; the audit log's ``AuditEntry`` nodes
#: only when ``$audit`` is true.
WIPE_BATCH = """
MATCH (n)
WHERE $audit OR NOT n:AuditEntry
WITH n LIMIT $limit
DETACH DELETE n
RETURN count(*) AS removed
"""

# --------------------------------------------------------------------------- store pairing
# A Neo4j store is a database and a side file that belong together: both hold the same
# ``store_id`` (see ``Neo4jStore``), the database in its one StoreInfo node.

#: The database's store id (``null`` when none) and its nodes per label of
#: :data:`NODE_LABELS` (``counts``, in that order): an index seek and one count-store
#: lookup per label (``COUNT {}`` subqueries: Neo4j 5.3 or later).
STORE_STATE = (
    f"OPTIONAL MATCH (s:{STORE_INFO_LABEL} {{key: $key}})\n"
    "RETURN s.store_id AS store_id, ["
    + ", ".join(f"COUNT {{ (:{label}) }}" for label in NODE_LABELS)
    + "] AS counts\n"
)

#: Take the StoreInfo node's write lock (creating the node when missing), so that two
#: stores claiming the database at once are serialised; :data:`CLAIM_STORE` follows in
#: the same transaction.
LOCK_STORE = f"""
MERGE (s:{STORE_INFO_LABEL} {{key: $key}})
SET s._lock = true
"""

#: Give the database the store id ``$store_id`` unless it has one (another store claimed
#: it first); returns the id it holds.
CLAIM_STORE = f"""
MATCH (s:{STORE_INFO_LABEL} {{key: $key}})
REMOVE s._lock
SET s.store_id = coalesce(s.store_id, $store_id)
RETURN s.store_id AS store_id
"""

# --------------------------------------------------------------------------- audit log

#: Entries (maps of seq, at, who, action, subject, detail) appended in one statement.
APPEND_AUDIT = """
UNWIND $entries AS e
CREATE (:AuditEntry {seq: e.seq, at: e.at, who: e.who, action: e.action, subject: e.subject,
                     detail: e.detail})
"""

AUDIT_LOG = """
MATCH (a:AuditEntry)
WHERE ($who IS NULL OR a.who = $who) AND ($action IS NULL OR a.action = $action)
  AND ($subject IS NULL OR a.subject = $subject)
RETURN properties(a) AS props ORDER BY a.seq DESC SKIP $offset LIMIT $limit
"""

# --------------------------------------------------------------------------- job leases
# One node per lease. SET takes the node's write lock, so two jobs acquiring at once
# are serialised by the database; expiry is measured on the server's clock.

LEASE_LOCK = """
MERGE (l:JobLease {name: $name})
SET l.checked_at = timestamp()
RETURN properties(l) AS props, timestamp() AS now
"""

LEASE_TAKE = """
MATCH (l:JobLease {name: $name})
SET l.token = $token, l.holder = $holder, l.expires_at = timestamp() + $ttl_ms
"""

LEASE_RENEW = """
MATCH (l:JobLease {name: $name, token: $token})
SET l.expires_at = timestamp() + $ttl_ms
RETURN count(l) AS held
"""

LEASE_RELEASE = """
MATCH (l:JobLease {name: $name, token: $token})
REMOVE l.token, l.holder, l.expires_at
"""
