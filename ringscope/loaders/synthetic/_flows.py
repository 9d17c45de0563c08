"""Planted money-flow typologies: money passed on through accounts, once, hop after hop.

The typologies of public anti-money-laundering simulators (IBM's AMLSim; the AMLworld data
of Altman et al., "Realistic Synthetic Financial Transactions for Anti-Money Laundering
Models", NeurIPS 2023), written as marketplace orders (the payer is the buyer, the payee the
seller). Each instance goes round once: every hop comes after the hop that funded it (hours
to days later) and passes on the amount it received, unchanged or less a small fee.

==================  ==========================================================  =============
typology            what                                                        roles
==================  ==========================================================  =============
``cycle``           a source pays a mule, who pays the next, ... back to the    source, mule
                    source (3-10 accounts)
``chain``           the same without coming back: source, 2-13 mules, sink      source, mule,
                                                                                sink
``fan_out``         a source pays one mule, who splits the money among 2-40     source, mule,
                    sinks                                                       sink
``fan_in``          2-40 sources pay one mule, who passes the total on to one   source, mule,
                    sink                                                        sink
``scatter_gather``  a source pays 2-25 mules, each passes its part on to the    source, mule,
                    same sink                                                   sink
``gather_scatter``  2-20 sources pay one mule, who splits the total among 2-20  source, mule,
                    sinks                                                       sink
==================  ==========================================================  =============

Amounts are drawn per instance over two and a half orders of magnitude (from ordinary order
values to far above them), fees from none to a few percent, hop delays from minutes to days.
In some instances the mules also trade ordinarily (buy from ordinary sellers, sell to
ordinary buyers) to hide; accounts are old or new. Truth rows: ``w.truth`` gets
``(ring_id, "money_flow", accounts, role)`` with ring ids ``mf-<typology>-NNNN``.

:func:`plant_money_flows` plants into any :class:`~._world.World` whose catalogue exists;
:func:`typology_market` writes a whole export: the ordinary marketplace of the generator
(with its hard negatives) and the planted typologies, without the generator's other abuse.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ringscope.errors import InputError

from . import _legit
from ._abuse import _old_created
from ._world import (
    BUYER,
    COMPLETED,
    DAY,
    END,
    HOUR,
    SELLER,
    FloatArray,
    IntArray,
    World,
    pick_weighted,
)
from ._write import build_tables, write_table

KIND = "money_flow"
TYPOLOGIES = ("cycle", "chain", "fan_out", "fan_in", "scatter_gather", "gather_scatter")

#: Accounts per instance (low, high), drawn log-uniformly.
_SIZES: dict[str, tuple[int, int]] = {
    "cycle": (3, 10),
    "chain": (4, 15),
    "fan_out": (2, 40),  # sinks
    "fan_in": (2, 40),  # sources
    "scatter_gather": (2, 25),  # mules
    "gather_scatter": (2, 20),  # sources, and as many sinks again
}


@dataclass(frozen=True, slots=True)
class FlowParams:
    """How the planted instances are drawn (every instance draws its own values in these ranges).

    ``amount`` is the range of the money an instance moves (log-uniform); ``max_fee`` the
    largest fee a hop takes (an instance takes none with probability ``no_fee``);
    ``hop_hours`` the range of an instance's typical hop delay (log-uniform; each hop varies
    around it); ``camouflage`` the share of instances whose mules also trade ordinarily;
    ``new_accounts`` the share of instances made of accounts created shortly before.
    """

    amount: tuple[float, float] = (60.0, 20_000.0)
    max_fee: float = 0.04
    no_fee: float = 0.35
    hop_hours: tuple[float, float] = (0.5, 36.0)
    camouflage: float = 0.5
    new_accounts: float = 0.5


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> FloatArray:
    return np.exp(rng.uniform(np.log(lo), np.log(max(hi, lo)), n))


def _sizes(rng: np.random.Generator, typology: str, n: int) -> IntArray:
    lo, hi = _SIZES[typology]
    return np.clip(np.round(_log_uniform(rng, lo, hi + 0.49, n)), lo, hi).astype(np.int64)


def _ragged(sizes: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """For instances of ``sizes`` items: each item's instance, its position, the offsets."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    inst = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    pos = np.arange(int(sizes.sum()), dtype=np.int64) - offsets[inst]
    return inst, pos, offsets


