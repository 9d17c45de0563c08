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
threads (one keep-alive HTTP connection each) send ``--requests`` requests each per
scenario:

- ``queue``: ``GET /api/findings`` (the ranked queue);
- ``cluster page``: ``GET /findings/{id}`` of a cluster of about ``--cluster-nodes``
  graph nodes (default 500): among the first 60 findings of the queue, the one whose
  members' one-hop neighbourhood (at most 2,000 nodes) is the smallest with at least
  that many nodes, else the biggest (with a warning); the first, cold render is
  reported on its own line;
- ``neighbourhood``: ``GET /api/entities/Account:{member}/neighbourhood?limit=100``
  across the members of that cluster.

What is measured is a long-running, warm app and database server (code compiled,
caches filled), so nothing is timed before two warm-ups: first, after the cold render,
``--warmup-seconds`` (default 30) of unmeasured requests by all clients, each cycling
through the three scenarios (a freshly started Neo4j JVM is far from steady state after
a few requests: its CPU per request here fell from ~11-14 ms to ~2 ms over several
thousand, as the JIT compiled its code); the number of those requests and the CPU per
request of their last part are printed to stderr. Then, just before each scenario,
``--warmup`` (default 5) unmeasured requests per client of that scenario.

``--old-decisions N`` records N decisions on closed cases of earlier runs first, as a
store used for a year or two holds (every decision is kept): the queue and the pages
read the decisions of their own cases only, so these must not slow them.
``--old-runs N`` records N runs before the store's own, as N nights of a nightly job
leave: the pages read the newest (one or twenty) of them.

The clients use the standard library's ``http.client``, not httpx: the load generator
shares the machine's cores with the app (and the database), and httpx cost about 4 ms
of CPU per request here against about 0.5 ms for ``http.client``, CPU taken from the
server being measured. The load generator's own share is printed (client CPU).

Printed per store and scenario: requests answered and failed (an error status or
no answer within ``--timeout``), p50, p95, max and requests per second, the CPU
milliseconds per request of the app's process, of a Neo4j started here (or given by
``--neo4j-pid``) and of this benchmark's process, the load generator (what the
requests cost; the rest of their time they waited, for a core or for each other),
and the machine's load average. Target: p95 <= 300 ms with 20 concurrent clients.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _common import DEFAULT_CACHE, cpu_seconds, ensure_market, load_average

from ringscope.api.auth import add_user
from ringscope.graphs import open_store
from ringscope.graphs.store import GraphStore
from ringscope.jobs.detect import run_detection
from ringscope.loaders.pipeline import load_export
from ringscope.model import Decision, Finding, NodeRef, Run
from ringscope.settings import Settings

TARGET_P95_MS = 300.0


def prepare(store: GraphStore, data: Path) -> None:
    """Load and detect unless the store already holds a run."""
    if store.latest_run() is None:
        load_export(store, data)
        run_detection(store)


def add_old_decisions(store: GraphStore, n: int) -> None:
    """Decisions on ``n // 3`` closed cases of earlier runs (three each, case ids no
    finding of the run has), as a store used for a year or two holds, unless there."""
    have = sum(1 for d in store.decisions() if d.finding_id.startswith("closed-case-"))
    at = datetime(2025, 1, 1, tzinfo=UTC)
    todo = [
        Decision(
            f"closed-case-{i % max(n // 3, 1)}",
            ("escalated", "confirmed", "dismissed")[i % 3],
            "earlier-investigator",
            at + timedelta(minutes=i),
            "",
        )
        for i in range(have, n)
    ]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(store.record_decision, todo))


def add_old_runs(store: GraphStore, n: int) -> None:
    """``n`` succeeded runs before the store's own, a night apart (as a nightly job
    leaves over ``n`` nights; without findings), unless there."""
    have = sum(1 for r in store.runs() if r.id.startswith("old-run-"))
    first = min(r.started_at for r in store.runs()) - timedelta(days=n)

    def add(i: int) -> None:
        store.begin_run(Run(f"old-run-{i:05d}", first + timedelta(days=i), "running"))
        store.complete_run(f"old-run-{i:05d}", [], {"findings": 0})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(have, n)))


