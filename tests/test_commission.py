"""Commission rings on a gallery of small hand-built marketplaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ringscope.algorithms.commission import (
    KIND,
    NAME,
    VERSION,
    detect_commission_rings,
    identifier_links,
)
from ringscope.errors import ConfigError
from ringscope.model import canonical_json
from ringscope.policy import load_policy

T0 = pd.Timestamp("2026-10-01", tz="UTC")


def _orders(rows: list[dict[str, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for c in ("ts", "refunded_at"):
        df[c] = pd.to_datetime(df.get(c), utc=True).astype("datetime64[us, UTC]")
    return df


def _accounts(ids: list[str], days_old: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ids,
            "roles": "buyer",
            "created_at": T0 - pd.Timedelta(days=days_old),
        }
    )


def _ids(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "value": [r[2] for r in rows],
            "first_seen": T0,
        }
    )


def background(rng: np.random.Generator, n_orders: int = 400) -> list[dict[str, object]]:
    """Ordinary affiliate sales of many creators and sellers, about 6% refunded."""
    rows = []
    for i in range(n_orders):
        bad = rng.random() < 0.06
        ts = T0 + pd.Timedelta(minutes=int(rng.integers(0, 30 * 24 * 60)))
        rows.append(
            {
                "order_id": f"bg{i}",
                "buyer_id": f"u{rng.integers(0, 300)}",
                "seller_id": f"s{rng.integers(10, 20)}",
                "product_id": f"p{rng.integers(0, 50)}",
                "amount": float(rng.integers(5, 60)),
                "status": "refunded" if bad else "completed",
                "ts": ts,
                "creator_id": f"c{rng.integers(10, 30)}",
                "commission": 2.0,
                "refunded_at": ts + pd.Timedelta(days=2) if bad else None,
            }
        )
    return rows


def planted_ring() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Creator C + seller S + 8 new buyers, 70% refunded after commission, one shared card."""
    rng = np.random.default_rng(7)
    rows = background(rng)
    buyers = [f"rb{i}" for i in range(8)]
    k = 0
    for b in buyers:
        for _ in range(5):
            ts = T0 + pd.Timedelta(days=3, minutes=int(rng.integers(0, 600)))
            bad = k % 10 < 7
            rows.append(
                {
                    "order_id": f"r{k}",
                    "buyer_id": b,
                    "seller_id": "S",
                    "product_id": "pR",
                    "amount": 80.0,
                    "status": "refunded" if bad else "completed",
                    "ts": ts,
                    "creator_id": "C",
                    "commission": 16.0,
                    "refunded_at": ts + pd.Timedelta(days=3) if bad else None,
                }
            )
            k += 1
    acc = pd.concat(
        [_accounts(buyers, 5), _accounts([f"u{i}" for i in range(300)], 900)], ignore_index=True
    )
    ids = _ids([(b, "payment", "card-1") for b in buyers] + [("C", "payment", "card-1")])
    return _orders(rows), acc, ids


def stealth_ring() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """6 old buyers with almost no refunds, ordering only through C for S, on 2 shared cards."""
    rng = np.random.default_rng(8)
    rows = background(rng)
    buyers = [f"sb{i}" for i in range(6)]
    k = 0
    for b in buyers:
        for _ in range(3):
            rows.append(
                {
                    "order_id": f"st{k}",
                    "buyer_id": b,
                    "seller_id": "S",
                    "product_id": "pS",
                    "amount": 40.0,
                    "status": "completed",
                    "ts": T0 + pd.Timedelta(days=int(rng.integers(0, 20)), hours=k % 24),
                    "creator_id": "C",
                    "commission": 8.0,
                    "refunded_at": None,
                }
            )
            k += 1
    acc = pd.concat(
        [_accounts(buyers, 400), _accounts([f"u{i}" for i in range(300)], 900)], ignore_index=True
    )
    ids = _ids([(b, "payment", f"card-{i % 2}") for i, b in enumerate(buyers)])
    return _orders(rows), acc, ids


