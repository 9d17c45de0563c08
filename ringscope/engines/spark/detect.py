"""One detection run on Spark: read the export, run the policy's detectors, build the queue.

A run on Spark is saved by the same pipeline as a local one
(:func:`ringscope.jobs.detect.run_detection` with :class:`SparkEngine`), so its summary
has the same entries (health, suppressed, raised again) and the investigator app shows
it alike.

Detectors with a Spark implementation (:data:`SPARK_DETECTORS`) run their heavy
steps on the cluster. The others run with the local code on the driver, over
their input tables collected from Spark (:data:`DRIVER_DETECTORS` says which),
so a run always covers the whole policy. The queue's impact figures read only
the members' orders and the engagements of the streams they engaged with
(:func:`impact_tables`). Either way the findings are those of the local engine
on the same data.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from inspect import signature
from typing import TYPE_CHECKING, Any

import pandas as pd

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.impact import add_impact
from ringscope.contract import LOAD_ORDER
from ringscope.engines.spark import commission, cycles, dense, identifiers, linkanalysis, lockstep
from ringscope.engines.spark.tables import SparkTables, read_export, to_pandas
from ringscope.jobs.detect import Detected, HowToDetect, enabled_detectors, ranked_queue
from ringscope.model import Finding
from ringscope.policy import Policy, default_policy

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from ringscope.graphs.store import GraphStore

Progress = Callable[[str, int, int], None]
SparkDetector = Callable[..., list[Finding]]

#: Detectors whose heavy steps run on Spark.
SPARK_DETECTORS: dict[str, SparkDetector] = {
    "shared_identifiers": identifiers.detect_shared_identifiers,
    "commission_rings": commission.detect_commission_rings,
    "label_propagation": linkanalysis.detect_guilt_by_association,
    "dense_blocks": dense.detect_dense_blocks,
    "money_cycles": cycles.detect_money_cycles,
    "lockstep": lockstep.detect_lockstep,
}
#: The tables each driver-side detector reads (collected from Spark); a detector of the
#: registry with neither a Spark implementation nor an entry here reads all tables.
#: ``money_flows`` runs on the driver: its search is per account in time order, over the
#: orders and accounts tables only (about 100 bytes per order on the driver).
DRIVER_TABLES: dict[str, tuple[str, ...]] = {"money_flows": ("orders", "accounts")}
DRIVER_DETECTORS: tuple[str, ...] = tuple(DRIVER_TABLES)


@dataclass(frozen=True)
class SparkDetection:
    """Findings of one run (ranked queue), per-detector raw findings and timings."""

    findings: list[Finding]
    by_detector: dict[str, list[Finding]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    engines: dict[str, str] = field(default_factory=dict)
    #: values of the export the policy's mapping left as they are (``MarketTables.unmapped``)
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the tables the detectors read (windowed and mapped through the policy)
    tables: SparkTables | None = None


def impact_tables(tables: SparkTables, findings: list[Finding]) -> MarketTables:
    """The rows of ``tables`` that the impact figures of ``findings`` read, as pandas.

    :func:`~ringscope.algorithms.impact.add_impact` sums the members' orders
    and counts the events and viewers of the streams members engaged with;
    only those orders and those streams' engagements come to the driver (with
    the streams table, to find the beneficiaries' streams). The figures are
    the ones the whole tables give.
    """
    from pyspark.sql import functions as F

    members = sorted({a for f in findings for a in f.member_ids})
    if not members:
        return MarketTables(as_of=tables.as_of)
    spark = tables.orders.sparkSession
    who = F.broadcast(spark.createDataFrame([(a,) for a in members], "account_id string"))
    orders = tables.orders.join(
        who.withColumnRenamed("account_id", "buyer_id"), "buyer_id", "left_semi"
    )
    ev = tables.engagements.select("account_id", "stream_id")
    touched = ev.join(who, "account_id", "left_semi").select("stream_id").distinct()
    return MarketTables(
        orders=to_pandas(orders),
        engagements=to_pandas(ev.join(touched, "stream_id", "left_semi")),
        streams=to_pandas(tables.streams.select("stream_id", "creator_id")),
        as_of=tables.as_of,
    )


def detect_export(
    spark: SparkSession,
    export: str,
    policy: Policy | None = None,
    *,
    progress: Progress | None = None,
) -> SparkDetection:
    """Run the policy's enabled detectors on the Parquet export at ``export``."""
    return detect_spark_tables(read_export(spark, export), policy, progress=progress)


