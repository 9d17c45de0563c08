"""The embedded (DuckDB) store on real files: loading, reading, walks, runs, decisions."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path as FsPath

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from helpers.tiny_market import MARKET, frame, load_market

from ringscope.contract import TABLES
from ringscope.errors import NotFoundError, StoreError
from ringscope.graphs._graphwalk import bounded_bfs, combine_fingerprints
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.store import GraphStore
from ringscope.model import (
    Beneficiary,
    Decision,
    DetectorInfo,
    Finding,
    LoadReport,
    Member,
    NodeRef,
    Run,
    Signal,
    TableReport,
)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    """The small market, loaded once; tests that use it only read."""
    s = EmbeddedStore(tmp_path_factory.mktemp("market") / "market.duckdb")
    load_market(s)
    yield s
    s.close()


def A(i: str) -> NodeRef:
    return NodeRef("Account", i)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --------------------------------------------------------------------------- loading


def test_is_a_graph_store(store: EmbeddedStore, tmp_path: FsPath) -> None:
    assert isinstance(store, GraphStore)
    assert store.uri == str(tmp_path / "store.duckdb")
    assert store.counts() == {name: 0 for name in TABLES}


def test_write_batch_is_idempotent(store: EmbeddedStore) -> None:
    accounts = frame("accounts")
    first = store.write_batch("accounts", accounts, "L1")
    assert (first.inserted, first.duplicates, first.conflicts) == (len(accounts), 0, ())
    again = store.write_batch("accounts", accounts, "L2")
    assert (again.inserted, again.duplicates, again.conflicts) == (0, len(accounts), ())
    assert store.counts()["accounts"] == len(accounts)


def test_null_equals_null_for_duplicates(store: EmbeddedStore) -> None:
    store.write_batch("accounts", frame("accounts"), "L1")
    streams = frame("streams")  # st2 has no ended_at, every title is missing
    store.write_batch("streams", streams, "L1")
    assert store.write_batch("streams", streams, "L2").duplicates == len(streams)
    # optional columns absent from the frame mean NULL, equal to the stored NULLs
    no_title = streams.drop(columns=["title"])
    assert store.write_batch("streams", no_title, "L3").duplicates == len(streams)


def test_conflicts_are_reported_and_not_written(store: EmbeddedStore) -> None:
    accounts = frame("accounts")
    store.write_batch("accounts", accounts.iloc[:3], "L1")
    changed = accounts.copy()
    changed.loc[1, "country"] = "FR"  # stored row 1 had another country
    result = store.write_batch("accounts", changed, "L2")
    assert result.conflicts == (1,)
    assert result.duplicates == 2
    assert result.inserted == len(accounts) - 3
    stored = store.table("accounts").set_index("account_id")
    assert stored["country"].isna()["c2"]  # c2 (row 1) is stored without a country


def test_repeated_key_inside_one_batch(store: EmbeddedStore) -> None:
    accounts = frame("accounts")
    twice = pd.concat([accounts, accounts.iloc[[0]]], ignore_index=True)
    other = accounts.iloc[[1]].copy()
    other["status"] = "banned"
    batch = pd.concat([twice, other], ignore_index=True)
    result = store.write_batch("accounts", batch, "L1")
    assert result.inserted == len(accounts)
    assert result.duplicates == 1
    assert result.conflicts == (len(accounts) + 1,)
    assert store.counts()["accounts"] == len(accounts)


def test_failed_batch_writes_nothing(store: EmbeddedStore) -> None:
    store.write_batch("accounts", frame("accounts"), "L1")
    good = frame("follows")
    bad = good.astype({"ts": object})
    bad.loc[len(bad) - 1, "ts"] = "not a time"
    with pytest.raises(StoreError) as err:
        store.write_batch("follows", bad, "L2")
    assert err.value.__cause__ is not None
    assert store.counts()["follows"] == 0
    # the store is usable afterwards and the good batch goes in whole
    assert store.write_batch("follows", good, "L2").inserted == len(good)


def test_closed_store_raises_store_error(tmp_path: FsPath) -> None:
    s = EmbeddedStore(tmp_path / "c.duckdb")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.write_batch("accounts", frame("accounts"), "L1")


def test_rollback_load_removes_only_that_load(store: EmbeddedStore) -> None:
    accounts = frame("accounts")
    store.write_batch("accounts", accounts.iloc[:4], "L1")
    store.write_batch("accounts", accounts, "L2")
    assert store.rollback_load("L2", "accounts") == len(accounts) - 4
    assert store.counts()["accounts"] == 4
    assert store.rollback_load("L2", "accounts") == 0
    with pytest.raises(ValueError, match="unknown table"):
        store.rollback_load("L1", "nope")


def test_known_ids(market: EmbeddedStore) -> None:
    assert market.known_ids("account", ["b1", "nobody", "c1", "b1"]) == {"b1", "c1"}
    assert market.known_ids("stream", ["st1", "b1"]) == {"st1"}
    assert market.known_ids("account", []) == set()
    many = [f"n{i}" for i in range(100_000)] + ["c2"]
    assert market.known_ids("account", many) == {"c2"}


def test_loads_and_fingerprint(store: EmbeddedStore) -> None:
    empty = store.fingerprint()
    first = LoadReport("L1", "/data/a", "f1", {"accounts": TableReport("accounts", read=3)})
    store.record_load(first)
    store.record_load(LoadReport("L2", "/data/b", "f2"))
    assert [r.load_id for r in store.loads()] == ["L1", "L2"]
    assert store.loads()[0].tables["accounts"].read == 3
    fp = store.fingerprint()
    assert fp != empty and len(fp) == 64
    store.record_load(LoadReport("L1", "/data/a", "f1"))  # again: replaced in place
    assert [r.load_id for r in store.loads()] == ["L1", "L2"]
    assert store.fingerprint() == fp


# --------------------------------------------------------------------------- reading


def test_counts_and_graph_counts(market: EmbeddedStore) -> None:
    assert market.counts() == {name: len(rows) for name, rows in MARKET.items()}
    assert market.graph_counts() == {
        "Account": 8,
        "Stream": 2,
        "Product": 2,
        "Order": 3,
        "Identifier": 2,
        "HOSTED": 2,
        "ENGAGED": 4,
        "FOLLOWS": 3,
        "PLACED": 3,
        "FOR": 3,
        "SELLS": 2,
        "ATTRIBUTED_TO": 1,
        "IN_STREAM": 2,
        "AFFILIATE_OF": 1,
        "USES": 3,
    }


def test_table_round_trip_and_order(store: EmbeddedStore) -> None:
    store.write_batch("accounts", frame("accounts"), "L1")
    store.write_batch("streams", frame("streams"), "L1")
    events = frame("engagements")
    store.write_batch("engagements", events.iloc[::-1].reset_index(drop=True), "L1")
    back = store.table("engagements")
    assert list(back.columns) == list(TABLES["engagements"].names)
    expected = events.sort_values(list(TABLES["engagements"].key)).reset_index(drop=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    assert str(back["ts"].dtype) == "datetime64[us, UTC]"
    assert back["amount"].dtype == np.float64
    assert back["account_id"].dtype == "str"
    assert back["amount"].isna().sum() == events["amount"].isna().sum()
    streams = store.table("streams", columns=["stream_id", "ended_at"])
    assert list(streams.columns) == ["stream_id", "ended_at"]
    assert streams["ended_at"].isna().tolist() == [False, True]
    assert len(store.table("labels")) == 0
    loose = store.table_arrow("engagements", ordered=False)
    assert loose.num_rows == len(events) and loose.schema.field("ts").type.tz == "UTC"
    with pytest.raises(ValueError, match="not columns"):
        store.table("streams", columns=["nope"])


# --------------------------------------------------------------------------- neighbourhood


def refs(sub: object) -> list[str]:
    return [str(n.ref) for n in sub.nodes]  # type: ignore[attr-defined]


def test_neighbourhood_one_hop(market: EmbeddedStore) -> None:
    sub = market.neighbourhood([A("b1")])
    assert refs(sub) == [
        "Account:b1",
        "Account:c1",
        "Identifier:device:d1",
        "Order:o1",
        "Stream:st1",
    ]
    assert not sub.truncated
    edges = [(str(e.source), e.type, str(e.target)) for e in sub.edges]
    assert edges == [
        ("Account:b1", "ENGAGED", "Stream:st1"),
        ("Account:b1", "FOLLOWS", "Account:c1"),
        ("Account:b1", "PLACED", "Order:o1"),
        ("Account:b1", "USES", "Identifier:device:d1"),
        ("Account:c1", "HOSTED", "Stream:st1"),
        ("Order:o1", "ATTRIBUTED_TO", "Account:c1"),
        ("Order:o1", "IN_STREAM", "Stream:st1"),
    ]
    engaged = sub.edges[0].props
    assert engaged == {
        "views": 1,
        "likes": 1,
        "comments": 0,
        "shares": 0,
        "gifts": 1,
        "gift_amount": 5.0,
        "first_ts": "2024-01-01T10:05:00+00:00",
        "last_ts": "2024-01-01T10:07:00+00:00",
    }
    assert isinstance(engaged["views"], int)
    nodes = {str(n.ref): n.props for n in sub.nodes}
    assert nodes["Account:b1"] == {
        "account_id": "b1",
        "roles": "buyer",
        "created_at": "2023-01-01T00:00:00+00:00",
        "country": "DE",
    }
    assert nodes["Identifier:device:d1"] == {"kind": "device", "value": "d1"}
    assert nodes["Stream:st1"]["ended_at"] == "2024-01-01T12:00:00+00:00"
    assert nodes["Order:o1"]["amount"] == 10.0
    assert nodes["Order:o1"]["creator_id"] == "c1"
    uses = next(e for e in sub.edges if e.type == "USES")
    assert uses.props == {"first_seen": "2023-01-01T00:00:00+00:00"}


def test_neighbourhood_two_hops_and_filters(market: EmbeddedStore) -> None:
    two = market.neighbourhood([A("b1")], hops=2, limit=1000)
    assert "Account:b2" in refs(two) and "Account:s1" in refs(two)
    assert "Product:p1" in refs(two)
    assert "Account:b3" in refs(two)  # b3 follows c1
    assert "Stream:st2" not in refs(two)
    only = market.neighbourhood([A("b1")], hops=2, rel_types=["USES"])
    assert refs(only) == ["Account:b1", "Account:b2", "Identifier:device:d1"]
    assert {e.type for e in only.edges} == {"USES"}
    with pytest.raises(ValueError, match="unknown relationship"):
        market.neighbourhood([A("b1")], rel_types=["KNOWS"])


def test_neighbourhood_time_window(market: EmbeddedStore) -> None:
    sub = market.neighbourhood(
        [A("b1")], start=ts("2024-01-01T00:00:00"), end=ts("2024-01-01T10:30:00")
    )
    assert refs(sub) == ["Account:b1", "Identifier:device:d1", "Stream:st1"]
    # a window that ends before b2's device use began drops that edge at hop 2
    late = market.neighbourhood(
        [NodeRef("Identifier", "device:d1")], start=ts("2024-01-01T00:00:00")
    )
    assert refs(late) == ["Account:b1", "Identifier:device:d1"]


def test_neighbourhood_limit_and_missing_seeds(market: EmbeddedStore) -> None:
    sub = market.neighbourhood([A("b1")], limit=3)
    assert refs(sub) == ["Account:b1", "Account:c1", "Identifier:device:d1"]
    assert sub.truncated
    assert [(str(e.source), e.type, str(e.target)) for e in sub.edges] == [
        ("Account:b1", "FOLLOWS", "Account:c1"),
        ("Account:b1", "USES", "Identifier:device:d1"),
    ]
    exact = market.neighbourhood([A("b1")], limit=5)
    assert len(exact.nodes) == 5 and not exact.truncated
    both = market.neighbourhood([A("b1"), A("nobody")], hops=0)
    assert refs(both) == ["Account:b1"]
    with pytest.raises(NotFoundError):
        market.neighbourhood([A("nobody"), NodeRef("Stream", "zz")])


# --------------------------------------------------------------------------- shortest path


def path_refs(p: object) -> list[str]:
    return [str(n.ref) for n in p.nodes]  # type: ignore[attr-defined]


def test_shortest_path_tie_break_and_filters(market: EmbeddedStore) -> None:
    p = market.shortest_path(A("b1"), A("b2"))
    assert p is not None
    assert path_refs(p) == ["Account:b1", "Account:c1", "Account:b2"]
    assert [(str(e.source), e.type, str(e.target)) for e in p.edges] == [
        ("Account:b1", "FOLLOWS", "Account:c1"),
        ("Account:b2", "FOLLOWS", "Account:c1"),
    ]
    via = market.shortest_path(A("b1"), A("b2"), rel_types=["USES", "ENGAGED"])
    assert via is not None
    assert path_refs(via) == ["Account:b1", "Identifier:device:d1", "Account:b2"]
    stream = market.shortest_path(A("b1"), A("b2"), rel_types=["ENGAGED"])
    assert stream is not None and path_refs(stream)[1] == "Stream:st1"
    longer = market.shortest_path(A("b1"), A("c2"))
    assert longer is not None
    assert path_refs(longer) == [
        "Account:b1",
        "Account:c1",
        "Account:b3",
        "Stream:st2",
        "Account:c2",
    ]
    assert market.shortest_path(A("b1"), A("c2"), max_hops=3) is None
    assert market.shortest_path(A("b1"), A("x1")) is None
    same = market.shortest_path(A("b1"), A("b1"))
    assert same is not None and same.length == 0
    with pytest.raises(NotFoundError):
        market.shortest_path(A("b1"), A("nobody"))


def nx_graph() -> nx.Graph:
    """The market as an undirected networkx graph, built independently of the store."""
    g = nx.Graph()
    for r in MARKET["accounts"]:
        g.add_node(("Account", r["account_id"]))
    for r in MARKET["streams"]:
        g.add_edge(("Account", r["creator_id"]), ("Stream", r["stream_id"]))
    for r in MARKET["engagements"]:
        g.add_edge(("Account", r["account_id"]), ("Stream", r["stream_id"]))
    for r in MARKET["follows"]:
        g.add_edge(("Account", r["follower_id"]), ("Account", r["creator_id"]))
    for r in MARKET["orders"]:
        o = ("Order", r["order_id"])
        g.add_edge(("Account", r["buyer_id"]), o)
        g.add_edge(o, ("Product", r["product_id"]))
        g.add_edge(("Account", r["seller_id"]), ("Product", r["product_id"]))
        if r.get("creator_id"):
            g.add_edge(o, ("Account", r["creator_id"]))
        if r.get("stream_id"):
            g.add_edge(o, ("Stream", r["stream_id"]))
    for r in MARKET["affiliations"]:
        g.add_edge(("Account", r["creator_id"]), ("Account", r["seller_id"]))
    for r in MARKET["identifiers"]:
        g.add_edge(("Account", r["account_id"]), ("Identifier", f"{r['kind']}:{r['value']}"))
    return g


def test_shortest_path_matches_brute_force(market: EmbeddedStore) -> None:
    g = nx_graph()
    nodes = sorted(g.nodes)
    pairs = list(itertools.combinations(nodes, 2))[::9]
    for u, v in pairs:
        got = market.shortest_path(NodeRef(*u), NodeRef(*v))
        if not nx.has_path(g, u, v):
            assert got is None
            continue
        best = min(nx.all_shortest_paths(g, u, v))
        assert got is not None
        assert [(n.ref.label, n.ref.id) for n in got.nodes] == best, (u, v)


# --------------------------------------------------------------------------- runs, findings


def finding(kind: str, members: list[str], score: float) -> Finding:
    return Finding.build(
        kind=kind,
        score=score,
        members=[Member(m, "buyer", score) for m in members],
        beneficiaries=[Beneficiary("c1", "creator")],
        signals=[Signal("burst", 0.9, 0.5, 1.0)],
        explanation="they act together",
        detector=DetectorInfo("lockstep", "1", {"window": 60}),
        evidence={"engagements": [{"account_id": members[0], "ts": "2024-01-01T00:00:00+00:00"}]},
    )


def test_runs_and_findings(store: EmbeddedStore) -> None:
    t0 = ts("2024-03-01T00:00:00")
    assert store.latest_run() is None and store.findings() == []
    store.begin_run(Run("r1", t0, "running", policy={"a": 1}, data_fingerprint="fp"))
    assert store.get_run("r1").status == "running"
    assert store.findings("r1") == []
    with pytest.raises(StoreError, match="already"):
        store.begin_run(Run("r1", t0, "running"))
    fs = [
        finding("engagement_farm", ["b1", "b2"], 0.5),
        finding("commission_ring", ["b3", "b2"], 0.9),
        finding("identity_cluster", ["b1", "b3"], 0.5),
    ]
    store.complete_run("r1", fs, {"findings": 3})
    run = store.get_run("r1")
    assert run.status == "succeeded" and run.finished_at is not None
    assert run.summary == {"findings": 3} and run.policy == {"a": 1}
    assert run.started_at == t0
    got = store.findings()
    assert [f.id for f in got] == [f.id for f in sorted(fs, key=lambda f: (-f.score, f.id))]
    assert got[0] == next(f for f in fs if f.kind == "commission_ring")
    assert [f.kind for f in store.findings_for_account("b3")] == [
        "commission_ring",
        "identity_cluster",
    ]
    store.begin_run(Run("r2", t0 + timedelta(hours=1), "running"))
    store.fail_run("r2", "boom")
    assert store.get_run("r2").summary == {"error": "boom"}
    assert [r.id for r in store.runs()] == ["r2", "r1"]
    latest = store.latest_run()
    assert latest is not None and latest.id == "r1"
    store.begin_run(Run("r3", t0 + timedelta(hours=2), "running"))
    store.complete_run("r3", [], {})
    assert store.findings() == [] and len(store.findings("r1")) == 3
    with pytest.raises(NotFoundError):
        store.get_run("nope")
    with pytest.raises(NotFoundError):
        store.findings("nope")
    with pytest.raises(NotFoundError):
        store.complete_run("nope", [], {})


def test_complete_run_is_atomic(store: EmbeddedStore) -> None:
    store.begin_run(Run("r1", ts("2024-03-01T00:00:00"), "running"))
    f = finding("engagement_farm", ["b1", "b2"], 0.5)
    with pytest.raises(ValueError, match="repeated"):
        store.complete_run("r1", [f, f], {})
    assert store.get_run("r1").status == "running"
    assert store.findings("r1") == []


def test_decisions(store: EmbeddedStore) -> None:
    t0 = ts("2024-03-01T00:00:00")
    store.record_decision(Decision("f2", "dismissed", "ann", t0 + timedelta(hours=1)))
    store.record_decision(Decision("f1", "confirmed", "bob", t0, "clear ring"))
    store.record_decision(Decision("f1", "escalated", "ann", datetime(2024, 3, 2)))
    assert [(d.finding_id, d.decision) for d in store.decisions()] == [
        ("f1", "confirmed"),
        ("f2", "dismissed"),
        ("f1", "escalated"),
    ]
    mine = store.decisions("f1")
    assert [d.decision for d in mine] == ["confirmed", "escalated"]
    assert mine[0].note == "clear ring" and mine[0].decided_at == t0
    assert mine[1].decided_at == ts("2024-03-02T00:00:00")


# --------------------------------------------------------------------------- files and processes


def test_persists_across_reopen(tmp_path: FsPath) -> None:
    path = tmp_path / "p.duckdb"
    with EmbeddedStore(path) as s:
        load_market(s)
        s.begin_run(Run("r1", ts("2024-03-01T00:00:00"), "running"))
        s.complete_run("r1", [finding("engagement_farm", ["b1", "b2"], 0.5)], {})
        s.record_load(LoadReport("L1", "/d", "f1"))
        before = (s.counts(), s.fingerprint(), s.table("orders"))
    with EmbeddedStore(path) as s:
        assert s.counts() == before[0]
        assert s.fingerprint() == before[1]
        pd.testing.assert_frame_equal(s.table("orders"), before[2])
        assert len(s.findings()) == 1
        assert s.schema_version() == 1


def test_second_process_gets_store_error(tmp_path: FsPath) -> None:
    path = tmp_path / "busy.duckdb"
    root = FsPath(__file__).resolve().parents[1]
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(root)!r})
        from ringscope.errors import StoreError
        from ringscope.graphs.embedded import EmbeddedStore
        try:
            EmbeddedStore({str(path)!r})
        except StoreError as e:
            print("StoreError:", e)
        """
    )
    with EmbeddedStore(path):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    assert "StoreError:" in out.stdout, out.stderr
    assert "in use by another process" in out.stdout


