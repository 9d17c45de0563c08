"""The audit log of every store: append-only, newest first, filtered, paged (``store`` is
the contract suite's: each kind of store in turn)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from ringscope.graphs.store import GraphStore


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


def test_concurrent_appends_each_committed_once(store: GraphStore) -> None:
    """Views audited by 20 threads at once (committed in groups): every entry is in the
    log exactly once, each thread's entries in the order it appended them, and the
    ``seq`` numbers are distinct."""
    threads, each = 20, 15
    start = threading.Barrier(threads)

    def viewer(n: int) -> None:
        start.wait()
        for k in range(each):
            store.append_audit(f"user-{n}", "view_finding", f"co-{n}-{k}", {"k": k})

    workers = [threading.Thread(target=viewer, args=(n,)) for n in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    log = store.audit_log(limit=10_000)
    assert len(log) == threads * each
    assert len({e["seq"] for e in log}) == len(log)
    assert sorted(str(e["subject"]) for e in log) == sorted(
        f"co-{n}-{k}" for n in range(threads) for k in range(each)
    )
    for n in range(threads):
        mine = [e["detail"]["k"] for e in reversed(log) if e["who"] == f"user-{n}"]  # type: ignore[index]
        assert mine == list(range(each))


def test_failed_group_raises_in_every_caller() -> None:
    """A group whose write fails raises in each of its callers, and nothing is
    acknowledged that was not written."""
    from ringscope.errors import StoreError
    from ringscope.graphs._groupcommit import GroupCommit

    written: list[int] = []
    release = threading.Event()

    def write(items: Sequence[int]) -> None:
        release.wait(5)
        if any(i < 0 for i in items):
            raise StoreError("disk full")
        written.extend(items)

    group: GroupCommit[int] = GroupCommit(write)
    outcome: dict[int, str] = {}

    def append(i: int) -> None:
        try:
            group.append(i)
            outcome[i] = "ok"
        except StoreError as e:
            outcome[i] = str(e)

    first = threading.Thread(target=append, args=(0,))
    first.start()  # writes the group of 0, waiting on ``release``
    time.sleep(0.2)
    rest = [threading.Thread(target=append, args=(i,)) for i in (1, -2, 3)]
    for t in rest:
        t.start()  # they form the next group, with a failing item
    time.sleep(0.2)
    release.set()
    for t in (first, *rest):
        t.join(10)
    assert outcome == {0: "ok", 1: "disk full", -2: "disk full", 3: "disk full"}
    assert written == [0]


def test_latest_decisions_match_the_decisions(store: GraphStore) -> None:
    """The queue's shortcut, ``latest_decisions``, gives per case the last of
    ``decisions()`` (by time, then the later recorded), ties in time included."""
    from ringscope.model import Decision

    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    later = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)
    for case, decision, when in [
        ("case-a", "confirmed", at),
        ("case-a", "dismissed", at),  # same time: recorded later wins
        ("case-b", "escalated", later),
        ("case-b", "confirmed", at),  # recorded later, but earlier in time
        ("case-c", "dismissed", at),
    ]:
        store.record_decision(Decision(case, decision, "ann", when, ""))  # type: ignore[arg-type]
    expected: dict[str, str] = {}
    for d in store.decisions():
        expected[d.finding_id] = d.decision
    assert expected == {"case-a": "dismissed", "case-b": "escalated", "case-c": "dismissed"}
    assert store.latest_decisions() == expected  # type: ignore[attr-defined]
    # only the cases asked for (a run's queue, an account's findings)
    some = store.latest_decisions(["case-b", "case-c", "case-none"])  # type: ignore[attr-defined]
    assert some == {"case-b": "escalated", "case-c": "dismissed"}
    assert store.latest_decisions([]) == {}  # type: ignore[attr-defined]


def test_finding_views_show_decisions_at_once_and_are_audited(store: GraphStore) -> None:
    """The cluster page and the API's finding detail on every store: a decision shows on
    the next view, and every view is one audit entry naming the run."""
    import pandas as pd
    from fastapi.testclient import TestClient

    from ringscope.api.app import create_app
    from ringscope.api.auth import Access, User, Users, hash_key
    from ringscope.model import DetectorInfo, Finding, Member, Run, Signal

    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    accounts = pd.DataFrame(
        {
            "account_id": ["a1", "a2"],
            "roles": ["buyer", "buyer"],
            "created_at": pd.Series([at, at], dtype="datetime64[us, UTC]"),
            "country": [None, None],
        }
    )
    store.write_batch("accounts", accounts, "L")
    f = Finding.build(
        kind="engagement_farm",
        score=0.9,
        members=[Member("a1", "buyer", 0.9), Member("a2", "buyer", 0.8)],
        signals=[Signal("lockstep", 0.8, 0.5, 1.0)],
        explanation="accounts acting together",
        detector=DetectorInfo("lockstep", "1.0", {}),
    )
    store.begin_run(Run("r1", at, "running"))
    store.complete_run("r1", [f], {"findings": 1})
    key = "rsk_test-views-key"
    access = Access(users=Users([User("ann", "investigator", hash_key(key))]))
    with TestClient(create_app(store=store, access=access)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        page = client.get(f"/findings/{f.id}")
        assert page.status_code == 200 and "No decision yet." in page.text
        assert client.get(f"/api/findings/{f.id}").json()["decision"] == "undecided"
        r = client.post(
            f"/findings/{f.id}/decisions",
            content="decision=confirmed&note=clear+ring",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        page = client.get(f"/findings/{f.id}")
        assert page.status_code == 200 and "clear ring" in page.text
        detail = client.get(f"/api/findings/{f.id}").json()
        assert detail["decision"] == "confirmed" and detail["decisions"][0]["note"] == "clear ring"
        assert [h["run_id"] for h in detail["history"]] == ["r1"]
        assert client.get("/findings/nope").status_code == 404
    views = store.audit_log(who="ann", action="view_finding")
    assert [(e["subject"], e["detail"]) for e in views] == [
        (f.id, {"run_id": "r1", "via": via}) for via in ("api", "page", "api", "page")
    ]
