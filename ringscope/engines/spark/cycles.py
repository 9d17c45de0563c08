"""Money cycles on Spark: the findings of
:func:`ringscope.algorithms.cycles.detect_money_cycles`.

The heavy steps run on Spark: every order becomes its transfers (buyer ->
seller, and seller -> creator for a commission), the transfers are counted
and summed per pair of accounts, and the median order amount is taken. Only
the counted pairs (one row per pair that carries ``min_edge_orders``
transfers and ``min_amount``) come to the driver, where hubs are left out and
the strongly connected components found
(:func:`~ringscope.algorithms.cycles.candidate_edges`). The transfers paid
out by the few accounts of candidate components are then read back from
Spark, and the cycles enumerated and scored with the local code
(:func:`~ringscope.algorithms.cycles.cycle_findings`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from ringscope.algorithms import cycles as local
from ringscope.algorithms.base import iso
from ringscope.algorithms.identifiers import account_created
from ringscope.engines.spark._params import keyword_defaults, with_defaults
from ringscope.engines.spark.tables import to_pandas
from ringscope.model import DetectorInfo, Finding

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ringscope.engines.spark.tables import SparkTables

#: The local detector's policy parameters and their defaults.
DEFAULTS: dict[str, Any] = keyword_defaults(
    local.detect_money_cycles, inputs=("accounts", "as_of", "seed")
)


def money_transfers(orders: DataFrame, *, statuses: tuple[str, ...]) -> DataFrame:
    """:func:`ringscope.algorithms.cycles.money_transfers` on Spark (unordered)."""
    from pyspark.sql import functions as F

    o = orders.where(
        F.col("status").isin(*statuses)
        & F.col("buyer_id").isNotNull()
        & F.col("seller_id").isNotNull()
    )
    sale = o.select(
        F.col("buyer_id").alias("src"),
        F.col("seller_id").alias("dst"),
        F.nanvl(F.coalesce(F.col("amount"), F.lit(0.0)), F.lit(0.0)).alias("amount"),
        "ts",
        "order_id",
        F.lit("order").alias("via"),
    )
    # Spark orders NaN above every number: a NaN commission is no payment
    pays = F.col("creator_id").isNotNull() & ~F.isnan("commission") & (F.col("commission") > 0)
    paid = o.where(pays).select(
        F.col("seller_id").alias("src"),
        F.col("creator_id").alias("dst"),
        F.col("commission").alias("amount"),
        "ts",
        "order_id",
        F.lit("commission").alias("via"),
    )
    return sale.unionByName(paid).where(F.col("src") != F.col("dst"))


def detect_money_cycles(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Money-cycle findings of ``tables``, with the money graph aggregated on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns the same findings.
    """
    from pyspark.sql import functions as F

    p = with_defaults(params, DEFAULTS)
    local._check(p["min_length"], p["max_length"], p["min_rounds"], p["min_score"])
    statuses = tuple(p["statuses"])
    ref = pd.Timestamp(as_of if as_of is not None else tables.reference_time())
    now = ref.tz_localize("UTC") if ref.tzinfo is None else ref.tz_convert("UTC")
    info = DetectorInfo(
        name=local.NAME,
        version=local.VERSION,
        params={
            **{k: p[k] for k in DEFAULTS if k != "max_evidence"},
            "statuses": list(statuses),
            "as_of": iso(as_of) if as_of is not None else None,
            "seed": seed if isinstance(seed, int) else None,
        },
    )
    tr = money_transfers(tables.orders, statuses=statuses).cache()
    try:
        edges = to_pandas(
            tr.groupBy("src", "dst")
            .agg(F.count("*").alias("cnt"), F.sum("amount").alias("tot"))
            .where((F.col("cnt") >= p["min_edge_orders"]) & (F.col("tot") >= p["min_amount"]))
        )
        cand = local.candidate_edges(
            edges,
            min_length=p["min_length"],
            min_amount=p["min_amount"],
            min_edge_orders=p["min_edge_orders"],
            max_degree=p["max_degree"],
            max_component_size=p["max_component_size"],
        )
        if not len(cand):
            return []
        # the median as pandas takes it: the mean of the two middle values
        typical = tr.where(F.col("via") == "order").agg(F.percentile("amount", 0.5)).first()
        spark = tr.sparkSession
        payers = F.broadcast(
            spark.createDataFrame([(a,) for a in sorted(set(cand["src"]))], "src string")
        )
        paid = to_pandas(tr.join(payers, "src", "left_semi"))
    finally:
        tr.unpersist()
    paid = paid.sort_values(["ts", "order_id", "via"], kind="stable").reset_index(drop=True)
    paid = paid[["src", "dst", "amount", "ts", "order_id", "via"]]
    members = sorted(set(cand["src"]) | set(cand["dst"]))
    accounts = to_pandas(
        tables.accounts.select("account_id", "created_at").where(F.col("account_id").isin(members))
    )
    return local.cycle_findings(
        paid,
        cand,
        typical=math.nan if typical is None or typical[0] is None else float(typical[0]),
        now=now,
        created=account_created(accounts),
        know_accounts=not tables.accounts.isEmpty(),
        info=info,
        min_length=p["min_length"],
        max_length=p["max_length"],
        min_rounds=p["min_rounds"],
        max_span_days=p["max_span_days"],
        max_cycles=p["max_cycles"],
        new_account_days=p["new_account_days"],
        min_score=p["min_score"],
        max_evidence=p["max_evidence"],
    )
