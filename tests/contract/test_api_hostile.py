"""Hostile input against the API: injection in every id and filter (on both stores), and a
catalogue of bad requests (huge ids, deep JSON, path traversal, enormous strings and
bodies, broken encodings), each with its expected clear error and never a server error.

The real app served by uvicorn on a localhost port, real HTTP; each store holds a small
generated marketplace after one detection run.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers.app import ServedApp, auth
from helpers.stores import fill_store, open_neo4j

pytestmark = pytest.mark.timeout(600)

#: SQL and Cypher injection attempts, LIKE and regex wildcards, odd characters.
PAYLOADS = [
    "' OR '1'='1",
    '" OR ""="',
    "x'; DROP TABLE accounts; --",
    'x"); DELETE FROM findings; --',
    "a' }) MATCH (n) DETACH DELETE n //",
    "a` }) MATCH (n) DETACH DELETE n //",
    "x') RETURN 1 UNION MATCH (n) RETURN n //",
    "1 OR 1=1",
    "$store",
    "{{7*7}}",
    "%",
    "_",
    ".*",
    "\\",
    "a\x00b",
    "../../etc/passwd",
]


@pytest.fixture(scope="module", params=["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedApp, httpx.Client]]:
    from ringscope.graphs.embedded import EmbeddedStore

    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    if request.param == "neo4j":
        store = open_neo4j(request.getfixturevalue("neo4j_uri"), root)
    else:
        store = EmbeddedStore(root / "hostile.duckdb")
    try:
        fill_store(store, root)
        with (
            ServedApp(None, store=store) as app,
            httpx.Client(base_url=app.url, timeout=60, headers=auth("test-admin")) as c,
        ):
            yield app, c
    finally:
        store.close()


def state(app: ServedApp, c: httpx.Client) -> dict[str, Any]:
    """What an injection would change: every table's rows, runs, findings, decisions."""
    queue = c.get("/api/findings", params={"limit": 1000}).json()["items"]
    return {
        "counts": app.store.counts(),
        "runs": [r["id"] for r in c.get("/api/runs").json()],
        "findings": [i["id"] for i in queue],
        "decisions": len(app.store.decisions()),
    }


