"""Money flows: money passed on through accounts once, hop after hop, amounts conserved.

Laundering typologies (cycles, chains, fan-out, fan-in, scatter-gather, gather-scatter;
IBM's AMLSim and the AMLworld data of Altman et al., NeurIPS 2023) move money *through*
accounts: each hop comes after the hop that funded it and passes on what it received,
unchanged or less a small fee. The money graph is the one of
:func:`~ringscope.algorithms.money.transfer_arrays` (buyer -> seller per order, seller ->
creator per commission).

Money that goes round belongs to :mod:`ringscope.algorithms.cycles`: it reports every cycle,
once round or many times, as one ``money_cycle`` finding, and this detector leaves out the
patterns that use a transfer on a hop of such a cycle (``leave_cycles``), so that one cycle
gives one finding. A pattern named ``cycle`` here is one whose money came back in a way the
cycle search does not report (below its significance, or round a pattern of several
branches).

How it works
------------
1. **Pass-throughs.** For every account that both receives and pays, its transfers are put
   in time order. A pass-through is a stretch of them, from a payment in to a payment out
   at most ``max_hop_days`` later, that pays out what came in (within ``max_fee`` of it)
   and never pays out more than it has received so far (time-respecting); or one payment
   in and one payment out of matching amounts with anything between. Payments to the
   accounts that paid in (refunds, paying a friend back) do not count as passing on;
   payments to and from marketplace hubs (see below) are ordinary shopping, and so are
   payments out beyond what came in, payments in beyond what went out, and payments too
   small to matter (within the tolerance and under a quarter of the side's median), left out
   (smallest first) while the rest still balances. Stretches are searched over at most
   ``max_gather`` transfers each, so a hub's many payments cost a bounded search.
2. **Chance.** Each pass-through gets the probability that ordinary trade at that account
   makes one like it: its payments out arrive at the account's own rate, its payments in
   likewise, and amounts are drawn from the whole market's amounts. The chance is the
   Poisson probability of as many payments out within the pass-through's duration (and of
   as many payments in within its gathering time), times the probability that as many
   market amounts as it paid out, or as it received (the likelier), sum to within the
   observed gap between money in and out (the market's amount distribution for one
   payment; a seeded Monte-Carlo of sums for several), times the number of payments in it
   could have started from and of payments out the search could end with. An account's
   rate is the higher of its average over the data's time span and its busiest other day
   (the payments after the day's first, per day): marketplace trade comes in bursts (a
   live stream, a flash sale), and a burst like the ones an account has had before is
   ordinary for it. A quick pass-through of an unusual amount by
   an account that seldom pays is unlikely; a seller paying a supplier after a day of
   orders is not. Pass-throughs whose chance exceeds ``max_node_chance`` are dropped;
   overlapping ones at one account are resolved least likely first.
3. **Patterns.** Pass-throughs are linked when the payment out of one is the payment in of
   the next (chains and cycles, the time-respecting walks of 2SCENT), and one-in one-out
   pass-throughs from the same payer to the same payee are grouped (scatter-gather). Each
   linked group is a pattern, named by its shape: ``cycle`` (money came back to an
   account that paid it out, or went round three or more accounts), ``gather_scatter`` (an
   account gathering from several and paying several), ``scatter_gather``, ``fan_out``
   (one account splitting money among several), ``fan_in`` (gathering from several and
   passing the total on), else ``chain``.
   A lone one-in one-out pass-through is not a pattern (a shop passing a purchase on at
   cost, a friend paying on someone's behalf).
4. **Significance.** The expected number of such patterns by chance is the product of the
   pass-throughs' chances, times the number of payments in that could have started each
   independent branch, times the number of accounts that both pay and receive (the places
   one could start), times, for a cycle, the chance that the last payment goes back to its
   start (that account's share of all payments in). ``significance = -log10(expected)``;
   patterns below ``min_significance`` are not reported (at 2, fewer than one in a hundred
   markets of this size and activity would show such a pattern by chance).
5. **Hubs and score.** An account's hub discount is ``1 / (1 + log2(d / h))`` for ``d``
   counterparties outside the pattern above ``h``, the market's ``hub_quantile``
   quantile of counterparties per account (1 at or below it). The score is the lowest
   discount of the pattern's pass-through accounts times
   ``1 - exp(-significance / (2 * min_significance))``; members score the finding's score
   times their own discount. Payers and payees of a pattern that are hubs are not members.

Every threshold is either a search bound (``max_hop_days``, ``max_fee``, ``max_gather``)
or a probability computed from the market's own amounts and activity.

Policy block ``money_flows``
----------------------------
max_hop_days, max_fee, max_gather, max_node_chance, min_significance, hub_quantile,
max_pattern_accounts, leave_cycles, statuses, new_account_days, min_score, max_evidence: see
:func:`detect_money_flows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import check_random_state, iso
from ringscope.algorithms.cycles import money_cycle_transfers
from ringscope.algorithms.identifiers import account_created, as_float, reference_time
from ringscope.algorithms.money import (
    Activity,
    Transfers,
    hub_discount,
    market_activity,
    new_accounts,
    transfer_arrays,
)
from ringscope.model import DetectorInfo, Finding, Member, Signal, rank

NAME = "money_flows"
VERSION = "1.1.0"
KIND = "money_flow"
TYPOLOGIES = ("cycle", "chain", "fan_out", "fan_in", "scatter_gather", "gather_scatter")

#: Monte-Carlo sums of market amounts drawn per number of payments (2 .. _MC_MAX).
_MC_SAMPLES = 16_384
_MC_MAX = 64
#: At most this many (payment in, payment out) pairs are examined at once.
_CHUNK = 2_000_000


def _check(
    max_hop_days: float,
    max_fee: float,
    max_gather: int,
    max_node_chance: float,
    hub_quantile: float,
    min_score: float,
) -> None:
    if not max_hop_days > 0:
        raise ValueError("max_hop_days must be positive")
    if not 0.0 <= max_fee < 1.0:
        raise ValueError("max_fee must be in [0, 1)")
    if max_gather < 2:
        raise ValueError("max_gather must be at least 2")
    if not 0.0 < max_node_chance <= 1.0:
        raise ValueError("max_node_chance must be in (0, 1]")
    if not 0.0 < hub_quantile <= 1.0:
        raise ValueError("hub_quantile must be in (0, 1]")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")


# --------------------------------------------------------------------------- market model


@dataclass(frozen=True)
class Market(Activity):
    """:class:`~ringscope.algorithms.money.Activity` and sums of market amounts.

    ``sums[m - 2]`` holds sums of ``m`` amounts drawn from ``amounts`` (Monte-Carlo,
    seeded; sorted when first needed).
    """

    sums: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    sorted_sums: dict[int, np.ndarray] = field(default_factory=dict)

    def _sorted_sums(self, m: int) -> np.ndarray:
        got = self.sorted_sums.get(m)
        if got is None:
            got = self.sorted_sums[m] = np.sort(self.sums[m - 2])
        return got

    def log_amount_chance(self, m: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """log P(the sum of ``m`` market amounts falls in ``[lo, hi]``), per row."""
        out = np.zeros(len(m))
        a = self.amounts
        one = m <= 1
        if one.any():
            cnt = np.searchsorted(a, hi[one], "right") - np.searchsorted(a, lo[one], "left")
            out[one] = np.log(np.maximum(cnt, 1) / len(a))
        mc = (m >= 2) & (m <= _MC_MAX)
        for k in np.unique(m[mc]):
            sel = mc & (m == k)
            s = self._sorted_sums(int(k))
            cnt = np.searchsorted(s, hi[sel], "right") - np.searchsorted(s, lo[sel], "left")
            out[sel] = np.log((cnt + 1.0) / (len(s) + 1.0))
        big = m > _MC_MAX
        if big.any():
            mu, sd = m[big] * self.mean, np.sqrt(m[big] * self.var) + 1e-12
            p = stats.norm.cdf(hi[big], mu, sd) - stats.norm.cdf(lo[big], mu, sd)
            out[big] = np.log(np.maximum(p, 1.0 / _MC_SAMPLES))
        return out


def market_model(
    src: np.ndarray,
    dst: np.ndarray,
    amount: np.ndarray,
    t: np.ndarray,
    n_accounts: int,
    *,
    hub_quantile: float,
    max_hop: float,
    seed: int | np.random.Generator | None,
) -> Market:
    """The :class:`Market` of transfers ``src -> dst`` (account codes), amounts, times (s)."""
    act = market_activity(
        src, dst, amount, t, n_accounts, hub_quantile=hub_quantile, min_span=max_hop
    )
    rng = check_random_state(seed if seed is not None else 0)
    draws = act.amounts[rng.integers(0, len(act.amounts), size=(_MC_SAMPLES, _MC_MAX))]
    sums = np.cumsum(draws, axis=1)[:, 1:].T.copy()  # row m - 2: sums of m, sorted on use
    return Market(**{f.name: getattr(act, f.name) for f in fields(Activity)}, sums=sums)


def log_node_chance(
    mk: Market,
    acc: np.ndarray,
    n_in: np.ndarray,
    n_out: np.ndarray,
    gather_s: np.ndarray,
    duration_s: np.ndarray,
    money_in: np.ndarray,
    money_out: np.ndarray,
    *,
    rate_in: np.ndarray | None = None,
    rate_out: np.ndarray | None = None,
) -> np.ndarray:
    """log of the chance that ordinary trade at ``acc`` makes such a pass-through.

    Given one payment in: ``n_in - 1`` more payments in within ``gather_s`` seconds and
    ``n_out`` payments out within ``duration_s`` (Poisson at the account's rates: its
    average, or ``rate_in``/``rate_out`` when given), and ``n_out`` market amounts summing
    to between ``money_in`` and ``money_out`` or ``n_in`` of them doing so (the likelier),
    times ``n_in`` (the payments in the stretch could have started from).
    """
    r_in = mk.rate_in[acc] if rate_in is None else rate_in
    r_out = mk.rate_out[acc] if rate_out is None else rate_out
    # at least a second: payments stamped the same instant are not infinitely unlikely
    p_in = stats.poisson.logsf(n_in - 2, r_in * np.maximum(gather_s, 1.0))
    p_out = stats.poisson.logsf(n_out - 1, r_out * np.maximum(duration_s, 1.0))
    lo = np.minimum(money_in, money_out) - 0.005
    hi = np.maximum(money_in, money_out) + 0.005
    # the stretch was chosen to balance, from either side: the payments out summing to what
    # came in, or the payments in (any of ``n_in`` starts) summing to what went out
    amount = np.maximum(mk.log_amount_chance(n_out, lo, hi), mk.log_amount_chance(n_in, lo, hi))
    return np.asarray(p_in + p_out + amount + np.log(n_in), dtype=float)


# --------------------------------------------------------------------------- pass-throughs


@dataclass
class Ledger:
    """Every transfer of the accounts that both receive and pay, per account in time order.

    Two entries per transfer (one at the payer, one at the payee) for those accounts:
    ``acc``, ``t`` (seconds), ``inflow`` (a payment in), ``amount``, ``tr`` (the transfer's
    row), ``other`` (the counterparty), and running sums per position.
    """

    acc: np.ndarray
    t: np.ndarray
    inflow: np.ndarray
    amount: np.ndarray
    tr: np.ndarray
    other: np.ndarray
    cum_in: np.ndarray = field(init=False)
    cum_out: np.ndarray = field(init=False)
    cnt_in: np.ndarray = field(init=False)
    cnt_out: np.ndarray = field(init=False)
    last_in: np.ndarray = field(init=False)
    #: per entry: how many payments out the account made in the search window after it
    #: (the choices a search from there had; set by :func:`candidate_pass_throughs`)
    choices: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        a_in = np.where(self.inflow, self.amount, 0.0)
        a_out = np.where(self.inflow, 0.0, self.amount)
        self.cum_in = np.cumsum(a_in)
        self.cum_out = np.cumsum(a_out)
        self.cnt_in = np.cumsum(self.inflow)
        self.cnt_out = np.cumsum(~self.inflow)
        pos = np.where(self.inflow, np.arange(len(self.acc)), -1)
        self.last_in = np.maximum.accumulate(pos) if len(pos) else pos
        self.choices = np.ones(len(self.acc))


def ledger(
    src: np.ndarray, dst: np.ndarray, amount: np.ndarray, t_us: np.ndarray, n_accounts: int
) -> Ledger:
    """The :class:`Ledger` of the accounts with payments both in and out."""
    n = len(src)
    has_in = np.bincount(dst, minlength=n_accounts) > 0
    has_out = np.bincount(src, minlength=n_accounts) > 0
    both = has_in & has_out
    acc = np.concatenate([dst, src])
    keep = both[acc]
    inflow = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])[keep]
    tr = np.concatenate([np.arange(n), np.arange(n)])[keep]
    other = np.concatenate([src, dst])[keep]
    acc = acc[keep]
    tt = np.concatenate([t_us, t_us])[keep]
    # by account and time; at one instant a payment out sorts before a payment in, so
    # that "in, then out" always means strictly later
    order = np.lexsort((inflow, tt, acc))  # stable: ties keep the transfers' order
    return Ledger(
        acc=acc[order],
        t=tt[order] / 1e6,
        inflow=inflow[order],
        amount=np.concatenate([amount, amount])[keep][order],
        tr=tr[order],
        other=other[order],
    )


def candidate_pass_throughs(
    lg: Ledger, mk: Market, *, max_hop: float, max_fee: float, max_gather: int
) -> pd.DataFrame:
    """Stretches ``[i, j]`` of one account's ledger that pass money on, with their chance.

    ``i`` is a payment in, ``j`` a payment out at most ``max_hop`` seconds and
    ``max_gather`` positions later. ``whole`` rows count every transfer in the stretch
    (money out within ``max_fee`` of money in, never more out than in so far, beyond that
    tolerance); the others only ``i`` and ``j`` (amounts within ``max_fee``).
    """
    cols = ["i", "j", "whole", "logp"]
    n = len(lg.acc)
    if not n:
        return pd.DataFrame({c: [] for c in cols})
    outs = np.flatnonzero(~lg.inflow)
    t0 = lg.t.min()
    key = lg.acc.astype(np.float64) * (lg.t.max() - t0 + 2 * max_hop + 1.0) + (lg.t - t0)
    lo = np.searchsorted(key, key[outs] - max_hop, "left")
    lo = np.maximum(lo, outs - max_gather)
    cnt = outs - lo
    # a search from each entry chooses among the payments out that follow it: that many
    # chances to find a match (multiple testing within the account)
    hi = np.minimum(np.searchsorted(key, key + max_hop, "right") - 1, np.arange(n) + max_gather)
    lg.choices = np.maximum(1, lg.cnt_out[np.minimum(hi, n - 1)] - lg.cnt_out).astype(float)
    parts: list[pd.DataFrame] = []
    bounds = np.searchsorted(np.cumsum(cnt), np.arange(_CHUNK, int(cnt.sum()) + _CHUNK, _CHUNK))
    start = 0
    for stop in np.unique(np.minimum(bounds + 1, len(outs))):
        sl = slice(start, int(stop))
        start = int(stop)
        c = cnt[sl]
        if not c.sum():
            continue
        j = np.repeat(outs[sl], c)
        first = np.cumsum(c) - c
        i = np.repeat(lo[sl], c) + (np.arange(int(c.sum())) - np.repeat(first, c))
        ok = lg.inflow[i]
        i, j = i[ok], j[ok]
        parts.append(_stretches(lg, mk, i, j, max_fee=max_fee))
        parts.append(_direct(lg, mk, i, j, max_fee=max_fee))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: [] for c in cols})
    return pd.concat(parts, ignore_index=True)


def _stretches(lg: Ledger, mk: Market, i: np.ndarray, j: np.ndarray, *, max_fee: float) -> Any:
    a_in = lg.amount[i]
    s_in = lg.cum_in[j] - lg.cum_in[i] + a_in
    s_out = lg.cum_out[j] - lg.cum_out[i]
    ok = np.abs(s_out - s_in) <= max_fee * s_in
    i, j, s_in, s_out = i[ok], j[ok], s_in[ok], s_out[ok]
    if not len(i):
        return pd.DataFrame({"i": [], "j": [], "whole": [], "logp": []})
    # time-respecting: never more paid out than received since i (within the tolerance)
    bal = lg.cum_in - lg.cum_out
    before = bal[i] - lg.amount[i]
    ok = _range_min(bal, i, j) - before >= -max_fee * s_in
    i, j, s_in, s_out = i[ok], j[ok], s_in[ok], s_out[ok]
    n_in = lg.cnt_in[j] - lg.cnt_in[i] + 1
    n_out = lg.cnt_out[j] - lg.cnt_out[i]
    # a lone payment in and out is the direct pair, counted there
    ok = (n_in > 1) | (n_out > 1)
    i, j, s_in, s_out, n_in, n_out = i[ok], j[ok], s_in[ok], s_out[ok], n_in[ok], n_out[ok]
    t_i = lg.t[i]
    logp = log_node_chance(
        mk, lg.acc[i], n_in, n_out, lg.t[lg.last_in[j]] - t_i, lg.t[j] - t_i, s_in, s_out
    )
    return pd.DataFrame({"i": i, "j": j, "whole": True, "logp": logp + np.log(lg.choices[i])})


def _range_min(values: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``values[i[k] : j[k] + 1].min()`` for every ``k`` (``i <= j``)."""
    if not len(i):
        return np.zeros(0)
    ext = np.append(values, np.inf)  # so that j + 1 is always a valid end
    idx = np.empty(2 * len(i), dtype=np.int64)
    idx[0::2], idx[1::2] = i, j + 1
    return np.asarray(np.minimum.reduceat(ext, idx)[0::2], dtype=float)


