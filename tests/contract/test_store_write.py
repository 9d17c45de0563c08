"""Writing to a store: idempotent loads, conflicts, atomic batches, rollbacks, runs, decisions."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from ringscope.api import queries
from ringscope.contract import TABLES
from ringscope.errors import NotFoundError, StoreError
from ringscope.graphs.store import GraphStore
from ringscope.loaders.pipeline import load_export
from ringscope.model import (
    Decision,
    DetectorInfo,
    Finding,
    Member,
    NodeRef,
    Run,
    Signal,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SMALL_EXPORT = Path(__file__).resolve().parents[1] / "data" / "small-export"


def _accounts(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "roles": [r[1] for r in rows],
            "created_at": pd.Series([T0] * len(rows), dtype="datetime64[us, UTC]"),
            "country": [None] * len(rows),
        }
    )


def _snapshot(store: GraphStore) -> tuple[object, ...]:
    return (
        store.counts(),
        store.graph_counts(),
        tuple(store.table(name).to_json(date_format="iso") for name in TABLES),
    )


def test_loading_twice_changes_nothing(store: GraphStore, tmp_path: Path) -> None:
    empty = store.fingerprint()
    first = load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "r1")
    assert first.rejected == 0 and not first.failed
    once = store.fingerprint()
    assert once != empty
    before = _snapshot(store)
    again = load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "r2")
    # every recorded load counts, and a store asked before and after sees the change
    assert store.fingerprint() not in (once, empty)
    assert sum(t.loaded for t in again.tables.values()) == 0
    assert {k: t.duplicates for k, t in again.tables.items()} == {
        k: t.loaded for k, t in first.tables.items()
    }
    assert _snapshot(store) == before
    assert [r.load_id for r in store.loads()] == [first.load_id, again.load_id]
    assert len(store.fingerprint()) == 64


def test_duplicates_and_conflicts(store: GraphStore) -> None:
    store.write_batch("accounts", _accounts(("a1", "buyer"), ("a2", "seller")), "L1")
    result = store.write_batch(
        "accounts",
        _accounts(("a1", "buyer"), ("a2", "buyer"), ("a3", "creator"), ("a3", "buyer")),
        "L2",
    )
    assert (result.inserted, result.duplicates, result.conflicts) == (1, 1, (1, 3))
    roles = store.table("accounts").set_index("account_id")["roles"].to_dict()
    assert roles == {"a1": "buyer", "a2": "seller", "a3": "creator"}
    assert store.graph_counts()["Account"] == 3


def test_failed_batch_writes_nothing(store: GraphStore) -> None:
    store.write_batch("accounts", _accounts(("a1", "buyer")), "L1")
    before = _snapshot(store)
    bad = _accounts(("a2", "buyer"), ("a3", "buyer"), ("a4", "buyer"))
    bad["created_at"] = pd.Series([T0, "not a time", T0], dtype=object)
    with pytest.raises(StoreError):
        store.write_batch("accounts", bad, "L2")
    assert _snapshot(store) == before


def test_rollback_removes_a_load(store: GraphStore, tmp_path: Path) -> None:
    report = load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "r")
    removed = {name: store.rollback_load(report.load_id, name) for name in reversed(list(TABLES))}
    assert removed == {name: t.loaded for name, t in report.tables.items()}
    assert set(store.counts().values()) == {0}
    assert set(store.graph_counts().values()) == {0}


def test_rollback_keeps_what_other_loads_wrote(store: GraphStore) -> None:
    store.write_batch("accounts", _accounts(("a1", "creator"), ("b1", "buyer")), "L1")
    streams = pd.DataFrame(
        {
            "stream_id": ["s1"],
            "creator_id": ["a1"],
            "started_at": pd.Series([T0], dtype="datetime64[us, UTC]"),
        }
    )
    store.write_batch("streams", streams, "L1")

    def events(kind: str, minutes: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "account_id": ["b1"],
                "stream_id": ["s1"],
                "kind": [kind],
                "ts": pd.Series([T0 + timedelta(minutes=minutes)], dtype="datetime64[us, UTC]"),
                "amount": [float("nan")],
            }
        )

    store.write_batch("engagements", events("view", 1), "L1")
    store.write_batch("engagements", events("like", 2), "L2")
    assert store.rollback_load("L2", "engagements") == 1
    sub = store.neighbourhood([NodeRef("Account", "b1")], rel_types=["ENGAGED"])
    (edge,) = sub.edges
    assert edge.props["views"] == 1 and edge.props["likes"] == 0
    assert edge.props["last_ts"] == (T0 + timedelta(minutes=1)).isoformat()
    assert store.rollback_load("L1", "engagements") == 1
    assert store.graph_counts()["ENGAGED"] == 0


def _finding(members: list[str], score: float, kind: str = "engagement_farm") -> Finding:
    return Finding.build(
        kind=kind,
        score=score,
        members=[Member(m, "buyer", score) for m in members],
        signals=[Signal("lockstep", 0.8, 0.5, 1.0)],
        explanation="accounts acting together",
        detector=DetectorInfo("lockstep", "1.0", {"window": 60}),
        evidence={"engagements": [{"account_id": members[0], "ts": T0.isoformat()}]},
    )


def test_runs_and_findings(store: GraphStore) -> None:
    store.write_batch("accounts", _accounts(("a1", "buyer"), ("a2", "buyer"), ("a3", "buyer")), "L")
    assert store.latest_run() is None and store.findings() == []
    store.begin_run(Run("r1", T0, "running", policy={"p": 1}, data_fingerprint="fp"))
    with pytest.raises(StoreError):
        store.begin_run(Run("r1", T0, "running"))
    assert store.findings("r1") == []
    found = [_finding(["a1", "a2"], 0.5), _finding(["a2", "a3"], 0.9), _finding(["a3"], 0.5)]
    store.complete_run("r1", found, {"findings": 3})
    run = store.get_run("r1")
    assert (run.status, run.summary, run.policy, run.data_fingerprint) == (
        "succeeded",
        {"findings": 3},
        {"p": 1},
        "fp",
    )
    assert run.finished_at is not None and run.started_at == T0
    got = store.findings()
    assert got == store.findings("r1") == sorted(found, key=lambda f: (-f.score, f.id))
    store.complete_run("r1", found[:1], {"findings": 1})  # replaces
    assert store.findings("r1") == found[:1]
    store.begin_run(Run("r2", T0 + timedelta(hours=1), "running"))
    store.fail_run("r2", "detector crashed")
    assert [r.id for r in store.runs()] == ["r2", "r1"]
    assert store.get_run("r2").status == "failed"
    assert store.get_run("r2").summary["error"] == "detector crashed"
    assert store.latest_run() == store.get_run("r1")
    # a run started at the same moment and recorded later is the latest
    store.begin_run(Run("r0", T0, "running"))
    store.complete_run("r0", found[1:], {"findings": 2})
    assert [r.id for r in store.runs()] == ["r2", "r0", "r1"]
    assert store.runs(status="succeeded") == [store.get_run("r0"), store.get_run("r1")]
    assert store.runs(limit=2) == store.runs()[:2]
    assert store.runs(status="succeeded", limit=1) == [store.get_run("r0")]
    assert store.runs(status="failed") == [store.get_run("r2")]
    assert store.runs(status="running") == [] and store.runs(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        store.runs(limit=-1)
    assert store.latest_run() == store.get_run("r0")
    store.record_decision(Decision(found[0].id, "confirmed", "ana", T0, ""))
    assert queries.queue_state(store, None) == (store.get_run("r0"), {found[0].id: "confirmed"})
    assert queries.queue_state(store, "r1") == (store.get_run("r1"), {found[0].id: "confirmed"})
    # the decisions of the run's cases only, when the caller names them
    for run_id in (None, "r1"):
        asked: list[str] = []

        def cases_of(r: Run, asked: list[str] = asked) -> list[str]:
            asked.append(r.id)
            return [f.id for f in found[1:]]

        state = queries.queue_state(store, run_id, cases_of)
        assert state == (store.get_run(run_id or "r0"), {}) and asked[-1] == (run_id or "r0")
        state = queries.queue_state(store, run_id, lambda r: [found[0].id, "other"])
        assert state[1] == {found[0].id: "confirmed"}
    with pytest.raises(NotFoundError):
        store.get_run("nope")
    with pytest.raises(NotFoundError):
        store.findings("nope")
    with pytest.raises(NotFoundError):
        store.complete_run("nope", [], {})


def test_the_newest_runs_of_many(store: GraphStore) -> None:
    """``runs(limit=)`` (what every page reads) is the head of ``runs()``, however the
    runs were recorded: out of time order, at the same moment, with other offsets."""
    import random

    order = list(range(30))
    random.Random(7).shuffle(order)
    for i in order:
        offset = timezone(timedelta(hours=(i % 5) - 2))
        started = (T0 + timedelta(minutes=i // 2)).astimezone(offset)  # pairs share a moment
        store.begin_run(Run(f"run-{i:02d}", started, "running"))
        if i % 4:
            store.complete_run(f"run-{i:02d}", [], {"findings": 0})
    every = store.runs()
    assert len(every) == 30
    assert all(a.started_at >= b.started_at for a, b in itertools.pairwise(every))
    for limit in (1, 2, 5, 29, 30, 40):
        assert store.runs(limit=limit) == every[:limit]
        done = [r for r in every if r.status == "succeeded"]
        assert store.runs(status="succeeded", limit=limit) == done[:limit]
    assert store.latest_run() == done[0]


def test_finding_state(store: GraphStore) -> None:
    """What a view of a finding reads on every request (``queries.finding_state``; on
    Neo4j one transaction): the same as the reads one by one, a decision as soon as it
    is recorded, a run completed again with its new summary."""
    store.write_batch("accounts", _accounts(("a1", "buyer"), ("a2", "buyer"), ("a3", "buyer")), "L")
    old = dataclasses.replace(_finding(["a1", "a2"], 0.5), case_id="case-1")
    new = dataclasses.replace(_finding(["a1", "a2", "a3"], 0.9), case_id="case-1")
    store.begin_run(Run("r1", T0, "running"))
    store.complete_run("r1", [old, _finding(["a3"], 0.4)], {"findings": 2})
    store.begin_run(Run("r2", T0 + timedelta(hours=1), "running"))
    store.complete_run("r2", [new], {"findings": 1})
    cache = queries.RunCache()
    recent = store.runs(status="succeeded", limit=queries.HISTORY_RUNS)
    state = queries.finding_state(store, "case-1", cache=cache)
    assert (state.run, state.finding, state.runs, state.decisions) == (recent[0], new, recent, [])
    d1 = Decision("case-1", "confirmed", "ana", T0, "ring")
    store.record_decision(d1)
    state = queries.finding_state(store, old.id, cache=cache)
    assert (state.run.id, state.finding, state.decisions) == ("r1", old, [d1])
    state = queries.finding_state(store, old.id, "r1", cache)
    assert (state.run.id, state.finding, state.runs, state.decisions) == ("r1", old, None, [d1])
    store.complete_run("r2", [new], {"findings": 1, "again": True})
    state = queries.finding_state(store, new.id, cache=cache)
    assert state.run == store.get_run("r2") and state.run.summary["again"] is True
    assert state.runs == store.runs(status="succeeded")
    d2 = Decision("case-1", "dismissed", "bo", T0 + timedelta(hours=2))
    store.record_decision(d2)
    assert queries.finding_state(store, new.id, cache=cache).decisions == [d1, d2]
    with pytest.raises(NotFoundError):
        queries.finding_state(store, "nope", cache=cache)


def test_decisions(store: GraphStore) -> None:
    d1 = Decision("f1", "confirmed", "ana", T0 + timedelta(hours=2), "clear ring")
    d2 = Decision("f2", "dismissed", "bo", T0)
    d3 = Decision("f1", "escalated", "cy", T0 + timedelta(hours=1))
    for d in (d1, d2, d3):
        store.record_decision(d)
    assert store.decisions() == [d2, d3, d1]
    assert store.decisions("f1") == [d3, d1]
    assert store.decisions("none") == []


def test_small_batches_build_the_same_graph(
    store: GraphStore, reference: GraphStore, tmp_path: Path
) -> None:
    """Batches of a few rows: later batches reuse products, identifiers, SELLS pairs and
    (account, stream) pairs that earlier ones created, and the graph must come out as
    from one load in large batches."""
    report = load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "r", batch_rows=7)
    assert report.rejected == 0 and not report.failed
    assert store.counts() == reference.counts()
    assert store.graph_counts() == reference.graph_counts()
    seeds = [NodeRef("Account", a) for a in store.table("accounts")["account_id"][:5]]
    assert store.neighbourhood(seeds, hops=2, limit=500) == reference.neighbourhood(
        seeds, hops=2, limit=500
    )


# --------------------------------------------------------------------------- Neo4j only


@pytest.mark.neo4j
def test_neo4j_batch_aborted_midway_leaves_nothing(neo4j_store: GraphStore, neo4j_uri: str) -> None:
    """A constraint violation in a late statement of the batch's transaction rolls back
    the statements before it, and the columnar side with them."""
    import os

    import neo4j

    from ringscope.graphs.neo4j_store import Neo4jStore

    password = os.environ.get("NEO4J_PASSWORD")
    auth = (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None

    store = neo4j_store
    assert isinstance(store, Neo4jStore)
    store.batch_size = 2  # several UNWIND statements in the one transaction
    store.write_batch("accounts", _accounts(("a1", "buyer")), "L1")
    with neo4j.GraphDatabase.driver(neo4j_uri, auth=auth) as d:
        d.execute_query(
            "CREATE CONSTRAINT device_id_test IF NOT EXISTS FOR (n:Device) REQUIRE n.id IS UNIQUE",
            database_=store.database,
        )
        d.execute_query("CREATE (:Device {id: 'device:d5'})", database_=store.database)
    try:
        before = _snapshot(store)
        idents = pd.DataFrame(
            {
                "account_id": ["a1"] * 6,
                "kind": ["device"] * 6,
                "value": [f"d{i}" for i in range(6)],
                "first_seen": pd.Series([T0] * 6, dtype="datetime64[us, UTC]"),
            }
        )
        with pytest.raises(StoreError):
            store.write_batch("identifiers", idents, "L2")
        assert _snapshot(store) == before
        assert store.counts()["identifiers"] == 0
    finally:
        with neo4j.GraphDatabase.driver(neo4j_uri, auth=auth) as d:
            d.execute_query("DROP CONSTRAINT device_id_test IF EXISTS", database_=store.database)


def _neo4j_auth() -> tuple[str, str] | None:
    import os

    password = os.environ.get("NEO4J_PASSWORD")
    return (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None


@pytest.mark.neo4j
def test_neo4j_role_labels_set_at_creation(neo4j_store: GraphStore, neo4j_uri: str) -> None:
    import neo4j

    from ringscope.graphs import cypher
    from ringscope.graphs.graph_model import NODES

    store = neo4j_store
    rows = (("c1", "creator"), ("s1", "seller|buyer"), ("b1", "buyer"), ("x1", "creator|seller"))
    store.write_batch("accounts", _accounts(*rows), "L1")
    with neo4j.GraphDatabase.driver(neo4j_uri, auth=_neo4j_auth()) as d:
        records, _, _ = d.execute_query(
            "MATCH (a:Account) RETURN a.id AS id, labels(a) AS labels", database_="neo4j"
        )
    got = {r["id"]: sorted(r["labels"]) for r in records}
    assert got == {
        "c1": ["Account", "Creator"],
        "s1": ["Account", "Buyer", "Seller"],
        "b1": ["Account", "Buyer"],
        "x1": ["Account", "Creator", "Seller"],
    }
    with pytest.raises(ValueError):
        cypher.node_statement(NODES["Account"], ("Admin",), create=True)


@pytest.mark.neo4j
def test_neo4j_batch_lost_by_the_side_file_is_repaired(
    neo4j_store: GraphStore, neo4j_uri: str, tmp_path: Path
) -> None:
    """Batches whose graph committed while their side-file rows did not (process killed
    between the two commits) leave pending markers. While one is left, writing the rows
    again merges instead of creating, so nothing is doubled; rolling the lost load back
    removes its elements and markers, and the rows are then written with creates."""
    import neo4j

    from ringscope.graphs import cypher
    from ringscope.graphs.neo4j_store import Neo4jStore

    store = neo4j_store
    assert isinstance(store, Neo4jStore)
    lost = load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "r1").load_id
    before = _snapshot(store)
    orders, idents = store.table("orders"), store.table("identifiers")

    def lose_rows() -> None:  # what the failure leaves: the graph, no rows, the markers
        with store._tables.transaction("lose rows") as con:
            con.execute("DELETE FROM main.orders")
            con.execute("DELETE FROM main.identifiers")

    lose_rows()
    with neo4j.GraphDatabase.driver(neo4j_uri, auth=_neo4j_auth()) as d:
        for table in ("orders", "identifiers"):
            d.execute_query(
                cypher.MARK_PENDING, token=table, table=table, load_id=lost, database_="neo4j"
            )
    assert not store._creates_allowed("orders") and not store._creates_allowed("identifiers")
    assert store.write_batch("orders", orders, "L2").inserted == len(orders)
    assert store.write_batch("identifiers", idents, "L2").inserted == len(idents)
    assert _snapshot(store) == before

    lose_rows()
    assert store.rollback_load(lost, "orders") == 0  # its rows are gone already
    assert store.rollback_load(lost, "identifiers") == 0
    graph = store.graph_counts()
    assert graph["Order"] == graph["Product"] == graph["USES"] == graph["Identifier"] == 0
    assert store._creates_allowed("orders") and store._creates_allowed("identifiers")
    assert store.write_batch("orders", orders, "L3").inserted == len(orders)
    assert store.write_batch("identifiers", idents, "L3").inserted == len(idents)
    assert _snapshot(store) == before


@pytest.mark.neo4j
def test_neo4j_runs_recorded_before_started_ns_are_given_it(
    neo4j_store: GraphStore, neo4j_uri: str, tmp_path: Path
) -> None:
    """Pages read the newest runs in the order of an index on ``started_ns``; runs
    recorded before that property was are given it when the store is opened, the same
    number a run recorded now gets."""
    import neo4j

    from ringscope.graphs.neo4j_store import Neo4jStore

    store = neo4j_store
    for i, minutes in enumerate((30, 10, 20)):
        started = T0 + timedelta(minutes=minutes, microseconds=i * 250_001)
        store.begin_run(Run(f"r{i}", started, "running"))
        store.complete_run(f"r{i}", [], {"findings": 0})
    newest = store.runs(limit=2)
    with neo4j.GraphDatabase.driver(neo4j_uri, auth=_neo4j_auth()) as d:
        query = "MATCH (r:Run) RETURN r.id AS id, r.started_ns AS ns ORDER BY id"
        given, _, _ = d.execute_query(query, database_="neo4j")
        d.execute_query("MATCH (r:Run) REMOVE r.started_ns", database_="neo4j")
        assert store.runs(limit=2) == []  # what a store without the fill would show
        again = Neo4jStore(neo4j_uri, auth=_neo4j_auth(), columnar_path=tmp_path / "events.duckdb")
        try:
            assert again.runs(limit=2) == newest and [r.id for r in newest] == ["r0", "r2"]
        finally:
            again.close()
        filled, _, _ = d.execute_query(query, database_="neo4j")
    assert [dict(r) for r in filled] == [dict(r) for r in given]
