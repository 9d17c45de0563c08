"""The pages in a real headless Chromium: the queue, the cluster graph, the live
explorer, hostile names, the decision form. No request may leave the app."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from helpers.app import ServedApp
from helpers.market import XSS_BUYER, XSS_SELLER, Market

from .pages import USER, Recorded, api, only_the_app, publish, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def test_queue_lists_planted_rings_at_the_top(
    tab: Recorded, app: ServedApp, app_market: Market
) -> None:
    page = tab.page
    page.goto("/")
    rows = page.locator("#queue tbody tr.finding")
    assert rows.count() >= 5
    top = [rows.nth(i).get_attribute("data-finding-id") for i in range(3)]
    for fid in top:
        members = {m["account_id"] for m in api(app, f"/api/findings/{fid}")["members"]}
        best = max(len(members & ring) / len(members) for ring in app_market.truth.values())
        assert best >= 0.5, f"{fid} is not a planted ring"
    assert "raised again" in rows.nth(0).inner_text()
    page.click("text=size")  # sort by size
    page.wait_for_url("**sort=size**")
    sizes = [
        int(x) for x in page.locator("#queue tbody tr.finding td:nth-child(4)").all_inner_texts()
    ]
    assert sizes == sorted(sizes, reverse=True)
    screenshot(page, "queue.png")
    assert tab.errors == []
    only_the_app(tab, app)


def test_queue_filter_form_and_pages(tab: Recorded, app: ServedApp) -> None:
    """An investigator picks a kind, leaves the other choices at "all", filters, pages
    through the result, then mistypes an id in the address bar and finds the way back."""
    page = tab.page
    page.goto("/")
    kinds = page.locator("select[name=kind] option").all_inner_texts()
    everything = api(app, "/api/findings", limit=1000)["items"]
    counts = {k: sum(1 for i in everything if i["kind"] == k) for k in kinds if k != "all"}
    kind = max(counts, key=lambda k: counts[k])
    page.select_option("select[name=kind]", kind)
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**kind=**")
    rows = page.locator("#queue tbody tr.finding")
    assert rows.count() == counts[kind]
    assert set(page.locator("#queue tbody tr.finding td:nth-child(3)").all_inner_texts()) == {kind}
    assert f"1–{rows.count()} of {counts[kind]}" in page.locator(".pager .shown").first.inner_text()
    # every kind again, ten rows a page, sorted by size
    assert len(everything) > 10, len(everything)
    page.select_option("select[name=kind]", "")
    page.select_option("select[name=limit]", "10")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**limit=10**")
    assert rows.count() == 10
    page.click("text=size")
    page.wait_for_url("**sort=size**")
    first_page = page.locator("#queue tbody tr.finding").evaluate_all(
        "rows => rows.map(r => r.dataset.findingId)"
    )
    page.locator("a[rel=next]").first.click()
    page.wait_for_url("**page=2**")
    assert page.locator("#queue tbody tr.finding td:first-child").first.inner_text() == "11"
    second_page = page.locator("#queue tbody tr.finding").evaluate_all(
        "rows => rows.map(r => r.dataset.findingId)"
    )
    by_size = sorted(everything, key=lambda i: -i["size"])
    assert len(first_page) == 10 and not set(first_page) & set(second_page)
    assert [i["size"] for i in by_size[:20]][: 10 + len(second_page)] == [
        next(i["size"] for i in everything if i["id"] == f) for f in first_page + second_page
    ]
    # a score bound typed by hand that is not a number: a page in the frame, a way back
    page.goto("/?min_score=high")
    assert page.locator("#error").inner_text().startswith("min_score: 'high' is not a number")
    page.click("text=back to the page without the wrong value")
    page.wait_for_selector("#queue")
    page.goto("/findings/no-such-finding")
    assert "no-such-finding" in page.locator("#error").inner_text()
    page.click("text=queue")
    page.wait_for_selector("#queue")
    # the browser reports the two error answers themselves, and nothing else
    assert all("status of 422" in e or "status of 404" in e for e in tab.errors), tab.errors
    assert len(tab.errors) == 2, tab.errors
    only_the_app(tab, app)


def test_cluster_page_draws_the_graph(tab: Recorded, app: ServedApp) -> None:
    page = tab.page
    top = api(app, "/api/findings")["items"][0]
    page.goto(f"/findings/{top['id']}")
    page.wait_for_function("() => window.rsGraph && window.rsGraph.nodes.length > 0")
    page.wait_for_selector("#graph[data-drawn='1']")
    n = page.evaluate("window.rsGraph.nodes.length")
    members = page.locator("#members tbody tr").count()
    assert n > members == top["size"]
    # the page's packed graph is unpacked whole: every edge between drawn nodes, every
    # node and edge with its own fields and its shared style
    drawn = page.evaluate(
        """() => {
        const ids = new Set(window.rsGraph.nodes.getIds());
        const edges = window.rsGraph.edges.get();
        const node = window.rsGraph.nodes.get()[0];
        return {edges: edges.length, ends: edges.every(e => ids.has(e.from) && ids.has(e.to)),
                kinds: [...new Set(edges.map(e => e.kind))], arrows: edges[0].arrows,
                node: [typeof node.x, typeof node.y, node.color, node.shape, node.title]};
    }"""
    )
    assert drawn["edges"] >= n - 1 and drawn["ends"] and drawn["arrows"] == "to"
    assert "ENGAGED" in drawn["kinds"] or "PLACED" in drawn["kinds"]
    assert drawn["node"][:2] == ["number", "number"] and all(drawn["node"][2:])
    assert page.locator("#graph canvas").count() == 1
    page.wait_for_timeout(1500)  # let physics settle for the picture
    screenshot(page, "cluster.png")
    page.locator("#graph-section").scroll_into_view_if_needed()
    shot = screenshot(page, "cluster-graph.png")
    publish(shot, "cluster.png")
    assert page.locator("#timeline tbody tr").count() > 1
    assert tab.errors == []
    only_the_app(tab, app)


def test_explorer_expands_a_node_on_click(tab: Recorded, app: ServedApp) -> None:
    page = tab.page
    top = api(app, "/api/findings")["items"][1]
    member = api(app, f"/api/findings/{top['id']}")["members"][0]["account_id"]
    page.goto("/entities/" + quote(f"Account:{member}", safe=":"))
    page.wait_for_function("() => window.rsExplorer && window.rsExplorer.nodes.length > 1")
    page.wait_for_function("() => window.rsExplorer.state.busy === 0")
    page.evaluate("window.rsExplorer.network.stopSimulation()")
    # a shown node whose neighbourhood holds nodes not shown yet
    target = page.evaluate(
        """async (seed) => {
          const shown = new Set(window.rsExplorer.nodes.getIds());
          for (const id of window.rsExplorer.nodes.getIds()) {
            if (id === seed) continue;
            const url = '/api/entities/' + encodeURIComponent(id) + '/neighbourhood?limit=60';
            const r = await fetch(url);
            const g = await r.json();
            if (g.nodes.some(n => !shown.has(n.ref))) return id;
          }
          return null;
        }""",
        f"Account:{member}",
    )
    assert target is not None
    before = page.evaluate("window.rsExplorer.nodes.length")
    pos = page.evaluate(
        "(id) => { const n = window.rsExplorer.network;"
        " const p = n.getPositions([id])[id]; return n.canvasToDOM(p); }",
        target,
    )
    box = page.locator("#explorer").bounding_box()
    page.mouse.click(box["x"] + pos["x"], box["y"] + pos["y"])
    # generous: the expansion is one API call, but CI machines may be busy (speed: benchmarks)
    page.wait_for_function("(n) => window.rsExplorer.nodes.length > n", arg=before, timeout=45_000)
    assert "new node" in page.inner_text("#explorer-status")
    # the path finder adds the path to the view
    other = api(app, f"/api/findings/{top['id']}")["members"][-1]["account_id"]
    page.fill("input[name=target]", f"Account:{other}")
    page.click("#find-path")
    page.wait_for_function(
        "() => document.getElementById('explorer-status').textContent.startsWith('Path of')"
    )
    assert page.evaluate(f"window.rsExplorer.nodes.get({f'Account:{other}'!r}) !== null")
    screenshot(page, "entity.png")
    assert tab.errors == []
    only_the_app(tab, app)


def test_hostile_names_show_as_text_and_run_nothing(tab: Recorded, app: ServedApp) -> None:
    page = tab.page
    ring = api(app, "/api/findings", beneficiary=XSS_SELLER)["items"][0]
    page.goto(f"/findings/{ring['id']}")
    page.wait_for_function("() => window.rsGraph && window.rsGraph.nodes.length > 0")
    assert XSS_SELLER in page.locator("a.beneficiary").all_inner_texts()
    assert XSS_BUYER in page.locator("#members tbody").inner_text()
    assert page.evaluate("(id) => window.rsGraph.nodes.get(id) !== null", f"Account:{XSS_SELLER}")
    page.goto("/entities/" + quote(f"Account:{XSS_SELLER}", safe=":"))
    page.wait_for_function("() => window.rsExplorer && window.rsExplorer.nodes.length > 0")
    assert page.inner_text("#entity-id") == XSS_SELLER
    page.goto("/?" + "beneficiary=" + quote(XSS_SELLER))
    assert XSS_SELLER in page.inner_text("#queue")
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert tab.dialogs == []
    screenshot(page, "queue-hostile.png")
    assert tab.errors == []
    only_the_app(tab, app)


def test_a_decision_from_the_form_shows_in_history_and_audit(tab: Recorded, app: ServedApp) -> None:
    page = tab.page
    f = api(app, "/api/findings")["items"][4]
    seen = len(api(app, "/api/audit", who=USER, action="view_finding", subject=f["id"]))
    page.goto(f"/findings/{f['id']}")
    page.check("input[name=decision][value=escalated]")
    page.fill("textarea[name=note]", "route to the payments team")
    page.click("#decision-form button[type=submit]")
    page.wait_for_url(f"**/findings/{f['id']}#decisions")
    history = page.locator("#decision-history tbody").inner_text()
    assert "route to the payments team" in history and USER in history
    entries = api(app, "/api/audit", who=USER, action="decision")
    assert entries[0]["subject"] == f["id"] and entries[0]["detail"]["decision"] == "escalated"
    views = api(app, "/api/audit", who=USER, action="view_finding", subject=f["id"])
    assert len(views) == seen + 2  # before and after the decision
    assert tab.errors == []
    only_the_app(tab, app)
