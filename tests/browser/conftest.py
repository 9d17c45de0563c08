"""Browser fixtures: the app served on a localhost port and a real headless Chromium
(Debian's /usr/bin/chromium driven by Playwright). Every page records its requests,
console errors and dialogs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .market import Market, ServedApp, key_of, served_copy, shared_market

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "artifacts"
USER = "browser-user"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    return shared_market(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def app(market: Market, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with served_copy(market, tmp_path_factory.mktemp("browser-app")) as served:
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


@dataclass
class Recorded:
    page: Any
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def signed_in(browser: Any, app: ServedApp, user: str) -> tuple[Any, Any]:
    """A browser context and page signed in as ``user`` through the login link, as
    ``ringscope serve`` prints it (the key in the fragment; the app sets a cookie)."""
    context = browser.new_context(base_url=app.url, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"/login#key={key_of(user)}")
    page.wait_for_url(app.url + "/")
    return context, page


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


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    page.screenshot(path=str(out), full_page=False)
    return out


def publish(shot: Path, name: str) -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copy(shot, docs / name)
