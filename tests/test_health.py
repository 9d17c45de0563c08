"""Ecosystem health of a run: shares from flagged accounts, money at risk, creator health."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.health import CREATOR_WEIGHTS, ecosystem_health
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member

D = DetectorInfo("test", "1")
T = pd.Timestamp("2026-01-01T00:00:00Z")


def farm(ids: list[str], creator: str | None = None) -> Finding:
    return Finding.build(
        kind="engagement_farm", score=0.8, explanation="", detector=D,
        members=[Member(i, "bot", 1.0) for i in ids],
        beneficiaries=[Beneficiary(creator, "creator")] if creator else [],
    )  # fmt: skip


def tables() -> MarketTables:
    streams = pd.DataFrame({"stream_id": ["s1", "s2"], "creator_id": ["c1", "c2"]})
    ev = pd.DataFrame(
        {
            "account_id": ["a", "b", "x", "y", "x"],
            "stream_id": ["s1", "s1", "s1", "s1", "s2"],
            "kind": ["like"] * 5,
            "ts": [T] * 5,
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "buyer_id": ["a", "x", "x"],
            "creator_id": ["c1", "c1", "c2"],
            "amount": [30.0, 70.0, 10.0],
            "commission": [3.0, 7.0, 1.0],
            "refunded_at": [T, pd.NaT, pd.NaT],
            "ts": [T] * 3,
        }
    )
    return MarketTables(streams=streams, engagements=ev, orders=orders)


def test_health_figures_by_hand() -> None:
    h = ecosystem_health(tables(), [farm(["a", "b"], "c1")])
    assert h["accounts_flagged"] == 2 and h["creators_involved"] == 1
    assert h["events_flagged"] == 2 and h["engagement_share_flagged"] == 0.4
    assert h["orders_flagged"] == 1 and h["order_share_flagged"] == pytest.approx(1 / 3, 1e-5)
    assert (h["gmv_at_risk"], h["gmv_refunded_at_risk"], h["commission_at_risk"]) == (30, 30, 3)
    (c1,) = h["creators"]  # c2 has no flagged activity and no finding: healthy, not listed
    comp = c1["components"]
    assert comp == {
        "flagged_engagement_share": 0.5, "flagged_order_share": 0.3, "refund_share": 0.3,
        "named_beneficiary": 1.0,
    }  # fmt: skip
    risk = sum(comp[k] * w for k, w in CREATOR_WEIGHTS.items()) / sum(CREATOR_WEIGHTS.values())
    assert c1["health"] == pytest.approx(1 - risk, abs=1e-4) and c1["previous"] is None


def test_a_creator_whose_health_falls_is_counted() -> None:
    before = ecosystem_health(tables(), [farm(["a"])])
    after = ecosystem_health(tables(), [farm(["a", "b", "y"], "c1")], before)
    (c1,) = after["creators"]
    assert c1["previous"] == before["creators"][0]["health"]
    assert c1["change"] < 0 and after["creators_falling"] == 1


def test_empty_marketplace_and_no_findings() -> None:
    h = ecosystem_health(MarketTables(), [])
    assert h["findings"] == 0 and h["creators"] == [] and h["engagement_share_flagged"] == 0.0


def test_the_runs_health_matches_the_store(tmp_path: Path) -> None:
    from ringscope.graphs.embedded import EmbeddedStore
    from ringscope.jobs.detect import run_detection
    from ringscope.loaders.pipeline import load_export
    from ringscope.loaders.synthetic import generate

    generate(tmp_path / "m", events=8_000, seed=21, fmt="csv")
    with EmbeddedStore(tmp_path / "s.duckdb") as store:
        load_export(store, tmp_path / "m", rejects_dir=tmp_path / "rejects")
        result = run_detection(store)
        health = store.get_run(result.run.id).summary["health"]
        orders, ev = store.table("orders"), store.table("engagements")
    flagged = {a for f in result.findings for a in f.member_ids}
    mine = orders[orders.buyer_id.isin(flagged)]
    assert health["accounts_flagged"] == len(flagged) > 0
    assert health["orders"] == len(orders) and health["orders_flagged"] == len(mine)
    assert health["gmv_at_risk"] == pytest.approx(mine.amount.sum(), abs=0.01)
    assert health["commission_at_risk"] == pytest.approx(mine.commission.fillna(0).sum(), abs=0.01)
    assert health["events_flagged"] == int(ev.account_id.isin(flagged).sum())
    assert health["hours_to_detection"]["new_findings"] == len(result.findings)
    assert health["hours_to_detection"]["median"] > 0
    assert all(0.0 <= c["health"] <= 1.0 for c in health["creators"])
