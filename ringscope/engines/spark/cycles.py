"""Money cycles on Spark: the findings of
:func:`ringscope.algorithms.cycles.detect_money_cycles`.

The heavy steps run on Spark: every order becomes its transfers (buyer -> seller, and
seller -> creator for a commission), and the market's activity is counted there: payments
in and out and distinct counterparties per account, the distribution of counterparties
and of amounts (as value counts), payments per account and day, the time span. Only counts
and the transfers among the accounts that both pay and receive (the only ones a cycle can
use) come to the driver, where the local code builds the same
:class:`~ringscope.algorithms.money.Activity` and
:class:`~ringscope.algorithms.cycles.Hosts` and searches and scores the cycles
(:func:`~ringscope.algorithms.cycles.cycle_findings`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ringscope.algorithms import cycles as local
from ringscope.algorithms.identifiers import account_created
from ringscope.algorithms.money import activity_from_counts, degree_quantile
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
_DAY_US = 86_400_000_000


def money_transfers(orders: DataFrame, *, statuses: tuple[str, ...]) -> DataFrame:
    """:func:`ringscope.algorithms.money.money_transfers` on Spark (unordered), with the
    time as ``t_us`` (microseconds since the epoch) beside ``ts``."""
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
    return (
        sale.unionByName(paid)
        .where(F.col("src") != F.col("dst"))
        .withColumn("t_us", F.unix_micros(F.col("ts")))
    )


def _day_counts(
    tr: DataFrame, side: str, hosts: DataFrame, codes: pd.Index
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(host code, day, payments)`` of the hosts' payments out (``side`` ``src``) or in."""
    from pyspark.sql import functions as F

    days = to_pandas(
        tr.join(hosts.withColumnRenamed("account", side), side, "left_semi")
        .groupBy(F.col(side).alias("account"), F.expr(f"t_us div {_DAY_US}").alias("day"))
        .count()
    )
    return (
        codes.get_indexer(pd.Index(days["account"])).astype(np.int64),
        days["day"].to_numpy(dtype=np.int64),
        days["count"].to_numpy(dtype=np.int64),
    )


def hosts(
    tables: SparkTables, *, statuses: tuple[str, ...], min_amount: float, hub_quantile: float
) -> local.Hosts:
    """:func:`ringscope.algorithms.cycles.hosts_of` with the counting on Spark."""
    from pyspark.sql import functions as F

    tr = money_transfers(tables.orders, statuses=statuses).where(F.col("amount") >= min_amount)
    tr = tr.cache()
    try:
        outs = tr.groupBy(F.col("src").alias("account")).agg(F.count("*").alias("n_out"))
        ins = tr.groupBy(F.col("dst").alias("account")).agg(F.count("*").alias("n_in"))
        pairs = tr.select(
            F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b")
        ).distinct()
        degree = (
            pairs.select(F.col("a").alias("account"))
            .unionAll(pairs.select(F.col("b").alias("account")))
            .groupBy("account")
            .agg(F.count("*").alias("degree"))
        ).cache()
        degrees = to_pandas(degree.groupBy("degree").count())
        amounts = to_pandas(tr.groupBy("amount").count())
        span = tr.agg(F.min("t_us").alias("lo"), F.max("t_us").alias("hi"), F.count("*")).first()
        host = (
            outs.join(ins, "account")
            .join(degree, "account")
            .select("account", "n_in", "n_out", "degree")
        ).cache()
        counts = to_pandas(host).sort_values("account", ignore_index=True)
        codes = pd.Index(counts["account"].astype(str).to_numpy(dtype=object))
        inner = tr.join(host.select(F.col("account").alias("src")), "src", "left_semi").join(
            host.select(F.col("account").alias("dst")), "dst", "left_semi"
        )
        frame = to_pandas(inner.select("src", "dst", "amount", "t_us", "order_id", "via"))
        days_in = _day_counts(tr, "dst", host.select("account"), codes)
        days_out = _day_counts(tr, "src", host.select("account"), codes)
        host.unpersist()
        degree.unpersist()
    finally:
        tr.unpersist()
    lo, hi, total = (0, 0, 0) if span is None else (span[0] or 0, span[1] or 0, span[2])
    act = activity_from_counts(
        amount_values=amounts["amount"].to_numpy(dtype=float),
        amount_counts=amounts["count"].to_numpy(dtype=np.int64),
        n_in=counts["n_in"].to_numpy(dtype=np.int64),
        n_out=counts["n_out"].to_numpy(dtype=np.int64),
        degree=counts["degree"].to_numpy(dtype=np.int64),
        days_in=days_in,
        days_out=days_out,
        span=max(float(hi - lo) / 1e6, local.MIN_WINDOW),
        hub_degree=degree_quantile(
            degrees["degree"].to_numpy(dtype=np.int64),
            degrees["count"].to_numpy(dtype=np.int64),
            hub_quantile,
        ),
    )
    return local.hosts_from_frame(frame, codes.to_numpy(), act, int(total))


def detect_money_cycles(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Money-cycle findings of ``tables``, with the money graph counted on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns the same findings.
    """
    from pyspark.sql import functions as F

    p = with_defaults(params, DEFAULTS)
    local._check(
        p["min_length"], p["max_length"], p["max_change"], p["max_links"], p["min_rounds"],
        p["hub_quantile"], p["max_cycles"], p["min_score"],
    )  # fmt: skip
    statuses = tuple(p["statuses"])
    ref = pd.Timestamp(as_of if as_of is not None else tables.reference_time())
    now = ref.tz_localize("UTC") if ref.tzinfo is None else ref.tz_convert("UTC")
    info = DetectorInfo(
        name=local.NAME,
        version=local.VERSION,
        params=local._params({**p, "statuses": statuses, "as_of": as_of, "seed": seed}),
    )
    h = hosts(tables, statuses=statuses, min_amount=p["min_amount"], hub_quantile=p["hub_quantile"])
    if len(h) < p["min_length"]:
        return []
    spark = tables.orders.sparkSession
    names = spark.createDataFrame([(str(a),) for a in h.names], "account_id string")
    accounts = to_pandas(
        tables.accounts.select("account_id", "created_at").join(
            F.broadcast(names), "account_id", "left_semi"
        )
    )
    return local.cycle_findings(
        h,
        now=now,
        created=account_created(accounts),
        know_accounts=not tables.accounts.isEmpty(),
        info=info,
        search={k: p[k] for k in local.SEARCH},
        new_account_days=p["new_account_days"],
        min_score=p["min_score"],
        max_evidence=p["max_evidence"],
    )