def flash_sale() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """300 unrelated buyers order one product in one minute; 5% refunded; nothing shared."""
    rng = np.random.default_rng(9)
    rows = background(rng)
    buyers = [f"fb{i}" for i in range(300)]
    for i, b in enumerate(buyers):
        ts = T0 + pd.Timedelta(days=5, seconds=int(rng.integers(0, 60)))
        bad = i % 20 == 0
        rows.append(
            {
                "order_id": f"fs{i}",
                "buyer_id": b,
                "seller_id": "S",
                "product_id": "pF",
                "amount": 15.0,
                "status": "refunded" if bad else "completed",
                "ts": ts,
                "creator_id": "C",
                "commission": 1.5,
                "refunded_at": ts + pd.Timedelta(days=1) if bad else None,
            }
        )
    ages = rng.integers(1, 2000, size=300).astype(float)
    acc = pd.DataFrame(
        {"account_id": buyers, "roles": "buyer", "created_at": T0 - pd.to_timedelta(ages, "D")}
    )
    ids = _ids([(b, "device", f"dev-{b}") for b in buyers])
    return _orders(rows), acc, ids


def sale(
    rng: np.random.Generator,
    order_id: str,
    buyer: str,
    seller: str,
    creator: str,
    ts: pd.Timestamp,
    bad: bool,
    *,
    refund_days: float,
) -> dict[str, object]:
    """One ordinary affiliate order (3.0 commission), refunded ``refund_days`` later when
    ``bad``."""
    return {
        "order_id": order_id,
        "buyer_id": buyer,
        "seller_id": seller,
        "product_id": f"p{rng.integers(0, 20)}",
        "amount": float(rng.integers(5, 90)),
        "status": "refunded" if bad else "completed",
        "ts": ts,
        "creator_id": creator,
        "commission": 3.0,
        "refunded_at": ts + pd.Timedelta(days=refund_days) if bad else None,
    }


def popular_creator() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A popular creator's normal sales: 200 buyers, repeat customers, 6% refunds."""
    rng = np.random.default_rng(10)
    rows = background(rng)
    for i in range(600):
        bad = rng.random() < 0.06
        ts = T0 + pd.Timedelta(minutes=int(rng.integers(0, 30 * 24 * 60)))
        buyer, seller = f"pb{rng.integers(0, 200)}", f"s{rng.integers(0, 3)}"
        rows.append(sale(rng, f"pc{i}", buyer, seller, "POP", ts, bad, refund_days=4))
    ages = rng.integers(1, 2000, size=200).astype(float)
    acc = pd.DataFrame(
        {
            "account_id": [f"pb{i}" for i in range(200)],
            "roles": "buyer",
            "created_at": T0 - pd.to_timedelta(ages, "D"),
        }
    )
    return _orders(rows), acc, _ids([])


def ring_orders(
    rng: np.random.Generator,
    buyers: list[str],
    creators: list[str],
    sellers: list[str],
    *,
    per_buyer: int,
    bad_share: float,
    refund_days: float,
    tag: str,
) -> list[dict[str, object]]:
    """A ring's orders: each buyer orders ``per_buyer`` times through the creators' links
    (in turn) for the sellers (in turn); ``bad_share`` of them refunded ``refund_days``
    after the order."""
    rows: list[dict[str, object]] = []
    k = 0
    for i, b in enumerate(buyers):
        for j in range(per_buyer):
            ts = T0 + pd.Timedelta(days=2, minutes=int(rng.integers(0, 20 * 24 * 60)))
            bad = rng.random() < bad_share
            rows.append(
                {
                    "order_id": f"{tag}{k}",
                    "buyer_id": b,
                    "seller_id": sellers[(i + j) % len(sellers)],
                    "product_id": f"p{tag}",
                    "amount": 70.0,
                    "status": "refunded" if bad else "completed",
                    "ts": ts,
                    "creator_id": creators[(i + j) % len(creators)],
                    "commission": 14.0,
                    "refunded_at": ts + pd.Timedelta(days=refund_days) if bad else None,
                }
            )
            k += 1
    return rows


