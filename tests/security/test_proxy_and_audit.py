"""Red team: proxy trust, the audit of refused requests, the order of checks, ``serve``'s
start-up errors and the Neo4j wipe, each reproduced against the real thing.

- Proxy trust is decided on the socket's peer: a request from 127.0.0.1 naming an admin in
  ``X-Forwarded-User`` and a trusted proxy in ``X-Forwarded-For`` is refused and audited
  with 127.0.0.1; through a real nginx (Debian's, with basic auth) the forwarded user and
  client count; with API keys the forwarded headers never change who the user is.
- 2,000 anonymous requests write a bounded number of audit entries, one of which says how
  many were left out; the access log and the counters still see all of them.
- A request without a key gets 401 before any input check (over-long ids and queries,
  bodies over 64 KiB, malformed bodies, FastAPI's own validation, unknown paths).
- ``ringscope serve`` with a bad port or host is a usage error, a port in use an error,
  neither a traceback.
- ``Neo4jStore.wipe()`` keeps the audit log; its pairing error advises the harmless fix
  first.

Each server is ``ringscope serve`` in its own process (``tests/security/servers.py``) on a
copy of the generated marketplace of ``tests/helpers/market.py``; clients connect from
other loopback addresses (127.0.0.2, 127.0.0.3) than nginx (127.0.0.1).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers.market import Market

from ringscope.api.auth import TrustedProxies
from ringscope.api.refusals import OTHER_CLIENTS, RefusalAudit, RefusalLimits

from .servers import Nginx, Served, client_from, free_port, htpasswd, make_users, served

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
SMALL_EXPORT = REPO / "tests" / "data" / "small-export"
#: The users of the served apps (proxy mode names them; key mode gives them keys).
USERS = {"root": "admin", "alice": "investigator", "bob": "viewer"}
#: Their nginx passwords; mallory passes nginx but is no user of the app.
PASSWORDS = {"root": "root-pw", "alice": "alice-pw", "bob": "bob-pw", "mallory": "mallory-pw"}
#: The refusal limits of the key-mode app: a short period, so the flood spans a few.
PER_CLIENT, PERIOD_S = 10, 4.0


def audit(store: Path) -> list[dict[str, Any]]:
    """The audit log of a stopped app's store, read from the file."""
    from ringscope.graphs.embedded import EmbeddedStore

    with EmbeddedStore(store) as s:
        return s.audit_log(limit=100_000)


def readme_nginx_block() -> str:
    """The README's nginx example (Security section)."""
    text = (REPO / "README.md").read_text("utf-8")
    found = re.search(r"```nginx\n(.*?)```", text, re.S)
    assert found, "no ```nginx block in README.md"
    return "\n".join(line.removeprefix("  ") for line in found.group(1).splitlines())


# =========================================================================== pure rules


