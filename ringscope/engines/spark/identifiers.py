"""Shared identifiers on Spark: the same findings as
:func:`ringscope.algorithms.identifiers.detect_shared_identifiers`.

Heavy steps on Spark: identifier usage with hub discounting (accounts per
identifier, capped, ``kind_weight / log2(n)``), the account pairs of each
identifier (a join on the identifier, so the pair work is bounded by the cap
squared per identifier, never all pairs of accounts), pair weights, pool
links, and connected components (GraphX). Each candidate component is then
scored and explained by :func:`score_component` with the single-machine
helpers, on the executors (``applyInArrow``, one component at a time).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ringscope.algorithms import identifiers as local
from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, iso
from ringscope.contract import IDENTIFIER_KINDS
from ringscope.engines.spark._params import keyword_defaults, with_defaults
from ringscope.model import DetectorInfo, Finding, Member, rank

if TYPE_CHECKING:
    import pyarrow as pa
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


def identifier_links(
    use: DataFrame, *, min_shared: int, min_link_weight: float, pool_min_accounts: int
) -> DataFrame:
    """Links ``a``, ``b`` between accounts: enough shared identifiers, or one pool."""
    from pyspark.sql import functions as F

    u = use.select("kind", "value", "account_id", "weight")
    pairs = (
        u.alias("x")
        .join(u.alias("y"), ["kind", "value"])
        .where(F.col("x.account_id") < F.col("y.account_id"))
        .groupBy(F.col("x.account_id").alias("a"), F.col("y.account_id").alias("b"))
        .agg(F.sum("x.weight").alias("w"), F.count("*").alias("k"))
        .where((F.col("k") >= min_shared) & (F.col("w") >= min_link_weight))
        .select("a", "b")
    )
    pool = use.where(
        F.col("kind").isin(*local.POOL_KINDS) & (F.col("n_accounts") >= pool_min_accounts)
    )
    first = pool.groupBy("kind", "value").agg(F.min("account_id").alias("a"))
    pool_links = pool.join(first, ["kind", "value"]).select("a", F.col("account_id").alias("b"))
    return pairs.union(pool_links)


_OUT_SCHEMA = "comp long, finding string"


def detect_shared_identifiers(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Shared-identifier findings of ``tables``, computed on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns the same findings.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from ringscope.engines.spark.graphx import connected_components

    p = with_defaults(params, DEFAULTS)
    local._check_params(
        p["max_accounts_per_identifier"], p["min_shared"], p["min_size"], p["min_score"]
    )
    use = usage(
        tables.identifiers,
        max_accounts_per_identifier=p["max_accounts_per_identifier"],
        kind_weights=p["kind_weights"],
        max_accounts_per_instrument=p["max_accounts_per_instrument"],
        other_weight=p["other_identifier_weight"],
    ).cache()
    if use.isEmpty():
        use.unpersist()
        return []
    now = _reference_time(tables, as_of)
    links = identifier_links(
        use,
        min_shared=p["min_shared"],
        min_link_weight=p["min_link_weight"],
        pool_min_accounts=p["pool_min_accounts"],
    ).cache()
    comp = connected_components(links, src="a", dst="b").withColumnRenamed("name", "account_id")
    size = comp.groupBy("component").agg(F.count("*").alias("size"))
    cand = (
        comp.join(size, "component")
        .where((F.col("size") >= p["min_size"]) & (F.col("size") <= p["max_size"]))
        .select("account_id", F.col("component").alias("comp"))
        .cache()
    )
    # distinct neighbours (a pool's first account counts itself)
    both = links.select("a", "b").union(links.select(F.col("b").alias("a"), F.col("a").alias("b")))
    degree = both.distinct().groupBy(F.col("a").alias("account_id")).agg(F.count("*").alias("deg"))
    amounts = tables.orders.where(F.col("amount").isNotNull() & ~F.isnan("amount"))
    q = amounts.agg(F.percentile("amount", float(p["small_order_quantile"]))).collect()[0][0]
    small_amount = float(q) if q is not None else math.nan
    orders = tables.orders.join(cand.withColumnRenamed("account_id", "buyer_id"), "buyer_id")
    by_ts = Window.partitionBy("buyer_id").orderBy("ts", "order_id")
    first = (
        orders.withColumn("r", F.row_number().over(by_ts))
        .withColumn("n_orders", F.count("*").over(Window.partitionBy("buyer_id")))
        .where(F.col("r") == 1)
        .select(
            F.col("buyer_id").alias("account_id"), "n_orders", F.col("amount").alias("first_amount")
        )
    )
    created = tables.accounts.groupBy("account_id").agg(F.first("created_at").alias("created_at"))
    nodes = (
        cand.join(degree, "account_id", "left")
        .join(created, "account_id", "left")
        .join(first, "account_id", "left")
        .select(
            "comp",
            F.lit("node").alias("part"),
            "account_id",
            "deg",
            "created_at",
            "n_orders",
            "first_amount",
        )
    )
    shared = use.join(cand, "account_id")
    shared = shared.withColumn(
        "n_in", F.count("*").over(Window.partitionBy("comp", "kind", "value"))
    ).where(F.col("n_in") >= 2)
    order_rows = orders.withColumn(
        "r", F.row_number().over(Window.partitionBy("comp").orderBy("ts", "order_id"))
    ).withColumn("n_total", F.count("*").over(Window.partitionBy("comp")))
    order_rows = order_rows.where(F.col("r") <= p["max_evidence"])
    parts = nodes.unionByName(
        shared.select(
            "comp",
            F.lit("ident").alias("part"),
            "account_id",
            "kind",
            "value",
            "n_accounts",
            "first_seen",
        ),
        allowMissingColumns=True,
    ).unionByName(
        order_rows.select(
            "comp",
            F.lit("order").alias("part"),
            F.col("buyer_id").alias("account_id"),
            "order_id",
            "seller_id",
            "amount",
            "status",
            "ts",
            "n_total",
        ),
        allowMissingColumns=True,
    )
    info = DetectorInfo(
        name=local.NAME,
        version=local.VERSION,
        params={
            **{k: v for k, v in p.items() if k != "max_evidence"},
            "kind_weights": dict(
                local.KIND_WEIGHTS if p["kind_weights"] is None else p["kind_weights"]
            ),
            "as_of": iso(as_of) if as_of is not None else None,
            "seed": seed if isinstance(seed, int) else None,
        },
    )
    context = {
        "params": p,
        "now": now.isoformat(),
        "small_amount": small_amount,
        "info": {"name": info.name, "version": info.version, "params": info.params},
        "has_orders": not tables.orders.isEmpty(),
    }

    def score(table: pa.Table) -> pa.Table:
        import pyarrow as pa

        frame = table.to_pandas()
        f = score_component(frame, context)
        out = [] if f is None else [json.dumps(f.to_dict(), default=str)]
        comp_id = int(frame["comp"].iloc[0]) if len(frame) else -1
        schema = pa.schema([("comp", pa.int64()), ("finding", pa.string())])
        return pa.table({"comp": [comp_id] * len(out), "finding": out}, schema=schema)

    rows = parts.groupBy("comp").applyInArrow(score, _OUT_SCHEMA).collect()
    for frame in (use, links, cand):
        frame.unpersist()
    return rank([Finding.from_dict(json.loads(r["finding"])) for r in rows])


def _reference_time(tables: SparkTables, as_of: Any) -> pd.Timestamp:
    """:func:`ringscope.algorithms.identifiers.reference_time` over the Spark tables."""
    from ringscope.engines.spark.tables import latest_micros

    if as_of is not None:
        return local.reference_time(as_of=as_of)
    latest = latest_micros(
        (tables.identifiers, "first_seen"),
        (tables.identifiers, "last_seen"),
        (tables.orders, "ts"),
        (tables.accounts, "created_at"),
    )
    if latest is not None:
        return pd.Timestamp(latest, unit="us", tz="UTC")
    return pd.Timestamp.now(tz="UTC")


def _utc(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True).astype("datetime64[us, UTC]")


def score_component(frame: pd.DataFrame, context: dict[str, Any]) -> Finding | None:
    """Score and explain one candidate component, as the local detector does.

    ``frame`` holds the component's rows: ``part == "node"`` (one per account:
    distinct neighbours, creation time, order count and first order amount),
    ``"ident"`` (identifiers used by two or more of its accounts) and
    ``"order"`` (its accounts' first orders by time, with the total).
    """
    p = context["params"]
    now = pd.Timestamp(context["now"])
    small_amount = float(context["small_amount"])
    nodes = frame[frame["part"] == "node"].sort_values("account_id", kind="stable")
    shared = frame[frame["part"] == "ident"]
    n = len(nodes)
    if n == 0:
        return None
    created = _utc(nodes["created_at"])
    known = created.notna().to_numpy()
    age_days = ((now - created).dt.total_seconds() / 86400.0).to_numpy(dtype=float)
    is_new = known & (np.nan_to_num(age_days, nan=np.inf) <= p["new_account_days"])
    cr_days = np.where(known, created.astype("int64").to_numpy() / 86400e6, np.nan)
    med = float(pd.Series(cr_days).median())
    together = known & (
        np.abs(np.nan_to_num(cr_days - med, nan=np.inf)) <= p["created_window_days"]
    )
    if not math.isnan(small_amount) and context["has_orders"]:
        n_ord = nodes["n_orders"].fillna(0).to_numpy(dtype=float)
        first_amt = nodes["first_amount"].to_numpy(dtype=float)
        coupon = (
            (n_ord >= 1) & (n_ord <= 2) & (np.nan_to_num(first_amt, nan=np.inf) <= small_amount)
        )
    else:
        coupon = np.zeros(n, dtype=bool)
    strong = shared[shared["kind"].isin(local.POOL_KINDS)]
    n_strong = int(strong[["kind", "value"]].drop_duplicates().shape[0])
    per_instrument = n / n_strong if n_strong and n > p["household_max"] else 0.0
    score, signals = local.weighted_score(
        [
            ("group_size", float(n), 6.0, 0.15),
            ("new_account_share", float(is_new.mean()), 0.5, 0.25),
            ("accounts_per_instrument", per_instrument, 2.5, 0.2),
            ("coupon_order_share", float(coupon.mean()), 0.5, 0.25),
            ("created_together_share", float(together.mean()), 0.7, 0.15),
        ]
    )
    if score < p["min_score"]:
        return None
    group = [str(x) for x in nodes["account_id"]]
    deg = nodes["deg"].fillna(0).to_numpy(dtype=float) / max(1, n - 1)
    own = (is_new.astype(float) + coupon.astype(float) + np.minimum(1.0, deg)) / 3.0
    mscores = np.clip(score * (0.6 + 0.4 * own), 0.0, 1.0)
    members = [
        Member(account_id=a, role="account", score=round(float(s), 6))
        for a, s in zip(group, mscores, strict=True)
    ]
    rows: list[dict[str, Any]] = []
    for (kind, value), g in shared.groupby(["kind", "value"], sort=True):
        accs = sorted(g["account_id"].astype(str).tolist())
        rows.append(
            {
                "kind": str(kind),
                "value": str(value),
                "accounts": accs[:20],
                "n_accounts": len(accs),
                "n_accounts_total": int(g["n_accounts"].iloc[0]),
                "first_seen": iso(_utc(g["first_seen"]).min()),
            }
        )
    rows.sort(key=lambda r: (-r["n_accounts"], r["kind"], r["value"]))
    og = frame[frame["part"] == "order"].sort_values(["ts", "order_id"], kind="stable")
    order_rows = [
        {
            "order_id": str(r.order_id),
            "buyer_id": str(r.account_id),
            "seller_id": str(r.seller_id),
            "amount": local.as_float(r.amount),
            "status": str(r.status),
            "ts": iso(r.ts),
        }
        for r in og.itertuples(index=False)
    ]
    n_orders_total = int(og["n_total"].iloc[0]) if len(og) else 0
    evidence: dict[str, list[dict[str, Any]]] = {
        "identifiers": local.cap_rows(rows, p["max_evidence"]),
        "orders": order_rows,
        "counts": [
            {
                "source": "identifiers",
                "shown": min(len(rows), p["max_evidence"]),
                "total": len(rows),
            },
            {"source": "orders", "shown": len(order_rows), "total": n_orders_total},
        ],
    }
    kinds = shared.drop_duplicates(["kind", "value"])["kind"].value_counts().sort_index()
    what = ", ".join(local.count_noun(int(v), str(k)) for k, v in kinds.items())
    text = f"{n} accounts share {what} ({len(rows)} identifiers used by few other accounts)"
    if per_instrument:
        text += f", {per_instrument:.1f} accounts per device/payment/phone"
    text += f". {int(is_new.sum())} were created in the {p['new_account_days']:g} days before "
    text += f"{now.date().isoformat()}"
    text += f", {int(together.sum())} within {p['created_window_days']:g} days of each other"
    if not math.isnan(small_amount):
        text += f"; {int(coupon.sum())} placed one or two orders starting with a small one "
        text += f"(at most {small_amount:.2f})"
    text += "."
    info = DetectorInfo(**context["info"])
    return Finding.build(
        kind=local.KIND,
        score=score,
        members=members,
        signals=signals,
        explanation=text,
        detector=info,
        evidence=evidence,
    )
