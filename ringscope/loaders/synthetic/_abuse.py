"""Planted abuse: engagement farms, commission rings, incentive farms and money cycles.

Planted accounts are numbered after the ordinary ones but their ids are drawn like every
other id, and their rows are shuffled in among the ordinary rows when written: nothing but
their behaviour tells them apart. Ring ids appear only in ``truth.csv``.

How many rings of each kind, how big, how they share identifiers, when they act and how they
hide all come from the world's :class:`~._params.WorldParams`. Every kind is generated for
all its rings at once (arrays with a ring number per account, order or event), so that a
world with tens of thousands of small rings costs no more than one with a few big ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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
    BoolArray,
    IntArray,
    World,
    pick_weighted,
    ragged,
    segments,
)

#: How a ring's accounts share devices and cards (drawn per ring from the ``share_*``
#: weights): all on one or two, many small pools, or each its own.
ONE, POOLS, OWN = 0, 1, 2

Draws = dict[str, np.ndarray]


@dataclass
class Rings:
    """Rings of one kind: ring ``r`` holds ``accounts[offsets[r]:offsets[r + 1]]`` and the
    per-ring draws ``draws[name][r]``."""

    prefix: str
    accounts: IntArray
    offsets: IntArray
    draws: Draws

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    @property
    def sizes(self) -> IntArray:
        return np.diff(self.offsets)

    @property
    def ring_of(self) -> IntArray:
        """The ring of each account."""
        return np.repeat(np.arange(self.n, dtype=np.int64), self.sizes)

    def ids(self) -> list[str]:
        return [f"{self.prefix}-{i + 1:04d}" for i in range(self.n)]

    def members(self, r: int) -> IntArray:
        return self.accounts[self.offsets[r] : self.offsets[r + 1]]


@dataclass
class Plan:
    """The planted rings, decided before the marketplace's streams exist. A commission
    ring's ``creators`` and ``sellers`` are rings numbered like its ``buyers``."""

    farms: Rings
    buyers: Rings
    creators: Rings
    sellers: Rings
    incentive: Rings
    cycles: Rings


# ---------------------------------------------------------------------- plan


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> IntArray:
    return np.round(np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)), n))).astype(np.int64)


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


def _modes(w: World, rng: np.random.Generator, n: int) -> IntArray:
    p = w.p
    weights = np.array([p.share_one, p.share_pools, p.share_own])
    return rng.choice(3, size=n, p=weights / weights.sum()).astype(np.int64)


def _draw_rings(minimum: int, budget: float, draw: Callable[[int, int], Draws], lo: int) -> Draws:
    """Per-ring draws of one kind: ``minimum`` rings, then more until their accounts
    (``size`` plus ``others`` per ring) reach ``budget``, the last cut to what is left (at
    least ``lo``). ``draw(first, n)`` draws rings ``first .. first + n - 1``."""
    parts = [draw(0, minimum)]
    total = float(parts[0]["size"].sum() + parts[0]["others"].sum())
    count = minimum
    while total < budget:
        mean = max(1.0, total / count) if count else float(lo)
        batch = draw(count, int(min(100_000, math.ceil((budget - total) / mean) + 8)))
        cum = total + np.cumsum(batch["size"] + batch["others"])
        stop = int(np.searchsorted(cum, budget))
        if stop < len(cum):
            batch = {k: v[: stop + 1].copy() for k, v in batch.items()}
            over = math.floor(cum[stop] - budget)
            batch["size"][-1] = max(lo, int(batch["size"][-1]) - over)
            parts.append(batch)
            break
        parts.append(batch)
        total, count = float(cum[-1]), count + len(cum)
    return {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}


def _rings(w: World, kind: str, prefix: str, accounts: IntArray, draws: Draws) -> Rings:
    _, offsets = segments(draws["size"])
    w.rings[kind] = w.rings.get(kind, 0) + len(offsets) - 1
    return Rings(prefix, accounts, offsets, draws)