def _direct(lg: Ledger, mk: Market, i: np.ndarray, j: np.ndarray, *, max_fee: float) -> Any:
    a_in, a_out = lg.amount[i], lg.amount[j]
    ok = (np.abs(a_out - a_in) <= max_fee * a_in) & (lg.other[i] != lg.other[j])
    i, j = i[ok], j[ok]
    one = np.ones(len(i), dtype=np.int64)
    logp = log_node_chance(
        mk, lg.acc[i], one, one, np.zeros(len(i)), lg.t[j] - lg.t[i], lg.amount[i], lg.amount[j]
    )
    return pd.DataFrame({"i": i, "j": j, "whole": False, "logp": logp + np.log(lg.choices[i])})


@dataclass
class Node:
    """One pass-through: an account, the transfers in and out that carry the money."""

    acc: int
    ins: list[int]
    outs: list[int]
    money_in: float
    money_out: float
    logp: float = 0.0


def _core(
    lg: Ledger, mk: Market, i: int, j: int, whole: bool, *, max_fee: float
) -> tuple[list[int], list[int]] | None:
    """The ledger positions that carry the money of stretch ``[i, j]``, or None."""
    if not whole:
        return [i], [j]
    pos = np.arange(i, j + 1)
    ins = pos[lg.inflow[pos]]
    outs = pos[~lg.inflow[pos]]
    payers = set(lg.other[ins].tolist())
    outs = outs[[int(o) not in payers for o in lg.other[outs]]]  # refunds, paying back
    if not len(outs):
        return None

    def balanced(a: np.ndarray, b: np.ndarray) -> bool:
        s_in, s_out = float(lg.amount[a].sum()), float(lg.amount[b].sum())
        return s_in > 0 and abs(s_out - s_in) <= max_fee * s_in

    if not balanced(ins, outs):
        return None
    # payments to or from marketplace hubs are ordinary trade: drop them, smallest first,
    # while what is left still balances
    for side in ("outs", "ins"):
        cur = outs if side == "outs" else ins
        hubs = cur[mk.degree[lg.other[cur]] > mk.hub_degree]
        for h in hubs[np.argsort(lg.amount[hubs], kind="stable")]:
            rest = cur[cur != h]
            trial = (ins, rest) if side == "outs" else (rest, outs)
            if len(rest) and balanced(*trial):
                cur = rest
        if side == "outs":
            outs = cur
        else:
            ins = cur
    # money passed on is what came in or a little less: payments out beyond what came in,
    # and payments in beyond what went out, are the account's own trade while what is left
    # still balances (smallest first)
    amt = lg.amount
    while len(outs) > 1 and amt[outs].sum() > amt[ins].sum():
        rest = outs[outs != outs[np.argmin(amt[outs])]]
        if not balanced(ins, rest):
            break
        outs = rest
    while len(ins) > 1:
        rest = ins[ins != ins[np.argmin(amt[ins])]]
        if amt[rest].sum() < amt[outs].sum() or not balanced(rest, outs):
            break
        ins = rest
    # and payments too small to matter (within the tolerance, and under half the side's
    # median payment: not a part of a split) are the account's own small trade
    flow = min(float(amt[ins].sum()), float(amt[outs].sum()))
    for side in ("outs", "ins"):
        cur = outs if side == "outs" else ins
        small = cur[(amt[cur] < max_fee * flow) & (amt[cur] < np.median(amt[cur]) / 4)]
        for k in small[np.argsort(amt[small], kind="stable")]:
            rest = cur[cur != k]
            if len(rest) and balanced(*((ins, rest) if side == "outs" else (rest, outs))):
                cur = rest
        if side == "outs":
            outs = cur
        else:
            ins = cur
    return ins.tolist(), outs.tolist()


