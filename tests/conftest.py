"""Shared fixtures. Each area keeps its fixtures in its own clearly marked section."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# =========================================================================== Neo4j
# ``neo4j_uri``: ``NEO4J_URI`` when set (with ``NEO4J_USER``/``NEO4J_PASSWORD``),
# otherwise a local Neo4j 5.26 started once per test session from Maven Central jars
# (``ringscope.graphs.neo4j_local``) and stopped at the end. ``neo4j_store``: a
# Neo4jStore on an emptied database and a fresh columnar file, for one test.

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def neo4j_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bolt URI of a Neo4j 5 server for the tests."""
    uri = os.environ.get("NEO4J_URI")
    if uri:
        yield uri
        return
    from ringscope.errors import ConfigError
    from ringscope.graphs.neo4j_local import start_local_neo4j

    try:
        local = start_local_neo4j(tmp_path_factory.mktemp("neo4j-work"), port=0, heap="1g")
    except ConfigError as e:
        # The suite needs the real server; only an explicit opt-out turns this into a skip.
        if os.environ.get("RINGSCOPE_TESTS_WITHOUT_NEO4J") == "1":
            pytest.skip(f"no Neo4j for the tests: {e}")
        pytest.fail(f"cannot start the local Neo4j for the tests: {e}", pytrace=False)
    try:
        yield local.uri
    finally:
        local.stop()


def _neo4j_auth() -> tuple[str, str] | None:
    password = os.environ.get("NEO4J_PASSWORD")
    return (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None


@pytest.fixture
def neo4j_store(neo4j_uri: str, tmp_path: Path) -> Iterator[object]:
    """A Neo4jStore on an emptied database and a new columnar file."""
    from ringscope.graphs.neo4j_store import Neo4jStore

    store = Neo4jStore(
        neo4j_uri,
        auth=_neo4j_auth(),
        database=os.environ.get("NEO4J_DATABASE", "neo4j"),
        columnar_path=tmp_path / "events.duckdb",
    )
    store.wipe(erase_audit_log=True)  # an emptied database: the audit log too
    try:
        yield store
    finally:
        store.close()


# =========================================================================== (other areas below)


# =========================================================================== evidence export
# ``--update-golden`` rewrites the golden files under tests/data/golden/ instead of
# comparing with them (tests/test_export.py).


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/data/golden/ instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


# =========================================================================== Spark
# ``spark``: one local Spark session (``local[2]``, few shuffle partitions) for the
# Spark engine's tests, started once per test session: a start costs about a minute
# on a busy 2-core machine.


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from ringscope.engines.spark.session import spark_session

    session = spark_session("local[2]", conf={"spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()