def _group_cumsum(values: FloatArray, inst: IntArray, offsets: IntArray) -> FloatArray:
    """Cumulative sum of ``values`` restarting at every instance (items grouped by instance)."""
    c = np.cumsum(values)
    before = np.concatenate([[0.0], c])[offsets]
    return c - before[inst]


class _Planter:
    """Accounts, orders and truth of the planted instances, added to one world."""

    def __init__(self, w: World, rng: np.random.Generator, p: FlowParams) -> None:
        self.w, self.rng, self.p = w, rng, p
        sidx, spop = w.seller_pool()
        legit = sidx < w.n_legit
        self.sellers, self.seller_pop = sidx[legit], spop[legit]
        buyers = np.flatnonzero(w.roles[: w.n_legit] == BUYER).astype(np.int64)
        self.buyers = buyers
        self.buyer_w = np.maximum(w.buy_weight[buyers], 1e-9)

    # ---------------------------------------------------------------- pieces

    def accounts(self, counts: IntArray, payee: bool) -> IntArray:
        """New accounts for instances needing ``counts`` each; old or new per instance.

        Payees get a product of their own (they are paid through orders of it).
        """
        rng, n_inst = self.rng, len(counts)
        new = rng.random(n_inst) < self.p.new_accounts
        per = np.repeat(new, counts)
        n = int(counts.sum())
        created = np.where(
            per,
            self.w.start - (rng.random(n) * 60 * DAY).astype(np.int64),
            _old_created(self.w, rng, n),
        ).astype(np.int64)
        accs = self.w.add_accounts(
            created, BUYER | SELLER if payee else BUYER, baseline=True, abuse=True
        )
        if payee:
            self.give_products(accs)
        return accs

    def amounts(self, n: int) -> FloatArray:
        lo, hi = self.p.amount
        return _log_uniform(self.rng, lo, hi, n)

    def fees(self, n_inst: int, inst: IntArray) -> FloatArray:
        """A fee rate per hop: none in some instances, else around the instance's rate."""
        rng = self.rng
        rate = np.where(rng.random(n_inst) < self.p.no_fee, 0.0, rng.uniform(0.002, 1.0, n_inst))
        rate *= self.p.max_fee
        return np.clip(rate[inst] * rng.uniform(0.5, 1.5, len(inst)), 0.0, self.p.max_fee)

    def delays(self, n_inst: int, inst: IntArray) -> IntArray:
        """Hop delays in seconds: a typical delay per instance, each hop varying around it."""
        lo, hi = self.p.hop_hours
        typical = _log_uniform(self.rng, lo, hi, n_inst) * HOUR
        d = typical[inst] * self.rng.lognormal(0.0, 0.5, len(inst))
        return np.clip(d, 600, 4 * DAY).astype(np.int64)

    def starts(self, span: IntArray) -> IntArray:
        """A start per instance such that the whole instance ends before the export's end."""
        start = self.w.start
        room = np.maximum(0, END - 2 * HOUR - start - span)
        return (start + self.rng.random(len(span)) * room).astype(np.int64)

    def pay(self, payer: IntArray, payee: IntArray, amount: FloatArray, ts: IntArray) -> None:
        """Orders payer -> payee (buyer -> seller) of the payee's own product."""
        w = self.w
        n = len(payer)
        w.add_orders(
            payer,
            payee,
            w.products_of(self.rng, payee),
            np.round(amount, 2),
            np.full(n, COMPLETED, dtype=np.int64),
            np.minimum(ts, END - 60),
        )

    def camouflage(self, mules: IntArray, inst_of: IntArray, n_inst: int) -> None:
        """Ordinary trade of the mules of some instances: purchases, and a few sales."""
        rng, w = self.rng, self.w
        hiding = rng.random(n_inst) < self.p.camouflage
        m = mules[hiding[inst_of]]
        if not len(m) or not len(self.sellers):
            return
        buyer = np.repeat(m, rng.poisson(3.0, len(m)))
        seller = self.sellers[pick_weighted(rng, self.seller_pop, len(buyer))]
        product = w.products_of(rng, seller)
        qty = 1 + (rng.random(len(buyer)) < 0.2)
        start = w.start
        ts = start + (rng.random(len(buyer)) * (END - HOUR - start)).astype(np.int64)
        w.add_orders(
            buyer, seller, product, w.product_price[product] * qty,
            np.full(len(buyer), COMPLETED, dtype=np.int64), ts,
        )  # fmt: skip
        shops = m[rng.random(len(m)) < 0.4]
        seller = np.repeat(shops, rng.poisson(2.0, len(shops)))
        if len(seller) and len(self.buyers):
            buyer = self.buyers[pick_weighted(rng, self.buyer_w, len(seller))]
            product = w.products_of(rng, seller)
            ts = start + (rng.random(len(seller)) * (END - HOUR - start)).astype(np.int64)
            w.add_orders(
                buyer, seller, product, w.product_price[product],
                np.full(len(seller), COMPLETED, dtype=np.int64), ts,
            )  # fmt: skip

    def give_products(self, sellers: IntArray) -> None:
        """One product for every new payee account (products stay sorted by seller)."""
        w = self.w
        price = np.maximum(1.0, np.floor(self.rng.lognormal(np.log(25.0), 0.8, len(sellers))))
        w.product_seller = np.concatenate([w.product_seller, np.sort(sellers)])
        w.product_price = np.concatenate([w.product_price, price + 0.99])
        w._product_offsets = np.empty(0, np.int64)  # recomputed on next use

    def truth(self, typology: str, members: list[tuple[IntArray, str]]) -> None:
        w = self.w
        i = w.count_ring(f"{KIND}:{typology}")
        w.count_ring(KIND)
        for accounts, role in members:
            if len(accounts):
                w.add_truth(f"mf-{typology}-{i:04d}", KIND, accounts, role)

    # ---------------------------------------------------------------- typologies

    def paths(self, typology: str, n: int) -> None:
        """Cycles and chains: one hop after the other along a path of accounts."""
        rng = self.rng
        k = _sizes(rng, typology, n)
        hops = k if typology == "cycle" else k - 1
        accs = self.accounts(k, payee=True)
        a_inst, a_pos, a_off = _ragged(k)
        inst, pos, off = _ragged(hops)
        payer = accs[a_off[inst] + pos]
        nxt = (pos + 1) % k[inst]
        payee = accs[a_off[inst] + nxt]
        fee = self.fees(n, inst)
        first = pos == 0
        fee[first] = 0.0
        amount = self.amounts(n)[inst] * np.exp(_group_cumsum(np.log1p(-fee), inst, off))
        delay = self.delays(n, inst)
        delay[first] = 0
        t = _group_cumsum(delay.astype(np.float64), inst, off).astype(np.int64)
        span = np.zeros(n, dtype=np.int64)
        np.maximum.at(span, inst, t)
        self.pay(payer, payee, amount, self.starts(span)[inst] + t)
        is_mule = (a_pos > 0) & ((a_pos < k[a_inst] - 1) | (typology == "cycle"))
        self.camouflage(accs[is_mule], a_inst[is_mule], n)
        for i in range(n):
            mine = accs[a_off[i] : a_off[i] + k[i]]
            roles = [(mine[:1], "source"), (mine[1:], "mule")]
            if typology == "chain":
                roles = [(mine[:1], "source"), (mine[1:-1], "mule"), (mine[-1:], "sink")]
            self.truth(typology, roles)

    def stars(self, typology: str, n: int) -> None:
        """Fan-out, fan-in and gather-scatter: money gathered at and/or split from one mule."""
        rng = self.rng
        k = _sizes(rng, typology, n)
        n_in = k if typology in ("fan_in", "gather_scatter") else np.ones(n, dtype=np.int64)
        if typology == "gather_scatter":
            n_out = _sizes(rng, typology, n)
        else:
            n_out = k if typology == "fan_out" else np.ones(n, dtype=np.int64)
        sources = self.accounts(n_in, payee=False)
        mule = self.accounts(np.ones(n, dtype=np.int64), payee=True)
        sinks = self.accounts(n_out, payee=True)
        total = self.amounts(n)
        # in: the sources' parts of the total, spread over a gathering period
        i_inst, _, i_off = _ragged(n_in)
        share = rng.gamma(rng.uniform(2.0, 40.0, n)[i_inst])
        part = share / np.bincount(i_inst, weights=share, minlength=n)[i_inst]
        gather = self.delays(n, i_inst) * rng.random(len(i_inst))
        t_in = gather.astype(np.int64)
        last_in = np.zeros(n, dtype=np.int64)
        np.maximum.at(last_in, i_inst, t_in)
        # out: the total less a fee, split among the sinks, after the last payment in
        o_inst, _, _ = _ragged(n_out)
        kept = total * (1.0 - self.fees(n, np.arange(n)))
        share = rng.gamma(rng.uniform(2.0, 40.0, n)[o_inst])
        out_part = share / np.bincount(o_inst, weights=share, minlength=n)[o_inst]
        t_out = last_in[o_inst] + self.delays(n, o_inst)
        span = np.zeros(n, dtype=np.int64)
        np.maximum.at(span, o_inst, t_out)
        t0 = self.starts(span)
        self.pay(sources, mule[i_inst], total[i_inst] * part, t0[i_inst] + t_in)
        self.pay(mule[o_inst], sinks, kept[o_inst] * out_part, t0[o_inst] + t_out)
        self.camouflage(mule, np.arange(n), n)
        _, _, o_off = _ragged(n_out)
        for i in range(n):
            self.truth(
                typology,
                [
                    (sources[i_off[i] : i_off[i] + n_in[i]], "source"),
                    (mule[i : i + 1], "mule"),
                    (sinks[o_off[i] : o_off[i] + n_out[i]], "sink"),
                ],
            )

    def scatter_gather(self, n: int) -> None:
        """A source pays several mules; each passes its part on to the same sink."""
        rng = self.rng
        k = _sizes(rng, "scatter_gather", n)
        ones = np.ones(n, dtype=np.int64)
        source = self.accounts(ones, payee=False)
        mules = self.accounts(k, payee=True)
        sink = self.accounts(ones, payee=True)
        inst, _, off = _ragged(k)
        share = rng.gamma(rng.uniform(2.0, 40.0, n)[inst])
        part = self.amounts(n)[inst] * share / np.bincount(inst, weights=share, minlength=n)[inst]
        t_in = (self.delays(n, inst) * rng.random(len(inst))).astype(np.int64)
        t_out = t_in + self.delays(n, inst)
        span = np.zeros(n, dtype=np.int64)
        np.maximum.at(span, inst, t_out)
        t0 = self.starts(span)
        passed = part * (1.0 - self.fees(n, inst))
        self.pay(source[inst], mules, part, t0[inst] + t_in)
        self.pay(mules, sink[inst], passed, t0[inst] + t_out)
        self.camouflage(mules, inst, n)
        for i in range(n):
            self.truth(
                "scatter_gather",
                [
                    (source[i : i + 1], "source"),
                    (mules[off[i] : off[i] + k[i]], "mule"),
                    (sink[i : i + 1], "sink"),
                ],
            )


