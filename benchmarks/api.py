"""API latency under concurrent investigators: the queue, a cluster page, a neighbourhood.

Usage::

    .venv/bin/python benchmarks/api.py                          # embedded store
    .venv/bin/python benchmarks/api.py --events 200000 --clients 20 --requests 30
    .venv/bin/python benchmarks/api.py --store neo4j            # a local Neo4j, started here
    .venv/bin/python benchmarks/api.py --store both             # embedded, then Neo4j
    .venv/bin/python benchmarks/api.py --neo4j bolt://host:7687 # also an existing Neo4j

A generated marketplace (cached under ``--cache``) is loaded into a fresh store and
detected once, outside the timing. ``--store neo4j`` without ``--neo4j URI`` starts
Neo4j 5.26 from Maven jars (``ringscope.graphs.neo4j_local``) in a temporary folder
and stops it at the end. The app is then served by ``ringscope serve`` in its own
process, as users run it, with one investigator's API key, and ``--clients``
threads (one HTTP connection each) send ``--requests`` requests each per scenario,
after ``--warmup`` unmeasured ones each (a long-running app and database server have
their code compiled and their caches filled; the cold first render is shown apart):

- ``queue``: ``GET /api/findings`` (the ranked queue);
- ``cluster page``: ``GET /findings/{id}`` of the cluster with the biggest graph
  (its members' neighbourhood, at most 2,000 nodes); the first, cold render is
  reported on its own line;
- ``neighbourhood``: ``GET /api/entities/Account:{member}/neighbourhood?limit=100``
  across the members of that cluster.

Printed per store and scenario: requests answered and failed (an error status or
no answer within ``--timeout``), p50, p95, max and requests per second, the CPU
milliseconds per request of the app's process and of a Neo4j started here (what the
requests cost; the rest of their time they waited, for a core or for each other),
and the machine's load average. Target: p95 <= 300 ms with 20 concurrent clients.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import DEFAULT_CACHE, cpu_seconds, ensure_market, load_average

from ringscope.api.auth import add_user
from ringscope.graphs import open_store
from ringscope.graphs.store import GraphStore
from ringscope.jobs.detect import run_detection
from ringscope.loaders.pipeline import load_export
from ringscope.model import Finding, NodeRef
from ringscope.settings import Settings

TARGET_P95_MS = 300.0


def prepare(store: GraphStore, data: Path) -> None:
    """Load and detect unless the store already holds a run."""
    if store.latest_run() is None:
        load_export(store, data)
        run_detection(store)


def biggest_cluster(store: GraphStore) -> tuple[Finding, int]:
    """The finding whose members' neighbourhood (one hop, at most 2,000 nodes) is largest."""
    best: tuple[Finding, int] | None = None
    for f in store.findings()[:60]:
        refs = [NodeRef("Account", m) for m in f.member_ids]
        n = len(store.neighbourhood(refs, hops=1, limit=2000).nodes)
        if best is None or n > best[1]:
            best = (f, n)
    if best is None:
        raise SystemExit("no findings: nothing to benchmark")
    return best


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``ringscope serve`` in its own process."""

    def __init__(self, store_uri: str, users_file: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "ringscope.cli", "serve", "--store", store_uri]
        cmd += ["--port", str(self.port)]
        env = {**os.environ, "RINGSCOPE_USERS_FILE": str(users_file)}
        # The app's log goes to a file: a pipe that nobody reads fills up (64 kB) and
        # then blocks every thread of the app that logs.
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.log.read_text(errors="replace")[-4000:]
                raise SystemExit(f"the app did not start:\n{err}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("the app did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def hammer(
    url: str,
    paths: Callable[[int, int], str],
    clients: int,
    requests: int,
    key: str,
    timeout: float,
) -> tuple[list[float], float, list[str]]:
    """Latencies (ms) of the answered requests of ``clients`` threads sending ``requests``
    requests each, wall seconds, and the failures (an error status, or no answer within
    ``timeout`` seconds: that client stops)."""
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[str] = []
    barrier = threading.Barrier(clients)

    def client(c: int) -> None:
        mine = []
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, timeout=timeout, headers=headers) as http:
            barrier.wait()
            try:
                for i in range(requests):
                    t0 = time.perf_counter()
                    r = http.get(paths(c, i))
                    mine.append((time.perf_counter() - t0) * 1000)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as e:
                failures.append(f"{type(e).__name__} after {timeout:.0f} s: {e}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return latencies, wall, failures


def pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def bench_store(
    name: str,
    uri: str,
    args: argparse.Namespace,
    data: Path,
    work: Path,
    db_pid: int | None = None,
) -> list[list[str]]:
    """The rows of one store; ``db_pid``: the database server's process (its CPU is
    reported beside the app's)."""
    # the settings of the moment: the caller may have just set RINGSCOPE_COLUMNAR_PATH
    store = open_store(uri, settings=Settings())
    try:
        t0 = time.perf_counter()
        prepare(store, data)
        prep = time.perf_counter() - t0
        finding, n_nodes = biggest_cluster(store)
        members = list(finding.member_ids)
        n_findings = len(store.findings())
    finally:
        store.close()
    print(
        f"[{name}] store ready in {prep:.1f} s: {n_findings} findings; cluster page of "
        f"{finding.id} ({len(members)} members, {n_nodes} graph nodes)",
        file=sys.stderr,
    )
    users = work / f"users-{name}.json"
    key = add_user(users, "bench-investigator", "investigator")
    rows = []
    with Server(uri, users, work / f"serve-{name}.log") as server:
        t0 = time.perf_counter()
        r = httpx.get(
            f"{server.url}/findings/{finding.id}",
            timeout=120,
            headers={"Authorization": f"Bearer {key}"},
        )
        cold = (time.perf_counter() - t0) * 1000
        assert r.status_code == 200, r.text[:300]
        rows.append(
            [name, "cluster page (cold)", "1", "0", f"{cold:.0f}", f"{cold:.0f}"] + [""] * 6
        )
        scenarios: dict[str, Callable[[int, int], str]] = {
            "queue": lambda c, i: "/api/findings",
            "cluster page": lambda c, i: f"/findings/{finding.id}",
            "neighbourhood": lambda c, i: (
                f"/api/entities/Account:{members[(c * args.requests + i) % len(members)]}"
                "/neighbourhood?hops=1&limit=100"
            ),
        }
        for label, paths in scenarios.items():
            if args.warmup:  # unmeasured, as a long-running app and server would be warm
                hammer(server.url, paths, args.clients, args.warmup, key, args.timeout)
            cpu0 = cpu_seconds(server.proc.pid), cpu_seconds(db_pid or -1)
            lat, wall, failed = hammer(
                server.url, paths, args.clients, args.requests, key, args.timeout
            )
            app_cpu, db_cpu = (
                (cpu_seconds(pid) - c0) * 1000 / max(len(lat), 1)
                for pid, c0 in zip((server.proc.pid, db_pid or -1), cpu0, strict=True)
            )
            p95 = pct(lat, 95)
            rows.append(
                [
                    name,
                    label,
                    str(len(lat)),
                    str(len(failed)),
                    f"{pct(lat, 50):.0f}",
                    f"{p95:.0f}",
                    f"{max(lat, default=float('nan')):.0f}",
                    f"{len(lat) / wall:.0f}",
                    "ok" if p95 <= TARGET_P95_MS and not failed else "OVER",
                    f"{app_cpu:.1f}",
                    "" if db_pid is None else f"{db_cpu:.1f}",
                    f"{os.getloadavg()[0]:.1f}",
                ]
            )
            print(f"[{name}] {label}: {' '.join(rows[-1][2:])}", file=sys.stderr)
            if failed:
                print(f"[{name}] {label}: e.g. {failed[0]}", file=sys.stderr)
    logged = server.log.read_text(errors="replace").splitlines()
    if logged:
        print(
            f"[{name}] the app logged {len(logged)} lines, e.g. {logged[0][:300]}", file=sys.stderr
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=25, help="per client and scenario")
    p.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="unmeasured requests per client before each scenario (0: none)",
    )
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument(
        "--store",
        choices=("embedded", "neo4j", "both"),
        default="embedded",
        help="which stores to benchmark (neo4j: --neo4j URI, else a local Neo4j started here)",
    )
    p.add_argument("--neo4j", metavar="URI", help="a Neo4j server (implies --store both)")
    p.add_argument(
        "--neo4j-pid", type=int, metavar="PID", help="that server's process, for its CPU time"
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a client waits for an answer"
    )
    args = p.parse_args()
    if args.neo4j and args.store == "embedded":
        args.store = "both"
    data, _ = ensure_market(args.cache, args.events, args.seed)
    work = Path(tempfile.mkdtemp(prefix="ringscope-api-bench-"))
    rows = []
    try:
        if args.store in ("embedded", "both"):
            rows += bench_store("embedded", str(work / "bench.duckdb"), args, data, work)
        if args.store in ("neo4j", "both"):
            # raw events stay in a columnar file beside the graph
            os.environ["RINGSCOPE_COLUMNAR_PATH"] = str(work / "events.duckdb")
            if args.neo4j:
                rows += bench_store("neo4j", args.neo4j, args, data, work, args.neo4j_pid)
            else:
                from ringscope.graphs.neo4j_local import start_local_neo4j

                print("[neo4j] starting a local Neo4j 5.26 ...", file=sys.stderr)
                with start_local_neo4j(work, port=0, heap="1g") as local:
                    rows += bench_store("neo4j", local.uri, args, data, work, local.process.pid)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = ["store", "scenario", "answered", "failed", "p50 ms", "p95 ms", "max ms", "req/s"]
    head += ["p95<=300", "app CPU ms/req", "db CPU ms/req", "load 1m"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    print(f"{args.clients} concurrent clients, {args.events} events, seed {args.seed}")
    print(load_average())
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
