"""Commission rings on Spark: the same findings as
:func:`ringscope.algorithms.commission.detect_commission_rings`.

The heavy steps run on Spark: orders prepared as the local detector prepares
them (commission filled from the affiliation's rate), aggregated per buyer and
per (creator, seller, buyer), the refund delays, the identifiers held by two or
more accounts, and the number of accounts of the market. The aggregates go to
the driver, where :func:`ringscope.algorithms.commission.run_rules` applies every
rule, as the local detector does; the reported groups' orders are fetched from
Spark for their evidence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from ringscope.algorithms import commission as local
from ringscope.algorithms.identifiers import account_created
from ringscope.engines.spark._params import keyword_defaults, with_defaults
from ringscope.engines.spark.tables import to_pandas
from ringscope.model import Finding

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
    amount = F.coalesce(F.col("amount"), F.lit(0.0))
    commission = F.when(F.isnan("commission"), F.lit(None)).otherwise(F.col("commission"))
    return o.select(
        "order_id",
        "buyer_id",
        "seller_id",
        "creator_id",
        F.coalesce(F.col("product_id"), F.lit("None")).alias("product_id"),
        amount.alias("amount"),
        "status",
        "ts",
        F.coalesce(commission, amount * F.col("commission_rate")).alias("commission"),
        "refunded_at",
        F.col("status").isin(*local.BAD_STATUSES).alias("bad"),
    )


def _aggregates(o: DataFrame, aff: DataFrame) -> local.OrderAggregates:
    """:class:`ringscope.algorithms.commission.OrderAggregates` computed on Spark."""
    from pyspark.sql import functions as F

    buyers = o.groupBy("buyer_id").agg(F.count("*").alias("n"), F.min("ts").alias("first_ts"))
    pbs = aff.groupBy("creator_id", "seller_id", "buyer_id").agg(
        F.count("*").alias("n"),
        F.sum(F.col("bad").cast("long")).alias("n_bad"),
        F.sum(F.bround(F.col("amount") * F.lit(100.0), 0).cast("long")).alias("cents"),
        F.min("ts").alias("first_ts"),
    )
    refunds = aff.where((F.col("status") == "refunded") & F.col("refunded_at").isNotNull()).select(
        "creator_id",
        "seller_id",
        "buyer_id",
        ((F.unix_micros("refunded_at") - F.unix_micros("ts")) / F.lit(1e6)).alias("delay_s"),
    )
    return local.finish_aggregates(to_pandas(buyers), to_pandas(pbs), to_pandas(refunds))


def _links(identifiers: DataFrame, other_weight: float) -> local.IdentifierLinks:
    """:class:`ringscope.algorithms.commission.IdentifierLinks` computed on Spark."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    df = identifiers.where(
        F.col("account_id").isNotNull() & F.col("kind").isNotNull() & F.col("value").isNotNull()
    )
    n_acc = int(df.select("account_id").distinct().count())
    kinds = [r["kind"] for r in df.select("kind").distinct().collect()]
    usable = local.usable_kinds(kinds, other_weight)
    if not usable:
        return local.finish_links(None, n_acc)
    one = (
        df.where(F.col("kind").isin(*usable))
        .groupBy("kind", "value", "account_id")
        .agg(F.min("first_seen").alias("first_seen"))
    )
    # only identifiers held by two or more accounts leave Spark
    one = one.withColumn("k", F.count("*").over(Window.partitionBy("kind", "value")))
    one = one.where(F.col("k") >= 2).drop("k")
    return local.finish_links(to_pandas(one), n_acc)


def _n_universe(o: DataFrame, tables: SparkTables) -> int:
    """Accounts of the market: those the orders, accounts and identifiers name."""
    from pyspark.sql import functions as F

    names = (
        o.select(F.col("buyer_id").alias("a"))
        .union(o.select(F.col("seller_id").alias("a")))
        .union(o.where(F.col("creator_id").isNotNull()).select(F.col("creator_id").alias("a")))
        .union(tables.accounts.select(F.col("account_id").alias("a")))
        .union(
            tables.identifiers.where(F.col("account_id").isNotNull()).select(
                F.col("account_id").alias("a")
            )
        )
    )
    return int(names.distinct().count())


def detect_commission_rings(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Commission-ring findings of ``tables``, computed on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns the same findings.
    """
    from pyspark.sql import functions as F

    p = with_defaults(params, DEFAULTS)
    local._check(
        pd.DataFrame(columns=["order_id", "buyer_id", "seller_id", "amount", "status", "ts"]),
        p["min_buyers"],
        p["min_score"],
        p["alpha"],
        p["signal_alpha"],
    )
    info = local.detector_info(p, as_of=as_of, seed=seed)
    o = _prepare(tables.orders, tables.affiliations).cache()
    aff = o.where(F.col("creator_id").isNotNull()).cache()
    try:
        if aff.limit(1).count() == 0:
            return []
        agg = _aggregates(o, aff)
        accounts = to_pandas(tables.accounts.select("account_id", "created_at"))
        spark = tables.orders.sparkSession

        def fetch(keys: pd.DataFrame) -> pd.DataFrame:
            kdf = spark.createDataFrame(
                keys.astype({"group": "int64"}),
                "group long, creator_id string, seller_id string, buyer_id string",
            )
            return to_pandas(aff.join(F.broadcast(kdf), ["creator_id", "seller_id", "buyer_id"]))

        return local.run_rules(
            agg,
            created=account_created(accounts),
            links=_links(tables.identifiers, p["other_identifier_weight"]),
            n_universe=_n_universe(o, tables),
            affiliations=to_pandas(tables.affiliations),
            info=info,
            fetch_orders=fetch,
            max_evidence=p["max_evidence"],
        )
    finally:
        o.unpersist()
        aff.unpersist()
