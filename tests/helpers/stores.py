"""Stores for the tests: Neo4j on an emptied database (the server is the session's, see
``tests/conftest.py``), and a small generated marketplace filled into any store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ringscope.graphs.neo4j_store import Neo4jStore
    from ringscope.graphs.store import GraphStore


def neo4j_auth() -> tuple[str, str] | None:
    """``(NEO4J_USER, NEO4J_PASSWORD)`` when a password is set, else no authentication."""
    password = os.environ.get("NEO4J_PASSWORD")
    return (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None


def open_neo4j(uri: str, root: Path) -> Neo4jStore:
    """A Neo4j store on an emptied database (``NEO4J_DATABASE``, default ``neo4j``), its
    audit log included, with its columnar file under ``root``."""
    from ringscope.graphs.neo4j_store import Neo4jStore

    store = Neo4jStore(
        uri,
        auth=neo4j_auth(),
        database=os.environ.get("NEO4J_DATABASE", "neo4j"),
        columnar_path=root / "events.duckdb",
    )
    store.wipe(erase_audit_log=True)  # an emptied database: the audit log too
    return store


def fill_store(store: GraphStore, root: Path, *, events: int = 3000, seed: int = 11) -> None:
    """Load a small generated marketplace into ``store`` and run detection once."""
    from ringscope.jobs.detect import run_detection
    from ringscope.loaders.pipeline import load_export
    from ringscope.loaders.synthetic import generate

    generate(root / "data", events=events, seed=seed)
    load_export(store, root / "data", rejects_dir=root / "rejects")
    run_detection(store)


def contents(store: Any) -> tuple[object, ...]:
    """Rows and graph of a store (embedded or Neo4j), its load log aside: equal before
    and after an operation that must change nothing."""
    from ringscope.contract import TABLES

    return (
        store.counts(),
        store.graph_counts(),
        tuple(store.table(name).to_json(date_format="iso") for name in TABLES),
    )