def plan(w: World) -> Plan:
    """Create the planted accounts and put planted creators and sellers in the pools."""
    rng = w.rng("plan")
    p = w.p
    budget = _budgets(w)
    bound = max(3.0, 0.5 * w.n_legit)  # no ring bigger than half the market

    # engagement farms: fresh accounts made in a batch for the job, or aged ones bought
    f_lo, f_hi = p.farm_size_min, min(p.farm_size_max, max(p.farm_size_min, bound))

    def farm(first: int, n: int) -> Draws:
        return {
            "size": np.maximum(math.ceil(f_lo), _log_uniform(rng, f_lo, f_hi, n)),
            "others": np.zeros(n, np.int64),
            "fresh": rng.random(n) < p.farm_fresh_share,
            "batch": w.start
            - (rng.uniform(-p.fresh_in_span * w.span_days, p.fresh_days, n) * DAY).astype(np.int64),
            "participation": rng.uniform(p.farm_participation_min, p.farm_participation_max, n),
            "window": rng.uniform(p.farm_window_min, p.farm_window_max, n).astype(np.int64),
            "camouflage": rng.uniform(p.farm_camouflage_min, p.farm_camouflage_max, n),
            "mode": _modes(w, rng, n),
            "at_start": rng.random(n) < p.farm_at_start_share,
            "popular": rng.random(n) < p.farm_popular_share,
        }

    d = _draw_rings(p.farm_rings, budget["farm"], farm, math.ceil(f_lo))
    ring_of, _ = segments(d["size"])
    created = np.where(
        d["fresh"][ring_of],
        d["batch"][ring_of] + rng.integers(0, 3 * DAY, len(ring_of)),
        _old_created(w, rng, len(ring_of)),
    )
    bots = w.add_accounts(created, BUYER, buy_w=0.02, baseline=False, abuse=True)
    farms = _rings(w, "engagement_farm", "ef", bots, d)

    # commission rings: the first is small and the second mid-sized, so that every world
    # has both; the rest are log-uniform. Each orders through 1+ creators for 1+ sellers.
    c_lo = p.commission_size_min
    c_hi = min(p.commission_size_max, max(c_lo, bound))
    small = round(c_lo)

    def commission(first: int, n: int) -> Draws:
        number = first + np.arange(n)
        size = np.select(
            [number == 0, number == 1],
            [rng.integers(small, 2 * small + 1, n), rng.integers(3 * small, 8 * small + 1, n)],
            _log_uniform(rng, c_lo, c_hi, n),
        )
        k_c = 1 + rng.integers(0, p.commission_creators_max, n)
        k_s = 1 + rng.integers(0, p.commission_sellers_max, n)
        return {
            "size": np.minimum(size, math.ceil(c_hi)),
            "others": k_c + k_s,
            "creators": k_c,
            "sellers": k_s,
            "same_person": rng.random(n) < 0.3,
            "aged_creator": rng.random(n) < 0.5,
            "quiet": rng.random(n) < p.commission_quiet_share,
            "mode": _modes(w, rng, n),
        }

    d = _draw_rings(p.commission_rings, budget["commission"], commission, small)
    c_of, c_off = segments(d["creators"])
    first_c = np.arange(len(c_of)) == c_off[c_of]
    young = w.start - rng.integers(60, 400, len(c_of)) * DAY
    aged = _old_created(w, rng, len(c_of))
    c_created = np.where(first_c & ~d["aged_creator"][c_of], young, aged)
    s_of, s_off = segments(d["sellers"])
    first_s = np.arange(len(s_of)) == s_off[s_of]
    near = c_created[c_off[s_of]] + rng.integers(0, 5 * DAY, len(s_of))
    s_created = np.where(first_s & d["same_person"][s_of], near, _old_created(w, rng, len(s_of)))
    creators = w.add_accounts(c_created, CREATOR, view_w=0.2, abuse=True)
    sellers = w.add_accounts(s_created, SELLER, abuse=True)
    w.creators.append((creators, rng.lognormal(np.log(0.4), 0.6, len(creators))))
    w.sellers.append((sellers, rng.lognormal(np.log(0.2), 0.5, len(sellers))))
    b_of, _ = segments(d["size"])
    fresh = rng.random(len(b_of)) < p.commission_fresh_share
    early = -int(p.fresh_in_span * w.span_days * DAY)
    recent = w.start - rng.integers(early, max(early + 1, int(2 * p.fresh_days * DAY)), len(b_of))
    b_created = np.where(fresh, recent, _old_created(w, rng, len(b_of)))
    buyers = w.add_accounts(b_created, BUYER, view_w=0.05, buy_w=0.1, abuse=True)
    ring_buyers = _rings(w, "commission_ring", "cr", buyers, d)
    ring_creators = Rings("cr", creators, c_off, d)
    ring_sellers = Rings("cr", sellers, s_off, d)

    # incentive (coupon) farms: accounts made within days of their first order
    i_lo, i_hi = p.incentive_size_min, min(p.incentive_size_max, max(p.incentive_size_min, bound))

    def incentive(first: int, n: int) -> Draws:
        return {
            "size": np.maximum(math.ceil(i_lo), _log_uniform(rng, i_lo, i_hi, n)),
            "others": np.zeros(n, np.int64),
            "t0": w.times(rng, n, hi=END - 3 * DAY),
            "mode": _modes(w, rng, n),
        }

    d = _draw_rings(p.incentive_rings, budget["incentive"], incentive, math.ceil(i_lo))
    ring_of, _ = segments(d["size"])
    created = d["t0"][ring_of] - rng.integers(0, 3 * DAY, len(ring_of))
    accs = w.add_accounts(created, BUYER, baseline=False, abuse=True)
    incentive_farms = _rings(w, "incentive_farm", "if", accs, d)

    # money cycles: aged accounts that buy and sell
    def cycle(first: int, n: int) -> Draws:
        return {
            "size": rng.integers(p.cycle_length_min, p.cycle_length_max + 1, n),
            "others": np.zeros(n, np.int64),
        }

    d = _draw_rings(p.cycle_rings, budget["cycle"], cycle, p.cycle_length_min)
    k = int(d["size"].sum())
    accs = w.add_accounts(
        _old_created(w, rng, k),
        SELLER | BUYER,
        view_w=rng.lognormal(0.0, 1.0, k),
        buy_w=0.3,
        abuse=True,
    )
    w.sellers.append((accs, rng.lognormal(np.log(0.2), 0.5, k)))
    cycles = _rings(w, "money_cycle", "mc", accs, d)
    return Plan(farms, ring_buyers, ring_creators, ring_sellers, incentive_farms, cycles)


