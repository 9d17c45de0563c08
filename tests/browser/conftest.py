"""Browser fixtures: the app served on a localhost port and a real headless Chromium
(Debian's /usr/bin/chromium driven by Playwright). Every page records its requests,
console errors and dialogs (helpers in ``pages.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.app import ServedApp
from helpers.market import Market, served_copy

from .pages import CHROMIUM, USER, Recorded, signed_in

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def app(app_market: Market, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with served_copy(app_market, tmp_path_factory.mktemp("browser-app")) as served:
        yield served


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        # `make test` installs it; only an explicit opt-out turns this into a skip.
        if os.environ.get("RINGSCOPE_TESTS_WITHOUT_BROWSER") == "1":
            pytest.skip("no /usr/bin/chromium (run `make browser`)")
        pytest.fail(
            "no /usr/bin/chromium: run `make browser` (Debian package chromium)", pytrace=False
        )
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],  # Playwright itself passes a fresh temporary --user-data-dir on every launch
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def tab(browser: Any, app: ServedApp) -> Iterator[Recorded]:
    context, page = signed_in(browser, app, USER)
    rec = Recorded(page)
    page.on("request", lambda r: rec.requests.append(r.url))
    page.on("console", lambda m: rec.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: rec.errors.append(str(e)))

    def on_dialog(d: Any) -> None:
        rec.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    try:
        yield rec
    finally:
        context.close()