def test_the_client_is_the_right_most_untrusted_forwarded_address() -> None:
    proxies = TrustedProxies.parse(["127.0.0.1", "10.0.0.0/8", "::1"])
    # a peer that is no proxy: its headers count for nothing
    assert proxies.client("192.0.2.9", ["203.0.113.1"]) == "192.0.2.9"
    # from a proxy: the right-most entry that is no proxy; left of it, the client's words
    assert proxies.client("127.0.0.1", ["6.6.6.6, 203.0.113.1"]) == "203.0.113.1"
    assert proxies.client("127.0.0.1", ["6.6.6.6", "203.0.113.1, 10.1.2.3"]) == "203.0.113.1"
    assert proxies.client("::ffff:127.0.0.1", ["[2001:db8::7]:5000"]) == "2001:db8::7"
    assert proxies.client("::1", ["198.51.100.4:443"]) == "198.51.100.4"
    # only proxies: the left-most; no header: the proxy; garbage stops the walk
    assert proxies.client("127.0.0.1", ["10.0.0.5, 10.0.0.6"]) == "10.0.0.5"
    assert proxies.client("127.0.0.1", []) == "127.0.0.1"
    assert proxies.client("127.0.0.1", ["203.0.113.1, evil, 10.0.0.6"]) == "10.0.0.6"
    assert not proxies.trusts("10.9.9.9x") and proxies.trusts("10.255.0.1")
    from ringscope.errors import ConfigError

    with pytest.raises(ConfigError, match="not an IP address or network"):
        TrustedProxies.parse(["10.9.9.9", "proxy.local"])


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_refusals_are_audited_at_a_bounded_rate_with_bounded_memory() -> None:
    rows: list[tuple[str, str, str, dict[str, Any]]] = []
    clock = Clock()
    limits = RefusalLimits(per_client=3, per_period=20, period_s=60, summaries=4, clients=50)
    limiter = RefusalAudit(lambda *row: rows.append(row), limits, clock=clock, timer=False)

    def refuse(client: str, n: int = 1, who: str = "anonymous") -> None:
        for _ in range(n):
            limiter.record(client, who, "GET /api/runs", {"status": 401, "client": client})

    refuse("192.0.2.1", 1000)
    assert [r[1] for r in rows] == ["denied"] * 3  # the first 3, in full
    clock.now += 61
    limiter.tick()
    summary = rows[-1]
    assert summary[1:3] == ("denied_summary", "192.0.2.1") and summary[0] == "anonymous"
    assert summary[3]["dropped"] == 997 and summary[3]["written"] == 3
    assert summary[3]["status"] == {"401": 1000}
    # an attacker rotating through 100,000 addresses in one period
    rows.clear()
    for k in range(100_000):
        refuse(f"10.{k >> 16}.{(k >> 8) & 255}.{k & 255}", 2)
        assert len(limiter._clients) <= limits.clients  # memory stays bounded
    clock.now += 61
    limiter.tick()
    assert len(rows) <= limits.rows_per_period
    assert sum(r[1] == "denied" for r in rows) == limits.per_period
    others = [r for r in rows if r[2] == OTHER_CLIENTS]
    assert len(others) == 1 and others[0][3]["untracked"] == 2 * (100_000 - limits.clients)
    written = sum(r[1] == "denied" for r in rows)
    dropped = sum(r[3]["dropped"] for r in rows if r[1] == "denied_summary")
    assert written + dropped == 200_000  # every refusal accounted for
    counts = limiter.counts()
    assert counts["refused"] == 201_000 and counts["by_status"] == {"401": 201_000}
    assert counts["written"] + counts["dropped"] == 201_000
    # shutdown writes the summaries of the period under way
    rows.clear()
    refuse("192.0.2.8", 5, who="bob")
    limiter.close()
    assert [r[1] for r in rows] == ["denied"] * 3 + ["denied_summary"]
    assert rows[-1][0] == "bob" and rows[-1][3]["dropped"] == 2


# =========================================================================== finding 1


def test_a_spoofed_forwarded_for_does_not_make_an_admin(app_market: Market, tmp_path: Path) -> None:
    """The review's request: proxy mode trusting 10.9.9.9 only; from 127.0.0.1, a header
    naming an admin and a header claiming to come through 10.9.9.9."""
    make_users(tmp_path / "users.json", USERS)
    env = {"RINGSCOPE_AUTH": "proxy", "RINGSCOPE_TRUSTED_PROXIES": '["10.9.9.9", "192.0.2.0/24"]'}
    with served(app_market, tmp_path, env) as app, httpx.Client(base_url=app.url, timeout=30) as c:
        for claimed in ("10.9.9.9", "192.0.2.44", "10.9.9.9, 127.0.0.1"):
            r = c.get(
                "/api/settings", headers={"X-Forwarded-User": "root", "X-Forwarded-For": claimed}
            )
            assert r.status_code == 401, r.text
            assert r.json()["detail"] == "proxy header not accepted from 127.0.0.1"
            assert "root" not in r.text and "users" not in r.text
    entries = [e for e in audit(app.store) if e["action"] == "denied"]
    assert len(entries) == 3
    for e in entries:
        assert e["who"] == "anonymous" and e["subject"] == "GET /api/settings"
        assert e["detail"]["client"] == "127.0.0.1" and "proxy" not in e["detail"]
        assert e["detail"]["claimed_user"] == "root"
    log = app.log_text()
    assert log.count("denied 401 GET /api/settings to anonymous from 127.0.0.1:") == 3
    assert "10.9.9.9" not in log and "192.0.2.44" not in log


