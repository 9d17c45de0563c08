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
the table.

    .venv/bin/python benchmarks/neo4j_load.py [--events 1000000] [--uri bolt://...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import neo4j

from ringscope.graphs import cypher
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.neo4j_local import BENCH_CONF, start_local_neo4j
from ringscope.graphs.neo4j_store import DEFAULT_BATCH_SIZE, Neo4jStore
from ringscope.graphs.store import GraphStore
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


def _load(store: GraphStore, data: Path, work: Path, batch_rows: int) -> tuple[float, int, int]:
    started = time.perf_counter()
    report = load_export(store, data, rejects_dir=work / "rejects", batch_rows=batch_rows)
    elapsed = time.perf_counter() - started
    rows = sum(t.loaded for t in report.tables.values())
    graph = store.graph_counts()
    return elapsed, rows, sum(graph[t] for t in REL_TYPES)


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
    """Every statement ``Neo4jStore.write_batch`` may run, by name."""
    out = {
        "accounts": cypher.MERGE_ACCOUNTS,
        "streams": cypher.MERGE_STREAMS,
        "products": cypher.MERGE_PRODUCTS,
        "orders": cypher.MERGE_ORDERS,
        "role Creator": cypher.set_role_label("Creator"),
        **{f"identifiers {k}": s for k, s in cypher.MERGE_IDENTIFIERS.items()},
    }
    for rel, (merge, create) in cypher.REL_STATEMENTS.items():
        out[f"{rel} (MERGE)"] = merge
        out[f"{rel} (CREATE)"] = create
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

    results: list[tuple[str, float, int, int]] = []
    print(f"load average before: {_load_average()}", flush=True)
    if not args.skip_embedded:
        embedded = EmbeddedStore(work / "embedded.duckdb")
        try:
            results.append(("embedded", *_load(embedded, data, work, args.batch_rows)))
        finally:
            embedded.close()

    local = None
    uri = args.uri
    if uri is None:
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
            results.append(("bare-unwind", baseline, BASELINE_NODES, 0))
            results.append(("neo4j", *_load(store, data, work, args.batch_rows)))
            stats = dict(store.load_stats)
            with neo4j.GraphDatabase.driver(uri, auth=auth) as driver:
                warm = bare_unwind(driver, database)  # the same, on the warmed-up server
            results.append(("bare-unwind*", warm, BASELINE_NODES, 0))
        finally:
            store.close()
    finally:
        if local is not None:
            local.stop()
    print(f"load average after: {_load_average()}")

    print(f"\n{'store':<12} {'seconds':>9} {'rows':>11} {'rows/s':>10} {'rels':>10} {'rels/s':>10}")
    for name, seconds, rows, rels in results:
        rels_s = f"{rels / seconds:>10,.0f}" if rels else f"{'-':>10}"
        print(
            f"{name:<12} {seconds:>9.1f} {rows:>11,} {rows / seconds:>10,.0f} {rels:>10,} {rels_s}"
        )
    print(
        "(bare-unwind: one bare UNWIND ... MERGE of nodes, before the load and after it (*),"
        " on a warm server; its rows/s are nodes/s)"
    )
    if stats:
        print(f"\n{'seconds':>8} {'rows':>10} {'rows/s':>9}  statement")
        for statement, (spent, count) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
            print(f"{spent:>8.1f} {count:>10,} {count / max(spent, 1e-9):>9,.0f}  {statement[:90]}")
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
