"""The periodic job as a real process, on every store: two days of data in turn,
decisions that survive re-runs, a job killed mid-detection, two jobs at once.

The two days are built from a generated marketplace. Day 1 is the whole
marketplace plus two copies of its commission rings under new names: ring A
(active over the last days) and ring D (active only at the far edge of the
detection window). Day 2 is an incremental export: three new buyers join ring
A, and ring C (a third copy) appears. With a 7-day window, day 2's later
activity moves the window past ring D. So the second run must see A ``grown``
(and, confirmed by an investigator after day 1, raised again with its decision
kept), C ``new`` and D ``dissolved``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ringscope.graphs.store import GraphStore
from ringscope.loaders.synthetic import REFERENCE_NOW
from ringscope.model import Decision, Finding

RINGSCOPE = [sys.executable, "-m", "ringscope.cli"]
STORES = ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)]
WINDOW_DAYS = 7
REF = pd.Timestamp(REFERENCE_NOW)
TABLES = ("accounts", "orders", "identifiers", "affiliations")


# ------------------------------------------------------------------ the two days


def _read(folder: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)


def _iso(ts: pd.Series) -> pd.Series:
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def copy_ring(
    base: Path,
    rename: dict[str, str],
    *,
    tag: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    buyers_only: bool = False,
) -> dict[str, pd.DataFrame]:
    """Rows of a copy of the accounts in ``rename`` under their new names: their
    accounts (``buyers_only``: only the renamed buyers), their orders as buyers
    (moved, keeping their order, into ``[start, end]``), their identifiers (values
    tagged with ``tag``, so copies of one ring share them, in use from ``start`` to
    ``end``) and the affiliations among them."""
    old = list(rename)
    orders = _read(base, "orders")
    o = orders[orders.buyer_id.isin(old)].copy()
    ts = pd.to_datetime(o.ts, utc=True)
    t0, t1 = ts.min(), ts.max()
    scale = (end - start) / (t1 - t0)

    def move(col: pd.Series) -> pd.Series:
        t = pd.to_datetime(col.replace("", None), utc=True)
        return _iso(start + (t - t0) * scale).fillna("")

    o["ts"], o["refunded_at"] = move(o.ts), move(o.refunded_at)
    for col in ("buyer_id", "seller_id", "creator_id"):
        o[col] = o[col].map(lambda v: rename.get(v, v))
    o["order_id"] = o.order_id + f"-{tag}-{start:%m%d}"
    acc = _read(base, "accounts")
    acc = acc[acc.account_id.isin(old)].copy()
    if buyers_only:
        acc = acc[acc.account_id.isin(orders.buyer_id)]
    created = pd.to_datetime(acc.created_at, utc=True)
    acc["created_at"] = _iso(created.where(created < start, start - pd.Timedelta(days=3)))
    acc["account_id"] = acc.account_id.map(rename)
    ids = _read(base, "identifiers")
    i = ids[ids.account_id.isin(old)].copy()
    i["account_id"] = i.account_id.map(rename)
    i["value"] = i.value + f"-{tag}"
    i["first_seen"] = _iso(pd.Series(start - pd.Timedelta(days=1), index=i.index))
    i["last_seen"] = _iso(pd.Series(end, index=i.index))
    aff = _read(base, "affiliations")
    a = aff[aff.creator_id.isin(old) & aff.seller_id.isin(old)].copy()
    a["creator_id"], a["seller_id"] = a.creator_id.map(rename), a.seller_id.map(rename)
    a["since"] = _iso(pd.Series(start - pd.Timedelta(days=2), index=a.index))
    return {"accounts": acc, "orders": o, "identifiers": i, "affiliations": a}


def write_export(folder: Path, parts: list[dict[str, pd.DataFrame]], base: Path | None) -> None:
    folder.mkdir(parents=True)
    if base is not None:
        for f in base.glob("*.csv"):
            if f.name != "truth.csv":
                (folder / f.name).write_bytes(f.read_bytes())
    for table in TABLES:
        frames = [p[table] for p in parts if len(p[table])]
        if base is not None:
            frames.insert(0, _read(base, table))
        if frames:
            pd.concat(frames, ignore_index=True).to_csv(folder / f"{table}.csv", index=False)


@dataclass(frozen=True)
class Days:
    day1: Path
    day2: Path
    policy: Path
    rings: dict[str, set[str]]  # "A", "C", "D" -> members; "A+" -> the day-2 joiners


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> Days:
    from ringscope.loaders.synthetic import generate

    root = tmp_path_factory.mktemp("days")
    base = root / "base"
    generate(base, events=8_000, seed=21, fmt="csv")
    truth = pd.read_csv(base / "truth.csv", dtype=str)
    cr = sorted(truth[truth.kind == "commission_ring"].ring_id.unique())
    assert len(cr) >= 3

    def names(ring_id: str, tag: str) -> dict[str, str]:
        members = truth[truth.ring_id == ring_id]
        pairs = zip(members.account_id, members.role, strict=True)
        return {a: f"{tag}-{r}-{n:02d}" for n, (a, r) in enumerate(pairs)}

    h = pd.Timedelta(hours=1)
    ren_a, ren_c, ren_d = names(cr[1], "a"), names(cr[2], "c"), names(cr[0], "d")
    ring_a = copy_ring(base, ren_a, tag="a", start=REF - 96 * h, end=REF - 12 * h)
    ring_d = copy_ring(
        base, ren_d, tag="d", start=REF - WINDOW_DAYS * 24 * h + 2 * h,
        end=REF - WINDOW_DAYS * 24 * h + 14 * h,
    )  # fmt: skip
    # day 2: three of A's buyers' accounts come back as new accounts on A's links
    buyers = truth[(truth.ring_id == cr[1]) & (truth.role == "buyer")].account_id[:3]
    join = {b: f"a-buyer-new-{k}" for k, b in enumerate(buyers)}
    creator_seller = {a: n for a, n in ren_a.items() if "-buyer-" not in n}
    ring_a2 = copy_ring(
        base, {**join, **creator_seller}, tag="a", start=REF + 2 * h, end=REF + 10 * h,
        buyers_only=True,
    )  # fmt: skip
    for table in ("accounts", "identifiers"):
        rows = ring_a2[table]
        ring_a2[table] = rows[rows.account_id.isin(join.values())]
    ring_a2["affiliations"] = ring_a2["affiliations"].iloc[:0]
    ring_c = copy_ring(base, ren_c, tag="c", start=REF + 1 * h, end=REF + 20 * h)
    write_export(root / "day1", [ring_a, ring_d], base)
    write_export(root / "day2", [ring_a2, ring_c], None)
    policy = root / "policy.yaml"
    policy.write_text(f"window_days: {WINDOW_DAYS}\n", encoding="utf-8")
    return Days(
        day1=root / "day1",
        day2=root / "day2",
        policy=policy,
        rings={
            "A": set(ren_a.values()),
            "A+": set(join.values()),
            "C": set(ren_c.values()),
            "D": set(ren_d.values()),
        },
    )


# ------------------------------------------------------------------ running jobs


@dataclass
class JobStore:
    """A store of one kind, and how to run the ``ringscope job`` process on it."""

    kind: str
    uri: str
    env: dict[str, str]
    folder: Path
    request: pytest.FixtureRequest

    def job(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*RINGSCOPE, "job", *map(str, args), "--store", self.uri, "--quiet"],
            cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    def popen(self, *args: str | Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*RINGSCOPE, "job", *map(str, args), "--store", self.uri, "--quiet"],
            cwd=self.folder, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip

    def open(self) -> GraphStore:
        if self.kind == "embedded":
            from ringscope.graphs.embedded import EmbeddedStore

            return EmbeddedStore(self.uri)
        from ringscope.graphs.neo4j_store import Neo4jStore

        return Neo4jStore(
            self.uri,
            auth=_auth(),
            database=os.environ.get("NEO4J_DATABASE", "neo4j"),
            columnar_path=self.env["RINGSCOPE_COLUMNAR_PATH"],
        )


def _auth() -> tuple[str, str] | None:
    password = os.environ.get("NEO4J_PASSWORD")
    return (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None


@pytest.fixture(params=STORES)
def js(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "var")}
    env.pop("RINGSCOPE_STORE", None)
    if request.param == "embedded":
        yield JobStore("embedded", str(tmp_path / "store.duckdb"), env, tmp_path, request)
        return
    env["RINGSCOPE_COLUMNAR_PATH"] = str(tmp_path / "events.duckdb")
    js = JobStore("neo4j", request.getfixturevalue("neo4j_uri"), env, tmp_path, request)
    with js.open() as store:
        store.wipe()  # type: ignore[attr-defined]
    yield js


def summary(p: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert p.returncode == 0, p.stderr[-3000:]
    doc: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return doc


def holding(findings: list[Finding], members: set[str]) -> Finding:
    """The finding that holds most of ``members`` (at least half of them)."""
    best = max(findings, key=lambda f: len(members & set(f.member_ids)))
    assert len(members & set(best.member_ids)) >= len(members) / 2, sorted(members)
    return best


# ------------------------------------------------------------------ tests


def test_two_days_in_turn_give_new_grown_and_dissolved(js: JobStore, days: Days) -> None:
    first = summary(js.job(days.day1, "--policy", days.policy))
    assert first["changes"]["new"] == first["findings"] > 0
    with js.open() as store:
        run1 = store.findings(first["run_id"])
        a1, d1 = holding(run1, days.rings["A"]), holding(run1, days.rings["D"])
        assert not days.rings["C"] & {m for f in run1 for m in f.member_ids}
        assert a1.kind == d1.kind == "commission_ring"
        store.record_decision(
            Decision(a1.case_id or a1.id, "confirmed", "ana", datetime.now(UTC), "ring A")
        )

    second = summary(js.job(days.day2, "--policy", days.policy))
    assert second["rows_rejected"] == 0 and second["rows_loaded"] > 0
    assert second["raised_again"] >= 1
    with js.open() as store:
        run2 = store.findings(second["run_id"])
        a2, c2 = holding(run2, days.rings["A"]), holding(run2, days.rings["C"])
        assert a2.status == "grown" and a2.case_id == a1.case_id and a2.previous_id == a1.id
        assert days.rings["A+"] <= set(a2.member_ids)
        assert c2.status == "new" and c2.case_id == c2.id
        assert not any(days.rings["D"] & set(f.member_ids) for f in run2)
        run = store.get_run(second["run_id"])
        assert d1.id in run.summary["dissolved"]
        assert a2.id in run.summary["raised_again"]
        # the confirmation made on day 1 still belongs to the network on day 2
        assert [d.decision for d in store.decisions(a2.case_id)] == ["confirmed"]
        assert run.summary["previous_run"] == first["run_id"]


def test_rerunning_the_same_job_marks_everything_unchanged(js: JobStore, days: Days) -> None:
    first = summary(js.job(days.day1))
    with js.open() as store:
        f1 = store.findings(first["run_id"])
        top = f1[0]
        # an escalation keeps the data as it was (confirmations and dismissals become
        # labels for the next run, tests/test_feedback.py)
        store.record_decision(
            Decision(top.case_id or top.id, "escalated", "ana", datetime.now(UTC), "look")
        )
    second = summary(js.job(days.day1))
    assert second["rows_loaded"] == 0
    assert second["changes"] == {
        "new": 0, "grown": 0, "shrunk": 0, "unchanged": first["findings"], "dissolved": 0,
    }  # fmt: skip
    with js.open() as store:
        f2 = store.findings(second["run_id"])
        assert [f.id for f in f2] == [f.id for f in f1]
        assert [f.case_id for f in f2] == [f.case_id for f in f1]
        assert [d.decision for d in store.decisions(f2[0].case_id)] == ["escalated"]


def test_a_job_killed_mid_detection_leaves_the_previous_run_current(
    js: JobStore, days: Days
) -> None:
    first = summary(js.job(days.day1))
    with js.open() as store:
        counts = store.counts()
    proc = js.popen(days.day2)
    deadline = time.monotonic() + 300
    while not (_phase(js) or "").startswith("detecting: "):  # its run has begun
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    with js.open() as store:
        latest = store.latest_run()
        assert latest is not None and latest.id == first["run_id"]
        assert len(store.findings()) == first["findings"]
        assert store.counts()["orders"] > counts["orders"]  # the load of day 2 had finished
    third = summary(js.job(days.day2))
    assert third["rows_loaded"] == 0  # nothing of day 2 is loaded twice
    with js.open() as store:
        runs = store.runs()
        assert [r.status for r in runs].count("running") == 0
        assert sum(r.status == "failed" for r in runs) == 1  # the killed run, abandoned
        assert store.latest_run().id == third["run_id"]  # type: ignore[union-attr]


def test_two_jobs_at_once_one_refuses_with_a_clear_message(js: JobStore, days: Days) -> None:
    # On the embedded store this process holds the file first (as a command that does not
    # step aside would), so the first job holds its lock, waiting for the file, for as long
    # as the second one needs to start: the test does not race a fast job.
    holder = js.open() if js.kind == "embedded" else None
    proc = js.popen(days.day1)
    try:
        deadline = time.monotonic() + 120
        while (phase := _phase(js)) is None or (
            holder is not None and not phase.startswith("waiting for the store")
        ):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = js.job(days.day1)
        assert second.returncode == 1
        assert "another ringscope job is running" in second.stderr
        assert f"pid {proc.pid}" in second.stderr
    finally:
        if holder is not None:
            holder.close()
        _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-3000:]
    with js.open() as store:
        assert len(store.runs()) == 1


def _phase(js: JobStore) -> str | None:
    """What the job holding the store's lock says it is doing (None: no job)."""
    from ringscope.jobs.lock import lock_path

    path = lock_path(js.uri, js.env["RINGSCOPE_WORK_DIR"])
    try:
        phase = json.loads(path.read_text(encoding="utf-8"))["phase"]
    except (OSError, ValueError, KeyError):
        return None
    return str(phase)


