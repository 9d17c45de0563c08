"""Who may see and do what: roles on every endpoint class (pages and API alike), keys
and the login cookie, the reverse-proxy mode, the audit of refusals, viewers' redaction,
security headers, and no secret in any log.

The real app served by uvicorn on a localhost port, real HTTP; data: the generated
marketplace of ``tests/helpers/market.py``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers.app import ServedApp, access_for, auth, key_of
from helpers.market import Market, served_copy

from ringscope.api.auth import Access, Users, add_user, hash_key
from ringscope.api.refusals import RefusalLimits
from ringscope.api.security import CSP

pytestmark = pytest.mark.timeout(300)

ROLES = ("viewer", "investigator", "admin")
USER_OF = {"viewer": "test-viewer", "investigator": "test-investigator", "admin": "test-admin"}


#: Every refusal of these tests written to the audit log in full (the limits themselves are
#: tested in tests/security/test_proxy_and_audit.py).
AUDIT_ALL = RefusalLimits(per_client=100_000, per_period=100_000)


@pytest.fixture(scope="module")
def app(app_market: Market, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with served_copy(app_market, tmp_path_factory.mktemp("access"), refusals=AUDIT_ALL) as served:
        yield served


@pytest.fixture(scope="module")
def anon(app: ServedApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def targets(anon: httpx.Client) -> dict[str, str]:
    """Ids to request: a finding with shared identifiers, one of its members and
    identifiers, and a run."""
    h = auth("test-admin")
    items = anon.get("/api/findings", params={"limit": 1000}, headers=h).json()["items"]
    for item in items:
        d = anon.get(f"/api/findings/{item['id']}", headers=h).json()
        ids = d["evidence"].get("identifiers") or []
        if ids:
            break
    else:
        raise AssertionError("no finding with shared identifiers in the market")
    run = anon.get("/api/runs", headers=h).json()[0]["id"]
    return {
        "finding": d["id"],
        "member": d["members"][0]["account_id"],
        "other": d["members"][-1]["account_id"],
        "identifier": f"{ids[0]['kind']}:{ids[0]['value']}",
        "values": json.dumps(sorted({str(r["value"]) for r in ids})),
        "run": run,
    }


ESCALATE = {"decision": "escalated"}

# (method, path template, minimal role, body); ``{...}`` filled from ``targets``
ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/api/me", "viewer", None),
    ("GET", "/api/runs", "viewer", None),
    ("GET", "/api/runs/{run}", "viewer", None),
    ("GET", "/api/findings", "viewer", None),
    ("GET", "/api/findings/{finding}", "viewer", None),
    ("GET", "/api/findings/{finding}/graph", "viewer", None),
    ("GET", "/api/findings/{finding}/decisions", "viewer", None),
    ("GET", "/api/entities/Account:{member}", "viewer", None),
    ("GET", "/api/entities/Account:{member}/neighbourhood", "viewer", None),
    ("GET", "/api/path?a=Account:{member}&b=Account:{other}", "viewer", None),
    ("GET", "/api/ecosystem", "viewer", None),
    ("GET", "/ecosystem", "viewer", None),
    ("GET", "/openapi.json", "viewer", None),
    ("GET", "/docs", "viewer", None),
    ("GET", "/", "viewer", None),
    ("GET", "/findings/{finding}", "viewer", None),
    ("GET", "/entities/Account:{member}", "viewer", None),
    ("GET", "/api/entities/Identifier:{identifier}", "investigator", None),
    ("GET", "/api/entities/Identifier:{identifier}/neighbourhood", "investigator", None),
    ("GET", "/entities/Identifier:{identifier}", "investigator", None),
    ("POST", "/api/findings/{finding}/decisions", "investigator", {"json": ESCALATE}),
    ("POST", "/findings/{finding}/decisions", "investigator", {"data": ESCALATE}),
    ("GET", "/api/findings/{finding}/export", "investigator", None),
    ("GET", "/api/audit", "admin", None),
    ("GET", "/api/settings", "admin", None),
]  # fmt: skip


def fill(path: str, targets: dict[str, str]) -> str:
    return path.format(**{k: quote(v, safe=":") for k, v in targets.items()})


def denied_entries(c: httpx.Client, who: str, subject: str) -> list[dict[str, Any]]:
    log = c.get(
        "/api/audit",
        params={"who": who, "action": "denied", "subject": subject, "limit": 1000},
        headers=auth("test-admin"),
    )
    assert log.status_code == 200, log.text
    entries: list[dict[str, Any]] = log.json()
    return entries


@pytest.mark.parametrize(("method", "path", "needed", "body"), ENDPOINTS)
def test_each_role_is_allowed_or_refused_and_refusals_are_audited(
    anon: httpx.Client,
    targets: dict[str, str],
    method: str,
    path: str,
    needed: str,
    body: dict[str, Any] | None,
) -> None:
    url = fill(path, targets)
    subject = f"{method} {url.split('?')[0]}"
    # no key: 401, audited as anonymous
    before = len(denied_entries(anon, "anonymous", subject))
    r = anon.request(method, url, **(body or {}))
    assert r.status_code == 401, r.text
    assert len(denied_entries(anon, "anonymous", subject)) == before + 1
    for role in ROLES:
        user = USER_OF[role]
        before = len(denied_entries(anon, user, subject))
        r = anon.request(method, url, headers=auth(user), **(body or {}))
        entries = denied_entries(anon, user, subject)
        if ROLES.index(role) >= ROLES.index(needed):
            assert r.status_code in (200, 201, 303), (role, r.text)
            assert len(entries) == before
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert len(entries) == before + 1
            assert entries[0]["detail"]["status"] == 403 and entries[0]["detail"]["reason"]


def test_health_needs_no_key(anon: httpx.Client) -> None:
    r = anon.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_unknown_long_and_malformed_keys_are_refused(anon: httpx.Client) -> None:
    for headers in (
        {"Authorization": "Bearer rsk_not-a-key"},
        {"Authorization": "Bearer " + "k" * 5000},
        {"Authorization": f"Basic {key_of('test-admin')}"},
        {"Authorization": key_of("test-admin")},
        {"Cookie": "ringscope_key=rsk_nope"},
    ):
        r = anon.get("/api/findings", headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["error"] == "Unauthorized" and r.headers["www-authenticate"] == "Bearer"


def test_pages_without_a_key_show_the_sign_in_form(anon: httpx.Client, targets: Any) -> None:
    r = anon.get(f"/findings/{targets['finding']}", headers={"Accept": "text/html"})
    assert r.status_code == 401 and 'id="login-form"' in r.text
    assert f'value="/findings/{targets["finding"]}"' in r.text  # back there after signing in
    r = anon.get("/api/audit", headers={**auth("test-viewer"), "Accept": "text/html"})
    assert r.status_code == 403 and r.json()["error"] == "Forbidden"  # the API stays JSON
    r = anon.get(
        "/entities/Identifier:device:x", headers={**auth("test-viewer"), "Accept": "text/html"}
    )
    assert r.status_code == 403 and 'id="denied"' in r.text and "test-viewer" in r.text


def test_the_login_cookie(app: ServedApp, anon: httpx.Client, targets: dict[str, str]) -> None:
    with httpx.Client(base_url=app.url, timeout=30) as c:
        bad = c.post("/login", data={"key": "rsk_wrong", "next": "/"})
        assert bad.status_code == 401 and "Unknown key" in bad.text and not c.cookies
        r = c.post(
            "/login",
            data={"key": key_of("test-investigator"), "next": f"/findings/{targets['finding']}"},
        )
        assert r.status_code == 303 and r.headers["location"] == f"/findings/{targets['finding']}"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert c.get("/api/me").json() == {"name": "test-investigator", "role": "investigator"}
        # the cookie's decisions come from the app's own pages only
        url = f"/findings/{targets['finding']}/decisions"
        evil = c.post(url, data={"decision": "dismissed"}, headers={"Origin": "http://evil.test"})
        assert evil.status_code == 403
        same = c.post(url, data={"decision": "escalated"}, headers={"Origin": app.url})
        assert same.status_code == 303
        # an open redirect is not possible
        for target in ("//evil.test/x", "/\t/evil.test", "/\\evil.test", "/x\r\nSet-Cookie: a=b"):
            r = c.post("/login", data={"key": key_of("test-viewer"), "next": target})
            assert r.status_code == 303 and r.headers["location"] == "/", target
        out = c.post("/logout")
        assert out.status_code == 303 and c.get("/api/me").status_code == 401
    signed_in = anon.get("/api/audit", params={"action": "login"}, headers=auth("test-admin"))
    assert {e["who"] for e in signed_in.json()} >= {"test-investigator", "test-viewer"}
    refused = denied_entries(anon, "anonymous", "POST /login")
    assert refused and refused[0]["detail"]["reason"] == "unknown API key at sign-in"


def test_viewers_see_identifiers_redacted(anon: httpx.Client, targets: dict[str, str]) -> None:
    values = json.loads(targets["values"])
    f = targets["finding"]
    for path in (f"/api/findings/{f}", f"/api/findings/{f}/graph", f"/findings/{f}"):
        full = anon.get(path, headers=auth("test-investigator"))
        seen = anon.get(path, headers=auth("test-viewer"))
        assert full.status_code == seen.status_code == 200
        assert any(v in full.text for v in values), path
        assert not any(v in seen.text for v in values), path
    for path in ("/", "/api/findings?limit=1000"):
        seen = anon.get(path, headers=auth("test-viewer"))
        assert seen.status_code == 200 and not any(v in seen.text for v in values), path
    # neighbourhoods are kept once walked: one walked for an investigator is not what a
    # viewer gets (and the other way round)
    walk = f"/api/entities/Account:{targets['member']}/neighbourhood"
    for first, then in (("test-investigator", "test-viewer"), ("test-viewer", "test-investigator")):
        a = anon.get(
            walk, params={"limit": 2000 if first == "test-viewer" else 1999}, headers=auth(first)
        )
        b = anon.get(
            walk, params={"limit": 2000 if first == "test-viewer" else 1999}, headers=auth(then)
        )
        assert a.status_code == b.status_code == 200
        full, seen = (a, b) if first == "test-investigator" else (b, a)
        assert not any(v in seen.text for v in values), walk
        if any(v in full.text for v in values):
            assert full.text != seen.text
    detail = anon.get(f"/api/findings/{f}", headers=auth("test-viewer")).json()
    tokens = {r["value"] for r in detail["evidence"]["identifiers"]}
    kinds = {r["kind"] for r in detail["evidence"]["identifiers"]}
    assert all(t.split("-")[0] in kinds and len(t.split("-")[1]) == 16 for t in tokens)
    # the same value gets the same token in every answer to a viewer
    graph = anon.get(f"/api/findings/{f}/graph", headers=auth("test-viewer")).text
    assert all(t in graph for t in tokens if f'"{t}"' in graph or t in graph)
    page = anon.get(f"/findings/{f}", headers=auth("test-viewer")).text
    assert 'id="decision-form"' not in page and 'id="export-case"' not in page
    assert 'id="viewer-note"' in page
    assert 'id="decision-form"' in anon.get(f"/findings/{f}", headers=auth("test-admin")).text


def test_security_headers_everywhere(anon: httpx.Client, targets: dict[str, str]) -> None:
    for path, headers in (
        ("/", auth("test-viewer")),
        (f"/findings/{targets['finding']}", auth("test-viewer")),
        ("/api/findings", auth("test-viewer")),
        ("/api/findings", {}),
        ("/login", {}),
        ("/health", {}),
        ("/static/cluster.js", {}),
    ):
        r = anon.get(path, headers=headers)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        if not path.startswith("/static/"):
            assert r.headers["cache-control"] == "no-store", path
    # the pages satisfy the policy: no inline script, handler or style
    for path in (
        "/",
        f"/findings/{targets['finding']}",
        f"/entities/Account:{targets['member']}",
        "/docs",
        "/login",
    ):
        html = anon.get(path, headers=auth("test-admin")).text
        assert "<script>" not in html and " style=" not in html and " onsubmit=" not in html
        assert "onclick=" not in html and "https://" not in html


def test_no_secret_in_logs(
    app: ServedApp, anon: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = key_of("test-admin")
    anon.get("/api/findings", headers={"Authorization": f"Bearer {secret}x"})
    anon.get("/api/audit", headers={"Cookie": f"ringscope_key={key_of('test-viewer')}"})
    with httpx.Client(base_url=app.url) as fresh:  # the cookie stays in this client
        fresh.post("/login", data={"key": secret + "y"})
        fresh.post("/login", data={"key": secret})
    # no forged log line: newlines are dropped from paths, other control characters escaped
    anon.get("/api/findings/x%0Adenied 200 GET forged")
    anon.get("/api/findings/x%1B[2Kdenied 200 GET forged")
    # the app's own logs and the server's (the test's HTTP client logs what it sends)
    text = "\n".join(
        f"{r.getMessage()} {r.args}"
        for r in caplog.records
        if r.name.startswith(("ringscope", "uvicorn", "fastapi", "starlette"))
    )
    assert "denied 401 GET /api/findings" in text
    assert "denied 403 GET /api/audit to test-viewer" in text
    assert secret not in text and key_of("test-viewer") not in text
    assert "GET /api/findings/xdenied 200 GET forged" in text
    assert "GET /api/findings/x\\x1b[2Kdenied 200 GET forged" in text
    assert not any(line.startswith("denied 200") for line in text.splitlines())
    log = json.dumps(
        anon.get("/api/audit", params={"limit": 1000}, headers=auth("test-admin")).json()
    )
    assert secret not in log and key_of("test-viewer") not in log
    settings = anon.get("/api/settings", headers=auth("test-admin")).text
    assert "sha256" not in settings and "rsk_" not in settings


def test_the_reverse_proxy_mode(app_market: Market, tmp_path: Path) -> None:
    users = access_for({"alice": "investigator", "victor": "viewer"}).users
    proxied = Access(users, mode="proxy", proxy_user_header="X-Forwarded-User")
    with (
        served_copy(app_market, tmp_path / "p", proxied) as app,
        httpx.Client(base_url=app.url) as c,
    ):
        assert (
            c.get("/api/me", headers={"X-Forwarded-User": "alice"}).json()["role"] == "investigator"
        )
        assert c.get("/api/audit", headers={"X-Forwarded-User": "victor"}).status_code == 403
        assert c.get("/api/me", headers={"X-Forwarded-User": "mallory"}).status_code == 401
        assert c.get("/api/me").status_code == 401
        # keys do not count in proxy mode
        assert c.get("/api/me", headers=auth("alice")).status_code == 401
    distrusted = Access(users, mode="proxy", trusted_proxies=("10.0.0.1",))
    with (
        served_copy(app_market, tmp_path / "q", distrusted) as app,
        httpx.Client(base_url=app.url) as c,
    ):
        r = c.get("/api/me", headers={"X-Forwarded-User": "alice"})
        assert r.status_code == 401 and "not accepted from 127.0.0.1" in r.json()["detail"]


def test_users_file_keeps_only_hashes(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "users.json"
    key = add_user(path, "alice", "investigator")
    assert key.startswith("rsk_") and len(key) > 40
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = Users.read(path)
    user = users.by_key(key)
    assert user is not None and (user.name, user.role) == ("alice", "investigator")
    again = add_user(path, "alice", "admin")  # a new key replaces the old one
    users = Users.read(path)
    assert users.by_key(key) is None and users.by_key(again) is not None
    assert len(users) == 1
    from ringscope.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown role"):
        add_user(path, "bob", "superuser")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="users file"):
        Users.read(path)


def test_the_key_command(tmp_path: Path) -> None:
    env = {**os.environ, "RINGSCOPE_USERS_FILE": str(tmp_path / "users.json")}
    cli = [sys.executable, "-m", "ringscope.cli"]
    p = subprocess.run(
        [*cli, "key", "carol", "--role", "admin"], env=env, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("rsk_") and "carol (admin)" in p.stderr and key not in p.stderr
    user = Users.read(tmp_path / "users.json").by_key(key)
    assert user is not None and user.role == "admin"
    bad = subprocess.run(
        [*cli, "key", "dan", "--role", "root"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "unknown role" in bad.stderr


def test_a_key_made_while_the_app_runs_works_at_once(app_market: Market, tmp_path: Path) -> None:
    """The sign-in page says to make a key with ``ringscope key``: made while the app
    runs, it opens the app at once, and a user's replaced key stops working at once."""
    users_file = tmp_path / "users.json"
    env = {**os.environ, "RINGSCOPE_USERS_FILE": str(users_file)}

    def make_key(name: str, role: str) -> str:
        made = subprocess.run(
            [sys.executable, "-m", "ringscope.cli", "key", name, "--role", role],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    first = make_key("erin", "viewer")
    access = Access(Users.read(users_file), users_file=users_file)
    with (
        served_copy(app_market, tmp_path / "app", access=access) as app,
        httpx.Client(base_url=app.url, timeout=30) as c,
    ):

        def status(key: str) -> int:
            return c.get("/api/findings", headers={"Authorization": f"Bearer {key}"}).status_code

        assert status(first) == 200
        newcomer = make_key("frank", "investigator")  # while the app runs
        assert status(newcomer) == 200
        replaced = make_key("erin", "viewer")
        assert status(replaced) == 200 and status(first) == 401
        users_file.write_text("not json")  # a broken file keeps the users read before
        assert status(newcomer) == 200
        signed = c.post("/login", data={"key": newcomer}, follow_redirects=False)
        assert signed.status_code == 303, signed.text
