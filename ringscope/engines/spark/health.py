"""The ecosystem health's sums on Spark (:class:`~ringscope.algorithms.health.HealthCounts`).

The health figures read the whole engagements and orders tables; here they are summed
on the cluster (one row per creator comes to the driver, and the first activity of the
flagged accounts only), and :func:`ringscope.algorithms.health.ecosystem_health` makes
the same figures of them as of the pandas tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from ringscope.algorithms.health import HealthCounts
from ringscope.engines.spark.tables import SparkTables, to_pandas

if TYPE_CHECKING:
    from pyspark.sql import Column


def _number(name: str) -> Column:
    """A money column as ``order_amounts`` reads it: missing or not a number is 0."""
    from pyspark.sql import functions as F

    c = F.col(name).cast("double")
    return F.when(c.isNull() | F.isnan(c), F.lit(0.0)).otherwise(c)


def health_counts(tables: SparkTables, flagged: Iterable[str]) -> HealthCounts:
    """:class:`HealthCounts` of ``tables`` for the ``flagged`` accounts, summed on Spark."""
    from pyspark.sql import functions as F

    spark = tables.orders.sparkSession
    who = F.broadcast(
        spark.createDataFrame([(a, 1) for a in sorted(set(flagged))], "account_id string, _f int")
    )
    ev = tables.engagements.select("account_id", "stream_id", "ts").join(who, "account_id", "left")
    ev = ev.withColumn("_f", F.coalesce(F.col("_f"), F.lit(0)))
    totals = ev.agg(F.count(F.lit(1)).alias("n"), F.sum("_f").alias("flagged")).collect()[0]
    per_creator = (
        ev.join(tables.streams.select("stream_id", "creator_id"), "stream_id")
        .groupBy("creator_id")
        .agg(F.count(F.lit(1)).alias("events"), F.sum("_f").alias("flagged_events"))
    )
    creator_events = to_pandas(per_creator).set_index("creator_id").astype("int64")

    o = tables.orders.join(
        who.withColumnRenamed("account_id", "buyer_id"), "buyer_id", "left"
    ).select(
        "buyer_id",
        "creator_id",
        "ts",
        F.coalesce(F.col("_f"), F.lit(0)).alias("_f"),
        _number("amount").alias("amount"),
        _number("commission").alias("commission"),
        F.when(
            F.col("refunded_at").isNotNull() | (F.lower(F.col("status")) == "refunded"),
            _number("amount"),
        )
        .otherwise(F.lit(0.0))
        .alias("refunded"),
    )
    mine = o.where(F.col("_f") == 1)

    def of_flagged(column: str) -> Column:
        return F.sum(F.when(F.col("_f") == 1, F.col(column)).otherwise(F.lit(0.0)))

    # every order and the flagged buyers' money in one pass over the orders
    money = o.agg(
        F.count(F.lit(1)).alias("all"),
        F.sum("_f").alias("n"),
        of_flagged("amount").alias("gmv"),
        of_flagged("refunded").alias("refunded"),
        of_flagged("commission").alias("commission"),
    ).collect()[0]
    per_creator_orders = (
        o.where(F.col("creator_id").isNotNull())
        .groupBy("creator_id")
        .agg(
            F.sum("amount").alias("amount"),
            of_flagged("amount").alias("flagged_amount"),
            F.sum("refunded").alias("refunded"),
        )
    )
    creator_orders = to_pandas(per_creator_orders).set_index("creator_id")
    first = (
        ev.where(F.col("_f") == 1)
        .select("account_id", "ts")
        .union(mine.select(F.col("buyer_id").alias("account_id"), "ts"))
        .groupBy("account_id")
        .agg(F.min("ts").alias("ts"))
    )
    first_seen = {
        str(r["account_id"]): pd.Timestamp(r["ts"])
        for r in to_pandas(first).to_dict("records")
        if pd.notna(r["ts"])
    }
    return HealthCounts(
        events=int(totals["n"]),
        events_flagged=int(totals["flagged"] or 0),
        orders=int(money["all"]),
        orders_flagged=int(money["n"] or 0),
        gmv_flagged=float(money["gmv"] or 0.0),
        gmv_refunded_flagged=float(money["refunded"] or 0.0),
        commission_flagged=float(money["commission"] or 0.0),
        creator_events=creator_events,
        creator_orders=creator_orders,
        first_seen=first_seen,
    )
