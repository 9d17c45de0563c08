"""Planted abuse: engagement farms, commission rings, incentive farms and money cycles.

Planted accounts are numbered after the ordinary ones but their ids are drawn like every
other id, and their rows are shuffled in among the ordinary rows when written: nothing but
their behaviour tells them apart. Ring ids appear only in ``truth.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _legit
from ._world import (
    ABUSIVE,
    ADDRESS,
    BUYER,
    CANCELLED,
    COMMENT,
    COMPLETED,
    CREATOR,
    DAY,
    DEVICE,
    END,
    GIFT,
    HISTORY_START,
    HOUR,
    IP,
    LEGIT,
    LIKE,
    PAYMENT,
    PHONE,
    REFUNDED,
    SELLER,
    SHARE,
    START,
    VIEW,
    IntArray,
    World,
    pick_unique,
    pick_weighted,
    sample_times,
    scaled_count,
)


@dataclass
class _Farm:
    ring_id: str
    bots: IntArray
    participation: float
    window: int
    camouflage: float


@dataclass
class _CommissionRing:
    ring_id: str
    creator: int
    seller: int
    buyers: IntArray
    same_person: bool
    quiet: bool


@dataclass
class _IncentiveFarm:
    ring_id: str
    accounts: IntArray
    t0: IntArray


@dataclass
class _Cycle:
    ring_id: str
    accounts: IntArray


@dataclass
class Plan:
    """The planted rings, decided before the marketplace's streams exist."""

    farms: list[_Farm] = field(default_factory=list)
    commission: list[_CommissionRing] = field(default_factory=list)
    incentive: list[_IncentiveFarm] = field(default_factory=list)
    cycles: list[_Cycle] = field(default_factory=list)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> int:
    return round(float(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo))))))


def _old_created(rng: np.random.Generator, n: int) -> IntArray:
    return (HISTORY_START + (START - 90 * DAY - HISTORY_START) * rng.beta(2.0, 1.2, n)).astype(
        np.int64
    )


def plan(w: World) -> Plan:
    """Create the planted accounts and put planted creators and sellers in the pools."""
    rng = w.rng("plan")
    p = Plan()
    # engagement farms
    cap = min(500.0, max(14.0, 0.02 * w.n_legit))
    for i in range(scaled_count(w.events, 5, 3)):
        size = max(10, _log_uniform(rng, 10, cap))
        if rng.random() < 0.7:  # fresh accounts made in batches for the job
            base = START - int(rng.uniform(0, 60) * DAY)
            created = base + rng.integers(0, 3 * DAY, size)
        else:  # aged accounts bought or taken over
            created = _old_created(rng, size)
        bots = w.add_accounts(created, BUYER, buy_w=0.02, baseline=False, abuse=True)
        p.farms.append(
            _Farm(
                f"ef-{i + 1:04d}",
                bots,
                participation=float(rng.uniform(0.4, 0.85)),
                window=int(rng.uniform(10, 120)),
                camouflage=float(rng.uniform(0.5, 12.0)),
            )
        )
        w.count_ring("engagement_farm")
    # commission rings
    for i in range(scaled_count(w.events, 5, 3)):
        if i == 0:
            nb = int(rng.integers(5, 11))
        elif i == 1:
            nb = int(rng.integers(15, 41))
        else:
            nb = _log_uniform(rng, 5, 60)
        same = bool(rng.random() < 0.3)
        c_created = (
            _old_created(rng, 1) if rng.random() < 0.5 else START - rng.integers(60, 400, 1) * DAY
        )
        s_created = c_created + rng.integers(0, 5 * DAY, 1) if same else _old_created(rng, 1)
        creator = w.add_accounts(c_created, CREATOR, view_w=0.2, abuse=True)
        seller = w.add_accounts(s_created, SELLER, abuse=True)
        w.creators.append((creator, rng.lognormal(np.log(0.4), 0.6, 1)))
        w.sellers.append((seller, rng.lognormal(np.log(0.2), 0.5, 1)))
        fresh = rng.random(nb) < 0.5
        b_created = np.where(
            fresh, START - rng.integers(0, 120 * DAY, nb), _old_created(rng, nb)
        ).astype(np.int64)
        buyers = w.add_accounts(b_created, BUYER, view_w=0.05, buy_w=0.1, abuse=True)
        p.commission.append(
            _CommissionRing(
                f"cr-{i + 1:04d}",
                int(creator[0]),
                int(seller[0]),
                buyers,
                same_person=same,
                quiet=bool(rng.random() < 0.3),
            )
        )
        w.count_ring("commission_ring")
    # incentive (coupon) farms
    for i in range(scaled_count(w.events, 4, 2)):
        size = max(5, _log_uniform(rng, 5, min(60.0, max(10.0, 0.01 * w.n_legit))))
        t0 = int(sample_times(rng, 1, hi=END - 3 * DAY)[0])
        created = t0 - rng.integers(0, 3 * DAY, size)
        accs = w.add_accounts(created, BUYER, baseline=False, abuse=True)
        p.incentive.append(_IncentiveFarm(f"if-{i + 1:04d}", accs, created))
        w.count_ring("incentive_farm")
    # money cycles
    for i in range(scaled_count(w.events, 3, 2)):
        k = int(rng.integers(3, 9))
        accs = w.add_accounts(
            _old_created(rng, k),
            SELLER | BUYER,
            view_w=rng.lognormal(0.0, 1.0, k),
            buy_w=0.3,
            abuse=True,
        )
        w.sellers.append((accs, rng.lognormal(np.log(0.2), 0.5, k)))
        p.cycles.append(_Cycle(f"mc-{i + 1:04d}", accs))
        w.count_ring("money_cycle")
    return p


