"""The audit log of every store: append-only, newest first, filtered, paged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ringscope.graphs.store import GraphStore


@pytest.fixture(params=["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    if request.param == "embedded":
        from ringscope.graphs.embedded import EmbeddedStore

        s = EmbeddedStore(tmp_path / "audit.duckdb")
        try:
            yield s
        finally:
            s.close()
    else:
        yield request.getfixturevalue("neo4j_store")


def test_audit_log_round_trip(store: GraphStore) -> None:
    before = datetime.now(UTC)
    assert store.audit_log() == []
    store.append_audit("ann", "view_finding", "co-1", {"via": "page"})
    store.append_audit("bob", "decision", "co-1", {"decision": "confirmed", "note": "<b>x</b>"})
    store.append_audit("ann", "export", "co-2")
    log = store.audit_log()
    assert [(e["who"], e["action"], e["subject"]) for e in log] == [
        ("ann", "export", "co-2"),
        ("bob", "decision", "co-1"),
        ("ann", "view_finding", "co-1"),
    ]
    assert log[1]["detail"] == {"decision": "confirmed", "note": "<b>x</b>"}
    assert log[0]["detail"] == {}
    at = log[0]["at"]
    assert isinstance(at, datetime) and at.tzinfo is not None and at >= before
    assert [e["action"] for e in store.audit_log(who="ann")] == ["export", "view_finding"]
    assert [e["who"] for e in store.audit_log(subject="co-1", action="decision")] == ["bob"]
    assert [e["action"] for e in store.audit_log(limit=1, offset=1)] == ["decision"]
    with pytest.raises(ValueError):
        store.audit_log(limit=0)
    with pytest.raises(ValueError):
        store.audit_log(offset=-1)
