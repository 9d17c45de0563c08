"""Later exports that update stored rows: refunds, stream ends, identifiers seen again.

The update rules of :mod:`ringscope.contract` on both stores: what a later export
may change (and the graph follows), what stays a conflict, that an older export
loaded again changes nothing, and that rolling a load back puts the rows back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ringscope.graphs.neo4j_store import Neo4jStore
from ringscope.graphs.store import GraphStore
from ringscope.loaders.pipeline import load_export
from ringscope.model import NodeRef

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _ts(*values: datetime | None) -> pd.Series:
    return pd.Series(list(values), dtype="datetime64[us, UTC]")


def _setup(store: GraphStore) -> None:
    store.write_batch(
        "accounts",
        pd.DataFrame(
            {
                "account_id": ["b1", "c1", "s1"],
                "roles": ["buyer", "creator", "seller"],
                "created_at": _ts(T0, T0, T0),
            }
        ),
        "L0",
    )
    store.write_batch(
        "streams",
        pd.DataFrame(
            {
                "stream_id": ["st1"],
                "creator_id": ["c1"],
                "started_at": _ts(T0),
                "ended_at": _ts(None),
            }
        ),
        "L0",
    )


def _orders(*rows: tuple[str, str, float, datetime | None]) -> pd.DataFrame:
    """Orders of b1 from s1 through c1's link: (order_id, status, amount, refunded_at)."""
    n = len(rows)
    return pd.DataFrame(
        {
            "order_id": [r[0] for r in rows],
            "buyer_id": ["b1"] * n,
            "seller_id": ["s1"] * n,
            "product_id": ["p1"] * n,
            "amount": [r[2] for r in rows],
            "status": [r[1] for r in rows],
            "ts": _ts(*([T0 + timedelta(hours=1)] * n)),
            "creator_id": ["c1"] * n,
            "stream_id": ["st1"] * n,
            "commission": [1.5] * n,
            "refunded_at": _ts(*(r[3] for r in rows)),
        }
    )


def _order_nodes(store: GraphStore) -> dict[str, dict[str, Any]]:
    sub = store.neighbourhood([NodeRef("Account", "b1")], rel_types=["PLACED"])
    return {n.ref.id: n.props for n in sub.nodes if n.ref.label == "Order"}


def _order_table(store: GraphStore) -> dict[str, tuple[str, Any]]:
    t = store.table("orders").set_index("order_id")
    return {
        str(k): (str(r["status"]), None if pd.isna(r["refunded_at"]) else r["refunded_at"])
        for k, r in t.iterrows()
    }


REFUND_AT = T0 + timedelta(days=2)


def test_a_refund_in_a_later_export_updates_the_order(store: GraphStore) -> None:
    _setup(store)
    first = store.write_batch(
        "orders", _orders(("o1", "completed", 20.0, None), ("o2", "completed", 30.0, None)), "L1"
    )
    assert (first.inserted, first.updated) == (2, 0)

    later = store.write_batch(
        "orders",
        _orders(
            ("o1", "refunded", 20.0, REFUND_AT),  # refunded since: an update
            ("o2", "completed", 30.0, None),  # unchanged: a duplicate
            ("o3", "completed", 12.0, None),  # new
        ),
        "L2",
    )
    assert (later.inserted, later.updated, later.duplicates, later.conflicts) == (1, 1, 1, ())
    assert _order_table(store) == {
        "o1": ("refunded", pd.Timestamp(REFUND_AT)),
        "o2": ("completed", None),
        "o3": ("completed", None),
    }
    nodes = _order_nodes(store)
    assert nodes["o1"]["status"] == "refunded"
    assert nodes["o1"]["refunded_at"] == REFUND_AT.isoformat()
    assert nodes["o2"]["status"] == "completed"
    assert store.graph_counts()["Order"] == 3

    # the first export loaded again is older news: it changes nothing
    stale = store.write_batch("orders", _orders(("o1", "completed", 20.0, None)), "L3")
    assert (stale.inserted, stale.updated, stale.duplicates, stale.conflicts) == (0, 0, 1, ())
    assert _order_table(store)["o1"] == ("refunded", pd.Timestamp(REFUND_AT))


def test_changes_no_rule_allows_stay_conflicts(store: GraphStore) -> None:
    _setup(store)
    store.write_batch("orders", _orders(("o1", "refunded", 20.0, REFUND_AT)), "L1")
    result = store.write_batch(
        "orders",
        _orders(
            ("o1", "refunded", 25.0, REFUND_AT),  # another amount
            ("o1", "cancelled", 20.0, REFUND_AT),  # refunded, then cancelled
            ("o1", "refunded", 20.0, REFUND_AT + timedelta(hours=1)),  # another refund time
        ),
        "L2",
    )
    assert (result.inserted, result.updated, result.conflicts) == (0, 0, (0, 1, 2))
    assert _order_table(store) == {"o1": ("refunded", pd.Timestamp(REFUND_AT))}


