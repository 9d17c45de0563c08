"""The periodic detection job: diffs between runs, decisions that follow a network,
incremental loads. (The job as a process on every store: tests/contract/test_job.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ringscope.graphs.embedded import EmbeddedStore
from ringscope.jobs.detect import _raised_again
from ringscope.jobs.diff import diff_findings, summarise
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


def test_an_unknown_store_uri_is_refused_before_any_lock_file_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ringscope.errors import ConfigError
    from ringscope.jobs.lock import job_lock

    monkeypatch.chdir(tmp_path)
    with (
        pytest.raises(ConfigError, match="unknown store URI"),
        job_lock("http://evil.example/x", tmp_path / "var"),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_a_job_told_not_to_wait_fails_at_once_naming_the_holder(
    market: Path, tmp_path: Path
) -> None:
    """``RINGSCOPE_STORE_WAIT_S=0``: a job that finds the embedded store's file held does
    not ask for it (tests/test_store_sharing.py has the app that steps aside)."""
    from ringscope.graphs.sharing import request_path

    db = tmp_path / "held.duckdb"
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "var"), "RINGSCOPE_STORE_WAIT_S": "0"}
    env.pop("RINGSCOPE_STORE", None)
    with EmbeddedStore(db):
        p = subprocess.run(
            [*RINGSCOPE, "job", str(market / "full"), "--store", str(db), "--quiet"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert p.returncode == 1
    assert f"in use by another process (pid {os.getpid()}" in p.stderr
    assert "asked it to step aside" not in p.stderr and not request_path(db).exists()
