"""A Neo4j store's two halves, the database and its side file, must belong together.

Both hold the same store id (the database's StoreInfo node, the side file's
``store_info`` table). A side file beside another database (or an emptied one), or a
new side file beside a loaded database, is refused with a ``ConfigError`` for loads
and table reads instead of silently writing nothing or giving detectors empty tables;
``wipe()`` pairs the two again. Neo4j only: the embedded store is one file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import neo4j
import pandas as pd
import pytest

from ringscope.errors import ConfigError
from ringscope.graphs import cypher
from ringscope.graphs.neo4j_store import Neo4jStore
from ringscope.loaders.pipeline import load_export
from ringscope.model import NodeRef

pytestmark = pytest.mark.neo4j

SMALL_EXPORT = Path(__file__).resolve().parents[1] / "data" / "small-export"

ACCOUNTS = pd.DataFrame(
    {
        "account_id": ["a1", "a2"],
        "roles": ["buyer", "creator"],
        "created_at": pd.Series(["2026-11-01T00:00:00Z"] * 2, dtype="datetime64[us, UTC]"),
    }
)


def _auth() -> tuple[str, str] | None:
    password = os.environ.get("NEO4J_PASSWORD")
    return (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None


Opener = Callable[[Path], Neo4jStore]


@pytest.fixture
def open_store(neo4j_uri: str) -> Iterator[Opener]:
    """``open_store(side_file)``: a Neo4jStore on the session's database (closed after)."""
    opened: list[Neo4jStore] = []

    def open_(columnar: Path) -> Neo4jStore:
        store = Neo4jStore(
            neo4j_uri,
            auth=_auth(),
            database=os.environ.get("NEO4J_DATABASE", "neo4j"),
            columnar_path=columnar,
        )
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _loaded(open_store: Opener, side: Path, tmp_path: Path) -> Neo4jStore:
    """A store on a wiped database and ``side``, holding the small export."""
    store = open_store(side)
    store.wipe()
    report = load_export(store, SMALL_EXPORT, rejects_dir=tmp_path / "rejects")
    assert report.rejected == 0 and not report.failed
    assert store.store_id is not None and store.mismatch is None
    return store


def _graph_ids(store: Neo4jStore) -> list[str]:
    with neo4j.GraphDatabase.driver(store.uri, auth=_auth()) as driver:
        records, _, _ = driver.execute_query(
            f"MATCH (s:{cypher.STORE_INFO_LABEL}) RETURN s.store_id AS id",
            database_=store.database,
        )
    return [r["id"] for r in records]


def _refused(store: Neo4jStore) -> str:
    """The message of the refusals, which must be the same for loads and reads."""
    with pytest.raises(ConfigError) as write:
        store.write_batch("accounts", ACCOUNTS, "L-refused")
    with pytest.raises(ConfigError) as read:
        store.table("accounts")
    with pytest.raises(ConfigError):
        store.known_ids("account", ["a1"])
    with pytest.raises(ConfigError):
        store.rollback_load("L-refused", "accounts")
    message = " ".join(str(write.value).split())
    assert message.startswith("write accounts: ")
    assert " ".join(str(read.value).split()).startswith("read accounts: ")
    assert str(read.value).split(": ", 1)[1] == str(write.value).split(": ", 1)[1]
    for text in (store.columnar_path, store.uri, repr(store.database), "RINGSCOPE_COLUMNAR_PATH"):
        assert text in message, (text, message)
    return message


