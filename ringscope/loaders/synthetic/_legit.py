"""The ordinary marketplace: accounts, streams, audiences, orders, and the legit patterns
that look suspicious (households, shared carrier IPs, viral streams, flash sales, fan clubs).
"""

from __future__ import annotations

import numpy as np

from ._world import (
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
    LIKE,
    PAYMENT,
    PHONE,
    REFUNDED,
    SELLER,
    SHARE,
    VIEW,
    BoolArray,
    FloatArray,
    IntArray,
    World,
    chunk_sizes,
    pick_unique,
    pick_weighted,
)

#: Normal refund and cancellation rates of orders.
REFUND_RATE = 0.05
CANCEL_RATE = 0.06
#: Mean number of events after the first view of a normal viewing session.
_EXTRA_P = 0.6  # negative binomial(1, p): mean (1 - p) / p = 0.67
_EXTRA_KINDS = np.array([LIKE, COMMENT, SHARE, GIFT])
_EXTRA_KIND_P = np.array([0.55, 0.28, 0.07, 0.10])
N_TITLES = 24


# ---------------------------------------------------------------------- accounts and streams


def accounts(w: World) -> None:
    """Ordinary accounts, created over the market's history (growing), with heavy-tailed
    activity."""
    rng = w.rng("accounts")
    p = w.p
    n = p.accounts
    span = END - 7 * DAY - w.history_start
    created = (w.history_start + span * rng.beta(p.account_age_shape, 1.0, n)).astype(np.int64)
    n_c, n_s, n_both = p.creators, p.sellers, p.creator_sellers
    perm = rng.permutation(n).astype(np.int64)
    creators = perm[:n_c]
    sellers = np.concatenate([perm[:n_both], perm[n_c : n_c + n_s - n_both]])
    roles = np.full(n, BUYER, dtype=np.uint8)
    roles[creators] = CREATOR
    roles[sellers] = SELLER
    roles[perm[:n_both]] = CREATOR | SELLER
    view_w = rng.lognormal(0.0, 1.1, n)
    view_w[perm[: n_c + n_s]] *= 0.3
    buy_w = view_w**0.6 * rng.lognormal(0.0, 0.9, n)
    buy_w[perm[n_c : n_c + n_s]] *= 0.2
    idx = w.add_accounts(created, roles, view_w=view_w, buy_w=buy_w)
    w.n_legit = n
    w.creators.append((idx[creators], rng.lognormal(0.0, 2.0, n_c)))
    w.sellers.append((idx[sellers], rng.lognormal(0.0, 1.3, n_s)))


def streams(w: World) -> None:
    """Streams of every creator over the span: more for popular creators, daily rhythm."""
    rng = w.rng("streams")
    cidx, pop = w.creator_pool()
    rel = pop / np.median(pop)
    k = 1 + rng.poisson(np.clip(3.5 * rel**0.35, 0.5, 25.0))
    creator = np.repeat(cidx, k)
    ns = len(creator)
    dur = np.clip(rng.lognormal(np.log(80 * 60), 0.6, ns), 600, 6 * HOUR).astype(np.int64)
    start = w.times(rng, ns, hi=END - 6 * HOUR - 120)
    weight = np.repeat(pop, k) * rng.lognormal(0.0, 0.6, ns) * (dur / 4800) ** 0.5
    order = np.argsort(start, kind="stable")
    w.stream_creator = creator[order]
    w.stream_start = start[order]
    w.stream_end = start[order] + dur[order]
    w.stream_weight = weight[order]
    w.stream_title = rng.integers(0, N_TITLES, ns)[order].astype(np.int64)


def streams_of(w: World, creator: int) -> IntArray:
    """The streams of one creator, in stream order."""
    return w.streams_of(creator)


def follows(w: World) -> None:
    """Followers: popular creators gather most of them."""
    rng = w.rng("follows")
    cidx, pop = w.creator_pool()
    n = round(w.n_legit * w.p.follows_per_account)
    creator = cidx[pick_weighted(rng, pop**0.8, n)]
    vw = w.view_weight
    follower = pick_weighted(rng, vw**0.5 * (vw > 0), n)
    keep = follower != creator
    created = w.created
    lo = np.maximum(created[follower[keep]], created[creator[keep]])
    ts = lo + (rng.random(int(keep.sum())) * (END - 60 - lo)).astype(np.int64)
    w.add_follows(follower[keep], creator[keep], ts)


