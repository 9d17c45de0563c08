"""The case file's graph.html opens from disk, with the network blocked, and draws the graph."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

from helpers.market import Market

from ringscope.api.export import export_case
from ringscope.graphs.embedded import EmbeddedStore

from .pages import screenshot


def test_graph_html_draws_offline_from_file(
    browser: Any, app_market: Market, tmp_path: Path
) -> None:
    db = tmp_path / "s.duckdb"
    shutil.copy(app_market.store_path, db)
    with EmbeddedStore(db) as store:
        top = store.findings()[0]
        data = export_case(store, top.id, who="browser-test", via="test").data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        z.extractall(tmp_path / "case")
    page_file = tmp_path / "case" / "graph.html"

    context = browser.new_context()
    requests: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        requests.append(r.request.url)
        if r.request.url.startswith("file://"):
            r.continue_()
        else:  # the network is blocked: anything but the file itself fails
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(page_file.as_uri())
        page.wait_for_function("window.rsGraph && window.rsGraph.nodes.length > 0")
        n = page.evaluate("window.rsGraph.nodes.length")
        assert n >= len(top.members)
        assert page.evaluate(
            "(id) => window.rsGraph.nodes.get(id) !== null", f"Account:{top.members[0].account_id}"
        )
        assert page.locator("#graph canvas").count() == 1
        screenshot(page, "case-graph.png")
    finally:
        context.close()
    assert failed == [] and errors == []
    assert requests == [page_file.as_uri()]
