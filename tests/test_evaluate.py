"""Evaluation metrics on hand-made findings, checked against numbers worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ringscope.algorithms.evaluate import (
    ABUSE_KINDS,
    ROW_COLUMNS,
    evaluate,
    is_hard_negative,
    mapped_truth_kinds,
    read_truth,
    roc_auc,
    size_band,
)
from ringscope.errors import InputError
from ringscope.loaders.synthetic import generate
from ringscope.model import DetectorInfo, Finding, Member

DET = DetectorInfo("test", "1")


def finding(kind: str, members: str | list[str], score: float = 0.9) -> Finding:
    ids = list(members)
    return Finding.build(
        kind=kind,
        score=score,
        members=[Member(a, "member", score) for a in ids],
        explanation="",
        detector=DET,
    )


def truth_frame(rings: dict[str, tuple[str, str | list[str]]]) -> pd.DataFrame:
    """``{ring_id: (kind, member letters)}`` as a truth table."""
    rows = [
        {"ring_id": rid, "kind": kind, "account_id": a, "role": "member"}
        for rid, (kind, accs) in rings.items()
        for a in accs
    ]
    return pd.DataFrame(rows)


# rings: ef-1 = abcd, cr-1 = efgh, if-1 = ijkl, mc-1 = mno; hard negatives: household xy,
# carrier_ip pqrstu
TRUTH = truth_frame(
    {
        "ef-1": ("engagement_farm", "abcd"),
        "cr-1": ("commission_ring", "efgh"),
        "if-1": ("incentive_farm", "ijkl"),
        "mc-1": ("money_cycle", "mno"),
        "hn-household-1": ("household", "xy"),
        "hn-carrier_ip-1": ("carrier_ip", "pqrstu"),
    }
)
PERFECT = [
    finding("engagement_farm", "abcd"),
    finding("commission_ring", "efgh"),
    finding("identity_cluster", "ijkl"),
    finding("money_cycle", "mno"),
]


def test_perfect_findings_score_one() -> None:
    scores = pd.DataFrame({"account_id": list("abcdefghijklmno"), "score": 1.0})
    r = evaluate(PERFECT, TRUTH, scores, all_accounts=list("abcdefghijklmnopqrstuvwxyz"))
    assert r.rings == 4
    assert r.ring_recall == 1.0
    assert r.ring_precision == 1.0
    for km in r.by_kind.values():
        assert km.recall == 1.0
        assert km.recall_mapped == 1.0
        assert km.account_recall == 1.0
    for fm in r.by_finding_kind.values():
        assert fm.precision == 1.0
        assert fm.precision_mapped == 1.0
    a = r.accounts
    assert (a.precision, a.recall, a.f1, a.auc) == (1.0, 1.0, 1.0, 1.0)
    assert a.scored_universe == 26
    for hm in r.hard_negatives.values():
        assert hm.fp_rate == 0.0
        assert hm.group_flag_rate == 0.0


def test_no_findings() -> None:
    r = evaluate([], TRUTH)
    assert r.ring_recall == 0.0
    assert r.ring_precision is None
    assert r.accounts.recall == 0.0
    assert r.accounts.precision is None
    assert r.accounts.f1 == 0.0
    assert r.accounts.auc is None
    assert all(km.recall == 0.0 for km in r.by_kind.values())
    assert r.hard_negatives["household"].fp_rate == 0.0


def test_half_right_by_hand() -> None:
    findings = [
        # 3/4 of ef-1 and 3/4 of the finding is in it, of a kind that finds farms: right
        finding("engagement_farm", "abcz"),
        # covers 3/4 of cr-1 but only 3/7 of the finding is in it: too broad
        finding("commission_ring", "efgpqrs"),
        # flags the household: 2/2 of it, all of the finding
        finding("identity_cluster", "xy"),
        # holds the whole money cycle, but is a kind meant for engagement: wrong kind
        finding("dense_block", "mno"),
    ]
    scores = pd.DataFrame(
        {"account_id": ["a", "b", "e", "x", "m"], "score": [0.9, 0.8, 0.7, 0.95, 0.1]}
    )
    r = evaluate(findings, TRUTH, scores)
    # strict: only ef-1 is found, by the first finding
    assert (r.rings_found, r.ring_recall) == (1, 0.25)
    assert (r.findings_matched, r.ring_precision) == (1, 0.25)
    # kind-blind: the dense block finds the money cycle too
    assert (r.rings_found_any_kind, r.ring_recall_any_kind) == (2, 0.5)
    assert (r.findings_matched_any_kind, r.ring_precision_any_kind) == (2, 0.5)
    assert r.by_kind["engagement_farm"].recall == 1.0
    assert r.by_kind["money_cycle"].recall == 0.0
    assert r.by_kind["money_cycle"].recall_mapped == 0.0
    assert r.by_kind["money_cycle"].recall_any_kind == 1.0
    assert r.by_kind["commission_ring"].recall == 0.0
    assert r.by_kind["commission_ring"].recall_any_kind == 0.0
    assert r.by_kind["commission_ring"].account_recall == 0.75
    assert r.by_finding_kind["dense_block"].precision == 0.0
    assert r.by_finding_kind["dense_block"].precision_any_kind == 1.0
    assert r.by_finding_kind["identity_cluster"].precision == 0.0
    assert r.by_finding_kind["identity_cluster"].precision_any_kind == 0.0
    reasons = {o.kind: o.reason for o in r.finding_outcomes}
    assert reasons == {
        "engagement_farm": "right",
        "commission_ring": "too broad",
        "identity_cluster": "hard negative",
        "dense_block": "wrong kind",
    }
    rings = {o.ring_id: o.reason for o in r.ring_outcomes}
    assert rings == {
        "ef-1": "found",
        "cr-1": "too broad",
        "if-1": "no finding",
        "mc-1": "wrong kind",
    }
    # accounts: predicted = a b c z e f g p q r s x y m n o (16); positives = a-o (15)
    # tp = a b c e f g m n o (9), fp = z p q r s x y (7), fn = d h i j k l (6)
    a = r.accounts
    assert (a.predicted, a.tp, a.fp, a.fn) == (16, 9, 7, 6)
    assert a.precision == pytest.approx(9 / 16)
    assert a.recall == pytest.approx(9 / 15)
    assert a.f1 == pytest.approx(18 / 31)
    # hard negatives: household 2/2 accounts, 1/1 group; carrier 4/6 accounts, and the
    # second finding holds 4 of the carrier group's 6 accounts: a majority
    hh, ci = r.hard_negatives["household"], r.hard_negatives["carrier_ip"]
    assert (hh.flagged_accounts, hh.fp_rate, hh.flagged_groups, hh.group_flag_rate) == (
        2,
        1.0,
        1,
        1.0,
    )
    assert (ci.accounts, ci.flagged_accounts, ci.flagged_groups) == (6, 4, 1)
    assert ci.fp_rate == pytest.approx(4 / 6)
    # AUC over truth accounts + scored (a-o, x, y, p-u: 23 accounts; 15 positive, 8 negative)
    # positives scored: a .9, b .8, e .7, m .1; the other 11 positives 0
    # negatives: x .95, and 7 at 0. Pairs (pos > neg) + ties / 2:
    # a, b, e, m each beat 7 zero negatives -> 28; 11 zero positives tie 7 -> 11 * 7 / 2
    expected = (28 + 11 * 7 / 2) / (15 * 8)
    assert r.accounts.auc == pytest.approx(expected)
    assert r.accounts.scored_universe == 23


def test_exactly_half_is_no_match() -> None:
    truth = truth_frame({"r": ("money_cycle", "abcd")})
    # more than half on both sides: a match
    assert evaluate([finding("money_cycle", "abcx")], truth).ring_recall == 1.0
    # exactly half of the ring (2 of 4), all of the finding
    r = evaluate([finding("money_cycle", "ab")], truth)
    assert (r.ring_recall, r.ring_recall_any_kind, r.ring_precision) == (0.0, 0.0, 0.0)
    assert r.ring_outcomes[0].reason == "fragment"
    assert r.finding_outcomes[0].reason == "fragment"
    # 3 of 4 of the ring, but exactly half of the finding (3 of 6)
    r = evaluate([finding("money_cycle", "abcxyz")], truth)
    assert (r.ring_recall, r.ring_precision) == (0.0, 0.0)
    assert r.ring_outcomes[0].reason == "too broad"
    assert r.finding_outcomes[0].reason == "too broad"
    # exactly half on both sides
    assert evaluate([finding("money_cycle", "abxy")], truth).ring_recall == 0.0
    assert evaluate([finding("money_cycle", "a")], truth).ring_recall == 0.0


def test_wrong_kind_matches_only_kind_blind() -> None:
    truth = truth_frame({"r": ("commission_ring", "abcde")})
    r = evaluate([finding("engagement_farm", "abcde")], truth)
    assert (r.ring_recall, r.ring_precision) == (0.0, 0.0)
    assert (r.ring_recall_any_kind, r.ring_precision_any_kind) == (1.0, 1.0)
    ring, found = r.ring_outcomes[0], r.finding_outcomes[0]
    assert (ring.reason, ring.finding, ring.finding_any_kind) == (
        "wrong kind",
        "",
        found.finding_id,
    )
    assert (found.reason, found.ring, found.ring_any_kind) == ("wrong kind", "", "r")
    assert "do not find commission_ring" in found.detail
    # the kinds that do find a commission ring
    for kind in ("commission_ring", "identity_cluster", "dense_orders", "label_propagation"):
        assert evaluate([finding(kind, "abcde")], truth).ring_recall == 1.0, kind


def test_finding_kinds_mapping() -> None:
    truth = truth_frame(
        {
            "mc": ("money_cycle", "abc"),
            "mf": ("money_flow", "defg"),
            "ef": ("engagement_farm", "hijk"),
        }
    )
    for kind in ("money_cycle", "money_flow"):
        r = evaluate([finding(kind, "abc"), finding(kind, "defg")], truth)
        assert r.by_kind["money_cycle"].recall == 1.0, kind
        assert r.by_kind["money_flow"].recall == 1.0, kind
        assert r.ring_precision == 1.0
    assert evaluate([finding("dense_block", "hijk")], truth).ring_recall == pytest.approx(1 / 3)
    assert evaluate([finding("dense_block", "abc")], truth).ring_recall == 0.0
    # a kind nobody mapped finds nothing, and says so
    r = evaluate([finding("brand_new", "abc")], truth)
    assert (r.ring_recall, r.ring_recall_any_kind) == (0.0, pytest.approx(1 / 3))
    assert r.unmapped_finding_kinds == ("brand_new",)
    assert mapped_truth_kinds("brand_new", ABUSE_KINDS) == ()
    assert set(mapped_truth_kinds("label_propagation", ["x", "y"])) == {"x", "y"}


def test_merged_finding_is_judged_by_its_own_kind() -> None:
    """A finding merged from several detectors' parts keeps their names in ``detectors``;
    only its ``kind`` decides which rings it can find."""
    truth = truth_frame({"r": ("incentive_farm", "abcd")})
    parts = (DetectorInfo("lockstep", "2"), DetectorInfo("identifiers", "1"))
    merged = Finding.build(
        kind="engagement_farm",
        score=0.9,
        members=[Member(a, "member", 0.9) for a in "abcd"],
        explanation="",
        detector=parts[0],
        detectors=parts,
    )
    r = evaluate([merged], truth)
    assert (r.ring_recall, r.ring_recall_any_kind) == (0.0, 1.0)


def test_two_fragments_of_one_ring_one_right_one_wrong() -> None:
    truth = truth_frame({"r": ("engagement_farm", "abcdef")})
    # both hold 4 of 6 and are all ring members: equal Jaccard, the higher score wins
    better = finding("engagement_farm", "abcd", score=0.9)
    worse = finding("engagement_farm", "cdef", score=0.8)
    for order in ([better, worse], [worse, better]):
        r = evaluate(order, truth)
        assert (r.rings_found, r.ring_recall) == (1, 1.0)
        assert (r.findings_matched, r.ring_precision) == (1, 0.5)
        assert r.ring_outcomes[0].finding == better.id
        by_id = {o.finding_id: o for o in r.finding_outcomes}
        assert by_id[better.id].reason == "right"
        assert by_id[worse.id].reason == "duplicate"
        assert better.id in by_id[worse.id].detail
        # kind-blind is one to one too
        assert r.ring_precision_any_kind == 0.5
    # the larger overlap wins whatever the scores
    big = finding("engagement_farm", "abcde", score=0.1)
    r = evaluate([better, big], truth)
    assert r.ring_outcomes[0].finding == big.id
    # equal on every count: the smaller id wins, whatever the order
    one, two = finding("dense_block", "abcd"), finding("engagement_farm", "abcd")
    first = min(one.id, two.id)
    assert evaluate([one, two], truth).ring_outcomes[0].finding == first
    assert evaluate([two, one], truth).ring_outcomes[0].finding == first
    # a small fragment matches nothing and is wrong
    r = evaluate([better, finding("engagement_farm", "ef")], truth)
    assert r.ring_precision == 0.5
    assert sorted(o.reason for o in r.finding_outcomes) == ["fragment", "right"]


def test_a_finding_spanning_two_rings_matches_at_most_one() -> None:
    # disjoint rings: holding both wholly is exactly half of the finding for each
    truth = truth_frame({"r1": ("money_cycle", "abcd"), "r2": ("money_cycle", "efgh")})
    r = evaluate([finding("money_cycle", "abcdefgh")], truth)
    assert (r.ring_recall, r.ring_precision) == (0.0, 0.0)
    assert {o.reason for o in r.ring_outcomes} == {"too broad"}
    # overlapping rings (c and d in both): the finding is a candidate for each
    truth = truth_frame({"r1": ("money_cycle", "abcd"), "r2": ("money_cycle", "cdef")})
    r = evaluate([finding("money_cycle", "bcde")], truth)
    assert (r.rings_found, r.findings_matched) == (1, 1)
    assert (r.ring_recall, r.ring_precision) == (0.5, 1.0)
    got = {o.ring_id: o.reason for o in r.ring_outcomes}
    assert got == {"r1": "found", "r2": "taken"}  # equal overlaps: the smaller ring id
    # with a second finding for r2 both rings are found, one finding each
    r = evaluate([finding("money_cycle", "bcde"), finding("money_cycle", "cdef")], truth)
    assert (r.ring_recall, r.ring_precision) == (1.0, 1.0)
    assert {o.ring_id: o.finding for o in r.ring_outcomes}["r2"] == finding(
        "money_cycle", "cdef"
    ).id


def test_size_bands() -> None:
    assert [size_band(n) for n in (1, 3, 10, 11, 50, 51, 200, 201)] == [
        "1-2",
        "3-10",
        "3-10",
        "11-50",
        "11-50",
        "51-200",
        "51-200",
        "201+",
    ]
    small = [f"s{i}" for i in range(5)]
    mid = [f"m{i}" for i in range(20)]
    big = [f"b{i}" for i in range(60)]
    huge = [f"h{i}" for i in range(250)]
    truth = pd.concat(
        [
            truth_frame({"small": ("engagement_farm", small)}),
            truth_frame({"mid": ("engagement_farm", mid)}),
            truth_frame({"big": ("commission_ring", big)}),
            truth_frame({"huge": ("engagement_farm", huge)}),
        ]
    )
    findings = [
        finding("engagement_farm", small),
        finding("engagement_farm", huge[:200]),  # 200 of 250: found, a 51-200 finding
        finding("engagement_farm", big),  # wrong kind
        finding("engagement_farm", mid[:5]),  # a fragment
    ]
    r = evaluate(findings, truth)
    assert set(r.by_band) == {"3-10", "11-50", "51-200", "201+"}
    assert (r.by_band["3-10"].rings, r.by_band["3-10"].recall) == (1, 1.0)
    assert r.by_band["11-50"].recall == 0.0
    assert (r.by_band["51-200"].recall, r.by_band["51-200"].recall_any_kind) == (0.0, 1.0)
    assert r.by_band["201+"].recall == 1.0
    assert r.by_kind_band["engagement_farm"]["201+"].found == 1
    assert set(r.by_kind_band["commission_ring"]) == {"51-200"}
    # findings by their own size: 5 (right), 200 (right), 60 (wrong kind), 5 (fragment)
    assert (r.by_finding_band["3-10"].findings, r.by_finding_band["3-10"].precision) == (2, 0.5)
    fb = r.by_finding_band["51-200"]
    assert (fb.findings, fb.matched, fb.matched_any_kind) == (2, 1, 2)
    assert r.by_finding_kind_band["engagement_farm"]["51-200"].precision == 0.5
    rows = r.to_rows()
    assert ("rings by kind and size", "engagement_farm 201+", "recall", "1.000") in rows
    assert ("findings by size", "51-200", "precision", "0.500") in rows


def test_hard_negative_groups_count_when_a_finding_holds_most_of_them() -> None:
    truth = truth_frame(
        {
            "r": ("incentive_farm", "abcdefgh"),
            "hn-household-1": ("household", "xyz"),
            "hn-household-2": ("household", "uv"),
            "hn-carrier_ip-1": ("carrier_ip", "klmnopqrst"),
        }
    )
    # the farm's finding swallowed two of a household's three; one account of the other
    # household; three of the carrier IP's ten; an ordinary account
    findings = [
        finding("identity_cluster", "abcdefghxy"),
        finding("identity_cluster", "uklmw"),
    ]
    r = evaluate(findings, truth)
    hh = r.hard_negatives["household"]
    assert (hh.groups, hh.accounts, hh.flagged_accounts, hh.flagged_groups) == (2, 5, 3, 1)
    assert (hh.fp_rate, hh.group_flag_rate) == (0.6, 0.5)
    ci = r.hard_negatives["carrier_ip"]
    assert (ci.flagged_accounts, ci.flagged_groups, ci.fp_rate) == (3, 0, 0.3)
    # the farm is still found (8 of 8, 8 of the finding's 10); the second is a hard negative
    assert r.ring_recall == 1.0
    assert [o.reason for o in sorted(r.finding_outcomes, key=lambda o: o.size)] == [
        "hard negative",
        "right",
    ]
    assert "carrier_ip 3, household 1" in r.wrong_findings()[0].detail
    assert r.missed_rings() == []


def test_doctests() -> None:
    import doctest

    import ringscope.algorithms.evaluate as module

    result = doctest.testmod(module)
    assert result.attempted > 5 and result.failed == 0


def test_accounts_in_abuse_and_hard_negatives_count_as_abuse() -> None:
    truth = truth_frame({"r": ("money_cycle", "abc"), "hn-carrier_ip-1": ("carrier_ip", "cde")})
    r = evaluate([finding("money_cycle", "abc")], truth)
    assert r.hard_negatives["carrier_ip"].accounts == 2
    assert r.hard_negatives["carrier_ip"].fp_rate == 0.0


def test_hard_negative_kinds() -> None:
    for kind in ("household", "carrier_ip", "carrier_ip_campus", "viral_stream", "fan_club"):
        assert is_hard_negative(kind)
    for kind in ("engagement_farm", "commission_ring", "incentive_farm", "money_cycle"):
        assert not is_hard_negative(kind)


def test_roc_auc_by_hand() -> None:
    import numpy as np

    assert roc_auc(np.array([1.0, 0.0]), np.array([True, False])) == 1.0
    assert roc_auc(np.array([0.0, 1.0]), np.array([True, False])) == 0.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert roc_auc(np.array([0.5]), np.array([True])) is None


def test_report_serialises() -> None:
    r = evaluate(PERFECT[:2], TRUTH, pd.DataFrame({"account_id": ["a"], "score": [0.5]}))
    d = r.to_dict()
    assert json.loads(json.dumps(d)) == d
    rows = r.to_rows()
    assert len(ROW_COLUMNS) == 4
    assert all(len(row) == 4 and all(isinstance(x, str) for x in row) for row in rows)
    assert ("rings", "all", "recall", "0.500") in rows


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="account_id"):
        evaluate([], TRUTH.drop(columns=["account_id"]))
    bad = TRUTH.copy()
    bad.loc[3, "ring_id"] = ""
    with pytest.raises(InputError, match="row 4"):
        evaluate([], bad)
    with pytest.raises(InputError, match="score"):
        evaluate([], TRUTH, pd.DataFrame({"account_id": ["a"]}))
    with pytest.raises(InputError, match="not a number"):
        evaluate([], TRUTH, pd.DataFrame({"account_id": ["a"], "score": ["high"]}))


def test_read_truth(tmp_path: Path) -> None:
    p = tmp_path / "truth.csv"
    TRUTH.to_csv(p, index=False)
    t = read_truth(p)
    assert list(t.columns) == ["ring_id", "kind", "account_id", "role"]
    assert len(t) == len(TRUTH)
    with pytest.raises(InputError, match="no such file"):
        read_truth(tmp_path / "missing.csv")
    p.write_text("ring_id,kind,account\nr,money_cycle,a\n")
    with pytest.raises(InputError, match="missing column"):
        read_truth(p)
    p.write_text("ring_id,kind,account_id,role\nr,money_cycle,,member\n")
    with pytest.raises(InputError, match="row 1"):
        read_truth(p)
    # a repeated column would let pandas keep one of the two silently
    p.write_text("ring_id,kind,account_id,role,kind\nr,money_cycle,a,member,household\n")
    with pytest.raises(InputError, match=r"kind.*more than once"):
        read_truth(p)
    twice = pd.concat([TRUTH, TRUTH[["kind"]]], axis=1)
    with pytest.raises(InputError, match=r"kind.*more than once"):
        evaluate([], twice)
    p.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError):
        read_truth(p)


def test_oracle_findings_on_a_generated_market(tmp_path: Path) -> None:
    generate(tmp_path, events=5_000, seed=2)
    truth = read_truth(tmp_path / "truth.csv")
    abuse = truth[~truth["kind"].map(is_hard_negative)]
    kind_of = {
        "engagement_farm": "engagement_farm",
        "commission_ring": "commission_ring",
        "incentive_farm": "identity_cluster",
        "money_cycle": "money_cycle",
    }
    findings = [
        finding(kind_of[g["kind"].iloc[0]], sorted(set(g["account_id"])))
        for _, g in abuse.groupby("ring_id")
    ]
    accounts = pd.read_csv(tmp_path / "accounts.csv")["account_id"]
    scores = pd.DataFrame({"account_id": sorted(set(abuse["account_id"])), "score": 1.0})
    r = evaluate(findings, truth, scores, all_accounts=accounts)
    assert r.ring_recall == 1.0
    assert r.ring_precision == 1.0
    assert r.accounts.f1 == 1.0
    assert r.accounts.auc == 1.0
    assert all(km.recall_mapped == 1.0 for km in r.by_kind.values())
    assert all(h.fp_rate == 0.0 for h in r.hard_negatives.values())