def catalogue(w: World) -> None:
    """Products of every seller and the affiliations of creators with sellers."""
    rng = w.rng("catalogue")
    sidx, spop = w.seller_pool()
    order = np.argsort(sidx)
    sidx, spop = sidx[order], spop[order]
    k = 1 + rng.poisson(np.clip(3.0 * (spop / np.median(spop)) ** 0.5, 0.5, 60.0))
    level = np.repeat(rng.lognormal(np.log(18.0), 0.7, len(sidx)), k)
    raw = level * rng.lognormal(0.0, 0.5, len(level))
    cents = rng.choice(np.array([0.0, 0.5, 0.9, 0.99]), size=len(raw))
    w.product_seller = np.repeat(sidx, k).astype(np.int64)
    w.product_price = np.maximum(1.0, np.floor(raw)) + cents

    cidx, pop = w.creator_pool()
    m = 1 + rng.poisson(np.clip(1.5 * (pop / np.median(pop)) ** 0.3, 0.2, 20.0))
    creator = np.repeat(cidx, m)
    seller = sidx[pick_weighted(rng, spop, len(creator))]
    keep = creator != seller
    rate = 0.04 + 0.30 * rng.beta(2.0, 4.0, int(keep.sum()))
    w.add_affiliations(creator[keep], seller[keep], rate)


def affiliation_index(w: World) -> tuple[IntArray, IntArray, FloatArray]:
    """Affiliations sorted by creator (later chunks override earlier ones for a pair)."""
    c = np.concatenate([a["creator"] for a in w.affiliations])
    s = np.concatenate([a["seller"] for a in w.affiliations])
    r = np.concatenate([a["rate"] for a in w.affiliations])
    key = c * (w.n_accounts + 1) + s
    # last occurrence of each pair
    _, last = np.unique(key[::-1], return_index=True)
    pos = len(key) - 1 - last
    order = pos[np.argsort(c[pos], kind="stable")]
    return c[order], s[order], r[order]


def _pick_affiliate(
    rng: np.random.Generator, aff: tuple[IntArray, IntArray, FloatArray], creators: IntArray
) -> tuple[BoolArray, IntArray, FloatArray]:
    ac, as_, ar = aff
    lo = np.searchsorted(ac, creators, side="left")
    hi = np.searchsorted(ac, creators, side="right")
    has = hi > lo
    pos = lo + (rng.random(len(creators)) * (hi - lo)).astype(np.int64)
    pos = np.minimum(pos, len(ac) - 1)
    return has, as_[pos], ar[pos]


def _statuses(rng: np.random.Generator, n: int, refund: float, cancel: float) -> IntArray:
    u = rng.random(n)
    status = np.full(n, COMPLETED, dtype=np.int64)
    status[u < refund + cancel] = CANCELLED
    status[u < refund] = REFUNDED
    return status


def _refund_delays(rng: np.random.Generator, n: int) -> IntArray:
    return np.clip(rng.lognormal(np.log(4 * DAY), 0.6, n), HOUR, 25 * DAY).astype(np.int64)


def _sessions(
    rng: np.random.Generator,
    w: World,
    account: IntArray,
    stream: IntArray,
    join: IntArray,
    *,
    planted: bool,
    extra_p: float = _EXTRA_P,
) -> None:
    """A view at ``join`` plus a few likes, comments, shares and gifts later in the stream."""
    extra = rng.negative_binomial(1, extra_p, len(account))
    end = w.stream_end[stream]
    join = np.minimum(join, end - 1)
    rep = np.repeat(np.arange(len(account)), extra)
    kinds = _EXTRA_KINDS[pick_weighted(rng, _EXTRA_KIND_P, len(rep))]
    ts = join[rep] + (rng.random(len(rep)) * (end[rep] - join[rep])).astype(np.int64)
    amount = np.full(len(rep), np.nan)
    gift = kinds == GIFT
    amount[gift] = np.round(np.maximum(0.1, rng.lognormal(np.log(1.5), 1.0, int(gift.sum()))), 2)
    w.add_engagements(
        np.concatenate([account, account[rep]]),
        np.concatenate([stream, stream[rep]]),
        np.concatenate([np.full(len(account), VIEW), kinds]),
        np.concatenate([join, ts]),
        np.concatenate([np.full(len(account), np.nan), amount]),
        planted=planted,
    )


def _legit_buyers(w: World) -> IntArray:
    roles = w.roles[: w.n_legit]
    return np.flatnonzero(roles == BUYER).astype(np.int64)


# ---------------------------------------------------------------------- legit bursts


