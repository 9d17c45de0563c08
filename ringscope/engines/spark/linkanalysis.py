"""Guilt by association on Spark: the findings of
:func:`ringscope.algorithms.linkanalysis.detect_guilt_by_association`.

The heavy step, the undirected account graph of
:func:`~ringscope.algorithms.linkanalysis.account_graph`, is built on Spark
with joins, never all pairs of accounts:

- shared identifiers: a join of identifier usage on the identifier (hub
  discounted, capped at ``max_accounts_per_identifier`` accounts, as the
  shared-identifier detector's usage), ``identifier_weight * kind_weight / log2(n)``;
- orders: buyer - seller and buyer - creator pairs counted,
  ``order_weight * log1p(count)``;
- co-engagement: a join of the (account, stream) pairs on the stream, for
  streams with 2 to ``max_stream_engagers`` engaged accounts,
  ``engagement_weight / (n - 1)``.

The links are summed per account pair on Spark and only the weighted edge list
comes to the driver, where the personalised PageRank runs (igraph, as the local
engine) and the findings are built by
:func:`~ringscope.algorithms.linkanalysis.guilt_findings`. The edge list has
one row per linked pair (bounded by the caps above), not one per event.

Edge weights are sums of a few floating-point links, added in Spark's order
rather than the local engine's: they may differ from the local engine's in the
last bit. Guilt is rounded to 9 decimals and evidence weights to 6, so the
findings are the same unless a value lies within about 1e-15 of a rounding
boundary or of ``min_score``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ringscope.algorithms import linkanalysis as local
from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT
from ringscope.engines.spark._params import keyword_defaults, with_defaults
from ringscope.engines.spark.identifiers import usage
from ringscope.engines.spark.tables import to_pandas
from ringscope.model import DetectorInfo, Finding

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from ringscope.engines.spark.tables import SparkTables

#: The local detector's policy parameters and their defaults.
DEFAULTS: dict[str, Any] = keyword_defaults(
    local.detect_guilt_by_association, inputs=("identifiers", "orders", "engagements", "seed")
)
_GRAPH_PARAMS = (
    "max_accounts_per_identifier",
    "identifier_weight",
    "order_weight",
    "engagement_weight",
    "max_stream_engagers",
    "other_identifier_weight",
)


def _pair(x: Any, y: Any) -> list[Any]:
    from pyspark.sql import functions as F

    return [F.least(x, y).alias("a"), F.greatest(x, y).alias("b")]


def account_links(
    tables: SparkTables,
    *,
    max_accounts_per_identifier: int = 30,
    identifier_weight: float = 1.0,
    order_weight: float = 0.5,
    engagement_weight: float = 0.25,
    max_stream_engagers: int = 50,
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT,
) -> DataFrame:
    """The account graph's edges on Spark: ``a`` < ``b`` (account ids), ``weight``, ``flag``.

    ``flag`` ors the relations behind the edge (1 identifier, 2 order,
    4 co-engagement), as :func:`~ringscope.algorithms.linkanalysis.account_graph`.
    """
    from pyspark.sql import functions as F

    flags = local._VIA_FLAG
    use = usage(
        tables.identifiers,
        max_accounts_per_identifier=max_accounts_per_identifier,
        other_weight=other_identifier_weight,
    )
    u = use.select("kind", "value", "account_id", "weight")
    ident = (
        u.alias("x")
        .join(u.alias("y"), ["kind", "value"])
        .where(F.col("x.account_id") < F.col("y.account_id"))
        .select(
            F.col("x.account_id").alias("a"),
            F.col("y.account_id").alias("b"),
            (F.lit(float(identifier_weight)) * F.col("x.weight")).alias("weight"),
            F.lit(flags["identifier"]).alias("flag"),
        )
    )
    o = tables.orders.where(F.col("buyer_id").isNotNull() & F.col("seller_id").isNotNull())
    ends = o.select(*_pair(F.col("buyer_id"), F.col("seller_id"))).union(
        o.where(F.col("creator_id").isNotNull()).select(
            *_pair(F.col("buyer_id"), F.col("creator_id"))
        )
    )
    order = (
        ends.where(F.col("a") != F.col("b"))
        .groupBy("a", "b")
        .agg(F.count("*").alias("n"))
        .select(
            "a",
            "b",
            (F.lit(float(order_weight)) * F.log1p(F.col("n").cast("double"))).alias("weight"),
            F.lit(flags["order"]).alias("flag"),
        )
    )
    seen = (
        tables.engagements.where(F.col("account_id").isNotNull() & F.col("stream_id").isNotNull())
        .select("account_id", "stream_id")
        .distinct()
    )
    sizes = seen.groupBy("stream_id").agg(F.count("*").alias("n"))
    small = seen.join(
        sizes.where((F.col("n") >= 2) & (F.col("n") <= int(max_stream_engagers))), "stream_id"
    )
    co = (
        small.alias("x")
        .join(small.select("stream_id", "account_id").alias("y"), "stream_id")
        .where(F.col("x.account_id") < F.col("y.account_id"))
        .select(
            F.col("x.account_id").alias("a"),
            F.col("y.account_id").alias("b"),
            (F.lit(float(engagement_weight)) / (F.col("x.n") - 1.0)).alias("weight"),
            F.lit(flags["co_engagement"]).alias("flag"),
        )
    )
    return (
        ident.unionByName(order)
        .unionByName(co)
        .where(F.col("weight") > 0)
        .groupBy("a", "b")
        .agg(F.sum("weight").alias("weight"), F.expr("bit_or(flag)").alias("flag"))
    )


def account_graph(
    tables: SparkTables, *, extra_accounts: tuple[str, ...] = (), **params: Any
) -> tuple[pd.Index, pd.DataFrame]:
    """:func:`ringscope.algorithms.linkanalysis.account_graph` of ``tables``, built on Spark.

    Returns the sorted account index (every linked account and ``extra_accounts``)
    and the edges ``a``, ``b`` (positions, a < b), ``weight``, ``via``, sorted by
    ``a`` then ``b``.
    """
    links = to_pandas(account_links(tables, **params))
    names = pd.Index(
        sorted(
            set(links["a"].astype(str))
            | set(links["b"].astype(str))
            | set(map(str, extra_accounts))
        ),
        dtype=object,
    )
    a = names.get_indexer(pd.Index(links["a"].astype(str))).astype(np.int64)
    b = names.get_indexer(pd.Index(links["b"].astype(str))).astype(np.int64)
    order = np.lexsort((b, a))
    via_names = np.asarray([local._VIA_NAME.get(f, "") for f in range(8)], dtype=object)
    edges = pd.DataFrame(
        {
            "a": a[order],
            "b": b[order],
            "weight": links["weight"].to_numpy(dtype=float)[order],
            "via": via_names[links["flag"].to_numpy(dtype=np.int64)[order]],
        }
    )
    return names, edges


def detect_guilt_by_association(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Guilt-by-association findings of ``tables``, with the account graph built on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns its findings (see the module documentation for the
    floating-point tolerance).
    """
    p = with_defaults(params, DEFAULTS)
    if not 0.0 <= p["min_score"] <= 1.0:
        raise ValueError("min_score must be in [0, 1]")
    info = DetectorInfo(
        name=local.NAME,
        version=local.VERSION,
        params={
            **{k: p[k] for k in DEFAULTS if k != "max_evidence"},
            "seed": seed if isinstance(seed, int) else None,
        },
    )
    labels = to_pandas(tables.labels)
    seeds = local.latest_labels(labels)
    if not (seeds == "abusive").any():
        return []
    local._check_damping(p["damping"])
    nodes, edges = account_graph(
        tables,
        extra_accounts=tuple(seeds.index),
        **{k: p[k] for k in _GRAPH_PARAMS},
    )
    return local.guilt_findings(
        labels,
        nodes,
        edges,
        info=info,
        min_score=p["min_score"],
        damping=p["damping"],
        decades=p["decades"],
        max_evidence=p["max_evidence"],
        standalone_labels=p["standalone_labels"],
    )