def _market_accounts(ring: list[str], ring_days: float) -> pd.DataFrame:
    return pd.concat(
        [_accounts(ring, ring_days), _accounts([f"u{i}" for i in range(300)], 900)],
        ignore_index=True,
    )


def small_ring() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """5 buyers created days ago, 4 orders each through C for S, most refunded three
    weeks later (the market refunds after 2 days), one card shared with the creator."""
    rng = np.random.default_rng(11)
    buyers = [f"kb{i}" for i in range(5)]
    rows = background(rng) + ring_orders(
        rng, buyers, ["C"], ["S"], per_buyer=4, bad_share=0.75, refund_days=21, tag="k"
    )
    ids = _ids([(b, "payment", "card-9") for b in buyers] + [("C", "payment", "card-9")])
    return _orders(rows), _market_accounts(buyers, 4), ids


def two_creator_ring() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """12 new buyers ordering in turn through creators C1 and C2 for seller S, most
    refunded, devices shared in threes: one ring across two creators."""
    rng = np.random.default_rng(12)
    buyers = [f"tb{i}" for i in range(12)]
    rows = background(rng) + ring_orders(
        rng, buyers, ["C1", "C2"], ["S"], per_buyer=4, bad_share=0.6, refund_days=12, tag="t"
    )
    ids = _ids([(b, "device", f"dev-{i // 3}") for i, b in enumerate(buyers)])
    return _orders(rows), _market_accounts(buyers, 6), ids


def big_ring() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """37 new buyers, 3 orders each through C for sellers S1 and S2, half refunded,
    cards shared in fours."""
    rng = np.random.default_rng(13)
    buyers = [f"gb{i}" for i in range(37)]
    rows = background(rng, n_orders=800) + ring_orders(
        rng, buyers, ["C"], ["S1", "S2"], per_buyer=3, bad_share=0.5, refund_days=10, tag="g"
    )
    ids = _ids([(b, "payment", f"card-{i // 4}") for i, b in enumerate(buyers)])
    return _orders(rows), _market_accounts(buyers, 8), ids


def loyal_fans() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A creator's fan base: 80 old accounts ordering 3-6 times each, only through the
    creator FAN's links, for several sellers; ordinary refunds, nothing shared."""
    rng = np.random.default_rng(14)
    rows = background(rng)
    fans = [f"fan{i}" for i in range(80)]
    k = 0
    for b in fans:
        for _ in range(int(rng.integers(3, 7))):
            bad = rng.random() < 0.06
            ts = T0 + pd.Timedelta(minutes=int(rng.integers(0, 30 * 24 * 60)))
            seller = f"s{rng.integers(10, 14)}"
            rows.append(sale(rng, f"fan{k}", b, seller, "FAN", ts, bad, refund_days=2))
            k += 1
    ages = rng.integers(60, 2000, size=len(fans)).astype(float)
    acc = pd.concat(
        [
            pd.DataFrame(
                {
                    "account_id": fans,
                    "roles": "buyer",
                    "created_at": T0 - pd.to_timedelta(ages, "D"),
                }
            ),
            _accounts([f"u{i}" for i in range(300)], 900),
        ],
        ignore_index=True,
    )
    return _orders(rows), acc, _ids([])


def test_planted_ring_found_with_exact_members() -> None:
    orders, acc, ids = planted_ring()
    found = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    assert len(found) == 1
    f = found[0]
    assert f.kind == KIND
    assert set(f.member_ids) == {f"rb{i}" for i in range(8)} | {"C", "S"}
    roles = {m.account_id: m.role for m in f.members}
    assert roles["C"] == "creator" and roles["S"] == "seller" and roles["rb0"] == "buyer"
    assert {(b.account_id, b.role) for b in f.beneficiaries} == {("C", "creator"), ("S", "seller")}
    names = {s.name for s in f.signals}
    assert {"excess_refund_cancel_rate", "shared_identifier_share", "new_buyer_share"} <= names
    assert "8 buyers" in f.explanation and "70%" in f.explanation
    assert f.evidence["orders"] and f.evidence["identifiers"][0]["value"] == "card-1"
    assert f.evidence["orders"][0]["ts"].endswith("+00:00")
    assert f.detector.name == NAME and f.detector.version == VERSION
    assert f.detector.params["min_buyers"] == 2


