"""Commission rings: buyers who order through a few creators' links and nobody else's.

A creator earns commission on orders placed through their affiliate links
(``orders.creator_id``); a seller pays it. In a commission ring one or more
creators and one or more sellers collude with buyer accounts that order through
the creators' links, for the sellers' products, and often refund or cancel after
the commission has accrued, or hide behind shared payment methods and devices.
A ring is the creators, sellers and buyers that act together, found whole.

How, in three steps, with every threshold learnt from the marketplace itself:

1. **Creators that share buyers beyond chance.** Under the null model each order
   of a buyer goes through creator ``c`` with probability ``pi_c`` (``c``'s share
   of all orders), independently; a buyer with ``n`` orders then orders through
   two creators with a probability computed exactly, and the expected number of
   buyers two creators share is its sum over the market's distribution of orders
   per buyer. Creators sharing significantly more buyers than that (a Poisson
   tail below ``alpha`` over the number of pairs that share any buyer) are
   linked; the connected components are the candidate creator sets (one
   creator alone is a set too). A ring ordering through 2-5 creators' links is
   one set; two rings stay apart, because chance does not tie them.
2. **The buyers of each set**: those who placed more than half of all their
   orders through the set's creators. The sellers are those these buyers
   ordered from through the set's links.
3. **Independent signals**, each a p-value under a null learnt from the market,
   computed for the group's own size:

   - *captive repeat buyers*: buyers who ordered two or more times, most of
     their orders through the set, against the number expected from the set's
     share of the market (Poisson tail);
   - *refunds and cancellations* above the baseline (binomial tail): the market's
     rate without the group's orders, or the sellers' own rate without them
     (shrunk towards the market's), whichever is higher; a ring that is most of
     a creator's sales never sets its own baseline;
   - *refunds after the commission accrued*: the group's refunds came later
     after the order than the market's other refunds (each refund's upper-tail
     rank among them, combined by Fisher's method);
   - *shared identifiers*: an identifier held by more of the group's accounts
     (buyers, creators, sellers) than a random group of that size would hold
     (binomial tail per identifier, against every identifier of the market),
     or more identifiers shared within the group than expected. An identifier
     that thousands of accounts use (a carrier IP) is no evidence unless the
     group holds far more of its accounts than its size explains: the hub
     discount is the market's own sharing;
   - *new accounts*: the buyers' account age at their first order ranks low
     among the market's other buyers (Fisher's method over the ranks);
   - *affiliations begun just before the sales* and *commission rates high*
     for the market: the group's creator-seller pairs ranked among the market's
     other pairs.

   A group is reported when at least ``min_signals`` of these are significant
   on their own (each below ``signal_alpha``) and their Fisher combination is
   below ``alpha`` divided by the number of groups tested. Loyal customers of a
   popular creator are captive but nothing else; a flash sale (hundreds of
   buyers, one product, one minute, ordinary refunds) has no captive buyers,
   ordinary refunds, old accounts and nothing shared: neither is flagged.

The heavy steps (orders aggregated per buyer and per buyer, creator and seller;
identifiers per account) are :func:`order_aggregates` and :func:`identifier_links`;
the Spark engine computes the same tables and calls :func:`find_rings` and
:func:`build_findings`, which hold every rule.

References
----------
.. [1] Edelman & Brandi, "Risk, Information, and Incentives in Online Affiliate
   Marketing", Journal of Marketing Research 52(1), 2015 (commission fraud).
.. [2] Fisher, "Statistical Methods for Research Workers", 1925 (combining
   independent p-values).
.. [3] Hooi et al., "FRAUDAR: Bounding Graph Fraud in the Face of Camouflage",
   KDD 2016 (camouflage: rings that keep refunds low).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, iso
from ringscope.algorithms.identifiers import account_created, as_float, count_noun, kind_weight
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, rank

NAME = "commission_rings"
VERSION = "2.0.0"
KIND = "commission_ring"

BAD_STATUSES = ("refunded", "cancelled")

#: The p-value tests, their signal names and what their value says.
SIGNALS: dict[str, str] = {
    "captive": "captive_repeat_buyers",
    "bad": "excess_refund_cancel_rate",
    "late": "late_refund_share",
    "shared": "shared_identifier_share",
    "new": "new_buyer_share",
    "recent": "recent_affiliation_share",
    "rate": "high_commission_share",
}
_TESTS = tuple(SIGNALS)
#: Smallest p-value kept (log of it): beyond, evidence is evidence.
_P_FLOOR = 1e-300


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _check(
    orders: pd.DataFrame, min_buyers: int, min_score: float, alpha: float, signal_alpha: float
) -> None:
    missing = {"order_id", "buyer_id", "seller_id", "amount", "status", "ts"} - set(orders.columns)
    if missing:
        raise ValueError(f"orders lacks columns {sorted(missing)}")
    if min_buyers < 2:
        raise ValueError("min_buyers must be at least 2")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if not 0.0 < signal_alpha < 1.0:
        raise ValueError("signal_alpha must be in (0, 1)")


def _prepare(orders: pd.DataFrame, affiliations: pd.DataFrame | None) -> pd.DataFrame:
    """The orders with the columns the detector uses, types fixed, commission filled."""
    o = orders.dropna(subset=["buyer_id", "seller_id", "ts"])
    out = pd.DataFrame(
        {
            "order_id": o["order_id"].astype(str).to_numpy(),
            "buyer_id": o["buyer_id"].astype(str).to_numpy(),
            "seller_id": o["seller_id"].astype(str).to_numpy(),
            "creator_id": (
                o["creator_id"].astype(object).where(o["creator_id"].notna(), None).to_numpy()
                if "creator_id" in o.columns
                else np.full(len(o), None, dtype=object)
            ),
            "product_id": (
                o["product_id"].astype(str).to_numpy()
                if "product_id" in o.columns
                else np.full(len(o), "", dtype=object)
            ),
            "amount": o["amount"].astype(float).fillna(0.0).to_numpy(),
            "status": o["status"].astype(str).to_numpy(),
            "ts": pd.to_datetime(o["ts"], utc=True).array,
            "commission": (
                o["commission"].astype(float).to_numpy()
                if "commission" in o.columns
                else np.full(len(o), np.nan)
            ),
            "refunded_at": (
                pd.to_datetime(o["refunded_at"], utc=True).array
                if "refunded_at" in o.columns
                else np.full(len(o), np.datetime64("NaT"), dtype="datetime64[us]")
            ),
        }
    )
    out["ts"] = pd.to_datetime(out["ts"], utc=True).astype("datetime64[us, UTC]")
    out["refunded_at"] = pd.to_datetime(out["refunded_at"], utc=True).astype("datetime64[us, UTC]")
    out["bad"] = out["status"].isin(BAD_STATUSES)
    if affiliations is not None and len(affiliations) and out["commission"].isna().any():
        rate = affiliations.assign(
            creator_id=affiliations["creator_id"].astype(str),
            seller_id=affiliations["seller_id"].astype(str),
        ).drop_duplicates(["creator_id", "seller_id"])
        r = out.merge(
            rate[["creator_id", "seller_id", "commission_rate"]],
            on=["creator_id", "seller_id"],
            how="left",
        )["commission_rate"].astype(float)
        out["commission"] = out["commission"].fillna(out["amount"] * r.to_numpy())
    return out


# --------------------------------------------------------------------------- heavy steps


@dataclass(frozen=True)
class OrderAggregates:
    """The orders, aggregated: what the rules need (an engine computes these tables).

    ``buyers``: one row per buyer of any order: ``buyer_id``, ``n`` (all its
    orders), ``first_ts`` (its first order). ``pbs``: one row per affiliate
    (creator, seller, buyer): ``n`` orders, ``n_bad`` refunded or cancelled,
    ``cents`` (amount in cents, summed), ``first_ts``. ``refunds``: one row per
    refunded affiliate order with a refund time: ``creator_id``, ``seller_id``,
    ``buyer_id``, ``delay_s`` (seconds from the order to the refund).
    ``sellers``: per seller its affiliate ``n`` and ``n_bad``.
    """

    buyers: pd.DataFrame
    pbs: pd.DataFrame
    refunds: pd.DataFrame
    sellers: pd.DataFrame


def _cents(amount: pd.Series) -> np.ndarray:
    return np.round(amount.to_numpy(dtype=float) * 100.0).astype(np.int64)


def order_aggregates(o: pd.DataFrame) -> OrderAggregates:
    """:class:`OrderAggregates` of prepared orders (see :func:`_prepare`)."""
    buyers = o.groupby("buyer_id").agg(n=("order_id", "size"), first_ts=("ts", "min"))
    aff = o[o["creator_id"].notna()]
    aff = aff.assign(creator_id=aff["creator_id"].astype(str), cents=_cents(aff["amount"]))
    pbs = aff.groupby(["creator_id", "seller_id", "buyer_id"]).agg(
        n=("order_id", "size"),
        n_bad=("bad", "sum"),
        cents=("cents", "sum"),
        first_ts=("ts", "min"),
    )
    ref = aff[(aff["status"] == "refunded") & aff["refunded_at"].notna()]
    delay = (ref["refunded_at"] - ref["ts"]).dt.total_seconds().to_numpy()
    refunds = pd.DataFrame(
        {
            "creator_id": ref["creator_id"].to_numpy(),
            "seller_id": ref["seller_id"].to_numpy(),
            "buyer_id": ref["buyer_id"].to_numpy(),
            "delay_s": delay.astype(float),
        }
    )
    return finish_aggregates(buyers.reset_index(), pbs.reset_index(), refunds)


def finish_aggregates(
    buyers: pd.DataFrame, pbs: pd.DataFrame, refunds: pd.DataFrame
) -> OrderAggregates:
    """:class:`OrderAggregates` of the three tables however an engine computed them:
    columns typed and rows sorted the same way, the sellers' totals added, so that
    every engine hands the rules identical tables."""
    ts = pd.DatetimeTZDtype("us", "UTC")
    buyers = pd.DataFrame(
        {
            "buyer_id": buyers["buyer_id"].astype(str).to_numpy(),
            "n": buyers["n"].to_numpy(dtype=np.int64),
            "first_ts": pd.to_datetime(buyers["first_ts"], utc=True).astype(ts).array,
        }
    )
    buyers = buyers.sort_values("buyer_id", kind="stable").reset_index(drop=True)
    keys = ["creator_id", "seller_id", "buyer_id"]
    pbs = pd.DataFrame(
        {
            **{k: pbs[k].astype(str).to_numpy() for k in keys},
            "n": pbs["n"].to_numpy(dtype=np.int64),
            "n_bad": pbs["n_bad"].to_numpy(dtype=np.int64),
            "cents": pbs["cents"].to_numpy(dtype=np.int64),
            "first_ts": pd.to_datetime(pbs["first_ts"], utc=True).astype(ts).array,
        }
    )
    pbs = pbs.sort_values(keys, kind="stable").reset_index(drop=True)
    refunds = pd.DataFrame(
        {
            **{k: refunds[k].astype(str).to_numpy() for k in keys},
            "delay_s": refunds["delay_s"].to_numpy(dtype=float),
        }
    )
    refunds = refunds.sort_values([*keys, "delay_s"], kind="stable").reset_index(drop=True)
    sellers = pbs.groupby("seller_id", sort=True).agg(n=("n", "sum"), n_bad=("n_bad", "sum"))
    sellers = sellers.reset_index()
    return OrderAggregates(buyers=buyers, pbs=pbs, refunds=refunds, sellers=sellers)


@dataclass(frozen=True)
class IdentifierLinks:
    """Identifiers held by two or more accounts: ``links`` has one row per (account,
    identifier): ``account_id``, ``kind``, ``value``, ``n_accounts`` (accounts holding
    it in the whole table), ``first_seen``; ``n_accounts`` is the number of distinct
    accounts in the identifiers table and ``n_shared`` the number of identifiers in
    ``links``."""

    links: pd.DataFrame
    n_accounts: int
    n_shared: int


def usable_kinds(kinds: Iterable[str], other_weight: float) -> list[str]:
    """The identifier kinds that count (a kind weighing nothing is left out)."""
    return sorted(k for k in set(kinds) if kind_weight(k, None, other_weight) > 0)


def identifier_links(identifiers: pd.DataFrame | None, other_weight: float) -> IdentifierLinks:
    """:class:`IdentifierLinks` of an ``identifiers`` table (kinds weighing nothing left out).

    Works on integer codes: only the identifiers two or more accounts hold are made
    into strings again."""
    if identifiers is None or not len(identifiers):
        return finish_links(None, 0)
    df = identifiers[["account_id", "kind", "value", "first_seen"]].dropna(
        subset=["account_id", "kind", "value"]
    )
    a_code, a_names = pd.factorize(df["account_id"].astype(str))
    n_acc = len(a_names)
    k_code, k_names = pd.factorize(df["kind"].astype(str))
    usable = np.isin(k_names.to_numpy(), usable_kinds(k_names, other_weight))
    keep = usable[k_code]
    v_code, v_names = pd.factorize(df["value"].astype(str).to_numpy()[keep])
    a_code, k_code = a_code[keep], k_code[keep]
    seen = pd.to_datetime(df["first_seen"], utc=True).to_numpy(dtype="datetime64[us]")[keep]
    ident = k_code.astype(np.int64) * max(len(v_names), 1) + v_code
    # one row per (identifier, account); the identifiers of two or more accounts
    order = np.lexsort((a_code, ident))
    ident, a_code, seen, v_code, k_code = (
        ident[order],
        a_code[order],
        seen[order],
        v_code[order],
        k_code[order],
    )
    first = np.ones(len(ident), dtype=bool)
    first[1:] = (ident[1:] != ident[:-1]) | (a_code[1:] != a_code[:-1])
    u_ident = ident[first]
    start = np.flatnonzero(np.r_[True, u_ident[1:] != u_ident[:-1]])
    n_per = np.diff(np.r_[start, len(u_ident)])
    shared = np.repeat(n_per >= 2, n_per)
    rows = np.flatnonzero(first)[shared]
    if not len(rows):
        return finish_links(None, n_acc)
    # earliest sighting per (identifier, account): the minimum over its run of rows
    run = np.cumsum(first) - 1
    one = pd.DataFrame({"run": run, "first_seen": seen}).groupby("run")["first_seen"].min()
    return finish_links(
        pd.DataFrame(
            {
                "kind": k_names.to_numpy()[k_code[rows]],
                "value": v_names[v_code[rows]],
                "account_id": a_names.to_numpy()[a_code[rows]],
                "first_seen": one.to_numpy()[run[rows]],
            }
        ),
        n_acc,
    )


def finish_links(one: pd.DataFrame | None, n_accounts: int) -> IdentifierLinks:
    """:class:`IdentifierLinks` of ``one`` (one row per account and identifier of a
    usable kind: ``kind``, ``value``, ``account_id``, ``first_seen``, its earliest
    sighting) and the number of accounts of the identifiers table, typed and sorted
    the same way whichever engine computed them."""
    cols = ["account_id", "kind", "value", "n_accounts", "first_seen"]
    if one is None or not len(one):
        empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})
        return IdentifierLinks(empty, n_accounts, 0)
    one = pd.DataFrame(
        {
            "kind": one["kind"].astype(str).to_numpy(),
            "value": one["value"].astype(str).to_numpy(),
            "account_id": one["account_id"].astype(str).to_numpy(),
            "first_seen": pd.to_datetime(one["first_seen"], utc=True)
            .astype("datetime64[us, UTC]")
            .array,
        }
    )
    one = one.sort_values(["kind", "value", "account_id"], kind="stable").reset_index(drop=True)
    one["n_accounts"] = one.groupby(["kind", "value"])["account_id"].transform("size")
    links = one[one["n_accounts"] >= 2].reset_index(drop=True)
    n_shared = len(links.drop_duplicates(["kind", "value"]))
    return IdentifierLinks(links[cols], n_accounts, n_shared)


# --------------------------------------------------------------------------- the rules


def _log1mexp_pow(pi: np.ndarray, n: np.ndarray | float) -> np.ndarray:
    """``(1 - pi) ** n - 1``, accurately for small ``pi``."""
    return np.asarray(np.expm1(n * np.log1p(-np.minimum(pi, 1.0 - 1e-15))))


def _pair_links(
    b: np.ndarray, c: np.ndarray, n_creators: int, pi: np.ndarray, n_hist: pd.Series, alpha: float
) -> np.ndarray:
    """Creator set of every creator: components of the creators sharing buyers beyond chance.

    ``b``/``c``: distinct (buyer, creator) codes of affiliate orders; ``pi``: each
    creator's share of all orders; ``n_hist``: buyers per number of orders.
    """
    if not len(b):
        return np.arange(n_creators)
    n_buyers = int(b.max()) + 1
    m = sparse.csr_matrix((np.ones(len(b), dtype=np.int64), (b, c)), shape=(n_buyers, n_creators))
    co = sparse.triu(m.T @ m, k=1).tocoo()
    i, j, x = co.row.astype(np.int64), co.col.astype(np.int64), co.data.astype(np.int64)
    if not len(x):
        return np.arange(n_creators)
    # expected shared buyers: sum over buyers with n orders of P(through both)
    lam = np.zeros(len(x))
    pi_i, pi_j = pi[i], pi[j]
    hist = n_hist[n_hist.index >= 2]
    for n_val, count in zip(
        hist.index.to_numpy(dtype=float), hist.to_numpy(dtype=float), strict=True
    ):
        a = _log1mexp_pow(pi_i, n_val)
        bb = _log1mexp_pow(pi_j, n_val)
        both = _log1mexp_pow(pi_i + pi_j, n_val)
        lam += count * np.maximum(both - a - bb, 0.0)
    p = stats.poisson.sf(x - 1, lam)
    keep = p <= alpha / len(x)
    g = sparse.csr_matrix(
        (np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n_creators, n_creators)
    )
    _, labels = connected_components(g, directed=False)
    return np.asarray(labels, dtype=np.int64)


def _fisher(logp: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Fisher's combination of ``k`` p-values whose logs sum to ``logp``."""
    out = np.ones(len(logp))
    has = k > 0
    out[has] = stats.chi2.sf(-2.0 * logp[has], 2 * k[has])
    return out


