"""Impact of a finding: money through it, engagement it inflated, reach; queue orders."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.impact import IMPACT_KEYS, add_impact, order_queue, priority
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member

D = DetectorInfo("test", "1")
T = pd.Timestamp("2026-01-01T00:00:00Z")


def mk(ids: list[str], creators: list[str] = (), score: float = 0.5) -> Finding:  # type: ignore[assignment]
    return Finding.build(
        kind="engagement_farm", score=score, explanation="", detector=D,
        members=[Member(i, "bot", 1.0) for i in ids],
        beneficiaries=[Beneficiary(c, "creator") for c in creators],
    )  # fmt: skip


def tiny() -> MarketTables:
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "buyer_id": ["a", "b", "c"],
            "amount": [10.0, 20.0, 5.0],
            "commission": [1.0, 2.0, 0.5],
            "status": ["refunded", "paid", "paid"],
            "refunded_at": [T, pd.NaT, pd.NaT],
            "ts": [T, T, T],
        }
    )
    streams = pd.DataFrame({"stream_id": ["s1", "s2"], "creator_id": ["c1", "c2"]})
    ev = pd.DataFrame(
        {
            "account_id": ["a", "a", "b", "x", "a", "y"],
            "stream_id": ["s1", "s1", "s1", "s1", "s2", "s2"],
            "kind": ["view"] * 6,
            "ts": [T] * 6,
        }
    )
    return MarketTables(orders=orders, streams=streams, engagements=ev)


def test_impact_of_a_finding_adds_up_by_hand() -> None:
    boosted, unnamed = add_impact([mk(["a", "b"], ["c1"]), mk(["a", "b"])], tiny())
    assert boosted.impact["orders"] == 2 and boosted.impact["gmv"] == 30.0
    assert boosted.impact["gmv_refunded"] == 10.0 and boosted.impact["commission_paid"] == 3.0
    # on creator c1's stream: 3 of its 4 events came from a and b; x is the audience
    assert boosted.impact["events"] == 3 and boosted.impact["engagement_share"] == 0.75
    assert boosted.impact["audience"] == 1
    # without a creator: every stream they engaged with (s1, s2): 4 of 6 events, x and y
    assert unnamed.impact["events"] == 4 and unnamed.impact["engagement_share"] == 0.6667
    assert unnamed.impact["audience"] == 2
    assert set(boosted.impact) == set(IMPACT_KEYS)
    assert 0.0 <= boosted.impact["index"] <= 1.0


def test_impact_of_empty_tables_and_no_findings() -> None:
    assert add_impact([], MarketTables()) == []
    (f,) = add_impact([mk(["a"])], MarketTables())
    assert f.impact["orders"] == 0 and f.impact["engagement_share"] == 0.0
    assert f.impact["index"] == 0.0


def test_queue_orders_by_score_impact_and_priority() -> None:
    rich = add_impact([mk(["a", "b"], ["c1"], score=0.3)], tiny())[0]
    poor = add_impact([mk(["y"], score=0.9)], tiny())[0]
    assert [f.id for f in order_queue([rich, poor], "score")] == [poor.id, rich.id]
    assert [f.id for f in order_queue([rich, poor], "impact")] == [rich.id, poor.id]
    assert priority(rich, 0.0) == rich.score and priority(rich, 1.0) == rich.impact["index"]
    by_priority = order_queue([rich, poor], "priority", impact_weight=0.9)
    assert by_priority[0].id == rich.id
    with pytest.raises(ValueError, match="unknown order"):
        order_queue([rich], "size")


def test_impact_of_every_finding_matches_its_orders_and_events(tmp_path: Path) -> None:
    from ringscope.graphs.embedded import EmbeddedStore
    from ringscope.jobs.detect import read_tables, run_detection
    from ringscope.loaders.pipeline import load_export
    from ringscope.loaders.synthetic import generate

    generate(tmp_path / "m", events=8_000, seed=21, fmt="csv")
    with EmbeddedStore(tmp_path / "s.duckdb") as store:
        load_export(store, tmp_path / "m", rejects_dir=tmp_path / "rejects")
        findings = run_detection(store).findings
        tables = read_tables(store)
    orders, ev = tables.orders, tables.engagements
    assert findings and any(f.impact["commission_paid"] > 0 for f in findings)
    for f in findings:
        mine = orders[orders.buyer_id.isin(f.member_ids)]
        assert f.impact["orders"] == len(mine)
        assert f.impact["gmv"] == pytest.approx(mine.amount.sum(), abs=1e-3)
        assert f.impact["commission_paid"] == pytest.approx(
            mine.commission.fillna(0).sum(), abs=1e-3
        )
        assert f.impact["events"] <= int(ev.account_id.isin(f.member_ids).sum())
        assert 0.0 <= f.impact["engagement_share"] <= 1.0
