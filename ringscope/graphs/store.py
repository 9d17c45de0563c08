"""The ``GraphStore`` protocol: what every store (embedded, Neo4j) offers.

The semantics below are the contract that ``tests/contract/`` checks on every
store; where a choice could differ between stores (ties, truncation, time
windows), it is fixed here.

The graph model (DESIGN.md), as :mod:`ringscope.graphs.graph_model` declares it and
:func:`~ringscope.graphs.graph_model.describe` renders it (every store's nodes,
relationships and their properties are generated from that declaration):

Nodes:

- Account: a row of accounts, id account_id; properties account_id (str), roles (roles),
  created_at (ts), country (str), status (str); labels Creator, Seller, Buyer by roles.
- Stream: a row of streams, id stream_id; properties stream_id (str), creator_id (str),
  started_at (ts), ended_at (ts), title (str).
- Product: a distinct product_id of orders, id product_id; properties product_id (str).
- Order: a row of orders, id order_id; properties order_id (str), buyer_id (str),
  seller_id (str), product_id (str), amount (float), status (str), ts (ts), creator_id
  (str), stream_id (str), commission (float), refunded_at (ts).
- Identifier: a distinct (kind, value) of identifiers, id "<kind>:<value>"; properties
  kind (str), value (str); labels Device, IP, Payment, Phone, Address by kind.

Relationships:

- HOSTED (Account -> Stream): a row of streams, creator_id -> stream_id; time
  [started_at, ended_at].
- ENGAGED (Account -> Stream): a pair of engagements, account_id -> stream_id;
  aggregated over the pair's rows; properties views (int), likes (int), comments (int),
  shares (int), gifts (int), gift_amount (float), first_ts (ts), last_ts (ts); time
  [first_ts, last_ts].
- FOLLOWS (Account -> Account): a row of follows, follower_id -> creator_id; properties
  ts (ts); time ts; marked with _load_id.
- PLACED (Account -> Order): a row of orders, buyer_id -> order_id; time ts.
- FOR (Order -> Product): a row of orders, order_id -> product_id; time ts.
- SELLS (Account -> Product): a distinct pair of orders, seller_id -> product_id; no
  time (always kept); marked with _load_id.
- ATTRIBUTED_TO (Order -> Account): a row of orders with creator_id, order_id ->
  creator_id; time ts.
- IN_STREAM (Order -> Stream): a row of orders with stream_id, order_id -> stream_id;
  time ts.
- AFFILIATE_OF (Account -> Account): a row of affiliations, creator_id -> seller_id;
  properties commission_rate (float), since (ts); time since (kept if since < end);
  marked with _load_id.
- USES (Account -> Identifier): a row of identifiers, account_id -> (kind, value);
  properties first_seen (ts), last_seen (ts); time [first_seen, last_seen]; marked with
  _load_id.

A missing end of an interval (``ended_at``, ``last_seen``) means "still open".
An edge is inside the window ``[start, end)`` when its interval overlaps it.

Choices every store makes the same way: missing properties are left out
(Neo4j cannot store nulls); HOSTED, PLACED, FOR, SELLS, ATTRIBUTED_TO and
IN_STREAM carry no properties; ENGAGED properties cover all of a pair's
events (the window only decides whether the edge is shown); between two
consecutive nodes of a path the relationship smallest by (type, source,
target) is used. Invalid arguments (unknown table, column, label or type,
``hops < 0``, ``limit < 1``) raise ``ValueError``; ``shortest_path`` raises
``NotFoundError`` when an end does not exist. Runs order newest first by
``started_at``, decisions oldest first by ``decided_at``, ties in recording order.

Node ids are platform ids; an Identifier's id is ``"<kind>:<value>"``.
Node properties are JSON-able: timestamps as ISO 8601 strings in UTC
(``datetime.isoformat()`` of an aware UTC datetime), roles as the ``|``-joined
sorted role list. ENGAGED carries ``views, likes, comments, shares, gifts``
(ints), ``gift_amount`` (float) and ``first_ts, last_ts``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import pandas as pd

from ringscope.graphs._graphwalk import check_node_refs, check_rel_types, check_window
from ringscope.model import (
    BatchResult,
    Decision,
    Finding,
    LoadReport,
    NodeRef,
    Path,
    Run,
    Subgraph,
)

Entity = Literal["account", "stream"]


class Walk(NamedTuple):
    """A checked neighbourhood walk: the seeds, the hops, the allowed relationship
    types and the time window (``None``: open)."""

    seeds: list[NodeRef]
    hops: int
    rels: tuple[str, ...]
    start: datetime | None
    end: datetime | None


class AuditQuery(NamedTuple):
    """A checked audit-log read: filters (``None``: any), page size and offset."""

    who: str | None
    action: str | None
    subject: str | None
    limit: int
    offset: int


@runtime_checkable
class LoadTarget(Protocol):
    """What a load writes to: every store, and a Neo4j store's side file alone (the bulk
    import fills one before the database exists, see :mod:`ringscope.graphs.neo4j_bulk`)."""

    def write_batch(self, table: str, frame: pd.DataFrame, load_id: str) -> BatchResult:
        """Write one validated, normalised batch of ``table`` atomically.

        Rows whose key is already stored with identical values are skipped
        (``duplicates``); rows whose key is stored with other values are not
        written and their batch positions are returned in ``conflicts``. Either
        the whole batch (minus those) is written, or nothing (on error,
        ``StoreError``). Rows written carry ``load_id`` so that
        :meth:`rollback_load` can remove them.
        """
        ...

    def rollback_load(self, load_id: str, table: str) -> int:
        """Remove every row of ``table`` that the load ``load_id`` inserted (and
        the graph elements only they created). Returns the number of rows removed."""
        ...

    def known_ids(self, entity: Entity, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` that name a stored account or stream."""
        ...

    def record_load(self, report: LoadReport) -> None:
        """Keep the report of a finished load (for fingerprints and audit)."""
        ...