def cluster_of_size(store: GraphStore, nodes: int, name: str = "") -> tuple[Finding, int]:
    """Among the first 60 findings, the one whose members' neighbourhood (one hop, at
    most 2,000 nodes) is the smallest with at least ``nodes`` nodes; if none has that
    many, the biggest (with a warning on stderr). The finding and its graph's nodes."""
    sized: list[tuple[int, Finding]] = []
    for f in store.findings()[:60]:
        refs = [NodeRef("Account", m) for m in f.member_ids]
        sized.append((len(store.neighbourhood(refs, hops=1, limit=2000).nodes), f))
    if not sized:
        raise SystemExit("no findings: nothing to benchmark")
    enough = [s for s in sized if s[0] >= nodes]
    if enough:
        n, f = min(enough, key=lambda s: s[0])
    else:
        n, f = max(sized, key=lambda s: s[0])
        print(
            f"[{name}] WARNING: no cluster has a graph of {nodes} nodes (--cluster-nodes); "
            f"the biggest, {n} nodes, is used instead",
            file=sys.stderr,
        )
    return f, n


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
    seconds: float | None = None,
) -> tuple[list[float], float, list[str]]:
    """Latencies (ms) of the answered requests of ``clients`` threads sending ``requests``
    requests each (with ``seconds``: as many as they can in that time instead), wall
    seconds, and the failures (an error status, or a connection error or no answer
    within ``timeout`` seconds: that client stops).

    Each client has one keep-alive ``http.client`` connection, opened before the
    clients start together, and reads every answer whole."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[str] = []
    barrier = threading.Barrier(clients)
    end = [0.0]  # the time the clients stop with ``seconds``, set once they are ready

    def client(c: int) -> None:
        mine: list[float] = []
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            try:
                conn.connect()
            finally:  # the others are not left waiting when this one cannot connect
                if barrier.wait() == 0 and seconds is not None:
                    end[0] = time.monotonic() + seconds
                barrier.wait()  # ``end`` is set before anyone reads it
            i = 0
            while (i < requests) if seconds is None else (time.monotonic() < end[0]):
                t0 = time.perf_counter()
                conn.request("GET", paths(c, i), headers=headers)
                r = conn.getresponse()
                body = r.read()
                mine.append((time.perf_counter() - t0) * 1000)
                if r.status != 200:
                    failures.append(f"{r.status} {body[:200].decode(errors='replace')}")
                i += 1
        except TimeoutError as e:
            failures.append(f"{type(e).__name__}: no answer within {timeout:g} s: {e}")
        except (OSError, http.client.HTTPException) as e:
            failures.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()
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


def warm_up(
    name: str,
    server: Server,
    scenarios: dict[str, Callable[[int, int], str]],
    args: argparse.Namespace,
    key: str,
    db_pid: int | None,
) -> None:
    """``args.warmup_seconds`` of unmeasured requests by all clients, each cycling
    through the scenarios; the count, and the CPU per request of the last part
    (a third, at most 10 s), to stderr."""
    if args.warmup_seconds <= 0:
        return
    turns = list(scenarios.values())

    def paths(c: int, i: int) -> str:
        return turns[(c + i) % len(turns)](c, i // len(turns))

    tail = min(10.0, args.warmup_seconds / 3)
    lat, wall, failed = hammer(
        server.url, paths, args.clients, 0, key, args.timeout, args.warmup_seconds - tail
    )
    pids = (server.proc.pid, db_pid or -1)
    cpu0 = [cpu_seconds(pid) for pid in pids]
    own0 = time.process_time()
    last, last_wall, last_failed = hammer(
        server.url, paths, args.clients, 0, key, args.timeout, tail
    )
    own = (time.process_time() - own0) * 1000 / max(len(last), 1)
    app_cpu, db_cpu = (
        (cpu_seconds(pid) - c0) * 1000 / max(len(last), 1)
        for pid, c0 in zip(pids, cpu0, strict=True)
    )
    failed += last_failed
    db = "" if db_pid is None else f", database {db_cpu:.1f}"
    print(
        f"[{name}] warm-up: {len(lat) + len(last)} requests in {wall + last_wall:.0f} s, "
        f"{len(failed)} failed; its last {last_wall:.0f} s: p95 {pct(last, 95):.0f} ms, "
        f"CPU ms/request: app {app_cpu:.1f}{db}, client {own:.1f}",
        file=sys.stderr,
    )
    if failed:
        print(f"[{name}] warm-up: e.g. {failed[0]}", file=sys.stderr)


def bench_store(
    name: str,
    uri: str,
    args: argparse.Namespace,
    data: Path,
    work: Path,
    db_pid: int | None = None,
) -> tuple[list[list[str]], int]:
    """The rows of one store and the graph nodes of its cluster page; ``db_pid``: the
    database server's process (its CPU is reported beside the app's)."""
    # the settings of the moment: the caller may have just set RINGSCOPE_COLUMNAR_PATH
    store = open_store(uri, settings=Settings())
    try:
        t0 = time.perf_counter()
        prepare(store, data)
        add_old_decisions(store, args.old_decisions)
        add_old_runs(store, args.old_runs)
        prep = time.perf_counter() - t0
        finding, n_nodes = cluster_of_size(store, args.cluster_nodes, name)
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
            [name, "cluster page (cold)", "1", "0", f"{cold:.0f}", f"{cold:.0f}"] + [""] * 7
        )
        scenarios: dict[str, Callable[[int, int], str]] = {
            "queue": lambda c, i: "/api/findings",
            "cluster page": lambda c, i: f"/findings/{finding.id}",
            "neighbourhood": lambda c, i: (
                f"/api/entities/Account:{members[(c * args.requests + i) % len(members)]}"
                "/neighbourhood?hops=1&limit=100"
            ),
        }
        warm_up(name, server, scenarios, args, key, db_pid)
        for label, paths in scenarios.items():
            if args.warmup:  # unmeasured, as a long-running app and server would be warm
                hammer(server.url, paths, args.clients, args.warmup, key, args.timeout)
            cpu0 = cpu_seconds(server.proc.pid), cpu_seconds(db_pid or -1)
            own0 = time.process_time()
            lat, wall, failed = hammer(
                server.url, paths, args.clients, args.requests, key, args.timeout
            )
            own_cpu = (time.process_time() - own0) * 1000 / max(len(lat), 1)
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
                    f"{own_cpu:.1f}",
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
    return rows, n_nodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--requests", type=int, default=25, help="per client and scenario")
    p.add_argument(
        "--warmup",
        type=int,
        default=5,
        help="unmeasured requests per client just before each scenario (0: none)",
    )
    p.add_argument(
        "--warmup-seconds",
        type=float,
        default=30.0,
        help="seconds of unmeasured requests by all clients, cycling through the scenarios,\n"
        "before the measured ones (0: none)",
    )
    p.add_argument(
        "--cluster-nodes",
        type=int,
        default=500,
        metavar="N",
        help="the cluster page's cluster: the smallest graph of at least N nodes\n"
        "(else the biggest)",
    )
    p.add_argument(
        "--old-decisions",
        type=int,
        default=0,
        metavar="N",
        help="N decisions recorded first on closed cases of earlier runs (the queue and\n"
        "the pages must not read them on every request)",
    )
    p.add_argument(
        "--old-runs",
        type=int,
        default=0,
        metavar="N",
        help="N runs recorded first, before the store's own (N nights of a nightly job)",
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
    rows: list[list[str]] = []
    nodes: dict[str, int] = {}

    def add(name: str, result: tuple[list[list[str]], int]) -> None:
        rows.extend(result[0])
        nodes[name] = result[1]

    try:
        if args.store in ("embedded", "both"):
            add("embedded", bench_store("embedded", str(work / "bench.duckdb"), args, data, work))
        if args.store in ("neo4j", "both"):
            # raw events stay in a columnar file beside the graph: the one configured
            # for an existing server (it must be that store's), else a fresh one
            if not (args.neo4j and os.environ.get("RINGSCOPE_COLUMNAR_PATH")):
                os.environ["RINGSCOPE_COLUMNAR_PATH"] = str(work / "events.duckdb")
            if args.neo4j:
                add("neo4j", bench_store("neo4j", args.neo4j, args, data, work, args.neo4j_pid))
            else:
                from ringscope.graphs.neo4j_local import start_local_neo4j

                print("[neo4j] starting a local Neo4j 5.26 ...", file=sys.stderr)
                with start_local_neo4j(work, port=0, heap="1g") as local:
                    pid = local.process.pid
                    add("neo4j", bench_store("neo4j", local.uri, args, data, work, pid))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = ["store", "scenario", "answered", "failed", "p50 ms", "p95 ms", "max ms", "req/s"]
    head += ["p95<=300", "app CPU ms/req", "db CPU ms/req", "client CPU ms/req", "load 1m"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    if len(set(nodes.values())) == 1:
        graph = f"{next(iter(nodes.values()))} graph nodes"
    else:
        graph = "graph nodes " + ", ".join(f"{k} {v}" for k, v in nodes.items())
    print(
        f"{args.clients} concurrent clients, {args.events} events, seed {args.seed}, "
        f"cluster page of {graph} (--cluster-nodes {args.cluster_nodes}), "
        f"{args.old_decisions} old decisions, {args.old_runs} old runs, "
        f"warm-up {args.warmup_seconds:g} s + {args.warmup} requests per client and scenario"
    )
    print(load_average())
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
