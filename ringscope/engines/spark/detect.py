"""One detection run on Spark: read the export, run the policy's detectors, build the queue.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ringscope import __version__
from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.impact import add_impact
from ringscope.contract import LOAD_ORDER
from ringscope.engines.spark import commission, cycles, dense, identifiers, linkanalysis, lockstep
from ringscope.engines.spark.tables import SparkTables, read_export, to_pandas
from ringscope.jobs.detect import enabled_detectors, ranked_queue
from ringscope.model import Finding, Run
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
    tables = tables.window(policy.window_days)
    ref = tables.reference_time()
    enabled = enabled_detectors(policy)
    collected: dict[str, Any] = {}

    def local_tables(names: tuple[str, ...]) -> MarketTables:
        for name in names:
            if name not in collected:
                collected[name] = to_pandas(tables.table(name))
        # as_of fixed to the whole export's reference time, whatever tables are collected
        return MarketTables(**collected, as_of=ref.to_pydatetime())

    by_detector: dict[str, list[Finding]] = {}
    timings: dict[str, float] = {}
    engines: dict[str, str] = {}
    for i, name in enumerate(enabled):
        if progress:
            progress(name, i, len(enabled))
        params = policy.detectors[name].params if name in policy.detectors else {}
        t0 = time.perf_counter()
        if name in SPARK_DETECTORS:
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
    return SparkDetection(queue, by_detector, timings, engines)


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


def run_spark_detection(
    store: GraphStore,
    spark: SparkSession,
    export: str,
    policy: Policy | None = None,
    *,
    progress: Progress | None = None,
) -> tuple[Run, SparkDetection]:
    """One run on Spark, saved to ``store`` as the local engine saves its runs.

    The run is compared with the store's previous run (new, grown, shrunk,
    unchanged, dissolved) and written atomically; a failure marks it failed.
    """
    from ringscope.jobs.detect import new_run_id
    from ringscope.jobs.diff import diff_findings, summarise

    policy = policy or default_policy()
    started = datetime.now(UTC)
    run = Run(
        id=new_run_id(started),
        started_at=started,
        status="running",
        policy=policy.model_dump(),
        data_fingerprint=export_fingerprint(spark, export),
        summary={
            "ringscope_version": __version__,
            "policy_digest": policy.digest(),
            "engine": "spark",
            "spark_master": spark.sparkContext.master,
            "export": export,
        },
    )
    for stale in store.runs(status="running"):
        store.fail_run(stale.id, "abandoned: the run's process stopped before it finished")
    previous = store.latest_run()
    previous_findings = store.findings(previous.id) if previous else []
    store.begin_run(run)
    try:
        result = detect_export(spark, export, policy, progress=progress)
        findings, changes = diff_findings(previous_findings, result.findings)
        by_kind: dict[str, int] = {}
        for f in findings:
            by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
        summary: dict[str, Any] = {
            **run.summary,
            "findings": len(findings),
            "by_kind": dict(sorted(by_kind.items())),
            "accounts_flagged": len({a for f in findings for a in f.member_ids}),
            "seconds": {k: round(v, 3) for k, v in result.timings.items()},
            "detector_engines": result.engines,
            "previous_run": previous.id if previous else None,
            "changes": summarise(changes),
            "dissolved": [c.previous_id for c in changes if c.status == "dissolved"],
        }
        store.complete_run(run.id, findings, summary)
    except BaseException as e:
        try:
            store.fail_run(run.id, f"{type(e).__name__}: {e}")
        except Exception as status_error:
            e.add_note(f"marking run {run.id} as failed also failed: {status_error}")
        raise
    return store.get_run(run.id), SparkDetection(
        findings, result.by_detector, result.timings, result.engines
    )
