"""A bulk import (``neo4j-admin database import full``) gives the graph a transactional load gives.

One generated export goes into the session's Neo4j through ``load_export`` (Cypher)
and into a new local Neo4j home through ``neo4j_import.bulk_import``; both stores must
then answer the same: every node with its labels and typed properties, every
relationship, the read tables, the counts, neighbourhoods and detection findings.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import neo4j
import pandas as pd
import pytest

from ringscope.contract import TABLES
from ringscope.errors import InputError, StoreError
from ringscope.graphs import neo4j_bulk
from ringscope.graphs.neo4j_local import LocalNeo4j, start_local_neo4j
from ringscope.graphs.neo4j_store import Neo4jStore
from ringscope.jobs.detect import run_detection
from ringscope.loaders import neo4j_import
from ringscope.loaders.pipeline import load_export
from ringscope.loaders.synthetic import generate
from ringscope.model import NodeRef

pytestmark = pytest.mark.neo4j

#: Properties whose values differ by load (each load has its own id): compared by presence.
_PER_LOAD = "_load_id"


def _auth() -> tuple[str, str] | None:
    password = os.environ.get("NEO4J_PASSWORD")
    return (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bulk-export") / "export"
    generate(folder, events=2000, seed=3)
    return folder


@pytest.fixture(scope="module")
def transactional(
    export: Path, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Neo4jStore]:
    folder = tmp_path_factory.mktemp("bulk-transactional")
    store = Neo4jStore(
        request.getfixturevalue("neo4j_uri"),
        auth=_auth(),
        database=os.environ.get("NEO4J_DATABASE", "neo4j"),
        columnar_path=folder / "events.duckdb",
    )
    store.wipe(erase_audit_log=True)  # an emptied database: the audit log too
    report = load_export(store, export, rejects_dir=folder / "rejects")
    assert report.rejected == 0 and not report.failed
    yield store
    store.close()


class Bulk:
    def __init__(self, home: Path, columnar: Path, result: neo4j_bulk.BulkResult) -> None:
        self.home, self.columnar, self.result = home, columnar, result
        self.local: LocalNeo4j | None = None
        self.store: Neo4jStore | None = None


@pytest.fixture(scope="module")
def bulk(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bulk]:
    """The export bulk-imported into a new home; the server then runs for the tests."""
    folder = tmp_path_factory.mktemp("bulk-import")
    home, columnar = folder / "home", folder / "bulk.duckdb"
    result = neo4j_import.bulk_import(
        export, home, columnar_path=columnar, rejects_dir=folder / "rejects", start=False
    )
    b = Bulk(home, columnar, result)
    b.local = start_local_neo4j(folder, home=home, heap="512m", pagecache="64m")
    try:
        b.store = Neo4jStore(b.local.uri, columnar_path=columnar)  # creates the schema
        yield b
    finally:
        if b.store is not None:
            b.store.close()
        b.local.stop()


def _store(b: Bulk) -> Neo4jStore:
    assert b.store is not None
    return b.store


def _value(v: Any) -> tuple[str, Any]:
    return (type(v).__name__, v)


def _auth_of(store: Neo4jStore) -> tuple[str, str] | None:
    """The session's server may need credentials; a bulk-imported local one has none."""
    return None if store.columnar_path.endswith("bulk.duckdb") else _auth()


def _dump(store: Neo4jStore) -> tuple[list[Any], list[Any]]:
    """Every node (sorted labels, typed properties) and relationship of the graph, sorted."""
    with neo4j.GraphDatabase.driver(store.uri, auth=_auth_of(store)) as driver:
        nodes, _, _ = driver.execute_query(
            "MATCH (n) WHERE NOT n:Run AND NOT n:Cluster AND NOT n:StoreInfo "
            "RETURN labels(n) AS l, properties(n) AS p",
            database_=store.database,
        )
        rels, _, _ = driver.execute_query(
            "MATCH (a)-[r]->(b) WHERE NOT type(r) IN ['MEMBER_OF', 'FOUND_IN'] "
            "RETURN type(r) AS t, a.id AS a, b.id AS b, properties(r) AS p",
            database_=store.database,
        )

    def props(p: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            sorted((k, ("str", "<load>") if k == _PER_LOAD else _value(v)) for k, v in p.items())
        )

    node_rows = sorted((tuple(sorted(r["l"])), props(r["p"])) for r in nodes)
    rel_rows = sorted((r["t"], r["a"], r["b"], props(r["p"])) for r in rels)
    return node_rows, rel_rows


def _schema(store: Neo4jStore) -> set[str]:
    with neo4j.GraphDatabase.driver(store.uri, auth=_auth_of(store)) as driver:
        records, _, _ = driver.execute_query(
            "SHOW INDEXES YIELD name, state", database_=store.database
        )
    assert all(r["state"] == "ONLINE" for r in records), records
    return {r["name"] for r in records}


