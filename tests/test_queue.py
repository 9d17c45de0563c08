"""The ranked queue: merging across detectors, ranking, canonical form."""

from __future__ import annotations

from ringscope.algorithms.queue import build_queue, merge_findings
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, finding_id

A = DetectorInfo("lockstep", "1", {"window_s": 60})
B = DetectorInfo("shared_identifiers", "1", {})


def _f(det: DetectorInfo, kind: str, ids: list[str], score: float, **kw: object) -> Finding:
    return Finding.build(
        kind=kind,
        score=score,
        members=[Member(i, "buyer", 0.5) for i in ids],
        signals=[Signal(f"{det.name}_signal", score, 0.5, 1.0)],
        explanation=f"{det.name} saw {len(ids)} accounts.",
        detector=det,
        evidence={det.name: [{"n": len(ids)}]},
        **kw,  # type: ignore[arg-type]
    )


def test_finding_id_depends_on_kind_and_member_set_only() -> None:
    assert finding_id("x", ["b", "a"]) == finding_id("x", ["a", "b", "a"])
    assert finding_id("x", ["a"]) != finding_id("y", ["a"])
    f = _f(A, "engagement_farm", ["u2", "u1"], 0.7)
    assert f.member_ids == ("u1", "u2")
    assert f.id == finding_id("engagement_farm", ["u1", "u2"])


def test_score_is_clipped_into_unit_interval() -> None:
    assert _f(A, "k", ["a"], 1.7).score == 1.0
    assert _f(A, "k", ["a"], -0.2).score == 0.0


def test_overlapping_findings_of_two_detectors_merge_with_noisy_or() -> None:
    f1 = _f(A, "engagement_farm", ["a", "b", "c", "d"], 0.6)
    f2 = _f(B, "identity_cluster", ["b", "c", "d", "e"], 0.5)
    (m,) = build_queue([f1, f2], merge_overlap=0.5)
    assert m.kind == "engagement_farm"  # the stronger finding names the kind
    assert m.member_ids == ("a", "b", "c", "d", "e")
    assert abs(m.score - (1 - 0.4 * 0.5)) < 1e-9
    assert {d.name for d in m.detectors} == {"lockstep", "shared_identifiers"}
    assert set(m.evidence) == {"lockstep", "shared_identifiers"}
    assert {s.name for s in m.signals} == {"lockstep_signal", "shared_identifiers_signal"}


def test_findings_of_one_detector_never_merge() -> None:
    f1 = _f(A, "engagement_farm", ["a", "b", "c"], 0.6)
    f2 = _f(A, "engagement_farm", ["a", "b", "c", "d"], 0.5)
    assert len(build_queue([f1, f2])) == 2


def test_disjoint_findings_stay_apart_and_rank_by_score_then_id() -> None:
    fs = [
        _f(A, "engagement_farm", ["a", "b"], 0.5),
        _f(B, "identity_cluster", ["c", "d"], 0.9),
        _f(B, "identity_cluster", ["e", "f"], 0.5),
    ]
    q = build_queue(fs)
    assert [f.score for f in q] == [0.9, 0.5, 0.5]
    assert q[1].id < q[2].id


def test_containment_merges_a_small_finding_into_a_big_one() -> None:
    big = _f(A, "engagement_farm", [f"u{i}" for i in range(20)], 0.8)
    small = _f(B, "identity_cluster", ["u1", "u2", "u3"], 0.4)
    (m,) = build_queue([big, small], merge_overlap=0.9, merge_containment=0.8)
    assert len(m.members) == 20


def test_min_score_drops_weak_findings() -> None:
    q = build_queue([_f(A, "k", ["a"], 0.2), _f(B, "k2", ["b"], 0.6)], min_score=0.3)
    assert [f.member_ids for f in q] == [("b",)]


def test_queue_is_deterministic_whatever_the_input_order() -> None:
    fs = [
        _f(A, "engagement_farm", ["a", "b", "c"], 0.6),
        _f(B, "identity_cluster", ["b", "c", "x"], 0.6),
        _f(B, "identity_cluster", ["p", "q"], 0.3),
    ]
    one = [f.to_dict() for f in build_queue(fs)]
    two = [f.to_dict() for f in build_queue(list(reversed(fs)))]
    assert one == two


def test_merge_keeps_highest_member_score_and_all_beneficiaries() -> None:
    f1 = Finding.build(
        kind="commission_ring",
        score=0.7,
        members=[Member("a", "buyer", 0.9), Member("b", "buyer", 0.2)],
        beneficiaries=[Beneficiary("c1", "creator")],
        explanation="x",
        detector=A,
    )
    f2 = Finding.build(
        kind="identity_cluster",
        score=0.4,
        members=[Member("a", "buyer", 0.3), Member("b", "buyer", 0.8)],
        beneficiaries=[Beneficiary("s1", "seller")],
        explanation="y",
        detector=B,
    )
    m = merge_findings(f1, f2)
    assert {x.account_id: x.score for x in m.members} == {"a": 0.9, "b": 0.8}
    assert [b.account_id for b in m.beneficiaries] == ["c1", "s1"]
    assert Finding.from_dict(m.to_dict()) == m
