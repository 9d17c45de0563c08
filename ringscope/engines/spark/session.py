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


def check_executors(session: SparkSession) -> None:
    """Run one tiny job that imports ringscope's Spark engine on the executors, and raise
    :class:`EngineUnavailable` with the fix when they cannot (or run another version).

    The detectors run Python code on the executors; without this check a cluster whose
    executors' Python lacks ringscope fails minutes later, deep in a stage.
    """
    import re

    from ringscope import __version__

    def versions(_: Any) -> Any:
        # defined here, so that it is shipped by value: the executors need not have
        # ringscope to run it
        import importlib
        import pkgutil
        import platform

        try:  # the engine's modules, and so the packages they need (numpy, pandas...)
            import ringscope
            import ringscope.engines.spark as engine

            for m in pkgutil.iter_modules(engine.__path__, "ringscope.engines.spark."):
                importlib.import_module(m.name)
            found = ringscope.__version__
        except Exception as e:  # ModuleNotFoundError, or a broken install
            found = f"{type(e).__name__}: {e}"
        yield platform.python_version(), found

    sc = session.sparkContext
    try:
        seen = set(sc.parallelize([0], 1).mapPartitions(versions).collect())
    except Exception as e:  # the worker's Python could not even start
        errors = re.findall(r"^\w+(?:Error|Exception): .*$", str(e), flags=re.M)
        why = errors[-1] if errors else type(e).__name__
        raise EngineUnavailable(
            f"the Spark executors could not run Python ({why[:300]}); set "
            "spark.pyspark.python (or PYSPARK_PYTHON) to an interpreter with ringscope "
            f"{__version__} installed on every executor"
        ) from e
    bad = sorted(v for v in seen if v[1] != __version__)
    if bad:
        python, found = bad[0]
        raise EngineUnavailable(
            f"the Spark executors' Python {python} cannot use ringscope {__version__} "
            f"(it has: {found}); install it on every executor (pip install "
            f"'ringscope[spark]=={__version__}') or set spark.pyspark.python (or "
            "PYSPARK_PYTHON) to an interpreter that has it"
        )