def _gamma_p(t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """P(sum of ``k`` unit exponentials >= ``t``): Fisher's method on ranks."""
    out = np.ones(len(t))
    has = k > 0
    out[has] = stats.gamma.sf(t[has], k[has])
    return out


def _rank_logs(
    values: np.ndarray,
    group: np.ndarray,
    reference: np.ndarray,
    *,
    upper: bool,
    own_in_reference: np.ndarray,
) -> np.ndarray:
    """``-log u`` of each value, ``u`` its rank among the ``reference`` values (the share
    at least as extreme, in the upper or lower tail, counting one more for itself).

    Where ``own_in_reference`` is true, the value's group's own values are in
    ``reference`` too and are taken out first (leave the group out)."""
    mk = np.sort(reference)
    if upper:
        at_least = len(mk) - np.searchsorted(mk, values, side="left")
    else:
        at_least = np.searchsorted(mk, values, side="right")
    df = pd.DataFrame({"g": group, "v": values})
    own = df.groupby("g")["v"].rank(method="max", ascending=not upper).to_numpy(dtype=np.int64)
    n_g = df.groupby("g")["v"].transform("size").to_numpy(dtype=np.int64)
    own = np.where(own_in_reference, own, 0)
    n_g = np.where(own_in_reference, n_g, 0)
    rest = np.maximum(at_least - own, 0)
    u = (rest + 1.0) / (np.maximum(len(mk) - n_g, 0) + 1.0)
    return np.asarray(-np.log(np.clip(u, 1e-300, 1.0)))


@dataclass
class _Groups:
    """Candidate groups, one row each (index = group number), and their members."""

    table: pd.DataFrame  # per group: counts, p-values
    buyers: pd.DataFrame  # group, buyer_id, k, n, captive, (flags)
    creators: pd.DataFrame  # group, creator_id
    sellers: pd.DataFrame  # group, seller_id
    rows: pd.DataFrame  # the groups' pbs rows, with group
    shared: pd.DataFrame  # group, account_id, kind, value, g, n_accounts, first_seen
    touching: pd.DataFrame  # s (set label), b (buyer code), k: every buyer touching a set
    set_of: np.ndarray  # the set label of each group
    set_pi: np.ndarray  # each set label's share of affiliate orders


@dataclass(frozen=True)
class _Rules:
    """The thresholds of :func:`find_rings` (see :func:`detect_commission_rings`)."""

    min_buyers: int
    alpha: float
    signal_alpha: float
    min_signals: int
    loyalty_shape: float


@dataclass(frozen=True)
class _View:
    """The market as the tests see it: aggregates, codes and the null model's shares."""

    agg: OrderAggregates
    created: pd.Series
    links: IdentifierLinks
    n_universe: int
    affiliations: pd.DataFrame | None
    bc: pd.DataFrame  # b, c, k: affiliate orders per buyer and creator (codes)
    bnames: pd.Index
    creators: pd.Index
    c_code: np.ndarray  # creator code of every pbs row
    n_of: pd.Series  # all orders per buyer
    n_aff_b: np.ndarray  # affiliate orders per buyer code
    n_all_b: np.ndarray  # all orders per buyer code
    pi: np.ndarray  # each creator's share of affiliate orders


def find_rings(
    agg: OrderAggregates,
    *,
    created: pd.Series,
    links: IdentifierLinks,
    n_universe: int,
    affiliations: pd.DataFrame | None,
    min_buyers: int,
    alpha: float,
    signal_alpha: float,
    min_signals: int,
    loyalty_shape: float,
) -> _Groups:
    """Creator sets, their buyer groups and every test's p-value (see the module).

    ``n_universe`` is the number of accounts of the market (the accounts table, and
    every account an order or an identifier names): a random group of ``k`` accounts
    holds each account of an identifier with chance ``k / n_universe``.

    Sets are first the components of the creators that share buyers beyond chance;
    then the groups that stand out (significant, or captive beyond chance) and
    that share a seller whose affiliate sales are mostly theirs, or an identifier
    most of whose accounts are theirs, are one ring ordering through several
    creators: their sets are joined and every test runs again on the joined sets.
    """
    pbs, buyers = agg.pbs, agg.buyers
    n_of = pd.Series(buyers["n"].to_numpy(dtype=np.int64), index=buyers["buyer_id"].to_numpy())
    # 1. creator sets. The null model draws each affiliate order's creator by the
    # creators' shares of affiliate orders (buyers who never use a link, and orders
    # that are not attributed, say nothing about creators)
    c_code, creators = pd.factorize(pbs["creator_id"], sort=True)
    b_code, bnames = pd.factorize(pbs["buyer_id"], sort=True)
    bc = pd.DataFrame({"b": b_code, "c": c_code, "k": pbs["n"].to_numpy(dtype=np.int64)})
    bc = bc.groupby(["b", "c"], sort=True)["k"].sum().reset_index()
    n_aff_b = np.bincount(bc["b"].to_numpy(), weights=bc["k"].to_numpy()).astype(np.int64)
    n_hist = pd.Series(n_aff_b).value_counts().sort_index()
    c_orders = np.bincount(bc["c"].to_numpy(), weights=bc["k"].to_numpy(), minlength=len(creators))
    pi = c_orders / max(int(n_aff_b.sum()), 1)
    labels = _pair_links(bc["b"].to_numpy(), bc["c"].to_numpy(), len(creators), pi, n_hist, alpha)
    view = _View(
        agg=agg,
        created=created,
        links=links,
        n_universe=n_universe,
        affiliations=affiliations,
        bc=bc,
        bnames=bnames,
        creators=creators,
        c_code=c_code,
        n_of=n_of,
        n_aff_b=n_aff_b,
        n_all_b=n_of.reindex(bnames).to_numpy(dtype=np.int64),
        pi=pi,
    )
    rules = _Rules(min_buyers, alpha, signal_alpha, min_signals, loyalty_shape)
    groups = _test_sets(view, labels, rules)
    joined = _join_sets(groups, view, labels, signal_alpha)
    if joined is None:
        return groups
    return _test_sets(view, joined, rules)


def _join_sets(
    groups: _Groups, view: _View, labels: np.ndarray, signal_alpha: float
) -> np.ndarray | None:
    """New creator-set labels with the parts of one ring joined (see :func:`find_rings`);
    None when nothing joins.

    Two groups are joined when one is reported,
    they are tied (a seller that is a main seller of both, an identifier that
    accounts of both hold, or a buyer of both), and their union's captive buyers are
    more significant than the two groups' taken apart, and beyond chance over the
    groups tested: a ring's buyers spread over
    its creators become captive of the union, while a ring joined with an ordinary
    creator only adds that creator's share of the market to the chance.
    """
    t = groups.table
    n = len(t)
    lp_cap = t["lp_captive"].to_numpy()
    cut = math.log(float(t["cut"].iloc[0])) if n else 0.0
    reported = t["reported"].to_numpy()
    out = reported | (lp_cap <= math.log(signal_alpha))
    if not out.any() or n < 2:
        return None
    ties: list[pd.DataFrame] = []
    # a seller that is a main seller of both
    ties.append(groups.sellers.rename(columns={"seller_id": "tie"}))
    # an identifier held by accounts of both
    if len(view.links.links):
        acc = pd.concat(
            [
                groups.buyers[["group", "buyer_id"]].rename(columns={"buyer_id": "account_id"}),
                groups.creators.rename(columns={"creator_id": "account_id"}),
                groups.sellers.rename(columns={"seller_id": "account_id"}),
            ]
        ).drop_duplicates()
        lk = acc.merge(view.links.links[["account_id", "kind", "value"]], on="account_id")
        ties.append(
            pd.DataFrame({"group": lk["group"], "tie": "\x00" + lk["kind"] + "\x00" + lk["value"]})
        )
    # a buyer of both
    gnum = pd.Series(np.arange(n), index=groups.set_of)
    touch = groups.touching[np.isin(groups.touching["s"].to_numpy(), groups.set_of)]
    ties.append(
        pd.DataFrame(
            {
                "group": gnum.reindex(touch["s"].to_numpy()).to_numpy(),
                "tie": "\x01" + touch["b"].astype(str),
            }
        )
    )
    tie = pd.concat(ties, ignore_index=True).drop_duplicates()
    tie = tie[tie.groupby("tie")["group"].transform("size") >= 2]
    if not len(tie):
        return None
    pairs = tie.merge(tie, on="tie")
    pairs = pairs[pairs["group_x"] < pairs["group_y"]]
    g1, g2 = pairs["group_x"].to_numpy(), pairs["group_y"].to_numpy()
    keep = out[g1] | out[g2]
    cand = pd.DataFrame({"g1": g1[keep], "g2": g2[keep]}).drop_duplicates()
    if not len(cand):
        return None
    cand = cand.reset_index(drop=True)
    s1, s2 = groups.set_of[cand["g1"].to_numpy()], groups.set_of[cand["g2"].to_numpy()]
    x, lam = _union_captive(groups, view, s1, s2)
    lp_u = _captive_logp(x, lam, float(t["loyalty_shape"].iloc[0]))
    parts_lp = lp_cap[cand["g1"].to_numpy()] + lp_cap[cand["g2"].to_numpy()]
    better = (lp_u - parts_lp <= math.log(signal_alpha)) & (lp_u <= cut)
    # or one reported and the other standing out too, and most of the sales of a seller
    # (or most of the accounts of an identifier) they share are theirs
    c1, c2 = cand["g1"].to_numpy(), cand["g2"].to_numpy()
    both = (reported[c1] & out[c2]) | (out[c1] & reported[c2])
    if both.any():
        dom = _dominated_ties(groups, view)
        if len(dom):
            key = pd.MultiIndex.from_frame(dom[["g1", "g2"]])
            better |= both & pd.MultiIndex.from_frame(cand[["g1", "g2"]]).isin(key)
    if not better.any():
        return None
    a, b = cand["g1"].to_numpy()[better], cand["g2"].to_numpy()[better]
    g = sparse.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, comp = connected_components(g, directed=False)
    # every creator of a group takes its component's smallest set label
    new = labels.copy()
    comp_label = pd.Series(groups.set_of).groupby(comp).transform("min").to_numpy()
    relabel = pd.Series(comp_label, index=groups.set_of)
    hit = np.isin(labels, groups.set_of)
    new[hit] = relabel.reindex(labels[hit]).to_numpy()
    if np.array_equal(new, labels):
        return None
    return new


#: Buyer rows of candidate unions handled at once when joining sets (memory only: the
#: unions are the same, taken a batch of pairs at a time).
_UNION_ROWS = 2_000_000


def _union_captive(
    groups: _Groups, view: _View, s1: np.ndarray, s2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Captive buyers of the union of sets ``s1[i]`` and ``s2[i]`` for every pair ``i``,
    and their expected number under the null model."""
    by_set = groups.touching.set_index("s").sort_index()
    sizes = by_set.index.value_counts()
    rows = sizes.reindex(s1, fill_value=0).to_numpy() + sizes.reindex(s2, fill_value=0).to_numpy()
    cum = np.cumsum(rows)
    x = np.zeros(len(s1), dtype=np.int64)
    lam = np.zeros(len(s1))
    n_b = max(len(view.bnames), 1)
    start = 0
    while start < len(s1):
        done = int(cum[start - 1]) if start else 0
        end = max(start + 1, int(np.searchsorted(cum, done + _UNION_ROWS, side="right")))
        idx = np.arange(start, end)
        parts = []
        for side in (s1[idx], s2[idx]):
            sel = by_set.loc[np.unique(side)].reset_index()
            sel = sel.merge(pd.DataFrame({"s": side, "pair": np.arange(len(idx))}), on="s")
            parts.append(sel[["pair", "b", "k"]])
        # a buyer's orders through both sets summed, on one int64 key per (pair, buyer)
        both_sides = pd.concat(parts)
        key = both_sides["pair"].to_numpy(dtype=np.int64) * n_b + both_sides["b"].to_numpy()
        uniq, inv = np.unique(key, return_inverse=True)
        k_sum = np.bincount(inv, weights=both_sides["k"].to_numpy(dtype=float))
        u = pd.DataFrame({"pair": uniq // n_b, "b": uniq % n_b, "k": k_sum.astype(np.int64)})
        u_pi = groups.set_pi[s1[idx]] + groups.set_pi[s2[idx]]
        u = _captive(view, u, u_pi[u["pair"].to_numpy()])
        pair_of = u["pair"].to_numpy()
        cap = u["captive"].to_numpy(dtype=float)
        x[idx] = np.bincount(pair_of, weights=cap, minlength=len(idx)).astype(np.int64)
        lam[idx] = np.bincount(
            pair_of, weights=u["chance"].to_numpy(dtype=float), minlength=len(idx)
        )
        start = end
    return x, lam


def _affiliation_lead(pairs: pd.DataFrame, created: pd.Series) -> pd.Series:
    """How soon before a pair's first attributed order its affiliation began: the time
    from ``since`` to the first order, as a share of the time from the younger account's
    creation to the first order (an affiliation of two accounts created last month
    cannot be older than a month); in seconds when no creation times are known."""
    first = pd.to_datetime(pairs["first_ts"], utc=True)
    lead = (first - pd.to_datetime(pairs["since"], utc=True)).dt.total_seconds()
    if not len(created):
        return lead
    cre = pd.to_datetime(created, utc=True)
    c = pd.to_datetime(cre.reindex(pairs["creator_id"]).to_numpy(), utc=True)
    s = pd.to_datetime(cre.reindex(pairs["seller_id"]).to_numpy(), utc=True)
    origin = pd.Series(np.maximum(c.to_numpy(), s.to_numpy()), index=pairs.index)
    life = (first - pd.to_datetime(origin, utc=True)).dt.total_seconds()
    out = lead / life.where(life > 0)
    return out.clip(lower=0.0)


def _captive_logp(x: np.ndarray, lam: np.ndarray, shape: float) -> np.ndarray:
    """log P(X >= x) for a count of captive repeat buyers whose expected value is
    ``lam`` times an ordinary creator's loyalty, a Gamma(``shape``) factor of mean 1:
    X is negative binomial (Poisson when ``shape`` is infinite)."""
    x = np.asarray(x, dtype=np.int64)
    lam = np.maximum(np.asarray(lam, dtype=float), 1e-300)
    if math.isinf(shape):
        lp = stats.poisson.logsf(x - 1, lam)
    else:
        lp = stats.nbinom.logsf(x - 1, shape, shape / (shape + lam))
    return np.where(x > 0, np.maximum(lp, math.log(_P_FLOOR)), 0.0)


def _dominated_ties(groups: _Groups, view: _View) -> pd.DataFrame:
    """Pairs of groups (``g1 < g2``) sharing a main seller most of whose affiliate sales
    are theirs, or an identifier most of whose accounts are theirs."""
    out: list[pd.DataFrame] = []
    rows = groups.rows.groupby(["seller_id", "group"])["n"].sum().reset_index()
    rows = rows.merge(groups.sellers, on=["group", "seller_id"])
    rows = rows[rows["seller_id"].duplicated(keep=False)]
    if len(rows):
        tot = view.agg.sellers.set_index("seller_id")["n"]
        sums = rows.groupby("seller_id")["n"].transform("sum").to_numpy()
        rows = rows[2 * sums > tot.reindex(rows["seller_id"]).to_numpy()]
        out.append(rows.rename(columns={"seller_id": "tie"})[["tie", "group"]])
    if len(view.links.links):
        acc = pd.concat(
            [
                groups.buyers[["group", "buyer_id"]].rename(columns={"buyer_id": "account_id"}),
                groups.creators.rename(columns={"creator_id": "account_id"}),
            ]
        ).drop_duplicates()
        lk = acc.merge(view.links.links[["account_id", "kind", "value", "n_accounts"]])
        per = lk.groupby(["kind", "value", "group"]).agg(
            g=("account_id", "size"), n=("n_accounts", "first")
        )
        per = per.reset_index()
        per = per[per.duplicated(["kind", "value"], keep=False)]
        if len(per):
            held = per.groupby(["kind", "value"])["g"].transform("sum").to_numpy()
            per = per[2 * held > per["n"].to_numpy()]
            key = "\x00" + per["kind"] + "\x00" + per["value"]
            out.append(pd.DataFrame({"tie": key, "group": per["group"]}))
    if not out:
        return pd.DataFrame({"g1": [], "g2": []}, dtype=np.int64)
    tie = pd.concat(out, ignore_index=True)
    pairs = tie.merge(tie, on="tie")
    pairs = pairs[pairs["group_x"] < pairs["group_y"]]
    return pd.DataFrame({"g1": pairs["group_x"], "g2": pairs["group_y"]}).drop_duplicates()


def _captive(view: _View, bs: pd.DataFrame, pi_s: np.ndarray) -> pd.DataFrame:
    """``bs`` (rows ``b``, ``k``: a buyer's affiliate orders through a set whose share of
    affiliate orders is ``pi_s``) with ``n`` (all the buyer's orders), ``member`` (more
    than half of them through the set), ``captive`` (a member with two or more) and
    ``chance`` (the chance, under the null model, that a buyer with its orders who
    orders through the set at all is captive)."""
    b = bs["b"].to_numpy()
    n_b = view.n_all_b[b]
    a_b = view.n_aff_b[b]
    k_b = bs["k"].to_numpy(dtype=np.int64)
    member = 2 * k_b > n_b
    captive = member & (k_b >= 2)
    # at least `need` of its affiliate orders through the set, given one is
    need = np.maximum(2, n_b // 2 + 1)
    touch = -_log1mexp_pow(pi_s, a_b)
    chance = np.where(
        a_b >= need, stats.binom.sf(need - 1, a_b, pi_s) / np.maximum(touch, 1e-300), 0.0
    )
    return bs.assign(n=n_b, member=member, captive=captive, chance=chance)


def _test_sets(view: _View, labels: np.ndarray, rules: _Rules) -> _Groups:
    """The groups of the creator sets ``labels`` and every test's p-value."""
    min_buyers, alpha, signal_alpha = rules.min_buyers, rules.alpha, rules.signal_alpha
    min_signals, loyalty_shape = rules.min_signals, rules.loyalty_shape
    agg, created, links = view.agg, view.created, view.links
    n_universe, affiliations = view.n_universe, view.affiliations
    pbs, buyers = agg.pbs, agg.buyers
    bc, bnames, creators, c_code = view.bc, view.bnames, view.creators, view.c_code
    pi = view.pi
    set_pi = np.bincount(labels, weights=pi)
    # 2. buyers of each set: more than half of all their orders through it
    bs = pd.DataFrame({"b": bc["b"].to_numpy(), "s": labels[bc["c"].to_numpy()], "k": bc["k"]})
    bs = bs.groupby(["s", "b"], sort=True)["k"].sum().reset_index()
    bs = _captive(view, bs, set_pi[bs["s"].to_numpy()])
    per = bs.groupby("s").agg(
        size=("member", "sum"), captive=("captive", "sum"), expected=("chance", "sum")
    )
    per = per[per["size"] >= min_buyers]
    keep_sets = per.index.to_numpy()
    mem = bs[bs["member"].to_numpy() & np.isin(bs["s"].to_numpy(), keep_sets)]
    # group numbers: sets in creator order (deterministic)
    first_creator = pd.Series(np.arange(len(labels))).groupby(labels).min()
    order = np.argsort(first_creator.reindex(keep_sets).to_numpy(), kind="stable")
    gnum = pd.Series(np.arange(len(keep_sets)), index=keep_sets[order])
    table = per.loc[keep_sets[order]].reset_index(drop=True)
    table.index.name = "group"
    mb = pd.DataFrame(
        {
            "group": gnum.reindex(mem["s"].to_numpy()).to_numpy(),
            "buyer_id": bnames[mem["b"].to_numpy()],
            "k": mem["k"].to_numpy(),
            "n": mem["n"].to_numpy(),
            "captive": mem["captive"].to_numpy(),
        }
    )
    cr = pd.DataFrame({"creator_id": creators.to_numpy(), "s": labels})
    cr = cr[cr["s"].isin(keep_sets)]
    cr = pd.DataFrame(
        {"group": gnum.reindex(cr["s"].to_numpy()).to_numpy(), "creator_id": cr["creator_id"]}
    )
    # the groups' orders (pbs rows): the members' rows through the set's creators
    rows = pbs.assign(s=labels[c_code])
    rows = rows.merge(
        pd.DataFrame({"s": mem["s"].to_numpy(), "buyer_id": bnames[mem["b"].to_numpy()]}),
        on=["s", "buyer_id"],
    )
    rows["group"] = gnum.reindex(rows["s"].to_numpy()).to_numpy()
    rows = rows.drop(columns="s").sort_values(["group", "creator_id", "seller_id", "buyer_id"])
    # the group's sellers: those with at least half a fair share of its orders (one
    # stray order of a buyer of the group elsewhere does not make a seller its)
    gsn = rows.groupby(["group", "seller_id"], sort=True)["n"].sum().reset_index()
    g_tot = gsn.groupby("group")["n"].transform("sum").to_numpy()
    g_cnt = gsn.groupby("group")["n"].transform("size").to_numpy()
    main = 2 * gsn["n"].to_numpy() * g_cnt >= g_tot
    sellers = gsn.loc[main, ["group", "seller_id"]].reset_index(drop=True)
    n_groups = len(table)
    g_idx = np.arange(n_groups)

    logp: dict[str, np.ndarray] = {}
    value: dict[str, np.ndarray] = {}
    base: dict[str, np.ndarray] = {}

    # captive repeat buyers, against the null model's count...
    x = table["captive"].to_numpy(dtype=np.int64)
    lam = table["expected"].to_numpy(dtype=float)
    raw = _captive_logp(x, lam, math.inf)
    # ... times an ordinary creator's loyalty: loyal customers are no ring
    logp["captive"] = _captive_logp(x, lam, loyalty_shape)
    value["captive"], base["captive"] = x.astype(float), lam
    # the suspects: groups whose buyers are captive beyond the null model's chance.
    # Every other test compares a group with the market *without* the suspects (and
    # without the group itself), so that rings, even when they are most of the market,
    # set no baseline
    suspect = raw <= math.log(signal_alpha)
    row_suspect = suspect[rows["group"].to_numpy()]

    # refunds and cancellations above the baseline
    go = rows.groupby("group").agg(n=("n", "sum"), n_bad=("n_bad", "sum"), cents=("cents", "sum"))
    go = go.reindex(g_idx, fill_value=0)
    n_o = go["n"].to_numpy(dtype=np.int64)
    k_o = go["n_bad"].to_numpy(dtype=np.int64)
    sus_n = int(rows["n"].to_numpy()[row_suspect].sum())
    sus_bad = int(rows["n_bad"].to_numpy()[row_suspect].sum())
    own_n = np.where(suspect, 0, n_o)
    own_bad = np.where(suspect, 0, k_o)
    ref_n = int(pbs["n"].sum()) - sus_n - own_n
    ref_bad = int(pbs["n_bad"].sum()) - sus_bad - own_bad
    r_market = np.clip(np.where(ref_n > 0, ref_bad / np.maximum(ref_n, 1), 0.0), 0.0, 1.0)
    # the group's sellers without the suspects' orders and the group's own, shrunk
    # towards the market's rate (prior strength: the median seller's orders)
    sel = agg.sellers.set_index("seller_id")
    strength = float(sel["n"].median()) if len(sel) else 0.0
    sus_sel = rows[row_suspect].groupby("seller_id")[["n", "n_bad"]].sum()
    gs = rows.groupby(["group", "seller_id"]).agg(n=("n", "sum"), n_bad=("n_bad", "sum"))
    gs = gs.reset_index()
    g_sus = suspect[gs["group"].to_numpy()]
    s_key = gs["seller_id"]
    s_n = (
        sel["n"].reindex(s_key).to_numpy(dtype=float)
        - sus_sel["n"].reindex(s_key, fill_value=0).to_numpy(dtype=float)
        - np.where(g_sus, 0, gs["n"].to_numpy())
    )
    s_bad = (
        sel["n_bad"].reindex(s_key).to_numpy(dtype=float)
        - sus_sel["n_bad"].reindex(s_key, fill_value=0).to_numpy(dtype=float)
        - np.where(g_sus, 0, gs["n_bad"].to_numpy())
    )
    gs = gs.assign(rest_n=np.maximum(s_n, 0.0), rest_bad=np.maximum(s_bad, 0.0))
    srest = gs.groupby("group")[["rest_n", "rest_bad"]].sum().reindex(g_idx, fill_value=0.0)
    r_sell = (srest["rest_bad"].to_numpy() + strength * r_market) / np.maximum(
        srest["rest_n"].to_numpy() + strength, 1e-12
    )
    r0 = np.maximum(r_market, r_sell)
    logp["bad"] = np.where(
        (k_o > 0) & (r0 < 1.0), stats.binom.logsf(k_o - 1, n_o, np.clip(r0, 1e-12, 1.0)), 0.0
    )
    value["bad"] = np.where(n_o > 0, k_o / np.maximum(n_o, 1), 0.0) - r0
    base["bad"] = r0

    # refunds later after the order than the market's other refunds
    ref = agg.refunds
    mb["late"] = False
    logp["late"] = np.zeros(n_groups)
    value["late"], base["late"] = np.zeros(n_groups), np.full(n_groups, 0.5)
    if len(ref):
        key = rows[["group", "creator_id", "seller_id", "buyer_id"]]
        gref = ref.merge(key, on=["creator_id", "seller_id", "buyer_id"], how="left")
        in_group = gref["group"].notna().to_numpy()
        gnum_ref = gref["group"].fillna(-1).to_numpy(dtype=np.int64)
        ref_ok = ~(in_group & suspect[np.maximum(gnum_ref, 0)])
        reference = gref["delay_s"].to_numpy(dtype=float)[ref_ok]
        mine = gref[in_group]
        if len(mine) and len(reference):
            mg = mine["group"].to_numpy(dtype=np.int64)
            gl = _rank_logs(
                mine["delay_s"].to_numpy(dtype=float),
                mg,
                reference,
                upper=True,
                own_in_reference=~suspect[mg],
            )
            med = float(np.median(reference))
            late = pd.DataFrame({"group": mg, "t": gl, "late": mine["delay_s"].to_numpy() > med})
            lt = late.groupby("group").agg(t=("t", "sum"), k=("t", "size"), late=("late", "mean"))
            lt = lt.reindex(g_idx).fillna({"t": 0.0, "k": 0, "late": 0.0})
            logp["late"] = np.log(
                np.maximum(_gamma_p(lt["t"].to_numpy(), lt["k"].to_numpy(dtype=np.int64)), _P_FLOOR)
            )
            value["late"] = lt["late"].to_numpy(dtype=float)
            late_b = late.assign(buyer_id=mine["buyer_id"].to_numpy())
            late_b = late_b[late_b["late"].to_numpy()][["group", "buyer_id"]].drop_duplicates()
            key_l = pd.MultiIndex.from_frame(late_b)
            mb["late"] = pd.MultiIndex.from_frame(mb[["group", "buyer_id"]]).isin(key_l)

    # shared identifiers among the group's accounts (buyers, creators, sellers)
    accs = pd.concat(
        [
            mb[["group", "buyer_id"]].rename(columns={"buyer_id": "account_id"}),
            cr.rename(columns={"creator_id": "account_id"}),
            sellers.rename(columns={"seller_id": "account_id"}),
        ],
        ignore_index=True,
    ).drop_duplicates()
    size_a = accs.groupby("group").size().reindex(g_idx, fill_value=0).to_numpy()
    shared_rows = pd.DataFrame(
        columns=["group", "account_id", "kind", "value", "g", "n_accounts", "first_seen"]
    )
    logp["shared"] = np.zeros(n_groups)
    value["shared"], base["shared"] = np.zeros(n_groups), np.zeros(n_groups)
    if len(links.links):
        lk = accs.merge(links.links, on="account_id")
        lk["g"] = lk.groupby(["group", "kind", "value"])["account_id"].transform("size")
        lk = lk[lk["g"] >= 2]
        shared_rows = lk.sort_values(["group", "kind", "value", "account_id"]).reset_index(
            drop=True
        )
        f = np.clip(size_a / max(n_universe, links.n_accounts, 1), 0.0, 1.0)
        if len(lk):
            one = lk.drop_duplicates(["group", "kind", "value"])
            fg = f[one["group"].to_numpy()]
            p_i = stats.binom.logsf(one["g"].to_numpy() - 1, one["n_accounts"].to_numpy(), fg)
            min_p = (
                pd.Series(p_i).groupby(one["group"].to_numpy()).min().reindex(g_idx, fill_value=0.0)
            )
            count = one.groupby("group").size().reindex(g_idx, fill_value=0).to_numpy()
            held = lk.groupby("group")["account_id"].nunique().reindex(g_idx, fill_value=0)
            value["shared"] = held.to_numpy() / np.maximum(size_a, 1)
        else:
            min_p = pd.Series(np.zeros(n_groups))
            count = np.zeros(n_groups, dtype=np.int64)
        # any identifier of the market held this much by the group (Bonferroni over them)
        lp_one = np.minimum(min_p.to_numpy() + math.log(max(links.n_shared, 1)), 0.0)
        # more identifiers shared within the group than expected
        sizes = links.links.drop_duplicates(["kind", "value"])["n_accounts"].value_counts()
        expect = np.zeros(n_groups)
        for n_i, cnt in zip(
            sizes.index.to_numpy(dtype=float), sizes.to_numpy(dtype=float), strict=True
        ):
            pz = np.power(1.0 - f, n_i)
            p1 = n_i * f * np.power(1.0 - f, n_i - 1)
            expect += cnt * np.maximum(1.0 - pz - p1, 0.0)
        lp_cnt = np.where(count > 0, stats.poisson.logsf(count - 1, expect), 0.0)
        logp["shared"] = np.minimum(np.minimum(lp_one, lp_cnt) + math.log(2.0), 0.0)
        base["shared"] = expect

    # new accounts: age at the first order, ranked low among the other buyers
    logp["new"] = np.zeros(n_groups)
    value["new"], base["new"] = np.zeros(n_groups), np.full(n_groups, 0.1)
    mb["young"] = False
    if len(created):
        # on datetime64 arrays (UTC): a timezone-aware column's plain to_numpy() is objects
        us = "datetime64[us]"
        cre = pd.to_datetime(created, utc=True).reindex(buyers["buyer_id"]).to_numpy(dtype=us)
        first_us = pd.to_datetime(buyers["first_ts"], utc=True).to_numpy(dtype=us)
        age_all = np.asarray((first_us - cre) / np.timedelta64(1, "s"), dtype=float)
        sus_buyers = mb["buyer_id"].to_numpy()[suspect[mb["group"].to_numpy()]]
        ok = ~np.isnan(age_all) & ~buyers["buyer_id"].isin(sus_buyers).to_numpy()
        if ok.any():
            age_of = pd.Series(age_all, index=buyers["buyer_id"].to_numpy())
            ga = age_of.reindex(mb["buyer_id"]).to_numpy()
            has = ~np.isnan(ga)
            mg = mb["group"].to_numpy()[has]
            reference = age_all[ok]
            tl = _rank_logs(ga[has], mg, reference, upper=False, own_in_reference=~suspect[mg])
            q10 = float(np.quantile(reference, 0.1))
            nt = pd.DataFrame({"group": mg, "t": tl, "young": ga[has] <= q10})
            agg_new = nt.groupby("group").agg(t=("t", "sum"), k=("t", "size"), y=("young", "mean"))
            agg_new = agg_new.reindex(g_idx).fillna({"t": 0.0, "k": 0, "y": 0.0})
            logp["new"] = np.log(
                np.maximum(
                    _gamma_p(agg_new["t"].to_numpy(), agg_new["k"].to_numpy(dtype=np.int64)),
                    _P_FLOOR,
                )
            )
            value["new"] = agg_new["y"].to_numpy(dtype=float)
            mb["young"] = np.nan_to_num(ga, nan=np.inf) <= q10

    # affiliations begun just before the sales, commission rates high for the market
    logp["recent"], logp["rate"] = np.zeros(n_groups), np.zeros(n_groups)
    value["recent"], value["rate"] = np.zeros(n_groups), np.zeros(n_groups)
    base["recent"], base["rate"] = np.full(n_groups, 0.1), np.full(n_groups, 0.1)
    if affiliations is not None and len(affiliations):
        af = affiliations.assign(
            creator_id=affiliations["creator_id"].astype(str),
            seller_id=affiliations["seller_id"].astype(str),
        ).drop_duplicates(["creator_id", "seller_id"])
        first = pbs.groupby(["creator_id", "seller_id"], sort=True)["first_ts"].min().reset_index()
        pairs = first.merge(af, on=["creator_id", "seller_id"])
        gp = rows[["group", "creator_id", "seller_id"]].drop_duplicates()
        sus_pairs = gp[suspect[gp["group"].to_numpy()]]
        pairs = pairs.merge(
            sus_pairs.assign(sus=True)[["creator_id", "seller_id", "sus"]],
            on=["creator_id", "seller_id"],
            how="left",
        )
        pairs["sus"] = pairs["sus"].fillna(False).astype(bool)
        gp = gp.merge(pairs, on=["creator_id", "seller_id"])
        for test, upper in (("recent", False), ("rate", True)):
            if test == "recent":
                if "since" not in pairs.columns:
                    continue
                mkt = _affiliation_lead(pairs, created)
                gv = _affiliation_lead(gp, created)
            else:
                if "commission_rate" not in pairs.columns:
                    continue
                mkt = pairs["commission_rate"].astype(float)
                gv = gp["commission_rate"].astype(float)
            mkt_v = mkt.to_numpy(dtype=float)
            mkt_v = mkt_v[~np.isnan(mkt_v) & ~pairs["sus"].to_numpy()]
            g_v = gv.to_numpy(dtype=float)
            has = ~np.isnan(g_v)
            if not len(mkt_v) or not has.any():
                continue
            mg = gp["group"].to_numpy()[has]
            tl = _rank_logs(g_v[has], mg, mkt_v, upper=upper, own_in_reference=~suspect[mg])
            q = float(np.quantile(mkt_v, 0.9 if upper else 0.1))
            flag = g_v[has] >= q if upper else g_v[has] <= q
            tt = pd.DataFrame({"group": mg, "t": tl, "f": flag})
            ta = tt.groupby("group").agg(t=("t", "sum"), k=("t", "size"), f=("f", "mean"))
            ta = ta.reindex(g_idx).fillna({"t": 0.0, "k": 0, "f": 0.0})
            logp[test] = np.log(
                np.maximum(_gamma_p(ta["t"].to_numpy(), ta["k"].to_numpy(dtype=np.int64)), _P_FLOOR)
            )
            value[test] = ta["f"].to_numpy(dtype=float)

    # decision: enough signals on their own, and together beyond chance over the groups
    lp = np.vstack([logp[t] for t in _TESTS])  # tests x groups
    lp = np.maximum(lp, math.log(_P_FLOOR))
    fired = lp <= math.log(signal_alpha)
    n_fired = fired.sum(axis=0)
    k_tests = np.full(n_groups, len(_TESTS))
    p_comb = _fisher(lp.sum(axis=0), k_tests)
    cut = alpha / max(n_groups, 1)
    table = table.assign(
        n_orders=n_o,
        n_bad=k_o,
        cents=go["cents"].to_numpy(),
        p=p_comb,
        cut=cut,
        n_fired=n_fired,
        reported=(n_fired >= min_signals) & (p_comb <= cut),
    )
    c_cents = pbs.groupby("creator_id")["cents"].sum()
    table["creator_cents"] = (
        cr.assign(c=c_cents.reindex(cr["creator_id"]).to_numpy())
        .groupby("group")["c"]
        .sum()
        .reindex(g_idx, fill_value=0)
        .to_numpy(dtype=np.int64)
    )
    table["tested"] = n_groups
    table["loyalty_shape"] = loyalty_shape
    for t in _TESTS:
        table[f"lp_{t}"] = logp[t]
        table[f"v_{t}"] = value[t]
        table[f"b_{t}"] = base[t]
    held_ids = set()
    if len(shared_rows):
        held_ids = set(zip(shared_rows["group"], shared_rows["account_id"], strict=True))
    mb["shares"] = [(g, a) in held_ids for g, a in zip(mb["group"], mb["buyer_id"], strict=True)]
    gb = rows.groupby(["group", "buyer_id"])[["n", "n_bad"]].sum().reset_index()
    mb = mb.merge(gb.rename(columns={"n": "n_here", "n_bad": "bad_here"}), on=["group", "buyer_id"])
    return _Groups(
        table=table,
        buyers=mb,
        creators=cr,
        sellers=sellers,
        rows=rows,
        shared=shared_rows,
        touching=bs[["s", "b", "k"]],
        set_of=keep_sets[order],
        set_pi=set_pi,
    )


def _score(p: float, cut: float) -> float:
    """A finding's score in [0.5, 1): 0.5 at the significance cut, nearer 1 the further
    beyond it (ten orders of magnitude beyond: about 0.82)."""
    z = max(0.0, math.log10(cut) - math.log10(max(p, _P_FLOOR)))
    return 1.0 - 0.5 * math.exp(-z / 10.0)


def _days(seconds: float) -> str:
    return f"{seconds / 86400.0:.1f}"


def build_findings(
    groups: _Groups,
    group_orders: pd.DataFrame,
    *,
    info: DetectorInfo,
    min_score: float,
    max_evidence: int,
    market_refund_delay_s: float | None,
) -> list[Finding]:
    """Findings of the reported groups: members, signals, evidence and explanation.

    ``group_orders`` holds the prepared orders (see :func:`_prepare`) of the reported
    groups' buyers through their creators, with a ``group`` column.
    """
    t = groups.table
    rep = t.index[t["reported"].to_numpy()]
    if not len(rep):
        return []
    buyers_of = dict(iter(groups.buyers[groups.buyers["group"].isin(rep)].groupby("group")))
    creators_of = dict(iter(groups.creators[groups.creators["group"].isin(rep)].groupby("group")))
    sellers_of = dict(iter(groups.sellers[groups.sellers["group"].isin(rep)].groupby("group")))
    shared_of = dict(iter(groups.shared[groups.shared["group"].isin(rep)].groupby("group")))
    orders_of = dict(iter(group_orders.groupby("group")))
    findings: list[Finding] = []
    for g in rep:
        row = t.loc[g]
        score = _score(float(row["p"]), float(row["cut"]))
        if score < min_score:
            continue
        creators = sorted(creators_of[g]["creator_id"].astype(str))
        sellers = sorted(sellers_of[g]["seller_id"].astype(str))
        # signals: the tests significant on their own, weighed by their share of the evidence
        lps = {k: float(row[f"lp_{k}"]) for k in _TESTS}
        fired = {k: v for k, v in lps.items() if v <= math.log(float(info.params["signal_alpha"]))}
        total = sum(-v for v in fired.values()) or 1.0
        signals = [
            Signal(
                name=SIGNALS[k],
                value=round(float(row[f"v_{k}"]), 6),
                threshold=round(float(row[f"b_{k}"]), 6),
                weight=round(-v / total, 6),
            )
            for k, v in fired.items()
        ]
        # the buyers: those with evidence of their own, for a signal the group shows
        bdf = buyers_of[g].sort_values("buyer_id")
        merchants = set(creators) | set(sellers)
        bdf = bdf[~bdf["buyer_id"].isin(merchants)]
        own = {
            "captive": bdf["captive"].to_numpy(dtype=bool),
            "new": bdf["young"].to_numpy(dtype=bool),
            "shared": bdf["shares"].to_numpy(dtype=bool),
            "bad": (2 * bdf["bad_here"] >= bdf["n_here"]).to_numpy(dtype=bool),
            "late": bdf["late"].to_numpy(dtype=bool),
        }
        evident = np.zeros(len(bdf), dtype=bool)
        for k, flag in own.items():
            if k in fired:
                evident |= flag
        bdf = bdf[evident]
        if len(bdf) < int(info.params["min_buyers"]):
            continue
        flags = np.sum([own[k][evident].astype(float) for k in own], axis=0) / len(own)
        members = [
            Member(account_id=str(b), role="buyer", score=round(score * (0.5 + 0.5 * f), 6))
            for b, f in zip(bdf["buyer_id"], flags, strict=True)
        ]
        members += [Member(account_id=c, role="creator", score=round(score, 6)) for c in creators]
        members += [
            Member(account_id=s, role="seller", score=round(score, 6))
            for s in sellers
            if s not in creators
        ]
        bens = [Beneficiary(account_id=c, role="creator") for c in creators]
        bens += [Beneficiary(account_id=s, role="seller") for s in sellers if s not in creators]
        # evidence: the orders of the buyers named
        go = orders_of[g]
        go = go[go["buyer_id"].isin(set(bdf["buyer_id"]))].sort_values(
            ["ts", "order_id"], kind="stable"
        )
        order_rows = [
            {
                "order_id": r.order_id,
                "buyer_id": r.buyer_id,
                "seller_id": r.seller_id,
                "creator_id": r.creator_id,
                "product_id": r.product_id,
                "amount": as_float(r.amount),
                "commission": None if _missing(r.commission) else as_float(r.commission),
                "status": r.status,
                "ts": iso(r.ts),
                "refunded_at": iso(r.refunded_at),
            }
            for r in go.head(max_evidence).itertuples(index=False)
        ]
        id_rows: list[dict[str, Any]] = []
        if g in shared_of:
            for (kind, val), ug in shared_of[g].groupby(["kind", "value"], sort=True):
                id_rows.append(
                    {
                        "kind": str(kind),
                        "value": str(val),
                        "accounts": sorted(ug["account_id"].astype(str))[:20],
                        "n_accounts": len(ug),
                        "n_accounts_total": int(ug["n_accounts"].iloc[0]),
                        "first_seen": iso(pd.to_datetime(ug["first_seen"], utc=True).min()),
                    }
                )
        id_rows.sort(key=lambda r: (-r["n_accounts"], r["kind"], r["value"]))
        n_orders = len(go)
        n_bad = int(go["bad"].sum())
        evidence = {
            "orders": order_rows,
            "identifiers": id_rows[:max_evidence],
            "counts": [
                {"source": "orders", "shown": len(order_rows), "total": n_orders},
                {
                    "source": "identifiers",
                    "shown": min(len(id_rows), max_evidence),
                    "total": len(id_rows),
                },
            ],
        }
        # explanation
        nb = len(bdf)
        gmv = int(_cents(go["amount"]).sum()) / 100.0
        ctot = int(row["creator_cents"])
        share = gmv * 100.0 / ctot if ctot > 0 else 0.0
        c_txt = (
            f"creator {creators[0]}'s"
            if len(creators) == 1
            else (f"creators {', '.join(creators)}'")
        )
        s_txt = f"seller {sellers[0]}" if len(sellers) == 1 else f"sellers {', '.join(sellers)}"
        bad_rate = n_bad / n_orders if n_orders else 0.0
        parts = [
            f"{nb} buyers ordered {n_orders} times ({gmv:,.2f}, {share:.0%} of the attributed "
            f"sales of these links) from {s_txt} through {c_txt} links"
        ]
        parts.append(
            f"{int(row['captive'])} of them ordered two or more times, most of all their orders "
            f"through these links ({float(row['expected']):.1f} expected by chance)"
        )
        parts.append(
            f"{bad_rate:.0%} of the orders were refunded or cancelled, against a baseline of "
            f"{float(row['b_bad']):.0%} for the sellers and the market"
        )
        rd = go[(go["status"] == "refunded") & go["refunded_at"].notna()]
        if len(rd) and market_refund_delay_s is not None:
            med = float((rd["refunded_at"] - rd["ts"]).dt.total_seconds().median())
            parts.append(
                f"refunds came a median {_days(med)} days after the order "
                f"(the market's: {_days(market_refund_delay_s)} days)"
            )
        if id_rows:
            strong: dict[str, int] = {}
            for r in id_rows:
                strong[r["kind"]] = strong.get(r["kind"], 0) + 1
            what = ", ".join(count_noun(v, k) for k, v in sorted(strong.items()))
            held = len({a for r in id_rows for a in r["accounts"]})
            parts.append(f"{held} of the accounts share {what} among themselves")
        young = int(bdf["young"].sum())
        if young:
            parts.append(
                f"{young} buyers were among the market's newest tenth of buyers at their "
                "first order"
            )
        for k, what in (
            ("recent", "of the affiliations began just before their first sales"),
            ("rate", "of the affiliations pay a commission rate in the market's top tenth"),
        ):
            if k in fired:
                parts.append(f"{float(row[f'v_{k}']):.0%} {what}")
        text = "; ".join(parts)
        text += (
            f". {len(signals)} independent signals agree (together p = {float(row['p']):.1e}, "
            f"{int(row['tested'])} groups tested)."
        )
        findings.append(
            Finding.build(
                kind=KIND,
                score=score,
                members=members,
                beneficiaries=bens,
                signals=signals,
                explanation=text,
                detector=info,
                evidence=evidence,
            )
        )
    return rank(findings)


def detect_commission_rings(
    orders: pd.DataFrame,
    *,
    accounts: pd.DataFrame | None = None,
    identifiers: pd.DataFrame | None = None,
    affiliations: pd.DataFrame | None = None,
    min_buyers: int = 2,
    min_score: float = 0.0,
    alpha: float = 0.01,
    signal_alpha: float = 0.01,
    min_signals: int = 2,
    loyalty_shape: float = 2.0,
    max_evidence: int = 50,
    as_of: datetime | None = None,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Find the creators, sellers and buyers that farm commission together.

    Parameters
    ----------
    orders : pandas.DataFrame
        Normalised ``orders`` table; orders with a ``creator_id`` are affiliate
        orders, and every order counts for a buyer's total.
    accounts : pandas.DataFrame, optional
        Normalised ``accounts`` table, for account ages.
    identifiers : pandas.DataFrame, optional
        Normalised ``identifiers`` table, for identifiers shared within a group.
    affiliations : pandas.DataFrame, optional
        Normalised ``affiliations`` table: commission rates (also to fill missing
        commissions) and when each affiliation began.
    min_buyers : int
        Smallest group of buyers tested (a ring needs two).
    min_score : float
        Findings scoring below this are left out (a reported group scores 0.5 at
        the significance cut, more the further beyond it).
    alpha : float
        Significance level over the whole market: creators are linked when they
        share buyers with a chance below ``alpha`` over the pairs that share any;
        a group is reported when its signals together have a chance below
        ``alpha`` over the groups tested.
    signal_alpha : float
        A signal counts as significant on its own below this chance.
    min_signals : int
        Signals that must be significant on their own (captive buyers alone are
        a creator's loyal customers).
    max_evidence : int
        At most this many rows per evidence list (totals under ``counts``).
    as_of : datetime, optional
        Recorded with the parameters; ages are taken at each buyer's first order.
    other_identifier_weight : float
        An identifier of a kind detectors do not know counts when this weight
        (the policy's ``mapping.other_identifier_weight``) is above zero.
    seed : int, numpy.random.Generator or None
        Accepted for the common detector signature; the method is deterministic.

    The parameters of version 1 (``buyer_min_score``, ``new_account_days``,
    ``concentration``, ``min_buyer_orders``, ``buyer_bad_rate``,
    ``max_accounts_per_identifier``, ``min_share_weight``, ``burst_minutes``,
    ``quick_refund_days``, ``merge_overlap``, ``min_baseline_orders``,
    ``default_bad_rate``) are gone: each was a fixed threshold that is now learnt
    from the market (see the module). A policy naming one is refused.

    Returns
    -------
    list of Finding
        Kind ``commission_ring``; members are the buyers (role ``buyer``), the
        creators (``creator``) and the sellers (``seller``); beneficiaries the
        creators and sellers. Ranked by score then id.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-03-01", tz="UTC")
    >>> rows = [dict(order_id=f"x{i}", buyer_id=f"u{i % 40}", seller_id=f"s{i % 7}",
    ...     creator_id=f"c{i % 11}", status="refunded" if i % 9 == 0 else "completed",
    ...     ts=t + pd.Timedelta(hours=i)) for i in range(200)]
    >>> rows += [dict(order_id=f"r{i}", buyer_id=f"b{i % 6}", seller_id="S",
    ...     creator_id="C", status="refunded" if i % 3 else "completed",
    ...     ts=t + pd.Timedelta(hours=i)) for i in range(18)]
    >>> orders = pd.DataFrame(rows).assign(product_id="p", amount=50.0)
    >>> found = detect_commission_rings(orders, seed=0)
    >>> [(f.kind, len(f.members)) for f in found]
    [('commission_ring', 8)]
    """
    _check(orders, min_buyers, min_score, alpha, signal_alpha)
    info = detector_info(
        {
            "min_buyers": min_buyers,
            "min_score": min_score,
            "alpha": alpha,
            "signal_alpha": signal_alpha,
            "min_signals": min_signals,
            "loyalty_shape": loyalty_shape,
            "max_evidence": max_evidence,
            "other_identifier_weight": other_identifier_weight,
        },
        as_of=as_of,
        seed=seed,
    )
    if not len(orders):
        return []
    o = _prepare(orders, affiliations)
    if not o["creator_id"].notna().any():
        return []
    named = [o["buyer_id"], o["seller_id"], o["creator_id"].dropna().astype(str)]
    if accounts is not None and len(accounts):
        named.append(accounts["account_id"].astype(str))
    if identifiers is not None and len(identifiers):
        named.append(identifiers["account_id"].dropna().astype(str))
    aff = o[o["creator_id"].notna()].assign(creator_id=lambda d: d["creator_id"].astype(str))

    def fetch(keys: pd.DataFrame) -> pd.DataFrame:
        return aff.merge(keys, on=["creator_id", "seller_id", "buyer_id"])

    return run_rules(
        order_aggregates(o),
        created=account_created(accounts),
        links=identifier_links(identifiers, other_identifier_weight),
        n_universe=int(pd.concat(named, ignore_index=True).nunique()),
        affiliations=affiliations,
        info=info,
        fetch_orders=fetch,
        max_evidence=max_evidence,
    )


def detector_info(params: dict[str, Any], *, as_of: Any, seed: Any) -> DetectorInfo:
    """The findings' detector record: the policy parameters (``max_evidence`` aside),
    the reference time and the seed."""
    recorded = {k: v for k, v in params.items() if k != "max_evidence"}
    recorded["as_of"] = iso(as_of) if as_of is not None else None
    recorded["seed"] = seed if isinstance(seed, int) else None
    return DetectorInfo(name=NAME, version=VERSION, params=recorded)


def run_rules(
    agg: OrderAggregates,
    *,
    created: pd.Series,
    links: IdentifierLinks,
    n_universe: int,
    affiliations: pd.DataFrame | None,
    info: DetectorInfo,
    fetch_orders: Callable[[pd.DataFrame], pd.DataFrame],
    max_evidence: int,
) -> list[Finding]:
    """Every rule, on the tables an engine computed: :func:`find_rings` then
    :func:`build_findings`. ``fetch_orders`` returns the prepared affiliate orders
    (see :func:`_prepare`) of the rows it is given (``group``, ``creator_id``,
    ``seller_id``, ``buyer_id``: the reported groups' orders), with ``group``."""
    p = info.params
    groups = find_rings(
        agg,
        created=created,
        links=links,
        n_universe=n_universe,
        affiliations=affiliations,
        min_buyers=int(p["min_buyers"]),
        alpha=float(p["alpha"]),
        signal_alpha=float(p["signal_alpha"]),
        min_signals=int(p["min_signals"]),
        loyalty_shape=float(p["loyalty_shape"]),
    )
    reported = groups.table.index[groups.table["reported"].to_numpy()]
    rep = groups.rows[groups.rows["group"].isin(reported)]
    if not len(rep):
        return []
    keys = rep[["group", "creator_id", "seller_id", "buyer_id"]].reset_index(drop=True)
    group_orders = fetch_orders(keys)
    group_orders = group_orders.sort_values(
        ["group", "ts", "order_id", "creator_id", "seller_id", "buyer_id"], kind="stable"
    ).reset_index(drop=True)
    delay = agg.refunds["delay_s"]
    return build_findings(
        groups,
        group_orders,
        info=info,
        min_score=float(p["min_score"]),
        max_evidence=max_evidence,
        market_refund_delay_s=float(delay.median()) if len(delay) else None,
    )
