"""Faults, each caused for real: a Neo4j server killed in the middle of a load, a Neo4j
server that is down when the app starts, a store folder that runs out of room or that
cannot be written.

The Neo4j tests run their own server (this module kills it), started from the same
Maven jars as the session's one; it is stopped at the end of the module.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.stores import contents

from ringscope.contract import TABLES
from ringscope.errors import StoreError
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.neo4j_local import LocalNeo4j, start_local_neo4j
from ringscope.graphs.neo4j_store import Neo4jStore
from ringscope.loaders.pipeline import check_export, load_export, read_table
from ringscope.loaders.synthetic import generate

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "small-export"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OwnNeo4j:
    """A local Neo4j of this module's own, on one data folder and one port, that the
    tests may kill and start again."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = _free_port()
        self.local: LocalNeo4j | None = None

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.local is not None and self.local.process.poll() is None

    def start(self) -> None:
        assert not self.running
        self.local = start_local_neo4j(
            self.work, port=self.port, name="faults", heap="512m", pagecache="64m"
        )
        assert self.local.uri == self.uri

    def kill(self) -> None:
        """SIGKILL the JVM: no shutdown, no flush beyond what Neo4j committed."""
        assert self.local is not None
        os.kill(self.local.process.pid, signal.SIGKILL)
        self.local.process.wait(30)

    def stop(self) -> None:
        if self.local is not None:
            self.local.stop()


@pytest.fixture(scope="module")
def own_neo4j(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnNeo4j]:
    server = OwnNeo4j(tmp_path_factory.mktemp("own-neo4j"))
    try:
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- Neo4j down at start


