"""The embedded store's in-memory adjacency index and its concurrent reads.

Every walk is checked against the same walk done in SQL (the store with
``graph_index_max_rows = 0``): both must give equal subgraphs, node and edge
properties included, for every relationship mix, window, hop count and limit.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ringscope.errors import NotFoundError, StoreError
from ringscope.graphs.embedded import GRAPH_INDEX_MAX_ROWS, EmbeddedStore
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.synthetic import generate
from ringscope.model import REL_TYPES, NodeRef, Subgraph


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStore]:
    """A generated marketplace (every table, every relationship type), loaded once."""
    folder = tmp_path_factory.mktemp("index-market")
    generate(folder / "data", events=4_000, seed=11)
    s = EmbeddedStore(folder / "market.duckdb")
    load_export(s, folder / "data", rejects_dir=folder / "rejects")
    yield s
    s.close()


def walk(store: EmbeddedStore, *, index: bool, **kw: object) -> Subgraph:
    """A walk through the adjacency index (built first when missing) or in SQL."""
    if not index:
        store.graph_index_max_rows = 0
    elif store.graph_index is None:
        assert store.build_graph_index() is not None
    try:
        return store.neighbourhood(**kw)  # type: ignore[arg-type]
    finally:
        store.graph_index_max_rows = GRAPH_INDEX_MAX_ROWS


def wait_for_index(store: EmbeddedStore, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while store.graph_index is None:
        assert time.monotonic() < deadline, "the graph index was not built in the background"
        time.sleep(0.05)


def seeds_of(store: EmbeddedStore, rng: random.Random, n: int) -> list[NodeRef]:
    """Random stored nodes of every label."""
    accounts = store.table("accounts", columns=["account_id"])["account_id"].tolist()
    streams = store.table("streams", columns=["stream_id"])["stream_id"].tolist()
    orders = store.table("orders", columns=["order_id", "product_id"])
    ids = store.table("identifiers", columns=["kind", "value"])
    pool = (
        [NodeRef("Account", a) for a in rng.sample(accounts, n)]
        + [NodeRef("Stream", s) for s in rng.sample(streams, min(n, len(streams)))]
        + [NodeRef("Order", o) for o in orders["order_id"].sample(n, random_state=1)]
        + [NodeRef("Product", p) for p in orders["product_id"].sample(n, random_state=2)]
        + [NodeRef("Identifier", f"{k}:{v}") for k, v in ids.sample(n, random_state=3).values]
    )
    rng.shuffle(pool)
    return pool


def test_index_and_sql_walks_agree(market: EmbeddedStore) -> None:
    rng = random.Random(5)
    seeds = seeds_of(market, rng, 8)
    months = [datetime(2024, m, 1, tzinfo=UTC) for m in range(1, 13)]
    compared = 0
    for i, seed in enumerate(seeds):
        group = [seed, *rng.sample(seeds, rng.randint(0, 3))]
        kw: dict[str, object] = {
            "seeds": group,
            "hops": rng.randint(0, 3),
            "limit": rng.choice([1, 5, 40, 300, 2000]),
        }
        if i % 3 == 1:
            kw["rel_types"] = rng.sample(REL_TYPES, rng.randint(1, 4))
        if i % 4 == 2:
            a, b = sorted(rng.sample(months, 2))
            kw["start"], kw["end"] = (a, b) if i % 8 == 2 else (None, b) if i % 2 else (a, None)
        fast, slow = walk(market, index=True, **kw), walk(market, index=False, **kw)
        assert fast == slow, kw
        compared += len(fast.nodes) + len(fast.edges)
    assert compared > 1000  # the walks were not trivially empty


def test_engaged_and_window_edges_carry_the_same_properties(market: EmbeddedStore) -> None:
    eng = market.table("engagements")
    busiest = eng["account_id"].value_counts().index[:3]
    kw = {
        "seeds": [NodeRef("Account", str(a)) for a in busiest],
        "hops": 1,
        "limit": 2000,
        "start": datetime(2024, 3, 1, tzinfo=UTC),
    }
    fast = walk(market, index=True, **kw)
    assert fast == walk(market, index=False, **kw)
    engaged = [e for e in fast.edges if e.type == "ENGAGED"]
    assert engaged and all(
        {"views", "first_ts", "last_ts", "gift_amount"} <= set(e.props) for e in engaged
    )
    assert all(e.props["last_ts"] >= "2024-03-01" for e in engaged)


def test_missing_seeds_and_bad_arguments(market: EmbeddedStore) -> None:
    with pytest.raises(NotFoundError):
        market.neighbourhood([NodeRef("Account", "no-such-account")])
    with pytest.raises(ValueError):
        market.neighbourhood([NodeRef("Account", "x")], rel_types=["KNOWS"])
    one = market.table("accounts", columns=["account_id"])["account_id"].iloc[0]
    sub = market.neighbourhood([NodeRef("Account", one), NodeRef("Account", "nobody")], hops=0)
    assert [n.ref.id for n in sub.nodes] == [one]


def test_index_is_built_by_repeated_walks_and_dropped_by_writes(tmp_path: Path) -> None:
    """One walk does not build the index, a second starts it in the background, and
    a write makes it stale; walks of zero hops do not count; too big a store never
    gets one."""
    generate(tmp_path / "data", events=1_500, seed=4)
    s = EmbeddedStore(tmp_path / "s.duckdb")
    try:
        load_export(s, tmp_path / "data", rejects_dir=tmp_path / "rejects")
        a = NodeRef("Account", str(s.table("accounts")["account_id"].iloc[0]))
        first = s.neighbourhood([a], hops=1)
        for _ in range(3):
            s.neighbourhood([a], hops=0)
        time.sleep(0.2)
        assert s.graph_index is None
        assert s.neighbourhood([a], hops=1) == first
        wait_for_index(s)
        assert s.neighbourhood([a], hops=1) == first
        s.rollback_load("nothing-loaded-by-this-id", "follows")
        assert s.graph_index is None, "a write makes the index stale"
        s.graph_index_max_rows = 10
        assert s.build_graph_index() is None
        s.neighbourhood([a], hops=1)
        s.neighbourhood([a], hops=1)
        time.sleep(0.2)
        assert s.graph_index is None
    finally:
        s.close()


def test_index_follows_new_data(tmp_path: Path) -> None:
    """A load (or a rolled back batch) after a walk is seen by the next walk."""
    generate(tmp_path / "data", events=1_500, seed=3)
    s = EmbeddedStore(tmp_path / "s.duckdb")
    try:
        accounts = pd.read_csv(tmp_path / "data" / "accounts.csv", dtype=str)
        first = accounts.iloc[:1].copy()
        s.write_batch(
            "accounts", first.assign(created_at=pd.Timestamp("2024-01-01", tz="UTC")), "l1"
        )
        a = NodeRef("Account", str(first["account_id"].iloc[0]))
        assert s.build_graph_index() is not None
        assert s.neighbourhood([a], hops=1).edges == ()
        load_export(s, tmp_path / "data", rejects_dir=tmp_path / "rejects")
        assert s.graph_index is None
        after = walk(s, index=True, seeds=[a], hops=1, limit=2000)
        assert after.edges, "the walk after the load sees the new relationships"
        assert after == walk(s, index=False, seeds=[a], hops=1, limit=2000)
        s.rollback_load("l1", "accounts")
        with pytest.raises(NotFoundError):
            walk(s, index=True, seeds=[a], hops=1)
    finally:
        s.close()


def test_reads_run_side_by_side_with_writes(market: EmbeddedStore) -> None:
    """Threads reading (walks, tables, findings) while one thread writes: no error,
    and every read equals the same read done alone."""
    rng = random.Random(9)
    seeds = seeds_of(market, rng, 4)
    expected = {s: walk(market, index=False, seeds=[s], hops=2, limit=150) for s in seeds}
    n_rows = len(market.table("follows"))
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(k: int) -> None:
        try:
            for i in range(15):
                s = seeds[(k + i) % len(seeds)]
                assert market.neighbourhood([s], hops=2, limit=150) == expected[s]
                assert len(market.table("follows")) == n_rows
                market.findings()
                market.fingerprint()
        except BaseException as e:
            errors.append(e)

    def writer() -> None:
        try:
            i = 0
            while not stop.is_set():
                market.append_audit("tester", "view", f"x{i}", {"i": i})
                i += 1
        except BaseException as e:
            errors.append(e)

    w = threading.Thread(target=writer)
    w.start()
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    w.join()
    assert errors == []
    assert len(market.audit_log(who="tester", limit=1000)) > 0


def test_closed_store_refuses_reads_from_every_thread(tmp_path: Path) -> None:
    s = EmbeddedStore(tmp_path / "c.duckdb")
    s.counts()  # this thread has a read cursor now
    s.close()
    with pytest.raises(StoreError):
        s.counts()
    raised: list[BaseException] = []

    def other() -> None:
        try:
            s.counts()
        except BaseException as e:
            raised.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(raised) == 1 and isinstance(raised[0], StoreError)