@runtime_checkable
class GraphStore(LoadTarget, Protocol):
    """A store of the marketplace graph, the detectors' tables, runs and decisions.

    A store may subclass it to take the default methods of the optional abilities
    (:meth:`findings_for_account`, :meth:`queue_state`, :meth:`case_state`,
    :meth:`warm_up`), which read through the other methods; a store that can do better
    (in SQL, in one transaction) overrides them.
    """

    uri: str

    def loads(self) -> list[LoadReport]:
        """Every recorded load, oldest first."""
        ...

    def fingerprint(self) -> str:
        """SHA-256 (hex) over each recorded load's fingerprint (UTF-8) followed by ``\\n``,
        oldest first."""
        ...

    # ------------------------------------------------------------------ reading
    def counts(self) -> dict[str, int]:
        """Rows per table of the data contract (every table, 0 when empty)."""
        ...

    def graph_counts(self) -> dict[str, int]:
        """Nodes per label and relationships per type of the graph model."""
        ...

    def table(self, name: str, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A whole table in the normalised form of ``ringscope.contract``, sorted by key."""
        ...

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
        """Nodes within ``hops`` of the seeds, relationships taken in either direction.

        Breadth first: level 0 is the seeds that exist (``NotFoundError`` if
        none does); each next level is the not yet seen neighbours of the
        previous one over the allowed relationships inside the window, sorted
        by (label, id) and added while fewer than ``limit`` nodes are held.
        When a level does not fit, the result is ``truncated`` and the walk
        stops. Edges: every allowed relationship in the window between two
        returned nodes. ``ValueError``: negative ``hops``, ``limit`` < 1, an unknown
        label or relationship type. A store walks in :meth:`_neighbourhood`.
        """
        if hops < 0:
            raise ValueError(f"hops: must be >= 0, got {hops}")
        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        start, end = check_window(start, end)
        walk = Walk(check_node_refs(seeds, "seeds"), hops, check_rel_types(rel_types), start, end)
        return self._neighbourhood(walk, limit)

    def _neighbourhood(self, walk: Walk, limit: int) -> Subgraph:
        """:meth:`neighbourhood` of a checked ``walk``."""
        ...

    def shortest_path(
        self,
        a: NodeRef,
        b: NodeRef,
        *,
        rel_types: Sequence[str] | None = None,
        max_hops: int = 6,
    ) -> Path | None:
        """A shortest undirected path from ``a`` to ``b`` of at most ``max_hops``
        relationships, or ``None``. Among shortest paths, the one whose
        sequence of (label, id) is smallest; between two consecutive nodes, the
        relationship smallest by (type, source, target). ``NotFoundError`` when ``a``
        or ``b`` does not exist. A store searches in :meth:`_shortest_path`."""
        if max_hops < 0:
            raise ValueError(f"max_hops: must be >= 0, got {max_hops}")
        check_node_refs([a, b], "a, b")
        return self._shortest_path(a, b, check_rel_types(rel_types), max_hops)

    def _shortest_path(
        self, a: NodeRef, b: NodeRef, rels: tuple[str, ...], max_hops: int
    ) -> Path | None:
        """:meth:`shortest_path` with checked arguments."""
        ...

    # ------------------------------------------------------------------ runs and findings
    def begin_run(self, run: Run) -> None: ...

    def complete_run(
        self, run_id: str, findings: list[Finding], summary: dict[str, object]
    ) -> None:
        """Write the findings of a run and mark it succeeded, atomically: a
        reader sees either no findings for the run or all of them."""
        ...

    def fail_run(self, run_id: str, error: str) -> None: ...

    def runs(self, *, status: str | None = None, limit: int | None = None) -> list[Run]:
        """Every run (only those of ``status``; the ``limit`` newest), newest first (by
        ``started_at``, then the later recorded). A store reads them in :meth:`_runs`."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit: must be >= 0, got {limit}")
        return self._runs(status, limit)

    def _runs(self, status: str | None, limit: int | None) -> list[Run]:
        """:meth:`runs` with a checked ``limit``."""
        ...

    def get_run(self, run_id: str) -> Run:
        """``NotFoundError`` when unknown."""
        ...

    def latest_run(self) -> Run | None:
        """The newest succeeded run, or ``None``."""
        found = self.runs(status="succeeded", limit=1)
        return found[0] if found else None

    def findings(self, run_id: str | None = None) -> list[Finding]:
        """The findings of a run (default: the latest succeeded), ranked."""
        ...

    def record_decision(self, decision: Decision) -> None: ...

    def decisions(self, finding_id: str | None = None) -> list[Decision]:
        """Decisions, oldest first, for one finding or all."""
        ...

    def latest_decisions(self, cases: Iterable[str] | None = None) -> dict[str, str]:
        """The latest decision of every case that has one (case id -> decision), as the
        last of :meth:`decisions` per case; only of ``cases`` when given (decisions on
        older cases pile up, every one kept, and a page needs its own)."""
        ...

    # ------------------------------------------------------------------ optional abilities
    def findings_for_account(self, account_id: str, run_id: str | None = None) -> list[Finding]:
        """The findings of a run (default: the latest succeeded) that have ``account_id``
        as a member, ranked; ``NotFoundError`` for an unknown ``run_id``. By default
        :meth:`findings` filtered; the embedded store reads only those."""
        return [f for f in self.findings(run_id) if account_id in f.member_ids]

    def queue_state(
        self, cases_of: Callable[[Run], Iterable[str]] | None = None
    ) -> tuple[Run | None, dict[str, str]]:
        """:meth:`latest_run` and :meth:`latest_decisions` (of the cases ``cases_of(run)``
        names, when given): what the app's queue reads on every request. By default two
        reads; Neo4j reads both in one transaction. ``cases_of`` may be called more than
        once."""
        run = self.latest_run()
        cases = None if run is None or cases_of is None else cases_of(run)
        return run, self.latest_decisions(cases)

    def case_state(
        self, case_of: Callable[[list[Run]], str], *, limit: int | None = None
    ) -> tuple[list[Run], list[Decision]]:
        """The succeeded runs (the ``limit`` newest, newest first) and the decisions of the
        case that ``case_of(runs)`` names (as :meth:`decisions`): what the app reads on
        every view of a finding. What ``case_of`` raises is raised here; it may be called
        more than once. By default two reads; Neo4j reads both in one transaction."""
        runs = self.runs(status="succeeded", limit=limit)
        return runs, self.decisions(case_of(runs))

    def warm_up(self) -> None:
        """Prepare what repeated reads use, before they come (the investigator app calls
        it at start-up): the embedded store builds its in-memory graph index. By default
        nothing."""
        return None

    def close(self) -> None: ...

    # ------------------------------------------------------------------ audit log
    def append_audit(
        self,
        who: str,
        action: str,
        subject: str,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Append one entry (who did what to which subject, now) to the audit log.

        The log is append-only: no method changes or removes an entry.
        """
        ...

    def audit_log(
        self,
        *,
        who: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, object]]:
        """Audit entries, newest first, as ``{"seq", "at", "who", "action", "subject",
        "detail"}`` (``at`` an aware UTC datetime, ``detail`` a dict), filtered by
        ``who``, ``action`` and ``subject`` when given. ``limit < 1`` or
        ``offset < 0`` raise ``ValueError``. A store reads them in :meth:`_audit_log`."""
        if limit < 1:
            raise ValueError(f"limit: must be >= 1, got {limit}")
        if offset < 0:
            raise ValueError(f"offset: must be >= 0, got {offset}")
        return self._audit_log(AuditQuery(who, action, subject, limit, offset))

    def _audit_log(self, query: AuditQuery) -> list[dict[str, object]]:
        """:meth:`audit_log` of a checked ``query``."""
        ...
