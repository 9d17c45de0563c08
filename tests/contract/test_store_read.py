"""Reading a loaded store: every store answers exactly as the reference does.

The reference is the embedded store with the same export; on the embedded
parameter these tests check the answers against fixed facts of the export.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from ringscope.contract import TABLES
from ringscope.errors import NotFoundError
from ringscope.graphs.store import GraphStore
from ringscope.model import NODE_LABELS, REL_TYPES, NodeRef

A, S = (lambda i: NodeRef("Account", i)), (lambda i: NodeRef("Stream", i))


def test_counts(loaded: GraphStore, reference: GraphStore) -> None:
    expected = {
        "accounts": 47,
        "streams": 24,
        "affiliations": 19,
        "follows": 50,
        "engagements": 60,
        "orders": 40,
        "identifiers": 45,
        "labels": 20,
    }
    assert loaded.counts() == expected
    graph = loaded.graph_counts()
    assert set(graph) == set(NODE_LABELS) | set(REL_TYPES)
    assert graph == reference.graph_counts()
    assert graph["Account"] == 47 and graph["HOSTED"] == 24 and graph["USES"] == 45


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_projections(loaded: GraphStore, reference: GraphStore, name: str) -> None:
    got, want = loaded.table(name), reference.table(name)
    assert list(got.columns) == list(TABLES[name].names)
    pd.testing.assert_frame_equal(got, want)
    key = list(TABLES[name].key)
    assert got[key].equals(got[key].sort_values(key).reset_index(drop=True))
    some = loaded.table(name, columns=list(reversed(TABLES[name].key)))
    pd.testing.assert_frame_equal(some, reference.table(name, columns=list(reversed(key))))


def test_known_ids(loaded: GraphStore) -> None:
    assert loaded.known_ids("account", ["by-0001", "nobody", "cr-001"]) == {"by-0001", "cr-001"}
    assert loaded.known_ids("stream", ["st-0001", "by-0001"]) == {"st-0001"}
    assert loaded.known_ids("account", []) == set()


def _seeds(reference: GraphStore) -> list[list[NodeRef]]:
    accounts = reference.table("accounts", columns=["account_id"])["account_id"].tolist()
    streams = reference.table("streams", columns=["stream_id"])["stream_id"].tolist()
    idents = reference.table("identifiers", columns=["kind", "value"])
    orders = reference.table("orders", columns=["order_id", "product_id"])
    return [
        *([A(a)] for a in accounts[::12]),
        *([S(s)] for s in streams[::12]),
        [NodeRef("Identifier", f"{idents.kind[0]}:{idents.value[0]}")],
        [NodeRef("Order", orders.order_id[1]), NodeRef("Product", orders.product_id[2])],
        [A(accounts[0]), A("nobody"), S(streams[-1])],
    ]


@pytest.mark.parametrize("hops", [0, 1, 2, 3])
def test_neighbourhood_hops(loaded: GraphStore, reference: GraphStore, hops: int) -> None:
    for seeds in _seeds(reference):
        got = loaded.neighbourhood(seeds, hops=hops)
        assert got == reference.neighbourhood(seeds, hops=hops), seeds
        if hops == 0:
            assert {n.ref for n in got.nodes} <= set(seeds)


@pytest.mark.parametrize(
    "rel_types",
    [["ENGAGED"], ["USES"], ["PLACED", "FOR", "SELLS"], ["HOSTED", "FOLLOWS", "AFFILIATE_OF"]],
)
def test_neighbourhood_rel_filters(
    loaded: GraphStore, reference: GraphStore, rel_types: list[str]
) -> None:
    for seeds in _seeds(reference):
        got = loaded.neighbourhood(seeds, hops=2, rel_types=rel_types)
        assert got == reference.neighbourhood(seeds, hops=2, rel_types=rel_types), seeds
        assert {e.type for e in got.edges} <= set(rel_types)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 15, tzinfo=UTC)),
        (None, datetime(2026, 10, 7, 15, tzinfo=UTC)),
        (datetime(2026, 11, 1, tzinfo=UTC), None),
        (datetime(2026, 10, 7, 10), datetime(2026, 10, 7, 10, 30)),  # naive means UTC
    ],
)
def test_neighbourhood_windows(
    loaded: GraphStore,
    reference: GraphStore,
    start: datetime | None,
    end: datetime | None,
) -> None:
    for seeds in _seeds(reference):
        got = loaded.neighbourhood(seeds, hops=2, start=start, end=end)
        assert got == reference.neighbourhood(seeds, hops=2, start=start, end=end), seeds


@pytest.mark.parametrize("limit", [1, 2, 5, 17])
def test_neighbourhood_truncation(loaded: GraphStore, reference: GraphStore, limit: int) -> None:
    for seeds in _seeds(reference):
        got = loaded.neighbourhood(seeds, hops=3, limit=limit)
        assert got == reference.neighbourhood(seeds, hops=3, limit=limit), seeds
        assert len(got.nodes) <= limit


def test_neighbourhood_of_missing_seeds(loaded: GraphStore) -> None:
    with pytest.raises(NotFoundError):
        loaded.neighbourhood([A("nobody"), S("nothing")])
    with pytest.raises(ValueError):
        loaded.neighbourhood([A("by-0001")], rel_types=["KNOWS"])


def test_shortest_paths(loaded: GraphStore, reference: GraphStore) -> None:
    refs = [s for seeds in _seeds(reference) for s in seeds if s.id != "nobody"]
    found = 0
    for a in refs[::2]:
        for b in refs[1::2]:
            for rel_types, max_hops in ((None, 6), (["ENGAGED", "HOSTED"], 4)):
                got = loaded.shortest_path(a, b, rel_types=rel_types, max_hops=max_hops)
                want = reference.shortest_path(a, b, rel_types=rel_types, max_hops=max_hops)
                assert got == want, (a, b, rel_types, max_hops)
                found += got is not None and got.length > 1
    assert found > 5
    with pytest.raises(NotFoundError):
        loaded.shortest_path(A("by-0001"), A("nobody"))
