"""Planted abuse: engagement farms, commission rings, incentive farms and money cycles.

Planted accounts are numbered after the ordinary ones but their ids are drawn like every
other id, and their rows are shuffled in among the ordinary rows when written: nothing but
their behaviour tells them apart. Ring ids appear only in ``truth.csv``.

How many rings of each kind, how big, how they share identifiers, when they act and how they
hide all come from the world's :class:`~._params.WorldParams`; choices drawn per ring that the
default world does not make (a sharing mode, bursts at stream start, popular targets) come
from generators of their own, so the default world stays as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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
    HOUR,
    IP,
    LEGIT,
    LIKE,
    PAYMENT,
    PHONE,
    REFUNDED,
    SELLER,
    SHARE,
    VIEW,
    IntArray,
    World,
    pick_unique,
    pick_weighted,
)

#: How a ring's accounts share devices and cards (drawn per ring, ``share_*`` weights).
ONE, POOLS, OWN = "one", "pools", "own"
_MODES = (ONE, POOLS, OWN)


@dataclass
class _Farm:
    ring_id: str
    bots: IntArray
    participation: float
    window: int
    camouflage: float
    mode: str = POOLS
    at_start: bool = False
    popular: bool = False


@dataclass
class _CommissionRing:
    ring_id: str
    creator: int
    seller: int
    buyers: IntArray
    same_person: bool
    quiet: bool
    #: every creator and seller of the ring (``creator``/``seller`` are the first)
    creators: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    sellers: IntArray = field(default_factory=lambda: np.empty(0, np.int64))
    mode: str = POOLS


@dataclass
class _IncentiveFarm:
    ring_id: str
    accounts: IntArray
    t0: IntArray
    mode: str = POOLS


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


def _old_created(w: World, rng: np.random.Generator, n: int) -> IntArray:
    """Creation times of aged accounts, over the market's history until 90 days before the
    span."""
    hi = max(w.history_start + DAY, w.start - 90 * DAY)
    return (w.history_start + (hi - w.history_start) * rng.beta(2.0, 1.2, n)).astype(np.int64)


def _budgets(w: World) -> dict[str, float]:
    """Planted accounts to reach per kind beyond the minimum ring counts."""
    p = w.p
    total = p.abuser_share / (1.0 - p.abuser_share) * w.n_legit
    mix = {
        "farm": p.mix_farm,
        "commission": p.mix_commission,
        "incentive": p.mix_incentive,
        "cycle": p.mix_cycle,
    }
    weight = sum(mix.values())
    return {k: (total * v / weight if weight else 0.0) for k, v in mix.items()}


@dataclass
class _Quota:
    """How many rings of a kind to plant: at least ``minimum``, then more until their
    planted accounts reach ``budget``."""

    minimum: int
    budget: float
    used: int = 0

    def rings(self) -> Iterator[int]:
        """Ring numbers from 0 (the caller :meth:`add`s each ring's accounts)."""
        i = 0
        while i < self.minimum or self.used < self.budget:
            yield i
            i += 1

    def fit(self, i: int, size: int, lo: int, others: int = 0) -> int:
        """A ring beyond the minimum count takes at most what is left of the budget
        (``others``: accounts of the ring besides the ``size`` counted)."""
        if i < self.minimum:
            return size
        return min(size, max(lo, math.ceil(self.budget - self.used - others)))

    def add(self, accounts: int) -> None:
        self.used += accounts


def _mode(w: World, rng: np.random.Generator) -> str:
    p = w.p
    weights = np.array([p.share_one, p.share_pools, p.share_own])
    return str(_MODES[int(rng.choice(3, p=weights / weights.sum()))])


def plan(w: World) -> Plan:
    """Create the planted accounts and put planted creators and sellers in the pools."""
    rng = w.rng("plan")
    style = w.rng("plan-style")
    p = w.p
    out = Plan()
    budget = _budgets(w)
    bound = max(3.0, 0.5 * w.n_legit)  # no ring bigger than half the market
    # engagement farms
    lo, hi = p.farm_size_min, min(p.farm_size_max, max(p.farm_size_min, bound))
    quota = _Quota(p.farm_rings, budget["farm"])
    for i in quota.rings():
        size = quota.fit(i, max(math.ceil(lo), _log_uniform(rng, lo, hi)), math.ceil(lo))
        if rng.random() < p.farm_fresh_share:  # fresh accounts made in batches for the job
            days = rng.uniform(-p.fresh_in_span * w.span_days, p.fresh_days)
            base = w.start - int(days * DAY)
            created = base + rng.integers(0, 3 * DAY, size)
        else:  # aged accounts bought or taken over
            created = _old_created(w, rng, size)
        bots = w.add_accounts(created, BUYER, buy_w=0.02, baseline=False, abuse=True)
        quota.add(size)
        out.farms.append(
            _Farm(
                f"ef-{i + 1:04d}",
                bots,
                participation=float(
                    rng.uniform(p.farm_participation_min, p.farm_participation_max)
                ),
                window=int(rng.uniform(p.farm_window_min, p.farm_window_max)),
                camouflage=float(rng.uniform(p.farm_camouflage_min, p.farm_camouflage_max)),
                mode=_mode(w, style),
                at_start=bool(style.random() < p.farm_at_start_share),
                popular=bool(style.random() < p.farm_popular_share),
            )
        )
        w.count_ring("engagement_farm")
    # commission rings: the first is small and the second mid-sized, so that every world
    # has both; the rest are log-uniform
    lo, hi = p.commission_size_min, min(p.commission_size_max, max(p.commission_size_min, bound))
    quota = _Quota(p.commission_rings, budget["commission"])
    for i in quota.rings():
        if i == 0:
            nb = int(rng.integers(round(lo), 2 * round(lo) + 1))
        elif i == 1:
            nb = int(rng.integers(3 * round(lo), 8 * round(lo) + 1))
        else:
            nb = _log_uniform(rng, lo, hi)
        k_c = 1 + int(style.integers(0, p.commission_creators_max))
        k_s = 1 + int(style.integers(0, p.commission_sellers_max))
        nb = quota.fit(i, min(nb, math.ceil(hi)), round(lo), others=k_c + k_s)
        same = bool(rng.random() < 0.3)
        c_created = (
            _old_created(w, rng, 1)
            if rng.random() < 0.5
            else w.start - rng.integers(60, 400, 1) * DAY
        )
        if k_c > 1:
            c_created = np.concatenate([c_created, _old_created(w, rng, k_c - 1)])
        s_created = c_created[:1] + rng.integers(0, 5 * DAY, 1) if same else _old_created(w, rng, 1)
        if k_s > 1:
            s_created = np.concatenate([s_created, _old_created(w, rng, k_s - 1)])
        creators = w.add_accounts(c_created, CREATOR, view_w=0.2, abuse=True)
        sellers = w.add_accounts(s_created, SELLER, abuse=True)
        w.creators.append((creators, rng.lognormal(np.log(0.4), 0.6, k_c)))
        w.sellers.append((sellers, rng.lognormal(np.log(0.2), 0.5, k_s)))
        fresh = rng.random(nb) < p.commission_fresh_share
        early = -int(p.fresh_in_span * w.span_days * DAY)
        young = rng.integers(early, max(early + 1, int(2 * p.fresh_days * DAY)), nb)
        b_created = np.where(fresh, w.start - young, _old_created(w, rng, nb)).astype(np.int64)
        buyers = w.add_accounts(b_created, BUYER, view_w=0.05, buy_w=0.1, abuse=True)
        quota.add(nb + k_c + k_s)
        out.commission.append(
            _CommissionRing(
                f"cr-{i + 1:04d}",
                int(creators[0]),
                int(sellers[0]),
                buyers,
                same_person=same,
                quiet=bool(rng.random() < p.commission_quiet_share),
                creators=creators,
                sellers=sellers,
                mode=_mode(w, style),
            )
        )
        w.count_ring("commission_ring")
    # incentive (coupon) farms
    lo, hi = p.incentive_size_min, min(p.incentive_size_max, max(p.incentive_size_min, bound))
    quota = _Quota(p.incentive_rings, budget["incentive"])
    for i in quota.rings():
        size = quota.fit(i, max(math.ceil(lo), _log_uniform(rng, lo, hi)), math.ceil(lo))
        t0 = int(w.times(rng, 1, hi=END - 3 * DAY)[0])
        created = t0 - rng.integers(0, 3 * DAY, size)
        accs = w.add_accounts(created, BUYER, baseline=False, abuse=True)
        quota.add(size)
        out.incentive.append(_IncentiveFarm(f"if-{i + 1:04d}", accs, created, mode=_mode(w, style)))
        w.count_ring("incentive_farm")
    # money cycles
    quota = _Quota(p.cycle_rings, budget["cycle"])
    for i in quota.rings():
        k = int(rng.integers(p.cycle_length_min, p.cycle_length_max + 1))
        k = quota.fit(i, k, p.cycle_length_min)
        accs = w.add_accounts(
            _old_created(w, rng, k),
            SELLER | BUYER,
            view_w=rng.lognormal(0.0, 1.0, k),
            buy_w=0.3,
            abuse=True,
        )
        w.sellers.append((accs, rng.lognormal(np.log(0.2), 0.5, k)))
        quota.add(k)
        out.cycles.append(_Cycle(f"mc-{i + 1:04d}", accs))
        w.count_ring("money_cycle")
    return out


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


def _farm_targets(
    w: World,
    rng: np.random.Generator,
    farm: _Farm,
    small: IntArray,
    anyone: IntArray,
    anyone_pop: np.ndarray,
) -> IntArray:
    """The creators a farm boosts: below-median creators not yet given a part, or, for a
    farm that goes for popular creators, any creator with the most popular likeliest."""
    p = w.p
    k = int(rng.integers(p.farm_targets_min, p.farm_targets_max + 1))
    if farm.popular and len(anyone):
        return pick_unique(rng, anyone, k, anyone_pop)
    free = w.unreserved(small)
    pool = free if len(free) else small
    return pick_unique(rng, pool.astype(np.int64), k)


def engagement_farms(w: World, farms: list[_Farm]) -> None:
    """Bots that hit a few target creators' streams together, within seconds to minutes."""
    rng = w.rng("engagement_farms")
    p = w.p
    cidx, pop = w.creator_pool()
    counts = np.bincount(w.stream_creator, minlength=w.n_accounts)[cidx]
    small = (counts >= 3) & (pop <= np.median(pop)) & (cidx < w.n_legit)
    candidates = cidx[small] if small.any() else cidx[counts >= 1]
    streaming = (counts >= 1) & (cidx < w.n_legit)
    anyone, anyone_pop = cidx[streaming], pop[streaming]
    popular = w.stream_weight**p.camouflage_popularity
    created = w.created
    for farm in farms:
        targets = _farm_targets(w, rng, farm, candidates, anyone, anyone_pop)
        w.reserve(targets)
        tstreams = w.streams_of(targets)
        n_b = min(int(rng.integers(p.farm_bursts_min, p.farm_bursts_max + 1)), 3 * len(tstreams))
        bst = np.sort(rng.choice(tstreams, n_b))
        bstart, bend = w.stream_start[bst], w.stream_end[bst]
        bts = bstart + ((bend - bstart) * rng.uniform(0.0, 0.7, n_b)).astype(np.int64)
        if farm.at_start:  # the farm arrives with the stream's first viewers
            bts = bstart + rng.integers(0, 120, n_b)
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
        # camouflage: ordinary-looking sessions on other streams
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
        # identifiers: devices by the ring's sharing mode, proxy IPs, some phones and cards
        size = len(bots)
        _devices(w, rng, bots, farm.mode)
        proxy = rng.uniform(p.proxy_accounts_min, p.proxy_accounts_max)
        _shared(w, rng, bots, IP, int(np.ceil(size / proxy)))
        _own(w, rng, bots, IP, 0.3)
        _own(w, rng, bots, PHONE, 0.6)
        if farm.mode == ONE:  # the bots that pay share one card
            _shared(w, rng, bots[rng.random(size) < 0.15], PAYMENT, 1)
        else:
            _own(w, rng, bots, PAYMENT, 0.15)
        w.add_truth(farm.ring_id, "engagement_farm", bots, "bot")
        w.add_truth(farm.ring_id, "engagement_farm", targets, "creator")


def _devices(w: World, rng: np.random.Generator, bots: IntArray, mode: str) -> None:
    """Devices of a farm's bots (a second one for some) by the ring's sharing mode."""
    size = len(bots)
    lo, hi = w.p.device_accounts_min, w.p.device_accounts_max
    if mode == POOLS:
        _shared(w, rng, bots, DEVICE, int(np.ceil(size / rng.uniform(lo, hi))))
        extra = bots[rng.random(size) < 0.4]
        _shared(w, rng, extra, DEVICE, int(np.ceil(size / rng.uniform(lo, hi))))
    elif mode == ONE:
        _shared(w, rng, bots, DEVICE, int(rng.integers(1, 3)))
    else:
        _own(w, rng, bots, DEVICE, 1.0)
        _own(w, rng, bots, DEVICE, 0.4)


def _pick_streams(
    w: World, rng: np.random.Generator, owners: IntArray, which: IntArray
) -> tuple[IntArray, np.ndarray]:
    """One random stream of the creator ``owners[which[i]]`` for each ``i``, and whether that
    creator has any stream (where not, the stream is meaningless)."""
    parts = [w.streams_of(int(c)) for c in owners]
    counts = np.array([len(x) for x in parts], dtype=np.int64)
    flat = np.concatenate(parts) if parts else np.empty(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    has = counts[which] > 0
    pos = offsets[which] + rng.integers(0, np.maximum(counts[which], 1))
    return flat[np.minimum(pos, max(len(flat) - 1, 0))] if len(flat) else pos, has


def commission_rings(w: World, rings: list[_CommissionRing]) -> None:
    """Sock-puppet buyers ordering sellers' products through creators' affiliate links,
    then refunding or cancelling after the commission accrues."""
    rng = w.rng("commission_rings")
    for ring in rings:
        creators, sellers = ring.creators, ring.sellers
        k_c, k_s = len(creators), len(sellers)
        rate = np.array([rng.uniform(0.2, 0.45)])
        if k_c * k_s > 1:
            rate = np.concatenate([rate, rng.uniform(0.2, 0.45, k_c * k_s - 1)])
        w.add_affiliations(
            np.repeat(creators, k_s), np.tile(sellers, k_c), rate.copy(), recent=True
        )
        buyers = ring.buyers
        per = 1 + rng.poisson(1.5, len(buyers))
        buyer = np.repeat(buyers, per)
        n = len(buyer)
        which_c = np.zeros(n, np.int64) if k_c == 1 else rng.integers(0, k_c, n)
        which_s = np.zeros(n, np.int64) if k_s == 1 else rng.integers(0, k_s, n)
        in_stream = rng.random(n) < 0.8
        stream = np.full(n, -1, dtype=np.int64)
        pick, has = _pick_streams(w, rng, creators, which_c[in_stream])
        in_stream[in_stream] = has
        stream[in_stream] = pick[has]
        ts = w.times(rng, n)
        s = stream[in_stream]
        ts[in_stream] = w.stream_start[s] + (
            rng.random(len(s)) * (w.stream_end[s] - w.stream_start[s])
        ).astype(np.int64)
        seller = sellers[which_s]
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
            creator=creators[which_c],
            stream=stream,
            rate=rate[which_c * k_s + which_s],
            refund_delay=rng.integers(8 * DAY, 20 * DAY, n),
        )
        # the buyers watch the creators a little
        if any(len(w.streams_of(int(c))) for c in creators):
            sacc = np.repeat(buyers, rng.integers(1, 4, len(buyers)))
            owner = np.zeros(len(sacc), np.int64) if k_c == 1 else rng.integers(0, k_c, len(sacc))
            sst, has = _pick_streams(w, rng, creators, owner)
            sacc, sst = sacc[has], sst[has]
            join = w.stream_start[sst] + (
                (w.stream_end[sst] - w.stream_start[sst]) * rng.random(len(sacc))
            ).astype(np.int64)
            _legit._sessions(rng, w, sacc, sst, join, planted=True)
        # shared payment methods and devices among the buyers (and with a creator)
        nb = len(buyers)
        creator = np.array([ring.creator])
        if ring.mode != OWN:
            groups = int(np.ceil(nb / rng.uniform(4, 10) if ring.quiet else nb / rng.uniform(2, 6)))
            pay = _shared(w, rng, buyers, PAYMENT, 1 if ring.mode == ONE else groups)
            if rng.random() < 0.3:
                w.add_identifiers(creator, PAYMENT, pay[:1])
            if rng.random() < 0.7 or ring.mode == ONE:
                n_dev = int(np.ceil(nb / rng.uniform(2, 8)))
                dev = _shared(w, rng, buyers, DEVICE, 1 if ring.mode == ONE else n_dev)
                if rng.random() < 0.3:
                    w.add_identifiers(creator, DEVICE, dev[:1])
        if ring.same_person:
            both = np.array([ring.creator, ring.seller])
            for kind in (DEVICE, PAYMENT, IP):
                w.add_identifiers(both, kind, _legit.new_identifiers(rng, kind, 1).repeat(2))
        w.add_truth(ring.ring_id, "commission_ring", creators, "creator")
        w.add_truth(ring.ring_id, "commission_ring", sellers, "seller")
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
        if farm.mode == OWN:  # one phone each, nothing shared but the promotion
            for kind in (DEVICE, PAYMENT, IP):
                _own(w, rng, accs, kind, 1.0)
        else:
            # a few devices, cards and IPs (pooled farms: at least one per 100 accounts)
            least = 1 if farm.mode == ONE else n // 100
            _shared(w, rng, accs, DEVICE, max(least, int(rng.integers(1, 4))))
            _shared(w, rng, accs, PAYMENT, max(least, int(rng.integers(1, 5))))
            _shared(w, rng, accs, IP, max(least, int(rng.integers(1, 4))))
            if rng.random() < 0.6:
                _shared(w, rng, accs, ADDRESS, max(least, int(rng.integers(1, 3))))
        _own(w, rng, accs, PHONE, 0.7)
        w.add_truth(farm.ring_id, "incentive_farm", accs, "buyer")


def money_cycles(w: World, cycles: list[_Cycle]) -> None:
    """Accounts that buy from each other in a loop, round after round, at similar amounts."""
    rng = w.rng("money_cycles")
    p = w.p
    hop_lo, hop_hi = int(p.cycle_hop_min), int(p.cycle_hop_max)
    for cyc in cycles:
        accs = cyc.accounts
        k = len(accs)
        rounds = int(rng.integers(p.cycle_rounds_min, p.cycle_rounds_max + 1))
        base = rng.uniform(p.cycle_amount_min, p.cycle_amount_max)
        last = max(w.start + HOUR, END - max(4 * DAY, k * hop_hi))
        t_r = w.times(rng, rounds, hi=last)
        step = rng.integers(hop_lo, max(hop_hi, hop_lo + 1), (rounds, k)).cumsum(axis=1)
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


# ---------------------------------------------------------------------- labels


def _members(w: World, keep: str) -> tuple[IntArray, IntArray]:
    """Accounts of the truth's rings (``keep``: ``abuse`` or ``lookalike``) and the number
    of the ring each row belongs to."""
    accs, ring = [], []
    numbers: dict[str, int] = {}
    for ring_id, _kind, members, _role in w.truth:
        if ring_id.startswith("hn-") != (keep == "lookalike"):
            continue
        accs.append(members)
        ring.append(np.full(len(members), numbers.setdefault(ring_id, len(numbers))))
    if not accs:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(accs).astype(np.int64), np.concatenate(ring).astype(np.int64)


def _mistakes(share: float, correct: int) -> int:
    """Wrong labels beside ``correct`` right ones so that ``share`` of all are wrong (at
    least one when ``share`` > 0)."""
    if share <= 0:
        return 0
    return max(1, round(correct * share / (1.0 - share)))


def labels(w: World) -> None:
    """Past investigator decisions, a noisy sample and never a copy of the truth.

    A share of all planted abusers is labelled ``abusive``, drawn over every ring at once and
    never every member of a ring; a share of ordinary accounts is labelled ``legit``. Both
    hold mistakes: ordinary accounts labelled ``abusive`` (some on hard negatives, which look
    suspicious) and planted abusers labelled ``legit``. ``labels="none"`` leaves no decision.
    """
    p = w.p
    if p.labels == "none":
        return
    rng = w.rng("labels")
    is_abuser = w.abuse
    abusers = np.flatnonzero(is_abuser).astype(np.int64)
    n_bad = min(len(abusers), max(1, round(p.label_abuser_share * len(abusers))))
    bad = np.sort(rng.choice(abusers, n_bad, replace=False)) if n_bad else abusers[:0]
    # never a whole ring: where every planted member is labelled, unlabel one
    members, ring = _members(w, "abuse")
    planted = is_abuser[members]
    members, ring = members[planted], ring[planted]
    labelled = np.isin(members, bad)
    size = np.bincount(ring)
    hit = np.bincount(ring, weights=labelled)
    full = np.flatnonzero((hit == size) & (size > 0))
    if len(full):
        order = rng.permutation(len(members))
        first = np.unique(ring[order], return_index=True)
        drop = members[order[first[1][np.isin(first[0], full)]]]
        bad = np.setdiff1d(bad, drop)
    ordinary = np.flatnonzero(~is_abuser).astype(np.int64)
    n_good = min(len(ordinary), max(5, round(p.label_legit_share * w.n_legit)))
    good = rng.choice(ordinary, n_good, replace=False)
    # some lookalikes (households, shared IPs, bursts) were reviewed and cleared
    looks = np.unique(_members(w, "lookalike")[0])
    n_cleared = min(len(looks), max(2, round(0.25 * n_good)))
    good = np.unique(np.concatenate([good, rng.choice(looks, n_cleared, replace=False)]))
    # mistakes: ordinary accounts labelled abusive, abusers labelled legit
    n_fp = _mistakes(p.label_abusive_errors, len(bad))
    spare = np.setdiff1d(ordinary, good)
    on_looks = np.setdiff1d(looks, good)
    k_look = min(len(on_looks), round(n_fp * p.label_lookalike_share))
    fp_look = rng.choice(on_looks, k_look, replace=False)
    rest = np.setdiff1d(spare, fp_look)
    fp = np.concatenate([fp_look, rng.choice(rest, min(len(rest), n_fp - k_look), replace=False)])
    n_fn = _mistakes(p.label_legit_errors, len(good))
    unlabelled = np.setdiff1d(abusers, bad)
    fn = rng.choice(unlabelled, min(len(unlabelled), n_fn), replace=False)
    abusive = np.sort(np.concatenate([bad, fp])).astype(np.int64)
    legit = np.sort(np.concatenate([good, fn])).astype(np.int64)
    w.add_labels(abusive, ABUSIVE, END - rng.integers(DAY, 25 * DAY, len(abusive)))
    w.add_labels(legit, LEGIT, END - rng.integers(DAY, 60 * DAY, len(legit)))
