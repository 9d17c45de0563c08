"""A case's history across many runs: every run shown (up to 20), newest first, and
read from the store once per run however many pages ask for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from ringscope.api import queries
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.jobs.diff import diff_findings
from ringscope.model import DetectorInfo, Finding, Member, Run

D = DetectorInfo("test", "1")


class CountingStore(EmbeddedStore):
    """The embedded store, counting the runs whose findings were read."""

    reads: list[str]

    def findings(self, run_id: str | None = None) -> list[Finding]:
        self.reads.append(str(run_id))
        return super().findings(run_id)


def mk(ids: list[str], score: float = 0.5) -> Finding:
    return Finding.build(
        kind="engagement_farm", score=score, explanation="", detector=D,
        members=[Member(i, "buyer", 1.0) for i in ids],
    )  # fmt: skip


def test_history_of_a_case_over_more_runs_than_the_cache_holds(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "h.duckdb")
    store.reads = []
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    previous: list[Finding] = []
    members = list("abcdef")
    for day in range(24):  # the case grows every third night
        if day % 3 == 0:
            members = [*members, f"m{day}"]
        found, _ = diff_findings(previous, [mk(members), mk([f"x{day}", f"y{day}", f"z{day}"])])
        run = Run(
            id=f"run-{day:02d}",
            started_at=t0 + timedelta(days=day),
            status="running",
            policy={},
            data_fingerprint="",
            summary={},
        )
        store.begin_run(run)
        store.complete_run(run.id, found, {})
        previous = found
    latest = previous[0]
    cache = queries.RunCache(size=8)
    runs = queries.succeeded_runs(store)
    assert len(runs) == 24

    entries = queries.history_entries(store, latest, cache=cache, runs=runs)
    assert [e.run_id for e in entries] == [f"run-{d:02d}" for d in range(23, 3, -1)]  # 20 runs
    assert entries[0].finding_id == latest.id
    assert {e.size for e in entries} >= {len(members), len(members) - 1}
    assert [e.status for e in entries[:4]] == ["unchanged", "unchanged", "grown", "unchanged"]
    assert len(store.reads) == 20

    # the queue's run stays cached beside 20 runs of history, and pages ask again for free
    cache.findings(store, runs[0])
    store.reads.clear()
    for _ in range(5):
        again = queries.history_entries(store, latest, cache=cache, runs=runs)
        assert again == entries
        cache.findings(store, runs[0])
    assert store.reads == []

    # without a cache the same entries are read from the store
    assert queries.history_entries(store, latest, runs=runs) == entries

    # pages read the 20 newest runs; a finding only in an older one is still found
    newest = queries.succeeded_runs(store, limit=queries.HISTORY_RUNS)
    assert [r.id for r in newest] == [r.id for r in runs[:20]]
    first_day = next(f for f in store.findings("run-00") if "x0" in f.member_ids)
    run, found = queries.find_finding(store, first_day.id, cache=cache, runs=newest)
    assert (run.id, found.id) == ("run-00", first_day.id)
    run, found = queries.find_finding(store, latest.case_id or latest.id, cache=cache, runs=newest)
    assert run.id == "run-23" and found.id == latest.id  # by case id: the newest run first
    store.close()