# ---------------------------------------------------------------------- identifiers


def _pooled(
    w: World,
    rng: np.random.Generator,
    accounts: IntArray,
    ring_of: IntArray,
    pools: IntArray,
    kind: int,
) -> tuple[IntArray, IntArray]:
    """Give each account a value from its ring's pool of ``pools[ring]`` fresh values (rings
    whose pool is 0 have no account here). Return the values and each ring's offset in them."""
    pools = np.asarray(pools, dtype=np.int64)
    values = _legit.new_identifiers(rng, kind, int(pools.sum()))
    offsets = np.concatenate([[0], np.cumsum(pools)])
    pick = offsets[ring_of] + rng.integers(0, np.maximum(pools[ring_of], 1))
    w.add_identifiers(accounts, kind, values[pick])
    return values, offsets


def _own(w: World, rng: np.random.Generator, accounts: IntArray, kind: int, p: float) -> None:
    acc = accounts[rng.random(len(accounts)) < p]
    w.add_identifiers(acc, kind, _legit.new_identifiers(rng, kind, len(acc)))


def _per(rng: np.random.Generator, sizes: IntArray, lo: float, hi: float) -> IntArray:
    """Pool sizes: one value per ``uniform(lo, hi)`` accounts of each ring."""
    return np.ceil(sizes / rng.uniform(lo, max(hi, lo), len(sizes))).astype(np.int64)


# ---------------------------------------------------------------------- engagement farms


def _farm_targets(w: World, rng: np.random.Generator, farms: Rings) -> tuple[IntArray, IntArray]:
    """The creators each farm boosts, as (farm, creator) pairs sorted by farm. Most farms
    take below-median creators with no part yet, in turn, then any below-median creator;
    farms that go for popular creators draw any creator, the most popular likeliest."""
    p = w.p
    cidx, pop = w.creator_pool()
    counts = np.bincount(w.stream_creator, minlength=w.n_accounts)[cidx]
    small = (counts >= 3) & (pop <= np.median(pop)) & (cidx < w.n_legit)
    candidates = cidx[small] if small.any() else cidx[counts >= 1]
    streaming = (counts >= 1) & (cidx < w.n_legit)
    anyone, weight = (cidx[streaming], pop[streaming]) if streaming.any() else (candidates, None)
    k = rng.integers(p.farm_targets_min, p.farm_targets_max + 1, farms.n)
    popular = farms.draws["popular"]
    # below-median farms
    k_small = np.where(popular, 0, k)
    farm_small = np.repeat(np.arange(farms.n), k_small)
    free = rng.permutation(w.unreserved(candidates))
    pos = np.arange(len(farm_small))
    target_small = np.empty(len(farm_small), np.int64)
    fits = pos < len(free)
    target_small[fits] = free[pos[fits]]
    target_small[~fits] = candidates[rng.integers(0, len(candidates), int((~fits).sum()))]
    # popular farms
    k_pop = np.where(popular, k, 0)
    farm_pop = np.repeat(np.arange(farms.n), k_pop)
    if weight is None:
        target_pop = anyone[rng.integers(0, len(anyone), len(farm_pop))]
    else:
        cdf = np.cumsum(weight)
        at = np.searchsorted(cdf, rng.random(len(farm_pop)) * cdf[-1], side="right")
        target_pop = anyone[np.minimum(at, len(anyone) - 1)]
    farm = np.concatenate([farm_small, farm_pop])
    target = np.concatenate([target_small, target_pop])
    key = np.unique(farm * (w.n_accounts + 1) + target)  # distinct targets of each farm
    return key // (w.n_accounts + 1), key % (w.n_accounts + 1)


