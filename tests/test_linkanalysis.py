"""Benefit rank and label propagation on small hand-built tables."""

from __future__ import annotations

import pandas as pd
import pytest

from ringscope.algorithms.linkanalysis import (
    KIND,
    benefit_rank,
    detect_guilt_by_association,
    propagate_labels,
)
from ringscope.model import canonical_json

T0 = pd.Timestamp("2026-10-01", tz="UTC")


def _ids(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "value": [r[2] for r in rows],
            "first_seen": pd.Series([T0] * len(rows), dtype="datetime64[us, UTC]"),
        }
    )


def _labels(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "subject_id": [r[0] for r in rows],
            "label": [r[1] for r in rows],
            "decided_at": pd.Series([T0] * len(rows), dtype="datetime64[us, UTC]"),
            "source": "review",
        }
    )


def world() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Abuser X with 4 accomplices on shared device+card; a legit L with 4 friends apart."""
    rows = []
    for a in ["X", "k1", "k2", "k3", "k4"]:
        rows += [(a, "device", "dev-x"), (a, "payment", "card-x")]
    for a in ["L", "n1", "n2", "n3", "n4"]:
        rows += [(a, "device", "dev-l"), (a, "ip", "ip-l")]
    rows += [("k4", "ip", "ip-bridge"), ("n4", "ip", "ip-bridge")]  # one weak bridge
    rows += [(f"z{i}", "device", f"own-{i}") for i in range(10)]
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(12)],
            "buyer_id": [f"z{i % 10}" for i in range(12)],
            "seller_id": ["S"] * 12,
            "product_id": "p",
            "amount": 10.0,
            "status": "completed",
            "ts": pd.Series([T0] * 12, dtype="datetime64[us, UTC]"),
            "creator_id": ["C"] * 6 + [None] * 6,
            "commission": [1.0] * 6 + [float("nan")] * 6,
        }
    )
    return _ids(rows), orders


def test_accomplices_score_higher_than_unrelated() -> None:
    ids, orders = world()
    out = propagate_labels(
        _labels([("X", "abusive"), ("L", "legit")]), identifiers=ids, orders=orders
    )
    g = out.set_index("account_id")["guilt"]
    for col in ("trust", "distrust", "guilt"):
        assert out[col].between(0.0, 1.0).all()
    accomplices = g[["k1", "k2", "k3", "k4"]]
    others = g[["n1", "n2", "n3", "n4", "z1", "S"]]
    assert accomplices.min() > others.max()
    assert (
        out.set_index("account_id").loc["n1", "trust"]
        > out.set_index("account_id").loc["k1", "trust"]
    )


def test_guilt_by_association_finding() -> None:
    ids, orders = world()
    found = detect_guilt_by_association(
        _labels([("X", "abusive"), ("L", "legit")]), identifiers=ids, orders=orders, seed=0
    )
    assert len(found) == 1
    f = found[0]
    assert f.kind == KIND
    assert f.member_ids == ("X", "k1", "k2", "k3", "k4")
    roles = {m.account_id: m.role for m in f.members}
    assert roles["X"] == "labelled_abusive" and roles["k1"] == "associate"
    assert f.evidence["labels"][0]["decided_at"] == "2026-10-01T00:00:00+00:00"
    assert 0.0 <= f.score <= 1.0


def test_no_labels_no_findings() -> None:
    ids, orders = world()
    assert detect_guilt_by_association(None, identifiers=ids, orders=orders) == []
    assert detect_guilt_by_association(_labels([("L", "legit")]), identifiers=ids) == []
    assert detect_guilt_by_association(_labels([]), identifiers=ids.iloc[:0]) == []


def test_single_account() -> None:
    assert detect_guilt_by_association(_labels([("X", "abusive")]), identifiers=_ids([])) == []
    out = propagate_labels(_labels([("X", "abusive")]))
    assert out["account_id"].tolist() == ["X"]


def test_latest_label_wins() -> None:
    ids, orders = world()
    labels = pd.concat(
        [
            _labels([("X", "abusive")]),
            _labels([("X", "legit")]).assign(decided_at=T0 + pd.Timedelta(days=1)),
        ]
    )
    assert detect_guilt_by_association(labels, identifiers=ids, orders=orders) == []


def test_deterministic() -> None:
    ids, orders = world()
    lab = _labels([("X", "abusive"), ("L", "legit")])
    a = detect_guilt_by_association(lab, identifiers=ids, orders=orders, seed=1)
    b = detect_guilt_by_association(lab, identifiers=ids.iloc[::-1], orders=orders, seed=1)
    assert canonical_json([f.to_dict() for f in a]) == canonical_json([f.to_dict() for f in b])


def test_benefit_rank() -> None:
    _ids_table, orders = world()
    eng = pd.DataFrame(
        {
            "account_id": ["z1", "z2", "z3"],
            "stream_id": ["st1"] * 3,
            "kind": "gift",
            "ts": pd.Series([T0] * 3, dtype="datetime64[us, UTC]"),
            "amount": [5.0, 5.0, 5.0],
        }
    )
    streams = pd.DataFrame({"stream_id": ["st1"], "creator_id": ["C"], "started_at": [T0]})
    out = benefit_rank(orders, eng, streams)
    assert list(out.columns) == ["account_id", "pagerank", "hub", "authority"]
    assert out["account_id"].iloc[0] in {"S", "C"}
    assert abs(out["pagerank"].sum() - 1.0) < 1e-6
    assert out["hub"].between(0, 1).all() and out["authority"].between(0, 1).all()
    assert benefit_rank(None, None, None).empty
    with pytest.raises(ValueError):
        benefit_rank(orders, None, None, damping=1.5)


def _signals(f: object) -> dict[str, float]:
    return {s.name: s.value for s in f.signals}  # type: ignore[attr-defined]


def test_gallery_mislabelled_legit_account_makes_no_queue_finding() -> None:
    """A legit account labelled abusive by mistake: its household looks guilty, but a
    group resting on one label is not reported on its own."""
    from ringscope.algorithms.queue import build_queue

    rows = []
    for a in ["M", "h1", "h2"]:  # a household: one device, one home address
        rows += [(a, "device", "dev-home"), (a, "address", "addr-home")]
    rows += [(f"z{i}", "device", f"own-{i}") for i in range(10)]
    found = detect_guilt_by_association(
        _labels([("M", "abusive"), ("z0", "legit")]), identifiers=_ids(rows), seed=0
    )
    assert [f.member_ids for f in found] == [("M", "h1", "h2")]
    sig = _signals(found[0])
    assert sig["labels_used"] == 2.0 and sig["labelled_abusers_linked"] == 1.0
    assert sig["stands_alone"] == 0.0
    assert build_queue(found) == []


def test_a_group_stands_alone_only_when_tied_to_several_labels_and_no_legit_one() -> None:
    rows = []
    for a in ["X1", "X2", "X3", "k1", "k2"]:
        rows += [(a, "device", "dev-ring"), (a, "payment", "card-ring")]
    rows += [(f"z{i}", "device", f"own-{i}") for i in range(10)]
    labels = _labels([("X1", "abusive"), ("X2", "abusive"), ("X3", "abusive")])
    kw = {"identifiers": _ids(rows), "seed": 0}
    (off,) = detect_guilt_by_association(labels, **kw)  # type: ignore[arg-type]
    (on,) = detect_guilt_by_association(labels, standalone_labels=3, **kw)  # type: ignore[arg-type]
    assert off.member_ids == on.member_ids == ("X1", "X2", "X3", "k1", "k2")
    assert _signals(off)["stands_alone"] == 0.0 and _signals(on)["stands_alone"] == 1.0
    assert _signals(on)["associates_tied_to_two_labels"] == 1.0
    (strict,) = detect_guilt_by_association(labels, standalone_labels=4, **kw)  # type: ignore[arg-type]
    assert _signals(strict)["stands_alone"] == 0.0
    # one of its labelled accounts shares an IP address with an account labelled legit
    tied = _ids([*rows, ("X1", "ip", "ip-1"), ("L", "ip", "ip-1")])
    legit = _labels([("X1", "abusive"), ("X2", "abusive"), ("X3", "abusive"), ("L", "legit")])
    (f,) = detect_guilt_by_association(
        legit, identifiers=tied, standalone_labels=3, min_score=0.2, seed=0
    )
    assert _signals(f)["legit_labels_linked"] == 1.0 and _signals(f)["stands_alone"] == 0.0