@pytest.mark.neo4j
def test_a_neo4j_store_is_leased_to_one_job_whatever_its_work_folder(
    days: Days, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from ringscope.jobs.lock import LEASE_NAME, store_lease

    js = JobStore(
        "neo4j", request.getfixturevalue("neo4j_uri"),
        {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "elsewhere"),
         "RINGSCOPE_COLUMNAR_PATH": str(tmp_path / "events.duckdb")},
        tmp_path, request,
    )  # fmt: skip
    from ringscope.graphs.neo4j_store import Neo4jStore

    # the holder: a job of another machine (its own side file) on the same database
    with Neo4jStore(js.uri, auth=_auth(), columnar_path=tmp_path / "other.duckdb") as store:
        store.wipe()
        with store_lease(store, js.uri):
            refused = js.job(days.day1)
        assert refused.returncode == 1
        assert "another ringscope job is running" in refused.stderr
        assert f"pid {os.getpid()}" in refused.stderr
        assert store.runs() == [] and store.graph_counts()["Account"] == 0

        # a holder on this machine whose process is gone is taken over at once
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        holder = {"host": os.uname().nodename, "pid": int(gone.stdout), "since": "earlier"}
        assert (
            store.acquire_lease(LEASE_NAME, "old", holder, 600, take_over=lambda h: False) is None
        )
    assert summary(js.job(days.day1))["status"] == "succeeded"