def plant_money_flows(
    w: World,
    rng: np.random.Generator,
    *,
    per_typology: Mapping[str, int],
    params: FlowParams | None = None,
) -> None:
    """Plant ``per_typology[t]`` instances of each money-flow typology ``t`` into ``w``.

    Call it once the catalogue exists (``_legit.catalogue``: planted payees get products of
    their own, appended to it); ordinary orders may be made before or after. Adds accounts
    (``abuse=True``, with baseline identifiers when those are made later), completed orders
    and truth rows ``(mf-<typology>-NNNN, "money_flow", accounts, role)``, and counts
    ``w.rings["money_flow"]`` and ``w.rings["money_flow:<typology>"]``.

    Parameters
    ----------
    w : World
        The marketplace being generated.
    rng : numpy.random.Generator
        Randomness of the planting (e.g. ``w.rng("money_flows")``).
    per_typology : mapping of str to int
        Instances per typology, among :data:`TYPOLOGIES`; missing ones get none.
    params : FlowParams, optional
        Ranges of amounts, fees, delays, camouflage and account ages.

    Raises
    ------
    InputError
        For an unknown typology, a negative count, or a world without a catalogue.
    """
    unknown = sorted(set(per_typology) - set(TYPOLOGIES))
    if unknown:
        raise InputError(f"unknown money-flow typologies {unknown}; known: {list(TYPOLOGIES)}")
    if any(int(v) < 0 for v in per_typology.values()):
        raise InputError("per_typology counts must be non-negative")
    if not len(w.product_seller):
        raise InputError("plant money flows once the catalogue exists (products of sellers)")
    planter = _Planter(w, rng, params or FlowParams())
    for typology in TYPOLOGIES:
        n = int(per_typology.get(typology, 0))
        if not n:
            continue
        if typology in ("cycle", "chain"):
            planter.paths(typology, n)
        elif typology == "scatter_gather":
            planter.scatter_gather(n)
        else:
            planter.stars(typology, n)