# ---------------------------------------------------------------------- activity


def _shared(
    w: World,
    rng: np.random.Generator,
    accounts: IntArray,
    kind: int,
    pool_size: int,
    per_account: int = 1,
) -> IntArray:
    """Give each account ``per_account`` values drawn from a pool of ``pool_size``."""
    pool = _legit.new_identifiers(rng, kind, max(1, pool_size))
    acc = np.repeat(accounts, per_account)
    vals = pool[rng.integers(0, len(pool), len(acc))]
    w.add_identifiers(acc, kind, vals)
    return pool


def _own(w: World, rng: np.random.Generator, accounts: IntArray, kind: int, p: float) -> None:
    acc = accounts[rng.random(len(accounts)) < p]
    w.add_identifiers(acc, kind, _legit.new_identifiers(rng, kind, len(acc)))


def engagement_farms(w: World, farms: list[_Farm]) -> None:
    """Bots that hit a few target creators' streams together, within seconds to minutes."""
    rng = w.rng("engagement_farms")
    cidx, pop = w.creator_pool()
    counts = np.bincount(w.stream_creator, minlength=w.n_accounts)[cidx]
    small = (counts >= 3) & (pop <= np.median(pop)) & (cidx < w.n_legit)
    candidates = cidx[small] if small.any() else cidx[counts >= 1]
    popular = w.stream_weight**1.2
    created = w.created
    for farm in farms:
        free = np.array([c for c in candidates if int(c) not in w.reserved_creators])
        pool = free if len(free) else candidates
        targets = pick_unique(rng, pool.astype(np.int64), int(rng.integers(1, 4)))
        w.reserved_creators.update(int(t) for t in targets)
        tstreams = np.flatnonzero(np.isin(w.stream_creator, targets))
        n_b = min(int(rng.integers(6, 26)), 3 * len(tstreams))
        bst = np.sort(rng.choice(tstreams, n_b))
        bstart, bend = w.stream_start[bst], w.stream_end[bst]
        bts = bstart + ((bend - bstart) * rng.uniform(0.0, 0.7, n_b)).astype(np.int64)
        bots = farm.bots
        p_bot = np.clip(rng.normal(farm.participation, 0.15, len(bots)), 0.15, 1.0)
        mi, bi = np.nonzero(rng.random((len(bots), n_b)) < p_bot[:, None])
        acc, st = bots[mi], bst[bi]
        end = w.stream_end[st] - 1
        view = np.minimum(bts[bi] + rng.integers(0, farm.window + 1, len(mi)), end)
        accs, sts, kinds, tss = [acc], [st], [np.full(len(acc), VIEW)], [view]
        amounts = [np.full(len(acc), np.nan)]
        for kind, prob in ((LIKE, 0.75), (COMMENT, 0.35), (SHARE, 0.1), (GIFT, 0.12)):
            sel = rng.random(len(acc)) < prob
            accs.append(acc[sel])
            sts.append(st[sel])
            kinds.append(np.full(int(sel.sum()), kind))
            tss.append(
                np.minimum(view[sel] + rng.integers(1, farm.window + 2, int(sel.sum())), end[sel])
            )
            amt = np.full(int(sel.sum()), np.nan)
            if kind == GIFT:
                amt = np.round(rng.uniform(0.5, 5.0, int(sel.sum())), 2)
            amounts.append(amt)
        w.add_engagements(
            np.concatenate(accs),
            np.concatenate(sts),
            np.concatenate(kinds),
            np.concatenate(tss),
            np.concatenate(amounts),
        )
        # camouflage: ordinary-looking sessions on popular streams
        n_camo = rng.poisson(farm.camouflage, len(bots))
        cacc = np.repeat(bots, n_camo)
        cst = pick_weighted(rng, popular, len(cacc))
        cjoin = w.stream_start[cst] + (
            (w.stream_end[cst] - w.stream_start[cst]) * rng.beta(1.3, 2.0, len(cacc))
        ).astype(np.int64)
        _legit._sessions(rng, w, cacc, cst, cjoin, planted=True)
        # follows of the targets, before the first burst
        fol = rng.random(len(bots)) < 0.6
        tgt = targets[rng.integers(0, len(targets), int(fol.sum()))]
        first = int(bts.min())
        fts = np.maximum(created[bots[fol]] + 60, first - rng.integers(0, 2 * DAY, int(fol.sum())))
        w.add_follows(bots[fol], tgt, np.minimum(fts, END - 60))
        # identifiers: device pool, proxy IPs, some phones and cards
        size = len(bots)
        _shared(w, rng, bots, DEVICE, int(np.ceil(size / rng.uniform(3, 15))))
        extra = bots[rng.random(size) < 0.4]
        _shared(w, rng, extra, DEVICE, int(np.ceil(size / rng.uniform(3, 15))))
        _shared(w, rng, bots, IP, int(np.ceil(size / rng.uniform(5, 30))))
        _own(w, rng, bots, IP, 0.3)
        _own(w, rng, bots, PHONE, 0.6)
        _own(w, rng, bots, PAYMENT, 0.15)
        w.add_truth(farm.ring_id, "engagement_farm", bots, "bot")
        w.add_truth(farm.ring_id, "engagement_farm", targets, "creator")


