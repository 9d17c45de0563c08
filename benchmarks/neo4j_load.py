"""Loading speed of the Neo4j store next to the embedded store, through ``load_export``.

Generates a synthetic marketplace (``--events`` engagement events, 1,000,000 by
default), loads it into a fresh embedded store and into Neo4j (``--uri``, default:
a local Neo4j started from ``tools/neo4j-local``), and prints a table: total time,
rows/s and relationships/s (relationships written to the graph, ENGAGED counted
once per account and stream). Target on 2 cores: >= 50,000 relationships/s.

The machine is often shared, so the table also has a ``bare-unwind`` row: a bare
``UNWIND $rows AS row MERGE (n:Label {id: row.id})`` of 40,000 nodes on a unique
constraint, measured on the same server just before the load, and the load average
(``uptime``) before and after. Compare loads by their ratio to that row. ``--plans``
prints the plan operators of every load statement (flagging Eager, label scans and
cartesian products), and the seconds and rows spent per statement are printed after
the table. With the local server, the table also gives the CPU seconds the load cost
the server's JVM and this process (side file included), and relationships per CPU
second: figures that, unlike the wall time, hardly depend on what else runs.

``--bulk`` also measures the first-load path of ``ringscope neo4j-import``
(``ringscope.loaders.neo4j_import.bulk_import``) into a new local Neo4j home: loading and
checking the export into the side file, writing the import CSV files, ``neo4j-admin
database import full``, and starting the server with the store's constraints and
indexes online; seconds per phase and relationships/s of the import alone, of CSV
files + import, and of the whole. ``--skip-transactional`` leaves the Cypher load out.

    .venv/bin/python benchmarks/neo4j_load.py [--events 1000000] [--uri bolt://...]
    .venv/bin/python benchmarks/neo4j_load.py --bulk [--skip-transactional] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import neo4j

from ringscope.graphs import cypher
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.graph_model import NODES, RELS
from ringscope.graphs.neo4j_local import BENCH_CONF, start_local_neo4j
from ringscope.graphs.neo4j_store import DEFAULT_BATCH_SIZE, Neo4jStore
from ringscope.graphs.store import GraphStore
from ringscope.loaders.neo4j_import import bulk_import
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.synthetic import generate
from ringscope.model import REL_TYPES

BASELINE_NODES = 40_000
#: Plan operators that make a load statement slow.
SUSPECT = (
    "Eager",
    "NodeByLabelScan",
    "AllNodesScan",
    "CartesianProduct",
    "DirectedAllRelationships",
)


#: One result row: name, seconds, rows, relationships, server CPU s, client CPU s.
Result = tuple[str, float, int, int, float | None, float | None]


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``; ``None``
    elsewhere or without a pid). On a busy machine the wall time of a load says little;
    the CPU seconds of the server and of the client are what the load costs."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(
    name: str, store: GraphStore, data: Path, work: Path, batch_rows: int, server: int | None
) -> Result:
    server_cpu, client_cpu = cpu_seconds(server), time.process_time()
    started = time.perf_counter()
    report = load_export(store, data, rejects_dir=work / "rejects", batch_rows=batch_rows)
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    after = cpu_seconds(server)
    server_cpu = after - server_cpu if after is not None and server_cpu is not None else None
    rows = sum(t.loaded for t in report.tables.values())
    graph = store.graph_counts()
    return name, elapsed, rows, sum(graph[t] for t in REL_TYPES), server_cpu, client_cpu


def _children_cpu() -> float:
    """CPU seconds of this process's finished child processes (the importer, the server)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _bulk(
    data: Path, work: Path, heap: str, pagecache: str, batch_rows: int, conf: dict[str, str]
) -> tuple[Result, dict[str, float]]:
    """The bulk path into a new local Neo4j home; its result row and seconds per phase."""
    home = work / "bulk-home"
    shutil.rmtree(home, ignore_errors=True)
    for leftover in ("bulk-columnar.duckdb", "bulk-columnar.duckdb.wal"):
        (work / leftover).unlink(missing_ok=True)
    children, client = _children_cpu(), time.process_time()
    started = time.perf_counter()
    result = bulk_import(
        data,
        home,
        columnar_path=work / "bulk-columnar.duckdb",
        csv_dir=work / "bulk-csv",
        rejects_dir=work / "bulk-rejects",
        heap=heap,
        pagecache=pagecache,
        conf=conf,
        batch_rows=batch_rows,
    )
    elapsed = time.perf_counter() - started
    server_cpu = _children_cpu() - children
    client_cpu = time.process_time() - client
    rows = sum(t.loaded for t in result.report.tables.values())
    rels = sum(result.graph_counts[t] for t in REL_TYPES)
    if rels != result.files.relationship_count:
        print(
            f"warning: {rels:,} relationships in the graph, "
            f"{result.files.relationship_count:,} in the files"
        )
    for line in result.output.splitlines():
        if "COMPLETED in" in line or "IMPORT DONE" in line or "Peak memory" in line:
            print(f"importer: {line.strip()}")
    for phase, spent in result.cpu.items():
        print(f"CPU seconds of the {phase}: {spent:.1f}")
    phases = dict(result.seconds)
    phases["(CPU of the importer)"] = result.cpu.get("import", 0.0)
    return ("neo4j-bulk", elapsed, rows, rels, server_cpu, client_cpu), phases


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def bare_unwind(driver: neo4j.Driver, database: str) -> float:
    """Seconds for one bare ``UNWIND ... MERGE`` of :data:`BASELINE_NODES` nodes (cleaned up)."""
    label = "RingscopeBenchBaseline"
    driver.execute_query(
        f"CREATE CONSTRAINT rs_bench_baseline IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE",
        database_=database,
    )
    try:
        statement = f"UNWIND $rows AS row MERGE (n:{label} {{id: row.id}})"
        with driver.session(database=database) as session:
            # warm-up (plan cache, JIT) on other ids, then the measured statement
            warm = [{"id": f"w{i}"} for i in range(2_000)]
            session.execute_write(lambda tx: tx.run(statement, rows=warm).consume())
            rows = [{"id": f"n{i}"} for i in range(BASELINE_NODES)]
            started = time.perf_counter()
            session.execute_write(lambda tx: tx.run(statement, rows=rows).consume())
            return time.perf_counter() - started
    finally:
        driver.execute_query(f"MATCH (n:{label}) DETACH DELETE n", database_=database)
        driver.execute_query("DROP CONSTRAINT rs_bench_baseline IF EXISTS", database_=database)


