"""Money cycles: a gallery of named cycles and look-alikes over ordinary trade."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from fixtures import Hop, gallery_orders, money_orders
from fixtures import ordinary_trade as shared_trade
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.cycles import KIND, detect_money_cycles
from ringscope.algorithms.flows import detect_money_flows
from ringscope.errors import ConfigError
from ringscope.model import Finding, canonical_json
from ringscope.policy import load_policy

_orders = money_orders


def ordinary_trade(seed: int = 0) -> list[Hop]:
    """The shared ordinary trade, its shops restocking from each other twice as often."""
    return shared_trade(seed, restocks=120)


def _round(
    accounts: list[str], amount: float, hours: list[float], jitter: list[float]
) -> list[Hop]:
    """One round: ``accounts[i]`` pays ``accounts[i + 1]`` (the last pays the first)."""
    pairs = list(itertools.pairwise([*accounts, accounts[0]]))
    return [
        (a, b, round(amount * j, 2), h) for (a, b), h, j in zip(pairs, hours, jitter, strict=True)
    ]


def long_slow_cycle() -> list[Hop]:
    """Twelve accounts, round twice, hops about a day apart (each round takes 12 days)."""
    rng = np.random.default_rng(11)
    accounts = [f"L{i:02d}" for i in range(12)]
    hops: list[Hop] = []
    for start in (30.0, 16 * 24.0):
        hours = start + np.cumsum(rng.uniform(18, 30, 12))
        hops += _round(accounts, 1480.0, hours.tolist(), rng.uniform(0.97, 1.03, 12).tolist())
    return hops


def fast_cycle() -> list[Hop]:
    """Three accounts, round ten times within one hour."""
    hops: list[Hop] = []
    for r in range(10):
        base = 200.0 + r * 0.1  # six minutes a round, two a hop
        hours = [base + (6 * r + 2 * i) / 60 - r * 0.1 for i in range(3)]
        hops += _round(["F0", "F1", "F2"], 250.0, hours, [1.0, 0.995, 1.005])
    return hops


def hub_cycle() -> list[Hop]:
    """A busy seller (2,000 orders from 1,500 buyers) on a cycle that goes round three
    times: the shop pays on what one account paid it, to another, who pays the first."""
    rng = np.random.default_rng(5)
    hops: list[Hop] = [
        (f"hb{int(i):04d}", "HUBSHOP", float(rng.choice([19.9, 24.5, 39.0, 59.0])), float(h))
        for i, h in zip(rng.integers(0, 1500, 2000), rng.uniform(0, 720, 2000), strict=True)
    ]
    for r in range(3):
        base = 100.0 + 200 * r
        hops += _round(["HUBSHOP", "hX", "hY"], 920.0, [base, base + 5, base + 9], [1, 0.99, 1])
    return hops


def laundering_once() -> list[Hop]:
    """Once round four accounts, each passing on what it got less a 1% fee."""
    return [
        ("wA", "wB", 2500.0, 300.0),
        ("wB", "wC", 2475.0, 306.0),
        ("wC", "wD", 2450.25, 318.0),
        ("wD", "wA", 2425.75, 333.0),
    ]


def goods_round_once() -> list[Hop]:
    """Once round five accounts, each buying before it is paid: the goods go round."""
    accounts = ["g0", "g1", "g2", "g3", "g4"]
    # g1 pays g0 first, then g2 pays g1, ...: the money goes against the time order
    return [
        (accounts[(i + 1) % 5], accounts[i], 640.0 * (1 + 0.01 * (i % 2)), 400.0 + 3 * i)
        for i in range(5)
    ]


#: name -> (hops, members, rounds)
GALLERY: dict[str, tuple[list[Hop], tuple[str, ...], int]] = {
    "long_slow": (long_slow_cycle(), tuple(f"L{i:02d}" for i in range(12)), 2),
    "fast": (fast_cycle(), ("F0", "F1", "F2"), 10),
    "hub": (hub_cycle(), ("HUBSHOP", "hX", "hY"), 3),
    "laundering_once": (laundering_once(), ("wA", "wB", "wC", "wD"), 1),
    "goods_once": (goods_round_once(), ("g0", "g1", "g2", "g3", "g4"), 1),
}


def ordinary_loops() -> list[Hop]:
    """A buys from B, B from C, C from A, once, of unrelated amounts; and again slowly."""
    return [
        ("oA", "oB", 25.0, 100.0),
        ("oB", "oC", 61.5, 101.0),
        ("oC", "oA", 12.0, 103.0),
        ("pA", "pB", 130.0, 50.0),
        ("pB", "pC", 45.0, 290.0),
        ("pC", "pD", 88.0, 400.0),
        ("pD", "pA", 300.0, 600.0),
    ]


def resellers() -> list[Hop]:
    """Twenty resellers of one phone model (about 300), buying from each other and selling
    to their own customers every day: loops of like amounts close in time are their trade."""
    rng = np.random.default_rng(3)
    hops: list[Hop] = []
    for _ in range(1200):
        a, b = rng.choice(20, 2, replace=False)
        price = float(np.round(300 * rng.uniform(0.97, 1.03), 2))
        hops.append((f"r{a:02d}", f"r{b:02d}", price, float(rng.uniform(0, 720))))
    for _ in range(1500):
        customer, shop = int(rng.integers(0, 600)), int(rng.integers(0, 20))
        price = float(np.round(320 * rng.uniform(0.95, 1.05), 2))
        hops.append((f"rc{customer:03d}", f"r{shop:02d}", price, float(rng.uniform(0, 720))))
    return hops


def markup_loop() -> list[Hop]:
    """A supplier, a wholesaler and a retailer buying from each other round a loop every
    week, each paying a 30% markup on what it was paid: no money goes round."""
    hops: list[Hop] = []
    for week in range(4):
        t = 168.0 * week
        hops += [("mkW", "mkS", 1000.0, t + 10), ("mkR", "mkW", 1300.0, t + 30)]
        hops += [("mkS", "mkR", 1690.0, t + 50)]
    return hops


NEGATIVES = {
    "ordinary_loops": ordinary_loops,
    "resellers": resellers,
    "markup_loop": markup_loop,
}


def _rounds(f: Finding) -> int:
    return int(f.evidence["cycles"][0]["rounds"])


@pytest.fixture(scope="module")
def gallery_findings() -> list[Finding]:
    return detect_money_cycles(
        gallery_orders(ordinary_trade(), GALLERY.values(), NEGATIVES.values()), seed=0
    )


def test_gallery_finds_exactly_the_planted_cycles(gallery_findings: list[Finding]) -> None:
    got = sorted((f.member_ids, _rounds(f)) for f in gallery_findings)
    assert got == sorted((m, r) for _, m, r in GALLERY.values())
    for f in gallery_findings:
        assert f.kind == KIND
        sig = next(s for s in f.signals if s.name == "significance")
        assert sig.value >= 2.0 and 0.0 < f.score <= 1.0
        assert next(s.value for s in f.signals if s.name == "rounds") == _rounds(f)
        assert f.evidence["typology"][0]["typology"] == "cycle"


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_each_cycle_alone_over_ordinary_trade(name: str) -> None:
    hops, members, rounds = GALLERY[name]
    found = detect_money_cycles(_orders(ordinary_trade(seed=3) + hops), seed=0)
    assert [(f.member_ids, _rounds(f)) for f in found] == [(members, rounds)]


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_look_alikes_are_not_flagged(name: str) -> None:
    assert detect_money_cycles(_orders(ordinary_trade(seed=5) + NEGATIVES[name]()), seed=0) == []


def test_the_ordinary_trade_has_loops_of_its_own() -> None:
    # the background is no straw man: the shops' restocking closes loops among them, and
    # the resellers' trade among themselves
    o = _orders(ordinary_trade() + resellers())
    ids, codes = np.unique(np.concatenate([o["buyer_id"], o["seller_id"]]), return_inverse=True)
    n = len(ids)
    g = sparse.coo_matrix((np.ones(len(o)), (codes[: len(o)], codes[len(o) :])), shape=(n, n))
    _, comp = connected_components(g.tocsr(), directed=True, connection="strong")
    sizes = np.sort(np.bincount(comp))[::-1]
    assert sizes[0] == 20 and sizes[1] >= 10


def test_evidence_and_explanation(gallery_findings: list[Finding]) -> None:
    fast = next(f for f in gallery_findings if f.member_ids == ("F0", "F1", "F2"))
    assert fast.evidence["cycles"][0]["path"] == ["F0", "F1", "F2", "F0"]
    assert len(fast.evidence["rounds"]) == 10
    assert [r["round"] for r in fast.evidence["rounds"]] == list(range(1, 11))
    assert len(fast.evidence["orders"]) == 30
    assert "went round 3 accounts 10 times" in fast.explanation
    passed = {
        f.member_ids[0]: next(s.value for s in f.signals if s.name == "passed_on_share")
        for f in gallery_findings
    }
    assert passed["wA"] == 1.0  # laundering: each hop after the one that paid it
    assert passed["g0"] == 0.0  # goods round: each account but one pays before it is paid
    slow = next(f for f in gallery_findings if len(f.members) == 12)
    hours = next(s.value for s in slow.signals if s.name == "median_hop_hours")
    assert 18 <= hours <= 30


def test_the_hub_is_a_member_at_a_discount(gallery_findings: list[Finding]) -> None:
    hub = next(f for f in gallery_findings if "HUBSHOP" in f.member_ids)
    scores = {m.account_id: m.score for m in hub.members}
    assert scores["HUBSHOP"] < scores["hX"] == hub.score


def c2c_market(n: int = 1000, seed: int = 2) -> list[Hop]:
    """A second-hand market where everybody buys from and sells to everybody: one strongly
    connected component of about ``n`` accounts, amounts of every kind, 30 days."""
    rng = np.random.default_rng(seed)
    m = 6 * n
    pop = rng.lognormal(0.0, 0.5, n)
    buyer = rng.choice(n, size=m, p=(w := rng.lognormal(0.0, 0.5, n)) / w.sum())
    seller = rng.choice(n, size=m, p=pop / pop.sum())
    keep = buyer != seller
    amount = np.round(rng.lognormal(np.log(40.0), 0.9, m), 2)
    hours = rng.uniform(0, 720, m)
    return [
        (f"u{b:04d}", f"u{s:04d}", float(x), float(h))
        for b, s, x, h in zip(buyer[keep], seller[keep], amount[keep], hours[keep], strict=True)
    ]


def test_a_cycle_inside_a_component_of_a_thousand_accounts() -> None:
    market = c2c_market()
    # six of the market's own accounts send 700 round three times, a few hours a hop
    ring = ["u0005", "u0123", "u0456", "u0789", "u0901", "u0042"]
    hops = list(market)
    for r in range(3):
        base = 50.0 + 210 * r
        hops += _round(ring, 700.0, [base + 4 * i for i in range(6)], [1, 1.01, 0.99, 1, 1, 1.02])
    o = _orders(hops)
    ids, codes = np.unique(np.concatenate([o["buyer_id"], o["seller_id"]]), return_inverse=True)
    g = sparse.coo_matrix(
        (np.ones(len(o)), (codes[: len(o)], codes[len(o) :])), shape=(len(ids), len(ids))
    )
    _, comp = connected_components(g.tocsr(), directed=True, connection="strong")
    sizes = np.bincount(comp)
    assert sizes.max() >= 950 and sizes[comp[np.searchsorted(ids, ring)]].min() == sizes.max()
    want = [tuple(sorted(ring))]
    assert [f.member_ids for f in detect_money_cycles(o, seed=0)] == want
    # however small the enumeration budget, the component is split, never skipped
    assert [f.member_ids for f in detect_money_cycles(o, seed=0, max_cycles=3)] == want
    # and the market alone has no cycle to report
    assert detect_money_cycles(_orders(market), seed=0) == []


def test_one_cycle_one_finding_across_the_money_detectors() -> None:
    hops = ordinary_trade(seed=7)
    for h, _, _ in GALLERY.values():
        hops += h
    chain = [("cS", "cM1", 5000.0, 600.0), ("cM1", "cM2", 4950.0, 609.0)]
    chain += [("cM2", "cK", 4900.5, 622.0)]
    o = _orders(hops + chain)
    cycles = detect_money_cycles(o, seed=0)
    flows = detect_money_flows(o, seed=0)
    assert len(cycles) == len(GALLERY)
    assert [f.member_ids for f in flows] == [("cK", "cM1", "cM2", "cS")]
    in_cycles = {a for f in cycles for a in f.member_ids}
    assert not in_cycles & {a for f in flows for a in f.member_ids}
    # without the hand-off, money_flows reports what went round as well
    alone = detect_money_flows(o, seed=0, leave_cycles=False)
    assert {a for f in alone for a in f.member_ids} & in_cycles


def test_min_rounds_and_max_length() -> None:
    hops = ordinary_trade(seed=3) + fast_cycle() + laundering_once() + long_slow_cycle()
    o = _orders(hops)
    assert {f.member_ids[0] for f in detect_money_cycles(o, seed=0, min_rounds=2)} == {"F0", "L00"}
    assert {f.member_ids[0] for f in detect_money_cycles(o, seed=0, max_length=4)} == {"F0", "wA"}


def test_back_and_forth_and_time_shuffled_amounts_not_flagged() -> None:
    hops = ordinary_trade(seed=1)
    for r in range(5):
        hops += [("A", "B", 50.0, 24.0 * r), ("B", "A", 50.0, 24.0 * r + 1)]
    # a "cycle" whose hops' amounts differ by a quarter each: no money went round
    hops += _round(["x1", "x2", "x3"], 900.0, [10, 12, 14], [1.0, 1.25, 1.5625])
    assert detect_money_cycles(_orders(hops), seed=0) == []


def test_empty_single_and_params() -> None:
    assert detect_money_cycles(_orders([])) == []
    assert detect_money_cycles(_orders([("A", "B", 1.0, 0.0)])) == []
    with pytest.raises(ValueError, match="max_length"):
        detect_money_cycles(_orders([]), min_length=4, max_length=3)
    with pytest.raises(ValueError, match="min_length"):
        detect_money_cycles(_orders([]), min_length=2)
    with pytest.raises(ValueError, match="max_change"):
        detect_money_cycles(_orders([]), max_change=1.5)
    with pytest.raises(TypeError, match="max_degree"):
        detect_money_cycles(_orders([]), max_degree=30)  # type: ignore[call-arg]


def test_removed_parameters_are_refused_by_name(tmp_path: Path) -> None:
    # the fixed span, hub degree and component size are gone: a policy naming one is refused
    policy = tmp_path / "policy.yaml"
    policy.write_text("detectors:\n  money_cycles:\n    params: {max_span_days: 7}\n", "utf-8")
    with pytest.raises(ConfigError, match="max_span_days is not a parameter of money_cycles"):
        load_policy(policy)


def test_deterministic_and_canonical() -> None:
    o = _orders(ordinary_trade() + fast_cycle() + hub_cycle() + laundering_once())
    a = detect_money_cycles(o, seed=1)
    b = detect_money_cycles(o.sample(frac=1.0, random_state=5).reset_index(drop=True), seed=1)
    assert len(a) == 3
    assert canonical_json([f.to_dict() for f in a]) == canonical_json([f.to_dict() for f in b])
    for f in a:
        assert 0.0 <= f.score <= 1.0
        assert all(0.0 <= m.score <= f.score for m in f.members)
