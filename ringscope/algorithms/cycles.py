"""Money cycles: money that goes round a group of accounts and comes back, once or repeatedly.

The money graph is the one of :func:`~ringscope.algorithms.money.transfer_arrays` (buyer ->
seller per order, seller -> creator per commission). A *round* of a cycle of ``k`` accounts
``a1 -> a2 -> ... -> ak -> a1`` is one transfer on every hop, the amounts of successive hops
alike (the same money going round, less fees or with a little noise). Laundering passes the
money on hop after hop (each account pays out after it was paid); a round of purchases in
which goods go round (each account buys before it sells) moves the money round in the other
time order; both are rounds. A cycle may go round once or many times, its hops minutes or
days apart. This detector reports every cycle, whatever its rounds:
:mod:`~ringscope.algorithms.flows` leaves to it the money that goes round (``leave_cycles``),
so that one cycle gives one finding, of kind ``money_cycle``; its signals say how many rounds
(``rounds``) and in which time order the money moved (``passed_on_share``).

How it works
------------
1. **Links.** Only accounts that both pay and receive can be on a cycle, and only their
   transfers to each other are searched. At each such account, a payment in and a payment
   out are *linked* when their amounts differ by at most ``max_change`` of the larger and
   the other ends differ (paying back the payer is no cycle): each payment is linked to the
   ``max_links`` nearest such payments of the other side, before and after it in time.
   The pace comes from each account's own activity (its nearest payments), not a fixed
   window. A link's *chance* is the probability that ordinary trade at the account puts a
   payment like the later one that close to the earlier one: Poisson, at the account's
   rate (the higher of its average over the data's time span and its busiest other day:
   trade comes in bursts), times the share of the market's amounts within the observed
   difference of amounts.
2. **Candidates.** Transfers without a link at both ends cannot be on a round and are left
   out, until none is. The accounts' graph of what is left is split into strongly
   connected components (Tarjan, scipy), and the simple cycles of each of ``min_length``
   to ``max_length`` accounts are enumerated (networkx). A component with more than
   ``max_cycles`` cycles is split, not skipped: its weaker half of edges (by their most
   unlikely link) is left out and the rest searched again, until it is small enough. No
   size of component hides its cycles; hubs stay in (their links are likely, so weak).
3. **Rounds.** On each cycle the rounds are taken greedily, earliest first: one transfer
   per hop, the amounts of successive hops linked, all within a span; the spans tried are
   the data's time span divided by powers of four (down to a minute), and the span whose
   rounds are the least likely is kept.
4. **Significance.** The expected number of such cycles in this market by chance. The
   least likely round is the cycle's first: a chain of payments from any transfer among
   accounts that pay and receive (their number is the first factor), each account making a
   payment like the next one that close in time and amount, at its own rate and to any
   payee (each link's chance as in step 1; the links' chances combined by Fisher's method,
   since a product of many chances is small by itself and the search took the least
   likely), times the chance that the last payment comes back to where the money set off
   (the payee's share of the market's payments in, or the payer's share of its payments to
   it outside these rounds, the likelier, on the likeliest hop), times the spans tried.
   Every further round is weighed given the cycle: its pairs trade at their own rates
   (their transfers over the data's span), and the chance is that of as many more rounds,
   each as close in time as the loosest of them (Poisson). A pair of ordinary trade that
   deals daily makes rounds easily; three accounts that seldom pay lining up ten times
   make them seldom. ``significance = -log10(expected)``; cycles below
   ``min_significance`` or of fewer than ``min_rounds`` rounds are not reported. A quick
   round of an unusual amount among accounts that seldom trade is unlikely; resellers that
   buy and sell at similar prices all day are not; an ordinary loop of unrelated amounts is
   no round at all.
5. **Findings.** Cycles are taken most significant first; one that reuses a transfer of a
   cycle already taken is left out. Cycles sharing an account form one finding. Its score
   is ``1 - exp(-significance / (2 * min_significance))``; each member scores that times
   its hub discount (``1 / (1 + log2(d / h))`` for ``d`` counterparties outside the
   finding above ``h``, the market's ``hub_quantile`` quantile of counterparties per
   account).

Every threshold is either a search bound (``max_change``, ``max_links``, ``max_length``,
``max_cycles``) or a probability computed from the market's own amounts and activity.

Policy block ``money_cycles``
-----------------------------
min_length, max_length, max_change, max_links, min_amount, min_rounds, min_significance,
hub_quantile, max_cycles, statuses, new_account_days, min_score, max_evidence: see
:func:`detect_money_cycles`.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
from scipy import sparse, special, stats
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import iso
from ringscope.algorithms.identifiers import account_created, reference_time
from ringscope.algorithms.money import (
    Activity,
    Transfers,
    activity_from_counts,
    day_counts,
    degree_quantile,
    hub_discount,
    money_transfers,
    new_accounts,
    transfer_arrays,
)
from ringscope.model import DetectorInfo, Finding, Member, Signal, rank

NAME = "money_cycles"
VERSION = "2.0.0"
KIND = "money_cycle"

__all__ = [
    "KIND",
    "NAME",
    "VERSION",
    "Cycle",
    "Hosts",
    "detect_money_cycles",
    "find_cycles",
    "hosts_of",
    "money_transfers",
]

_LN10 = math.log(10.0)
#: Shortest span of a round tried (seconds); and rates are measured over at least a day.
_MIN_SPAN = 60.0
MIN_WINDOW = 86_400.0
#: The parameters of the search (:func:`find_cycles`).
SEARCH = (
    "min_length",
    "max_length",
    "max_change",
    "max_links",
    "min_rounds",
    "min_significance",
    "max_cycles",
)


def _check(
    min_length: int,
    max_length: int | None,
    max_change: float,
    max_links: int,
    min_rounds: int,
    hub_quantile: float,
    max_cycles: int,
    min_score: float,
) -> None:
    if min_length < 3:
        raise ValueError("min_length must be at least 3 (two accounts paying back is no cycle)")
    if max_length is not None and max_length < min_length:
        raise ValueError("max_length must be at least min_length (or null: any length)")
    if not 0.0 < max_change < 1.0:
        raise ValueError("max_change must be in (0, 1)")
    if max_links < 1:
        raise ValueError("max_links must be at least 1")
    if min_rounds < 1:
        raise ValueError("min_rounds must be at least 1")
    if not 0.0 < hub_quantile <= 1.0:
        raise ValueError("hub_quantile must be in (0, 1]")
    if max_cycles < 1:
        raise ValueError("max_cycles must be at least 1")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class Hosts:
    """What the search reads: the transfers among accounts that both pay and receive.

    ``names`` are those accounts' ids, sorted; ``src``/``dst`` codes into them; ``t`` the
    transfers' times in seconds (``t_us`` in microseconds), sorted with ``order_id`` and
    ``via`` (the canonical order of :func:`hosts_from_frame`); ``act`` the market's
    :class:`~ringscope.algorithms.money.Activity` over these accounts (its amounts are the
    whole market's); ``transfers`` the number of transfers in the whole market; ``origin``
    each transfer's position in the :class:`~ringscope.algorithms.money.Transfers` it was
    taken from (-1 when it came from elsewhere).
    """

    names: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    amount: np.ndarray
    t: np.ndarray
    t_us: np.ndarray
    order_id: np.ndarray
    via: np.ndarray
    act: Activity
    transfers: int
    origin: np.ndarray

    def __len__(self) -> int:
        return len(self.src)


def hosts_from_frame(
    frame: pd.DataFrame, names: np.ndarray, act: Activity, transfers: int
) -> Hosts:
    """:class:`Hosts` of a frame of transfers among ``names`` (``src``, ``dst`` as account
    ids, ``amount``, ``t_us``, ``order_id``, ``via``; optionally ``origin``), put in the
    canonical order: time, then order id, then ``via``."""
    f = frame.sort_values(["t_us", "order_id", "via"], kind="stable", ignore_index=True)
    index = pd.Index(names)
    t_us = f["t_us"].to_numpy(dtype=np.int64)
    return Hosts(
        names=np.asarray(names, dtype=object),
        src=index.get_indexer(f["src"]).astype(np.int64),
        dst=index.get_indexer(f["dst"]).astype(np.int64),
        amount=f["amount"].to_numpy(dtype=float),
        t=t_us / 1e6,
        t_us=t_us,
        order_id=f["order_id"].astype(str).to_numpy(dtype=object),
        via=f["via"].astype(str).to_numpy(dtype=object),
        act=act,
        transfers=int(transfers),
        origin=(
            f["origin"].to_numpy(dtype=np.int64)
            if "origin" in f.columns
            else np.full(len(f), -1, dtype=np.int64)
        ),
    )


def hosts_of(tr: Transfers, *, hub_quantile: float, min_amount: float = 0.0) -> Hosts:
    """The :class:`Hosts` of the whole money graph ``tr`` (transfers of at least
    ``min_amount``)."""
    keep = tr.amount >= min_amount
    src, dst, amount, t_us = tr.src[keep], tr.dst[keep], tr.amount[keep], tr.t_us[keep]
    n = len(tr.accounts)
    n_in = np.bincount(dst, minlength=n)
    n_out = np.bincount(src, minlength=n)
    host = (n_in > 0) & (n_out > 0)
    a, b = np.minimum(src, dst), np.maximum(src, dst)
    pairs = np.unique(a.astype(np.int64) * max(n, 1) + b)
    degree = np.bincount(np.concatenate([pairs // max(n, 1), pairs % max(n, 1)]), minlength=n)
    code = np.cumsum(host) - 1
    day = (t_us // 86_400_000_000).astype(np.int64)

    def days(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        on = host[acc]
        a_, d_, c_ = day_counts(acc[on], day[on])
        return code[a_], d_, c_

    values, counts = np.unique(amount, return_counts=True)
    span = float(t_us.max() - t_us.min()) / 1e6 if len(t_us) else 0.0
    act = activity_from_counts(
        amount_values=values,
        amount_counts=counts,
        n_in=n_in[host],
        n_out=n_out[host],
        degree=degree[host],
        days_in=days(dst),
        days_out=days(src),
        span=max(span, MIN_WINDOW),
        hub_degree=degree_quantile(*np.unique(degree, return_counts=True), hub_quantile),
    )
    inner = host[src] & host[dst]
    frame = pd.DataFrame(
        {
            "src": tr.accounts[src[inner]],
            "dst": tr.accounts[dst[inner]],
            "amount": amount[inner],
            "t_us": t_us[inner],
            "order_id": tr.order_ids(np.flatnonzero(keep)[inner]),
            "via": tr.via[keep][inner],
            "origin": np.flatnonzero(keep)[inner],
        }
    )
    return hosts_from_frame(frame, tr.accounts[host], act, len(src))


# --------------------------------------------------------------------------- links


def _nearest(
    q_acc: np.ndarray,
    q_bin: np.ndarray,
    q_t: np.ndarray,
    acc: np.ndarray,
    bins: np.ndarray,
    t: np.ndarray,
    m: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (query, target): for each query, the ``m`` targets of its account nearest in
    time before it and after it, in each amount bin next to the query's (-1, 0, +1)."""
    empty = np.zeros(0, dtype=np.int64)
    if not len(acc) or not len(q_acc):
        return empty, empty
    b0 = int(min(bins.min(), q_bin.min())) - 1
    width = int(max(bins.max(), q_bin.max())) - b0 + 2
    order = np.lexsort((t, bins, acc))
    gk = acc[order].astype(np.int64) * width + (bins[order] - b0)
    ugk, gstart = np.unique(gk, return_index=True)
    gend = np.r_[gstart[1:], len(gk)]
    gid = np.repeat(np.arange(len(ugk)), np.diff(np.r_[gstart, len(gk)]))
    t0 = float(min(t.min(), q_t.min()))
    big = float(max(t.max(), q_t.max())) - t0 + 2.0
    keys = gid * big + (t[order] - t0)
    qs: list[np.ndarray] = []
    ts: list[np.ndarray] = []
    offsets = np.arange(-m, m)
    for db in (-1, 0, 1):
        qk = q_acc.astype(np.int64) * width + (q_bin + db - b0)
        g = np.minimum(np.searchsorted(ugk, qk), len(ugk) - 1)
        ok = ugk[g] == qk
        qi = np.flatnonzero(ok)
        g = g[ok]
        pos = np.searchsorted(keys, g * big + (q_t[qi] - t0))
        cand = pos[:, None] + offsets[None, :]
        valid = (cand >= gstart[g][:, None]) & (cand < gend[g][:, None])
        qs.append(np.broadcast_to(qi[:, None], cand.shape)[valid])
        ts.append(order[cand[valid]])
    return np.concatenate(qs), np.concatenate(ts)


def _link_parts(
    h: Hosts, acc: np.ndarray, e_in: np.ndarray, e_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For links at ``acc`` of payments ``e_in`` and ``e_out``: ``log(2 * gap * q)`` (the
    observed time between them, at least a second, times ``q``, the share of the market's
    amounts within their observed difference of amounts, at least half a cent), the log of
    the account's rate of the later side (payments per second, the higher of its average and
    its busiest other day), and whether the payment out is the later one."""
    act = h.act
    t_in, t_out = h.t[e_in], h.t[e_out]
    gap = np.maximum(np.abs(t_out - t_in), 1.0)
    first = np.floor(np.minimum(t_in, t_out) / 86_400).astype(np.int64)
    last = np.floor(np.maximum(t_in, t_out) / 86_400).astype(np.int64)
    out_later = t_out >= t_in
    r_out = np.maximum(act.rate_out[acc], act.busiest_rate(acc, first, last, False))
    r_in = np.maximum(act.rate_in[acc], act.busiest_rate(acc, first, last, True))
    rate = np.maximum(np.where(out_later, r_out, r_in), 1e-300)
    x_in, x_out = h.amount[e_in], h.amount[e_out]
    diff = np.maximum(np.abs(np.log(x_out / x_in)), 0.005 / np.minimum(x_in, x_out))
    log_q = act.log_amount_band(np.sqrt(x_in * x_out), diff)
    return np.log(2.0 * gap) + log_q, np.log(rate), out_later


def link_log_chance(h: Hosts, acc: np.ndarray, e_in: np.ndarray, e_out: np.ndarray) -> np.ndarray:
    """log of the chance that ordinary trade at ``acc`` links payment in ``e_in`` and
    payment out ``e_out`` as closely: a payment like the later one, of an amount within the
    observed difference, within the observed time of the earlier one (Poisson at the
    account's rate of the later side, the higher of its average and its busiest other
    day)."""
    log_gq, log_rate, _ = _link_parts(h, acc, e_in, e_out)
    lam = np.maximum(np.exp(log_gq + log_rate), 1e-300)
    return np.asarray(np.log(-np.expm1(-lam)), dtype=float)


@dataclass(frozen=True)
class Links:
    """Linked payments: at account ``acc``, payment in ``e_in`` and payment out ``e_out``
    (transfer positions in :class:`Hosts`), with the link's ``log_chance``."""

    acc: np.ndarray
    e_in: np.ndarray
    e_out: np.ndarray
    log_chance: np.ndarray


def links(h: Hosts, *, max_change: float, max_links: int) -> Links:
    """Every link of step 1 (see the module docstring), each pair once."""
    ok = np.flatnonzero(h.amount > 0)
    width = -math.log(1.0 - max_change)
    logx = np.log(h.amount[ok])
    bins = np.floor(logx / width).astype(np.int64)
    t = h.t[ok]
    # from each payment in (at dst) to the payments out of the same account, and back
    qi, ti = _nearest(h.dst[ok], bins, t, h.src[ok], bins, t, max_links)
    qo, to = _nearest(h.src[ok], bins, t, h.dst[ok], bins, t, max_links)
    e_in = ok[np.concatenate([qi, to])]
    e_out = ok[np.concatenate([ti, qo])]
    pair = np.unique(e_in * len(h) + e_out)
    e_in, e_out = pair // max(len(h), 1), pair % max(len(h), 1)
    keep = (np.abs(np.log(h.amount[e_out] / h.amount[e_in])) <= width) & (
        h.src[e_in] != h.dst[e_out]
    )
    e_in, e_out = e_in[keep], e_out[keep]
    acc = h.dst[e_in]
    return Links(acc, e_in, e_out, link_log_chance(h, acc, e_in, e_out))


def _viable(n: int, lk: Links) -> tuple[np.ndarray, Links]:
    """Transfers linked at both ends, until none is left without (and their links)."""
    keep = np.ones(len(lk.acc), dtype=bool)
    while True:
        has_before = np.zeros(n, dtype=bool)  # linked from a payment into its payer
        has_after = np.zeros(n, dtype=bool)  # linked to a payment out of its payee
        has_before[lk.e_out[keep]] = True
        has_after[lk.e_in[keep]] = True
        viable = has_before & has_after
        new = keep & viable[lk.e_in] & viable[lk.e_out]
        if new.sum() == keep.sum():
            break
        keep = new
    sel = np.flatnonzero(keep)
    return viable, Links(lk.acc[sel], lk.e_in[sel], lk.e_out[sel], lk.log_chance[sel])


# --------------------------------------------------------------------------- cycles


@dataclass
class Cycle:
    """A cycle of accounts (codes into :attr:`Hosts.names`, smallest first) and its rounds.

    ``rounds`` holds one row per round: the transfer on each hop ``accounts[i] ->
    accounts[i + 1]`` (positions in :class:`Hosts`); ``round_log`` each round's
    contribution to ``log_expected``, the natural log of the expected number of such
    cycles by chance.
    """

    accounts: tuple[int, ...]
    rounds: np.ndarray
    round_log: np.ndarray
    log_expected: float

    @property
    def significance(self) -> float:
        return -self.log_expected / _LN10


def _components(es: np.ndarray, ed: np.ndarray, n: int, min_length: int) -> list[np.ndarray]:
    """Edge selections, one per strongly connected component of at least ``min_length``
    accounts."""
    if not len(es):
        return []
    g = sparse.coo_matrix((np.ones(len(es)), (es, ed)), shape=(n, n)).tocsr()
    _, comp = connected_components(g, directed=True, connection="strong")
    sizes = np.bincount(comp)
    inside = (comp[es] == comp[ed]) & (sizes[comp[es]] >= min_length)
    idx = np.flatnonzero(inside)
    o = np.argsort(comp[es[idx]], kind="stable")
    idx = idx[o]
    cuts = np.flatnonzero(np.diff(comp[es[idx]])) + 1
    return [part for part in np.split(idx, cuts) if len(part)]


def _account_cycles(
    es: np.ndarray,
    ed: np.ndarray,
    strength: np.ndarray,
    n: int,
    *,
    min_length: int,
    max_length: int | None,
    max_cycles: int,
) -> list[tuple[int, ...]]:
    """Simple cycles of the accounts' graph (step 2), each as a tuple starting at its
    smallest account; components with too many cycles are split by strength."""
    out: list[tuple[int, ...]] = []
    todo = _components(es, ed, n, min_length)
    while todo:
        sel = todo.pop()
        g = nx.DiGraph()
        g.add_edges_from(zip(es[sel].tolist(), ed[sel].tolist(), strict=True))
        found: list[tuple[int, ...]] = []
        for cyc in nx.simple_cycles(g, length_bound=max_length):
            if len(found) >= max_cycles:
                break
            if len(cyc) >= min_length:
                r = cyc.index(min(cyc))
                found.append(tuple(cyc[r:] + cyc[:r]))
        else:
            out += found
            continue
        # too many: keep the stronger half of the edges (most unlikely links first)
        o = np.lexsort((ed[sel], es[sel], strength[sel]))
        kept = sel[o[: len(sel) // 2]]
        todo += [kept[part] for part in _components(es[kept], ed[kept], n, min_length)]
    return sorted(set(out))


def _rounds(
    hop_t: list[list[float]], hop_x: list[list[float]], span: float, width: float
) -> list[list[int]]:
    """Rounds of a cycle: one transfer per hop within ``span`` seconds, successive hops'
    log amounts within ``width`` (around the cycle). Greedy, earliest first, each transfer
    used once; a head that cannot join is dropped (the earliest when the span is too long,
    the one whose amount is furthest from the others' median when amounts disagree).
    Returns the positions in each hop's list, per round."""
    k = len(hop_t)
    ptr = [0] * k
    out: list[list[int]] = []
    while all(p < len(a) for p, a in zip(ptr, hop_t, strict=True)):
        heads = [a[p] for p, a in zip(ptr, hop_t, strict=True)]
        lo = min(heads)
        if max(heads) - lo > span:
            ptr[heads.index(lo)] += 1
            continue
        xs = [a[p] for p, a in zip(ptr, hop_x, strict=True)]
        if all(abs(xs[i] - xs[i - 1]) <= width for i in range(k)):
            out.append(list(ptr))
            ptr = [p + 1 for p in ptr]
            continue
        mid = sorted(xs)[k // 2]
        dev = [abs(x - mid) for x in xs]
        ptr[dev.index(max(dev))] += 1
    return out


def _spans(h: Hosts) -> list[float]:
    """Round spans tried: the data's time span divided by powers of four, down to a minute."""
    top = max(float(h.t.max() - h.t.min()), _MIN_SPAN) if len(h) else _MIN_SPAN
    out = [top]
    while out[-1] / 4.0 >= _MIN_SPAN:
        out.append(out[-1] / 4.0)
    return out


def _log_p(log_lam: np.ndarray) -> np.ndarray:
    """log P(at least one) of Poisson counts of expected values ``exp(log_lam)``."""
    lam = np.exp(np.minimum(log_lam, 50.0))
    small = log_lam < -30.0
    return np.where(small, log_lam, np.log(-np.expm1(-np.maximum(lam, 1e-300))))


def log_combined(log_p: np.ndarray) -> float:
    """log of the chance that ``len(log_p)`` independent uniform chances multiply to at
    most ``exp(sum(log_p))`` (Fisher's method: a product of many chances is small by itself,
    and the search picked the least likely): ``P(Gamma(k) >= x) = exp(-x) * sum_{j<k}
    x^j / j!`` at ``x = -sum(log_p)``."""
    x = -float(np.sum(log_p))
    if not len(log_p) or x <= 0.0:
        return 0.0
    j = np.arange(len(log_p))
    terms = j * math.log(x) - special.gammaln(j + 1.0)
    top = float(terms.max())
    return min(0.0, -x + top + math.log(float(np.exp(terms - top).sum())))


def _score_rounds(
    h: Hosts, accounts: tuple[int, ...], rounds: np.ndarray, pair_n: np.ndarray, start: float
) -> tuple[np.ndarray, float]:
    """Each round's log contribution to the cycle's expected count, and the count's log.

    The least likely round is the first: ``start`` (the log of the transfers that could
    start a chain, and of the spans tried), plus the log of the links' chances combined
    (each link's: the account making a payment like the later one that close, at its own
    rate, to any payee), plus the log of the chance the last payment comes back (step 4).
    The other rounds add the log of the chance that the cycle's pairs, at their own rates
    (``pair_n`` transfers per hop over the data's span), make as many more rounds, each as
    close in time as the loosest of them (Poisson, at the expected number of such rounds:
    the links' chances combined, times the transfers a round could start from). The
    contributions returned for those rounds are each one's expected number (at most 1).
    """
    k, n_r = len(accounts), len(rounds)
    acc_arr = np.asarray(accounts, dtype=np.int64)
    acc = np.tile(acc_arr, n_r)
    e_out = rounds.reshape(-1)
    e_in = np.roll(rounds, 1, axis=1).reshape(-1)  # hop i - 1 pays accounts[i]
    log_gq, log_rate, out_later = _link_parts(h, acc, e_in, e_out)
    by_account = _log_p(log_gq + log_rate).reshape(n_r, k)
    first = int(np.argmin(by_account.sum(axis=1)))
    # the last payment comes back: the payee's share of the market's payments in, or the
    # payer's share of payments to it beyond these rounds, the likelier, on the likeliest hop
    n_out = h.act.n_out[acc_arr].astype(float)
    popular = h.act.n_in[np.roll(acc_arr, -1)] / max(h.transfers, 1)
    loyal = np.where(n_out > n_r, (pair_n - n_r) / np.maximum(n_out - n_r, 1.0), 0.0)
    close = float(np.maximum(popular, loyal).max())
    out = np.zeros(n_r)
    out[first] = log_combined(by_account[first]) + math.log(max(close, 1e-300))
    hop = np.arange(k)
    later = np.where(out_later.reshape(n_r, k), hop, (hop - 1) % k)
    # given the cycle, its pairs' own amounts are alike by now: only the timing counts
    log_gap = np.log(2.0 * np.maximum(np.abs(h.t[e_out] - h.t[e_in]), 1.0)).reshape(n_r, k)
    by_pair = _log_p(log_gap + np.log(pair_n[later] / h.act.span))
    others = [r for r in range(n_r) if r != first]
    if not others:
        return out, start + float(out[first])
    for r in others:
        # expected tuples as close: the likeliest link closes the round, the others chain
        # from any of a hop's transfers
        out[r] = math.log(float(pair_n.max())) + log_combined(np.sort(by_pair[r])[:-1])
    # the chance of as many more rounds, each at least as close as the loosest of them
    more = float(
        stats.poisson.logsf(len(others) - 1, math.exp(min(float(out[others].max()), 50.0)))
    )
    out[others] = np.minimum(out[others], 0.0)
    return out, start + float(out[first]) + min(0.0, more)


def find_cycles(
    h: Hosts,
    *,
    min_length: int,
    max_length: int | None,
    max_change: float,
    max_links: int,
    min_rounds: int,
    min_significance: float,
    max_cycles: int,
) -> list[Cycle]:
    """The significant cycles of ``h`` (steps 1-4 of the module docstring), most
    significant first, none reusing a transfer of one before it (the parameters are
    :func:`detect_money_cycles`')."""
    if len(h) < min_length:
        return []
    n = len(h.names)
    lk = links(h, max_change=max_change, max_links=max_links)
    viable, lk = _viable(len(h), lk)
    if not viable.any():
        return []
    # each transfer's most unlikely link, and each account edge's
    t_strength = np.full(len(h), np.inf)
    np.minimum.at(t_strength, lk.e_in, lk.log_chance)
    np.minimum.at(t_strength, lk.e_out, lk.log_chance)
    vt = np.flatnonzero(viable)
    pair = h.src[vt].astype(np.int64) * n + h.dst[vt]
    upair, inv = np.unique(pair, return_inverse=True)
    e_strength = np.full(len(upair), np.inf)
    np.minimum.at(e_strength, inv, t_strength[vt])
    es, ed = upair // n, upair % n
    cyc_accounts = _account_cycles(
        es,
        ed,
        e_strength,
        n,
        min_length=min_length,
        max_length=max_length,
        max_cycles=max_cycles,
    )
    if not cyc_accounts:
        return []
    # the viable transfers of each account edge, in time order
    o = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[o], np.arange(len(upair)))
    ends = np.searchsorted(inv[o], np.arange(len(upair)), "right")
    on_pair = {int(p): vt[o[s:e]] for p, s, e in zip(upair, starts, ends, strict=True)}
    all_pairs = h.src.astype(np.int64) * n + h.dst
    pair_count = pd.Series(all_pairs).value_counts()
    width = -math.log(1.0 - max_change)
    spans = _spans(h)
    logx = np.log(np.maximum(h.amount, 1e-300))
    start = math.log(max(len(h), 1)) + math.log(len(spans))
    found: list[Cycle] = []
    for accounts in cyc_accounts:
        k = len(accounts)
        hops = [accounts[i] * n + accounts[(i + 1) % k] for i in range(k)]
        hop_tr = [on_pair[p] for p in hops]
        hop_t = [h.t[x].tolist() for x in hop_tr]
        hop_x = [logx[x].tolist() for x in hop_tr]
        pair_n = np.array([pair_count[p] for p in hops], dtype=float)
        single = all(len(x) == 1 for x in hop_tr)
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        seen: set[tuple[tuple[int, ...], ...]] = set()
        below = math.inf  # spans from the widest round taken up give the same rounds
        for span in spans[:1] if single else spans:
            if span >= below:
                continue
            pos = _rounds(hop_t, hop_x, span, width)
            if not pos:
                break  # no round fits this span: none fits a shorter one
            below = max(
                max(hop_t[i][p[i]] for i in range(k)) - min(hop_t[i][p[i]] for i in range(k))
                for p in pos
            )
            if len(pos) < min_rounds:
                continue
            key = tuple(tuple(p) for p in pos)
            if key in seen:
                continue
            seen.add(key)
            rounds = np.array([[hop_tr[i][p[i]] for i in range(k)] for p in pos], dtype=np.int64)
            lc, log_e = _score_rounds(h, accounts, rounds, pair_n, start)
            if best is None or log_e < best[0]:
                best = (log_e, rounds, lc)
        if best is not None and -best[0] / _LN10 >= min_significance:
            found.append(Cycle(accounts, best[1], best[2], best[0]))
    found.sort(key=lambda c: (c.log_expected, len(c.accounts), c.accounts))
    used = np.zeros(len(h), dtype=bool)
    out: list[Cycle] = []
    for c in found:
        if used[c.rounds].any():
            continue
        used[c.rounds] = True
        out.append(c)
    return out


# --------------------------------------------------------------------------- detector


def detect_money_cycles(
    orders: pd.DataFrame,
    *,
    accounts: pd.DataFrame | None = None,
    min_length: int = 3,
    max_length: int | None = None,
    max_change: float = 0.1,
    max_links: int = 8,
    min_amount: float = 0.0,
    min_rounds: int = 1,
    min_significance: float = 2.0,
    hub_quantile: float = 0.99,
    max_cycles: int = 2000,
    statuses: tuple[str, ...] = ("completed",),
    new_account_days: float = 30.0,
    min_score: float = 0.0,
    max_evidence: int = 50,
    as_of: datetime | None = None,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Find money that went round a group of accounts, once or repeatedly.

    Parameters
    ----------
    orders : pandas.DataFrame
        Normalised ``orders`` table.
    accounts : pandas.DataFrame, optional
        Normalised ``accounts`` table, for account ages in the explanation.
    min_length, max_length : int
        Accounts on a cycle: at least ``min_length`` (3: two accounts paying each other
        back is ordinary), at most ``max_length`` (a search bound; ``None``: any).
    max_change : float
        Search bound: the amounts of two successive hops of a round differ by at most this
        share of the larger (fees, noise); the significance weighs the difference seen.
    max_links : int
        Search bound: at each account, a payment is linked to at most this many payments of
        the other side (in or out) of a similar amount before it, and as many after it, the
        nearest in time.
    min_amount : float
        Transfers of less than this are left out.
    min_rounds : int
        Report cycles that went round at least this many times (1: every cycle).
    min_significance : float
        Report cycles whose expected number by chance in this market is at most
        ``10 ** -min_significance``.
    hub_quantile : float
        Members with more counterparties outside the finding than this quantile of all
        accounts' are hubs: their member score is discounted.
    max_cycles : int
        Search bound: a component of the accounts' graph with more simple cycles than this
        is split (its weaker links left out), not skipped.
    statuses : tuple of str
        Order statuses that move money (default: completed only).
    new_account_days : float
        The explanation counts the members created at most this many days before ``as_of``.
    min_score : float
        Findings scoring below this are dropped.
    max_evidence : int
        At most this many rows per evidence list (totals under ``counts``).
    as_of : datetime, optional
        Reference time for ages (default: the latest order time).
    seed : int, numpy.random.Generator or None
        Accepted for the common detector signature; the method is deterministic.

    Returns
    -------
    list of Finding
        Kind ``money_cycle``, ranked by score then id. Signals: ``significance``,
        ``rounds``, ``accounts``, ``passed_on_share`` (per round, of the accounts but the
        one where the round started and the one where it ended, the share that was paid
        before it paid: 1 for laundering passed on hop after hop, 0 for goods going round,
        each account buying before it sells), ``median_hop_hours``, ``max_amount_change``.

    References
    ----------
    .. [1] Tarjan, "Depth-First Search and Linear Graph Algorithms", SIAM J.
       Computing 1(2), 1972 (strongly connected components).
    .. [2] Gupta & Suzumura, "Finding All Bounded-Length Simple Cycles in a
       Directed Graph", arXiv:2105.10094, 2021 (``networkx.simple_cycles``).
    .. [3] Kumar & Calders, "2SCENT: an efficient algorithm to enumerate all simple
       temporal cycles in a directed multigraph", arXiv:1801.07766, 2018 (cycles whose
       hops are close in time).
    .. [4] Qiu et al., "Real-time Constrained Cycle Detection in Large Dynamic
       Graphs", VLDB 2018 (cycles as a fraud pattern in payments).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng, t0 = np.random.default_rng(1), pd.Timestamp("2026-03-01", tz="UTC")
    >>> trade = pd.DataFrame({  # ordinary trade: 300 buyers, 10 shops, 30 days
    ...     "buyer_id": [f"u{i}" for i in rng.integers(0, 300, 600)],
    ...     "seller_id": [f"shop{i}" for i in rng.integers(0, 10, 600)],
    ...     "amount": np.round(rng.gamma(2.0, 15.0, 600), 2),
    ...     "ts": t0 + pd.to_timedelta(rng.uniform(0, 720, 600), unit="h")})
    >>> hops = [("A", "B"), ("B", "C"), ("C", "A")] * 3  # round three times, 500 each
    >>> loop = pd.DataFrame({"buyer_id": [a for a, _ in hops],
    ...     "seller_id": [b for _, b in hops], "amount": 500.0,
    ...     "ts": [t0 + pd.Timedelta(days=5 * (i // 3), hours=i % 3) for i in range(9)]})
    >>> orders = pd.concat([trade, loop], ignore_index=True).assign(
    ...     order_id=lambda o: [f"o{i}" for i in range(len(o))], product_id="p",
    ...     status="completed")
    >>> [(f.member_ids, f.evidence["cycles"][0]["rounds"])
    ...  for f in detect_money_cycles(orders, seed=0)]
    [(('A', 'B', 'C'), 3)]
    """
    _check(
        min_length, max_length, max_change, max_links, min_rounds, hub_quantile, max_cycles,
        min_score,
    )  # fmt: skip
    info = DetectorInfo(name=NAME, version=VERSION, params=_params(locals()))
    if orders is None or not len(orders):
        return []
    tr = transfer_arrays(orders, statuses=statuses)
    if len(tr) < min_length:
        return []
    h = hosts_of(tr, hub_quantile=hub_quantile, min_amount=min_amount)
    return cycle_findings(
        h,
        now=reference_time((orders, "ts"), as_of=as_of),
        created=account_created(accounts),
        know_accounts=accounts is not None and len(accounts) > 0,
        info=info,
        search={k: v for k, v in info.params.items() if k in SEARCH},
        new_account_days=new_account_days,
        min_score=min_score,
        max_evidence=max_evidence,
    )


#: The parameters a finding's detector info records (every policy parameter but
#: ``max_evidence``), in this order.
PARAMS = (
    "min_length",
    "max_length",
    "max_change",
    "max_links",
    "min_amount",
    "min_rounds",
    "min_significance",
    "hub_quantile",
    "max_cycles",
    "statuses",
    "new_account_days",
    "min_score",
    "as_of",
    "seed",
)


def _params(values: dict[str, Any]) -> dict[str, Any]:
    """The detector info's parameters from the detector's arguments."""
    out = {k: values[k] for k in PARAMS}
    out["statuses"] = list(values["statuses"])
    out["as_of"] = iso(values["as_of"]) if values["as_of"] is not None else None
    out["seed"] = values["seed"] if isinstance(values["seed"], int) else None
    return out


def cycle_findings(
    h: Hosts,
    *,
    now: pd.Timestamp,
    created: pd.Series,
    know_accounts: bool,
    info: DetectorInfo,
    search: dict[str, Any],
    new_account_days: float,
    min_score: float,
    max_evidence: int,
) -> list[Finding]:
    """The findings of :func:`detect_money_cycles` from its :class:`Hosts` (step 5).

    ``search`` holds the parameters of :func:`find_cycles` (:data:`SEARCH`); ``created``
    the accounts' creation times
    (:func:`~ringscope.algorithms.identifiers.account_created`, at least for the hosts);
    with ``know_accounts`` (an accounts table was given) the explanation counts the new
    accounts.
    """
    cycles = find_cycles(h, **search)
    min_significance = float(search["min_significance"])
    new = new_accounts(h.names, created, now, new_account_days) if know_accounts else None
    findings: list[Finding] = []
    for group in _groups(cycles):
        f = _finding(
            h,
            group,
            new=new,
            info=info,
            min_significance=min_significance,
            new_account_days=new_account_days,
            max_evidence=max_evidence,
        )
        if f.score >= min_score:
            findings.append(f)
    return rank(findings)


def cycle_transfers(h: Hosts, cycles: list[Cycle]) -> np.ndarray:
    """Positions in ``h`` of every transfer on a hop of ``cycles`` (in a round or not)."""
    n = len(h.names)
    hops = {
        c.accounts[i] * n + c.accounts[(i + 1) % len(c.accounts)]
        for c in cycles
        for i in range(len(c.accounts))
    }
    pair = h.src.astype(np.int64) * n + h.dst
    return np.flatnonzero(np.isin(pair, np.fromiter(hops, dtype=np.int64, count=len(hops))))


def money_cycle_transfers(tr: Transfers) -> np.ndarray:
    """Positions in ``tr`` of the transfers on the hops of the cycles that
    :func:`detect_money_cycles` with its default parameters finds in ``tr``'s money graph:
    the money that goes round, which :mod:`~ringscope.algorithms.flows` leaves to it."""
    p = {
        k: v.default
        for k, v in inspect.signature(detect_money_cycles).parameters.items()
        if v.kind is inspect.Parameter.KEYWORD_ONLY
    }
    h = hosts_of(tr, hub_quantile=p["hub_quantile"], min_amount=p["min_amount"])
    cycles = find_cycles(h, **{k: p[k] for k in SEARCH})
    return np.asarray(h.origin[cycle_transfers(h, cycles)], dtype=np.int64)


def _groups(cycles: list[Cycle]) -> list[list[Cycle]]:
    """Cycles sharing an account, together (in the order given)."""
    parent = list(range(len(cycles)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[int, int] = {}
    for i, c in enumerate(cycles):
        for a in c.accounts:
            if a in owner:
                parent[root(i)] = root(owner[a])
            else:
                owner[a] = i
    groups: dict[int, list[Cycle]] = {}
    for i, c in enumerate(cycles):
        groups.setdefault(root(i), []).append(c)
    return list(groups.values())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso_us(t: int) -> str:
    """The ISO 8601 UTC string of ``t`` microseconds since the epoch (as ``iso`` writes it)."""
    return (_EPOCH + timedelta(microseconds=int(t))).isoformat()


def _finding(
    h: Hosts,
    group: list[Cycle],
    *,
    new: np.ndarray | None,
    info: DetectorInfo,
    min_significance: float,
    new_account_days: float,
    max_evidence: int,
) -> Finding:
    """The finding of one group of cycles sharing accounts."""
    act = h.act
    accs = np.array(sorted({a for c in group for a in c.accounts}), dtype=np.int64)
    ids = [str(h.names[a]) for a in accs]
    significance = max(c.significance for c in group)
    score = 1.0 - math.exp(-significance / (2.0 * max(min_significance, 1e-9)))
    # accepted cycles share no transfer
    transfers = np.sort(np.concatenate([c.rounds.reshape(-1) for c in group]))
    inside: dict[int, set[int]] = {int(a): set() for a in accs}
    for c in group:
        ring = list(c.accounts)
        for prev, a, nxt in zip(np.roll(ring, 1), ring, np.roll(ring, -1), strict=True):
            inside[int(a)].update((int(prev), int(nxt)))
    outside = act.degree[accs] - np.array([len(inside[int(a)]) for a in accs])
    disc = hub_discount(outside, act.hub_degree)
    members = [
        Member(account_id=ids[i], role="account", score=round(score * float(disc[i]), 6))
        for i in range(len(accs))
    ]
    # how the money moved: in before out at each link (passed on), hop times, amounts
    e_out = np.concatenate([c.rounds.reshape(-1) for c in group])
    e_in = np.concatenate([np.roll(c.rounds, 1, axis=1).reshape(-1) for c in group])
    # per round, of the k - 2 links besides the one where the round started and the one
    # where it ended, the share at which the money came in before it went out
    shares = []
    for c in group:
        t = h.t[c.rounds]
        ascents = (np.roll(t, 1, axis=1) < t).sum(axis=1)
        shares.append(np.maximum(ascents - 1, 0) / (len(c.accounts) - 2))
    passed_on = float(np.mean(np.concatenate(shares)))
    hop_hours = float(np.median(np.abs(h.t[e_out] - h.t[e_in]))) / 3600.0
    change = float(np.max(np.abs(1.0 - h.amount[e_out] / h.amount[e_in])))
    rounds = max(len(c.rounds) for c in group)
    best = group[0]
    signals = [
        Signal("significance", round(significance, 6), float(min_significance), 1.0),
        Signal("rounds", float(rounds), 1.0, 0.0),
        Signal("accounts", float(len(ids)), 3.0, 0.0),
        Signal("passed_on_share", round(passed_on, 6), 0.0, 0.0),
        Signal("median_hop_hours", round(hop_hours, 6), 0.0, 0.0),
        Signal("max_amount_change", round(change, 6), 0.0, 0.0),
    ]
    cyc_rows = [
        {
            "path": [str(h.names[a]) for a in c.accounts] + [str(h.names[c.accounts[0]])],
            "rounds": len(c.rounds),
            "significance": round(c.significance, 3),
            "first_round_start": _iso_us(int(h.t_us[c.rounds[0]].min())),
            "last_round_end": _iso_us(int(h.t_us[c.rounds[-1]].max())),
        }
        for c in group
    ]
    round_rows = [
        {
            "path": r["path"],
            "round": j + 1,
            "start": _iso_us(int(h.t_us[c.rounds[j]].min())),
            "end": _iso_us(int(h.t_us[c.rounds[j]].max())),
            "amount_min": round(float(h.amount[c.rounds[j]].min()), 2),
            "amount_max": round(float(h.amount[c.rounds[j]].max()), 2),
            "chance": float(f"{math.exp(float(c.round_log[j])):.3g}"),
        }
        for c, r in zip(group, cyc_rows, strict=True)
        for j in range(len(c.rounds))
    ]
    shown = transfers[:max_evidence]
    order_rows = [
        {
            "order_id": str(h.order_id[t]),
            "from": str(h.names[h.src[t]]),
            "to": str(h.names[h.dst[t]]),
            "via": str(h.via[t]),
            "amount": float(h.amount[t]),
            "ts": _iso_us(int(h.t_us[t])),
        }
        for t in shown
    ]
    evidence: dict[str, list[dict[str, Any]]] = {
        "typology": [
            {
                "typology": "cycle",
                "rounds": rounds,
                "significance": round(significance, 3),
                "accounts": len(ids),
                "transfers": len(transfers),
            }
        ],
        "cycles": cyc_rows[:max_evidence],
        "rounds": round_rows[:max_evidence],
        "orders": order_rows,
        "counts": [
            {"source": "cycles", "shown": min(len(cyc_rows), max_evidence), "total": len(cyc_rows)},
            {
                "source": "rounds",
                "shown": min(len(round_rows), max_evidence),
                "total": len(round_rows),
            },
            {"source": "orders", "shown": len(order_rows), "total": len(transfers)},
        ],
    }
    moved = float(h.amount[best.rounds[:, 0]].sum())
    span_h = float(np.ptp(h.t[transfers])) / 3600.0
    order_word = (
        "each hop after the one that paid it"
        if passed_on >= 0.5
        else "each account paying before it was paid"
    )
    path = " -> ".join(str(h.names[a]) for a in (*best.accounts, best.accounts[0]))
    text = (
        f"money went round {len(best.accounts)} accounts "
        f"{_times(len(best.rounds))} ({path}), {order_word}: "
        f"{moved:,.2f} set off round the cycle, hops a median {hop_hours:.1f} hours apart, "
        f"successive hops' amounts at most {change:.1%} apart, all within {span_h:.1f} hours."
    )
    if len(group) > 1:
        text += f" {len(group)} cycles share these {len(ids)} accounts."
    text += (
        f" Ordinary trade in this market would make a cycle like it about once in "
        f"10^{significance:.1f} markets."
    )
    if new is not None:
        text += (
            f" {int(new[accs].sum())} of the {len(ids)} accounts were created in the last "
            f"{new_account_days:g} days."
        )
    return Finding.build(
        kind=KIND,
        score=score,
        members=members,
        signals=signals,
        explanation=text,
        detector=info,
        evidence=evidence,
    )


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"
