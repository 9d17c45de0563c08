"""Money flows: a gallery of named typologies and look-alikes over ordinary trade, and
generated typology markets."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures import Hop, gallery_orders, money_orders, ordinary_trade

from ringscope.algorithms.cycles import KIND as CYCLE_KIND
from ringscope.algorithms.cycles import detect_money_cycles
from ringscope.algorithms.flows import KIND, detect_money_flows
from ringscope.errors import InputError
from ringscope.loaders.pipeline import read_export_tables
from ringscope.loaders.synthetic import _flows
from ringscope.loaders.synthetic._flows import TYPOLOGIES, plant_money_flows, typology_market
from ringscope.loaders.synthetic._world import World
from ringscope.model import Finding, canonical_json

_orders = money_orders


# --------------------------------------------------------------------------- the gallery


def _path(accounts: list[str], amounts: list[float], hours: list[float]) -> list[Hop]:
    """Hops along ``accounts``: the i-th pays the next ``amounts[i]`` at ``hours[i]``."""
    pairs = list(itertools.pairwise(accounts))
    return [(a, b, x, h) for (a, b), x, h in zip(pairs, amounts, hours, strict=True)]


#: name -> (hops, expected members, typology)
GALLERY: dict[str, tuple[list[Hop], set[str], str]] = {
    "cycle_with_fee": (
        [("cA", "cB", 2500.0, 100), ("cB", "cC", 2475.0, 106), ("cC", "cA", 2450.25, 120)],
        {"cA", "cB", "cC"},
        "cycle",
    ),
    "cycle_without_fee": (
        [("zA", "zB", 1800.0, 200), ("zB", "zC", 1800.0, 203), ("zC", "zA", 1800.0, 230)],
        {"zA", "zB", "zC"},
        "cycle",
    ),
    "cycle_of_four": (
        _path(["qA", "qB", "qC", "qD", "qA"], [640.0, 633.6, 627.26, 620.99], [300, 304, 312, 330]),
        {"qA", "qB", "qC", "qD"},
        "cycle",
    ),
    "fan_in": (
        [(f"fiS{i}", "fiM", a, 400 + i) for i, a in enumerate([410.0, 385.5, 402.25, 398.0, 420.0])]
        + [("fiM", "fiK", 1995.0, 420)],
        {"fiS0", "fiS1", "fiS2", "fiS3", "fiS4", "fiM", "fiK"},
        "fan_in",
    ),
    "fan_out": (
        [("foF", "foM", 3000.0, 450)]
        + [
            ("foM", f"foR{i}", a, 452 + 2 * i)
            for i, a in enumerate([510.0, 495.5, 490.0, 505.25, 499.0, 480.0])
        ],
        {"foF", "foM", "foR0", "foR1", "foR2", "foR3", "foR4", "foR5"},
        "fan_out",
    ),
    "scatter_gather": (
        [("sgS", f"sgM{i}", a, 500 + i) for i, a in enumerate([700.0, 640.0, 720.5, 690.0])]
        + [
            (f"sgM{i}", "sgK", a * 0.99, 510 + 3 * i)
            for i, a in enumerate([700.0, 640.0, 720.5, 690.0])
        ],
        {"sgS", "sgM0", "sgM1", "sgM2", "sgM3", "sgK"},
        "scatter_gather",
    ),
    "gather_scatter": (
        [(f"gsS{i}", "gsM", a, 560 + i) for i, a in enumerate([900.0, 1100.0, 1000.0, 950.0])]
        + [("gsM", f"gsR{i}", a, 570 + i) for i, a in enumerate([1000.0, 980.0, 1010.0, 920.0])],
        {"gsS0", "gsS1", "gsS2", "gsS3", "gsM", "gsR0", "gsR1", "gsR2", "gsR3"},
        "gather_scatter",
    ),
    "chain": (
        _path(
            ["chS", "chM1", "chM2", "chM3", "chK"],
            [5000.0, 4950.0, 4900.5, 4851.49],
            [600, 609, 622, 640],
        ),
        {"chS", "chM1", "chM2", "chM3", "chK"},
        "chain",
    ),
}


def hub_seller() -> list[Hop]:
    """A big seller bought from by 2,500 buyers, who restocks from two suppliers."""
    rng = np.random.default_rng(7)
    hops: list[Hop] = [
        (f"hb{i:04d}", "HUB", float(rng.choice([19.9, 24.5, 39.0, 59.0])), float(h))
        for i, h in enumerate(rng.uniform(0, 720, 2500))
    ]
    for week in range(4):
        # a restock about equal to what the week's sales brought in
        hops.append(("HUB", "hsupA", 2600.0 + 13 * week, 168.0 * week + 160))
        hops.append(("HUB", "hsupB", 39.0, 168.0 * week + 100))
    return hops


def wholesale_markup() -> list[Hop]:
    """A wholesaler buys a batch, then retailers pay for it with a 20-30% markup, weekly."""
    hops: list[Hop] = []
    for week in range(4):
        base = 168.0 * week + 20
        cost = 1000.0 + 40 * week
        hops.append(("WHOLE", "wSupplier", cost, base))
        for r in range(4):
            hops.append((f"wRet{r}", "WHOLE", cost * (0.3 + 0.02 * r), base + 24 + 10 * r))
    return hops


def refunds_and_friends() -> list[Hop]:
    """Round trips: a seller paying a buyer back, friends paying each other back once."""
    hops: list[Hop] = []
    for i in range(6):
        hops.append((f"rb{i}", f"rs{i}", 45.0 + i, 50.0 + 30 * i))
        hops.append((f"rs{i}", f"rb{i}", 45.0 + i, 70.0 + 30 * i))
    hops += [("friendA", "friendB", 30.0, 300.0), ("friendB", "friendA", 30.0, 302.0)]
    hops += [("pal1", "pal2", 120.0, 400.0), ("pal2", "pal1", 118.0, 420.0)]
    return hops


def time_violating_cycle() -> list[Hop]:
    """A "cycle" of conserved amounts whose hops run backwards in time, from any start."""
    return [("tvX", "tvY", 3300.0, 530), ("tvY", "tvZ", 3300.0, 516), ("tvZ", "tvX", 3300.0, 510)]


NEGATIVES = {
    "hub_seller": hub_seller,
    "wholesale_markup": wholesale_markup,
    "refunds_and_friends": refunds_and_friends,
    "time_violating_cycle": time_violating_cycle,
}


def _typology(f: Finding) -> str:
    return str(f.evidence["typology"][0]["typology"])


def money(orders: pd.DataFrame) -> list[Finding]:
    """Both money detectors' findings: money that goes round is ``money_cycles``'."""
    return detect_money_flows(orders, seed=0) + detect_money_cycles(orders, seed=0)


@pytest.fixture(scope="module")
def gallery_findings() -> list[Finding]:
    return detect_money_flows(
        gallery_orders(ordinary_trade(), GALLERY.values(), NEGATIVES.values()), seed=0
    )


@pytest.fixture(scope="module")
def gallery_money() -> list[Finding]:
    return money(gallery_orders(ordinary_trade(), GALLERY.values()))


def test_gallery_finds_exactly_the_planted_flows(
    gallery_findings: list[Finding], gallery_money: list[Finding]
) -> None:
    got = sorted((tuple(f.member_ids), _typology(f)) for f in gallery_findings)
    want = sorted((tuple(sorted(m)), t) for _, m, t in GALLERY.values() if t != "cycle")
    assert got == want
    for f in gallery_findings:
        assert f.kind == KIND
        assert f.signals[0].name == f"typology_{_typology(f)}"
        assert _typology(f).replace("_", "-") in f.explanation
        assert next(s for s in f.signals if s.name == "significance").value >= 2.0
        assert 0.0 < f.score <= 1.0
    # the cycles went round once: money_cycles reports them, one finding each
    got = sorted((tuple(f.member_ids), _typology(f), f.kind) for f in gallery_money)
    want = sorted(
        (tuple(sorted(m)), t, CYCLE_KIND if t == "cycle" else KIND) for _, m, t in GALLERY.values()
    )
    assert got == want


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_each_flow_alone_over_ordinary_trade(name: str) -> None:
    hops, members, typology = GALLERY[name]
    found = money(_orders(ordinary_trade(seed=3) + hops))
    assert [(set(f.member_ids), _typology(f)) for f in found] == [(members, typology)]


def test_roles_say_who_paid_passed_on_and_received(gallery_money: list[Finding]) -> None:
    roles = {m.account_id: m.role for f in gallery_money for m in f.members}
    cycle = next(f for f in gallery_money if "cA" in f.member_ids)
    passed = next(s.value for s in cycle.signals if s.name == "passed_on_share")
    assert cycle.kind == CYCLE_KIND and passed == 1.0  # each hop after the one that paid it
    assert roles["fiS0"] == "source" and roles["fiM"] == "mule" and roles["fiK"] == "sink"
    assert roles["foF"] == "source" and roles["foM"] == "mule" and roles["foR3"] == "sink"
    assert {roles[f"sgM{i}"] for i in range(4)} == {"mule"} and roles["sgK"] == "sink"
    assert [roles[a] for a in ("chS", "chM1", "chM2", "chM3", "chK")] == [
        "source",
        "mule",
        "mule",
        "mule",
        "sink",
    ]


def test_evidence_shows_each_pass_through(gallery_findings: list[Finding]) -> None:
    chain = next(f for f in gallery_findings if _typology(f) == "chain")
    steps = chain.evidence["pass_throughs"]
    assert [s["account_id"] for s in steps] == ["chM1", "chM2", "chM3"]
    assert all(s["payments_in"] == s["payments_out"] == 1 for s in steps)
    assert [s["money_out"] for s in steps] == [4950.0, 4900.5, 4851.49]
    assert len(chain.evidence["orders"]) == 4
    assert [r["from"] for r in chain.evidence["orders"]] == ["chS", "chM1", "chM2", "chM3"]
    assert "less at most 1.0%" in chain.explanation


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_look_alikes_are_not_flagged(name: str, gallery_findings: list[Finding]) -> None:
    accounts = {h[0] for h in NEGATIVES[name]()} | {h[1] for h in NEGATIVES[name]()}
    alone = detect_money_flows(_orders(ordinary_trade(seed=5) + NEGATIVES[name]()), seed=0)
    assert alone == []
    assert not accounts & {a for f in gallery_findings for a in f.member_ids}
    cycles = detect_money_cycles(_orders(ordinary_trade(seed=5) + NEGATIVES[name]()), seed=0)
    if name == "time_violating_cycle":
        # no money passed on hop after hop, but goods went round once (each account paid
        # before it was paid, like amounts, hours apart): a money cycle
        assert [f.member_ids for f in cycles] == [("tvX", "tvY", "tvZ")]
        passed = next(s.value for s in cycles[0].signals if s.name == "passed_on_share")
        assert passed == 0.0
    else:
        assert cycles == []


def test_the_cycle_needs_its_hops_in_time_order() -> None:
    hops = GALLERY["cycle_with_fee"][0]
    assert detect_money_flows(_orders(ordinary_trade() + hops), seed=0, leave_cycles=False)
    # the second hop before the first, and every hop in reverse: from no account does the
    # money go round hop after hop
    early_second = [hops[0], (hops[1][0], hops[1][1], hops[1][2], 95.0), hops[2]]
    reverse = [(a, b, x, 250 - t) for a, b, x, t in hops]
    for bad in (early_second, reverse):
        found = detect_money_flows(_orders(ordinary_trade() + bad), seed=0, leave_cycles=False)
        assert not {"cA", "cB", "cC"} <= {a for f in found for a in f.member_ids}


def test_amounts_must_be_passed_on() -> None:
    # the same chain with each hop paying 25% more than it received: a markup, not a pass-on
    hops = [(a, b, 5000.0 * 1.25**i, t) for i, (a, b, _, t) in enumerate(GALLERY["chain"][0])]
    assert detect_money_flows(_orders(ordinary_trade() + hops), seed=0) == []


def test_deterministic_whatever_the_row_order() -> None:
    hops = ordinary_trade() + [h for v in GALLERY.values() for h in v[0]]
    o = _orders(hops)
    a = detect_money_flows(o, seed=1)
    b = detect_money_flows(o.sample(frac=1.0, random_state=4).reset_index(drop=True), seed=1)
    assert a
    assert canonical_json([f.to_dict() for f in a]) == canonical_json([f.to_dict() for f in b])
    for f in a:
        assert all(0.0 <= m.score <= f.score for m in f.members)


def test_empty_tiny_and_bad_parameters() -> None:
    assert detect_money_flows(_orders([])) == []
    assert detect_money_flows(_orders([("A", "B", 10.0, 1.0), ("B", "C", 10.0, 2.0)])) == []
    with pytest.raises(ValueError, match="max_fee"):
        detect_money_flows(_orders([]), max_fee=1.5)
    with pytest.raises(ValueError, match="max_gather"):
        detect_money_flows(_orders([]), max_gather=1)


# --------------------------------------------------------------------------- generated markets


def _account_auc(scores: dict[str, float], accounts: list[str], positives: set[str]) -> float:
    from scipy.stats import rankdata

    s = np.array([scores.get(a, 0.0) for a in accounts])
    y = np.array([a in positives for a in accounts])
    r = rankdata(s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.mark.parametrize("seed", [1003, 1004])
def test_generated_typology_market(tmp_path: Path, seed: int) -> None:
    market = typology_market(tmp_path, seed=seed, events=100_000, per_typology=6)
    assert market.rings["money_flow"] == 6 * len(TYPOLOGIES)
    tables = read_export_tables(tmp_path)
    truth = pd.read_csv(tmp_path / "truth.csv")
    planted = truth[truth["kind"] == "money_flow"]
    positives = set(planted["account_id"])
    found = money(tables.orders)
    scores: dict[str, float] = {}
    for f in found:
        for m in f.members:
            scores[m.account_id] = max(scores.get(m.account_id, 0.0), m.score)
    flagged = set(scores)
    precision = len(flagged & positives) / len(flagged)
    auc = _account_auc(scores, tables.accounts["account_id"].astype(str).tolist(), positives)
    assert precision >= 0.9, precision
    assert auc >= 0.95, auc
    # every typology is found, and named
    for typology in TYPOLOGIES:
        rings = planted[planted["ring_id"].str.startswith(f"mf-{typology}-")]
        members = rings.groupby("ring_id")["account_id"].apply(set)
        hit = [
            max(
                (f for f in found if len(set(f.member_ids) & m) >= len(m) / 2),
                key=lambda f: len(set(f.member_ids) & m),
                default=None,
            )
            for m in members
        ]
        assert sum(h is not None for h in hit) >= len(members) - 1, typology
        named = [_typology(h) for h in hit if h is not None]
        assert named.count(typology) >= len(named) - 1, (typology, named)


# --------------------------------------------------------------------------- the planting


def _world() -> World:
    from ringscope.loaders.synthetic import _legit

    w = World(seed=5, events=5_000)
    _legit.accounts(w)
    _legit.catalogue(w)
    return w


def test_planting_writes_orders_and_truth_of_every_typology() -> None:
    w = _world()
    before = w.n_accounts
    plant_money_flows(w, np.random.default_rng(0), per_typology=dict.fromkeys(TYPOLOGIES, 3))
    assert w.rings["money_flow"] == 18
    ring_ids = {t[0] for t in w.truth}
    assert ring_ids == {f"mf-{t}-{i:04d}" for t in TYPOLOGIES for i in (1, 2, 3)}
    assert {t[1] for t in w.truth} == {"money_flow"}
    assert {t[3] for t in w.truth} == {"source", "mule", "sink"}
    planted = np.concatenate([t[2] for t in w.truth])
    assert len(np.unique(planted)) == len(planted) == w.n_accounts - before
    buyer = np.concatenate([o["buyer"] for o in w.orders])
    seller = np.concatenate([o["seller"] for o in w.orders])
    ts = np.concatenate([o["ts"] for o in w.orders])
    assert (ts < _flows.END).all() and (ts >= w.start).all()
    # every planted payee sells its own product
    product = np.concatenate([o["product"] for o in w.orders])
    assert (w.product_seller[product] == seller).all()
    # and every planted account pays or is paid
    assert set(planted) <= set(buyer) | set(seller)


def test_planting_each_hop_after_the_one_that_funded_it() -> None:
    w = _world()
    params = _flows.FlowParams(camouflage=0.0)
    plant_money_flows(
        w, np.random.default_rng(1), per_typology={"chain": 5, "cycle": 5}, params=params
    )
    o = pd.DataFrame(
        {k: np.concatenate([c[k] for c in w.orders]) for k in ("buyer", "seller", "amount", "ts")}
    )
    mules = [m for _, _, accs, role in w.truth if role == "mule" for m in accs]
    assert len(mules) >= 10
    for m in mules:
        got, paid = o[o["seller"] == m], o[o["buyer"] == m]
        assert len(got) == len(paid) == 1  # no camouflage: one hop in, one hop out
        assert paid["ts"].iloc[0] > got["ts"].iloc[0]
        ratio = paid["amount"].iloc[0] / got["amount"].iloc[0]
        assert 1 - params.max_fee - 0.001 <= ratio <= 1.0 + 0.001


def test_planting_refuses_bad_requests() -> None:
    w = _world()
    with pytest.raises(InputError, match="unknown"):
        plant_money_flows(w, np.random.default_rng(0), per_typology={"stack": 1})
    with pytest.raises(InputError, match="non-negative"):
        plant_money_flows(w, np.random.default_rng(0), per_typology={"cycle": -1})
    with pytest.raises(InputError, match="catalogue"):
        plant_money_flows(World(seed=1, events=1000), np.random.default_rng(0), per_typology={})


def test_repeated_cycles_are_left_to_money_cycles() -> None:
    # the same loop, round after round: one money_cycles finding of four rounds
    rounds = [
        hop
        for r in range(4)
        for hop in _path(
            ["rA", "rB", "rC", "rA"], [900.0, 880.0, 870.0], [72 * r + 1, 72 * r + 6, 72 * r + 12]
        )
    ]
    orders = _orders(ordinary_trade() + rounds)
    found = money(orders)
    assert [(f.member_ids, f.kind) for f in found] == [(("rA", "rB", "rC"), CYCLE_KIND)]
    assert found[0].evidence["cycles"][0]["rounds"] == 4
    # money_flows alone sees the loop too, and names it a cycle
    alone = detect_money_flows(orders, seed=0, leave_cycles=False)
    assert [(f.member_ids, _typology(f)) for f in alone] == [(("rA", "rB", "rC"), "cycle")]
