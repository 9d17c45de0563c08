"""The ranked queue: merging across detectors, ranking, canonical form."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.queue import build_queue, merge_findings
from ringscope.algorithms.registry import DETECTORS
from ringscope.jobs.detect import detect_tables
from ringscope.model import (
    Beneficiary,
    DetectorInfo,
    Finding,
    Member,
    Signal,
    canonical_json,
    finding_id,
)
from ringscope.policy import Policy, default_policy

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
    assert set(m.evidence) == {"lockstep", "shared_identifiers", "parts"}
    assert [r["finding_id"] for r in m.evidence["parts"]] == [f1.id, f2.id]
    assert {s.name for s in m.signals} == {
        "lockstep_signal",
        "shared_identifiers_signal",
        "case_parts",
    }


def test_parts_of_one_detector_join_when_they_share_most_members() -> None:
    f1 = _f(A, "engagement_farm", ["a", "b", "c"], 0.6)
    f2 = _f(A, "engagement_farm", ["a", "b", "c", "d"], 0.5)
    (m,) = build_queue([f1, f2])
    assert m.member_ids == ("a", "b", "c", "d")
    # the pieces of one detector do not add up: its best part's score
    assert m.score == 0.6


def test_one_shared_account_never_links() -> None:
    f1 = _f(A, "engagement_farm", ["a", "b"], 0.6)
    f2 = _f(B, "identity_cluster", ["b", "c"], 0.5)
    assert len(build_queue([f1, f2])) == 2
    assert len(build_queue([f1, f2], min_shared=1)) == 1


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


# --------------------------------------------------------------------------- gallery of cases

LOCKSTEP = DetectorInfo("lockstep", "2", {})
IDENTIFIERS = DetectorInfo("shared_identifiers", "2", {})
COMMISSION = DetectorInfo("commission_rings", "2", {})
DENSE = DetectorInfo("dense_blocks", "2", {})
FLOWS = DetectorInfo("money_flows", "1", {})


def _part(
    det: DetectorInfo,
    kind: str,
    ids: list[str],
    score: float,
    *,
    role: str = "account",
    bens: tuple[tuple[str, str], ...] = (),
    evidence: dict[str, list[dict[str, object]]] | None = None,
    signals: tuple[Signal, ...] = (),
) -> Finding:
    return Finding.build(
        kind=kind,
        score=score,
        members=[Member(i, role, score) for i in ids],
        beneficiaries=[Beneficiary(a, r) for a, r in bens],
        signals=[Signal(f"{det.name}_strength", score, 0.5, 1.0), *signals],
        explanation=f"{det.name}: {len(ids)} accounts.",
        detector=det,
        evidence=evidence or {},
    )


def test_gallery_farm_in_nine_device_pools_is_one_engagement_farm_case() -> None:
    bots = [f"bot{i:03d}" for i in range(300)]
    farm = _part(
        LOCKSTEP,
        "engagement_farm",
        [*bots, "fan1", "fan2", "fan3", "fan4"],
        0.74,
        role="engager",
        bens=(("c1", "creator"),),
        evidence={"engagements": [{"account_id": "bot000", "stream_id": "s1"}]},
    )
    # the farm's bots share phones in 9 pools of ~33; shared identifiers sees a
    # cluster of 6-9 accounts in each
    clusters = [
        _part(
            IDENTIFIERS,
            "identity_cluster",
            bots[33 * k : 33 * k + 6 + k % 4],
            0.6 + 0.01 * k,
            evidence={"identifiers": [{"kind": "device", "value": f"pool{k}"}]},
        )
        for k in range(9)
    ]
    queue = build_queue([*clusters, farm])
    assert len(queue) == 1
    (case,) = queue
    assert case.kind == "engagement_farm"
    assert case.member_ids == tuple(sorted([*bots, "fan1", "fan2", "fan3", "fan4"]))
    assert case.id == finding_id("engagement_farm", list(case.member_ids))
    assert {d.name for d in case.detectors} == {"lockstep", "shared_identifiers"}
    assert case.detector.name == "lockstep"  # the main part: the highest scored
    assert len(case.evidence["identifiers"]) == 9 and case.evidence["engagements"]
    assert case.evidence["parts"][0]["finding_id"] == farm.id
    assert len(case.evidence["parts"]) == 10
    assert {s.name: s.value for s in case.signals}["case_parts"] == 10.0
    # noisy-or over detectors of each detector's best part
    assert abs(case.score - (1 - (1 - 0.74) * (1 - 0.68))) < 1e-6
    bot = {m.account_id: m for m in case.members}["bot000"]
    assert bot.role == "engager"  # from the part that scores it highest
    assert abs(bot.score - (1 - (1 - 0.74) * (1 - 0.6))) < 1e-6
    assert [b.account_id for b in case.beneficiaries] == ["c1"]


def test_gallery_commission_ring_seen_by_three_detectors_is_one_case() -> None:
    buyers = [f"b{i:02d}" for i in range(16)]
    # one ring ordering for seller s1 through two creators: one finding per pair,
    # sharing four puppets (under half of either: linked by their common seller)
    via_c1 = _part(
        COMMISSION,
        "commission_ring",
        buyers[:10],
        0.8,
        role="buyer",
        bens=(("c1", "creator"), ("s1", "seller")),
        evidence={"orders": [{"order_id": "o1"}]},
    )
    via_c2 = _part(
        COMMISSION,
        "commission_ring",
        buyers[6:],
        0.7,
        role="buyer",
        bens=(("c2", "creator"), ("s1", "seller")),
        evidence={"orders": [{"order_id": "o2"}]},
    )
    cards = _part(IDENTIFIERS, "identity_cluster", [*buyers[:6], buyers[12]], 0.6)
    block = _part(
        DENSE,
        "dense_orders",
        [*buyers, "x1", "x2"],
        0.55,
        role="buyer",
        bens=(("s1", "seller"),),
    )
    queue = build_queue([block, cards, via_c2, via_c1])
    assert len(queue) == 1
    (case,) = queue
    assert case.kind == "commission_ring"
    # the dense block lies mostly in the case: it brings its two other buyers in
    assert case.member_ids == tuple(sorted([*buyers, "x1", "x2"]))
    assert {d.name for d in case.detectors} == {
        "commission_rings",
        "shared_identifiers",
        "dense_blocks",
    }
    assert [b.account_id for b in case.beneficiaries] == ["c1", "c2", "s1"]
    assert case.evidence["orders"] == [{"order_id": "o1"}, {"order_id": "o2"}]
    assert abs(case.score - (1 - 0.2 * 0.4 * 0.45)) < 1e-6


def test_gallery_two_farms_boosting_one_creator_stay_two_cases() -> None:
    one = [f"f1_{i:02d}" for i in range(20)]
    two = [f"f2_{i:02d}" for i in range(20)]
    f1 = _part(LOCKSTEP, "engagement_farm", one, 0.8, bens=(("c1", "creator"),))
    # the second farm also used one of the first farm's bots
    f2 = _part(LOCKSTEP, "engagement_farm", [*two, one[0]], 0.7, bens=(("c1", "creator"),))
    # a dense block holding both farms half and half joins neither
    block = _part(
        DENSE, "dense_block", [*one, *two], 0.9, signals=(Signal("stands_alone", 0.0, 1.0, 0.0),)
    )
    queue = build_queue([f1, f2, block])
    assert [(f.kind, f.member_ids) for f in queue] == [
        ("engagement_farm", f1.member_ids),
        ("engagement_farm", f2.member_ids),
    ]
    assert queue == [f1, f2]  # untouched: a part alone is reported as it is


def test_gallery_household_tied_to_a_ring_member_by_one_device_stays_apart() -> None:
    ring = [f"r{i:02d}" for i in range(20)]
    farm = _part(LOCKSTEP, "engagement_farm", ring, 0.8, bens=(("c1", "creator"),))
    household = _part(IDENTIFIERS, "identity_cluster", ["r00", "h1", "h2"], 0.6)
    queue = build_queue([farm, household])
    assert sorted(f.member_ids for f in queue) == sorted([farm.member_ids, household.member_ids])


def test_gallery_long_money_cycle_found_as_chains_is_one_case() -> None:
    # a cycle of 12 accounts a0 -> a1 -> ... -> a11 -> a0, found as three chains that
    # meet in the accounts where one hands on to the next
    acc = [f"a{i:02d}" for i in range(12)]
    chains = [
        _part(FLOWS, "money_flow", acc[0:5], 0.9),
        _part(FLOWS, "money_flow", acc[3:9], 0.8),
        _part(FLOWS, "money_flow", [*acc[7:12], acc[0]], 0.7),
    ]
    (case,) = build_queue(chains)
    assert case.kind == "money_flow"
    assert case.member_ids == tuple(acc)
    assert case.score == 0.9


def test_auxiliary_findings_stand_alone_only_when_their_detector_says_so() -> None:
    ids = [f"u{i}" for i in range(8)]
    weak = _part(DENSE, "dense_block", ids, 0.9)
    strong = _part(DENSE, "dense_block", ids, 0.9, signals=(Signal("stands_alone", 1.0, 1.0, 0.0),))
    assert build_queue([weak]) == []
    assert build_queue([strong]) == [strong]


def test_cases_are_canonical_whatever_the_input_order() -> None:
    bots = [f"bot{i:02d}" for i in range(30)]
    parts = [
        _part(LOCKSTEP, "engagement_farm", bots, 0.7, bens=(("c1", "creator"),)),
        *(_part(IDENTIFIERS, "identity_cluster", bots[5 * k : 5 * k + 5], 0.6) for k in range(6)),
        _part(IDENTIFIERS, "identity_cluster", ["bot00", "h1", "h2"], 0.6),
        _part(DENSE, "dense_block", [*bots[:20], "z"], 0.5),
    ]
    one = [canonical_json(f.to_dict()) for f in build_queue(parts)]
    two = [canonical_json(f.to_dict()) for f in build_queue(list(reversed(parts)))]
    assert one == two and len(one) == 2


def _farm_market() -> tuple[MarketTables, list[str]]:
    """3,000 people engaging at random over 400 hourly streams of 40 creators; a farm of
    300 young bots liking 12 streams of creator c00 within 30 s of each other, its bots
    sharing a phone and a card in 9 pools of about 34."""
    rng = np.random.default_rng(7)
    t0 = pd.Timestamp("2026-09-01", tz="UTC")
    bots = [f"bot{i:03d}" for i in range(300)]
    people = [f"u{i:04d}" for i in range(3000)]
    creators = [f"c{i:02d}" for i in range(40)]
    streams = pd.DataFrame(
        {
            "stream_id": [f"s{i:03d}" for i in range(400)],
            "creator_id": [creators[i % 40] for i in range(400)],
            "started_at": [t0 + pd.Timedelta(hours=i) for i in range(400)],
        }
    )
    rows = [
        (u, int(s), int(rng.integers(0, 3600)))
        for u in people
        for s in rng.choice(400, 6, replace=False)
    ]
    rows += [(b, 40 * k, 1200 + int(rng.integers(0, 30))) for k in range(12) for b in bots]
    events = pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "stream_id": [f"s{r[1]:03d}" for r in rows],
            "kind": "like",
            "ts": [t0 + pd.Timedelta(hours=r[1], seconds=r[2]) for r in rows],
            "amount": np.nan,
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": bots + people + creators,
            "roles": ["buyer"] * 3300 + ["creator"] * 40,
            "created_at": [t0 - pd.Timedelta(days=3)] * 300 + [t0 - pd.Timedelta(days=700)] * 3040,
        }
    )
    ids = [
        (b, kind, f"{kind}-pool{i // 34}")
        for i, b in enumerate(bots)
        for kind in ("device", "payment")
    ]
    ids += [(u, "ip", f"carrier-{i % 3}") for i, u in enumerate(people)]
    identifiers = pd.DataFrame(
        {
            "account_id": [r[0] for r in ids],
            "kind": [r[1] for r in ids],
            "value": [r[2] for r in ids],
            "first_seen": t0,
        }
    )
    utc = "datetime64[us, UTC]"
    tables = MarketTables(
        accounts=accounts.astype({"created_at": utc}),
        streams=streams.astype({"started_at": utc}),
        engagements=events.astype({"ts": utc}),
        identifiers=identifiers.astype({"first_seen": utc}),
    )
    return tables, bots


def test_gallery_end_to_end_a_farm_in_device_pools_is_one_case() -> None:
    """The same farm through the real detectors and the run's queue step."""
    tables, bots = _farm_market()
    policy = default_policy().model_dump()
    for name, section in policy["detectors"].items():
        section["enabled"] = name in ("lockstep", "shared_identifiers")
    pol = Policy.model_validate(policy)
    clusters = DETECTORS["shared_identifiers"].run(
        tables, pol.detectors["shared_identifiers"].params, 0
    )
    # shared identifiers 2.1 judge a cohort by its accounts' first orders: these bots
    # only like, so their pools may be left to lockstep; whatever pools are reported
    # must join the farm's case, none may stand beside it
    queue, _ = detect_tables(tables, pol, threads=1)
    assert len(queue) == 1
    (case,) = queue
    assert case.kind == "engagement_farm"
    assert case.member_ids == tuple(bots)
    assert case.id == finding_id("engagement_farm", bots)
    seen_by = {"lockstep"} | ({"shared_identifiers"} if clusters else set())
    assert {d.name for d in case.detectors} == seen_by
    assert case.evidence["engagements"]
    assert bool(case.evidence.get("identifiers")) == bool(clusters)
    # a finding of one part carries no case_parts signal
    assert {s.name: s.value for s in case.signals}.get("case_parts", 1) == 1 + len(clusters)