def load_statements() -> dict[str, str]:
    """Every statement ``Neo4jStore.write_batch`` may run, by name (labels with extra
    ones: with the first two of them)."""
    out: dict[str, str] = {}
    for label, node in NODES.items():
        for create in (False, True):
            mode = "CREATE" if create else "MERGE"
            out[f"{label} ({mode})"] = cypher.node_statement(node, create=create)
            if node.extra_labels:
                extra = node.extra_labels[:2]
                statement = cypher.node_statement(node, extra, create=create)
                out[f"{label}:{':'.join(extra)} ({mode})"] = statement
    for rel, r in RELS.items():
        out[f"{rel} (MERGE)"] = cypher.rel_statement(r, create=False)
        out[f"{rel} (CREATE)"] = cypher.rel_statement(r, create=True)
    return out


def plan_operators(driver: neo4j.Driver, database: str, statement: str) -> list[str]:
    """The operators of a statement's plan (PROFILE on no rows, rolled back)."""
    with driver.session(database=database) as session:
        tx = session.begin_transaction()
        try:
            summary = tx.run("PROFILE " + statement, rows=[], load_id="plan").consume()
        finally:
            tx.rollback()
    ops: list[str] = []

    def walk(plan: Any) -> None:
        op = str(plan["operatorType"]).split("@")[0]
        children = plan.get("children", [])
        kinds = {str(c["operatorType"]).split("@")[0] for c in children}
        if op == "CartesianProduct" and kinds <= {"NodeUniqueIndexSeek(Locking)"}:
            op = "CartesianProduct(of unique seeks)"  # one row per side: harmless
        ops.append(op)
        for child in children:
            walk(child)

    if summary.profile is not None:
        walk(summary.profile)
    return ops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uri", default=os.environ.get("NEO4J_URI"))
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--batch-rows", type=int, default=200_000, help="loader batch rows")
    parser.add_argument("--heap", default="2g", help="heap of the local Neo4j")
    parser.add_argument("--pagecache", default="1g", help="page cache of the local Neo4j")
    parser.add_argument("--work-dir", default=None, help="default: a temporary folder")
    parser.add_argument("--data", default=None, help="an existing export (skips generating)")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--plans", action="store_true", help="print each load statement's plan")
    parser.add_argument(
        "--bulk", action="store_true", help="also measure the bulk import (ringscope neo4j-import)"
    )
    parser.add_argument(
        "--skip-transactional", action="store_true", help="leave the Cypher load into Neo4j out"
    )
    parser.add_argument(
        "--conf", action="append", default=[], help="extra server setting name=value (repeatable)"
    )
    args = parser.parse_args(argv)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="ringscope-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.data:
        data = Path(args.data)
    else:
        data = work / "export"
        started = time.perf_counter()
        generate(data, events=args.events, seed=args.seed)
        print(f"generated {args.events:,} events in {time.perf_counter() - started:.1f} s ({data})")

    results: list[Result] = []
    print(f"load average before: {_load_average()}", flush=True)
    if not args.skip_embedded:
        embedded = EmbeddedStore(work / "embedded.duckdb")
        try:
            results.append(_load("embedded", embedded, data, work, args.batch_rows, None))
        finally:
            embedded.close()

    phases: dict[str, float] = {}
    if args.bulk:
        print(f"load average before the bulk import: {_load_average()}", flush=True)
        conf = {**BENCH_CONF, **dict(kv.split("=", 1) for kv in args.conf)}
        row, phases = _bulk(data, work, args.heap, args.pagecache, args.batch_rows, conf)
        results.append(row)
        print(f"load average after the bulk import: {_load_average()}", flush=True)

    local = None
    uri = args.uri
    if uri is None and not args.skip_transactional:
        started = time.perf_counter()
        local = start_local_neo4j(
            work,
            port=0,
            name="bench",
            heap=args.heap,
            pagecache=args.pagecache,
            conf={**BENCH_CONF, **dict(kv.split("=", 1) for kv in args.conf)},
        )
        uri = local.uri
        print(f"local Neo4j ready at {uri} in {time.perf_counter() - started:.1f} s")
    stats: dict[str, tuple[float, int]] = {}
    if not args.skip_transactional:
        assert uri is not None
        stats = _transactional(args, uri, local, data, work, results)
    print(f"load average after: {_load_average()}")
    _print_results(results, stats, phases)
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _transactional(
    args: argparse.Namespace, uri: str, local: Any, data: Path, work: Path, results: list[Result]
) -> dict[str, tuple[float, int]]:
    """The Cypher load into Neo4j (``load_export`` through ``Neo4jStore``)."""
    stats: dict[str, tuple[float, int]] = {}
    try:
        password = os.environ.get("NEO4J_PASSWORD")
        auth = (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None
        database = os.environ.get("NEO4J_DATABASE", "neo4j")
        store = Neo4jStore(
            uri,
            auth=auth,
            database=database,
            columnar_path=work / "neo4j-columnar.duckdb",
            batch_size=args.batch_size,
        )
        try:
            store.wipe()
            with neo4j.GraphDatabase.driver(uri, auth=auth) as driver:
                if args.plans:
                    for name, statement in load_statements().items():
                        ops = plan_operators(driver, database, statement)
                        bad = [op for op in ops if op in SUSPECT]
                        flag = f"  <-- {', '.join(bad)}" if bad else ""
                        print(f"plan {name:<22} {' < '.join(ops)}{flag}")
                baseline = bare_unwind(driver, database)
            results.append(("bare-unwind", baseline, BASELINE_NODES, 0, None, None))
            server = local.process.pid if local is not None else None
            results.append(_load("neo4j", store, data, work, args.batch_rows, server))
            stats = dict(store.load_stats)
            with neo4j.GraphDatabase.driver(uri, auth=auth) as driver:
                warm = bare_unwind(driver, database)  # the same, on the warmed-up server
            results.append(("bare-unwind*", warm, BASELINE_NODES, 0, None, None))
        finally:
            store.close()
    finally:
        if local is not None:
            local.stop()
    return stats


def _print_results(
    results: list[Result], stats: dict[str, tuple[float, int]], phases: dict[str, float]
) -> None:
    print(
        f"\n{'store':<12} {'seconds':>9} {'rows':>11} {'rows/s':>10} {'rels':>10} {'rels/s':>10}"
        f" {'server cpu':>10} {'client cpu':>10} {'rels/cpu-s':>10}"
    )
    for name, seconds, rows, rels, server_cpu, client_cpu in results:
        rels_s = f"{rels / seconds:>10,.0f}" if rels else f"{'-':>10}"
        cpu = [f"{c:>10.1f}" if c is not None else f"{'-':>10}" for c in (server_cpu, client_cpu)]
        total_cpu = (server_cpu or 0.0) + (client_cpu or 0.0)
        per_cpu = f"{rels / total_cpu:>10,.0f}" if rels and total_cpu else f"{'-':>10}"
        print(
            f"{name:<12} {seconds:>9.1f} {rows:>11,} {rows / seconds:>10,.0f} {rels:>10,} {rels_s}"
            f" {cpu[0]} {cpu[1]} {per_cpu}"
        )
    print(
        "(server cpu: CPU seconds of the local Neo4j's JVM during the load; client cpu: of this"
        " process, side file and DuckDB included; rels/cpu-s: relationships per CPU second of"
        " both, what the load costs whatever else runs on the machine)"
    )
    print(
        "(bare-unwind: one bare UNWIND ... MERGE of nodes, before the load and after it (*),"
        " on a warm server; its rows/s are nodes/s)"
    )
    if stats:
        print(f"\n{'seconds':>8} {'rows':>10} {'rows/s':>9}  statement")
        for statement, (spent, count) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
            print(f"{spent:>8.1f} {count:>10,} {count / max(spent, 1e-9):>9,.0f}  {statement[:90]}")
    bulk = [r for r in results if r[0] == "neo4j-bulk"]
    if bulk and phases:
        rels = bulk[0][3]
        print(f"\nbulk import ({rels:,} relationships): seconds per phase")
        for phase, spent in phases.items():
            if not phase.startswith("("):
                print(f"{spent:>8.1f}  {phase}")
        import_s = phases.get("import", 0.0)
        csv_import = import_s + phases.get("write csv", 0.0)
        print(f"{bulk[0][1]:>8.1f}  total")
        if import_s:
            print(
                f"rels/s: import alone {rels / import_s:,.0f}; csv files + import "
                f"{rels / csv_import:,.0f}; whole path {rels / bulk[0][1]:,.0f}"
            )
        importer_cpu = phases.get("(CPU of the importer)", 0.0)
        if importer_cpu:
            print(f"relationships per CPU second of the importer: {rels / importer_cpu:,.0f}")
        print(
            "(bulk server cpu: CPU seconds of the importer and of the server started for"
            " the schema)"
        )


if __name__ == "__main__":
    sys.exit(main())