def test_bulk_import_gives_the_transactional_graph(
    transactional: Neo4jStore, bulk: Bulk, export: Path
) -> None:
    store = _store(bulk)
    assert store.graph_counts() == transactional.graph_counts()
    assert sum(store.graph_counts().values()) > 10_000
    t_nodes, t_rels = _dump(transactional)
    b_nodes, b_rels = _dump(store)
    assert len(b_nodes) == len(t_nodes) and len(b_rels) == len(t_rels)
    assert b_nodes == t_nodes
    assert b_rels == t_rels
    assert _schema(store) >= {
        name for name in _schema(transactional) if not name.startswith("rs_bench")
    }


def test_bulk_import_gives_the_same_tables_and_load_record(
    transactional: Neo4jStore, bulk: Bulk
) -> None:
    store = _store(bulk)
    assert store.counts() == transactional.counts()
    for name in TABLES:
        pd.testing.assert_frame_equal(store.table(name), transactional.table(name))
    (b_load,) = store.loads()
    (t_load,) = transactional.loads()
    assert b_load.fingerprint == t_load.fingerprint
    assert store.fingerprint() == transactional.fingerprint()
    assert {k: (t.read, t.loaded, t.rejected, t.duplicates) for k, t in b_load.tables.items()} == {
        k: (t.read, t.loaded, t.rejected, t.duplicates) for k, t in t_load.tables.items()
    }
    assert bulk.result.report.load_id == b_load.load_id


def test_bulk_import_pairs_the_database_with_its_side_file(
    transactional: Neo4jStore, bulk: Bulk
) -> None:
    store = _store(bulk)
    assert store.mismatch is None and store.store_id is not None
    assert store.store_id != transactional.store_id
    with neo4j.GraphDatabase.driver(store.uri, auth=_auth_of(store)) as driver:
        records, _, _ = driver.execute_query(
            "MATCH (s:StoreInfo) RETURN s.key AS key, s.store_id AS id", database_=store.database
        )
    assert [(r["key"], r["id"]) for r in records] == [("ringscope", store.store_id)]


def test_bulk_import_gives_the_same_reads_and_findings(
    transactional: Neo4jStore, bulk: Bulk
) -> None:
    store = _store(bulk)
    accounts = transactional.table("accounts")["account_id"].tolist()
    seeds = [NodeRef("Account", a) for a in accounts[:: max(1, len(accounts) // 5)]]
    for seed in seeds:
        assert store.neighbourhood([seed], hops=2, limit=300) == transactional.neighbourhood(
            [seed], hops=2, limit=300
        )
    assert store.shortest_path(seeds[0], seeds[-1]) == transactional.shortest_path(
        seeds[0], seeds[-1]
    )
    mine = run_detection(store).findings
    theirs = run_detection(transactional).findings
    assert [f.to_dict() for f in mine] == [f.to_dict() for f in theirs]
    assert mine


def test_a_running_or_written_database_is_refused(bulk: Bulk, export: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="running"):
        neo4j_import.bulk_import(
            export, bulk.home, columnar_path=tmp_path / "e.duckdb", start=False
        )
    with pytest.raises(StoreError, match="already holds loaded rows"):
        neo4j_bulk.check_side_file(bulk.columnar)
    assert not (tmp_path / "e.duckdb").exists()


def test_a_written_database_is_refused(export: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = neo4j_bulk.database_dir(home)
    db.mkdir(parents=True)
    (db / "neostore.nodestore.db").write_bytes(b"\0" * 8192)
    (db / "neostore.relationshipstore.db").write_bytes(b"")
    with pytest.raises(StoreError, match="not empty"):
        neo4j_import.bulk_import(export, home, columnar_path=tmp_path / "e.duckdb", start=False)
    assert not (tmp_path / "e.duckdb").exists()


def test_a_bad_row_is_reported_and_nothing_is_imported(export: Path, tmp_path: Path) -> None:
    bad = tmp_path / "export"
    shutil.copytree(export, bad)
    follows = pd.read_csv(bad / "follows.csv", dtype=str, keep_default_na=False)
    follows.loc[4, "ts"] = "not a time"
    follows.to_csv(bad / "follows.csv", index=False)
    home, columnar = tmp_path / "home", tmp_path / "events.duckdb"
    with pytest.raises(InputError) as caught:
        neo4j_import.bulk_import(
            bad, home, columnar_path=columnar, rejects_dir=tmp_path / "rejects", start=False
        )
    message = str(caught.value)
    assert "follows.csv, row 5, column 'ts'" in message
    assert "nothing was imported" in message
    assert not neo4j_bulk.database_dir(home).exists()
    assert not columnar.exists()
    assert (tmp_path / "rejects" / "follows.rejects.csv").exists()