def pass_throughs(
    lg: Ledger,
    mk: Market,
    cand: pd.DataFrame,
    *,
    max_fee: float,
    max_node_chance: float,
) -> list[Node]:
    """Non-overlapping pass-throughs from the candidates, least likely first."""
    limit = math.log(max_node_chance)
    c = cand[cand["logp"] <= limit].sort_values(
        ["logp", "i", "j", "whole"], kind="stable", ignore_index=True
    )
    used = np.zeros(len(lg.acc), dtype=bool)
    picked: list[tuple[int, list[int], list[int]]] = []
    for i, j, whole in zip(
        c["i"].to_numpy(), c["j"].to_numpy(), c["whole"].to_numpy(), strict=True
    ):
        if used[i] or used[j]:
            continue
        core = _core(lg, mk, int(i), int(j), bool(whole), max_fee=max_fee)
        if core is None or used[core[0]].any() or used[core[1]].any():
            continue
        used[core[0]] = True
        used[core[1]] = True
        picked.append((int(lg.acc[i]), core[0], core[1]))
    if not picked:
        return []
    ins = [np.asarray(p[1]) for p in picked]
    outs = [np.asarray(p[2]) for p in picked]
    acc = np.array([p[0] for p in picked])
    n_in = np.array([len(x) for x in ins])
    n_out = np.array([len(x) for x in outs])
    t_first = np.array([lg.t[x].min() for x in ins])
    gather = np.array([lg.t[x].max() for x in ins]) - t_first
    duration = np.array([lg.t[x].max() for x in outs]) - t_first
    m_in = np.array([lg.amount[x].sum() for x in ins])
    m_out = np.array([lg.amount[x].sum() for x in outs])
    # the final chance measures the account's rates on its busiest other day too
    first_day = np.floor(t_first / 86_400).astype(np.int64)
    last_day = np.floor((t_first + duration) / 86_400).astype(np.int64)
    rate_in = np.maximum(mk.rate_in[acc], mk.busiest_rate(acc, first_day, last_day, True))
    rate_out = np.maximum(mk.rate_out[acc], mk.busiest_rate(acc, first_day, last_day, False))
    logp = log_node_chance(
        mk, acc, n_in, n_out, gather, duration, m_in, m_out, rate_in=rate_in, rate_out=rate_out
    )
    logp += np.log(lg.choices[[min(x) for x in ins]])
    return [
        Node(int(acc[k]), lg.tr[ins[k]].tolist(), lg.tr[outs[k]].tolist(), m_in[k], m_out[k], lp)
        for k, lp in enumerate(logp.tolist())
        if lp <= limit
    ]


