"""Lockstep on Spark counts the same pairs and finds the same farms as the local detector.

One Spark session (``local[2]``, few shuffle partitions) serves every test of
this module; the marketplace is a small generated one (three planted
engagement farms), written as Parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from ringscope.algorithms import lockstep as local
from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.registry import DETECTORS
from ringscope.engines.spark import lockstep as spark_lockstep
from ringscope.engines.spark.tables import SparkTables, read_export, to_pandas
from ringscope.loaders.pipeline import read_export_tables
from ringscope.loaders.synthetic import generate
from ringscope.model import Finding
from ringscope.policy import default_policy


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spark-lockstep")
    generate(folder, events=15_000, seed=3, fmt="parquet")
    return folder


@pytest.fixture(scope="module")
def tables(spark: SparkSession, market: Path) -> SparkTables:
    return read_export(spark, str(market))


@pytest.fixture(scope="module")
def local_tables(market: Path) -> MarketTables:
    return read_export_tables(market)


def _canon(findings: list[Finding]) -> list[str]:
    return [json.dumps(f.to_dict(), sort_keys=True, default=str) for f in findings]


def _buckets(
    t: MarketTables, *, by_kind: bool, window_s: float = 120.0
) -> tuple[local._Arrivals, local._Buckets]:
    """Arrivals and buckets as the local detector makes them (default graces, the
    follows' followers excused, window widths from ``window_s`` up)."""
    arr = local._arrivals(t.engagements, None)
    spans = local._spans(t.streams, arr)
    creators = local._stream_creators(t.streams, arr)
    fol = local._followers(t.follows, arr, creators, spans)
    graces = local._start_graces(
        arr, spans, creators, fol, window_s=window_s, max_grace_s=1800.0, surge_level=1.5
    )
    assert graces is not None
    excused = local._excused(arr, spans, graces, fol)
    widths = local._widths(window_s, 0.2, 4.0, spans)
    bk = local._buckets(arr, widths=widths, by_kind=by_kind, excused=excused)
    return arr, bk


@pytest.mark.parametrize("kinds", [None, ("like", "comment")])
def test_arrivals_are_the_first_event_of_each_account_stream_and_kind(
    tables: SparkTables, local_tables: MarketTables, kinds: tuple[str, ...] | None
) -> None:
    got = to_pandas(spark_lockstep.arrivals(tables.engagements, kinds))
    want = local._arrivals(local_tables.engagements, kinds)
    mine = local._arrivals(got, None)  # arrivals of arrivals are themselves
    assert len(got) == want.t.size
    for field in ("account_ids", "stream_ids", "kinds", "acct", "stream", "kind", "t"):
        assert np.array_equal(getattr(mine, field), getattr(want, field)), field


@pytest.mark.parametrize(
    ("by_kind", "max_bucket"),
    [(False, 300), (True, 300), (False, 4)],
    ids=["all-kinds", "by-kind", "tiny-buckets"],
)
def test_pair_counts_on_spark_equal_local(
    spark: SparkSession, local_tables: MarketTables, by_kind: bool, max_bucket: int
) -> None:
    arr, bk = _buckets(local_tables, by_kind=by_kind)
    if max_bucket < 300:
        assert (bk.size > max_bucket).any(), "some buckets are sampled"
    args = {"max_bucket": max_bucket, "min_bursts": 2, "gap": 240.0}
    want = local._sync_counts(bk, arr, **args)
    got = spark_lockstep.sync_counts(spark, bk, arr, **args)
    assert want[0].size > 0
    for name, w, g in zip(("a", "b", "n_sync", "n_streams", "n_both"), want, got, strict=True):
        assert g.dtype == np.int64, name
        assert np.array_equal(w, g), name


def test_co_bursts_merge_close_buckets_and_skip_large_ones(spark: SparkSession) -> None:
    # accounts 1 and 2 share buckets on stream 0 at 0, 60 and 300 s (one burst: each
    # within gap=240 of the previous), at 600 s (a second burst) and on stream 1 (a
    # third); bucket 9 on stream 2 has 5 accounts, more than max_bucket=4, and is skipped
    rows = [(0, 0, 0), (1, 0, 60), (2, 0, 300), (3, 0, 600), (4, 1, 0)]
    entries = [(b, acct, s, t0, 2) for b, s, t0 in rows for acct in (1, 2)]
    entries += [(9, acct, 2, 0, 5) for acct in (1, 2, 3, 4, 5)]
    entries += [(5, 3, 0, 0, 1)]  # alone in its bucket
    frame = pd.DataFrame(entries, columns=["bucket", "acct", "stream", "t0", "size"])
    streams = frame[["acct", "stream"]].drop_duplicates()
    got = spark_lockstep.co_bursts(
        spark.createDataFrame(frame),
        spark.createDataFrame(streams),
        max_bucket=4,
        min_bursts=2,
        gap=240.0,
    )
    rows_out = [tuple(r) for r in got.orderBy("a", "b").collect()]
    assert rows_out == [(1, 2, 3, 2, 3)]  # a, b, bursts, burst streams, streams in common


def test_findings_on_spark_equal_local(
    tables: SparkTables, local_tables: MarketTables, market: Path
) -> None:
    policy = default_policy()
    params = policy.detectors["lockstep"].params
    want = DETECTORS["lockstep"].run(local_tables, params, policy.seed)
    got = spark_lockstep.detect_lockstep(
        tables, as_of=local_tables.reference_time(), seed=policy.seed, **params
    )
    # the same findings, byte for byte: ids, scores, members, evidence, explanations
    assert _canon(got) == _canon(want)
    # and they are the planted farms: most of each farm's bots in one finding
    truth = pd.read_csv(market / "truth.csv", dtype=str)
    bots = truth[(truth["kind"] == "engagement_farm") & (truth["role"] == "bot")]
    assert bots["ring_id"].nunique() == 3
    for ring, farm in bots.groupby("ring_id"):
        members = set(farm["account_id"])
        best = max(len(members & set(f.member_ids)) for f in got)
        assert best >= 0.8 * len(members), ring


def test_unknown_parameter_is_refused(tables: SparkTables) -> None:
    with pytest.raises(TypeError, match="windw_s"):
        spark_lockstep.detect_lockstep(tables, windw_s=60.0)
