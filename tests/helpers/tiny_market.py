"""A small hand-built marketplace in normalised form, for the embedded store's tests.

Two creators (c1 hosts st1, c2 hosts st2 and sells p2), a seller s1 (p1) who is
c1's affiliate, buyers b1, b2, b3 (b1 and b2 share device d1, b3 follows c1 and
watches st2) and an isolated account x1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ringscope.contract import LOAD_ORDER, TABLES
from ringscope.graphs.embedded import EmbeddedStore

MARKET: dict[str, list[dict[str, Any]]] = {
    "accounts": [
        {"account_id": "c1", "roles": "creator", "created_at": "2022-01-01", "country": "DE"},
        {"account_id": "c2", "roles": "creator|seller", "created_at": "2022-02-01"},
        {"account_id": "s1", "roles": "seller", "created_at": "2022-03-01", "country": "FR"},
        {"account_id": "b1", "roles": "buyer", "created_at": "2023-01-01", "country": "DE"},
        {"account_id": "b2", "roles": "buyer", "created_at": "2023-01-02", "status": "active"},
        {"account_id": "b3", "roles": "buyer", "created_at": "2023-01-03"},
        {"account_id": "x1", "roles": "buyer", "created_at": "2023-01-04"},
        {"account_id": "zz", "roles": "buyer|creator", "created_at": "2023-01-05"},
    ],
    "streams": [
        {
            "stream_id": "st1",
            "creator_id": "c1",
            "started_at": "2024-01-01T10:00:00",
            "ended_at": "2024-01-01T12:00:00",
        },
        {"stream_id": "st2", "creator_id": "c2", "started_at": "2024-01-02T10:00:00"},
    ],
    "affiliations": [
        {"creator_id": "c1", "seller_id": "s1", "commission_rate": 0.1, "since": "2023-11-01"},
    ],
    "follows": [
        {"follower_id": "b1", "creator_id": "c1", "ts": "2023-12-01"},
        {"follower_id": "b2", "creator_id": "c1", "ts": "2023-12-02"},
        {"follower_id": "b3", "creator_id": "c1", "ts": "2023-12-03"},
    ],
    "engagements": [
        {"account_id": "b1", "stream_id": "st1", "kind": "view", "ts": "2024-01-01T10:05:00"},
        {"account_id": "b1", "stream_id": "st1", "kind": "like", "ts": "2024-01-01T10:06:00"},
        {
            "account_id": "b1",
            "stream_id": "st1",
            "kind": "gift",
            "ts": "2024-01-01T10:07:00",
            "amount": 5.0,
        },
        {"account_id": "b2", "stream_id": "st1", "kind": "view", "ts": "2024-01-01T10:10:00"},
        {"account_id": "b3", "stream_id": "st2", "kind": "view", "ts": "2024-01-02T11:00:00"},
        {"account_id": "zz", "stream_id": "st2", "kind": "view", "ts": "2024-01-02T11:00:00"},
    ],
    "orders": [
        {
            "order_id": "o1",
            "buyer_id": "b1",
            "seller_id": "s1",
            "product_id": "p1",
            "amount": 10.0,
            "status": "completed",
            "ts": "2024-01-01T11:00:00",
            "creator_id": "c1",
            "stream_id": "st1",
            "commission": 1.0,
        },
        {
            "order_id": "o2",
            "buyer_id": "b2",
            "seller_id": "s1",
            "product_id": "p1",
            "amount": 10.0,
            "status": "refunded",
            "ts": "2024-01-03T00:00:00",
            "refunded_at": "2024-01-04T00:00:00",
        },
        {
            "order_id": "o3",
            "buyer_id": "b3",
            "seller_id": "c2",
            "product_id": "p2",
            "amount": 5.0,
            "status": "completed",
            "ts": "2024-01-02T12:00:00",
            "stream_id": "st2",
        },
    ],
    "identifiers": [
        {"account_id": "b1", "kind": "device", "value": "d1", "first_seen": "2023-01-01"},
        {
            "account_id": "b2",
            "kind": "device",
            "value": "d1",
            "first_seen": "2023-06-01",
            "last_seen": "2023-12-31",
        },
        {"account_id": "b3", "kind": "ip", "value": "10.0.0.1", "first_seen": "2024-01-01"},
    ],
    "labels": [
        {"subject_id": "b1", "label": "abusive", "decided_at": "2024-02-01", "source": "inv"},
    ],
}


def frame(table: str) -> pd.DataFrame:
    """``MARKET[table]`` in the normalised form of the contract (every column present)."""
    spec = TABLES[table]
    rows = MARKET[table]
    data: dict[str, Any] = {}
    for col in spec.columns:
        values = [r.get(col.name) for r in rows]
        if col.type == "ts":
            data[col.name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True).dt.as_unit(
                "us"
            )
        elif col.type == "float":
            data[col.name] = np.array([np.nan if v is None else v for v in values], np.float64)
        else:
            data[col.name] = pd.array(values, dtype="str")
    return pd.DataFrame(data)


def load_market(store: EmbeddedStore, load_id: str = "L1") -> None:
    for table in LOAD_ORDER:
        store.write_batch(table, frame(table), load_id)
