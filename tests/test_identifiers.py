"""Shared-identifier clusters on a gallery of small hand-built tables."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from ringscope.algorithms.identifiers import (
    KIND,
    NAME,
    crowd_members,
    detect_shared_identifiers,
)
from ringscope.model import Finding, canonical_json

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


def _farm(
    prefix: str, n: int, rows_of: Callable[[int, str], list[tuple[str, str, str]]], seller: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``n`` accounts made over two days, each ordering once at ``seller`` hours later."""
    names = [f"{prefix}{i:04d}" for i in range(n)]
    rows = [r for i, a in enumerate(names) for r in rows_of(i, a)]
    made = [3 + 2 * i / n for i in range(n)]
    ts = [T0 - pd.Timedelta(days=d) + pd.Timedelta(hours=5) for d in made]
    orders = _one_order_each(names, seller, 4.0, ts, "coupon-item")
    return _ids(rows), _accounts(names, made), orders


def _one_order_each(
    names: list[str], seller: object, amount: object, ts: list[pd.Timestamp], product: str
) -> pd.DataFrame:
    """One completed order per account (``seller`` and ``amount``: one value or a list)."""
    orders = pd.DataFrame(
        {
            "order_id": [f"o-{a}" for a in names],
            "buyer_id": names,
            "seller_id": seller,
            "product_id": product,
            "amount": amount,
            "status": "completed",
            "ts": ts,
        }
    )
    orders["ts"] = orders["ts"].astype("datetime64[us, UTC]")
    return orders


