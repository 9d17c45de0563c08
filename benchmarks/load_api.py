"""The API under a mixed load of concurrent investigators, the long form of
``tests/test_api_load.py``: every client reads the queue, a cluster and a member's
neighbourhood and records a decision, round after round, on loopback.

Usage::

    .venv/bin/python benchmarks/load_api.py                         # embedded store
    .venv/bin/python benchmarks/load_api.py --clients 50 --rounds 20
    .venv/bin/python benchmarks/load_api.py --store both            # also a local Neo4j
    .venv/bin/python benchmarks/load_api.py --neo4j bolt://host:7687

A generated marketplace (cached under ``--cache``) is loaded into a fresh store and
detected once, outside the timing; the app is served by ``ringscope serve`` in its own
process with API keys made by ``ringscope.api.auth.add_user``, and given
``--warmup-seconds`` (default 30) of the same mixed load (but one decision per client),
unmeasured, before the measured rounds (a long-running app and database are warm).
Checked: zero errors, and every decision recorded exactly once (in the store and in the
audit log). Printed
per store and endpoint: requests, p50, p95, max, requests per second and the load
average; per store, the CPU milliseconds per request of the app's process, of a
Neo4j started here (or named by ``--neo4j-pid``) and of this load generator (one
``http.client`` connection per client: httpx cost ~4 ms of CPU per request on the
cores the app shares with it). Target: p95 <= 300 ms with 20
clients (a busy machine inflates every figure).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import DEFAULT_CACHE, cpu_seconds, ensure_market, load_average

from ringscope.api.auth import add_user
from ringscope.graphs import open_store
from ringscope.jobs.detect import run_detection
from ringscope.loaders.pipeline import load_export
from ringscope.settings import Settings, get_settings

TARGET_P95_MS = 300.0
ENDPOINTS = ("queue", "cluster", "neighbourhood", "decision")


def serve(uri: str, users: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``ringscope serve`` in its own process, its log in ``log`` (a pipe that nobody
    reads fills up and then blocks every thread of the app that logs)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "RINGSCOPE_USERS_FILE": str(users)}
    cmd = [sys.executable, "-m", "ringscope.cli", "serve", "--store", uri, "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    err = log.read_text(errors="replace")[-4000:]
    raise SystemExit(f"the app did not start:\n{err}")


def bench_store(
    name: str,
    uri: str,
    args: argparse.Namespace,
    data: Path,
    work: Path,
    db_pid: int | None = None,
) -> list[list[str]]:
    """The rows of one store; ``db_pid``: the database server's process (its CPU per
    request is reported beside the app's)."""
    store = open_store(uri, settings=Settings())  # RINGSCOPE_COLUMNAR_PATH as set now
    try:
        if store.latest_run() is None:
            load_export(store, data)
            run_detection(store)
    finally:
        store.close()
    users = work / f"users-{name}.json"
    keys = [add_user(users, f"bench-{i}", "investigator") for i in range(min(args.clients, 10))]
    log = work / f"serve-{name}.log"
    proc, url = serve(uri, users, log)
    try:
        admin = {"Authorization": f"Bearer {keys[0]}"}
        queue = httpx.get(f"{url}/api/findings?limit=50", headers=admin, timeout=120).json()
        findings = [f["id"] for f in queue["items"]]
        members = {
            f: httpx.get(f"{url}/api/findings/{f}", headers=admin, timeout=120).json()["members"]
            for f in findings[:20]
        }
        findings = list(members)
        timings: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
        errors: list[str] = []
        notes: list[str] = []
        lock = threading.Lock()
        barrier = threading.Barrier(args.clients)
        tag = f"bench {time.time_ns()}"
        rounds = args.rounds
        deadline: float | None = None

        def client(n: int) -> None:
            # http.client, as api.py: httpx cost ~4 ms of CPU per request on the cores
            # the app shares with this load generator
            headers = {"Authorization": f"Bearer {keys[n % len(keys)]}"}
            h = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                barrier.wait()
                k = 0
                while k < rounds if deadline is None else time.monotonic() < deadline:
                    f = findings[(n + k) % len(findings)]
                    m = members[f][k % len(members[f])]["account_id"]
                    note = f"{tag} {n}-{k}"
                    decision = json.dumps({"decision": "escalated", "note": note}).encode()
                    for name, method, path, body in (
                        ("queue", "GET", "/api/findings", None),
                        ("cluster", "GET", f"/api/findings/{f}", None),
                        ("neighbourhood", "GET", f"/api/entities/Account:{m}/neighbourhood", None),
                        ("decision", "POST", f"/api/findings/{f}/decisions", decision),
                    ):  # fmt: skip
                        if name == "decision" and deadline is not None and k > 0:
                            continue  # warming up: one decision per client (see below)
                        sent = dict(headers)
                        if body is not None:
                            sent["Content-Type"] = "application/json"
                        t0 = time.perf_counter()
                        h.request(method, path, body=body, headers=sent)
                        r = h.getresponse()
                        text = r.read()
                        dt = (time.perf_counter() - t0) * 1000
                        with lock:
                            timings[name].append(dt)
                            if r.status != (201 if method == "POST" else 200):
                                errors.append(f"{name} {r.status} {text[:200]!r}")
                            elif name == "decision":
                                notes.append(note)
                    k += 1
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    errors.append(f"client {n}: {type(e).__name__}: {e}")
            finally:
                h.close()

        port = int(url.rsplit(":", 1)[1])

        def run_clients() -> None:
            threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        if args.warmup_seconds > 0:
            # the same mix, unmeasured: a long-running app and database server have their
            # code compiled (a fresh Neo4j JVM takes thousands of requests to reach its
            # steady CPU per request). One decision per client (under another tag): more
            # would pile onto the same 20 cases, hundreds each, which no case gathers,
            # and every view of a case reads its decisions.
            tag, deadline = f"warm-up {time.time_ns()}", time.monotonic() + args.warmup_seconds
            run_clients()
            warm = sum(len(t) for t in timings.values())
            print(f"[{name}] warm-up: {warm} requests, {len(errors)} errors", file=sys.stderr)
            if errors:
                print(f"[{name}] warm-up: e.g. {errors[0]}", file=sys.stderr)
            for t in timings.values():
                t.clear()
            errors.clear()
            notes.clear()
            tag, deadline = f"bench {time.time_ns()}", None
        cpu0 = cpu_seconds(proc.pid), cpu_seconds(db_pid or -1)
        own0 = time.process_time()
        t0 = time.perf_counter()
        run_clients()
        wall = time.perf_counter() - t0
        n_requests = max(sum(len(t) for t in timings.values()), 1)
        app_cpu, db_cpu = (
            (cpu_seconds(pid) - c0) * 1000 / n_requests
            for pid, c0 in zip((proc.pid, db_pid or -1), cpu0, strict=True)
        )
        own_cpu = (time.process_time() - own0) * 1000 / n_requests
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    store = open_store(uri, settings=Settings())  # RINGSCOPE_COLUMNAR_PATH as set now
    try:
        stored = [d.note for d in store.decisions() if d.note.startswith(tag)]
        audit = store.audit_log(action="decision", limit=1_000_000)
        audited = [str(e["detail"].get("note")) for e in audit]  # type: ignore[attr-defined]
        audited = [n for n in audited if n.startswith(tag)]
    finally:
        store.close()
    exact = sorted(stored) == sorted(notes) == sorted(audited)
    load = f"{os.getloadavg()[0]:.1f}"
    rows = []
    for endpoint, ts in timings.items():
        q = statistics.quantiles(ts, n=100, method="inclusive") if len(ts) > 1 else ts * 99
        rows.append(
            [
                "",
                endpoint,
                str(len(ts)),
                f"{q[49]:.0f}",
                f"{q[94]:.0f}",
                f"{max(ts):.0f}",
                f"{len(ts) / wall:.0f}",
                "ok" if q[94] <= TARGET_P95_MS else "OVER",
                load,
            ]
        )
    summary = [
        name,
        f"{args.clients} clients x {args.rounds} rounds",
        str(sum(len(t) for t in timings.values())),
        f"errors {len(errors)}",
        f"decisions exactly once: {'yes' if exact and not errors else 'NO'}",
        f"{wall:.1f} s",
        f"app CPU {app_cpu:.1f} ms/req",
        "" if db_pid is None else f"db CPU {db_cpu:.1f} ms/req",
        f"client CPU {own_cpu:.1f} ms/req",
    ]
    if errors:
        print(f"[{name}] {len(errors)} errors, e.g. {errors[0]}", file=sys.stderr)
    logged = log.read_text(errors="replace").splitlines()
    if logged:
        print(
            f"[{name}] the app logged {len(logged)} lines, e.g. {logged[0][:300]}", file=sys.stderr
        )
    return [summary, *rows]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rounds", type=int, default=10, help="per client: queue, cluster, ...")
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=30.0,
        help="seconds of the same mixed load, unmeasured, before the measured rounds (0: none)",
    )
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--store", choices=("embedded", "neo4j", "both"), default="embedded")
    p.add_argument("--neo4j", metavar="URI", help="a Neo4j server (implies --store both)")
    p.add_argument(
        "--neo4j-pid", type=int, metavar="PID", help="that server's process, for its CPU time"
    )
    args = p.parse_args()
    if args.neo4j and args.store == "embedded":
        args.store = "both"
    data, _ = ensure_market(args.cache, args.events, args.seed)
    work = Path(tempfile.mkdtemp(prefix="ringscope-load-bench-"))
    rows: list[list[str]] = []
    try:
        if args.store in ("embedded", "both"):
            rows += bench_store("embedded", str(work / "bench.duckdb"), args, data, work)
        if args.store in ("neo4j", "both"):
            os.environ["RINGSCOPE_COLUMNAR_PATH"] = str(work / "events.duckdb")
            get_settings.cache_clear()  # the settings were read with the embedded store
            if args.neo4j:
                rows += bench_store("neo4j", args.neo4j, args, data, work, args.neo4j_pid)
            else:
                from ringscope.graphs.neo4j_local import start_local_neo4j

                print("[neo4j] starting a local Neo4j 5.26 ...", file=sys.stderr)
                with start_local_neo4j(work, port=0, heap="1g") as local:
                    rows += bench_store("neo4j", local.uri, args, data, work, local.process.pid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = ["store", "endpoint", "requests", "p50 ms", "p95 ms", "max ms", "req/s", "p95<=300"]
    head += ["load 1m / client"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"mixed load: {args.clients} clients, {args.events} events, seed {args.seed}")
    print(load_average())
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    if any("NO" in r[4] for r in rows if r[0]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