def requests_for(p: str, finding: str, member: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every id and filter of the API and the pages, each carrying ``p``."""
    q = quote(p, safe="")
    return [
        ("GET", "/api/findings", {"params": {"kind": p}}),
        ("GET", "/api/findings", {"params": {"beneficiary": p}}),
        ("GET", "/api/findings", {"params": {"run": p}}),
        ("GET", f"/api/findings/{q}", {}),
        ("GET", f"/api/findings/{finding}", {"params": {"run": p}}),
        ("GET", f"/api/findings/{q}/graph", {}),
        ("GET", f"/api/findings/{q}/decisions", {}),
        ("GET", f"/api/findings/{q}/export", {}),
        ("POST", f"/api/findings/{q}/decisions", {"json": {"decision": "confirmed"}}),
        ("POST", f"/api/findings/{finding}/decisions", {"json": {"decision": "escalated", "note": p}}),  # noqa: E501
        ("GET", f"/api/runs/{q}", {}),
        ("GET", f"/api/entities/Account:{q}", {}),
        ("GET", f"/api/entities/Account:{q}/neighbourhood", {"params": {"hops": 2}}),
        ("GET", f"/api/entities/Identifier:device:{q}", {}),
        ("GET", f"/api/entities/{q}:x", {}),
        ("GET", f"/api/entities/Account:{member}/neighbourhood", {"params": {"rel": p}}),
        ("GET", "/api/path", {"params": {"a": f"Account:{member}", "b": f"Account:{p}"}}),
        ("GET", "/api/path", {"params": {"a": f"Account:{p}", "b": f"Account:{member}"}}),
        ("GET", "/api/audit", {"params": {"who": p}}),
        ("GET", "/api/audit", {"params": {"action": p}}),
        ("GET", "/api/audit", {"params": {"subject": p}}),
        ("GET", "/", {"params": {"kind": p, "beneficiary": p}}),
        ("GET", f"/findings/{q}", {}),
        ("GET", f"/entities/Account:{q}", {}),
    ]  # fmt: skip


def test_injection_in_every_id_and_filter(served: tuple[ServedApp, httpx.Client]) -> None:
    app, c = served
    before = state(app, c)
    assert before["findings"], "the store should hold findings"
    finding = before["findings"][0]
    member = c.get(f"/api/findings/{finding}").json()["members"][0]["account_id"]
    for p in PAYLOADS:
        for method, path, kw in requests_for(p, finding, member):
            r = c.request(method, path, **kw)
            assert r.status_code in (200, 201, 307, 404, 422), (p, path, r.status_code, r.text)
            if r.status_code == 307:  # a trailing slash: to the same path without it, here
                assert r.headers["location"].startswith(app.url + "/"), r.headers["location"]
                continue
            if r.status_code >= 400:
                assert set(r.json()) == {"error", "detail"}, (p, path, r.text)
            if method == "GET" and r.status_code == 200 and path.startswith("/api/"):
                body = r.json()
                # a filter value is matched literally: no wildcard, no injected condition
                if path == "/api/findings":
                    assert body["total"] == 0, (p, kw, body["total"])
                elif path == "/api/audit":
                    assert body == [], (p, kw)
    after = state(app, c)
    notes = {
        d.note for d in app.store.decisions() if d.decided_by == "test-admin" and d.note in PAYLOADS
    }
    assert notes == set(PAYLOADS)  # stored verbatim, as data
    assert after["counts"] == before["counts"]
    assert after["runs"] == before["runs"] and after["findings"] == before["findings"]
    assert after["decisions"] == before["decisions"] + len(PAYLOADS)


def _raw(app: ServedApp, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
            if b"\r\n\r\n" in out:
                break
        return out


def test_catalogue_of_hostile_requests(served: tuple[ServedApp, httpx.Client]) -> None:
    app, c = served
    finding = c.get("/api/findings").json()["items"][0]["id"]
    decide = f"/api/findings/{finding}/decisions"
    json_type = {"content-type": "application/json"}
    # (what, request, expected status, text the error must contain)
    catalogue: list[tuple[str, Any, int, str]] = [
        ("huge id", lambda: c.get("/api/findings/" + "a" * 60_000), 422, "at most 1000"),
        ("huge entity id", lambda: c.get("/api/entities/Account:" + "a" * 5000), 422, "at most 1000"),  # noqa: E501
        ("huge filter", lambda: c.get("/api/findings", params={"kind": "k" * 5000}), 422, "over 1000"),  # noqa: E501
        ("repeated filter", lambda: c.get("/api/findings?kind=a&kind=b"), 422, "more than once"),
        ("huge number", lambda: c.get("/api/findings", params={"limit": 10**30}), 422, "limit"),
        ("not a number", lambda: c.get("/api/findings", params={"min_score": "nan"}), 422, "min_score"),  # noqa: E501
        ("bad window", lambda: c.get("/api/entities/Account:x/neighbourhood", params={"start": "yesterday"}), 422, "start"),  # noqa: E501
        ("unknown label", lambda: c.get("/api/entities/Planet:earth"), 422, "Planet"),
        ("unknown relationship", lambda: c.get("/api/path", params={"a": "Account:a", "b": "Account:b", "rel": "OWNS"}), 422, "OWNS"),  # noqa: E501
        ("deep JSON", lambda: c.post(decide, content="[" * 30_000, headers=json_type), 400, "parsing the body"),  # noqa: E501
        ("deep JSON object", lambda: c.post(decide, content='{"a":' * 8000 + "1" + "}" * 8000, headers=json_type), 400, "parsing the body"),  # noqa: E501
        ("broken JSON", lambda: c.post(decide, content=b'{"decision": "conf', headers=json_type), 422, "body"),  # noqa: E501
        ("invalid UTF-8 body", lambda: c.post(decide, content=b'{"decision": "\xff\xfe"}', headers=json_type), 400, "parsing the body"),  # noqa: E501
        ("wrong body type", lambda: c.post(decide, content="decision=confirmed", headers={"content-type": "text/plain"}), 422, "body"),  # noqa: E501
        ("enormous note", lambda: c.post(decide, json={"decision": "confirmed", "note": "n" * 5000}), 422, "note"),  # noqa: E501
        ("enormous body", lambda: c.post(decide, content=b"x" * 200_000, headers=json_type), 413, "over 65536 bytes"),  # noqa: E501
        ("enormous form", lambda: c.post(f"/findings/{finding}/decisions", data={"note": "n" * 100_000}), 413, "over 65536 bytes"),  # noqa: E501
        ("unknown decision", lambda: c.post(decide, json={"decision": "delete everything"}), 422, "decision"),  # noqa: E501
        ("traversal in an export name", lambda: c.get("/api/findings/..%2F..%2Fetc%2Fpasswd/export"), 404, ""),  # noqa: E501
        ("traversal in an export id", lambda: c.get("/api/findings/" + quote("../../etc/passwd", safe="") + "/export"), 404, "Not Found"),  # noqa: E501
        ("traversal in static files", lambda: c.get("/static/..%2F..%2Fsettings.py"), 404, ""),
        ("traversal in vendor files", lambda: c.get("/vendor/vis/%2e%2e/%2e%2e/pyvis/network.py"), 404, ""),  # noqa: E501
        ("NUL in an id", lambda: c.get("/api/findings/a%00b"), 404, "no finding"),
        ("invalid UTF-8 in a path", lambda: c.get("/api/findings/%FF%FE"), 404, "no finding"),
        ("newline in a path", lambda: c.get("/api/entities/Account:a%0Ab/neighbourhood"), 404, ""),
        ("unknown route", lambda: c.get("/api/nothing-here"), 404, "Not Found"),
        ("wrong method", lambda: c.delete(f"/api/findings/{finding}"), 405, "Method Not Allowed"),
    ]  # fmt: skip
    for what, send, status, text in catalogue:
        r = send()
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        body = r.json()
        assert set(body) == {"error", "detail"} and text in body["detail"], (what, body)
        assert len(r.content) < 5000, what  # an error never echoes a huge input back
    # a request line too long for the server: refused by the HTTP layer, the app lives on
    answer = _raw(app, b"GET /api/findings/" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    # the export's file name comes from the finding, never from the request
    r = c.get(f"/api/findings/{finding}/export")
    assert r.headers["content-disposition"] == f'attachment; filename="{finding}.zip"'
    # odd but valid text is data: stored verbatim, escaped on the page
    note = "\u202eevil\u202c <script>alert(1)</script> \U0001f600 ' OR 1=1"
    assert c.post(decide, json={"decision": "escalated", "note": note}).status_code == 201
    assert c.get(decide).json()[-1]["note"] == note
    page = c.get(f"/findings/{finding}").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert c.get("/health").json()["status"] == "ok"
    assert json.loads(c.get("/api/runs").text)
