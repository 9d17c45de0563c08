"""Commission rings on Spark: the same findings as
:func:`ringscope.algorithms.commission.detect_commission_rings`.

Heavy steps on Spark: the buyer x creator x seller aggregation of affiliate
orders (orders, GMV, refunds and cancellations, first order per buyer), each
buyer's concentration on one creator, new accounts, the identifiers buyers
share with each other and with the creator or seller (hub-discounted usage,
joined per creator-seller pair), the buyer features and the candidate groups.
The few candidate groups are then merged per creator and scored on the driver
with the single-machine rules, over the orders and links of their pairs only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ringscope.algorithms import commission as local
from ringscope.algorithms.base import iso
from ringscope.algorithms.identifiers import (
    KIND_WEIGHTS,
    POOL_KINDS,
    as_float,
    count_noun,
    weighted_score,
)
from ringscope.engines.spark._params import keyword_defaults, with_defaults
from ringscope.engines.spark.identifiers import kind_weight_column
from ringscope.engines.spark.identifiers import usage as identifier_usage
from ringscope.engines.spark.tables import to_pandas
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, rank

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ringscope.engines.spark.tables import SparkTables

#: The local detector's policy parameters and their defaults.
DEFAULTS: dict[str, Any] = keyword_defaults(
    local.detect_commission_rings,
    inputs=("accounts", "identifiers", "affiliations", "as_of", "seed"),
)


def _prepare(orders: DataFrame, affiliations: DataFrame) -> DataFrame:
    """Orders as the local detector prepares them (commission filled from the rate)."""
    from pyspark.sql import functions as F

    o = orders.where(
        F.col("buyer_id").isNotNull() & F.col("seller_id").isNotNull() & F.col("ts").isNotNull()
    )
    rate = affiliations.groupBy("creator_id", "seller_id").agg(
        F.first("commission_rate").alias("commission_rate")
    )
    o = o.join(rate, ["creator_id", "seller_id"], "left")
    return o.select(
        "order_id",
        "buyer_id",
        "seller_id",
        "creator_id",
        F.coalesce(F.col("product_id"), F.lit("None")).alias("product_id"),
        F.coalesce(F.col("amount"), F.lit(0.0)).alias("amount"),
        "status",
        "ts",
        F.coalesce(F.col("commission"), F.col("amount") * F.col("commission_rate")).alias(
            "commission"
        ),
        "refunded_at",
        F.col("status").isin(*local.BAD_STATUSES).alias("bad"),
    )


def detect_commission_rings(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Commission-ring findings of ``tables``, computed on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns the same findings.
    """
    from pyspark.sql import functions as F

    p = with_defaults(params, DEFAULTS)
    if p["min_buyers"] < 2:
        raise ValueError("min_buyers must be at least 2")
    if not 0.0 <= p["min_score"] <= 1.0:
        raise ValueError("min_score must be in [0, 1]")
    info = DetectorInfo(
        name=local.NAME,
        version=local.VERSION,
        params={
            **{k: v for k, v in p.items() if k != "max_evidence"},
            "as_of": iso(as_of) if as_of is not None else None,
            "seed": seed if isinstance(seed, int) else None,
        },
    )
    o = _prepare(tables.orders, tables.affiliations).cache()
    aff = o.where(F.col("creator_id").isNotNull()).cache()
    totals = aff.agg(F.count("*").alias("n"), F.sum(F.col("bad").cast("double")).alias("bad"))
    t = totals.collect()[0]
    n_aff = int(t["n"])
    if n_aff == 0:
        o.unpersist()
        aff.unpersist()
        return []
    market_n_bad = float(t["bad"] or 0.0)

    buyer_total = o.groupBy("buyer_id").agg(F.count("*").alias("n_total"))
    pb = aff.groupBy("creator_id", "seller_id", "buyer_id").agg(
        F.count("*").alias("n"),
        F.sum("amount").alias("gmv"),
        F.sum(F.col("bad").cast("long")).alias("n_bad"),
        F.min("ts").alias("first_ts"),
    )
    per_creator = aff.groupBy("buyer_id", "creator_id").agg(F.count("*").alias("n_creator"))
    created = tables.accounts.groupBy("account_id").agg(F.first("created_at").alias("created"))
    pb = (
        pb.join(per_creator, ["buyer_id", "creator_id"], "left")
        .join(buyer_total, "buyer_id", "left")
        .join(created.withColumnRenamed("account_id", "buyer_id"), "buyer_id", "left")
    )
    age = (F.unix_micros("first_ts") - F.unix_micros("created")) / F.lit(86400e6)
    pb = pb.select(
        "creator_id",
        "seller_id",
        "buyer_id",
        "n",
        "gmv",
        "n_bad",
        "first_ts",
        (
            ((F.col("n_creator") / F.col("n_total")) >= p["concentration"])
            & (F.col("n_creator") >= p["min_buyer_orders"])
        ).alias("conc"),
        F.coalesce(age <= p["new_account_days"], F.lit(False)).alias("new"),
        ((F.col("n_bad") / F.col("n")) >= p["buyer_bad_rate"]).alias("bad_buyer"),
    )
    # identifiers shared within each pair (buyers, creator, seller)
    use = identifier_usage(
        tables.identifiers,
        max_accounts_per_identifier=p["max_accounts_per_identifier"],
        other_weight=p["other_identifier_weight"],
    )
    pairs = pb.select("creator_id", "seller_id").distinct()
    accs = (
        pb.select("creator_id", "seller_id", F.col("buyer_id").alias("account_id"))
        .union(pairs.select("creator_id", "seller_id", F.col("creator_id").alias("account_id")))
        .union(pairs.select("creator_id", "seller_id", F.col("seller_id").alias("account_id")))
        .distinct()
    )
    from pyspark.sql import Window

    m = accs.join(use.select("account_id", "kind", "value"), "account_id")
    m = m.withColumn(
        "cnt", F.count("*").over(Window.partitionBy("creator_id", "seller_id", "kind", "value"))
    ).where(F.col("cnt") >= 2)
    shared_links = m.select("creator_id", "seller_id", "account_id", "kind", "value").cache()
    sw = shared_links.groupBy("creator_id", "seller_id", "account_id").agg(
        F.sum(kind_weight_column(F.col("kind"), KIND_WEIGHTS, p["other_identifier_weight"])).alias(
            "share_w"
        )
    )
    pb = pb.join(
        sw.withColumnRenamed("account_id", "buyer_id"),
        ["creator_id", "seller_id", "buyer_id"],
        "left",
    ).withColumn("share_w", F.coalesce(F.col("share_w"), F.lit(0.0)))
    pb = pb.withColumn("shares", F.col("share_w") >= p["min_share_weight"])
    b = F.col
    pb = pb.withColumn(
        "bscore",
        F.lit(0.35) * b("shares").cast("double")
        + F.lit(0.25) * b("conc").cast("double")
        + F.lit(0.2) * b("new").cast("double")
        + F.lit(0.2) * b("bad_buyer").cast("double"),
    ).cache()
    cand = pb.where(F.col("bscore") >= p["buyer_min_score"] - 1e-9)
    sizes = cand.groupBy("creator_id", "seller_id", "shares").agg(F.count("*").alias("k"))
    big = sizes.where(F.col("k") >= p["min_buyers"]).drop("k")
    cand_rows = to_pandas(
        cand.join(big, ["creator_id", "seller_id", "shares"]).select(
            "creator_id", "seller_id", "shares", "buyer_id"
        )
    )
    if not len(cand_rows):
        for frame in (o, aff, shared_links, pb):
            frame.unpersist()
        return []
    groups: list[dict[str, Any]] = []
    for (c, s, sh), gdf in cand_rows.groupby(["creator_id", "seller_id", "shares"], sort=True):
        groups.append(
            {"creator": str(c), "sellers": {str(s)}, "buyers": set(gdf["buyer_id"]), "sh": bool(sh)}
        )
    merged: list[dict[str, Any]] = []
    for grp in groups:
        for other in merged:
            if other["creator"] != grp["creator"] or other["sh"] != grp["sh"]:
                continue
            inter = len(other["buyers"] & grp["buyers"])
            if inter / len(other["buyers"] | grp["buyers"]) >= p["merge_overlap"]:
                other["buyers"] |= grp["buyers"]
                other["sellers"] |= grp["sellers"]
                break
        else:
            merged.append(grp)
    # the orders, buyer rows and links of the candidate pairs, to the driver
    keys = sorted({(g["creator"], s) for g in merged for s in g["sellers"]})
    spark = tables.orders.sparkSession
    kdf = F.broadcast(spark.createDataFrame(keys, "creator_id string, seller_id string"))
    aff_sub = to_pandas(aff.join(kdf, ["creator_id", "seller_id"]))
    pb_sub = to_pandas(pb.join(kdf, ["creator_id", "seller_id"]))
    links_sub = to_pandas(shared_links.join(kdf, ["creator_id", "seller_id"]))
    idents = links_sub[["kind", "value"]].drop_duplicates()
    use_sub = (
        to_pandas(use.join(F.broadcast(spark.createDataFrame(idents)), ["kind", "value"]))
        if len(idents)
        else pd.DataFrame(columns=["account_id", "kind", "value", "n_accounts", "first_seen"])
    )
    for frame in (o, aff, shared_links, pb):
        frame.unpersist()
    return score_groups(
        merged,
        aff=aff_sub,
        n_aff=n_aff,
        market_n_bad=market_n_bad,
        pb=pb_sub,
        shared_links=links_sub,
        usage=use_sub,
        params=p,
        info=info,
    )


