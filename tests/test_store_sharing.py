"""The investigator app and the jobs share one embedded store (ringscope.graphs.sharing).

Real processes throughout: ``ringscope serve`` in a subprocess holds the DuckDB file,
investigators read and decide over HTTP, and ``ringscope job`` / ``ringscope detect``
run in subprocesses. A job asks the app to step aside; the app answers 503 with
``Retry-After`` while the job has the file, has it back while the job's detectors run,
and serves the job's run afterwards without a restart. Every decision the app
acknowledged is kept once (with its audit entry), every one it refused is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.sharing import pending, request_path

pytestmark = pytest.mark.timeout(600)

RINGSCOPE = [sys.executable, "-m", "ringscope.cli"]
#: Seconds between two looks at ``/health`` (the app steps aside for a second or less).
POLL_S = 0.02
#: Seconds between two reads of the queue, and between two decisions posted.
BUSY_S = 0.1


# ------------------------------------------------------------------ the marketplace


@dataclass(frozen=True)
class Market:
    store: Path  # a store holding day 1 and one run; copy it before use
    day2: Path  # the whole export: day 1 and the rest of the engagements and orders


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    """Day 1 is two thirds of a generated marketplace's engagements and orders, loaded
    and detected once; day 2 is the whole marketplace (the job loads the rest)."""
    from ringscope.jobs.detect import run_detection
    from ringscope.loaders.pipeline import load_export
    from ringscope.loaders.synthetic import generate

    root = tmp_path_factory.mktemp("sharing")
    generate(root / "day2", events=20_000, seed=31, fmt="csv")
    shutil.copytree(root / "day2", root / "day1")
    for table in ("engagements", "orders"):
        rows = pd.read_csv(root / "day1" / f"{table}.csv", dtype=str, keep_default_na=False)
        rows.iloc[: len(rows) * 2 // 3].to_csv(root / "day1" / f"{table}.csv", index=False)
    with EmbeddedStore(root / "market.duckdb") as store:
        load_export(store, root / "day1", rejects_dir=root / "rejects")
        run_detection(store)
    return Market(root / "market.duckdb", root / "day2")


# ------------------------------------------------------------------ the app, as a process


@dataclass
class Served:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    store: Path
    env: dict[str, str]
    cwd: Path
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, user: str = "ana", **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[user]}", **kw.pop("headers", {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kw)

    def run(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
        """A ringscope command on the served store, to its end."""
        return subprocess.run(
            [*RINGSCOPE, *map(str, args)], cwd=self.cwd, env={**self.env, **env},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    def start(self, *args: str | Path) -> subprocess.Popen[str]:
        """A ringscope command on the served store, started."""
        return subprocess.Popen(
            [*RINGSCOPE, *map(str, args)], cwd=self.cwd, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(market: Market, tmp: Path) -> Iterator[Served]:
    """``ringscope serve`` on a copy of the market's store, with an investigator
    (``ana``) and an admin (``root``)."""
    from ringscope.api.auth import add_user

    store = tmp / "shared.duckdb"
    shutil.copy(market.store, store)
    users = tmp / "users.json"
    keys = {"ana": add_user(users, "ana", "investigator"), "root": add_user(users, "root", "admin")}
    env = {**os.environ, "RINGSCOPE_USERS_FILE": str(users), "RINGSCOPE_WORK_DIR": str(tmp / "var")}
    for name in ("RINGSCOPE_STORE", "RINGSCOPE_STORE_WAIT_S"):
        env.pop(name, None)
    port = _free_port()
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*RINGSCOPE, "serve", "--store", str(store), "--port", str(port)],
            cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}", proc, log, store, env, tmp, keys)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(served.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the app did not answer within 60 s"
            time.sleep(0.1)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text


@dataclass(frozen=True)
class Answer:
    at: float
    path: str
    status: int
    retry_after: str | None
    body: dict[str, Any]


class Poller:
    """Threads that ask the app for ``paths`` (every :data:`POLL_S` seconds for
    ``/health``, :data:`BUSY_S` for others) and keep every answer, until stopped; with
    ``finding``, one also posts a decision on it every :data:`BUSY_S` seconds (notes
    ``during-<n>``)."""

    def __init__(self, served: Served, paths: list[str], finding: str | None = None) -> None:
        self.served = served
        self.answers: list[Answer] = []
        self.posted: dict[str, int] = {}  # note -> status
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._get, args=(p,)) for p in paths]
        if finding is not None:
            self._threads.append(threading.Thread(target=self._post, args=(finding,)))

    def __enter__(self) -> Poller:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _keep(self, path: str, r: httpx.Response) -> None:
        try:
            body = r.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {"items": body}
        self.answers.append(
            Answer(time.monotonic(), path, r.status_code, r.headers.get("retry-after"), body)
        )

    def _get(self, path: str) -> None:
        pause = POLL_S if path == "/health" else BUSY_S
        with self.served.client() as c:
            while not self._stop.wait(pause):
                try:
                    self._keep(path, c.get(path))
                except httpx.HTTPError as e:
                    self.errors.append(f"GET {path}: {e!r}")

    def _post(self, finding: str) -> None:
        with self.served.client() as c:
            n = 0
            while not self._stop.wait(BUSY_S):
                note = f"during-{n}"
                n += 1
                try:
                    r = c.post(
                        f"/api/findings/{finding}/decisions",
                        json={"decision": "escalated", "note": note},
                    )
                except httpx.HTTPError as e:
                    self.errors.append(f"POST {note}: {e!r}")
                    continue
                self.posted[note] = r.status_code
                self._keep("POST decisions", r)

    def of(self, path: str) -> list[Answer]:
        return [a for a in self.answers if a.path == path]


def stretches(answers: list[Answer]) -> int:
    """How many times the answers went from served to 503 (the app stepped aside)."""
    count, away = 0, False
    for a in sorted(answers, key=lambda a: a.at):
        if a.status == 503 and not away:
            count += 1
        away = a.status == 503
    return count


def check_answers(poller: Poller) -> None:
    """Every answer was served or a 503 that says the app stands aside for a job."""
    assert poller.errors == []
    for a in poller.answers:
        if a.status == 503:
            assert a.retry_after is not None and int(a.retry_after) > 0, a
            if a.path == "/health":
                assert a.body["status"] == "away", a
            else:
                assert a.body["error"] == "StoreAway", a
            assert "the nightly job is writing to the store" in a.body["detail"], a
            assert "the app is back when it finishes" in a.body["detail"], a
        else:
            assert a.status in (200, 201), a


def last_json(p: subprocess.CompletedProcess[str] | tuple[str, str]) -> dict[str, Any]:
    out = p.stdout if isinstance(p, subprocess.CompletedProcess) else p[0]
    doc: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return doc


def decide(served: Served, finding: str, note: str) -> None:
    with served.client() as c:
        r = c.post(
            f"/api/findings/{finding}/decisions", json={"decision": "escalated", "note": note}
        )
    assert r.status_code == 201, r.text


def wait_until_served(served: Served, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while (status := httpx.get(served.url + "/health", timeout=5).status_code) != 200:
        assert time.monotonic() < deadline, f"the app is not back ({status})"
        time.sleep(0.05)


# ------------------------------------------------------------------ the tests


def test_the_app_steps_aside_for_a_job_and_detect_and_serves_their_runs(
    market: Market, tmp_path: Path
) -> None:
    with serving(market, tmp_path) as app:
        with app.client(headers={"Accept": "text/html"}) as c:
            assert c.get("/").status_code == 200  # the app holds the file
        with app.client() as c:
            runs = c.get("/api/runs").json()
            top = c.get("/api/findings", params={"limit": 1}).json()["items"][0]
        decide(app, top["id"], "before")

        with Poller(app, ["/health", "/api/findings"], finding=top["id"]) as job_poll:
            job = app.run("job", market.day2, "--store", app.store, "--quiet")
        assert job.returncode in (0, 3), job.stderr
        summary = last_json(job)
        assert summary["status"] == "succeeded" and summary["rows_loaded"] > 0
        check_answers(job_poll)
        # away while it loaded, back while it detected, away while it saved
        assert stretches(job_poll.of("/health")) >= 2, job_poll.of("/health")
        assert any(a.status == 503 for a in job_poll.of("/api/findings"))
        assert any(a.status == 200 for a in job_poll.of("/api/findings"))

        with app.client() as c:  # the job's run, without a restart
            now = c.get("/api/runs").json()
            assert now[0]["id"] == summary["run_id"] != runs[0]["id"]
            assert c.get("/api/findings").json()["run_id"] == summary["run_id"]
        with app.client(headers={"Accept": "text/html"}) as c:
            page = c.get("/")
            assert page.status_code == 200 and summary["run_id"] in page.text

        with Poller(app, ["/health"]) as detect_poll:
            detect = app.run("detect", "--store", app.store)
        assert detect.returncode == 0, detect.stderr
        detected = detect.stdout.strip().splitlines()[0]
        check_answers(detect_poll)
        with app.client() as c:
            assert c.get("/api/runs").json()[0]["id"] == detected
        decide(app, top["id"], "after")
        with app.client("root") as c:
            audited = c.get("/api/audit", params={"action": "decision", "limit": 1000}).json()

    log = app.log.read_text()
    assert "stepping aside for ringscope job" in log
    assert "stepping aside for ringscope detect" in log
    with EmbeddedStore(app.store) as store:
        notes = [d.note for d in store.decisions()]
    assert notes.count("before") == 1 and notes.count("after") == 1
    # acknowledged once each; refused ones were not recorded, not even in part
    kept = {n for n, status in job_poll.posted.items() if status == 201}
    refused = {n for n, status in job_poll.posted.items() if status == 503}
    assert set(job_poll.posted) == kept | refused and kept and refused
    assert sorted(n for n in notes if n.startswith("during-")) == sorted(kept)
    audited_notes = [e["detail"]["note"] for e in audited]
    assert sorted(audited_notes) == sorted(notes)


def test_pages_say_the_app_is_away_and_the_app_comes_back_after_a_killed_job(
    market: Market, tmp_path: Path
) -> None:
    with serving(market, tmp_path) as app:
        with app.client() as c:
            before = c.get("/api/runs").json()[0]["id"]
        job = app.start("job", market.day2, "--store", app.store, "--quiet")
        page: httpx.Response | None = None
        form: httpx.Response | None = None
        with app.client(headers={"Accept": "text/html"}) as c:
            deadline = time.monotonic() + 120
            while page is None or form is None:
                assert job.poll() is None, job.communicate()
                assert time.monotonic() < deadline, "the app never stepped aside"
                r = c.get("/")
                if r.status_code == 503 and page is None:
                    page = r
                    form = c.post(
                        "/findings/x/decisions",
                        content="decision=confirmed&note=late",
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                time.sleep(POLL_S)
        # killed while it has the store, or has asked for it (its request is posted)
        job.send_signal(signal.SIGKILL)
        job.communicate(timeout=30)
        assert job.returncode == -signal.SIGKILL

        assert page.headers["retry-after"] == "10" and "text/html" in page.headers["content-type"]
        assert '<meta http-equiv="refresh" content="10">' in page.text
        assert "The nightly job is writing to the store" in page.text
        assert form.status_code == 503 and "was not recorded" in form.text
        assert "refresh" not in form.text  # a form is not sent again by itself

        wait_until_served(app)
        with app.client() as c:
            r = c.get("/api/findings")
            assert r.status_code == 200 and r.json()["run_id"] == before
        assert pending(app.store) is None and request_path(app.store).stat().st_size == 0

        # and the next job runs, with the app open
        again = app.run("job", market.day2, "--store", app.store, "--quiet")
        assert again.returncode in (0, 3), again.stderr
        with app.client() as c:
            assert c.get("/api/runs").json()[0]["id"] == last_json(again)["run_id"]
    assert "stepping aside for ringscope job" in app.log.read_text()


def test_a_second_job_is_still_refused_at_once_with_the_holders_name(
    market: Market, tmp_path: Path
) -> None:
    from ringscope.jobs.lock import lock_path

    with serving(market, tmp_path) as app:
        with app.client() as c:
            assert c.get("/api/findings").status_code == 200
        first = app.start("job", market.day2, "--store", app.store, "--quiet")
        try:
            lock = lock_path(str(app.store), ".")
            deadline = time.monotonic() + 120
            while not (lock.exists() and lock.stat().st_size > 0):
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
            t0 = time.monotonic()
            second = app.run("job", market.day2, "--store", app.store, "--quiet")
            took = time.monotonic() - t0
        finally:
            out = first.communicate(timeout=300)
        assert second.returncode == 1
        assert "another ringscope job is running" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert took < 30  # refused, not made to wait for the store
        assert first.returncode in (0, 3), out[1]
        with app.client() as c:
            assert c.get("/api/runs").json()[0]["id"] == last_json(out)["run_id"]


def test_a_holder_that_does_not_step_aside_fails_the_job_naming_it(
    market: Market, tmp_path: Path
) -> None:
    store_path = tmp_path / "held.duckdb"
    shutil.copy(market.store, store_path)
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "var"), "RINGSCOPE_STORE_WAIT_S": "1"}
    with EmbeddedStore(store_path) as store:  # this test's process: no app, never steps aside
        t0 = time.monotonic()
        p = subprocess.run(
            [*RINGSCOPE, "detect", "--store", str(store_path)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        took = time.monotonic() - t0
        runs = len(store.runs())
    assert p.returncode == 1
    assert f"pid {os.getpid()}" in p.stderr and "did not step aside within 1 s" in p.stderr
    assert 1 <= took < 60
    assert runs == 1 and pending(store_path) is None  # nothing run; the request withdrawn
    assert request_path(store_path).stat().st_size == 0


def test_a_request_stands_while_its_writer_lives(tmp_path: Path) -> None:
    """The request is read from a live writer; a killed writer's one is stale and emptied."""
    path = tmp_path / "s.duckdb"
    script = (
        "import sys, time\n"
        "from ringscope.graphs.sharing import _Asking\n"
        f"a = _Asking({str(path)!r}, 'ringscope load')\n"
        "a.post(time.monotonic() + 10)\n"
        "print('posted', flush=True)\n"
        "time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "posted"
        request = pending(path)
        assert request is not None
        assert (request.pid, request.what) == (writer.pid, "ringscope load")
        assert pending(path) == request  # looking does not take it away
    finally:
        writer.kill()
        writer.wait()
    assert request_path(path).stat().st_size > 0  # what the killed writer left
    assert pending(path) is None
    assert request_path(path).stat().st_size == 0


def test_a_store_reopened_reads_what_another_process_wrote(market: Market, tmp_path: Path) -> None:
    """The job's store object closes its file while it detects and opens it again: its
    read cursors are new and the data is read afresh."""
    path = tmp_path / "r.duckdb"
    shutil.copy(market.store, path)
    with EmbeddedStore(path) as store:
        assert len(store.runs()) == 1
        store.close()
        script = (
            "from ringscope.graphs.embedded import EmbeddedStore\n"
            f"s = EmbeddedStore({str(path)!r})\n"
            "r = s.latest_run()\n"
            "s.fail_run(r.id, 'marked by another process')\n"
            "s.close()\n"
        )
        subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
        store.reopen()
        assert [r.status for r in store.runs()] == ["failed"]


def test_closing_stops_a_read_under_way_and_frees_the_file(tmp_path: Path) -> None:
    """The app closes its file for a job while a thread of its own may still read (a
    graph index built in the background): the read is interrupted, the file freed."""
    from ringscope.errors import StoreError

    path = tmp_path / "busy.duckdb"
    store = EmbeddedStore(path)
    failed: list[BaseException] = []
    started = threading.Event()

    def read_forever() -> None:
        try:
            with store._reading("a long read") as con:  # a read of this thread's own cursor
                started.set()
                con.execute("SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b")
        except StoreError as e:
            failed.append(e)

    reader = threading.Thread(target=read_forever)
    reader.start()
    assert started.wait(30)
    time.sleep(0.3)  # under way
    store.close()
    reader.join(30)
    assert not reader.is_alive() and len(failed) == 1
    opened = subprocess.run(
        [sys.executable, "-c", f"from ringscope.graphs.embedded import EmbeddedStore as S; "
         f"S({str(path)!r}).close(); print('opened')"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert opened.stdout.strip() == "opened", opened.stderr


def test_server_stores_are_not_watched(tmp_path: Path) -> None:
    """Neo4j shares itself: no step-aside for a server store (here one that is down)."""
    from ringscope.api.lazy_store import ReopeningStore
    from ringscope.graphs.sharing import shared_path

    uri = f"neo4j://127.0.0.1:{_free_port()}"
    assert shared_path(uri) is None and shared_path(":memory:") is None
    assert shared_path(f"duckdb://{tmp_path}/a.duckdb") == f"{tmp_path}/a.duckdb"
    store = ReopeningStore(uri)
    try:
        assert store.admit() is None and store.away() is None
        error = store.unavailable()
        assert error is not None and "unavailable" in str(error)
        assert not [t for t in threading.enumerate() if t.name == "ringscope-step-aside"]
    finally:
        store.close()