def test_stealth_ring_with_shared_cards_found() -> None:
    orders, acc, ids = stealth_ring()
    found = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    assert [set(f.member_ids) for f in found] == [{f"sb{i}" for i in range(6)} | {"C", "S"}]
    assert "excess_refund_cancel_rate" not in {s.name for s in found[0].signals}


def test_flash_sale_not_flagged() -> None:
    orders, acc, ids = flash_sale()
    assert detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0) == []


def test_popular_creator_not_flagged() -> None:
    orders, acc, ids = popular_creator()
    assert detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0) == []


def test_empty_and_single() -> None:
    orders, acc, ids = planted_ring()
    assert detect_commission_rings(orders.iloc[:0], accounts=acc, identifiers=ids) == []
    assert detect_commission_rings(orders.iloc[:1], accounts=acc, identifiers=ids) == []


def test_invariants_and_determinism() -> None:
    orders, acc, ids = planted_ring()
    a = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=1)
    b = detect_commission_rings(
        orders.sample(frac=1.0, random_state=3), accounts=acc, identifiers=ids, seed=1
    )
    assert canonical_json([f.to_dict() for f in a]) == canonical_json([f.to_dict() for f in b])
    for f in a:
        assert 0.0 <= f.score <= 1.0
        assert all(0.0 <= m.score <= 1.0 for m in f.members)
        assert list(f.member_ids) == sorted(f.member_ids)


def test_bad_parameters() -> None:
    orders, _acc, _ids_table = planted_ring()
    with pytest.raises(ValueError):
        detect_commission_rings(orders, min_buyers=1)
    with pytest.raises(ValueError):
        detect_commission_rings(orders.drop(columns=["status"]))


def test_small_ring_with_strong_evidence_found() -> None:
    orders, acc, ids = small_ring()
    found = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    assert [set(f.member_ids) for f in found] == [{f"kb{i}" for i in range(5)} | {"C", "S"}]
    names = {s.name for s in found[0].signals}
    assert {"late_refund_share", "shared_identifier_share", "new_buyer_share"} <= names


def test_ring_across_two_creators_is_one_finding() -> None:
    orders, acc, ids = two_creator_ring()
    found = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    assert [set(f.member_ids) for f in found] == [{f"tb{i}" for i in range(12)} | {"C1", "C2", "S"}]
    roles = {m.account_id: m.role for m in found[0].members}
    assert roles["C1"] == roles["C2"] == "creator"
    assert "creators C1, C2'" in found[0].explanation


def test_big_ring_found_whole() -> None:
    orders, acc, ids = big_ring()
    found = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    assert len(found) == 1
    assert set(found[0].member_ids) == {f"gb{i}" for i in range(37)} | {"C", "S1", "S2"}
    assert "37 buyers" in found[0].explanation


def test_loyal_fan_base_not_flagged() -> None:
    orders, acc, ids = loyal_fans()
    assert detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0) == []


def test_rings_beside_hard_negatives() -> None:
    """A small ring, a flash sale (of another creator and seller) and a loyal fan base
    in one market: only the ring."""
    parts = [small_ring(), flash_sale(), loyal_fans()]
    fs = parts[1][0]
    sale = fs["order_id"].str.startswith("fs")
    fs.loc[sale, "creator_id"], fs.loc[sale, "seller_id"] = "FC", "FS"
    orders = pd.concat([p[0] for p in parts], ignore_index=True)
    orders = orders.drop_duplicates("order_id", keep="first")
    acc = pd.concat([p[1] for p in parts], ignore_index=True).drop_duplicates("account_id")
    ids = pd.concat([p[2] for p in parts], ignore_index=True)
    found = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    assert [set(f.member_ids) for f in found] == [{f"kb{i}" for i in range(5)} | {"C", "S"}]