@pytest.fixture(scope="module")
def proxy_app(app_market: Market, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Proxy mode with the default trusted proxies (127.0.0.1, ::1)."""
    root = tmp_path_factory.mktemp("proxy-app")
    make_users(root / "users.json", USERS)
    with served(app_market, root, {"RINGSCOPE_AUTH": "proxy"}) as app:
        yield app


@pytest.fixture(scope="module")
def key_app(
    app_market: Market, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Served, dict[str, str]]]:
    """Key mode (``key``, the alias of the default ``keys``), short refusal periods."""
    root = tmp_path_factory.mktemp("key-app")
    keys = make_users(root / "users.json", USERS)
    env = {
        "RINGSCOPE_AUTH": "key",
        "RINGSCOPE_AUDIT_REFUSALS_PER_CLIENT": str(PER_CLIENT),
        "RINGSCOPE_AUDIT_REFUSAL_PERIOD_S": str(PERIOD_S),
    }
    with served(app_market, root, env) as app:
        yield app, keys


@pytest.fixture(scope="module")
def nginx(
    proxy_app: Served,
    key_app: tuple[Served, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    """nginx on 127.0.0.1: the README's block in front of the proxy-mode app, and a plain
    proxy (no authentication, the same ``X-Forwarded-For``) in front of the key-mode app.
    Their URLs."""
    root = tmp_path_factory.mktemp("nginx")
    htpasswd(root / "htpasswd", PASSWORDS)
    block = readme_nginx_block()
    assert "proxy_pass           http://127.0.0.1:8000;" in block
    block = block.replace("127.0.0.1:8000", f"127.0.0.1:{proxy_app.port}")
    block = block.replace("/etc/nginx/ringscope.htpasswd", str(root / "htpasswd"))
    basic, plain = free_port(), free_port()
    servers = (
        f"server {{\n listen 127.0.0.1:{basic};\n{block}\n}}\n"
        f"server {{\n listen 127.0.0.1:{plain};\n location / {{\n"
        f"  proxy_pass http://127.0.0.1:{key_app[0].port};\n"
        "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n }\n}"
    )
    with Nginx(root, servers) as server:
        server.wait_for(basic)
        server.wait_for(plain)
        yield f"http://127.0.0.1:{basic}", f"http://127.0.0.1:{plain}"


def denied(c: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Audit entries read through ``c`` (an admin's client)."""
    r = c.get("/api/audit", params={"limit": "1000", **params})
    assert r.status_code == 200, r.text
    entries: list[dict[str, Any]] = r.json()
    return entries


def test_through_nginx_the_forwarded_user_and_client_count(
    proxy_app: Served, nginx: tuple[str, str]
) -> None:
    """The README's nginx block, with the default trusted proxies: users signed in by
    nginx get their role; the client recorded is the one nginx saw (127.0.0.2), not an
    address the client wrote; a client going around nginx gets nothing."""
    url = nginx[0]
    with client_from("127.0.0.2", url, auth=("alice", PASSWORDS["alice"])) as alice:
        assert alice.get("/api/me").json() == {"name": "alice", "role": "investigator"}
        assert alice.get("/api/findings", params={"limit": 1}).status_code == 200
    spoof = {"X-Forwarded-User": "root", "X-Forwarded-For": "10.9.9.9"}
    with client_from("127.0.0.2", url, auth=("bob", PASSWORDS["bob"]), headers=spoof) as bob:
        assert bob.get("/api/me").json() == {"name": "bob", "role": "viewer"}  # not root
        assert bob.get("/api/audit").status_code == 403
    with client_from("127.0.0.2", url, auth=("mallory", PASSWORDS["mallory"])) as mallory:
        r = mallory.get("/api/me")
        assert r.status_code == 401 and r.json()["detail"] == "unknown user"
    with client_from("127.0.0.2", url, auth=("root", "wrong")) as guess:
        assert guess.get("/api/me").status_code == 401  # nginx's answer: no user reaches the app
    with client_from("127.0.0.2", proxy_app.url, headers=spoof) as around:
        r = around.get("/api/me", headers={"X-Forwarded-For": "127.0.0.1"})
        assert r.status_code == 401
        assert r.json()["detail"] == "proxy header not accepted from 127.0.0.2"
    with client_from("127.0.0.2", url, auth=("root", PASSWORDS["root"])) as root:
        by_bob = denied(root, who="bob", action="denied", subject="GET /api/audit")
        by_mallory = denied(root, who="mallory", action="denied")
        around = denied(root, who="anonymous", action="denied", subject="GET /api/me")
    assert len(by_bob) == 1 and len(by_mallory) == 1 and len(around) == 1
    for e in (*by_bob, *by_mallory):
        assert e["detail"]["client"] == "127.0.0.2" and e["detail"]["proxy"] == "127.0.0.1"
    assert by_bob[0]["detail"]["status"] == 403
    assert around[0]["detail"]["client"] == "127.0.0.2" and "proxy" not in around[0]["detail"]
    assert around[0]["detail"]["claimed_user"] == "root"
    log = proxy_app.log_text()
    assert "denied 403 GET /api/audit to bob from 127.0.0.2 via 127.0.0.1" in log
    assert "denied 401 GET /api/me to anonymous from 127.0.0.2: proxy header" in log
    assert "10.9.9.9" not in log


def test_with_keys_forwarded_headers_change_only_the_recorded_client_by_the_same_rule(
    key_app: tuple[Served, dict[str, str]], nginx: tuple[str, str]
) -> None:
    app, keys = key_app
    viewer = {"Authorization": f"Bearer {keys['bob']}", "X-Forwarded-User": "root"}
    with client_from("127.0.0.2", nginx[1]) as c:
        assert c.get("/api/me", headers=viewer).json() == {"name": "bob", "role": "viewer"}
        r = c.get("/api/runs/via-nginx", headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 401
    with client_from("127.0.0.2", app.url) as c:  # not a proxy: its header is ignored
        r = c.get("/api/runs/direct", headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 401
    with client_from("127.0.0.1", app.url) as c:  # a trusted proxy (the default list)
        r = c.get("/api/runs/local", headers={"X-Forwarded-For": "203.0.113.7"})
        assert r.status_code == 401
    admin = {"Authorization": f"Bearer {keys['root']}"}
    with client_from("127.0.0.2", app.url, headers=admin) as c:
        via_nginx = denied(c, action="denied", subject="GET /api/runs/via-nginx")
        direct = denied(c, action="denied", subject="GET /api/runs/direct")
        local = denied(c, action="denied", subject="GET /api/runs/local")
    assert [e["detail"]["client"] for e in via_nginx] == ["127.0.0.2"]
    assert via_nginx[0]["detail"]["proxy"] == "127.0.0.1"
    assert [e["detail"]["client"] for e in direct] == ["127.0.0.2"]
    assert "proxy" not in direct[0]["detail"]
    assert [(e["detail"]["client"], e["detail"]["proxy"]) for e in local] == [
        ("203.0.113.7", "127.0.0.1")
    ]


# =========================================================================== finding 2


def test_an_anonymous_flood_writes_a_bounded_audit(key_app: tuple[Served, dict[str, str]]) -> None:
    """2,000 anonymous requests from one address: at most ``PER_CLIENT`` entries in full
    and one summary per period; every refusal is still counted and logged."""
    app, keys = key_app
    wal = app.store.with_name(app.store.name + ".wal")
    wal_before = wal.stat().st_size if wal.exists() else 0
    flood = 2000
    started = time.monotonic()
    with client_from("127.0.0.3", app.url) as c:
        for _ in range(flood):
            assert c.get("/api/runs").status_code == 401
    took = time.monotonic() - started
    periods = int(took / PERIOD_S) + 2  # the most periods the flood can have touched
    admin = {"Authorization": f"Bearer {keys['root']}"}
    with httpx.Client(base_url=app.url, timeout=30, headers=admin) as c:
        deadline = time.monotonic() + 3 * PERIOD_S + 10
        while True:  # the last period's summary is written when it ends
            full = [
                e
                for e in denied(c, action="denied", subject="GET /api/runs")
                if e["detail"]["client"] == "127.0.0.3"
            ]
            summaries = denied(c, action="denied_summary", subject="127.0.0.3")
            dropped = sum(e["detail"]["dropped"] for e in summaries)
            if len(full) + dropped == flood or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        counts = c.get("/api/settings").json()["refusals"]
    wal_after = wal.stat().st_size if wal.exists() else 0
    assert len(full) + dropped == flood, (len(full), dropped)
    assert 1 <= len(summaries) <= periods
    assert PER_CLIENT <= len(full) <= PER_CLIENT * periods
    assert len(full) + len(summaries) <= (PER_CLIENT + 1) * periods
    for s in summaries:
        d = s["detail"]
        assert s["who"] == "anonymous" and d["client"] == "127.0.0.3"
        assert d["refused"] == d["written"] + d["dropped"] and d["written"] <= PER_CLIENT
        assert d["status"] == {"401": d["refused"]} and d["from"] < d["to"]
    # the counters and the access log see every refusal
    assert counts["refused"] >= flood and counts["dropped"] >= dropped
    assert counts["limits"] == {"per_client": PER_CLIENT, "per_period": 100, "period_s": PERIOD_S}
    log = app.log_text()
    assert log.count("denied 401 GET /api/runs to anonymous from 127.0.0.3: no API key") == flood
    # the review measured the WAL growing by 1.6 MB for 2,000 entries
    assert wal_after - wal_before < 200_000, (wal_before, wal_after)
    print(
        f"\n{flood} anonymous requests in {took:.1f} s: {len(full)} entries in full, "
        f"{len(summaries)} summaries, WAL {wal_before:,} -> {wal_after:,} bytes"
    )


# =========================================================================== finding 3


def long_paths(openapi: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every operation of the API with each path parameter 2,000 characters long."""
    for path, ops in openapi["paths"].items():
        if "{" not in path:
            continue
        for method in ops:
            yield method.upper(), re.sub(r"\{[^}]+\}", "Account:" + "a" * 2000, path)


def test_without_a_key_every_input_check_comes_after_401(
    key_app: tuple[Served, dict[str, str]],
) -> None:
    app, keys = key_app
    admin = {"Authorization": f"Bearer {keys['root']}"}
    with httpx.Client(base_url=app.url, timeout=30) as c:
        openapi = c.get("/openapi.json", headers=admin).json()
        run = c.get("/api/runs", headers=admin).json()[0]["id"]
        finding = c.get("/api/findings", params={"limit": 1}, headers=admin).json()["items"][0]
        decide = f"/api/findings/{quote(finding['id'])}/decisions"
        long = "k" * 2000
        cases: list[tuple[str, str, dict[str, Any], set[int]]] = [
            (m, p, {}, {413, 422}) for m, p in long_paths(openapi)
        ]
        cases += [
            ("GET", "/api/findings", {"params": {"kind": long}}, {422}),
            ("GET", "/api/findings", {"params": {"limit": "many"}}, {422}),  # FastAPI's check
            ("GET", "/api/findings", {"params": {"kind": ["a", "b"]}}, {422}),
            ("GET", f"/api/runs/{run}", {"params": {long: "1"}}, {422}),
            ("GET", "/api/entities/Planet:earth", {}, {422}),
            ("GET", "/api/path", {"params": {"a": "Account:x"}}, {422}),  # b missing
            ("POST", decide, {"content": b"x" * 100_000}, {413}),
            ("POST", decide, {"content": b'{"decision": "conf'}, {422}),
            ("POST", decide, {"json": {"decision": "delete everything"}}, {422}),
            (
                "POST",
                f"/findings/{quote(finding['id'])}/decisions",
                {"data": {"n": "n" * 70_000}},
                {413},
            ),
            ("GET", "/findings/" + "a" * 2000, {"headers": {"Accept": "text/html"}}, {422}),
            ("GET", "/no/such/page", {}, {404}),
            ("DELETE", "/api/runs", {}, {405}),
        ]
        for method, path, kw, after_key in cases:
            headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
            if "data" in kw:
                headers.pop("Content-Type")
            r = c.request(method, path, headers=headers, **kw)
            assert r.status_code == 401, (method, path[:80], r.status_code, r.text[:200])
            if "text/html" in headers.get("Accept", ""):
                assert 'id="login-form"' in r.text
            # with a key, the input checks answer
            signed = c.request(method, path, headers={**headers, **admin}, **kw)
            assert signed.status_code in after_key, (method, path[:80], signed.status_code)
    assert len(cases) > 20


# =========================================================================== finding 4


def test_serve_with_a_bad_port_or_host_is_a_usage_error(tmp_path: Path) -> None:
    env = {
        "RINGSCOPE_WORK_DIR": str(tmp_path / "var"),
        "RINGSCOPE_USERS_FILE": str(tmp_path / "users.json"),
    }

    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "ringscope.cli",
            "serve",
            "--store",
            str(tmp_path / "s.duckdb"),
        ]
        return subprocess.run(
            [*cmd, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
        )

    for args, words in (
        (("--port", "99999"), "--port"),
        (("--port", "0"), "--port"),
        (("--port", "-1"), "--port"),
        (("--host", "bad host"), "not an IP address or a host name"),
        (("--host", "192.0.2.1"), "not an address of this machine"),
    ):
        p = serve(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert words in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = serve("--port", str(port))
    assert p.returncode == 1, p.stderr
    assert f"127.0.0.1:{port}: the port is in use" in p.stderr and "Traceback" not in p.stderr
    run = subprocess.run(
        [sys.executable, "-m", "ringscope.cli", "run", "--port", "99999"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr


# =========================================================================== finding 5


@pytest.mark.neo4j
def test_the_neo4j_wipe_keeps_the_audit_log(neo4j_store: Any, tmp_path: Path) -> None:
    from ringscope.graphs.neo4j_store import Neo4jStore
    from ringscope.loaders.pipeline import load_export

    store: Neo4jStore = neo4j_store
    load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "rejects")
    store.append_audit("alice", "decision", "co-1", {"decision": "confirmed"})
    store.append_audit("anonymous", "denied", "GET /api/runs", {"status": 401})
    assert store.graph_counts()["Account"] > 0
    # a second side file beside the loaded database: the advice starts harmless
    password = os.environ.get("NEO4J_PASSWORD")
    other = Neo4jStore(
        store.uri,
        auth=(os.environ.get("NEO4J_USER", "neo4j"), password) if password else None,
        database=store.database,
        columnar_path=tmp_path / "other.duckdb",
    )
    try:
        message = str(other.mismatch)
    finally:
        other.close()
    advice = message.split("nothing was changed. ", 1)[1]
    assert advice.startswith("First, point RINGSCOPE_COLUMNAR_PATH at the side file")
    assert advice.index("RINGSCOPE_COLUMNAR_PATH") < advice.index("wipe")
    assert "deletes the marketplace graph, runs, findings and decisions" in advice
    assert "the audit log is kept" in advice

    store.wipe()
    assert not any(store.graph_counts().values())
    assert store.table("accounts").empty
    kept = store.audit_log()
    assert [(e["who"], e["action"]) for e in kept] == [
        ("anonymous", "denied"),
        ("alice", "decision"),
    ]
    # the wiped store loads again, and its audit log goes on
    load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "rejects2")
    store.append_audit("alice", "view_finding", "co-2")
    assert len(store.audit_log()) == 3
    store.wipe(erase_audit_log=True)  # explicit
    assert store.audit_log() == []


def test_the_proxy_docs_name_the_settings_the_app_reads() -> None:
    """The README's proxy paragraph and nginx block use the settings' own names."""
    from ringscope.settings import Settings

    text = (REPO / "README.md").read_text("utf-8")
    for name in (
        "trusted_proxies",
        "proxy_user_header",
        "audit_refusals_per_client",
        "audit_refusals_per_period",
        "audit_refusal_period_s",
    ):
        assert name in Settings.model_fields
        assert f"RINGSCOPE_{name.upper()}" in text, name
