"""Lockstep engagement on Spark: the same findings as
:func:`ringscope.algorithms.lockstep.detect_lockstep`.

Where each step of the local detector (see its module documentation) runs:

1. **Arrivals, on Spark.** The first event of each (account, stream, kind) is a
   reduction of the engagements (:func:`arrivals`); only the arrivals are
   collected to the driver, with the streams, the accounts' creation times and
   the follows (whose followers are excused at a creator's starts).
2. **Start graces, buckets and the reach pre-filter, on the driver.** The local
   code runs on the collected arrivals (linear numpy work): each creator's
   start surge, the (stream, time window) buckets on the two staggered grids
   and the accounts whose buckets can hold ``min_shared_windows`` bursts with
   anyone (a viewer seen at one moment only cannot). Running the local code
   here makes these steps equal to the local detector's by construction.
3. **Pair projection, on Spark** (:func:`co_bursts`, the step that is quadratic
   in the bucket sizes). The bucket entries of the able accounts go from the
   driver to Spark as integer codes; a self-join of the entries on the bucket (buckets of 2 to
   ``max_bucket`` accounts only, so the work is bounded by ``max_bucket**2``
   per bucket and no list of all pairs of accounts is ever built) gives each
   pair's shared buckets. Per pair, the shared buckets ordered by (stream,
   window start) are merged into bursts exactly as the local count does (a new
   burst where the stream changes or the window start is more than
   ``2 * window_s`` after the previous shared bucket's); pairs with at least
   ``min_shared_windows`` bursts are joined with the (account, stream) sets for
   the streams both engaged with. Only those pairs are collected.
4. **Edges, groups, significance and findings, on the driver**, by the local
   code on the arrivals, the buckets and the collected pair counts.

So the driver holds what the local detector holds apart from the engagements
themselves and the co-acting pairs: the arrivals (one row per account, stream
and kind), their bucket entries, the streams, the accounts' creation times and
the pairs that share ``min_shared_windows`` bursts.

The findings equal the local detector's on the same data. The one assumption:
among events of one account, stream and kind within the same whole second, the
local detector keeps the first in input order as evidence, Spark the earliest
timestamp; they differ only for sub-second timestamps that are out of order in
the input (the evidence timestamp, nothing else).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ringscope.algorithms import lockstep as local
from ringscope.engines.spark._params import keyword_defaults, with_defaults
from ringscope.engines.spark.tables import to_pandas
from ringscope.model import Finding

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from ringscope.engines.spark.tables import SparkTables

#: The local detector's policy parameters and their defaults.
DEFAULTS: dict[str, Any] = keyword_defaults(
    local.detect_lockstep, inputs=("streams", "accounts", "follows", "as_of", "seed")
)

_Counts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def arrivals(engagements: DataFrame, kinds: Sequence[str] | None = None) -> DataFrame:
    """The first event of each (account, stream, kind), as the local ``_arrivals`` keeps.

    Rows without an account or a stream are left out, and so are kinds not in
    ``kinds`` (when given). Columns ``account_id``, ``stream_id``, ``kind`` and
    ``ts`` (the earliest; null when one of the group's timestamps is missing,
    which the local code then reports as an :class:`~ringscope.errors.InputError`).
    """
    from pyspark.sql import functions as F

    ev = engagements.where(F.col("account_id").isNotNull() & F.col("stream_id").isNotNull())
    if kinds is not None:
        wanted = [str(k) for k in kinds]
        ev = ev.where(F.col("kind").isin(*wanted) if wanted else F.lit(False))
    return ev.groupBy("account_id", "stream_id", "kind").agg(
        F.when(F.count("*") == F.count("ts"), F.min("ts")).alias("ts")
    )


def co_bursts(
    entries: DataFrame, acct_streams: DataFrame, *, max_bucket: int, min_bursts: int, gap: float
) -> DataFrame:
    """Pairs of accounts with at least ``min_bursts`` shared bursts, computed on Spark.

    Parameters
    ----------
    entries : pyspark.sql.DataFrame
        Bucket entries, one per (bucket, account): ``bucket``, ``acct``,
        ``stream`` (the bucket's), ``t0`` (its window start, seconds) and
        ``size`` (entries in the bucket: buckets of fewer than 2 are skipped, and
        the driver has sampled crowded buckets down to ``max_bucket``).
    acct_streams : pyspark.sql.DataFrame
        Distinct (``acct``, ``stream``) of every account's arrivals.
    max_bucket, min_bursts : int
        As in :func:`ringscope.algorithms.lockstep._sync_counts`.
    gap : float
        Shared buckets of one stream at most this many seconds after the
        previous one continue its burst.

    Returns
    -------
    pyspark.sql.DataFrame
        ``a < b`` (account codes), ``n_sync`` (bursts), ``n_streams`` (streams
        of those bursts) and ``n_both`` (streams both engaged with).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ok = entries.where((F.col("size") >= 2) & (F.col("size") <= int(max_bucket)))
    x = ok.select("bucket", F.col("acct").alias("a"), "stream", "t0")
    y = ok.select("bucket", F.col("acct").alias("b"))
    shared = x.join(y, "bucket").where(F.col("a") < F.col("b")).drop("bucket")
    # in (stream, window start) order, a burst starts at a pair's first shared bucket
    # of a stream (which also counts the stream) and wherever the window start is
    # more than ``gap`` after the previous shared bucket's
    by_time = Window.partitionBy("a", "b").orderBy("stream", "t0")
    shared = shared.select(
        "a",
        "b",
        "stream",
        "t0",
        F.lag("stream").over(by_time).alias("prev_stream"),
        F.lag("t0").over(by_time).alias("prev_t0"),
    )
    new_stream = F.col("prev_stream").isNull() | (F.col("prev_stream") != F.col("stream"))
    late = (F.col("t0") - F.col("prev_t0")).cast("double") > F.lit(float(gap))
    counts = (
        shared.select(
            "a",
            "b",
            new_stream.cast("long").alias("new_stream"),
            (new_stream | late).cast("long").alias("new_burst"),
        )
        .groupBy("a", "b")
        .agg(F.sum("new_burst").alias("n_sync"), F.sum("new_stream").alias("n_streams"))
        .where(F.col("n_sync") >= int(min_bursts))
    )
    # streams both engaged with: every pair has one at least (the streams of its bursts)
    sa = acct_streams.select(F.col("acct").alias("a"), "stream")
    sb = acct_streams.select(F.col("acct").alias("b"), "stream")
    return (
        counts.join(sa, "a")
        .join(sb, ["b", "stream"])
        .groupBy("a", "b", "n_sync", "n_streams")
        .agg(F.count("*").alias("n_both"))
        .select("a", "b", "n_sync", "n_streams", "n_both")
    )


def sync_counts(
    spark: SparkSession,
    bk: local._Buckets,
    arr: local._Arrivals,
    *,
    max_bucket: int,
    min_bursts: int,
    gap: float,
) -> _Counts:
    """:func:`ringscope.algorithms.lockstep._sync_counts` with the pair work on Spark.

    ``bk`` and ``arr`` are the local detector's buckets and arrivals. The
    entries the local count walks (:func:`ringscope.algorithms.lockstep._pair_entries`:
    the accounts that can reach ``min_bursts`` bursts, and in a bucket of more
    than ``max_bucket`` of them the same bottom-k sample) go to Spark for
    :func:`co_bursts`, with each bucket's size counted over those entries; the
    qualifying pairs come back. Returns (a, b, bursts,
    burst streams, streams both engaged with), ``a < b``, ordered by (a, b):
    the same arrays as the local count.
    """
    empty = np.zeros(0, dtype=np.int64)
    if bk.acct.size == 0:
        return empty, empty, empty, empty, empty
    keep, able = local._pair_entries(bk, arr, max_bucket=max_bucket, min_bursts=min_bursts, gap=gap)
    if not keep.any():
        return empty, empty, empty, empty, empty
    eb = bk.bucket[keep]
    kept_size = np.bincount(eb, minlength=bk.size.size)  # at most max_bucket (sampled)
    entries = pd.DataFrame(
        {
            "bucket": eb,
            "acct": bk.acct[keep],
            "stream": bk.stream[keep],
            "t0": bk.bucket_t0[eb],
            "size": kept_size[eb],
        }
    ).astype(np.int64)
    n_s = np.int64(max(arr.stream_ids.size, 1))
    as_key = local._unique(arr.acct[able[arr.acct]] * n_s + arr.stream[able[arr.acct]])
    acct_streams = pd.DataFrame({"acct": as_key // n_s, "stream": as_key % n_s}).astype(np.int64)
    long_cols = "bucket long, acct long, stream long, t0 long, size long"
    pairs = co_bursts(
        spark.createDataFrame(entries, long_cols),
        spark.createDataFrame(acct_streams, "acct long, stream long"),
        max_bucket=max_bucket,
        min_bursts=min_bursts,
        gap=gap,
    )
    got = to_pandas(pairs)
    a, b, c, s, both = (
        np.asarray(got[col], dtype=np.int64) for col in ("a", "b", "n_sync", "n_streams", "n_both")
    )
    o = local._order(a, b)
    return a[o], b[o], c[o], s[o], both[o]


def detect_lockstep(
    tables: SparkTables, *, as_of: Any = None, seed: int | None = None, **params: Any
) -> list[Finding]:
    """Lockstep (engagement farm) findings of ``tables``, with the heavy steps on Spark.

    Takes the policy parameters of the local detector (same names, same
    defaults) and returns the same findings; see the module documentation for
    which steps run where.

    Raises
    ------
    TypeError
        If a parameter is unknown.
    InputError
        If a parameter is out of range, or an engagement has no timestamp.
    """
    p = with_defaults(params, DEFAULTS)
    local._check_params(**p)
    spark = tables.engagements.sparkSession
    first = to_pandas(arrivals(tables.engagements, p["kinds"]))
    streams = to_pandas(tables.streams.select("stream_id", "creator_id", "started_at", "ended_at"))
    accounts = to_pandas(tables.accounts.select("account_id", "created_at"))
    follows = to_pandas(tables.follows.select("follower_id", "creator_id", "ts"))

    def count_pairs(
        bk: local._Buckets, arr: local._Arrivals, *, max_bucket: int, min_bursts: int, gap: float
    ) -> _Counts:
        return sync_counts(spark, bk, arr, max_bucket=max_bucket, min_bursts=min_bursts, gap=gap)

    return local._detect_lockstep(
        first,
        count_pairs=count_pairs,
        streams=streams,
        accounts=accounts,
        follows=follows,
        as_of=as_of,
        seed=seed,
        **p,
    )
