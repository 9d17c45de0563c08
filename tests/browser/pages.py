"""Helpers of the browser tests: a page that records its requests, console errors and
dialogs; signing in as ``ringscope serve``'s link does; screenshots; and the checks the
page tests share (no request leaves the app; the API's answer to compare a page with)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from helpers.app import ServedApp, auth, key_of

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "artifacts"
#: The test user the ``tab`` fixture signs in as.
USER = "browser-user"


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


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    out = ARTIFACTS / name
    page.screenshot(path=str(out), full_page=False)
    return out


def publish(shot: Path, name: str) -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copy(shot, docs / name)


def only_the_app(rec: Recorded, app: ServedApp) -> None:
    host = urlsplit(app.url).netloc
    outside = [u for u in rec.requests if not u.startswith("data:") and urlsplit(u).netloc != host]
    assert outside == []
    assert rec.requests, "the page made no request at all"


def api(app: ServedApp, path: str, **params: Any) -> Any:
    r = httpx.get(app.url + path, params=params, timeout=30, headers=auth("test-admin"))
    assert r.status_code == 200, r.text
    return r.json()
