"""Decisions fed back into detection: labels for propagation, dismissed networks not
raised again, precision and time to decision, and threshold suggestions."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ringscope.graphs.embedded import EmbeddedStore
from ringscope.jobs.detect import run_detection
from ringscope.jobs.feedback import decision_labels, decision_metrics, suppressed
from ringscope.jobs.suggest import as_policy_yaml, suggest
from ringscope.model import Decision, DetectorInfo, Finding, Member
from ringscope.policy import default_policy, load_policy

D = DetectorInfo("commission_rings", "1")
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def mk(ids: list[str], score: float = 0.5, detector: DetectorInfo = D) -> Finding:
    return Finding.build(
        kind="commission_ring", score=score, explanation="", detector=detector,
        members=[Member(i, "buyer", 1.0) for i in ids],
    )  # fmt: skip


def decide(case: str, what: str, days: int = 0) -> Decision:
    return Decision(case, what, "ana", NOW + timedelta(days=days), "")  # type: ignore[arg-type]


# ------------------------------------------------------------------ pure rules


def test_decisions_become_labels_the_latest_one_per_case() -> None:
    a, b = mk(list("abc")), mk(list("xy"))
    labels = decision_labels(
        [decide(a.id, "dismissed"), decide(a.id, "confirmed", 1), decide(b.id, "escalated")],
        [a, b],
    )
    assert sorted(labels.subject_id) == ["a", "b", "c"] and set(labels.label) == {"abusive"}
    assert decision_labels([decide("gone", "confirmed")], [a]).empty


def test_a_dismissed_network_comes_back_only_when_it_changed_materially() -> None:
    prev = mk([f"u{i}" for i in range(10)], score=0.5)
    dismissed = [decide(prev.id, "dismissed")]

    def cur(n: int, score: float = 0.5) -> Finding:
        f = mk([f"u{i}" for i in range(n)], score=score)
        return dataclasses.replace(f, case_id=prev.id, previous_id=prev.id)

    def held(f: Finding, baselines: dict[str, dict[str, object]] | None = None) -> bool:
        out = suppressed([f], dismissed, [prev], baselines or {}, regrowth=0.2, rescore=0.1)
        return f.id in out

    assert held(cur(10)) and held(cur(11)) and held(cur(8))
    assert not held(cur(12))  # 20% more accounts
    assert not held(cur(10, score=0.6))  # score up by 0.1
    # growth is measured against the size when it was dismissed, not last night's
    creeping = {prev.id: {"case_id": prev.id, "members": 8, "score": 0.5}}
    assert not held(cur(10), creeping)
    confirmed = suppressed([cur(10)], [decide(prev.id, "confirmed")], [prev], {}, regrowth=0.2,
                           rescore=0.1)  # fmt: skip
    assert confirmed == {}


def test_suggestions_move_thresholds_the_way_the_decisions_point(tmp_path: Path) -> None:
    # a policy that has raised the threshold (the default, 0, reports every significant
    # group), so that a suggestion may go either way
    path = tmp_path / "policy.yaml"
    path.write_text("detectors:\n  commission_rings:\n    params:\n      min_score: 0.6\n")
    policy = load_policy(path)
    current = float(policy.detectors["commission_rings"].params["min_score"])
    assert current == 0.6
    noisy = [mk([f"n{i}", f"m{i}"], score=current + 0.01 * (i + 1)) for i in range(8)]
    good = [mk([f"g{i}", f"h{i}"], score=current + 0.3) for i in range(2)]
    decisions = [decide(f.id, "dismissed") for f in noisy] + [
        decide(f.id, "confirmed") for f in good
    ]
    (up,) = suggest(policy, noisy + good, decisions, noisy + good)
    assert up.detector == "commission_rings" and up.proposed > current
    assert up.latest_removed is not None and up.latest_removed >= 6
    assert up.latest_removed_confirmed == 0
    assert f"min_score: {up.proposed}" in as_policy_yaml([up])

    sure = [mk([f"s{i}", f"t{i}"], score=current + 0.2) for i in range(6)]
    (down,) = suggest(policy, sure, [decide(f.id, "confirmed") for f in sure], sure)
    assert down.proposed < current and down.latest_removed is None
    assert suggest(policy, sure[:3], [decide(f.id, "confirmed") for f in sure[:3]], sure) == []


# ------------------------------------------------------------------ on a store


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a generated marketplace and three accomplices: new accounts that
    share a device with each of two buyers of the last commission ring, and do nothing
    else (too little for any detector on its own)."""
    from ringscope.loaders.pipeline import load_export
    from ringscope.loaders.synthetic import generate

    root = tmp_path_factory.mktemp("feedback")
    generate(root / "m", events=8_000, seed=21, fmt="csv")
    (root / "m" / "labels.csv").unlink()  # no investigator has labelled anyone yet
    truth = pd.read_csv(root / "m" / "truth.csv", dtype=str)
    ring = sorted(truth[truth.kind == "commission_ring"].ring_id.unique())[-1]
    buyers = truth[(truth.ring_id == ring) & (truth.role == "buyer")].account_id.tolist()
    ids = pd.read_csv(root / "m" / "identifiers.csv", dtype=str, keep_default_na=False)
    extra = root / "accomplices"
    extra.mkdir()
    rows, accounts = [], []
    for k in range(3):
        acc = f"accomplice-{k}"
        accounts.append({"account_id": acc, "roles": "buyer", "created_at": "2026-10-20T00:00:00Z"})
        for b in buyers[k : k + 2]:
            own = ids[(ids.account_id == b) & (ids.kind == "device")].head(1)
            for r in own.itertuples():
                rows.append({"account_id": acc, "kind": r.kind, "value": r.value,
                             "first_seen": "2026-10-20T00:00:00Z", "last_seen": ""})  # fmt: skip
    pd.DataFrame(accounts).to_csv(extra / "accounts.csv", index=False)
    pd.DataFrame(rows).drop_duplicates().to_csv(extra / "identifiers.csv", index=False)
    path = root / "store.duckdb"
    with EmbeddedStore(path) as store:
        load_export(store, root / "m", rejects_dir=root / "rejects")
        report = load_export(store, extra, rejects_dir=root / "rejects")
        assert report.rejected == 0
    (root / "ring.txt").write_text("\n".join(buyers), encoding="utf-8")
    return path


