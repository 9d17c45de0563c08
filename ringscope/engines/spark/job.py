"""``ringscope detect --engine spark``: lock the store, start Spark, detect, save the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringscope.engines.spark.session import require_pyspark
from ringscope.policy import Policy, default_policy

if TYPE_CHECKING:
    from ringscope.engines.spark.detect import Progress
    from ringscope.jobs.detect import DetectionResult
    from ringscope.settings import Settings


def detect_with_spark(
    export: str,
    *,
    store_uri: str | None = None,
    policy: Policy | None = None,
    master: str | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> DetectionResult:
    """Run detection on Spark over the Parquet export ``export`` and save it to the store.

    The store (``--store``) holds the run as after ``ringscope detect`` with the
    local engine, so ``ringscope findings``, ``scores``, ``serve`` and the next
    run's comparison work the same. Raises
    :class:`~ringscope.engines.EngineUnavailable` without PySpark.
    """
    require_pyspark()
    from ringscope.engines.spark.detect import SparkEngine
    from ringscope.engines.spark.session import check_executors, spark_session
    from ringscope.jobs.detect import run_detection
    from ringscope.jobs.lock import exclusive_store
    from ringscope.settings import get_settings

    settings = settings or get_settings()
    uri = store_uri or settings.store
    policy = policy or default_policy()
    spark = spark_session(master)
    check_executors(spark)
    with exclusive_store(uri, settings.work_dir, settings) as (store, held):
        held.phase("detecting on spark")
        return run_detection(store, policy, progress=progress, engine=SparkEngine(spark, export))
