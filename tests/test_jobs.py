"""The periodic detection job: diffs between runs, decisions that follow a network,
one job at a time, safe to interrupt, incremental loads."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ringscope.errors import ConcurrentRunError
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.jobs.detect import _raised_again
from ringscope.jobs.diff import diff_findings, summarise
from ringscope.jobs.lock import job_lock
from ringscope.model import Decision, DetectorInfo, Finding, Member

D = DetectorInfo("test", "1")


def mk(ids: list[str], kind: str = "engagement_farm", score: float = 0.5) -> Finding:
    return Finding.build(
        kind=kind, score=score, explanation="", detector=D,
        members=[Member(i, "buyer", 1.0) for i in ids],
    )  # fmt: skip


# ------------------------------------------------------------------ diff (pure)


def test_every_status_of_a_diff() -> None:
    prev = [mk(list("abcd")), mk(list("efgh")), mk(list("ijkl")), mk(list("mnop"))]
    cur = [
        mk(list("abcd")),  # unchanged
        mk(list("efghxy")),  # grown
        mk(list("ijk")),  # shrunk
        mk(list("qrst")),  # new
    ]
    out, changes = diff_findings(prev, cur)
    assert [c.status for c in changes] == ["unchanged", "grown", "shrunk", "new", "dissolved"]
    assert changes[1].added == ("x", "y") and changes[2].removed == ("l",)
    assert changes[4].previous_id == prev[3].id
    assert [f.status for f in out] == ["unchanged", "grown", "shrunk", "new"]
    assert [f.case_id for f in out] == [prev[0].id, prev[1].id, prev[2].id, cur[3].id]
    assert summarise(changes) == {
        "new": 1, "grown": 1, "shrunk": 1, "unchanged": 1, "dissolved": 1,
    }  # fmt: skip


def test_case_id_follows_a_network_over_several_runs() -> None:
    r1, _ = diff_findings([], [mk(list("abcdef"))])
    r2, _ = diff_findings(r1, [mk(list("abcdefg"))])
    r3, _ = diff_findings(r2, [mk(list("bcdefgh"))])
    assert r1[0].status == "new" and r2[0].status == "grown" and r3[0].status in {"grown", "shrunk"}
    assert r1[0].case_id == r2[0].case_id == r3[0].case_id == r1[0].id
    assert r3[0].previous_id == r2[0].id


def test_matching_is_one_to_one_and_prefers_the_strongest_overlap() -> None:
    prev = [mk(list("abcdefgh"))]
    cur = [mk(list("abcdefg")), mk(list("abcdefgh"), kind="identity_cluster")]
    _, changes = diff_findings(prev, cur)
    assert [c.status for c in changes] == ["new", "unchanged"]


def test_small_overlap_does_not_match() -> None:
    _, changes = diff_findings([mk(list("abcdefgh"))], [mk(list("ahxyzuvw"))])
    assert [c.status for c in changes] == ["new", "dissolved"]


def test_confirmed_case_that_grows_is_raised_again(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "s.duckdb") as store:
        prev = [mk(list("abcd")), mk(list("wxyz"))]
        store.record_decision(
            Decision(prev[0].id, "confirmed", "ana", datetime(2026, 11, 1, tzinfo=UTC), "ring")
        )
        store.record_decision(
            Decision(prev[1].id, "dismissed", "ana", datetime(2026, 11, 1, tzinfo=UTC), "")
        )
        cur, _ = diff_findings(prev, [mk(list("abcde")), mk(list("wxyzv"))])
        assert _raised_again(store, cur) == [cur[0].id]


# ------------------------------------------------------------------ the job, as a process

RINGSCOPE = [sys.executable, "-m", "ringscope.cli"]


def job(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(cwd / "var")}
    env.pop("RINGSCOPE_STORE", None)
    return subprocess.run(
        [*RINGSCOPE, "job", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def last_json(p: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert p.returncode == 0, p.stderr
    line = p.stdout.strip().splitlines()[-1]
    doc: dict[str, object] = json.loads(line)
    return doc


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ringscope.loaders.synthetic import generate

    d = tmp_path_factory.mktemp("jobmarket")
    generate(d / "full", events=20_000, seed=21, fmt="csv")
    return d


def test_rerunning_the_same_job_marks_everything_unchanged(market: Path, tmp_path: Path) -> None:
    db = tmp_path / "j.duckdb"
    first = last_json(job(market / "full", "--store", db, "--quiet", cwd=tmp_path))
    changes = first["changes"]
    assert isinstance(changes, dict) and first["findings"]
    assert changes["new"] == first["findings"] and changes["dissolved"] == 0
    second = last_json(job(market / "full", "--store", db, "--quiet", cwd=tmp_path))
    assert second["rows_loaded"] == 0
    assert second["changes"] == {
        "new": 0, "grown": 0, "shrunk": 0, "unchanged": first["findings"], "dissolved": 0,
    }  # fmt: skip
    with EmbeddedStore(db) as s:
        a, b = (s.findings(r) for r in (first["run_id"], second["run_id"]))
    assert [f.id for f in a] == [f.id for f in b]
    assert {f.case_id for f in a} == {f.case_id for f in b}


def test_incremental_export_loads_only_new_rows(market: Path, tmp_path: Path) -> None:
    part = tmp_path / "part"
    shutil.copytree(market / "full", part)
    ev = pd.read_csv(part / "engagements.csv", dtype=str, keep_default_na=False)
    ev.iloc[: len(ev) * 2 // 3].to_csv(part / "engagements.csv", index=False)
    db = tmp_path / "j.duckdb"
    first = last_json(job(part, "--store", db, "--quiet", cwd=tmp_path))
    second = last_json(job(market / "full", "--store", db, "--quiet", cwd=tmp_path))
    with EmbeddedStore(db) as s:
        assert s.counts()["engagements"] == len(ev)
        loads = s.loads()
    assert loads[-1].tables["engagements"].loaded == len(ev) - len(ev) * 2 // 3
    assert loads[-1].tables["engagements"].duplicates == len(ev) * 2 // 3
    assert second["rows_loaded"] == len(ev) - len(ev) * 2 // 3
    assert first["run_id"] != second["run_id"]


def test_a_second_job_on_the_same_store_is_refused_with_a_clear_message(
    market: Path, tmp_path: Path
) -> None:
    db = tmp_path / "j.duckdb"
    with job_lock(str(db), tmp_path / "var"):
        p = job(market / "full", "--store", db, "--quiet", cwd=tmp_path)
        with pytest.raises(ConcurrentRunError), job_lock(str(db), tmp_path / "var"):
            pass
    assert p.returncode == 1
    assert "another ringscope job is running" in p.stderr and f"pid {os.getpid()}" in p.stderr
    assert not db.exists() or EmbeddedStore(db).latest_run() is None


@pytest.mark.parametrize("delay", [1.5, 5.0])
def test_a_killed_job_leaves_the_previous_run_current(
    market: Path, tmp_path: Path, delay: float
) -> None:
    db = tmp_path / "j.duckdb"
    first = last_json(job(market / "full", "--store", db, "--quiet", cwd=tmp_path))
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "var")}
    proc = subprocess.Popen(
        [*RINGSCOPE, "job", str(market / "full"), "--store", str(db), "--quiet"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with EmbeddedStore(db) as s:
        latest = s.latest_run()
        assert latest is not None
        if latest.id != first["run_id"]:  # the killed job had already finished
            assert latest.status == "succeeded"
        assert len(s.findings(latest.id)) == first["findings"]
        counts = s.counts()
    third = last_json(job(market / "full", "--store", db, "--quiet", cwd=tmp_path))
    assert third["changes"]["unchanged"] == first["findings"]  # type: ignore[index]
    with EmbeddedStore(db) as s:
        assert s.counts() == counts
        assert all(r.status != "running" for r in s.runs())