def test_identifiers_and_streams_widen(store: GraphStore) -> None:
    _setup(store)

    def ids(first: datetime, last: datetime | None) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "account_id": ["b1"],
                "kind": ["device"],
                "value": ["dev-1"],
                "first_seen": _ts(first),
                "last_seen": _ts(last),
            }
        )

    store.write_batch("identifiers", ids(T0 + timedelta(days=1), T0 + timedelta(days=2)), "L1")
    wider = store.write_batch("identifiers", ids(T0, T0 + timedelta(days=5)), "L2")
    narrower = store.write_batch("identifiers", ids(T0 + timedelta(days=1), None), "L3")
    assert (wider.updated, narrower.updated, narrower.duplicates) == (1, 0, 1)
    row = store.table("identifiers").iloc[0]
    assert (row["first_seen"], row["last_seen"]) == (
        pd.Timestamp(T0),
        pd.Timestamp(T0 + timedelta(days=5)),
    )
    sub = store.neighbourhood([NodeRef("Account", "b1")], rel_types=["USES"])
    (edge,) = sub.edges
    assert edge.props["first_seen"] == T0.isoformat()
    assert edge.props["last_seen"] == (T0 + timedelta(days=5)).isoformat()

    ended = store.write_batch(
        "streams",
        pd.DataFrame(
            {
                "stream_id": ["st1"],
                "creator_id": ["c1"],
                "started_at": _ts(T0),
                "ended_at": _ts(T0 + timedelta(hours=3)),
            }
        ),
        "L4",
    )
    assert ended.updated == 1
    assert store.table("streams")["ended_at"].iloc[0] == pd.Timestamp(T0 + timedelta(hours=3))


def test_rollback_puts_updated_rows_back(store: GraphStore) -> None:
    _setup(store)
    store.write_batch("orders", _orders(("o1", "completed", 20.0, None)), "L1")
    store.write_batch(
        "orders",
        _orders(("o1", "refunded", 20.0, REFUND_AT), ("o2", "completed", 5.0, None)),
        "L2",
    )
    assert store.rollback_load("L2", "orders") == 1
    assert _order_table(store) == {"o1": ("completed", None)}
    nodes = _order_nodes(store)
    assert set(nodes) == {"o1"}
    assert nodes["o1"]["status"] == "completed" and nodes["o1"].get("refunded_at") is None


def _export(folder: Path, status: str, refunded_at: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "accounts.csv").write_text(
        "account_id,roles,created_at\n"
        "b1,buyer,2026-10-01T00:00:00Z\nc1,creator,2026-10-01T00:00:00Z\n"
        "s1,seller,2026-10-01T00:00:00Z\n"
    )
    (folder / "orders.csv").write_text(
        "order_id,buyer_id,seller_id,product_id,amount,status,ts,creator_id,commission,"
        "refunded_at\n"
        f"o1,b1,s1,p1,20.0,{status},2026-11-01T10:00:00Z,c1,2.0,{refunded_at}\n"
    )
    return folder


@pytest.mark.parametrize("batch_rows", [1, 1000])
def test_nightly_exports_bring_refunds(store: GraphStore, tmp_path: Path, batch_rows: int) -> None:
    day1 = load_export(
        store, _export(tmp_path / "day1", "completed", ""), rejects_dir=tmp_path / "r1"
    )
    day2 = load_export(
        store,
        _export(tmp_path / "day2", "refunded", "2026-11-03T08:00:00Z"),
        rejects_dir=tmp_path / "r2",
        batch_rows=batch_rows,
    )
    assert day1.tables["orders"].loaded == 1
    orders = day2.tables["orders"]
    assert (orders.loaded, orders.updated, orders.rejected) == (0, 1, 0)
    assert day2.tables["accounts"].duplicates == 3
    assert store.loads()[-1].tables["orders"].updated == 1
    assert _order_table(store)["o1"][0] == "refunded"


# --------------------------------------------------------------------------- real exports' words