def commission_rings(w: World, rings: list[_CommissionRing]) -> None:
    """Sock-puppet buyers ordering a seller's products through a creator's affiliate links,
    then refunding or cancelling after the commission accrues."""
    rng = w.rng("commission_rings")
    for ring in rings:
        rate = rng.uniform(0.2, 0.45)
        w.add_affiliations(
            np.array([ring.creator]), np.array([ring.seller]), np.array([rate]), recent=True
        )
        cst = _legit.streams_of(w, ring.creator)
        buyers = ring.buyers
        per = 1 + rng.poisson(1.5, len(buyers))
        buyer = np.repeat(buyers, per)
        n = len(buyer)
        in_stream = (rng.random(n) < 0.8) & (len(cst) > 0)
        stream = np.full(n, -1, dtype=np.int64)
        if len(cst):
            stream[in_stream] = cst[rng.integers(0, len(cst), int(in_stream.sum()))]
        ts = sample_times(rng, n)
        s = stream[in_stream]
        ts[in_stream] = w.stream_start[s] + (
            rng.random(len(s)) * (w.stream_end[s] - w.stream_start[s])
        ).astype(np.int64)
        seller = np.full(n, ring.seller)
        product = w.products_of(rng, seller)
        amount = w.product_price[product] * (1 + (rng.random(n) < 0.25))
        if ring.quiet:
            refund, cancel = rng.uniform(0.03, 0.1), 0.05
        else:
            refund, cancel = rng.uniform(0.35, 0.75), rng.uniform(0.05, 0.25)
        u = rng.random(n)
        status = np.full(n, COMPLETED, dtype=np.int64)
        status[u < refund + cancel] = CANCELLED
        status[u < refund] = REFUNDED
        w.add_orders(
            buyer,
            seller,
            product,
            amount,
            status,
            ts,
            creator=np.full(n, ring.creator),
            stream=stream,
            rate=np.full(n, rate),
            refund_delay=rng.integers(8 * DAY, 20 * DAY, n),
        )
        # the buyers watch the creator a little
        if len(cst):
            sacc = np.repeat(buyers, rng.integers(1, 4, len(buyers)))
            sst = cst[rng.integers(0, len(cst), len(sacc))]
            join = w.stream_start[sst] + (
                (w.stream_end[sst] - w.stream_start[sst]) * rng.random(len(sacc))
            ).astype(np.int64)
            _legit._sessions(rng, w, sacc, sst, join, planted=True)
        # shared payment methods and devices among the buyers (and with the creator)
        nb = len(buyers)
        groups = int(np.ceil(nb / rng.uniform(4, 10) if ring.quiet else nb / rng.uniform(2, 6)))
        pay = _shared(w, rng, buyers, PAYMENT, groups)
        if rng.random() < 0.3:
            w.add_identifiers(np.array([ring.creator]), PAYMENT, pay[:1])
        if rng.random() < 0.7:
            dev = _shared(w, rng, buyers, DEVICE, int(np.ceil(nb / rng.uniform(2, 8))))
            if rng.random() < 0.3:
                w.add_identifiers(np.array([ring.creator]), DEVICE, dev[:1])
        if ring.same_person:
            both = np.array([ring.creator, ring.seller])
            for kind in (DEVICE, PAYMENT, IP):
                w.add_identifiers(both, kind, _legit.new_identifiers(rng, kind, 1).repeat(2))
        w.add_truth(ring.ring_id, "commission_ring", np.array([ring.creator]), "creator")
        w.add_truth(ring.ring_id, "commission_ring", np.array([ring.seller]), "seller")
        w.add_truth(ring.ring_id, "commission_ring", buyers, "buyer")