def engagement_farms(w: World, farms: Rings) -> None:
    """Bots that hit a few target creators' streams together, within seconds to minutes,
    each bot in only some of the bursts, with camouflage sessions elsewhere."""
    if not farms.n:
        return
    rng = w.rng("engagement_farms")
    p = w.p
    d = farms.draws
    bots, sizes, bot_farm = farms.accounts, farms.sizes, farms.ring_of
    t_farm, targets = _farm_targets(w, rng, farms)
    w.reserve(targets)
    t_count = np.bincount(t_farm, minlength=farms.n)
    t_off = np.concatenate([[0], np.cumsum(t_count)])
    # bursts: streams of the farm's targets, hit at one moment (mid-stream or at the start)
    order, s_off = w.stream_index()
    n_streams = s_off[targets + 1] - s_off[targets]
    pool = order[ragged(s_off[targets], n_streams)]
    per_farm = np.bincount(t_farm, weights=n_streams, minlength=farms.n).astype(np.int64)
    pool_off = np.concatenate([[0], np.cumsum(per_farm)])
    n_b = np.minimum(rng.integers(p.farm_bursts_min, p.farm_bursts_max + 1, farms.n), 3 * per_farm)
    burst_farm, burst_off = segments(n_b)
    bst = pool[pool_off[burst_farm] + rng.integers(0, np.maximum(per_farm[burst_farm], 1))]
    bstart, bend = w.stream_start[bst], w.stream_end[bst]
    bts = bstart + ((bend - bstart) * rng.uniform(0.0, 0.7, len(bst))).astype(np.int64)
    at_start = d["at_start"][burst_farm]
    bts[at_start] = bstart[at_start] + rng.integers(0, 120, int(at_start.sum()))
    # who joins which burst
    joins = n_b[bot_farm]
    pair_bot = np.repeat(np.arange(len(bots)), joins)
    pair_burst = ragged(burst_off[bot_farm], joins)
    p_bot = np.clip(rng.normal(d["participation"][bot_farm], 0.15), 0.15, 1.0)
    keep = rng.random(len(pair_bot)) < p_bot[pair_bot]
    pair_bot, pair_burst = pair_bot[keep], pair_burst[keep]
    del keep
    acc, st = bots[pair_bot], bst[pair_burst]
    window = d["window"][bot_farm[pair_bot]]
    end = w.stream_end[st] - 1
    view = np.minimum(bts[pair_burst] + rng.integers(0, window + 1), end)
    accs, sts, kinds, tss = [acc], [st], [np.full(len(acc), VIEW)], [view]
    amounts = [np.full(len(acc), np.nan)]
    for kind, prob in ((LIKE, 0.75), (COMMENT, 0.35), (SHARE, 0.1), (GIFT, 0.12)):
        sel = rng.random(len(acc)) < prob
        accs.append(acc[sel])
        sts.append(st[sel])
        kinds.append(np.full(int(sel.sum()), kind))
        tss.append(np.minimum(view[sel] + rng.integers(1, window[sel] + 2), end[sel]))
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
    del accs, sts, kinds, tss, amounts, acc, st, view, end, window
    # camouflage: ordinary-looking sessions on other streams
    n_camo = rng.poisson(d["camouflage"][bot_farm])
    cacc = np.repeat(bots, n_camo)
    cst = pick_weighted(rng, w.stream_weight**p.camouflage_popularity, len(cacc))
    cjoin = w.stream_start[cst] + (
        (w.stream_end[cst] - w.stream_start[cst]) * rng.beta(1.3, 2.0, len(cacc))
    ).astype(np.int64)
    _legit._sessions(rng, w, cacc, cst, cjoin, planted=True)
    # follows of the targets, before the first burst
    fol = rng.random(len(bots)) < 0.6
    f_farm = bot_farm[fol]
    tgt = targets[t_off[f_farm] + rng.integers(0, t_count[f_farm])]
    first = np.minimum.reduceat(bts, burst_off[:-1])[f_farm]
    created = w.created[bots[fol]]
    fts = np.maximum(created + 60, first - rng.integers(0, 2 * DAY, int(fol.sum())))
    w.add_follows(bots[fol], tgt, np.minimum(fts, END - 60))
    # identifiers: devices and cards by the farm's sharing mode, proxy IPs, some phones
    mode = d["mode"][bot_farm]
    pools = np.where(
        d["mode"] == POOLS,
        _per(rng, sizes, p.device_accounts_min, p.device_accounts_max),
        rng.integers(1, 3, farms.n),
    )
    shared = mode != OWN
    _pooled(w, rng, bots[shared], bot_farm[shared], np.where(d["mode"] == OWN, 0, pools), DEVICE)
    second = (mode == POOLS) & (rng.random(len(bots)) < 0.4)
    pools = np.where(
        d["mode"] == POOLS, _per(rng, sizes, p.device_accounts_min, p.device_accounts_max), 0
    )
    _pooled(w, rng, bots[second], bot_farm[second], pools, DEVICE)
    _own(w, rng, bots[~shared], DEVICE, 1.0)
    _own(w, rng, bots[~shared], DEVICE, 0.4)
    proxies = _per(rng, sizes, p.proxy_accounts_min, p.proxy_accounts_max)
    _pooled(w, rng, bots, bot_farm, proxies, IP)
    _own(w, rng, bots, IP, 0.3)
    _own(w, rng, bots, PHONE, 0.6)
    carded = (mode == ONE) & (rng.random(len(bots)) < 0.15)  # the paying bots share a card
    _pooled(w, rng, bots[carded], bot_farm[carded], (d["mode"] == ONE).astype(np.int64), PAYMENT)
    _own(w, rng, bots[mode != ONE], PAYMENT, 0.15)
    for r, ring_id in enumerate(farms.ids()):
        w.add_truth(ring_id, "engagement_farm", farms.members(r), "bot")
        w.add_truth(ring_id, "engagement_farm", targets[t_off[r] : t_off[r + 1]], "creator")


