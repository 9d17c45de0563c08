"""An export's tables as Spark DataFrames, in the normalised form of ``ringscope.contract``.

Each table is ``<export>/<name>.parquet``: one Parquet file or a folder of part
files (as Spark, Hive or a data lake write them), on any file system Hadoop
reaches (a local path, ``file://``, ``hdfs://``, ``s3a://``, ``gs://``, ``abfss://``).
Only ``accounts`` is required. Columns get the contract's types (strings,
UTC timestamps, doubles); a missing optional column is null. The Spark engine
reads exports as they are: check a new export's rows with ``ringscope load``
first (quarantine, duplicates, references), as the loader does for the local engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ringscope.algorithms.base import OTHER_IDENTIFIER_WEIGHT, ValueMap, map_tables
from ringscope.contract import LOAD_ORDER, REQUIRED_TABLES, TABLES
from ringscope.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession


def _spark_type(kind: str) -> str:
    return {"ts": "timestamp", "float": "double"}.get(kind, "string")


def table_path(export: str, name: str) -> str:
    """Where table ``name`` of ``export`` lies."""
    return f"{export.rstrip('/')}/{name}.parquet"


def _exists(spark: SparkSession, path: str) -> bool:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    p = jvm.org.apache.hadoop.fs.Path(path)
    fs = p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return bool(fs.exists(p))


def empty_frame(spark: SparkSession, name: str) -> DataFrame:
    """An empty DataFrame with the contract columns of table ``name``."""
    schema = ", ".join(f"`{c.name}` {_spark_type(c.type)}" for c in TABLES[name].columns)
    return spark.createDataFrame([], schema)


def normalise(frame: DataFrame, name: str) -> DataFrame:
    """The contract's columns of table ``name`` with the contract's types."""
    from pyspark.sql import functions as F

    spec = TABLES[name]
    have = set(frame.columns)
    missing = [c for c in spec.required if c not in have]
    if missing:
        raise InputError(f"{name}: missing required column(s) {', '.join(missing)}")
    cols = []
    for c in spec.columns:
        t = _spark_type(c.type)
        col = (F.col(f"`{c.name}`") if c.name in have else F.lit(None)).cast(t)
        if c.known is not None:  # a code (order status, identifier kind): as the loader keeps it
            col = F.lower(F.trim(col))
        cols.append(col.alias(c.name))
    return frame.select(*cols)


def _map_codes(
    frame: DataFrame, column: str, mapping: Mapping[str, str]
) -> tuple[DataFrame, dict[str, int]]:
    """``frame`` with ``column`` mapped through ``mapping`` (other values kept), and the
    values ``mapping`` does not name with their counts, as
    :meth:`~ringscope.algorithms.base.MarketTables.mapped` does."""
    from pyspark.sql import functions as F

    col = F.col(column)
    rows = (
        frame.where(col.isNotNull() & ~col.isin(*mapping)).groupBy(column).count().collect()
        if mapping
        else frame.where(col.isNotNull()).groupBy(column).count().collect()
    )
    unmapped = {str(r[0]): int(r[1]) for r in sorted(rows, key=lambda r: str(r[0]))}
    changes = {k: v for k, v in mapping.items() if k != v}
    if not changes:
        return frame, unmapped
    table = F.create_map(*[F.lit(x) for kv in sorted(changes.items()) for x in kv])
    return frame.withColumn(column, F.coalesce(F.try_element_at(table, col), col)), unmapped


@dataclass(frozen=True)
class SparkTables:
    """The eight contract tables of one export as Spark DataFrames.

    ``as_of`` is the reference time for ages, as in
    :class:`~ringscope.algorithms.base.MarketTables`: by default the latest
    engagement or order time; ``other_identifier_weight`` and ``unmapped`` as
    there too (see :meth:`mapped`).
    """

    accounts: DataFrame
    streams: DataFrame
    engagements: DataFrame
    follows: DataFrame
    orders: DataFrame
    affiliations: DataFrame
    identifiers: DataFrame
    labels: DataFrame
    as_of: datetime | None = None
    other_identifier_weight: float = OTHER_IDENTIFIER_WEIGHT
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)

    def table(self, name: str) -> DataFrame:
        frame: DataFrame = getattr(self, name)
        return frame

    def reference_time(self) -> pd.Timestamp:
        """``as_of`` if set, else the latest engagement or order time, else now (UTC)."""
        import pandas as pd

        if self.as_of is not None:
            t = pd.Timestamp(self.as_of)
            return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        latest = latest_micros((self.engagements, "ts"), (self.orders, "ts"))
        if latest is not None:
            return pd.Timestamp(latest, unit="us", tz="UTC")
        return pd.Timestamp.now(tz="UTC")

    def window(self, days: float | None) -> SparkTables:
        """The activity of the last ``days`` days, as :meth:`MarketTables.window`."""
        if days is None:
            return self
        import pandas as pd
        from pyspark.sql import functions as F

        ref = self.reference_time()
        cut = (ref - pd.Timedelta(days=days)).to_pydatetime()
        eng = self.engagements.where(F.col("ts") >= F.lit(cut))
        orders = self.orders.where(F.col("ts") >= F.lit(cut))
        used = (
            eng.select("stream_id")
            .union(orders.select("stream_id"))
            .where(F.col("stream_id").isNotNull())
            .distinct()
            .withColumn("_used", F.lit(True))
        )
        streams = (
            self.streams.join(used, "stream_id", "left")
            .where((F.col("started_at") >= F.lit(cut)) | F.col("_used").isNotNull())
            .drop("_used")
        )
        idents = self.identifiers.where(
            F.col("last_seen").isNull() | (F.col("last_seen") >= F.lit(cut))
        )
        return replace(
            self,
            streams=streams,
            engagements=eng,
            follows=self.follows.where(F.col("ts") >= F.lit(cut)),
            orders=orders,
            identifiers=idents,
            as_of=ref.to_pydatetime(),
        )

    def mapped(self, value_map: ValueMap | None = None) -> SparkTables:
        """Order statuses and identifier kinds mapped to the canonical ones, as
        :meth:`MarketTables.mapped <ringscope.algorithms.base.MarketTables.mapped>`."""
        return map_tables(self, value_map, _map_codes)


def latest_micros(*columns: tuple[DataFrame, str]) -> int | None:
    """The latest of the named timestamp columns, in microseconds since the epoch (UTC).

    Read as a number so that the driver's own time zone never shifts it.
    """
    from pyspark.sql import functions as F

    latest = [
        row[0]
        for frame, col in columns
        for row in [frame.agg(F.max(F.unix_micros(F.col(col)))).collect()[0]]
        if row[0] is not None
    ]
    return int(max(latest)) if latest else None


def read_export(spark: SparkSession, export: str) -> SparkTables:
    """Read every contract table of the Parquet export at ``export`` (missing ones empty)."""
    frames: dict[str, Any] = {}
    for name in LOAD_ORDER:
        path = table_path(export, name)
        if _exists(spark, path):
            try:
                raw = spark.read.parquet(path)
            except Exception as e:  # AnalysisException and Py4J errors: unreadable file
                raise InputError(f"{path}: cannot read as Parquet: {e}") from e
            frames[name] = normalise(raw, name)
        elif name in REQUIRED_TABLES:
            raise InputError(f"{path}: not found (the {name} table is required)")
        else:
            frames[name] = empty_frame(spark, name)
    return SparkTables(**frames)


def to_pandas(frame: DataFrame) -> pd.DataFrame:
    """A (small) Spark DataFrame as pandas, through Arrow, with UTC timestamps."""
    import pandas as pd

    table = frame.toArrow()
    out: pd.DataFrame = table.to_pandas()
    for name, dtype in frame.dtypes:
        if dtype == "timestamp" and name in out.columns:
            out[name] = pd.to_datetime(out[name], utc=True).astype("datetime64[us, UTC]")
    return out