def test_version_one_parameters_refused(tmp_path: Path) -> None:
    orders, _acc, _ids_table = planted_ring()
    with pytest.raises(TypeError, match="concentration"):
        detect_commission_rings(orders, concentration=0.8)  # type: ignore[call-arg]
    path = tmp_path / "policy.yaml"
    path.write_text("detectors:\n  commission_rings:\n    params:\n      burst_minutes: 60\n")
    with pytest.raises(ConfigError, match="burst_minutes is not a parameter of commission_rings"):
        load_policy(path)


def test_identifier_links_keep_identifiers_of_two_or_more_accounts() -> None:
    """One row per account and identifier held by two or more accounts, its earliest
    sighting; a kind weighing nothing (other_weight 0) is left out, but its accounts
    still count for the table's accounts."""
    t = pd.Timestamp("2026-09-01", tz="UTC")
    ids = pd.DataFrame(
        {
            "account_id": ["b", "a", "a", "c", "d", "e", "e", "f"],
            "kind": [
                "payment",
                "payment",
                "payment",
                "payment",
                "device",
                "cookie",
                "cookie",
                "cookie",
            ],
            "value": ["k1", "k1", "k1", "k2", "k1", "z", "z", "z"],
            "first_seen": [t, t + pd.Timedelta(days=2), t - pd.Timedelta(days=1), t, t, t, t, t],
        }
    )
    links = identifier_links(ids, other_weight=0.0)
    assert links.n_accounts == 6 and links.n_shared == 1
    assert links.links.to_dict("records") == [
        {
            "account_id": "a",
            "kind": "payment",
            "value": "k1",
            "n_accounts": 2,
            "first_seen": t - pd.Timedelta(days=1),
        },
        {"account_id": "b", "kind": "payment", "value": "k1", "n_accounts": 2, "first_seen": t},
    ]
    assert identifier_links(ids, other_weight=1.0).n_shared == 2


def split_buyer_ring() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One ring whose two creators never share a buyer: 6 new buyers order through C1,
    most refunded, sharing a card; 6 old accounts order only through C2, three times
    each, nothing refunded. Both for seller S: nearly all of S's affiliate sales. C2's
    buyers alone are captive and nothing else (no finding of their own); with C1's
    they are one ring, tied by the seller."""
    rng = np.random.default_rng(15)
    b1 = [f"xb{i}" for i in range(6)]
    b2 = [f"yb{i}" for i in range(6)]
    rows = background(rng)
    rows += ring_orders(rng, b1, ["C1"], ["S"], per_buyer=4, bad_share=0.7, refund_days=9, tag="x")
    rows += ring_orders(rng, b2, ["C2"], ["S"], per_buyer=3, bad_share=0.0, refund_days=9, tag="y")
    ids = _ids([(b, "payment", "card-x") for b in b1])
    acc = pd.concat([_market_accounts(b1, 5), _accounts(b2, 900)], ignore_index=True)
    return _orders(rows), acc, ids


def test_ring_of_two_creators_without_common_buyers_is_one_finding() -> None:
    orders, acc, ids = split_buyer_ring()
    found = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    ring = {f"xb{i}" for i in range(6)} | {f"yb{i}" for i in range(6)} | {"C1", "C2", "S"}
    assert [set(f.member_ids) for f in found] == [ring]


def test_joining_sets_batch_by_batch_gives_the_same_findings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Candidate unions are taken a batch at a time to bound memory: one pair per batch
    finds what one batch for all does."""
    from ringscope.algorithms import commission

    orders, acc, ids = two_creator_ring()
    whole = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    monkeypatch.setattr(commission, "_UNION_ROWS", 1)
    batched = detect_commission_rings(orders, accounts=acc, identifiers=ids, seed=0)
    assert len(whole) == 1
    assert canonical_json([f.to_dict() for f in batched]) == canonical_json(
        [f.to_dict() for f in whole]
    )
