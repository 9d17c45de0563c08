"""Shared identifiers on Spark: the same findings as
:func:`ringscope.algorithms.identifiers.detect_shared_identifiers`.

Heavy steps on Spark: the identifier links of values used by two accounts or
more (a value of one account links nobody: most rows of the table), and the
first order and order count of each buyer. The rows left (shared identifiers,
one per buyer, accounts' creation times) go to the driver, where the local
detector's own candidate, burst and scoring code runs on them, so that both
engines give the same findings. :func:`usage` (identifier usage with hub
weights) serves the other Spark detectors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ringscope.algorithms import identifiers as local
from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT
from ringscope.contract import IDENTIFIER_KINDS
from ringscope.engines.spark._params import keyword_defaults, with_defaults
from ringscope.model import Finding

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from ringscope.engines.spark.tables import SparkTables

#: The local detector's policy parameters and their defaults.
DEFAULTS: dict[str, Any] = keyword_defaults(
    local.detect_shared_identifiers, inputs=("accounts", "orders", "as_of", "seed")
)


def usage(
    identifiers: DataFrame,
    *,
    max_accounts_per_identifier: int,
    kind_weights: dict[str, float] | None = None,
    max_accounts_per_instrument: int | None = None,
    other_weight: float = OTHER_IDENTIFIER_WEIGHT,
) -> DataFrame:
    """:func:`ringscope.algorithms.identifiers.identifier_usage` on Spark.

    One row per (account, identifier) of identifiers used by 2 to the cap of
    accounts: ``account_id``, ``kind``, ``value``, ``n_accounts``, ``weight``,
    ``first_seen``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    kw = local.KIND_WEIGHTS if kind_weights is None else kind_weights
    df = identifiers.where(
        F.col("account_id").isNotNull() & F.col("kind").isNotNull() & F.col("value").isNotNull()
    )
    df = df.groupBy("kind", "value", "account_id").agg(F.min("first_seen").alias("first_seen"))
    df = df.withColumn("n_accounts", F.count("*").over(Window.partitionBy("kind", "value")))
    instrument_cap = (
        max_accounts_per_identifier
        if max_accounts_per_instrument is None
        else max_accounts_per_instrument
    )
    cap = F.when(F.col("kind").isin(*local.POOL_KINDS), F.lit(instrument_cap)).otherwise(
        F.lit(max_accounts_per_identifier)
    )
    df = df.where((F.col("n_accounts") >= 2) & (F.col("n_accounts") <= cap))
    weight = kind_weight_column(F.col("kind"), kw, other_weight)
    df = df.withColumn("weight", weight / F.log2(F.col("n_accounts").cast("double")))
    return df.where(F.col("weight") > 0).select(
        "account_id", "kind", "value", "n_accounts", "weight", "first_seen"
    )


def kind_weight_column(kind: Column, weights: dict[str, float], other: float) -> Column:
    """:func:`ringscope.algorithms.identifiers.kind_weight` of column ``kind``: the weight
    ``weights`` gives, else 0 for kinds detectors know, else ``other``."""
    from pyspark.sql import functions as F

    weight = F.when(kind.isin(*IDENTIFIER_KINDS), F.lit(0.0)).otherwise(F.lit(float(other)))
    for name, w in sorted(weights.items()):
        weight = F.when(kind == name, F.lit(float(w))).otherwise(weight)
    return weight


def detect_shared_identifiers(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Shared-identifier findings of ``tables``, computed on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns the same findings.
    """
    from pyspark.sql import functions as F

    from ringscope.engines.spark.tables import to_pandas

    p = with_defaults(params, DEFAULTS)
    ids = tables.identifiers.where(
        F.col("account_id").isNotNull() & F.col("kind").isNotNull() & F.col("value").isNotNull()
    )
    # a value used by one account links nobody: only shared values reach the driver
    per_value = ids.groupBy("kind", "value").agg(F.countDistinct("account_id").alias("_n"))
    shared = ids.join(per_value.where(F.col("_n") >= 2), ["kind", "value"]).drop("_n")
    identifiers = to_pandas(shared.select("account_id", "kind", "value", "first_seen"))
    orders = to_pandas(
        tables.orders.select("order_id", "buyer_id", "seller_id", "amount", "status", "ts")
    )
    accounts = to_pandas(tables.accounts.select("account_id", "created_at"))
    return local.detect_shared_identifiers(
        identifiers,
        accounts=accounts,
        orders=orders,
        as_of=as_of,
        seed=seed,
        **p,
    )