def fan_clubs(w: World) -> None:
    """Fans who watch every stream of one creator, arriving together near its start."""
    rng = w.rng("fan_clubs")
    cidx, pop = w.creator_pool()
    counts = np.bincount(w.stream_creator, minlength=w.n_accounts)[cidx]
    med = np.median(pop)
    ok = (counts >= 4) & (pop >= med) & (cidx < w.n_legit)
    candidates = cidx[ok] if ok.any() else cidx[np.argsort(-counts)[:5]]
    buyers = _legit_buyers(w)
    created = w.created
    p = w.p
    for i in range(p.fan_clubs):
        free = w.unreserved(candidates)
        if not len(free):
            break
        creator = int(rng.choice(free))
        w.reserve(np.array([creator]))
        share = p.fan_share * w.n_legit * rng.uniform(0.7, 1.3)
        size = int(np.clip(share, p.fan_accounts_min, p.fan_accounts_max))
        members = pick_unique(rng, buyers, size)
        sts = streams_of(w, creator)
        part = rng.random((len(members), len(sts))) < rng.uniform(0.8, 0.95)
        mi, si = np.nonzero(part)
        acc, st = members[mi], sts[si]
        dur = w.stream_end[st] - w.stream_start[st]
        delay = np.minimum(rng.exponential(p.fan_arrival_seconds, len(st)), 0.3 * dur)
        join = w.stream_start[st] + delay.astype(np.int64)
        _sessions(rng, w, acc, st, join, planted=True, extra_p=0.3)
        first = int(w.stream_start[sts].min())
        lo = created[members]
        fts = lo + (rng.random(len(members)) * np.maximum(first - lo, 1)).astype(np.int64)
        w.add_follows(members, np.full(len(members), creator), np.minimum(fts, END - 60))
        w.add_truth(f"hn-fan_club-{i + 1:04d}", "fan_club", members, "member")
        w.count_ring("fan_club")