@dataclass(frozen=True, slots=True)
class TypologyMarket:
    """What :func:`typology_market` wrote."""

    out_dir: str
    seed: int
    files: dict[str, str]
    rows: dict[str, int]
    rings: dict[str, int]
    seconds: float


def typology_market(
    out_dir: str | Path,
    *,
    seed: int,
    events: int = 50_000,
    per_typology: Mapping[str, int] | int = 10,
    params: FlowParams | None = None,
    order_events: int | None = None,
    fmt: str = "csv",
) -> TypologyMarket:
    """Write an export of ordinary trade mixed with planted money-flow typologies.

    The ordinary marketplace is the generator's (accounts, streams, follows, catalogue,
    flash sales, sessions, orders, households and shared IPs; not the fan clubs and viral
    streams, which move no money);
    :func:`plant_money_flows` adds ``per_typology`` instances of each typology (an int
    means that many of every one). ``truth.csv`` lists the typologies' accounts (kind
    ``money_flow``) and the generator's hard negatives. ``order_events`` sizes the ordinary
    orders as in a marketplace of that many events (default ``events``): big order tables
    without as many engagement events, for timing.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     m = typology_market(d, seed=3, events=5_000, per_typology=2)
    >>> m.rings["money_flow"], m.rings["money_flow:cycle"]
    (12, 2)
    """
    if fmt not in ("csv", "parquet"):
        raise InputError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    started = time.perf_counter()
    counts = (
        dict.fromkeys(TYPOLOGIES, per_typology)
        if isinstance(per_typology, int)
        else dict(per_typology)
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = World(seed=seed, events=events)
    _legit.accounts(w)
    _legit.streams(w)
    _legit.follows(w)
    _legit.catalogue(w)
    _legit.flash_sales(w)  # a seller paid by very many buyers within a minute
    _legit.sessions(w)
    w.events = order_events or events
    _legit.orders(w)
    w.events = events
    plant_money_flows(w, w.rng("money_flows"), per_typology=counts, params=params)
    in_household = _legit.shared_networks(w)
    _legit.baseline_identifiers(w, in_household)
    tables = build_tables(w)
    files: dict[str, str] = {}
    rows: dict[str, int] = {}
    for name, table in tables.items():
        files[name] = str(write_table(table, out, name, "csv" if name == "truth" else fmt))
        rows[name] = table.num_rows
    return TypologyMarket(
        out_dir=str(out),
        seed=seed,
        files=files,
        rows=rows,
        rings=dict(sorted(w.rings.items())),
        seconds=round(time.perf_counter() - started, 3),
    )