# --------------------------------------------------------------------------- patterns


@dataclass
class Pattern:
    """Linked pass-throughs and what they say together."""

    nodes: list[Node]
    typology: str
    transfers: list[int]
    roles: dict[int, str]
    significance: float


def link(nodes: list[Node], src: np.ndarray, dst: np.ndarray) -> list[list[int]]:
    """Groups of node indices: chained by a shared transfer, or parallel (same payer, payee)."""
    n = len(nodes)
    a: list[int] = []
    b: list[int] = []
    by_in: dict[int, int] = {}
    for k, nd in enumerate(nodes):
        for t in nd.ins:
            by_in[t] = k
    for k, nd in enumerate(nodes):
        for t in nd.outs:
            if t in by_in:
                a.append(k)
                b.append(by_in[t])
    parallel: dict[tuple[int, int], int] = {}
    for k, nd in enumerate(nodes):
        if len(nd.ins) == 1 and len(nd.outs) == 1:
            pair = (int(src[nd.ins[0]]), int(dst[nd.outs[0]]))
            if pair in parallel:
                a.append(k)
                b.append(parallel[pair])
            else:
                parallel[pair] = k
    g = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, label = connected_components(g, directed=False)
    groups: dict[int, list[int]] = {}
    for k, lab in enumerate(label.tolist()):
        groups.setdefault(lab, []).append(k)
    return list(groups.values())


