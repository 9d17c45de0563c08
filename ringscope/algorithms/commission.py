"""Commission rings: sock-puppet buyers ordering through one creator's links for one seller.

A creator earns commission on orders placed through their affiliate links
(``orders.creator_id``); a seller pays it. In a commission ring the creator
and the seller collude with buyer accounts that order through the creator's
links and refund or cancel later, after the commission has accrued, or that
hide behind shared payment methods and devices.

For every (creator, seller) pair the detector selects candidate buyers on
features of the buyer itself: the buyer shares a device, payment method or
phone with another buyer of the pair or with the creator or seller; the
account was new at its first order; the buyer orders almost only through this
creator, and more than once; its orders here were mostly refunded or
cancelled. A buyer needs two of these. Candidates that share identifiers and
those that do not form separate groups; a group is then scored on
refund/cancel rate above the larger of the pair's rate without the group and
the marketplace rate, identifiers shared, new accounts, concentration, share
of the pair's attributed GMV, bursts of orders and refunds soon after the
order. Groups of one creator that overlap are merged, so a ring spread over a
few sellers comes out as one finding.

A flash sale (many unrelated buyers, one product, one minute, a normal refund
rate) and a popular creator's ordinary affiliate sales have no candidates in
numbers, or groups that score low: a refund alone is not enough.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, iso
from ringscope.algorithms.identifiers import (
    POOL_KINDS,
    account_created,
    as_float,
    count_noun,
    identifier_usage,
    kind_weight,
    weighted_score,
)
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, rank

NAME = "commission_rings"
VERSION = "1.0.0"
KIND = "commission_ring"

BAD_STATUSES = ("refunded", "cancelled")


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _check(orders: pd.DataFrame, min_buyers: int, min_score: float) -> None:
    missing = {"order_id", "buyer_id", "seller_id", "amount", "status", "ts"} - set(orders.columns)
    if missing:
        raise ValueError(f"orders lacks columns {sorted(missing)}")
    if min_buyers < 2:
        raise ValueError("min_buyers must be at least 2")
    if not 0.0 <= min_score <= 1.0:
        raise ValueError("min_score must be in [0, 1]")


def _prepare(orders: pd.DataFrame, affiliations: pd.DataFrame | None) -> pd.DataFrame:
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
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    out["refunded_at"] = pd.to_datetime(out["refunded_at"], utc=True)
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


def detect_commission_rings(
    orders: pd.DataFrame,
    *,
    accounts: pd.DataFrame | None = None,
    identifiers: pd.DataFrame | None = None,
    affiliations: pd.DataFrame | None = None,
    min_buyers: int = 4,
    min_score: float = 0.55,
    buyer_min_score: float = 0.45,
    new_account_days: float = 30.0,
    concentration: float = 0.8,
    min_buyer_orders: int = 2,
    buyer_bad_rate: float = 0.5,
    max_accounts_per_identifier: int = 30,
    min_share_weight: float = 0.8,
    burst_minutes: float = 60.0,
    quick_refund_days: float = 14.0,
    merge_overlap: float = 0.5,
    min_baseline_orders: int = 20,
    default_bad_rate: float = 0.1,
    max_evidence: int = 50,
    as_of: datetime | None = None,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
    seed: int | np.random.Generator | None = None,
) -> list[Finding]:
    """Find buyer groups that farm a creator's commission for a seller.

    Parameters
    ----------
    orders : pandas.DataFrame
        Normalised ``orders`` table; only orders with a ``creator_id`` count as
        affiliate orders, but every order counts for a buyer's concentration.
    accounts : pandas.DataFrame, optional
        Normalised ``accounts`` table, for account ages.
    identifiers : pandas.DataFrame, optional
        Normalised ``identifiers`` table, for identifiers shared among the
        buyers and with the creator or seller.
    affiliations : pandas.DataFrame, optional
        Normalised ``affiliations`` table; fills missing commissions from the
        commission rate.
    min_buyers : int
        Smallest group of buyers reported.
    min_score : float
        Groups scoring below this are not reported.
    buyer_min_score : float
        A buyer is a candidate when its own features weigh at least this much
        (shared identifier 0.35, orders almost only through this creator 0.25,
        new account 0.2, mostly refunded or cancelled 0.2): two features.
    new_account_days : float
        A buyer whose account was at most this many days old at its first
        order through the pair is new.
    concentration : float
        A buyer is concentrated when at least this share of all its orders
        went through this creator, with at least ``min_buyer_orders`` of them.
    min_buyer_orders : int
        See ``concentration``.
    buyer_bad_rate : float
        A buyer whose orders through the pair were refunded or cancelled at
        least this often counts as mostly refunding.
    max_accounts_per_identifier : int
        Identifiers used by more accounts than this are ignored.
    min_share_weight : float
        A buyer shares identifiers when the kind weights of the identifiers it
        shares with the pair's other accounts add up to at least this (one
        device, payment method or phone; an IP alone is not enough).
    burst_minutes : float
        An order within this many minutes of two other orders of the group is
        part of a burst.
    quick_refund_days : float
        Refunds within this many days of the order count as quick.
    merge_overlap : float
        Groups of the same creator whose buyers overlap at least this much
        (Jaccard) are merged into one finding.
    min_baseline_orders : int
        A baseline refund/cancel rate (the pair's other buyers, the rest of the
        marketplace) is used only when it rests on at least this many orders...
    default_bad_rate : float
        ... otherwise this rate is the baseline.
    max_evidence : int
        At most this many rows per evidence list (totals under ``counts``).
    as_of : datetime, optional
        Recorded with the parameters; ages are taken at each buyer's first order.
    other_identifier_weight : float
        Weight of a shared identifier of a kind detectors do not know (the
        policy's ``mapping.other_identifier_weight``).
    seed : int, numpy.random.Generator or None
        Accepted for the common detector signature; the method is deterministic.

    Returns
    -------
    list of Finding
        Kind ``commission_ring``; members are the buyers (role ``buyer``), the
        creator (``creator``) and the seller(s) (``seller``); beneficiaries the
        creator and seller(s). Ranked by score then id.

    References
    ----------
    .. [1] Edelman & Brandi, "Risk, Information, and Incentives in Online
       Affiliate Marketing", Journal of Marketing Research 52(1), 2015.
    .. [2] Hooi et al., "FRAUDAR: Bounding Graph Fraud in the Face of
       Camouflage", KDD 2016 (camouflage: rings that keep refunds low).

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-03-01", tz="UTC")
    >>> buyers = [f"b{i}" for i in range(6)]
    >>> orders = pd.DataFrame({
    ...     "order_id": [f"o{i}" for i in range(12)], "buyer_id": buyers * 2,
    ...     "seller_id": "s1", "product_id": "p1", "amount": 50.0,
    ...     "status": ["refunded"] * 9 + ["completed"] * 3,
    ...     "ts": [t + pd.Timedelta(hours=i) for i in range(12)],
    ...     "creator_id": "c1", "commission": 10.0})
    >>> acc = pd.DataFrame({"account_id": buyers, "roles": "buyer",
    ...     "created_at": t - pd.Timedelta(days=3)})
    >>> found = detect_commission_rings(orders, accounts=acc, seed=0)
    >>> [(f.kind, len(f.members)) for f in found]
    [('commission_ring', 8)]
    """
    _check(orders, min_buyers, min_score)
    params: dict[str, Any] = {
        "min_buyers": min_buyers,
        "min_score": min_score,
        "buyer_min_score": buyer_min_score,
        "new_account_days": new_account_days,
        "concentration": concentration,
        "min_buyer_orders": min_buyer_orders,
        "buyer_bad_rate": buyer_bad_rate,
        "max_accounts_per_identifier": max_accounts_per_identifier,
        "min_share_weight": min_share_weight,
        "burst_minutes": burst_minutes,
        "quick_refund_days": quick_refund_days,
        "merge_overlap": merge_overlap,
        "min_baseline_orders": min_baseline_orders,
        "default_bad_rate": default_bad_rate,
        "as_of": iso(as_of) if as_of is not None else None,
        "other_identifier_weight": other_identifier_weight,
        "seed": seed if isinstance(seed, int) else None,
    }
    info = DetectorInfo(name=NAME, version=VERSION, params=params)
    if not len(orders):
        return []
    o = _prepare(orders, affiliations)
    aff = o[o["creator_id"].notna()].copy()
    if not len(aff):
        return []
    aff["creator_id"] = aff["creator_id"].astype(str)
    market_n_bad = float(aff["bad"].sum())

    # per buyer: all orders, orders per creator
    buyer_total = o.groupby("buyer_id").size()
    # per (creator, seller, buyer)
    g = aff.groupby(["creator_id", "seller_id", "buyer_id"], sort=True)
    pb = g.agg(
        n=("order_id", "size"),
        gmv=("amount", "sum"),
        n_bad=("bad", "sum"),
        first_ts=("ts", "min"),
    ).reset_index()
    per_creator = aff.groupby(["buyer_id", "creator_id"]).size().rename("n_creator").reset_index()
    pb = pb.merge(per_creator, on=["buyer_id", "creator_id"], how="left")
    pb["n_total"] = buyer_total.reindex(pb["buyer_id"]).to_numpy()
    pb["conc"] = (pb["n_creator"] / pb["n_total"]) >= concentration
    pb["conc"] &= pb["n_creator"] >= min_buyer_orders
    created = account_created(accounts)
    cr = pd.Series(pd.to_datetime(created.reindex(pb["buyer_id"]).to_numpy(), utc=True))
    age = (pd.to_datetime(pb["first_ts"], utc=True) - cr.set_axis(pb.index)) / pd.Timedelta(days=1)
    pb["new"] = np.asarray(age.le(new_account_days).fillna(False), dtype=bool)
    pb["bad_buyer"] = (pb["n_bad"] / pb["n"]) >= buyer_bad_rate

    # identifiers shared within each pair (buyers, creator, seller)
    usage = identifier_usage(
        identifiers,
        max_accounts_per_identifier=max_accounts_per_identifier,
        other_weight=other_identifier_weight,
    )
    pb["shares"] = False
    pb["share_w"] = 0.0
    shared_links = pd.DataFrame(columns=["creator_id", "seller_id", "account_id", "ident", "kind"])
    if len(usage):
        pairs = pb[["creator_id", "seller_id"]].drop_duplicates()
        accs = pd.concat(
            [
                pb[["creator_id", "seller_id", "buyer_id"]].rename(
                    columns={"buyer_id": "account_id"}
                ),
                pairs.assign(account_id=pairs["creator_id"]),
                pairs.assign(account_id=pairs["seller_id"]),
            ],
            ignore_index=True,
        ).drop_duplicates()
        m = accs.merge(usage[["account_id", "ident", "kind"]], on="account_id")
        if len(m):
            cnt = m.groupby(["creator_id", "seller_id", "ident"])["account_id"].transform("size")
            m = m[cnt >= 2]
            shared_links = m[["creator_id", "seller_id", "account_id", "ident", "kind"]]
            weights = {k: kind_weight(k, None, other_identifier_weight) for k in set(m["kind"])}
            m = m.assign(w=m["kind"].map(weights).astype(float))
            sw = m.groupby(["creator_id", "seller_id", "account_id"])["w"].sum()
            key = pd.MultiIndex.from_frame(pb[["creator_id", "seller_id", "buyer_id"]])
            pb["share_w"] = sw.astype(float).reindex(key).fillna(0.0).to_numpy()
            pb["shares"] = pb["share_w"] >= min_share_weight

    pb["bscore"] = (
        0.35 * pb["shares"] + 0.25 * pb["conc"] + 0.2 * pb["new"] + 0.2 * pb["bad_buyer"]
    ).astype(float)
    cand = pb[pb["bscore"] >= buyer_min_score - 1e-9]
    if not len(cand):
        return []
    pair_tot = pb.groupby(["creator_id", "seller_id"]).agg(
        n=("n", "sum"), gmv=("gmv", "sum"), n_bad=("n_bad", "sum"), n_buyers=("buyer_id", "size")
    )

    # groups: per pair, sharers and non-sharers
    groups: list[dict[str, Any]] = []
    for (c, s, sh), gdf in cand.groupby(["creator_id", "seller_id", "shares"], sort=True):
        if len(gdf) < min_buyers:
            continue
        groups.append(
            {"creator": str(c), "sellers": {str(s)}, "buyers": set(gdf["buyer_id"]), "sh": bool(sh)}
        )
    if not groups:
        return []
    # merge overlapping groups of one creator
    merged: list[dict[str, Any]] = []
    for grp in groups:
        for other in merged:
            if other["creator"] != grp["creator"] or other["sh"] != grp["sh"]:
                continue
            inter = len(other["buyers"] & grp["buyers"])
            if inter / len(other["buyers"] | grp["buyers"]) >= merge_overlap:
                other["buyers"] |= grp["buyers"]
                other["sellers"] |= grp["sellers"]
                break
        else:
            merged.append(grp)

    findings: list[Finding] = []
    aff_idx = aff.set_index(["creator_id", "seller_id"]).sort_index()
    # each creator's rows, in table order: a group only looks at its creator's
    pb_of = dict(iter(pb.groupby("creator_id", sort=False)))
    links_of = dict(iter(shared_links.groupby("creator_id", sort=False)))
    no_links = shared_links.iloc[:0]
    usage_ident = usage["ident"].to_numpy() if len(usage) else np.zeros(0, dtype=np.int64)
    for grp in merged:
        creator: str = grp["creator"]
        sellers = sorted(grp["sellers"])
        buyers = sorted(grp["buyers"])
        pair_keys = [(creator, s) for s in sellers]
        po = aff_idx.loc[pair_keys].reset_index()
        in_grp = po["buyer_id"].isin(grp["buyers"])
        go = po[in_grp].sort_values(["ts", "order_id"], kind="stable")
        rest = po[~in_grp]
        n_orders = len(go)
        if n_orders == 0:
            continue
        bad_rate = float(go["bad"].mean())
        n_other = len(aff) - n_orders
        other_bad = (market_n_bad - float(go["bad"].sum())) / n_other if n_other else 0.0
        market_rate = other_bad if n_other >= min_baseline_orders else default_bad_rate
        rest_bad = float(rest["bad"].mean()) if len(rest) >= min_baseline_orders else market_rate
        base = max(rest_bad, market_rate)
        excess = max(0.0, bad_rate - base)
        cpb = pb_of[creator]
        gpb = cpb[cpb["seller_id"].isin(sellers) & cpb["buyer_id"].isin(grp["buyers"])]
        bstats = gpb.groupby("buyer_id").agg(
            new=("new", "max"),
            conc=("conc", "max"),
            shares=("shares", "max"),
            bscore=("bscore", "max"),
        )
        nb = len(buyers)
        share_sh = float(bstats["shares"].mean())
        share_new = float(bstats["new"].mean())
        share_conc = float(bstats["conc"].mean())
        pair_gmv = float(sum(pair_tot.loc[k, "gmv"] for k in pair_keys))
        gmv = float(go["amount"].sum())
        gmv_share = gmv / pair_gmv if pair_gmv > 0 else 0.0
        tsv = go["ts"].astype("int64").to_numpy() // 1_000_000  # seconds
        win = burst_minutes * 60.0
        if n_orders >= 3:
            lo = np.searchsorted(tsv, tsv - win, side="left")
            hi = np.searchsorted(tsv, tsv + win, side="right")
            burst = float(np.mean((hi - lo) >= 3))
        else:
            burst = 0.0
        ref = go[(go["status"] == "refunded") & go["refunded_at"].notna()]
        delay = (ref["refunded_at"] - ref["ts"]).dt.total_seconds() / 86400.0
        quick = float((delay <= quick_refund_days).mean()) if len(ref) else 0.0
        med_delay = float(delay.median()) if len(ref) else math.nan
        # sharing buyers per shared device/payment/phone: pools, not households
        accset = set(buyers) | {creator} | set(sellers)
        clinks = links_of.get(creator, no_links)
        sl = clinks[clinks["seller_id"].isin(sellers) & clinks["account_id"].isin(accset)]
        gl = sl.drop_duplicates(["account_id", "ident"])
        gl = gl[gl.groupby("ident")["account_id"].transform("size") >= 2]
        gl_strong = gl[gl["kind"].isin(POOL_KINDS)]
        n_instr = int(gl_strong["ident"].nunique())
        pool = gl_strong["account_id"].nunique() / n_instr if n_instr else 0.0
        parts = [
            ("excess_refund_cancel_rate", excess, 0.25, 0.2),
            ("shared_identifier_share", share_sh, 0.5, 0.2),
            ("accounts_per_shared_instrument", pool, 2.0, 0.1),
            ("concentrated_buyer_share", share_conc, 0.6, 0.15),
            ("pair_gmv_share", gmv_share, 0.3, 0.15),
            ("new_buyer_share", share_new, 0.5, 0.1),
            ("burst_order_share", burst, 0.5, 0.05),
            ("quick_refund_share", quick * bad_rate, 0.5, 0.05),
        ]
        score, signals = weighted_score(parts)
        if score < min_score:
            continue
        members = [
            Member(
                account_id=b,
                role="buyer",
                score=round(float(min(1.0, score * (0.5 + 0.5 * bstats.loc[b, "bscore"]))), 6),
            )
            for b in buyers
            if b != creator and b not in grp["sellers"]
        ]
        members.append(Member(account_id=creator, role="creator", score=round(score, 6)))
        members.extend(
            Member(account_id=s, role="seller", score=round(score, 6))
            for s in sellers
            if s != creator
        )
        bens = [Beneficiary(account_id=creator, role="creator")]
        bens.extend(Beneficiary(account_id=s, role="seller") for s in sellers)

        # evidence
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
        if len(sl):
            # usage is sorted by ident: the rows of these identifiers, in table order
            idents = np.unique(sl["ident"].to_numpy())
            lo = np.searchsorted(usage_ident, idents, side="left")
            hi = np.searchsorted(usage_ident, idents, side="right")
            at = np.sort(np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)]))
            u = usage.iloc[at]
            u = u[u["account_id"].isin(accset)]
            for _, ug in u.groupby("ident", sort=True):
                if len(ug) < 2:
                    continue
                id_rows.append(
                    {
                        "kind": str(ug["kind"].iloc[0]),
                        "value": str(ug["value"].iloc[0]),
                        "accounts": sorted(ug["account_id"].tolist())[:20],
                        "n_accounts": len(ug),
                        "n_accounts_total": int(ug["n_accounts"].iloc[0]),
                        "first_seen": iso(ug["first_seen"].min()),
                    }
                )
        id_rows.sort(key=lambda r: (-r["n_accounts"], r["kind"], r["value"]))
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
        strong = [r for r in id_rows if r["kind"] in POOL_KINDS]
        kinds: dict[str, int] = {}
        for r in strong or id_rows:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
        seller_txt = (
            f"seller {sellers[0]}" if len(sellers) == 1 else f"sellers {', '.join(sellers)}"
        )
        text = (
            f"{nb} buyers ({int(bstats['new'].sum())} created at most {new_account_days:g} days "
            f"before their first order) ordered {n_orders} times ({gmv:,.2f}, "
            f"{gmv_share:.0%} of the pair's attributed sales) from {seller_txt} through "
            f"creator {creator}'s links; {bad_rate:.0%} were refunded or cancelled"
        )
        if len(ref):
            text += f" (refunds a median {med_delay:.1f} days after the order)"
        text += (
            f", against {rest_bad:.0%} for the pair's other buyers and {market_rate:.0%} overall"
        )
        n_sh = int(bstats["shares"].sum())
        if n_sh:
            what = ", ".join(count_noun(v, k) for k, v in sorted(kinds.items()))
            text += f"; {n_sh} of them share {what} among themselves or with the creator/seller"
        text += f"; {int(bstats['conc'].sum())} order almost only through {creator}."
        findings.append(
            Finding.build(
                kind=KIND,
                score=score,
                members=members,
                beneficiaries=bens,
                signals=[*signals] if signals else [Signal("score", score, min_score, 1.0)],
                explanation=text,
                detector=info,
                evidence=evidence,
            )
        )
    return rank(findings)
