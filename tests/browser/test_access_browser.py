"""Signing in, roles and the Content-Security-Policy in a real headless Chromium: the
pages (and the API documentation) work under the strict policy, with no console error
(a blocked script or style is one) and no request leaving the app."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers.app import ServedApp

from .pages import Recorded, api, only_the_app, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def record(context: Any, page: Any) -> Recorded:
    rec = Recorded(page)
    page.on("request", lambda r: rec.requests.append(r.url))
    page.on("console", lambda m: rec.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: rec.errors.append(str(e)))
    return rec


def test_a_viewer_sees_the_graph_but_no_decision_form(browser: Any, app: ServedApp) -> None:
    context, page = signed_in(browser, app, "browser-viewer")
    try:
        rec = record(context, page)
        assert page.inner_text("#whoami") == "browser-viewer (viewer)"
        top = api(app, "/api/findings")["items"][0]
        page.goto(f"/findings/{top['id']}")
        page.wait_for_function("() => window.rsGraph && window.rsGraph.nodes.length > 0")
        page.wait_for_selector("#graph[data-drawn='1']")
        # the legend's colours are set by script (no inline style under the policy)
        colour = page.eval_on_selector(".legend i", "e => getComputedStyle(e).backgroundColor")
        assert colour not in ("", "rgba(0, 0, 0, 0)")
        assert page.locator("#decision-form").count() == 0
        assert page.locator("#export-case").count() == 0
        assert page.locator("#viewer-note").count() == 1
        # signing out ends the session
        page.click("header form.whoami button")
        page.wait_for_url(app.url + "/login")
        assert page.locator("#login-form").count() == 1
        only_the_app(rec, app)
        assert rec.errors == []
    finally:
        context.close()


def test_a_viewers_graph_is_drawn_from_redacted_data(browser: Any, app: ServedApp) -> None:
    """The graph a viewer's browser draws: identifier nodes, their labels (shortened after
    redaction) and every tooltip hold tokens, never a value or the start of one."""
    items = api(app, "/api/findings")["items"]
    found = next(
        d
        for d in (api(app, f"/api/findings/{i['id']}") for i in items)
        if d["evidence"].get("identifiers")
    )
    raw = {n["ref"] for n in api(app, f"/api/findings/{found['id']}/graph")["nodes"]}
    values = {r.split(":", 2)[2] for r in raw if r.startswith("Identifier:")}
    assert values
    context, page = signed_in(browser, app, "browser-viewer")
    try:
        page.goto(f"/findings/{found['id']}")
        page.wait_for_function("() => window.rsGraph && window.rsGraph.nodes.length > 0")
        drawn = page.evaluate(
            "() => window.rsGraph.nodes.get().map(n => [n.id, n.label || '', n.title || ''])"
        )
        edges = page.evaluate("() => window.rsGraph.edges.get().map(e => e.title || '')")
    finally:
        context.close()
    identifiers = [d for d in drawn if d[0].startswith("Identifier:")]
    assert identifiers
    for node_id, label, _ in identifiers:
        kind = node_id.split(":")[1]
        assert re.fullmatch(rf"Identifier:{kind}:{kind}-[0-9a-f]{{16}}", node_id), node_id
        assert node_id.removeprefix("Identifier:").startswith(label.rstrip("…")), label
    text = "\n".join([*(x for d in drawn for x in d), *edges])
    assert not any(v in text for v in values)
    starts = [label.rstrip("…") for _, label, _ in drawn if label.endswith("…")]
    bad = [(s, v) for s in starts for v in values if ":" in s and v.startswith(s.partition(":")[2])]
    assert not bad, bad[:5]


def test_a_wrong_key_is_refused_at_sign_in(browser: Any, app: ServedApp) -> None:
    context = browser.new_context(base_url=app.url)
    try:
        page = context.new_page()
        page.goto("/login")
        page.fill("input[name=key]", "rsk_not-a-key")
        page.click("#login-form button")
        page.wait_for_selector("#login-message")
        assert page.inner_text("#login-message") == "Unknown key."
        assert context.cookies() == []
        # a page without a key shows the sign-in form
        page.goto("/")
        assert page.locator("#login-form").count() == 1
    finally:
        context.close()


def test_the_api_docs_work_under_the_policy(tab: Recorded, app: ServedApp) -> None:
    page = tab.page
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "ringscope" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector('[data-path="/api/findings"]')
    only_the_app(tab, app)
    assert tab.errors == []