@pytest.fixture
def feedback_store(loaded: Path, tmp_path: Path) -> EmbeddedStore:
    """A private copy of :func:`loaded`, for one test (it closes it)."""
    shutil.copy(loaded, tmp_path / "store.duckdb")
    return EmbeddedStore(tmp_path / "store.duckdb")


def member_scores(findings: list[Finding]) -> dict[str, float]:
    best: dict[str, float] = {}
    for f in findings:
        for m in f.members:
            best[m.account_id] = max(best.get(m.account_id, 0.0), f.score * m.score)
    return best


def test_a_confirmed_ring_raises_its_unflagged_accomplices(
    feedback_store: EmbeddedStore, loaded: Path
) -> None:
    ring = set((loaded.parent / "ring.txt").read_text(encoding="utf-8").split())
    with feedback_store:
        first = run_detection(feedback_store)
        found = max(first.findings, key=lambda f: len(ring & set(f.member_ids)))
        assert len(ring & set(found.member_ids)) >= len(ring) / 2
        before = member_scores(first.findings)
        accomplices = [f"accomplice-{k}" for k in range(3)]
        assert all(before.get(a, 0.0) == 0.0 for a in accomplices)
        feedback_store.record_decision(decide(found.case_id, "confirmed"))
        second = run_detection(feedback_store)
    after = member_scores(second.findings)
    assert second.run.summary["labels_from_decisions"] == len(found.members)
    raised = [a for a in accomplices if after.get(a, 0.0) > 0.0]
    assert len(raised) >= 2, after


def test_a_dismissed_finding_is_not_raised_on_the_next_run(feedback_store: EmbeddedStore) -> None:
    with feedback_store:
        first = run_detection(feedback_store)
        top = first.findings[0]
        feedback_store.record_decision(decide(top.case_id, "dismissed"))
        second = run_detection(feedback_store)
        again = next(f for f in second.findings if f.case_id == top.case_id)
        held = second.run.summary["suppressed"]
        assert again.id in held and held[again.id]["members"] == len(top.members)
        third = run_detection(feedback_store)  # still held, against the same baseline
        assert third.run.summary["suppressed"] == held
        assert set(third.run.summary["suppressed"]) <= {f.id for f in third.findings}


def test_precision_and_time_to_decision_per_detector(feedback_store: EmbeddedStore) -> None:
    with feedback_store:
        run = run_detection(feedback_store)
        a, b = run.findings[0], run.findings[1]
        feedback_store.record_decision(decide(a.case_id, "confirmed"))
        feedback_store.record_decision(decide(b.case_id, "dismissed"))
        metrics = decision_metrics(feedback_store)
    assert sum(m["findings"] for m in metrics) == len(run.findings)
    assert sum(m["confirmed"] for m in metrics) == 1 and sum(m["dismissed"] for m in metrics) == 1
    for m in metrics:
        if m["decided"]:
            assert m["precision"] == m["confirmed"] / (m["confirmed"] + m["dismissed"])
            assert m["median_hours_to_decision"] is not None
        assert m["policy"].startswith(default_policy().version)


def test_policy_suggest_command(feedback_store: EmbeddedStore, tmp_path: Path) -> None:
    with feedback_store:
        run = run_detection(feedback_store)
        for f in run.findings:
            feedback_store.record_decision(decide(f.case_id, "dismissed"))
    path = str(feedback_store.path)
    p = subprocess.run(
        [sys.executable, "-m", "ringscope.cli", "policy", "suggest", "--store", path,
         "--min-decided", "1", "--format", "json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["suggestions"], doc
    assert all(s["proposed"] > s["current"] for s in doc["suggestions"])
    assert all(m["precision"] in (0.0, None) for m in doc["decisions"])


def test_the_apps_queue_leaves_held_back_findings_out_unless_asked(
    feedback_store: EmbeddedStore,
) -> None:
    from ringscope.api.queries import queue

    with feedback_store:
        first = run_detection(feedback_store)
        top = first.findings[0]
        feedback_store.record_decision(decide(top.case_id, "dismissed"))
        second = run_detection(feedback_store)
        held = set(second.run.summary["suppressed"])
        shown = {i.finding.id for i in queue(feedback_store).items}
        everything = {i.finding.id for i in queue(feedback_store, held=True).items}
    assert held and not held & shown and held <= everything
    assert everything - held == shown
