"""The app on Neo4j with its log unread: ``ringscope serve`` once stopped answering when
its log went to a pipe that nobody read (see below). The load test on every store is
``tests/contract/test_api_load.py``."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from helpers.stores import fill_store, neo4j_auth, open_neo4j

pytestmark = pytest.mark.timeout(600)

CLIENTS = 20


# =========================================================================== the app's log
# ``ringscope serve`` once stopped answering on Neo4j: the queue reads the decisions,
# ordered by ``decided_at``; on a database where no decision was recorded yet, Neo4j
# answers each such statement with a notification ("property key does not exist"),
# which the driver logs at WARNING on every execution. A request then wrote a log line,
# and when the app's log went to a pipe that nobody read (as the benchmarks had it),
# the pipe filled after ~80 requests and every thread that logged waited for it, each
# holding an open Neo4j transaction. The store now asks Neo4j not to send that class
# of notification, and the app writes no log line per request.


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
            with neo4j.GraphDatabase.driver(neo4j_uri, auth=neo4j_auth()) as plain:
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