def _get(url: str, key: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.neo4j
def test_app_starts_while_neo4j_is_down_and_recovers_without_restart(
    own_neo4j: OwnNeo4j, tmp_path: Path
) -> None:
    from ringscope.api.auth import add_user

    if own_neo4j.running:
        own_neo4j.stop()
    key = add_user(tmp_path / "users.json", "ana", "investigator")
    port = _free_port()
    env = {
        **os.environ,
        "RINGSCOPE_USERS_FILE": str(tmp_path / "users.json"),
        "RINGSCOPE_WORK_DIR": str(tmp_path / "var"),
        "RINGSCOPE_COLUMNAR_PATH": str(tmp_path / "events.duckdb"),
    }
    for name in ("RINGSCOPE_STORE", "NEO4J_PASSWORD", "NEO4J_USER"):
        env.pop(name, None)
    store = own_neo4j.uri.replace("bolt://", "neo4j://")
    cmd = [sys.executable, "-m", "ringscope.cli", "serve", "--store", store, "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    app = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{base}/health", 60)
        status, body = _get(f"{base}/health")
        assert status == 503, body
        assert body["status"] == "unhealthy" and body["store"] == store
        assert "unavailable" in body["detail"] and f"127.0.0.1:{own_neo4j.port}" in body["detail"]
        status, body = _get(f"{base}/api/runs", key)
        assert status == 503, body
        assert body["error"] == "StoreError" and "unavailable" in body["detail"]

        own_neo4j.start()
        deadline = time.monotonic() + 30
        while (status := _get(f"{base}/health")[0]) != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert status == 200
        status, body = _get(f"{base}/api/runs", key)
        assert status == 200 and body == []
        assert app.poll() is None  # the same process all along
    finally:
        app.terminate()
        app.wait(30)
        log.close()
    out = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in out, out
    assert "is unavailable" in out  # the failed opening is logged, not raised


# --------------------------------------------------------------------------- Neo4j killed


def _expected_graph(data: Path) -> dict[str, int]:
    """Nodes and relationships the export implies, computed from its files alone."""
    t = {name: read_table(data / f"{name}.csv").frame for name in TABLES}
    orders, ident = t["orders"], t["identifiers"]
    return {
        "Account": len(t["accounts"]),
        "Stream": len(t["streams"]),
        "Order": len(orders),
        "Product": orders["product_id"].nunique(),
        "Identifier": len(ident[["kind", "value"]].drop_duplicates()),
        "HOSTED": len(t["streams"]),
        "ENGAGED": len(t["engagements"][["account_id", "stream_id"]].drop_duplicates()),
        "FOLLOWS": len(t["follows"]),
        "PLACED": len(orders),
        "FOR": len(orders),
        "SELLS": len(orders[["seller_id", "product_id"]].drop_duplicates()),
        "AFFILIATE_OF": len(t["affiliations"]),
        "USES": len(ident),
    }


@pytest.mark.neo4j
def test_neo4j_killed_mid_load_then_rerun_after_restart(
    own_neo4j: OwnNeo4j, tmp_path: Path
) -> None:
    data = tmp_path / "export"
    generate(data, events=10_000, seed=5)
    check = check_export(data)
    assert check.rejected == 0 and not check.failed
    expected_rows = {name: t.loaded for name, t in check.tables.items()}
    assert expected_rows["engagements"] == 10_000

    if not own_neo4j.running:
        own_neo4j.start()
    columnar = tmp_path / "events.duckdb"
    store = Neo4jStore(own_neo4j.uri, auth=None, columnar_path=columnar, max_retry_time=2.0)
    assert store.counts()["accounts"] == 0 and store.graph_counts()["Account"] == 0
    batch = 2_000
    killed = threading.Event()

    def kill_when_engagements_start(table: str, rows: int) -> None:
        # The first engagement batch is in; kill the server while the next one is on its
        # way (in a thread: wherever the load happens to be at that instant).
        if table == "engagements" and rows >= batch and not killed.is_set():
            killed.set()
            threading.Thread(target=own_neo4j.kill).start()

    try:
        with pytest.raises(StoreError) as failed:
            load_export(
                store,
                data,
                batch_rows=batch,
                rejects_dir=tmp_path / "rejects",
                progress=kill_when_engagements_start,
            )
    finally:
        store.close()
    assert killed.is_set()
    message = " ".join(str(failed.value).split())
    assert message.startswith("the store failed while loading engagements from"), message
    assert f"Neo4j at {own_neo4j.uri} is unreachable" in message, message
    assert "run the same load again" in message, message

    own_neo4j.local.process.wait(30)  # type: ignore[union-attr]
    own_neo4j.start()  # the same data folder, recovered from its transaction logs
    store = Neo4jStore(own_neo4j.uri, auth=None, columnar_path=columnar, max_retry_time=10.0)
    try:
        again = load_export(store, data, batch_rows=batch, rejects_dir=tmp_path / "rejects")
        assert not again.failed and again.rejected == 0
        assert store.counts() == expected_rows
        graph = store.graph_counts()
        expected_graph = _expected_graph(data)
        assert {k: graph[k] for k in expected_graph} == expected_graph
        # Nothing new on a third load: every row is a duplicate.
        third = load_export(store, data, batch_rows=batch, rejects_dir=tmp_path / "rejects")
        assert sum(t.loaded for t in third.tables.values()) == 0
        assert store.counts() == expected_rows and store.graph_counts() == graph
    finally:
        store.close()


# --------------------------------------------------------------------------- embedded store


def _env(cwd: Path) -> dict[str, str]:
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(cwd / "var"), "COLUMNS": "200"}
    env.pop("RINGSCOPE_STORE", None)
    return env


