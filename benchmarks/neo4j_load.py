"""Loading speed of the Neo4j store next to the embedded store, through ``load_export``.

Generates a synthetic marketplace (``--events`` engagement events, 1,000,000 by
default), loads it into a fresh embedded store and into Neo4j (``--uri``, default:
a local Neo4j started from ``tools/neo4j-local``), and prints a table: total time,
rows/s and relationships/s (relationships written to the graph, ENGAGED counted
once per account and stream). Target on 2 cores: >= 50,000 relationships/s.

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

from ringscope.graphs.embedded import EmbeddedStore
from ringscope.graphs.neo4j_local import start_local_neo4j
from ringscope.graphs.neo4j_store import DEFAULT_BATCH_SIZE, Neo4jStore
from ringscope.graphs.store import GraphStore
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.synthetic import generate
from ringscope.model import REL_TYPES


def _load(store: GraphStore, data: Path, work: Path) -> tuple[float, int, int]:
    started = time.perf_counter()
    report = load_export(store, data, rejects_dir=work / "rejects")
    elapsed = time.perf_counter() - started
    rows = sum(t.loaded for t in report.tables.values())
    graph = store.graph_counts()
    return elapsed, rows, sum(graph[t] for t in REL_TYPES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--uri", default=os.environ.get("NEO4J_URI"))
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--heap", default="2g", help="heap of the local Neo4j")
    parser.add_argument("--work-dir", default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="ringscope-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "export"
    started = time.perf_counter()
    generate(data, events=args.events, seed=args.seed)
    print(f"generated {args.events:,} events in {time.perf_counter() - started:.1f} s ({data})")

    results: list[tuple[str, float, int, int]] = []
    embedded = EmbeddedStore(work / "embedded.duckdb")
    try:
        results.append(("embedded", *_load(embedded, data, work)))
    finally:
        embedded.close()

    local = None
    uri = args.uri
    if uri is None:
        started = time.perf_counter()
        local = start_local_neo4j(work, port=0, name="bench", heap=args.heap, pagecache="1g")
        uri = local.uri
        print(f"local Neo4j ready at {uri} in {time.perf_counter() - started:.1f} s")
    try:
        password = os.environ.get("NEO4J_PASSWORD")
        store = Neo4jStore(
            uri,
            auth=(os.environ.get("NEO4J_USER", "neo4j"), password) if password else None,
            database=os.environ.get("NEO4J_DATABASE", "neo4j"),
            columnar_path=work / "neo4j-columnar.duckdb",
            batch_size=args.batch_size,
        )
        try:
            store.wipe()
            results.append(("neo4j", *_load(store, data, work)))
        finally:
            store.close()
    finally:
        if local is not None:
            local.stop()

    print(f"\n{'store':<10} {'seconds':>9} {'rows':>11} {'rows/s':>10} {'rels':>10} {'rels/s':>10}")
    for name, seconds, rows, rels in results:
        print(
            f"{name:<10} {seconds:>9.1f} {rows:>11,} {rows / seconds:>10,.0f} "
            f"{rels:>10,} {rels / seconds:>10,.0f}"
        )
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