def describe(
    nodes: list[Node], src: np.ndarray, dst: np.ndarray, mk: Market, n_hosts: int
) -> Pattern:
    """Typology, roles and significance of one group of linked pass-throughs."""
    transfers = sorted({t for nd in nodes for t in nd.ins + nd.outs})
    hosts = {nd.acc for nd in nodes}
    pays = {int(src[t]) for t in transfers}
    gets = {int(dst[t]) for t in transfers}
    roles: dict[int, str] = {}
    for a in sorted(pays | gets):
        if a in hosts:
            roles[a] = "mule"
        elif a in pays:
            roles[a] = "source"
        else:
            roles[a] = "sink"
    back = sorted(a for a in (pays & gets) - hosts)
    if back or _loops(transfers, src, dst):
        typology = "cycle"
    elif any(len(nd.ins) > 1 and len(nd.outs) > 1 for nd in nodes):
        typology = "gather_scatter"
    elif _parallel(nodes, src, dst):
        typology = "scatter_gather"
    elif any(len(nd.outs) > 1 for nd in nodes):
        typology = "fan_out"
    elif any(len(nd.ins) > 1 for nd in nodes):
        typology = "fan_in"
    else:
        typology = "chain"
    funded = {t for nd in nodes for t in nd.outs}
    log_e = math.log(n_hosts) + sum(nd.logp for nd in nodes)
    for nd in nodes:
        if not any(t in funded for t in nd.ins):  # starts a branch: any payment in could
            log_e += math.log(max(1, int(mk.n_in[nd.acc])))
    n_total = len(mk.amounts)
    for a in back:
        log_e += math.log(max(1, int(mk.n_in[a])) / n_total)
    return Pattern(nodes, typology, transfers, roles, -log_e / math.log(10))


