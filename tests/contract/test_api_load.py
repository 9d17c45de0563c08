"""A bounded load test on loopback, on both stores: concurrent investigators read the
queue, clusters and neighbourhoods and record decisions. Zero errors; every decision
recorded exactly once (store and audit log); p95 reported, not asserted (speed targets
live in ``benchmarks/load_api.py``, the long form of this test)."""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.app import ServedApp, auth
from helpers.stores import fill_store

from ringscope.graphs.store import GraphStore

pytestmark = pytest.mark.timeout(600)

CLIENTS = 20
ROUNDS = 2  # each client: ROUNDS x (queue, cluster, neighbourhood, decision)
USERS = ("test-investigator", "inspector-7", "analyst-3", "form-user")


@pytest.fixture
def served(store: GraphStore, tmp_path: Path) -> Iterator[ServedApp]:
    """The app on ``store`` (each kind in turn) holding a small generated marketplace."""
    fill_store(store, tmp_path, events=3000, seed=13)
    with ServedApp(None, store=store) as app:
        yield app


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
