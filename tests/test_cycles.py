"""Money cycles on small hand-built order tables."""

from __future__ import annotations

import pandas as pd
import pytest

from ringscope.algorithms.cycles import KIND, detect_money_cycles
from ringscope.model import canonical_json

T0 = pd.Timestamp("2026-10-01", tz="UTC")


def _orders(hops: list[tuple[str, str, float, pd.Timestamp]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [f"o{i:04d}" for i in range(len(hops))],
            "buyer_id": [h[0] for h in hops],
            "seller_id": [h[1] for h in hops],
            "product_id": "p",
            "amount": [h[2] for h in hops],
            "status": "completed",
            "ts": pd.to_datetime([h[3] for h in hops], utc=True).astype("datetime64[us, UTC]"),
            "creator_id": None,
            "commission": float("nan"),
        }
    )


def cycle_orders(rounds: int = 4) -> list[tuple[str, str, float, pd.Timestamp]]:
    hops = []
    for r in range(rounds):
        base = T0 + pd.Timedelta(days=3 * r)
        hops += [
            ("A", "B", 900.0, base),
            ("B", "C", 880.0, base + pd.Timedelta(hours=5)),
            ("C", "A", 870.0, base + pd.Timedelta(hours=11)),
        ]
    return hops


def hub_orders() -> list[tuple[str, str, float, pd.Timestamp]]:
    """Everybody buys from hub H, repeatedly; H buys from two of them; they trade too."""
    hops = []
    for i in range(60):
        for r in range(3):
            hops.append((f"b{i}", "H", 20.0, T0 + pd.Timedelta(days=r, minutes=i)))
    for r in range(3):
        day = T0 + pd.Timedelta(days=r, hours=12)
        hops += [("H", "b1", 20.0, day), ("b1", "b2", 20.0, day), ("b2", "b3", 20.0, day)]
    return hops


def test_repeated_cycle_found() -> None:
    hops = cycle_orders() + hub_orders()
    found = detect_money_cycles(_orders(hops), seed=0)
    assert [f.member_ids for f in found] == [("A", "B", "C")]
    f = found[0]
    assert f.kind == KIND
    assert f.evidence["cycles"][0]["path"] == ["A", "B", "C", "A"]
    assert f.evidence["cycles"][0]["rounds"] == 4
    assert "completed_rounds" in {s.name for s in f.signals}
    assert "A -> B -> C -> A" in f.explanation


def test_hub_seller_not_flagged() -> None:
    assert detect_money_cycles(_orders(hub_orders()), seed=0) == []


def test_back_and_forth_not_flagged() -> None:
    hops = []
    for r in range(5):
        hops += [
            ("A", "B", 50.0, T0 + pd.Timedelta(days=r)),
            ("B", "A", 50.0, T0 + pd.Timedelta(days=r, hours=1)),
        ]
    assert detect_money_cycles(_orders(hops), seed=0) == []


def test_slow_cycle_not_counted() -> None:
    hops = []
    for r in range(3):
        base = T0 + pd.Timedelta(days=40 * r)
        hops += [
            ("A", "B", 900.0, base),
            ("B", "C", 900.0, base + pd.Timedelta(days=10)),
            ("C", "A", 900.0, base + pd.Timedelta(days=20)),
        ]
    assert detect_money_cycles(_orders(hops), seed=0) == []


def test_empty_single_and_params() -> None:
    assert detect_money_cycles(_orders([])) == []
    assert detect_money_cycles(_orders([("A", "B", 1.0, T0)])) == []
    with pytest.raises(ValueError):
        detect_money_cycles(_orders([]), min_length=4, max_length=3)


def test_deterministic_and_canonical() -> None:
    o = _orders(cycle_orders() + hub_orders())
    a = detect_money_cycles(o, seed=1)
    b = detect_money_cycles(o.sample(frac=1.0, random_state=5), seed=1)
    assert canonical_json([f.to_dict() for f in a]) == canonical_json([f.to_dict() for f in b])
    for f in a:
        assert 0.0 <= f.score <= 1.0
        assert all(0.0 <= m.score <= 1.0 for m in f.members)
