"""The JSON API end to end: the real app served by uvicorn on a localhost port, real HTTP.

Data: a generated marketplace with two detection runs (see ``tests/helpers/market.py``).
The client signs in as an admin unless a test says otherwise (roles: tests/test_access.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers.app import auth
from helpers.market import XSS_SELLER, Market, served_copy

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def api(app_market: Market, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with (
        served_copy(app_market, tmp_path_factory.mktemp("api")) as app,
        httpx.Client(base_url=app.url, timeout=30, headers=auth("test-admin")) as client,
    ):
        yield client


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert "detail" in body
    return body


def queue(api: httpx.Client, **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = ok(api.get("/api/findings", params=params))
    return result


def test_health(api: httpx.Client) -> None:
    assert ok(api.get("/health"))["status"] == "ok"


def test_openapi_lists_every_area(api: httpx.Client) -> None:
    paths = ok(api.get("/openapi.json"))["paths"]
    for p in (
        "/api/runs",
        "/api/findings",
        "/api/findings/{finding_id}",
        "/api/findings/{finding_id}/graph",
        "/api/findings/{finding_id}/decisions",
        "/api/path",
        "/api/audit",
    ):
        assert p in paths
    assert api.get("/docs").status_code == 200


def test_runs(api: httpx.Client) -> None:
    runs = ok(api.get("/api/runs"))
    assert len(runs) == 2 and runs[0]["started_at"] >= runs[1]["started_at"]
    assert ok(api.get(f"/api/runs/{runs[0]['id']}"))["summary"]["changes"]["grown"] >= 1
    assert error(api.get("/api/runs/run-nope"), 404)["error"] == "NotFoundError"


def test_queue_raises_a_confirmed_case_that_grew_first(
    api: httpx.Client, app_market: Market
) -> None:
    q = queue(api)
    first = q["items"][0]
    assert first["case_id"] == app_market.confirmed_case
    assert first["raised_again"] and first["status"] == "grown" and first["decision"] == "confirmed"
    rest = [i["score"] for i in q["items"][1:]]
    assert rest == sorted(rest, reverse=True)


def test_queue_paging_and_sorting(api: httpx.Client) -> None:
    everything = queue(api, limit=1000)["items"]
    page = queue(api, offset=2, limit=3)
    assert page["total"] == len(everything) and page["offset"] == 2 and page["limit"] == 3
    assert [i["id"] for i in page["items"]] == [i["id"] for i in everything[2:5]]
    by_size = [i["size"] for i in queue(api, sort="size", order="asc")["items"]]
    assert by_size == sorted(by_size)


def test_queue_filters(api: httpx.Client, app_market: Market) -> None:
    everything = queue(api)["items"]
    kind = everything[-1]["kind"]
    assert {i["kind"] for i in queue(api, kind=kind)["items"]} == {kind}
    assert {i["case_id"] for i in queue(api, status="grown")["items"]} == {
        app_market.confirmed_case
    }
    assert [i["case_id"] for i in queue(api, decision="confirmed")["items"]] == [
        app_market.confirmed_case
    ]
    assert all(i["decision"] != "confirmed" for i in queue(api, decision="undecided")["items"])
    scored = queue(api, min_score=0.8, max_score=0.95)["items"]
    assert scored and all(0.8 <= i["score"] <= 0.95 for i in scored)
    hostile = queue(api, beneficiary=XSS_SELLER)["items"]
    assert len(hostile) == 1 and hostile[0]["kind"] == "commission_ring"
    runs = ok(api.get("/api/runs"))
    first_run = queue(api, run=runs[-1]["id"])
    assert first_run["run_id"] == runs[-1]["id"]
    assert {i["status"] for i in first_run["items"]} == {"new"}


@pytest.mark.parametrize(
    "params",
    [
        {"min_score": 0.9, "max_score": 0.1},
        {"min_score": 2},
        {"status": "bogus"},
        {"decision": "maybe"},
        {"limit": 0},
        {"limit": 5000},
        {"offset": -1},
        {"sort": "colour"},
        {"order": "sideways"},
    ],
)
def test_queue_rejects_bad_filters(api: httpx.Client, params: dict[str, Any]) -> None:
    error(api.get("/api/findings", params=params), 422)


def test_queue_of_an_unknown_run_is_404(api: httpx.Client) -> None:
    error(api.get("/api/findings", params={"run": "run-nope"}), 404)


def test_finding_detail_has_history_and_decisions(api: httpx.Client, app_market: Market) -> None:
    top = queue(api)["items"][0]
    d = ok(api.get(f"/api/findings/{top['id']}"))
    assert d["members"] and d["signals"] and d["explanation"] and d["evidence"]
    assert d["beneficiaries"] and d["detector"]["name"]
    assert [h["status"] for h in d["history"]] == ["grown", "new"]
    assert d["history"][1]["finding_id"] == app_market.confirmed_case != top["id"]
    assert d["decisions"][0]["decision"] == "confirmed"
    assert d["decisions"][0]["case_id"] == app_market.confirmed_case
    # the case id finds the case's finding too
    assert ok(api.get(f"/api/findings/{app_market.confirmed_case}"))["id"] == top["id"]


def test_unknown_finding_is_404_everywhere(api: httpx.Client) -> None:
    for path in ("", "/graph", "/decisions", "/export"):
        assert error(api.get(f"/api/findings/no-such{path}"), 404)["error"] == "NotFoundError"
    error(api.post("/api/findings/no-such/decisions", json={"decision": "confirmed"}), 404)


def test_finding_graph_is_the_members_neighbourhood_within_a_budget(api: httpx.Client) -> None:
    top = queue(api)["items"][1]
    members = {m["account_id"] for m in ok(api.get(f"/api/findings/{top['id']}"))["members"]}
    g = ok(api.get(f"/api/findings/{top['id']}/graph", params={"limit": 400}))
    refs = {n["ref"] for n in g["nodes"]}
    assert {f"Account:{m}" for m in members} <= refs
    assert len(refs) > len(members) and g["edges"]
    assert all(e["source"] in refs and e["target"] in refs for e in g["edges"])
    small = ok(api.get(f"/api/findings/{top['id']}/graph", params={"limit": len(members) + 2}))
    assert small["truncated"] and len(small["nodes"]) <= len(members) + 2 + 2
    for bad in ({"limit": 0}, {"limit": 99999}, {"hops": -1}):
        error(api.get(f"/api/findings/{top['id']}/graph", params=bad), 422)


def test_entity_with_its_findings(api: httpx.Client) -> None:
    top = queue(api)["items"][0]
    member = ok(api.get(f"/api/findings/{top['id']}"))["members"][0]["account_id"]
    e = ok(api.get(f"/api/entities/Account:{member}"))
    assert e["node"]["id"] == member and e["node"]["label"] == "Account"
    assert top["id"] in {f["id"] for f in e["findings"]}
    hostile = ok(api.get("/api/entities/" + quote(f"Account:{XSS_SELLER}", safe=":")))
    assert hostile["node"]["id"] == XSS_SELLER
    error(api.get("/api/entities/Account:no-such-account"), 404)
    error(api.get("/api/entities/Planet:earth"), 422)
    error(api.get("/api/entities/no-colon"), 422)


def test_neighbourhood_with_kinds_window_and_budget(api: httpx.Client) -> None:
    top = queue(api)["items"][0]
    member = ok(api.get(f"/api/findings/{top['id']}"))["members"][0]["account_id"]
    base = f"/api/entities/Account:{member}/neighbourhood"
    g = ok(api.get(base, params={"hops": 2, "limit": 50}))
    assert 1 < len(g["nodes"]) <= 50
    uses = ok(api.get(base, params={"rel": "USES"}))
    assert uses["edges"] and {e["type"] for e in uses["edges"]} == {"USES"}
    both = ok(api.get(base, params=[("rel", "USES"), ("rel", "PLACED")]))
    assert {e["type"] for e in both["edges"]} <= {"USES", "PLACED"}
    empty = ok(api.get(base, params={"start": "1990-01-01", "end": "1990-01-02"}))
    assert [n["id"] for n in empty["nodes"]] == [member]
    error(api.get(base, params={"rel": "LIKES"}), 422)
    error(api.get(base, params={"start": "2026-02-01", "end": "2026-01-01"}), 422)
    error(api.get(base, params={"start": "yesterday"}), 422)
    error(api.get(base, params={"hops": 9}), 422)
    error(api.get(base, params={"limit": 0}), 422)
    error(api.get("/api/entities/Account:no-such/neighbourhood"), 404)


def test_path_between_two_entities(api: httpx.Client) -> None:
    top = queue(api)["items"][0]
    members = [m["account_id"] for m in ok(api.get(f"/api/findings/{top['id']}"))["members"]]
    a, b = f"Account:{members[0]}", f"Account:{members[-1]}"
    p = ok(api.get("/api/path", params={"a": a, "b": b}))
    assert p["found"] and p["length"] == len(p["edges"]) == len(p["nodes"]) - 1
    assert p["nodes"][0]["ref"] == a and p["nodes"][-1]["ref"] == b
    none = ok(api.get("/api/path", params={"a": a, "b": b, "rel": "FOLLOWS", "max_hops": 1}))
    assert none == {"found": False, "length": None, "nodes": [], "edges": []}
    error(api.get("/api/path", params={"a": a, "b": "Account:no-such"}), 404)
    error(api.get("/api/path", params={"a": a, "b": "nonsense"}), 422)
    error(api.get("/api/path", params={"a": a}), 422)
    error(api.get("/api/path", params={"a": a, "b": b, "max_hops": 0}), 422)


def test_decisions_follow_the_case_and_are_audited(api: httpx.Client) -> None:
    f = queue(api)["items"][3]
    who = auth("inspector-7")
    d = ok(
        api.post(
            f"/api/findings/{f['id']}/decisions",
            json={"decision": "escalated", "note": "needs <b>legal</b>"},
            headers=who,
        ),
        201,
    )
    assert d["case_id"] == f["case_id"] and d["decided_by"] == "inspector-7"
    history = ok(api.get(f"/api/findings/{f['id']}/decisions"))
    assert history[-1]["decision"] == "escalated" and history[-1]["note"] == "needs <b>legal</b>"
    assert queue(api, decision="escalated")["items"][0]["id"] == f["id"]
    entry = ok(api.get("/api/audit", params={"who": "inspector-7", "action": "decision"}))[0]
    assert entry["subject"] == f["id"] and entry["detail"]["decision"] == "escalated"
    for bad in (
        {"decision": "maybe"},
        {"note": "no decision"},
        {"decision": "confirmed", "note": 3},
    ):
        error(api.post(f"/api/findings/{f['id']}/decisions", json=bad), 422)
    # no key, no decision; a viewer may not decide
    anonymous = api.post(
        f"/api/findings/{f['id']}/decisions",
        json={"decision": "dismissed"},
        headers={"Authorization": ""},
    )
    assert error(anonymous, 401)["error"] == "Unauthorized"
    viewer = api.post(
        f"/api/findings/{f['id']}/decisions",
        json={"decision": "dismissed"},
        headers=auth("test-viewer"),
    )
    assert error(viewer, 403)["error"] == "Forbidden"
    assert ok(api.get(f"/api/findings/{f['id']}/decisions"))[-1]["decision"] == "escalated"


def test_views_and_exports_are_audited(api: httpx.Client) -> None:
    f = queue(api)["items"][1]
    who = auth("analyst-3")
    detail = ok(api.get(f"/api/findings/{f['id']}", headers=who))
    r = api.get(f"/api/findings/{f['id']}/export", headers=who)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert r.headers["content-type"] == "application/zip" and r.content[:2] == b"PK"
    assert api.get(f"/findings/{f['id']}", headers=who).status_code == 200
    member = detail["members"][0]["account_id"]
    assert api.get(f"/entities/Account:{member}", headers=who).status_code == 200
    log = ok(api.get("/api/audit", params={"who": "analyst-3"}))
    assert [(e["action"], e["detail"].get("via")) for e in log] == [
        ("view_entity", "page"),
        ("view_finding", "page"),
        ("export", None),  # the case file (ZIP): detail["channel"] is "api"
        ("view_finding", "api"),
    ]
    assert log[0]["subject"] == f"Account:{member}" and log[0]["at"]
    assert len(ok(api.get("/api/audit", params={"limit": 2}))) == 2
    error(api.get("/api/audit", params={"limit": 0}), 422)


def test_pages_escape_hostile_names_and_link_nothing_external(api: httpx.Client) -> None:
    hostile = queue(api, beneficiary=XSS_SELLER)["items"][0]
    pages = [
        api.get("/"),
        api.get(f"/findings/{hostile['id']}"),
        api.get("/entities/" + quote(f"Account:{XSS_SELLER}", safe=":")),
    ]
    for r in pages:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<img src=x" not in r.text and "<script>window.__xss" not in r.text
        assert "http://" not in r.text and "https://" not in r.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[1].text
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in pages[1].text  # inside the graph data


def test_big_clusters_get_the_collapsed_view(api: httpx.Client) -> None:
    # the largest network that 30 nodes can draw, members first: more than 10 members, and
    # a neighbourhood of more than 30 nodes
    drawable = [i for i in queue(api, limit=500)["items"] if 10 < i["size"] <= 30]
    f = max(drawable, key=lambda i: (i["size"], i["id"]))
    r = api.get(f"/findings/{f['id']}", params={"budget": 10})
    assert r.status_code == 200 and 'id="too-big"' in r.text and "Collapsed view" not in r.text
    full = api.get(f"/findings/{f['id']}", params={"budget": 30, "view": "full"})
    assert full.status_code == 200 and "Showing the first 30 nodes" in full.text
    error(api.get(f"/findings/{f['id']}", params={"budget": 5}), 422)
    error(api.get(f"/findings/{f['id']}", params={"view": "sideways"}), 422)
    error(api.get("/findings/no-such"), 404)


def test_drawing_anyway_a_finding_of_more_members_than_the_budget(api: httpx.Client) -> None:
    """The collapsed view's "draw the first 30 nodes anyway" link draws 30 members, not
    the collapsed view again."""
    f = max(queue(api, limit=500)["items"], key=lambda i: (i["size"], i["id"]))
    assert f["size"] > 30
    collapsed = api.get(f"/findings/{f['id']}", params={"budget": 30})
    assert "Showing the collapsed view" in collapsed.text
    assert 'href="?view=full&amp;budget=30"' in collapsed.text
    full = api.get(f"/findings/{f['id']}", params={"budget": 30, "view": "full"})
    assert full.status_code == 200 and "Showing the first 30 nodes" in full.text
    stats = re.search(r'id="graph-stats">(\d+) nodes', full.text)
    assert stats is not None and int(stats.group(1)) == 30, full.text[:2000]


def test_decision_form_records_and_redirects(api: httpx.Client) -> None:
    f = queue(api)["items"][2]
    r = api.post(
        f"/findings/{f['id']}/decisions",
        data={"decision": "dismissed", "note": "household"},
        headers=auth("form-user"),
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"/findings/{f['id']}")
    page = api.get(r.headers["location"])
    assert "household" in page.text and "form-user" in page.text
    error(api.post(f"/findings/{f['id']}/decisions", data={"decision": "maybe"}), 422)


def test_static_assets_are_served(api: httpx.Client) -> None:
    for path in (
        "/static/ringscope.css",
        "/static/cluster.js",
        "/static/explorer.js",
        "/vendor/vis/vis-network.min.js",
    ):
        assert api.get(path).status_code == 200, path


def test_an_empty_store_serves_an_empty_queue(tmp_path: Path) -> None:
    from helpers.app import ServedApp

    with (
        ServedApp(tmp_path / "empty.duckdb") as app,
        httpx.Client(base_url=app.url, headers=auth("test-admin")) as c,
    ):
        assert ok(c.get("/api/findings")) == {
            "run_id": None,
            "total": 0,
            "offset": 0,
            "limit": 50,
            "items": [],
        }
        assert "No detection run yet" in c.get("/").text
        assert ok(c.get("/api/audit")) == []