# ---------------------------------------------------------------------- commission rings


def _stream_of(
    w: World, rng: np.random.Generator, creators: IntArray
) -> tuple[IntArray, BoolArray]:
    """A random stream of each given creator, and whether the creator has any (where not,
    the stream is meaningless)."""
    order, offsets = w.stream_index()
    count = offsets[creators + 1] - offsets[creators]
    pos = offsets[creators] + rng.integers(0, np.maximum(count, 1))
    return order[np.minimum(pos, len(order) - 1)], count > 0


def commission_rings(w: World, plan: Plan) -> None:
    """Sock-puppet buyers ordering sellers' products through creators' affiliate links,
    then refunding or cancelling after the commission accrues."""
    rings = plan.buyers
    if not rings.n:
        return
    rng = w.rng("commission_rings")
    d = rings.draws
    creators, c_off = plan.creators.accounts, plan.creators.offsets
    sellers, s_off = plan.sellers.accounts, plan.sellers.offsets
    k_c, k_s = d["creators"], d["sellers"]
    # affiliations of every creator of a ring with every seller of it, at a high rate
    pair_ring, pair_off = segments(k_c * k_s)
    local = np.arange(len(pair_ring)) - pair_off[pair_ring]
    pair_c = creators[c_off[pair_ring] + local // k_s[pair_ring]]
    pair_s = sellers[s_off[pair_ring] + local % k_s[pair_ring]]
    rate = rng.uniform(0.2, 0.45, len(pair_ring))
    w.add_affiliations(pair_c, pair_s, rate, recent=True)
    # orders: each buyer a few, through one of the ring's creators for one of its sellers
    buyers, b_ring = rings.accounts, rings.ring_of
    per = 1 + rng.poisson(1.5, len(buyers))
    buyer, ring = np.repeat(buyers, per), np.repeat(b_ring, per)
    n = len(buyer)
    which_c = rng.integers(0, k_c[ring])
    which_s = rng.integers(0, k_s[ring])
    creator = creators[c_off[ring] + which_c]
    seller = sellers[s_off[ring] + which_s]
    stream, has = _stream_of(w, rng, creator)
    in_stream = (rng.random(n) < 0.8) & has
    stream = np.where(in_stream, stream, -1)
    ts = w.times(rng, n)
    s = stream[in_stream]
    ts[in_stream] = w.stream_start[s] + (
        rng.random(len(s)) * (w.stream_end[s] - w.stream_start[s])
    ).astype(np.int64)
    product = w.products_of(rng, seller)
    amount = w.product_price[product] * (1 + (rng.random(n) < 0.25))
    quiet = d["quiet"]
    refund = np.where(quiet, rng.uniform(0.03, 0.1, rings.n), rng.uniform(0.35, 0.75, rings.n))
    cancel = np.where(quiet, 0.05, rng.uniform(0.05, 0.25, rings.n))
    u = rng.random(n)
    status = np.full(n, COMPLETED, dtype=np.int64)
    status[u < (refund + cancel)[ring]] = CANCELLED
    status[u < refund[ring]] = REFUNDED
    w.add_orders(
        buyer,
        seller,
        product,
        amount,
        status,
        ts,
        creator=creator,
        stream=stream,
        rate=rate[pair_off[ring] + which_c * k_s[ring] + which_s],
        refund_delay=rng.integers(8 * DAY, 20 * DAY, n),
    )
    # the buyers watch the ring's creators a little
    visits = rng.integers(1, 4, len(buyers))
    sacc, sring = np.repeat(buyers, visits), np.repeat(b_ring, visits)
    owner = creators[c_off[sring] + rng.integers(0, k_c[sring])]
    sst, has = _stream_of(w, rng, owner)
    sacc, sst = sacc[has], sst[has]
    join = w.stream_start[sst] + (
        (w.stream_end[sst] - w.stream_start[sst]) * rng.random(len(sacc))
    ).astype(np.int64)
    _legit._sessions(rng, w, sacc, sst, join, planted=True)
    # shared cards and devices among the buyers (by the ring's sharing mode), some with
    # the ring's first creator; creator and seller run by one person share everything
    mode = d["mode"]
    nb = rings.sizes
    first_creator = creators[c_off[:-1]]
    groups = np.ceil(nb / np.where(quiet, rng.uniform(4, 10, rings.n), rng.uniform(2, 6, rings.n)))
    groups = np.where(mode == ONE, 1, np.where(mode == OWN, 0, groups)).astype(np.int64)
    share = groups[b_ring] > 0
    pay, pay_off = _pooled(w, rng, buyers[share], b_ring[share], groups, PAYMENT)
    to_creator = (groups > 0) & (rng.random(rings.n) < 0.3)
    w.add_identifiers(first_creator[to_creator], PAYMENT, pay[pay_off[:-1][to_creator]])
    devices = np.where(mode == ONE, 1, _per(rng, nb, 2, 8))
    devices[(mode == OWN) | ((mode == POOLS) & (rng.random(rings.n) >= 0.7))] = 0
    share = devices[b_ring] > 0
    dev, dev_off = _pooled(w, rng, buyers[share], b_ring[share], devices, DEVICE)
    to_creator = (devices > 0) & (rng.random(rings.n) < 0.3)
    w.add_identifiers(first_creator[to_creator], DEVICE, dev[dev_off[:-1][to_creator]])
    same = np.flatnonzero(d["same_person"])
    pair = np.concatenate([creators[c_off[same]], sellers[s_off[same]]])
    for kind in (DEVICE, PAYMENT, IP):
        w.add_identifiers(pair, kind, np.tile(_legit.new_identifiers(rng, kind, len(same)), 2))
    for r, ring_id in enumerate(rings.ids()):
        w.add_truth(ring_id, "commission_ring", plan.creators.members(r), "creator")
        w.add_truth(ring_id, "commission_ring", plan.sellers.members(r), "seller")
        w.add_truth(ring_id, "commission_ring", rings.members(r), "buyer")


# ---------------------------------------------------------------------- incentive farms


def incentive_farms(w: World, farms: Rings) -> None:
    """New accounts on a few devices and cards, each placing one small first order."""
    if not farms.n:
        return
    rng = w.rng("incentive_farms")
    sidx, spop = w.seller_pool()
    legit = sidx < w.n_legit
    sidx, spop = sidx[legit], spop[legit]
    accs, ring = farms.accounts, farms.ring_of
    n = len(accs)
    # the promotion: one or two sellers per farm, popular ones likelier
    cdf = np.cumsum(spop)
    at = np.searchsorted(cdf, rng.random((farms.n, 2)) * cdf[-1], side="right")
    promo = sidx[np.minimum(at, len(sidx) - 1)]
    n_promo = rng.integers(1, 3, farms.n)
    seller = promo[ring, rng.integers(0, n_promo[ring])]
    product = w.products_of(rng, seller)
    created = w.created[accs]
    ts = np.minimum(created + rng.integers(HOUR, 2 * DAY, n), END - 60)
    status = np.where(rng.random(n) < 0.92, COMPLETED, CANCELLED)
    w.add_orders(accs, seller, product, rng.uniform(3.0, 15.0, n), status, ts)
    # identifiers by the farm's sharing mode: a few devices, cards and IPs for the whole
    # farm (at least one per 100 accounts), one of each, or each account its own
    mode = farms.draws["mode"]
    least = np.where(mode == ONE, 1, farms.sizes // 100)
    own = mode[ring] == OWN
    for kind, most in ((DEVICE, 4), (PAYMENT, 5), (IP, 4), (ADDRESS, 3)):
        pools = np.where(mode == ONE, 1, np.maximum(least, rng.integers(1, most, farms.n)))
        if kind == ADDRESS:
            pools[rng.random(farms.n) >= 0.6] = 0
        pools[mode == OWN] = 0
        share = pools[ring] > 0
        _pooled(w, rng, accs[share], ring[share], pools, kind)
        if kind != ADDRESS:
            _own(w, rng, accs[own], kind, 1.0)
    _own(w, rng, accs, PHONE, 0.7)
    for r, ring_id in enumerate(farms.ids()):
        w.add_truth(ring_id, "incentive_farm", farms.members(r), "buyer")


# ---------------------------------------------------------------------- money cycles


def money_cycles(w: World, cycles: Rings) -> None:
    """Accounts that buy from each other in a loop, round after round, at similar amounts,
    each hop some time after the previous one."""
    if not cycles.n:
        return
    rng = w.rng("money_cycles")
    p = w.p
    k = cycles.sizes
    rounds = rng.integers(p.cycle_rounds_min, p.cycle_rounds_max + 1, cycles.n)
    base = rng.uniform(p.cycle_amount_min, p.cycle_amount_max, cycles.n)
    hop_lo, hop_hi = int(p.cycle_hop_min), max(int(p.cycle_hop_max), int(p.cycle_hop_min) + 1)
    # each round starts at a time of the market's rhythm that leaves room for its hops
    round_ring = np.repeat(np.arange(cycles.n), rounds)
    last = np.maximum(w.start + HOUR, END - np.maximum(4 * DAY, k * hop_hi))
    t_r = w.times(rng, len(round_ring), hi=last[round_ring])
    hops = k[round_ring]
    hop_round, hop_off = segments(hops)
    step = rng.integers(hop_lo, hop_hi, len(hop_round))
    total = np.cumsum(step)
    elapsed = total - np.repeat(total[hop_off[:-1]] - step[hop_off[:-1]], hops)
    ts = np.minimum(t_r[hop_round] + elapsed, END - 60)
    ring = round_ring[hop_round]
    pos = np.arange(len(hop_round)) - hop_off[hop_round]
    first = cycles.offsets[ring]
    seller = cycles.accounts[first + pos]
    buyer = cycles.accounts[first + (pos + 1) % k[ring]]
    product = w.products_of(rng, seller)
    amount = base[ring] * rng.uniform(0.95, 1.05, len(seller))
    status = np.full(len(seller), COMPLETED, dtype=np.int64)
    w.add_orders(buyer, seller, product, amount, status, ts)
    shared = rng.random(cycles.n) < 0.3  # some cycles run from one device
    member = shared[cycles.ring_of]
    _pooled(
        w, rng, cycles.accounts[member], cycles.ring_of[member], shared.astype(np.int64), DEVICE
    )
    for r, ring_id in enumerate(cycles.ids()):
        w.add_truth(ring_id, "money_cycle", cycles.members(r), "member")


def activity(w: World, p: Plan) -> None:
    """Everything the planted rings do."""
    engagement_farms(w, p.farms)
    commission_rings(w, p)
    incentive_farms(w, p.incentive)
    money_cycles(w, p.cycles)


def keep_truth_apart(w: World) -> None:
    """Leave out of the hard negatives every account that is in a planted ring (a farm's
    target creator behind a carrier IP): the truth names each account abusive or not."""
    rings = [t for t in w.truth if not t[0].startswith("hn-")]
    if not rings:
        return
    planted = np.zeros(w.n_accounts, dtype=bool)
    planted[np.concatenate([t[2] for t in rings])] = True
    kept = []
    for ring_id, kind, accs, role in w.truth:
        if ring_id.startswith("hn-"):
            accs = accs[~planted[accs]]
            if not len(accs):
                continue
        kept.append((ring_id, kind, accs, role))
    w.truth = kept


# ---------------------------------------------------------------------- labels


def _members(w: World, lookalike: bool) -> tuple[IntArray, IntArray]:
    """Accounts of the truth's planted rings (or of its hard negatives) and the number of
    the ring each belongs to."""
    accs, ring = [], []
    numbers: dict[str, int] = {}
    for ring_id, _kind, members, _role in w.truth:
        if ring_id.startswith("hn-") != lookalike:
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


def _choose(rng: np.random.Generator, pool: IntArray, n: int) -> IntArray:
    return rng.choice(pool, min(n, len(pool)), replace=False).astype(np.int64)


def labels(w: World) -> None:
    """Past investigator decisions: a noisy sample, never a copy of the truth.

    A share of all planted abusers is labelled ``abusive``, drawn over every ring at once and
    never every member of a ring; a share of ordinary accounts is labelled ``legit`` (some of
    them lookalikes that were reviewed and cleared). Both hold mistakes: ordinary accounts
    labelled ``abusive`` (some on hard negatives, which look suspicious) and planted abusers
    labelled ``legit``. ``labels="none"`` leaves no decision.
    """
    p = w.p
    if p.labels == "none":
        return
    rng = w.rng("labels")
    is_abuser = w.abuse
    abusers = np.flatnonzero(is_abuser).astype(np.int64)
    bad = np.sort(_choose(rng, abusers, max(1, round(p.label_abuser_share * len(abusers)))))
    # never a whole ring: where every planted member is labelled, unlabel one of them
    members, ring = _members(w, lookalike=False)
    planted = is_abuser[members]
    members, ring = members[planted], ring[planted]
    size = np.bincount(ring)
    hit = np.bincount(ring, weights=np.isin(members, bad), minlength=len(size))
    full = (hit == size) & (size > 0)
    if full.any():
        shuffled = rng.permutation(len(members))
        rings_seen, first = np.unique(ring[shuffled], return_index=True)
        drop = members[shuffled[first[full[rings_seen]]]]
        bad = np.setdiff1d(bad, drop)
    ordinary = np.flatnonzero(~is_abuser).astype(np.int64)
    good = _choose(rng, ordinary, max(5, round(p.label_legit_share * w.n_legit)))
    looks = np.unique(_members(w, lookalike=True)[0])
    cleared = _choose(rng, looks, max(2, round(0.25 * len(good))))
    good = np.union1d(good, cleared)
    # mistakes: ordinary accounts labelled abusive, abusers labelled legit
    n_fp = _mistakes(p.label_abusive_errors, len(bad))
    on_looks = _choose(rng, np.setdiff1d(looks, good), round(n_fp * p.label_lookalike_share))
    rest = np.setdiff1d(np.setdiff1d(ordinary, good), on_looks)
    fp = np.concatenate([on_looks, _choose(rng, rest, n_fp - len(on_looks))])
    fn = _choose(rng, np.setdiff1d(abusers, bad), _mistakes(p.label_legit_errors, len(good)))
    abusive = np.sort(np.concatenate([bad, fp])).astype(np.int64)
    legit = np.sort(np.concatenate([good, fn])).astype(np.int64)
    w.add_labels(abusive, ABUSIVE, END - rng.integers(DAY, 25 * DAY, len(abusive)))
    w.add_labels(legit, LEGIT, END - rng.integers(DAY, 60 * DAY, len(legit)))