def _rs(*args: str | Path, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringscope.cli", *map(str, args)],
        cwd=cwd,
        env=_env(cwd),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def _snapshot(path: Path) -> tuple[object, ...]:
    with EmbeddedStore(path) as store:
        return (*contents(store), [r.load_id for r in store.loads()])


def _loaded_and_next(
    tmp_path: Path, *, events: int, seed: int
) -> tuple[Path, tuple[object, ...], Path, dict[str, int]]:
    """A store holding the small export, its snapshot, a generated export to load
    next and the rows each of its tables will add."""
    db = tmp_path / "store.duckdb"
    assert _rs("load", SMALL, "--store", db, cwd=tmp_path).returncode == 0
    big = tmp_path / "big"
    generate(big, events=events, seed=seed)
    rows = {name: t.loaded for name, t in check_export(big).tables.items()}
    return db, _snapshot(db), big, rows


def test_disk_full_during_load_fails_clearly_and_leaves_the_store_intact(tmp_path: Path) -> None:
    """The load runs with a file size limit (RLIMIT_FSIZE) just above the store's size:
    once the store or its write-ahead log would grow past it, every write fails with
    EFBIG, as on a full disk. Batches committed before stay, whole; the failing one
    leaves nothing; the store opens again and, with room, the same load completes with
    every row of the export once."""
    db, before, big, rows = _loaded_and_next(tmp_path, events=20_000, seed=2)
    limit = db.stat().st_size + (256 << 10)

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = _rs("load", big, "--store", db, cwd=tmp_path, preexec_fn=limit_file_size)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    error = " ".join(done.stderr[done.stderr.index("error:") :].split())
    assert "File too large" in error and "disk is full" in error, error
    assert "run the load again" in error, error

    after = _snapshot(db)
    counts, old = after[0], before[0]
    assert isinstance(counts, dict) and isinstance(old, dict)
    # One batch per table here: each table has all of its new rows or none.
    assert all(counts[t] in (old[t], old[t] + rows[t]) for t in TABLES), (counts, rows)
    assert after[3] == before[3]  # the failed load is not recorded as a load
    # With room again, the same load completes: nothing lost, nothing twice.
    assert _rs("load", big, "--store", db, cwd=tmp_path).returncode == 0
    with EmbeddedStore(db) as store:
        assert store.counts() == {t: old[t] + rows[t] for t in TABLES}


#: Linux capabilities that let root write where permissions say no.
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3
_PR_CAPBSET_DROP = 24


def _drop_root_override() -> None:
    """In the child, before it runs ringscope: drop the capabilities that let root
    ignore file permissions, so that root is held to the owner's permission bits."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.parametrize("file_mode", [0o444, 0o644], ids=["file-read-only", "file-writable"])
def test_read_only_store_folder_fails_clearly_and_leaves_the_store_intact(
    tmp_path: Path, file_mode: int
) -> None:
    """The store's folder cannot be written (mode 555), nor, in one case, its file
    (444): opening or the first commit (its write-ahead log) fails. Root ignores
    permissions, so for root the load runs without the capabilities that allow it."""
    home = tmp_path / "store"
    home.mkdir()
    db = home / "store.duckdb"
    assert _rs("load", SMALL, "--store", db, cwd=tmp_path).returncode == 0
    new = tmp_path / "new"
    generate(new, events=10_000, seed=4)
    before = _snapshot(db)
    db.chmod(file_mode)
    home.chmod(0o555)
    as_owner = {"preexec_fn": _drop_root_override} if os.geteuid() == 0 else {}
    try:
        done = _rs("load", new, "--store", db, cwd=tmp_path, **as_owner)
    finally:
        home.chmod(0o755)
        db.chmod(0o644)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    error = done.stderr[done.stderr.index("error:") :]
    assert str(db) in error.replace("\n", ""), error
    assert "Permission denied" in error and "cannot be written" in error, error
    assert _snapshot(db) == before


# --------------------------------------------------------------------------- an interrupted load


def test_an_interrupted_load_takes_back_the_table_it_was_loading(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) in the middle of ``ringscope load``: the command ends without a
    traceback, every table holds all of its new rows or none, and the load is not
    recorded; loaded again, the export completes."""
    db, before, big, rows = _loaded_and_next(tmp_path, events=300_000, seed=3)
    process = subprocess.Popen(
        [sys.executable, "-m", "ringscope.cli", "load", str(big), "--store", str(db)],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The load takes a couple of seconds here, so a fixed pause could outlast it. It is
    # interrupted as soon as its lock says "loading" and its first batches are in the
    # write-ahead log: in the middle of a table, whichever the machine's speed.
    lock, wal = Path(f"{db}.job.lock"), Path(f"{db}.wal")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        loading = lock.exists() and "loading" in lock.read_text(errors="replace")
        if loading and wal.exists() and wal.stat().st_size > (1 << 20):
            break
        time.sleep(0.005)
    assert process.poll() is None, "the load ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1, stderr
    assert "Traceback" not in stderr, stderr
    after = _snapshot(db)
    counts, old = after[0], before[0]
    assert isinstance(counts, dict) and isinstance(old, dict)
    assert all(counts[t] in (old[t], old[t] + rows[t]) for t in TABLES), (counts, rows)
    assert counts != {t: old[t] + rows[t] for t in TABLES}  # it was interrupted
    assert after[3] == before[3]  # no load recorded
    assert _rs("load", big, "--store", db, cwd=tmp_path).returncode == 0
    with EmbeddedStore(db) as store:
        assert store.counts() == {t: old[t] + rows[t] for t in TABLES}