def test_a_new_side_file_beside_a_loaded_database_is_refused_until_wiped(
    open_store: Opener, tmp_path: Path
) -> None:
    first = _loaded(open_store, tmp_path / "one.duckdb", tmp_path)
    counts, graph = first.counts(), first.graph_counts()
    account = str(first.table("accounts")["account_id"].iloc[0])
    first.close()

    second = open_store(tmp_path / "two.duckdb")
    assert second.store_id is None and second.mismatch is not None
    message = _refused(second)
    assert "the side file holds no rows (no store id)" in message
    assert f"{graph['Account']:,} Account nodes" in message
    assert "wipe the store" in message
    # what investigators walk is still there; nothing was written to either half
    assert second.graph_counts() == graph
    assert second.neighbourhood([NodeRef("Account", account)]).nodes
    assert second.counts()["accounts"] == 0

    second.wipe()
    assert second.mismatch is None
    assert second.table("accounts").empty
    assert second.write_batch("accounts", ACCOUNTS, "L1").inserted == 2
    assert second.store_id is not None and _graph_ids(second) == [second.store_id]
    assert second.graph_counts()["Account"] == 2
    assert counts["accounts"] > 2


def test_a_side_file_beside_an_emptied_database_is_refused(
    open_store: Opener, tmp_path: Path
) -> None:
    one = tmp_path / "one.duckdb"
    first = _loaded(open_store, one, tmp_path)
    rows = first.counts()["accounts"]
    first.close()
    other = open_store(tmp_path / "three.duckdb")
    other.wipe()  # a fresh, empty database
    other.close()

    again = open_store(one)
    message = _refused(again)
    assert f"the side file holds {rows:,} accounts rows" in message
    assert "the database holds no Account, Stream, Product, Order or Identifier nodes" in message
    assert "(no store id)" in message
    assert f"remove the side file {one}" in message
    assert again.graph_counts()["Account"] == 0 and again.counts()["accounts"] == rows


def test_the_same_pair_reopened_loads_again_idempotently(
    open_store: Opener, tmp_path: Path
) -> None:
    side = tmp_path / "one.duckdb"
    first = _loaded(open_store, side, tmp_path)
    store_id, counts, graph = first.store_id, first.counts(), first.graph_counts()
    first.close()

    again = open_store(side)
    assert again.store_id == store_id and again.mismatch is None
    second = load_export(again, SMALL_EXPORT, rejects_dir=tmp_path / "rejects2")
    assert sum(t.loaded for t in second.tables.values()) == 0
    assert again.counts() == counts and again.graph_counts() == graph
    assert again.store_id == store_id and _graph_ids(again) == [store_id]
    assert len(again.table("accounts")) == counts["accounts"]


def test_a_pair_from_before_store_ids_is_adopted(open_store: Opener, tmp_path: Path) -> None:
    side = tmp_path / "one.duckdb"
    first = _loaded(open_store, side, tmp_path)
    counts = first.counts()
    with neo4j.GraphDatabase.driver(first.uri, auth=_auth()) as driver:
        driver.execute_query(
            f"MATCH (s:{cypher.STORE_INFO_LABEL}) DELETE s", database_=first.database
        )
    first._tables.record_store_id(None)
    first.close()

    again = open_store(side)
    assert again.mismatch is None and again.store_id is not None
    assert _graph_ids(again) == [again.store_id]
    assert len(again.table("accounts")) == counts["accounts"]
    again.close()
    assert open_store(side).store_id == again.store_id


def test_the_first_of_two_new_side_files_claims_an_empty_database(
    open_store: Opener, tmp_path: Path
) -> None:
    a = open_store(tmp_path / "a.duckdb")
    a.wipe()
    b = open_store(tmp_path / "b.duckdb")
    assert a.mismatch is None and b.mismatch is None  # both empty: nothing claimed yet
    assert _graph_ids(a) == []  # opening writes nothing into an empty database
    assert b.table("accounts").empty
    a.write_batch("accounts", ACCOUNTS, "L1")
    assert a.store_id is not None
    with pytest.raises(ConfigError, match="do not belong together"):
        b.write_batch("accounts", ACCOUNTS, "L1")
    with pytest.raises(ConfigError, match="do not belong together"):
        b.table("accounts")
    assert a.counts()["accounts"] == 2 and b.counts()["accounts"] == 0
    assert _graph_ids(a) == [a.store_id]
