"""The Spark session of a detection run: local mode for one machine, any master for a cluster.

Under ``spark-submit`` the master, executors and resources come from its options
and ``spark-defaults.conf``; :func:`spark_session` only sets what ringscope needs
(UTC session time zone, Arrow) and, when nothing else names a master, local mode.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from ringscope.engines import EngineUnavailable

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Settings every ringscope Spark session gets (times are compared in UTC).
BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # detectors that run on the driver collect their tables (10M events: about 1 GB)
    "spark.driver.maxResultSize": "8g",
}
#: Extra settings in local mode: few shuffle partitions and no web UI on a small machine.
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.default.parallelism": "8",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "4g",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}


def require_pyspark() -> None:
    """Raise :class:`EngineUnavailable` with the install command when PySpark is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError as e:
        raise EngineUnavailable(
            "the spark engine needs PySpark: pip install 'ringscope[spark]' (and Java 17 or later)"
        ) from e


def spark_session(
    master: str | None = None,
    *,
    app_name: str = "ringscope-detect",
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """The active Spark session, or a new one.

    Parameters
    ----------
    master : str, optional
        Spark master URL (``local[2]``, ``yarn``, ``k8s://https://host:443``,
        ``spark://host:7077``). Default: the one ``spark-submit`` set, else
        ``local[*]``.
    app_name : str
        Application name shown by the cluster manager.
    conf : dict, optional
        More Spark settings, laid over ringscope's.
    """
    require_pyspark()
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    given = SparkConf()
    chosen = master or (given.get("spark.master") if given.contains("spark.master") else None)
    settings: dict[str, Any] = dict(BASE_CONF)
    if chosen is None or chosen.startswith("local"):
        settings.update(LOCAL_CONF)
        # local workers run this interpreter (the one with ringscope and its packages)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings.update(conf or {})
    builder = SparkSession.builder.appName(app_name).master(chosen or "local[*]")
    for k, v in settings.items():
        if not given.contains(k) or k in (conf or {}):
            builder = builder.config(k, v)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
