"""Evaluation metrics on hand-made findings, checked against numbers worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ringscope.algorithms.evaluate import (
    ROW_COLUMNS,
    evaluate,
    is_hard_negative,
    read_truth,
    roc_auc,
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


def truth_frame(rings: dict[str, tuple[str, str]]) -> pd.DataFrame:
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
        # covers 2/4 of ef-1 and 2/3 of the finding is in it: a match (50/50 rule holds)
        finding("engagement_farm", "abz"),
        # covers 3/4 of cr-1 but only 3/7 of the finding is in it: no match
        finding("commission_ring", "efgpqrs"),
        # flags the household: 2/2 of it, all of the finding
        finding("identity_cluster", "xy"),
        # matches the money cycle, with a finding kind meant for engagement
        finding("dense_block", "mno"),
    ]
    scores = pd.DataFrame(
        {"account_id": ["a", "b", "e", "x", "m"], "score": [0.9, 0.8, 0.7, 0.95, 0.1]}
    )
    r = evaluate(findings, TRUTH, scores)
    # rings: ef-1 and mc-1 found out of 4
    assert r.rings_found == 2
    assert r.ring_recall == 0.5
    # findings: 1st and 4th match an abuse ring; the household finding does not count
    assert r.findings_matched == 2
    assert r.ring_precision == 0.5
    assert r.by_kind["engagement_farm"].recall == 1.0
    assert r.by_kind["engagement_farm"].recall_mapped == 1.0
    assert r.by_kind["money_cycle"].recall == 1.0
    assert r.by_kind["money_cycle"].recall_mapped == 0.0
    assert r.by_kind["commission_ring"].recall == 0.0
    assert r.by_kind["commission_ring"].account_recall == 0.75
    assert r.by_finding_kind["dense_block"].precision == 1.0
    assert r.by_finding_kind["dense_block"].precision_mapped == 0.0
    assert r.by_finding_kind["identity_cluster"].precision == 0.0
    # accounts: predicted = a b z e f g p q r s x y m n o (15); positives = 15 letters a-o
    # tp = a b e f g m n o (8), fp = z p q r s x y (7), fn = c d h i j k l (7)
    a = r.accounts
    assert (a.predicted, a.tp, a.fp, a.fn) == (15, 8, 7, 7)
    assert a.precision == pytest.approx(8 / 15)
    assert a.recall == pytest.approx(8 / 15)
    assert a.f1 == pytest.approx(16 / 30)
    # hard negatives: household 2/2 accounts, 1/1 group; carrier 4/6 accounts, and the
    # second finding matches the carrier group (4 of its 6, 4 of the finding's 7)
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


def test_fifty_fifty_rule_edges() -> None:
    truth = truth_frame({"r": ("money_cycle", "abcd")})
    assert evaluate([finding("money_cycle", "abxy")], truth).ring_recall == 1.0
    assert evaluate([finding("money_cycle", "abxyz")], truth).ring_recall == 0.0
    assert evaluate([finding("money_cycle", "a")], truth).ring_recall == 0.0


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