# --------------------------------------------------------------------------- pure walk helpers


def test_bounded_bfs_levels_and_limit() -> None:
    graph = {
        "s": ["b", "a", "c"],
        "a": ["s", "d"],
        "b": ["s", "e"],
        "c": ["s"],
        "d": ["a"],
        "e": ["b"],
    }

    def expand(frontier: Sequence[NodeRef], want: int) -> list[NodeRef]:
        return [A(n) for f in frontier for n in graph[f.id]]

    nodes, truncated = bounded_bfs([A("s")], hops=2, limit=10, expand=expand)
    assert [n.id for n in nodes] == ["s", "a", "b", "c", "d", "e"] and not truncated
    nodes, truncated = bounded_bfs([A("s")], hops=2, limit=5, expand=expand)
    assert [n.id for n in nodes] == ["s", "a", "b", "c", "d"] and truncated
    nodes, truncated = bounded_bfs([A("s")], hops=1, limit=4, expand=expand)
    assert len(nodes) == 4 and not truncated
    nodes, truncated = bounded_bfs([A("c"), A("a"), A("b")], hops=1, limit=2, expand=expand)
    assert [n.id for n in nodes] == ["a", "b"] and truncated


def test_combine_fingerprints_is_order_sensitive() -> None:
    assert combine_fingerprints(["a", "b"]) != combine_fingerprints(["b", "a"])
    assert combine_fingerprints([]) == combine_fingerprints(())
