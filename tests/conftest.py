"""Shared fixtures. Each area keeps its fixtures in its own clearly marked section.

Where a test goes:

- ``tests/test_<area>.py``: one area of the library or the command (loaders, a detector,
  the API, the CLI, ...), on the embedded store;
- ``tests/contract/``: tests that run on every store (the embedded store and Neo4j, its
  ``store`` fixture is parametrised over both): a store's behaviour, and anything that
  must answer the same on both;
- ``tests/browser/``: the pages in a real Chromium (marked ``browser``);
- ``tests/security/``: access, redaction, hostile inputs and the reverse proxy;
- ``tests/data/``: the small export and the golden files.

Helpers (plain functions and classes) are in ``tests/helpers/``, imported as
``from helpers.market import ...``; fixtures are here, or in a folder's ``conftest.py``
when only that folder uses them. A test module never imports from another test module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers.market import Market, shared_market
from helpers.stores import open_neo4j

if TYPE_CHECKING:
    from ringscope.graphs.embedded import EmbeddedStore
    from ringscope.graphs.neo4j_store import Neo4jStore

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


@pytest.fixture
def neo4j_store(neo4j_uri: str, tmp_path: Path) -> Iterator[Neo4jStore]:
    """A Neo4jStore on an emptied database and a new columnar file."""
    store = open_neo4j(neo4j_uri, tmp_path)
    try:
        yield store
    finally:
        store.close()


# =========================================================================== stores
# ``store``: an empty embedded store (one DuckDB file) for one test. Under
# tests/contract/ the folder's own ``store`` replaces it: one per kind of store.


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EmbeddedStore]:
    """An empty embedded store in ``tmp_path / "store.duckdb"``, closed after the test."""
    from ringscope.graphs.embedded import EmbeddedStore

    s = EmbeddedStore(tmp_path / "store.duckdb")
    try:
        yield s
    finally:
        s.close()


# =========================================================================== the app
# ``app_market``: the generated marketplace with two detection runs that the API, page,
# access and security tests share (``tests/helpers/market.py``), built once per test
# session. Serve a private copy of it (``served_copy``): one process per DuckDB file.


@pytest.fixture(scope="session")
def app_market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    return shared_market(tmp_path_factory.getbasetemp())


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