def score_groups(
    merged: list[dict[str, Any]],
    *,
    aff: pd.DataFrame,
    n_aff: int,
    market_n_bad: float,
    pb: pd.DataFrame,
    shared_links: pd.DataFrame,
    usage: pd.DataFrame,
    params: dict[str, Any],
    info: DetectorInfo,
) -> list[Finding]:
    """Score, explain and evidence the merged candidate groups, as the local detector does.

    ``aff``, ``pb`` and ``shared_links`` hold the affiliate orders, buyer rows
    and shared-identifier links of the groups' creator-seller pairs;
    ``n_aff`` and ``market_n_bad`` count the whole marketplace's affiliate
    orders and those refunded or cancelled.
    """
    p = params
    for col in ("ts", "refunded_at"):
        aff[col] = pd.to_datetime(aff[col], utc=True)
    shared_links = shared_links.assign(
        ident=shared_links["kind"].astype(str) + "\x00" + shared_links["value"].astype(str)
    )
    usage = usage.assign(ident=usage["kind"].astype(str) + "\x00" + usage["value"].astype(str))
    pair_tot = pb.groupby(["creator_id", "seller_id"]).agg(gmv=("gmv", "sum"))
    aff_idx = aff.set_index(["creator_id", "seller_id"]).sort_index()
    findings: list[Finding] = []
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
        n_other = n_aff - n_orders
        other_bad = (market_n_bad - float(go["bad"].sum())) / n_other if n_other else 0.0
        market_rate = other_bad if n_other >= p["min_baseline_orders"] else p["default_bad_rate"]
        rest_bad = (
            float(rest["bad"].mean()) if len(rest) >= p["min_baseline_orders"] else market_rate
        )
        base = max(rest_bad, market_rate)
        excess = max(0.0, bad_rate - base)
        gpb = pb[
            (pb["creator_id"] == creator)
            & pb["seller_id"].isin(sellers)
            & pb["buyer_id"].isin(grp["buyers"])
        ]
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
        tsv = go["ts"].astype("datetime64[us, UTC]").astype("int64").to_numpy() // 1_000_000
        win = p["burst_minutes"] * 60.0
        if n_orders >= 3:
            lo = np.searchsorted(tsv, tsv - win, side="left")
            hi = np.searchsorted(tsv, tsv + win, side="right")
            burst = float(np.mean((hi - lo) >= 3))
        else:
            burst = 0.0
        ref = go[(go["status"] == "refunded") & go["refunded_at"].notna()]
        delay = (ref["refunded_at"] - ref["ts"]).dt.total_seconds() / 86400.0
        quick = float((delay <= p["quick_refund_days"]).mean()) if len(ref) else 0.0
        med_delay = float(delay.median()) if len(ref) else math.nan
        accset = set(buyers) | {creator} | set(sellers)
        gl = shared_links[
            (shared_links["creator_id"] == creator)
            & shared_links["seller_id"].isin(sellers)
            & shared_links["account_id"].isin(accset)
        ].drop_duplicates(["account_id", "ident"])
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
        if score < p["min_score"]:
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
        order_rows = [
            {
                "order_id": r.order_id,
                "buyer_id": r.buyer_id,
                "seller_id": r.seller_id,
                "creator_id": r.creator_id,
                "product_id": r.product_id,
                "amount": as_float(r.amount),
                "commission": None if local._missing(r.commission) else as_float(r.commission),
                "status": r.status,
                "ts": iso(r.ts),
                "refunded_at": iso(r.refunded_at),
            }
            for r in go.head(p["max_evidence"]).itertuples(index=False)
        ]
        sl = shared_links[
            (shared_links["creator_id"] == creator)
            & shared_links["seller_id"].isin(sellers)
            & shared_links["account_id"].isin(accset)
        ]
        id_rows: list[dict[str, Any]] = []
        if len(sl):
            u = usage[usage["ident"].isin(sl["ident"].unique()) & usage["account_id"].isin(accset)]
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
                        "first_seen": iso(pd.to_datetime(ug["first_seen"], utc=True).min()),
                    }
                )
        id_rows.sort(key=lambda r: (-r["n_accounts"], r["kind"], r["value"]))
        evidence = {
            "orders": order_rows,
            "identifiers": id_rows[: p["max_evidence"]],
            "counts": [
                {"source": "orders", "shown": len(order_rows), "total": n_orders},
                {
                    "source": "identifiers",
                    "shown": min(len(id_rows), p["max_evidence"]),
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
            f"{nb} buyers ({int(bstats['new'].sum())} created at most "
            f"{p['new_account_days']:g} days before their first order) ordered {n_orders} "
            f"times ({gmv:,.2f}, {gmv_share:.0%} of the pair's attributed sales) from "
            f"{seller_txt} through creator {creator}'s links; {bad_rate:.0%} were refunded "
            "or cancelled"
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
                kind=local.KIND,
                score=score,
                members=members,
                beneficiaries=bens,
                signals=[*signals] if signals else [Signal("score", score, p["min_score"], 1.0)],
                explanation=text,
                detector=info,
                evidence=evidence,
            )
        )
    return rank(findings)
