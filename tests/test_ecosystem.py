"""The ecosystem health API: per run and as a trend, matching the store; CSV downloads."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers.app import auth
from helpers.market import Market, served_copy

from ringscope.graphs.embedded import EmbeddedStore

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def served(app_market: Market, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_copy(app_market, tmp_path_factory.mktemp("eco")) as app:
        yield app.url


def get(url: str, path: str, user: str = "test-viewer", **params: Any) -> httpx.Response:
    return httpx.get(url + path, params=params, headers=auth(user), timeout=60)


def test_the_dashboards_numbers_match_the_store(served: str, app_market: Market) -> None:
    r = get(served, "/api/ecosystem")
    assert r.status_code == 200, r.text
    eco = r.json()
    with EmbeddedStore(app_market.store_path) as store:
        runs = [x for x in store.runs() if x.status == "succeeded"]
        latest = store.findings(runs[0].id)
        orders, ev = store.table("orders"), store.table("engagements")
    assert [x["run_id"] for x in eco["runs"]] == [x.id for x in reversed(runs)]
    last = eco["runs"][-1]
    flagged = {a for f in latest for a in f.member_ids}
    mine = orders[orders.buyer_id.isin(flagged)]
    assert last["findings"] == len(latest) and last["accounts_flagged"] == len(flagged)
    assert last["order_share_flagged"] == pytest.approx(len(mine) / len(orders), abs=1e-5)
    assert last["engagement_share_flagged"] == pytest.approx(
        ev.account_id.isin(flagged).mean(), abs=1e-5
    )
    assert last["gmv_at_risk"] == pytest.approx(mine.amount.sum(), abs=0.01)
    assert last["commission_at_risk"] == pytest.approx(mine.commission.fillna(0).sum(), abs=0.01)
    by_kind: dict[str, int] = {}
    for f in latest:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    assert last["findings_by_kind"] == by_kind
    assert last["changes"]["grown"] >= 1  # the confirmed ring grew between the runs
    assert eco["creators"] and all(0 <= c["health"] <= 1 for c in eco["creators"])
    confirmed = sum(m["confirmed"] for m in eco["decisions"])
    assert confirmed == 1  # the market's one confirmed case


def test_every_table_downloads_as_csv_with_the_same_numbers(served: str) -> None:
    eco = get(served, "/api/ecosystem").json()
    for table in ("trend", "kinds", "changes", "creators", "decisions"):
        r = get(served, f"/api/ecosystem/{table}.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        expected = {"creators": eco["creators"], "decisions": eco["decisions"]}.get(
            table, eco["runs"]
        )
        assert len(rows) == len(expected), table
    trend = list(csv.DictReader(io.StringIO(get(served, "/api/ecosystem/trend.csv").text)))
    assert [int(r["accounts_flagged"]) for r in trend] == [
        x["accounts_flagged"] for x in eco["runs"]
    ]
    assert get(served, "/api/ecosystem/secrets.csv").status_code == 422
    assert get(served, "/api/ecosystem", runs=0).status_code == 422
    assert len(get(served, "/api/ecosystem", runs=1).json()["runs"]) == 1


def test_the_dashboard_needs_a_key(served: str) -> None:
    assert httpx.get(served + "/api/ecosystem", timeout=30).status_code == 401
    page = get(served, "/ecosystem")
    assert page.status_code == 200 and page.text.count('<svg class="chart"') == 4


def test_the_queue_sorts_by_impact_and_priority(served: str) -> None:
    def items(**params: Any) -> list[dict[str, Any]]:
        r = get(served, "/api/findings", limit=1000, **params)
        assert r.status_code == 200, r.text
        out: list[dict[str, Any]] = r.json()["items"]
        return out

    by_impact = items(sort="impact")
    money = [i["impact"]["commission_paid"] + i["impact"]["gmv_refunded"] for i in by_impact]
    assert money == sorted(money, reverse=True) and money[0] > 0
    by_priority = items(sort="priority")
    prio = [0.5 * i["score"] + 0.5 * i["impact"]["index"] for i in by_priority]
    assert all(a >= b - 1e-6 for a, b in itertools.pairwise(prio))
    assert {i["id"] for i in by_impact} == {i["id"] for i in items()}
    assert get(served, "/api/findings", sort="cost").status_code == 422