def test_statuses_advance_by_the_default_mappings_stages(store: GraphStore) -> None:
    """Stages: statuses the default mapping does not know (pending, disputed) ->
    completed and its aliases -> cancelled, refunded and their aliases."""
    _setup(store)
    rows: list[tuple[str, str, float, datetime | None]] = [
        ("o1", "delivered", 20.0, None),
        ("o2", "pending", 20.0, None),
        ("o3", "disputed", 20.0, None),
        ("o4", "chargeback", 20.0, REFUND_AT),
        ("o5", "returned", 20.0, REFUND_AT),
    ]
    first = store.write_batch("orders", _orders(*rows), "L1")
    assert first.inserted == 5
    later = store.write_batch(
        "orders",
        _orders(
            ("o1", "returned", 20.0, REFUND_AT),  # delivered, then returned: an update
            ("o2", "shipped", 20.0, None),  # pending, then shipped: an update
            ("o3", "chargeback", 20.0, REFUND_AT),  # disputed, then charged back: an update
            ("o4", "delivered", 20.0, REFUND_AT),  # a chargeback never goes back
            ("o5", "chargeback", 20.0, REFUND_AT),  # a return is a refund already
        ),
        "L2",
    )
    assert (later.inserted, later.updated, later.duplicates, later.conflicts) == (0, 3, 2, ())
    expected = {
        "o1": ("returned", pd.Timestamp(REFUND_AT)),
        "o2": ("shipped", None),
        "o3": ("chargeback", pd.Timestamp(REFUND_AT)),
        "o4": ("chargeback", pd.Timestamp(REFUND_AT)),
        "o5": ("returned", pd.Timestamp(REFUND_AT)),
    }
    assert _order_table(store) == expected
    nodes = _order_nodes(store)
    assert {k: v["status"] for k, v in nodes.items()} == {k: v[0] for k, v in expected.items()}

    # the first export again (statuses of earlier stages): nothing changes
    stale = store.write_batch("orders", _orders(*rows), "L3")
    assert (stale.updated, stale.duplicates, stale.conflicts) == (0, 5, ())
    # a refund seen as a cancellation is news the rules cannot order: a conflict
    odd = store.write_batch("orders", _orders(("o1", "void", 20.0, REFUND_AT)), "L4")
    assert odd.conflicts == (0,)
    assert _order_table(store) == expected


def _variety_export(folder: Path, status: str, refunded_at: str) -> Path:
    """An export in a marketplace's words: an ``imei``, a ``cookie`` and the status given."""
    _export(folder, status, refunded_at)
    (folder / "identifiers.csv").write_text(
        "account_id,kind,value,first_seen\n"
        "b1,IMEI,356938035643809,2026-11-01T09:00:00+08:00\n"
        "b1,cookie,ck-1,2026-11-01T01:00:00Z\n"
        "b1,device,dev-1,1793494800\n"
    )
    return folder


def test_a_later_export_returns_a_delivered_order_and_an_older_one_changes_nothing(
    store: GraphStore, tmp_path: Path
) -> None:
    day1 = load_export(
        store, _variety_export(tmp_path / "day1", "Delivered", ""), rejects_dir=tmp_path / "r1"
    )
    assert day1.rejected == 0
    assert day1.tables["identifiers"].unknown_values == {"kind": {"cookie": 1}}
    day2 = load_export(
        store,
        _variety_export(tmp_path / "day2", "returned", "2026-11-03T08:00:00-05:00"),
        rejects_dir=tmp_path / "r2",
    )
    assert (day2.tables["orders"].updated, day2.rejected) == (1, 0)
    returned = ("returned", pd.Timestamp("2026-11-03T13:00:00Z"))
    assert _order_table(store)["o1"] == returned
    assert _order_nodes(store)["o1"]["status"] == "returned"
    again = load_export(
        store, _variety_export(tmp_path / "day1b", "delivered", ""), rejects_dir=tmp_path / "r3"
    )
    assert (again.tables["orders"].updated, again.tables["orders"].duplicates) == (0, 1)
    assert again.rejected == 0
    assert _order_table(store)["o1"] == returned


def test_identifiers_of_every_kind_are_nodes_of_the_graph(
    store: GraphStore, tmp_path: Path
) -> None:
    load_export(store, _variety_export(tmp_path / "e", "delivered", ""), rejects_dir=tmp_path / "r")
    ids = store.table("identifiers").sort_values("kind")
    assert ids["kind"].tolist() == ["cookie", "device", "imei"]
    assert ids["first_seen"].tolist() == [pd.Timestamp("2026-11-01T01:00:00Z")] * 3
    sub = store.neighbourhood([NodeRef("Account", "b1")], rel_types=["USES"])
    nodes = {n.ref.id: n.props for n in sub.nodes if n.ref.label == "Identifier"}
    assert set(nodes) == {"imei:356938035643809", "cookie:ck-1", "device:dev-1"}
    assert nodes["cookie:ck-1"]["kind"] == "cookie" and nodes["cookie:ck-1"]["value"] == "ck-1"
    # an identifier of any kind is an entity of its own: its neighbourhood is its accounts
    around = store.neighbourhood([NodeRef("Identifier", "cookie:ck-1")])
    assert NodeRef("Account", "b1") in {n.ref for n in around.nodes}
    path = store.shortest_path(
        NodeRef("Identifier", "imei:356938035643809"), NodeRef("Identifier", "cookie:ck-1")
    )
    assert path is not None and path.length == 2
    if isinstance(store, Neo4jStore):
        # the labels of the model's whitelist, and never one made from data
        labels = {
            r["id"]: sorted(r["labels"])
            for r in store._query("MATCH (i:Identifier) RETURN i.id AS id, labels(i) AS labels")
        }
        assert labels == {
            "imei:356938035643809": ["Identifier"],
            "cookie:ck-1": ["Identifier"],
            "device:dev-1": ["Device", "Identifier"],
        }
