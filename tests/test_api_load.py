"""A bounded load test on loopback, on both stores: concurrent investigators read the
queue, clusters and neighbourhoods and record decisions. Zero errors; every decision
recorded exactly once (store and audit log); p95 reported, not asserted (speed targets
live in ``benchmarks/load_api.py``, the long form of this test)."""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser.market import ServedApp, auth, fill_store, open_neo4j

pytestmark = pytest.mark.timeout(600)

CLIENTS = 20
ROUNDS = 2  # each client: ROUNDS x (queue, cluster, neighbourhood, decision)
USERS = ("test-investigator", "inspector-7", "analyst-3", "form-user")


@pytest.fixture(params=["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServedApp]:
    from ringscope.graphs.embedded import EmbeddedStore

    if request.param == "neo4j":
        store = open_neo4j(request.getfixturevalue("neo4j_uri"), tmp_path)
    else:
        store = EmbeddedStore(tmp_path / "load.duckdb")
    try:
        fill_store(store, tmp_path, events=3000, seed=13)
        with ServedApp(None, store=store) as app:
            yield app
    finally:
        store.close()


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def test_concurrent_investigators(served: ServedApp, request: pytest.FixtureRequest) -> None:
    with httpx.Client(base_url=served.url, headers=auth("test-admin"), timeout=60) as c:
        queue = c.get("/api/findings", params={"limit": 20}).json()["items"]
        assert len(queue) >= 2
        members = {
            f["id"]: c.get(f"/api/findings/{f['id']}").json()["members"][0]["account_id"]
            for f in queue
        }
    timings: dict[str, list[float]] = {}
    errors: list[str] = []
    sent: list[tuple[str, str]] = []  # (case id, note) of every decision posted
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def client(n: int) -> None:
        user = USERS[n % len(USERS)]
        with httpx.Client(base_url=served.url, headers=auth(user), timeout=120) as h:
            start.wait()
            for k in range(ROUNDS):
                f = queue[(n + k) % len(queue)]
                note = f"load {n}-{k}"
                steps = [
                    ("queue", "GET", "/api/findings", {"params": {"limit": 50}}),
                    ("cluster", "GET", f"/api/findings/{f['id']}", {}),
                    ("neighbourhood", "GET", f"/api/entities/Account:{members[f['id']]}/neighbourhood", {}),  # noqa: E501
                    ("decision", "POST", f"/api/findings/{f['id']}/decisions", {"json": {"decision": "escalated", "note": note}}),  # noqa: E501
                ]  # fmt: skip
                for name, method, path, kw in steps:
                    t0 = time.perf_counter()
                    try:
                        r = h.request(method, path, **kw)
                        ok = r.status_code == (201 if method == "POST" else 200)
                        problem = f"{name}: {r.status_code} {r.text[:200]}"
                    except httpx.HTTPError as e:
                        ok, problem = False, f"{name}: {e!r}"
                    with lock:
                        timings.setdefault(name, []).append(time.perf_counter() - t0)
                        if not ok:
                            errors.append(problem)
                        elif name == "decision":
                            sent.append((r.json()["case_id"], note))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    assert errors == []
    assert len(sent) == CLIENTS * ROUNDS
    # every decision recorded exactly once, in the store and in the audit log
    notes = [d.note for d in served.store.decisions() if d.note.startswith("load ")]
    assert sorted(notes) == sorted(n for _, n in sent)
    recorded = {(d.finding_id, d.note) for d in served.store.decisions() if d.note in notes}
    assert recorded == set(sent)
    audit = served.store.audit_log(action="decision", limit=10_000)
    audited = [str(e["detail"].get("note")) for e in audit]  # type: ignore[attr-defined]
    audited = [n for n in audited if n.startswith("load ")]
    assert sorted(audited) == sorted(notes)
    # the figures: printed with -s, and kept in the JUnit report
    uptime = os.getloadavg()
    lines = [f"{CLIENTS} clients, {len(sent) * 4} requests in {wall:.1f}s, load {uptime[0]:.1f}"]
    for name, ts in timings.items():
        ms = sorted(1000 * t for t in ts)
        p50 = statistics.median(ms)
        lines.append(f"  {name:13s} n={len(ms):3d} p50={p50:7.1f} ms p95={p95(ms):7.1f} ms")
        request.node.user_properties.append((f"{name}_p95_ms", round(p95(ms), 1)))
    print("\n".join(lines))


# =========================================================================== the app's log
# ``ringscope serve`` once stopped answering on Neo4j: the queue reads the decisions,
# ordered by ``decided_at``; on a database where no decision was recorded yet, Neo4j
# answers each such statement with a notification ("property key does not exist"),
# which the driver logs at WARNING on every execution. A request then wrote a log line,
# and when the app's log went to a pipe that nobody read (as the benchmarks had it),
# the pipe filled after ~80 requests and every thread that logged waited for it, each
# holding an open Neo4j transaction. The store now asks Neo4j not to send that class
# of notification, and the app writes no log line per request.


def _neo4j_auth() -> tuple[str, str] | None:
    password = os.environ.get("NEO4J_PASSWORD")
    return (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None


@pytest.mark.neo4j
def test_store_asks_neo4j_for_no_unrecognized_notifications(
    neo4j_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import neo4j

    store = open_neo4j(neo4j_uri, tmp_path)
    # a property key that no node of this server has ever had
    never = f"p{uuid.uuid4().hex}"
    statement = f"MATCH (d:Decision) RETURN d.{never} AS x"
    database = os.environ.get("NEO4J_DATABASE", "neo4j")
    try:
        with caplog.at_level(logging.DEBUG, logger="neo4j.notifications"):
            # control: with the driver's defaults Neo4j sends it and the driver logs it
            with neo4j.GraphDatabase.driver(neo4j_uri, auth=_neo4j_auth()) as plain:
                plain.execute_query(statement, database_=database)
            assert any(never in r.getMessage() for r in caplog.records)
            caplog.clear()
            store._query(statement)  # type: ignore[attr-defined]
            assert [r.getMessage() for r in caplog.records if never in r.getMessage()] == []
    finally:
        store.close()


@pytest.mark.neo4j
def test_served_app_keeps_answering_with_its_log_unread(neo4j_uri: str, tmp_path: Path) -> None:
    """``ringscope serve`` in its own process on Neo4j, its log a pipe that is not read
    until the end: 20 clients read the queue and a cluster page 6 times each (more
    requests than a pipe holds log lines of a warning each). Every request is answered,
    and the app logged nothing but its start line."""
    from ringscope.api.auth import add_user

    store = open_neo4j(neo4j_uri, tmp_path)
    try:
        fill_store(store, tmp_path, events=3000, seed=13)
        finding = store.findings()[0].id
    finally:
        store.close()  # the side file is the served app's now (one process per file)
    users = tmp_path / "users.json"
    key = add_user(users, "log-investigator", "investigator")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {
        **os.environ,
        "RINGSCOPE_USERS_FILE": str(users),
        "RINGSCOPE_COLUMNAR_PATH": str(tmp_path / "events.duckdb"),
    }
    cmd = [sys.executable, "-m", "ringscope.cli", "serve", "--store", neo4j_uri]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    url = f"http://127.0.0.1:{port}"
    errors: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the app did not start"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the app did not answer within 60 s"
            time.sleep(0.2)
        start = threading.Barrier(CLIENTS)

        def client(n: int) -> None:
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=url, headers=headers, timeout=30) as h:
                start.wait()
                for _ in range(6):
                    for path in ("/api/findings", f"/findings/{finding}"):
                        try:
                            r = h.get(path)
                            if r.status_code != 200:
                                errors.append(f"{path}: {r.status_code}")
                        except httpx.HTTPError as e:
                            errors.append(f"{path}: {e!r}")
                            return

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert errors == []
    logged = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
    assert [line for line in logged if "serving the investigator app" not in line] == []
