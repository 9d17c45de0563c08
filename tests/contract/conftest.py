"""Stores for the contract suite: every test here runs on the embedded store and on Neo4j."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringscope.graphs.store import GraphStore
from ringscope.loaders.pipeline import load_export

SMALL_EXPORT = Path(__file__).resolve().parents[1] / "data" / "small-export"

STORES = ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)]


def open_store(kind: str, folder: Path, request: pytest.FixtureRequest) -> GraphStore:
    """An empty store of ``kind`` keeping its files in ``folder``."""
    if kind == "embedded":
        from ringscope.graphs.embedded import EmbeddedStore

        return EmbeddedStore(folder / "store.duckdb")
    from ringscope.graphs.neo4j_store import Neo4jStore

    password = os.environ.get("NEO4J_PASSWORD")
    store = Neo4jStore(
        request.getfixturevalue("neo4j_uri"),
        auth=(os.environ.get("NEO4J_USER", "neo4j"), password) if password else None,
        database=os.environ.get("NEO4J_DATABASE", "neo4j"),
        columnar_path=folder / "events.duckdb",
    )
    store.wipe(erase_audit_log=True)  # an emptied database: the audit log too
    return store


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store, for one test."""
    s = open_store(request.param, tmp_path, request)
    yield s
    s.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphStore]:
    """The embedded store with the small export: what every store must answer."""
    from ringscope.graphs.embedded import EmbeddedStore

    folder = tmp_path_factory.mktemp("reference")
    s = EmbeddedStore(folder / "store.duckdb")
    load_export(s, SMALL_EXPORT, rejects_dir=folder / "rejects")
    yield s
    s.close()


@pytest.fixture(scope="module", params=STORES)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GraphStore]:
    """A store holding the small export, shared by the read-only tests of a module."""
    folder = tmp_path_factory.mktemp(f"loaded-{request.param}")
    s = open_store(request.param, folder, request)
    load_export(s, SMALL_EXPORT, rejects_dir=folder / "rejects")
    yield s
    s.close()