def incentive_farms(w: World, farms: list[_IncentiveFarm]) -> None:
    """New accounts on a few devices and cards, each placing one small first order."""
    rng = w.rng("incentive_farms")
    sidx, spop = w.seller_pool()
    legit = sidx < w.n_legit
    sidx, spop = sidx[legit], spop[legit]
    for farm in farms:
        accs = farm.accounts
        n = len(accs)
        promo = sidx[pick_weighted(rng, spop, int(rng.integers(1, 3)))]
        seller = promo[rng.integers(0, len(promo), n)]
        product = w.products_of(rng, seller)
        ts = np.minimum(farm.t0 + rng.integers(HOUR, 2 * DAY, n), END - 60)
        status = np.where(rng.random(n) < 0.92, COMPLETED, CANCELLED)
        w.add_orders(accs, seller, product, rng.uniform(3.0, 15.0, n), status, ts)
        _shared(w, rng, accs, DEVICE, int(rng.integers(1, 4)))
        _shared(w, rng, accs, PAYMENT, int(rng.integers(1, 5)))
        _shared(w, rng, accs, IP, int(rng.integers(1, 4)))
        if rng.random() < 0.6:
            _shared(w, rng, accs, ADDRESS, int(rng.integers(1, 3)))
        _own(w, rng, accs, PHONE, 0.7)
        w.add_truth(farm.ring_id, "incentive_farm", accs, "buyer")


def money_cycles(w: World, cycles: list[_Cycle]) -> None:
    """Accounts that buy from each other in a loop, round after round, at similar amounts."""
    rng = w.rng("money_cycles")
    for cyc in cycles:
        accs = cyc.accounts
        k = len(accs)
        rounds = int(rng.integers(3, 11))
        base = rng.uniform(150.0, 1500.0)
        t_r = sample_times(rng, rounds, hi=END - 4 * DAY)
        step = rng.integers(HOUR, 12 * HOUR, (rounds, k)).cumsum(axis=1)
        ts = np.minimum((t_r[:, None] + step).ravel(), END - 60)
        seller = np.tile(accs, rounds)
        buyer = np.tile(np.roll(accs, -1), rounds)
        product = w.products_of(rng, seller)
        amount = base * rng.uniform(0.95, 1.05, len(seller))
        status = np.full(len(seller), COMPLETED, dtype=np.int64)
        w.add_orders(buyer, seller, product, amount, status, ts)
        if rng.random() < 0.3:
            w.add_identifiers(accs, DEVICE, _legit.new_identifiers(rng, DEVICE, 1).repeat(k))
        w.add_truth(cyc.ring_id, "money_cycle", accs, "member")


def activity(w: World, p: Plan) -> None:
    """Everything the planted rings do."""
    engagement_farms(w, p.farms)
    commission_rings(w, p.commission)
    incentive_farms(w, p.incentive)
    money_cycles(w, p.cycles)


def labels(w: World) -> None:
    """Past investigator decisions: some planted abusers, some ordinary accounts."""
    rng = w.rng("labels")
    abusive: list[IntArray] = []
    seen: set[str] = set()
    for ring_id, _kind, accs, role in w.truth:
        if ring_id.startswith("hn-") or ring_id in seen or role in ("creator", "seller"):
            continue
        seen.add(ring_id)
        if rng.random() < 0.5:
            abusive.append(
                rng.choice(accs, size=min(len(accs), int(rng.integers(1, 3))), replace=False)
            )
    bad = np.unique(np.concatenate(abusive)) if abusive else np.empty(0, np.int64)
    w.add_labels(bad, ABUSIVE, END - rng.integers(DAY, 25 * DAY, len(bad)))
    n_good = max(5, round(0.002 * w.n_legit))
    good = [rng.choice(w.n_legit, n_good, replace=False)]
    for ring_id, _, accs, _ in w.truth:
        if ring_id in ("hn-household-000001", "hn-viral_stream-0001", "hn-fan_club-0001"):
            good.append(accs[:2])
    ok = np.unique(np.concatenate(good)).astype(np.int64)
    w.add_labels(ok, LEGIT, END - rng.integers(DAY, 60 * DAY, len(ok)))