def _market(
    *parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The parts beside the ordinary background market."""
    bg = pd.DataFrame(_background_orders())
    bg["ts"] = pd.to_datetime(bg["ts"], utc=True).astype("datetime64[us, UTC]")
    ids = pd.concat([p[0] for p in parts], ignore_index=True)
    acc = pd.concat([*(p[1] for p in parts), _background_accounts()], ignore_index=True)
    orders = pd.concat([*(p[2] for p in parts), bg], ignore_index=True)
    return ids, acc.drop_duplicates("account_id"), orders.drop_duplicates("order_id")


def test_farm_over_eight_device_pools_is_one_finding() -> None:
    farm = _farm(
        "p",
        40,
        lambda i, a: [(a, "device", f"dev-{i // 5}"), (a, "payment", f"card-{i % 4}")],
        "S1",
    )
    found = _run(farm)
    assert [f.member_ids for f in found] == [tuple(f"p{i:04d}" for i in range(40))]


def test_farm_of_1200_on_one_proxy_ip_is_found_not_skipped() -> None:
    farm = _farm(
        "x",
        1200,
        lambda i, a: [(a, "ip", "203.0.113.7"), (a, "payment", f"card-{i % 3}")],
        "S2",
    )
    found = _run(farm)
    assert [len(f.members) for f in found] == [1200]


def test_small_farm_with_strong_evidence_is_found() -> None:
    farm = _farm(
        "s",
        4,
        lambda i, a: [(a, "device", "tab"), (a, "payment", "card"), (a, "ip", "198.51.100.4")],
        "S3",
    )
    found = _run(farm)
    assert [f.member_ids for f in found] == [("s0000", "s0001", "s0002", "s0003")]


def test_households_of_two_to_eight_are_not_flagged() -> None:
    rows: list[tuple[str, str, str]] = []
    names: list[str] = []
    ages: list[float] = []
    orders: list[dict[str, object]] = []
    for h, size in enumerate(range(2, 9)):
        for j in range(size):
            a = f"h{h}m{j}"
            names.append(a)
            ages.append(200.0 + 300.0 * j + 17.0 * h)
            rows += [(a, "device", f"tab{h}"), (a, "ip", f"home{h}"), (a, "address", f"st{h}")]
            orders += [
                {
                    "order_id": f"ho-{a}-{k}",
                    "buyer_id": a,
                    "seller_id": f"s{(h + j + k) % 7}",
                    "product_id": "p",
                    "amount": 30.0 + k,
                    "status": "completed",
                    "ts": T0 - pd.Timedelta(days=5 * k + j),
                }
                for k in range(3)
            ]
    od = pd.DataFrame(orders)
    od["ts"] = od["ts"].astype("datetime64[us, UTC]")
    part = (_ids(rows), _accounts(names, ages), od)
    assert _run(part) == []


@pytest.mark.parametrize("n", [300, 3000])
def test_shared_ip_of_campus_or_carrier_is_not_flagged(n: int) -> None:
    names = [f"c{i:05d}" for i in range(n)]
    rows = [(a, "ip", "100.64.0.1") for a in names] + [(a, "device", f"d-{a}") for a in names]
    acc = _accounts(names, [10.0 + (i * 37) % 1500 for i in range(n)])
    od = pd.DataFrame(
        {
            "order_id": [f"co{i}" for i in range(n)],
            "buyer_id": names,
            "seller_id": [f"s{i % 7}" for i in range(n)],
            "product_id": "p",
            "amount": 25.0,
            "status": "completed",
            "ts": [T0 - pd.Timedelta(days=1 + i % 9) for i in range(n)],
        }
    )
    od["ts"] = od["ts"].astype("datetime64[us, UTC]")
    assert _run((_ids(rows), acc, od)) == []


def _run(part: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> list[Finding]:
    ids, acc, orders = _market(part)
    return detect_shared_identifiers(ids, accounts=acc, orders=orders, seed=0)


def _newcomers(n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Ordinary new customers: ``n`` accounts made over eight days, each ordering once at
    one of the ordinary sellers some hours later, with its own device."""
    names = [f"nc{i:03d}" for i in range(n)]
    made = [0.5 + 8.0 * i / n for i in range(n)]
    od = _one_order_each(
        names,
        [f"s{i % 7}" for i in range(n)],
        [float(20 + (i * 13) % 60) for i in range(n)],
        [T0 - pd.Timedelta(days=d) + pd.Timedelta(hours=6 + i % 30) for i, d in enumerate(made)],
        "p",
    )
    return _ids([(a, "device", f"d-{a}") for a in names]), _accounts(names, made), od


def _flash_sale(seller: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """43 customers ordering once at ``seller`` within a minute, 3.2 days ago: 40 made
    months or years ago and 3 made 3.5 to 4.5 days ago (in the farm's days)."""
    names = [f"fs{i:02d}" for i in range(40)] + ["fn0", "fn1", "fn2"]
    ages = [100.0 + 20.0 * i for i in range(40)] + [3.5, 4.0, 4.5]
    moment = T0 - pd.Timedelta(days=3.2)
    ts = [moment + pd.Timedelta(seconds=1.5 * i) for i in range(len(names))]
    od = _one_order_each(names, seller, 4.0, ts, "deal")
    return _ids([(a, "device", f"d-{a}") for a in names]), _accounts(names, ages), od


def _together(
    *parts: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ids, acc, orders = zip(*parts, strict=True)
    return (
        pd.concat(ids, ignore_index=True),
        pd.concat(acc, ignore_index=True),
        pd.concat(orders, ignore_index=True),
    )


def _loner_farm() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return _farm("n", 60, lambda i, a: [(a, "device", f"d-{a}")], "S4")


def test_farm_sharing_nothing_is_found_by_its_creation_burst() -> None:
    # no identifier ties the 60 accounts; the scan's best window (32 hours of the farm's
    # two days of creations) holds the 41 made last
    found = _run(_together(_loner_farm(), _newcomers()))
    assert [f.member_ids for f in found] == [tuple(f"n{i:04d}" for i in range(19, 60))]


def test_flash_sale_buyers_made_in_a_farms_days_stay_out() -> None:
    # three sale customers share the farm's seller and creation days, but ordered in the
    # sale's minute with forty others: the finding holds farm accounts only (the sale's
    # accounts in the farm's days move the scan's best window by four accounts)
    found = _run(_together(_loner_farm(), _newcomers(), _flash_sale("S4")))
    assert [f.member_ids for f in found] == [tuple(f"n{i:04d}" for i in range(15, 56))]


def test_crowd_members_are_the_accounts_ordering_with_a_crowd() -> None:
    made = np.array([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7])
    ordered = made + 0.5
    ordered[3] = 5.0  # ordered when 30 others did, within a few minutes
    others = np.sort(np.r_[np.linspace(0.0, 10.0, 20), 5.0 + np.arange(30) * 1e-3])
    crowd = crowd_members(made, ordered, others, len(others) / 10.0, 2.0)
    assert crowd.tolist() == [False, False, False, True, False, False, False, False]
    # the same orders without the crowd: nobody
    calm = np.linspace(0.0, 10.0, 20)
    assert not crowd_members(made, ordered, calm, 2.0, 2.0).any()
