"""The ecosystem health page in a real headless Chromium: charts drawn, nothing fetched
from outside, numbers downloadable."""

from __future__ import annotations

from helpers.app import ServedApp

from .pages import Recorded, api, only_the_app, screenshot


def test_ecosystem_page_draws_its_charts_offline(tab: Recorded, app: ServedApp) -> None:
    page = tab.page
    page.goto("/ecosystem")
    eco = api(app, "/api/ecosystem")
    assert len(eco["runs"]) == 2
    for chart in ("kinds", "changes", "shares", "money"):
        svg = page.locator(f"#chart-{chart} svg.chart")
        assert svg.count() == 1 and svg.is_visible()
        assert svg.bounding_box()["width"] > 200  # type: ignore[index]
    # one bar stack per run in the findings-by-kind chart, one title per bar segment
    bars = page.locator("#chart-kinds svg rect title").evaluate_all(
        "els => els.map(e => e.textContent)"
    )
    kinds = {k for r in eco["runs"] for k in r["findings_by_kind"]}
    assert {t.split(": ")[1].rsplit(" ", 1)[0] for t in bars} == kinds
    latest = eco["runs"][-1]
    text = page.locator("#latest").inner_text()
    assert str(latest["accounts_flagged"]) in text and str(latest["findings"]) in text
    creators = page.locator("#creators tbody tr").count()
    assert creators == max(1, len(eco["creators"]))
    with page.expect_download() as dl:
        page.click("text=creators.csv")
    lines = open(dl.value.path(), encoding="utf-8").read().splitlines()  # noqa: SIM115
    assert lines[0].startswith("creator_id,health") and len(lines) == len(eco["creators"]) + 1
    screenshot(page, "ecosystem.png")
    assert tab.errors == []
    only_the_app(tab, app)