def detect_spark_tables(
    tables: SparkTables,
    policy: Policy | None = None,
    *,
    progress: Progress | None = None,
) -> SparkDetection:
    """Run the policy's enabled detectors on ``tables`` and build the queue."""
    from ringscope.algorithms.registry import DETECTORS

    policy = policy or default_policy()
    # the export's statuses and kinds as the detectors know them (the policy's mapping)
    tables = tables.window(policy.window_days).mapped(policy.mapping.value_map())
    ref = tables.reference_time()
    enabled = enabled_detectors(policy)
    collected: dict[str, Any] = {}

    def local_tables(names: tuple[str, ...]) -> MarketTables:
        for name in names:
            if name not in collected:
                collected[name] = to_pandas(tables.table(name))
        # as_of fixed to the whole export's reference time, whatever tables are collected
        return MarketTables(
            **collected,
            as_of=ref.to_pydatetime(),
            other_identifier_weight=tables.other_identifier_weight,
        )

    by_detector: dict[str, list[Finding]] = {}
    timings: dict[str, float] = {}
    engines: dict[str, str] = {}
    for i, name in enumerate(enabled):
        if progress:
            progress(name, i, len(enabled))
        params = policy.detectors[name].params if name in policy.detectors else {}
        t0 = time.perf_counter()
        if name in SPARK_DETECTORS:
            if "other_identifier_weight" in signature(DETECTORS[name].function).parameters:
                params = {**params, "other_identifier_weight": tables.other_identifier_weight}
            found = SPARK_DETECTORS[name](tables, as_of=ref, seed=policy.seed, **params)
            engines[name] = "spark"
        else:
            needed = DRIVER_TABLES.get(name, LOAD_ORDER)
            found = DETECTORS[name].run(local_tables(needed), params, policy.seed)
            engines[name] = "driver"
        by_detector[name] = found
        timings[name] = time.perf_counter() - t0
    if progress:
        progress("queue", len(enabled), len(enabled))
    t0 = time.perf_counter()
    queue = ranked_queue([f for fs in by_detector.values() for f in fs], policy)
    queue = add_impact(queue, impact_tables(tables, queue))
    timings["queue and impact"] = time.perf_counter() - t0
    return SparkDetection(queue, by_detector, timings, engines, tables.unmapped, tables)


def export_fingerprint(spark: SparkSession, export: str) -> str:
    """SHA-256 over the export's Parquet files (path, size, modification time)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    h = hashlib.sha256()
    for name in LOAD_ORDER:
        p = jvm.org.apache.hadoop.fs.Path(f"{export.rstrip('/')}/{name}.parquet")
        fs = p.getFileSystem(conf)
        if not fs.exists(p):
            continue
        files = fs.listFiles(p, True)
        entries = []
        while files.hasNext():
            st = files.next()
            entries.append(
                (str(st.getPath().getName()), int(st.getLen()), int(st.getModificationTime()))
            )
        for e in sorted(entries):
            h.update(f"{name}/{e[0]}:{e[1]}:{e[2]}\n".encode())
    return "spark:" + h.hexdigest()


def with_labels(tables: SparkTables, extra: pd.DataFrame) -> SparkTables:
    """``tables`` with the rows of ``extra`` (labels learnt from decisions, columns of
    the labels table) added to its labels, as ``with_decision_labels`` does locally."""
    if extra.empty:
        return tables
    labels = tables.labels
    rows = labels.sparkSession.createDataFrame(extra[list(labels.columns)], schema=labels.schema)
    return replace(tables, labels=labels.unionByName(rows))


@dataclass(frozen=True)
class SparkEngine:
    """The Spark engine of a run (:class:`ringscope.jobs.detect.Engine`): the Parquet
    export at ``export`` read and detected on ``spark``; the run is saved to the store
    by :func:`ringscope.jobs.detect.run_detection` as a local run is."""

    spark: SparkSession
    export: str

    def fingerprint(self, store: GraphStore) -> str:
        return export_fingerprint(self.spark, self.export)

    def summary(self) -> dict[str, Any]:
        return {
            "engine": "spark",
            "spark_master": self.spark.sparkContext.master,
            "export": self.export,
        }

    def detect(
        self, store: GraphStore, policy: Policy, learned: pd.DataFrame, how: HowToDetect
    ) -> Detected:
        from ringscope.engines.spark.health import health_counts

        tables = with_labels(read_export(self.spark, self.export), learned)
        result = detect_spark_tables(tables, policy, progress=how.progress)
        used = result.tables
        assert used is not None
        return Detected(
            result.findings,
            result.timings,
            result.unmapped,
            used.reference_time(),
            lambda flagged: health_counts(used, flagged),
            {"detector_engines": result.engines},
        )
