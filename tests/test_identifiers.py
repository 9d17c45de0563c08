"""Shared-identifier clusters on a gallery of small hand-built tables."""

from __future__ import annotations

import pandas as pd
import pytest

from ringscope.algorithms.identifiers import KIND, NAME, detect_shared_identifiers
from ringscope.model import canonical_json

T0 = pd.Timestamp("2026-10-31", tz="UTC")


def _ids(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "value": [r[2] for r in rows],
            "first_seen": pd.Series([T0] * len(rows), dtype="datetime64[us, UTC]"),
            "last_seen": pd.Series([T0] * len(rows), dtype="datetime64[us, UTC]"),
        }
    )


def _accounts(ids: list[str], days_old: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ids,
            "roles": "buyer",
            "created_at": [T0 - pd.Timedelta(days=d) for d in days_old],
        }
    )


def _background_accounts() -> pd.DataFrame:
    """The ordinary market: 50 customers who joined over five years."""
    return _accounts([f"u{i}" for i in range(50)], [30.0 + 40.0 * i for i in range(50)])


def _background_orders(n: int = 200) -> list[dict[str, object]]:
    return [
        {
            "order_id": f"bg{i}",
            "buyer_id": f"u{i % 50}",
            "seller_id": f"s{i % 7}",
            "product_id": "p",
            "amount": float(20 + i % 80),
            "status": "completed",
            "ts": T0 - pd.Timedelta(hours=i),
        }
        for i in range(n)
    ]


def incentive_farm() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """15 accounts created this week on 2 devices and 2 cards, one small first order each,
    hours after it was made."""
    farm = [f"f{i:02d}" for i in range(15)]
    rows = [(a, "device", f"dev-{i % 2}") for i, a in enumerate(farm)]
    rows += [(a, "payment", f"card-{(i // 2) % 2}") for i, a in enumerate(farm)]
    rows += [(a, "ip", f"10.0.0.{i}") for i, a in enumerate(farm)]
    orders = _background_orders()
    orders += [
        {
            "order_id": f"fo{i}",
            "buyer_id": a,
            "seller_id": "S",
            "product_id": "coupon-item",
            "amount": 3.0,
            "status": "completed",
            "ts": T0 - pd.Timedelta(days=2 + i / 10) + pd.Timedelta(hours=3),
        }
        for i, a in enumerate(farm)
    ]
    acc = pd.concat(
        [_accounts(farm, [2 + i / 10 for i in range(15)]), _background_accounts()],
        ignore_index=True,
    )
    od = pd.DataFrame(orders)
    od["ts"] = pd.to_datetime(od["ts"], utc=True).astype("datetime64[us, UTC]")
    return _ids(rows), acc, od


def household() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """3 old accounts sharing a device, the home IP and a card; ordinary orders."""
    fam = ["h1", "h2", "h3"]
    rows = [
        (a, k, v)
        for a in fam
        for k, v in (("device", "tablet"), ("ip", "1.2.3.4"), ("payment", "famcard"))
    ]
    orders = [
        {
            "order_id": f"ho{i}",
            "buyer_id": fam[i % 3],
            "seller_id": f"s{i % 5}",
            "product_id": "p",
            "amount": 40.0 + i,
            "status": "completed",
            "ts": T0 - pd.Timedelta(days=i),
        }
        for i in range(30)
    ]
    od = pd.DataFrame(orders + _background_orders())
    od["ts"] = pd.to_datetime(od["ts"], utc=True).astype("datetime64[us, UTC]")
    return _ids(rows), _accounts(fam, [900, 1200, 2000]), od


def carrier_ip() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """2,000 new accounts behind one carrier IP, each with its own device."""
    accs = [f"m{i:04d}" for i in range(2000)]
    rows = [(a, "ip", "100.64.0.1") for a in accs] + [(a, "device", f"d-{a}") for a in accs]
    od = pd.DataFrame(_background_orders())
    od["ts"] = pd.to_datetime(od["ts"], utc=True).astype("datetime64[us, UTC]")
    return _ids(rows), _accounts(accs, [5.0] * 2000), od


def test_incentive_farm_found() -> None:
    ids, acc, orders = incentive_farm()
    found = detect_shared_identifiers(ids, accounts=acc, orders=orders, seed=0)
    assert len(found) == 1
    f = found[0]
    assert f.kind == KIND and f.detector.name == NAME
    assert f.member_ids == tuple(f"f{i:02d}" for i in range(15))
    names = {s.name for s in f.signals}
    assert {"group_size", "new_account_share", "coupon_order_share"} <= names
    assert {r["kind"] for r in f.evidence["identifiers"]} == {"device", "payment"}
    assert f.evidence["identifiers"][0]["first_seen"] == "2026-10-31T00:00:00+00:00"
    assert "15 accounts share 2 devices, 2 payment methods" in f.explanation


def test_household_not_flagged() -> None:
    ids, acc, orders = household()
    assert detect_shared_identifiers(ids, accounts=acc, orders=orders, seed=0) == []


def test_carrier_ip_not_flagged() -> None:
    ids, acc, orders = carrier_ip()
    assert detect_shared_identifiers(ids, accounts=acc, orders=orders, seed=0) == []


def test_farm_next_to_household_and_carrier() -> None:
    parts = [incentive_farm(), household(), carrier_ip()]
    ids = pd.concat([p[0] for p in parts], ignore_index=True)
    acc = pd.concat([p[1] for p in parts], ignore_index=True).drop_duplicates("account_id")
    orders = pd.concat([p[2] for p in parts], ignore_index=True).drop_duplicates("order_id")
    found = detect_shared_identifiers(ids, accounts=acc, orders=orders, seed=0)
    assert [f.member_ids for f in found] == [tuple(f"f{i:02d}" for i in range(15))]


def test_empty_and_single() -> None:
    ids, acc, _orders = incentive_farm()
    assert detect_shared_identifiers(ids.iloc[:0]) == []
    assert detect_shared_identifiers(ids.iloc[:1], accounts=acc) == []


def test_deterministic_and_canonical() -> None:
    ids, acc, orders = incentive_farm()
    a = detect_shared_identifiers(ids, accounts=acc, orders=orders, seed=3)
    b = detect_shared_identifiers(ids.iloc[::-1], accounts=acc, orders=orders, seed=3)
    assert canonical_json([f.to_dict() for f in a]) == canonical_json([f.to_dict() for f in b])
    for f in a:
        assert 0.0 <= f.score <= 1.0
        assert all(0.0 <= m.score <= 1.0 for m in f.members)
        assert list(f.member_ids) == sorted(f.member_ids)


def test_bad_parameters() -> None:
    ids, _, _ = incentive_farm()
    with pytest.raises(ValueError):
        detect_shared_identifiers(ids, max_accounts_per_identifier=1)
    with pytest.raises(ValueError):
        detect_shared_identifiers(ids, min_score=2.0)