def _loops(transfers: list[int], src: np.ndarray, dst: np.ndarray) -> bool:
    """Whether the transfers' accounts form a loop of three or more (money went round)."""
    g = nx.DiGraph()
    g.add_edges_from((int(src[t]), int(dst[t])) for t in transfers)
    return any(len(c) >= 3 for c in nx.strongly_connected_components(g))


def _parallel(nodes: list[Node], src: np.ndarray, dst: np.ndarray) -> bool:
    """Whether two one-in one-out pass-throughs share their payer and their payee."""
    seen: set[tuple[int, int]] = set()
    for nd in nodes:
        if len(nd.ins) == 1 and len(nd.outs) == 1:
            pair = (int(src[nd.ins[0]]), int(dst[nd.outs[0]]))
            if pair in seen:
                return True
            seen.add(pair)
    return False


# --------------------------------------------------------------------------- detector


def detect_money_flows(
    orders: pd.DataFrame,
    *,
    accounts: pd.DataFrame | None = None,
    max_hop_days: float = 10.0,
    max_fee: float = 0.1,
    max_gather: int = 64,
    max_node_chance: float = 0.01,
    min_significance: float = 2.0,
    hub_quantile: float = 0.99,
    max_pattern_accounts: int = 300,
    leave_cycles: bool = True,
    statuses: tuple[str, ...] = ("completed",),
    new_account_days: float = 30.0,
    min_score: float = 0.4,
    max_evidence: int = 50,
    as_of: datetime | None = None,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Find money passed on through accounts once: cycles, chains, fans and scatters.

    Parameters
    ----------
    orders : pandas.DataFrame
        Normalised ``orders`` table (the money graph of
        :func:`~ringscope.algorithms.money.money_transfers`).
    accounts : pandas.DataFrame, optional
        Normalised ``accounts`` table, for account ages in the explanation.
    max_hop_days : float
        Search bound: an account passes money on within this many days of receiving it.
    max_fee : float
        Search bound: money out within this share of money in (fees, rounding); the
        significance weighs the gap actually seen.
    max_gather : int
        Search bound: a pass-through spans at most this many of the account's transfers.
    max_node_chance : float
        A pass-through counts only when ordinary trade at its account would make one like
        it with at most this probability.
    min_significance : float
        Report patterns whose expected number by chance in this market is at most
        ``10 ** -min_significance``.
    hub_quantile : float
        Accounts with more counterparties than this quantile of all accounts' are hubs:
        discounted, and their trade with a pattern is not passing money on.
    max_pattern_accounts : int
        Groups of more accounts than this are not reported (a well-mixed market, not a
        pattern).
    leave_cycles : bool
        Leave to :func:`~ringscope.algorithms.cycles.detect_money_cycles` the money that
        goes round: patterns that use a transfer on a hop of a cycle it finds (with its
        default parameters) are not reported, so that one cycle gives one finding, of kind
        ``money_cycle``, whether it went round once or many times. Turn off when
        ``money_cycles`` does not run.
    statuses : tuple of str
        Orders of these statuses are payments (a refunded or cancelled order moved no
        money that stayed).
    new_account_days : float
        The explanation counts the members created at most this many days before ``as_of``.
    min_score : float
        Patterns whose score (significance times hub discount) is below this are dropped.
    max_evidence : int
        Each evidence list (pass-throughs, orders) is cut at this many rows; ``counts``
        gives the totals.
    as_of : datetime, optional
        When account ages are measured (default: the time of the latest order).
    seed : int, numpy.random.Generator or None
        Seeds the Monte-Carlo sums of market amounts (the same seed, the same findings).

    Returns
    -------
    list of Finding
        Kind ``money_flow``, ranked by score then id; the typology is the first signal's
        name (``typology_<name>``), the evidence's ``typology`` and the explanation's
        first words.

    References
    ----------
    .. [1] Kumar & Calders, "2SCENT: an efficient algorithm to enumerate all simple
       temporal cycles in a directed multigraph", arXiv:1801.07766, 2018 (time-respecting
       cycles, each hop after the previous one within a window).
    .. [2] Altman et al., "Realistic Synthetic Financial Transactions for Anti-Money
       Laundering Models", NeurIPS Datasets and Benchmarks, 2023 (AMLworld typologies).
    .. [3] Suzumura & Kanezashi, "Anti-Money Laundering Datasets: AMLSim", IBM, 2021
       (fan-in, fan-out, cycle, scatter-gather, gather-scatter, bipartite, stack).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> t0 = pd.Timestamp("2026-02-01", tz="UTC")
    >>> n = 400  # ordinary trade: 200 buyers, 8 shops
    >>> shop = pd.DataFrame({"buyer_id": [f"b{i % 200}" for i in range(n)],
    ...     "seller_id": [f"s{i % 8}" for i in range(n)],
    ...     "amount": np.round(rng.lognormal(3, 0.6, n), 2),
    ...     "ts": t0 + pd.to_timedelta(rng.uniform(0, 30, n), unit="D")})
    >>> hops = pd.DataFrame({"buyer_id": ["A", "B", "C"], "seller_id": ["B", "C", "D"],
    ...     "amount": [2500.0, 2475.0, 2450.25],
    ...     "ts": [t0 + pd.Timedelta(hours=h) for h in (10, 16, 30)]})
    >>> orders = pd.concat([shop, hops], ignore_index=True).assign(
    ...     order_id=lambda o: [f"o{i}" for i in range(len(o))], product_id="p",
    ...     status="completed")
    >>> [(f.member_ids, f.evidence["typology"][0]["typology"])
    ...  for f in detect_money_flows(orders, seed=0)]
    [(('A', 'B', 'C', 'D'), 'chain')]
    >>> # money that comes back round is left to money_cycles
    >>> back = orders.assign(seller_id=orders["seller_id"].replace({"D": "A"}))
    >>> detect_money_flows(back, seed=0)
    []
    """
    _check(max_hop_days, max_fee, max_gather, max_node_chance, hub_quantile, min_score)
    params: dict[str, Any] = {
        "max_hop_days": max_hop_days,
        "max_fee": max_fee,
        "max_gather": max_gather,
        "max_node_chance": max_node_chance,
        "min_significance": min_significance,
        "hub_quantile": hub_quantile,
        "max_pattern_accounts": max_pattern_accounts,
        "leave_cycles": leave_cycles,
        "statuses": list(statuses),
        "new_account_days": new_account_days,
        "min_score": min_score,
        "as_of": iso(as_of) if as_of is not None else None,
        "seed": seed if isinstance(seed, int) else None,
    }
    info = DetectorInfo(name=NAME, version=VERSION, params=params)
    if orders is None or not len(orders):
        return []
    tr = transfer_arrays(orders, statuses=statuses)
    if len(tr) < 3:
        return []
    names, src, dst, amount, t_us = tr.accounts, tr.src, tr.dst, tr.amount, tr.t_us
    n_acc = len(names)
    max_hop = max_hop_days * 86_400.0
    mk = market_model(
        src, dst, amount, t_us / 1e6, n_acc, hub_quantile=hub_quantile, max_hop=max_hop, seed=seed
    )
    lg = ledger(src, dst, amount, t_us, n_acc)
    cand = candidate_pass_throughs(lg, mk, max_hop=max_hop, max_fee=max_fee, max_gather=max_gather)
    if not len(cand):
        return []
    nodes = pass_throughs(lg, mk, cand, max_fee=max_fee, max_node_chance=max_node_chance)
    if not nodes:
        return []
    n_hosts = int(((mk.n_in > 0) & (mk.n_out > 0)).sum())
    patterns = [
        describe([nodes[k] for k in g], src, dst, mk, n_hosts) for g in link(nodes, src, dst)
    ]
    patterns = [
        p
        for p in patterns
        if p.significance >= min_significance
        and len(p.roles) <= max_pattern_accounts
        and (len(p.nodes) > 1 or len(p.nodes[0].ins) > 1 or len(p.nodes[0].outs) > 1)
    ]
    if patterns and leave_cycles:
        taken = np.zeros(len(tr), dtype=bool)
        taken[money_cycle_transfers(tr)] = True
        patterns = [p for p in patterns if not taken[p.transfers].any()]
    if not patterns:
        return []
    now = reference_time((orders, "ts"), as_of=as_of)
    created = account_created(accounts)
    new: np.ndarray | None = None
    if len(created):
        new = new_accounts(names, created, now, new_account_days)
    shown = sorted({t for p in patterns for t in p.transfers[:max_evidence]})
    ctx = _Context(
        names=names,
        src=src,
        dst=dst,
        t_us=t_us,
        amount=amount,
        tr=tr,
        order_id=dict(zip(shown, tr.order_ids(shown).tolist(), strict=True)),
        mk=mk,
        new=new,
        info=info,
        min_significance=min_significance,
        new_account_days=new_account_days,
        max_evidence=max_evidence,
    )
    findings = [f for p in patterns if (f := _finding(p, ctx)) is not None]
    return rank([f for f in findings if f.score >= min_score])


@dataclass(frozen=True)
class _Context:
    """What every finding of one run reads: the transfers as arrays, the market, params."""

    names: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    t_us: np.ndarray
    amount: np.ndarray
    tr: Transfers
    order_id: dict[int, str]
    mk: Market
    new: np.ndarray | None
    info: DetectorInfo
    min_significance: float
    new_account_days: float
    max_evidence: int


def _iso_us(t: int) -> str | None:
    return iso(pd.Timestamp(t, unit="us", tz="UTC"))


_WHAT = {
    "cycle": "money went round {n} accounts once and came back",
    "chain": "money was passed along a chain of {n} accounts",
    "fan_out": "money paid in to one account left it split among several",
    "fan_in": "money gathered from several accounts was passed on as one",
    "scatter_gather": "money scattered to several accounts was passed on to one",
    "gather_scatter": "money gathered from several accounts was split among several others",
}


def _finding(p: Pattern, c: _Context) -> Finding | None:
    """The finding of one significant pattern (None when fewer than 3 members are left)."""
    src, dst, mk = c.src, c.dst, c.mk
    accs = np.array(sorted(p.roles))
    inside: dict[int, set[int]] = {int(a): set() for a in accs}
    for t in p.transfers:
        inside[int(src[t])].add(int(dst[t]))
        inside[int(dst[t])].add(int(src[t]))
    outside = mk.degree[accs] - np.array([len(inside[int(a)]) for a in accs])
    disc = dict(zip(accs.tolist(), hub_discount(outside, mk.hub_degree).tolist(), strict=True))
    hub = float(min(disc[nd.acc] for nd in p.nodes))
    strength = 1.0 - math.exp(-p.significance / (2.0 * max(c.min_significance, 1e-9)))
    score = round(hub * strength, 6)
    keep = [int(a) for a in accs if p.roles[int(a)] == "mule" or disc[int(a)] >= 1.0]
    if len(keep) < 3:
        return None
    members = [
        Member(account_id=str(c.names[a]), role=p.roles[a], score=round(score * disc[a], 6))
        for a in keep
    ]
    t_us = c.t_us
    ratio = min(nd.money_out / nd.money_in for nd in p.nodes if nd.money_in > 0)
    first_in = [int(t_us[nd.ins].min()) for nd in p.nodes]
    last_out = [int(t_us[nd.outs].max()) for nd in p.nodes]
    hops = [(b - a) / 3.6e9 for a, b in zip(first_in, last_out, strict=True)]
    span_h = float(np.ptp(t_us[p.transfers])) / 3.6e9
    funded = {t for nd in p.nodes for t in nd.outs}
    moved = float(sum(nd.money_in for nd in p.nodes if not any(t in funded for t in nd.ins)))
    signals = [
        Signal(f"typology_{p.typology}", 1.0, 1.0, 0.0),
        Signal("significance", round(p.significance, 6), float(c.min_significance), 1.0),
        Signal("hub_discount", round(hub, 6), 1.0, 1.0),
        Signal("money_out_over_in", round(ratio, 6), 0.0, 0.0),
        Signal("median_pass_on_hours", round(float(np.median(hops)), 6), 0.0, 0.0),
    ]
    ids = [str(c.names[a]) for a in keep]
    shown = p.transfers[: c.max_evidence]
    order_rows = [
        {
            "order_id": str(oid),
            "from": str(c.names[src[t]]),
            "to": str(c.names[dst[t]]),
            "via": str(c.tr.via[t]),
            "amount": as_float(c.amount[t]),
            "ts": _iso_us(int(t_us[t])),
        }
        for t, oid in zip(shown, (c.order_id[t] for t in shown), strict=True)
    ]
    node_rows = sorted(
        (
            {
                "account_id": str(c.names[nd.acc]),
                "payments_in": len(nd.ins),
                "payments_out": len(nd.outs),
                "money_in": round(float(nd.money_in), 2),
                "money_out": round(float(nd.money_out), 2),
                "first_in": _iso_us(a),
                "last_out": _iso_us(b),
                "chance": float(f"{math.exp(nd.logp):.3g}"),
            }
            for nd, a, b in zip(p.nodes, first_in, last_out, strict=True)
        ),
        key=lambda r: (str(r["first_in"]), str(r["account_id"])),
    )
    evidence: dict[str, list[dict[str, Any]]] = {
        "typology": [
            {
                "typology": p.typology,
                "significance": round(p.significance, 3),
                "accounts": len(ids),
                "pass_throughs": len(p.nodes),
                "transfers": len(p.transfers),
            }
        ],
        "pass_throughs": node_rows[: c.max_evidence],
        "orders": order_rows,
        "counts": [
            {
                "source": "pass_throughs",
                "shown": min(len(node_rows), c.max_evidence),
                "total": len(node_rows),
            },
            {"source": "orders", "shown": len(order_rows), "total": len(p.transfers)},
        ],
    }
    what = _WHAT[p.typology].format(n=len(ids))
    text = (
        f"{p.typology.replace('_', '-')}: {what}: {len(p.nodes)} pass-through(s) moved "
        f"{moved:,.2f} within {span_h:.1f} hours in {len(p.transfers)} transfers, each passing on "
        f"what it had received {'less at most' if ratio < 1 else 'within'} "
        f"{abs(1 - ratio):.1%} (median {float(np.median(hops)):.1f} hours from money in to "
        f"money out). Ordinary trade in this market would make a pattern like it about "
        f"once in 10^{p.significance:.1f} markets."
    )
    if c.new is not None:
        text += (
            f" {int(c.new[keep].sum())} of the {len(ids)} accounts were created in the last "
            f"{c.new_account_days:g} days."
        )
    return Finding.build(
        kind=KIND,
        score=score,
        members=members,
        signals=signals,
        explanation=text,
        detector=c.info,
        evidence=evidence,
    )