def viral_streams(w: World) -> None:
    """Streams that go viral: very many accounts arrive within a few minutes."""
    rng = w.rng("viral")
    cidx, pop = w.creator_pool()
    top = cidx[np.argsort(-pop)[: max(3, len(cidx) // 10)]]
    dur = w.stream_end - w.stream_start
    cand = np.flatnonzero(np.isin(w.stream_creator, top) & (dur >= 40 * 60))
    if not len(cand):
        cand = np.argsort(-dur)[:5]
    buyers = _legit_buyers(w)
    p = w.p
    chosen = pick_unique(rng, cand.astype(np.int64), p.viral_streams)
    cut = max(15 * 60, 5 * p.viral_arrival_seconds)
    for i, st in enumerate(chosen):
        share = p.viral_share * w.n_legit * rng.uniform(0.6, 1.4)
        size = int(np.clip(share, p.viral_accounts_min, p.viral_accounts_max))
        arrivals = pick_unique(rng, buyers, size)
        start, end = int(w.stream_start[st]), int(w.stream_end[st])
        trigger = start + int((end - start) * rng.uniform(0.1, 0.5))
        delay = np.minimum(rng.exponential(p.viral_arrival_seconds, len(arrivals)), cut)
        join = trigger + delay.astype(np.int64)
        sts = np.full(len(arrivals), st)
        _sessions(rng, w, arrivals, sts, join, planted=True, extra_p=0.75)
        fol = rng.random(len(arrivals)) < 0.08
        fts = join[fol] + rng.integers(0, 1800, int(fol.sum()))
        w.add_follows(arrivals[fol], np.full(int(fol.sum()), w.stream_creator[st]), fts)
        w.reserve(w.stream_creator[st : st + 1])
        w.add_truth(f"hn-viral_stream-{i + 1:04d}", "viral_stream", arrivals, "member")
        w.count_ring("viral_stream")


def flash_sales(w: World) -> None:
    """A product on sale in a stream: many buyers order it within the same minute."""
    rng = w.rng("flash_sales")
    aff = affiliation_index(w)
    legit_creators = np.unique(aff[0][aff[0] < w.n_legit])
    cand = np.flatnonzero(np.isin(w.stream_creator, legit_creators))
    buyers = _legit_buyers(w)
    bw = w.buy_weight[buyers]
    p = w.p
    for i in range(p.flash_sales):
        st = int(rng.choice(cand))
        creator = w.stream_creator[st : st + 1]
        _, seller, rate = _pick_affiliate(rng, aff, creator)
        product = w.products_of(rng, seller)
        share = p.flash_share * w.n_legit * rng.uniform(0.6, 1.4)
        size = int(np.clip(share, p.flash_accounts_min, p.flash_accounts_max))
        members = pick_unique(rng, buyers, size, bw)
        n = len(members)
        start, end = int(w.stream_start[st]), int(w.stream_end[st])
        t0 = start + int((end - start) * rng.uniform(0.2, 0.8))
        ts = t0 + rng.integers(0, 60, n)
        price = float(w.product_price[product[0]])
        w.add_orders(
            members,
            np.full(n, seller[0]),
            np.full(n, product[0]),
            np.full(n, round(price * 0.5, 2)),
            _statuses(rng, n, REFUND_RATE, CANCEL_RATE),
            ts,
            creator=np.full(n, creator[0]),
            stream=np.full(n, st),
            rate=np.full(n, rate[0]),
            refund_delay=_refund_delays(rng, n),
        )
        watch = rng.random(n) < 0.7
        join = np.maximum(start, t0 - rng.integers(0, 900, int(watch.sum())))
        _sessions(rng, w, members[watch], np.full(int(watch.sum()), st), join, planted=True)
        w.add_truth(f"hn-flash_sale-{i + 1:04d}", "flash_sale", members, "member")
        w.count_ring("flash_sale")


# ---------------------------------------------------------------------- ordinary activity


def sessions(w: World) -> None:
    """Ordinary viewing: sessions on streams in proportion to their popularity, from fans
    of the creator or from the whole audience, until the event budget is spent."""
    rng = w.rng("sessions")
    budget = int(w.events * 1.03) - w.planted_events
    n = max(0, round(budget / (1 + (1 - _EXTRA_P) / _EXTRA_P)))
    stream = pick_weighted(rng, w.stream_weight, n)
    creator = w.stream_creator[stream]
    account = pick_weighted(rng, w.view_weight, n)
    fc = np.concatenate([f["creator"] for f in w.follows])
    ff = np.concatenate([f["follower"] for f in w.follows])
    order = np.argsort(fc, kind="stable")
    ff = ff[order]
    offsets = np.searchsorted(fc[order], np.arange(w.n_accounts + 1), side="left")
    lo, hi = offsets[creator], offsets[creator + 1]
    fan = (rng.random(n) < 0.35) & (hi > lo)
    pos = lo[fan] + (rng.random(int(fan.sum())) * (hi[fan] - lo[fan])).astype(np.int64)
    account[fan] = ff[pos]
    start, end = w.stream_start[stream], w.stream_end[stream]
    join = start + ((end - start) * rng.beta(1.3, 2.0, n)).astype(np.int64)
    keep = account != creator
    _sessions(rng, w, account[keep], stream[keep], join[keep], planted=False)


def orders(w: World) -> None:
    """Ordinary orders: about half through a creator's stream (with commission)."""
    rng = w.rng("orders")
    n = max(200, round(w.events * w.p.orders_per_event))
    aff = affiliation_index(w)
    attributed = rng.random(n) < 0.55
    stream = pick_weighted(rng, w.stream_weight, n)
    creator = np.where(attributed, w.stream_creator[stream], -1)
    has, aff_seller, rate = _pick_affiliate(rng, aff, creator)
    attributed &= has
    sidx, spop = w.seller_pool()
    seller = sidx[pick_weighted(rng, spop, n)]
    seller[attributed] = aff_seller[attributed]
    creator[~attributed] = -1
    stream[~attributed] = -1
    ts = w.times(rng, n)
    st = stream[attributed]
    ts[attributed] = w.stream_start[st] + (
        rng.random(len(st)) * (w.stream_end[st] - w.stream_start[st])
    ).astype(np.int64)
    buyer = pick_weighted(rng, w.buy_weight, n)
    product = w.products_of(rng, seller)
    qty = pick_weighted(rng, np.array([0.8, 0.15, 0.05]), n) + 1
    amount = w.product_price[product] * qty
    keep = (buyer != seller) & (buyer != creator)
    w.add_orders(
        buyer[keep],
        seller[keep],
        product[keep],
        amount[keep],
        _statuses(rng, int(keep.sum()), REFUND_RATE, CANCEL_RATE),
        ts[keep],
        creator=creator[keep],
        stream=stream[keep],
        rate=rate[keep],
        refund_delay=_refund_delays(rng, int(keep.sum())),
    )


# ---------------------------------------------------------------------- identifiers


def _ip_codes(rng: np.random.Generator, n: int) -> IntArray:
    """Public-looking IPv4 addresses (no private, loopback or shared ranges)."""
    first = rng.choice(np.array([1, 14, 27, 36, 42, 49, 58, 60, 101, 103, 110, 113, 115]), n)
    first = first + rng.integers(0, 3, n)
    return (first << 24 | rng.integers(0, 1 << 24, n)).astype(np.int64)


def new_identifiers(rng: np.random.Generator, kind: int, n: int) -> IntArray:
    """Fresh identifier values of ``kind`` (codes; formatted when written)."""
    if kind == IP:
        return _ip_codes(rng, n)
    if kind == PHONE:
        return rng.integers(6_000_000_000, 6_700_000_000, n, dtype=np.int64) * 10 + rng.integers(
            0, 10, n
        )
    return rng.integers(0, 1 << 60, n, dtype=np.int64)


def shared_networks(w: World) -> IntArray:
    """Households, carrier and campus IPs, public Wi-Fi. Return the accounts whose home IP
    and address come from their household."""
    rng = w.rng("networks")
    p = w.p
    n = w.n_legit
    buyers = _legit_buyers(w)
    # households: a few accounts on one device, one home IP, often one address and card
    total = int(p.household_share * len(buyers))
    sizes = chunk_sizes(rng, total, p.household_size_min, p.household_size_max)
    members = rng.permutation(buyers)[: int(sizes.sum())]
    hh = np.repeat(np.arange(len(sizes)), sizes)
    for kind, share in ((DEVICE, 1.0), (IP, 1.0), (ADDRESS, 0.8), (PAYMENT, 0.4)):
        shared = rng.random(len(sizes)) < share
        vals = new_identifiers(rng, kind, len(sizes))
        take = shared[hh]
        w.add_identifiers(members[take], kind, vals[hh[take]])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for i, (s, k) in enumerate(zip(starts, sizes, strict=True)):
        w.add_truth(f"hn-household-{i + 1:06d}", "household", members[s : s + k], "member")
    w.rings["household"] = len(sizes)

    legit = np.arange(n, dtype=np.int64)
    groups: tuple[tuple[str, int, float, float, float], ...] = (
        (
            "carrier_ip",
            p.carrier_ips,
            p.carrier_ip_share,
            p.carrier_ip_accounts_min,
            p.carrier_ip_accounts_max,
        ),
        (
            "carrier_ip_campus",
            p.campus_ips,
            p.campus_ip_share,
            p.campus_ip_accounts_min,
            p.campus_ip_accounts_max,
        ),
        (
            "carrier_ip_public_wifi",
            p.public_wifi_ips,
            0.0,
            p.public_wifi_accounts_min,
            p.public_wifi_accounts_max,
        ),
    )
    for kind_name, count, share, lo, hi in groups:
        for i in range(count):
            if share:
                size = int(np.clip(share * n * rng.uniform(0.6, 1.6), lo, hi))
                size = int(min(size, max(lo, int(0.35 * n))))
            else:
                size = int(rng.integers(int(lo), int(hi) + 1))
            acc = np.sort(pick_unique(rng, legit, size))
            w.add_identifiers(acc, IP, new_identifiers(rng, IP, 1).repeat(len(acc)))
            w.add_truth(f"hn-{kind_name}-{i + 1:04d}", kind_name, acc, "member")
            w.count_ring(kind_name)
    return members


def baseline_identifiers(w: World, in_household: IntArray) -> None:
    """Own devices, home IP, a few other IPs, payment method, phone and address."""
    rng = w.rng("identifiers")
    n = w.n_accounts
    acc = np.flatnonzero(w.baseline).astype(np.int64)
    ordered = np.zeros(n, dtype=bool)
    for o in w.orders:
        ordered[o["buyer"]] = True
    home = np.ones(n, dtype=bool)
    home[in_household] = False

    k = 1 + (rng.random(len(acc)) < 0.3) + (rng.random(len(acc)) < 0.05)
    dev = np.repeat(acc, k)
    w.add_identifiers(dev, DEVICE, new_identifiers(rng, DEVICE, len(dev)))
    h = acc[home[acc]]
    w.add_identifiers(h, IP, new_identifiers(rng, IP, len(h)))
    ips = np.repeat(acc, rng.poisson(0.6, len(acc)))
    w.add_identifiers(ips, IP, new_identifiers(rng, IP, len(ips)))
    pay = acc[ordered[acc] | (rng.random(len(acc)) < 0.3)]
    pay = np.concatenate([pay, pay[rng.random(len(pay)) < 0.15]])
    w.add_identifiers(pay, PAYMENT, new_identifiers(rng, PAYMENT, len(pay)))
    ph = acc[rng.random(len(acc)) < 0.8]
    w.add_identifiers(ph, PHONE, new_identifiers(rng, PHONE, len(ph)))
    ad = acc[ordered[acc] & home[acc]]
    w.add_identifiers(ad, ADDRESS, new_identifiers(rng, ADDRESS, len(ad)))
