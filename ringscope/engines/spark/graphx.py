"""Graph algorithms of Apache Spark's GraphX, called on DataFrames.

GraphFrames runs its ``graphx`` algorithms (connected components, label
propagation, PageRank) through these same GraphX classes; GraphX ships with
every Spark distribution (``spark-graphx_*.jar``), so nothing is downloaded at
run time. Vertices are the distinct string ids of an edge list; they get
64-bit ids for GraphX and their names back afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Iteration cap of connected components: far above the diameter of any component
#: a detector keeps (components are capped at a few hundred accounts).
CC_MAX_ITER = 1000


class _Bridge:
    """The JVM classes of one session that the algorithms need."""

    def __init__(self, spark: SparkSession) -> None:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        self.spark = spark
        self.jvm: Any = jvm
        enc = jvm.org.apache.spark.sql.Encoders
        self.pair = enc.tuple(enc.scalaLong(), enc.scalaLong())
        self.pair_double = enc.tuple(enc.scalaLong(), enc.scalaDouble())
        self.tag = jvm.scala.reflect.ClassTag.apply(jvm.java.lang.Object().getClass())
        self.level = jvm.org.apache.spark.storage.StorageLevel.MEMORY_AND_DISK()

    def graph(self, edges: DataFrame) -> Any:
        """A GraphX graph of the (src, dst) long pairs of ``edges``."""
        rdd = getattr(edges.select("src", "dst")._jdf, "as")(self.pair).rdd()
        return self.jvm.org.apache.spark.graphx.Graph.fromEdgeTuples(
            rdd, 0, self.jvm.scala.Option.empty(), self.level, self.level, self.tag
        )

    def frame(self, vertex_rdd: Any, encoder: Any, value: str) -> DataFrame:
        from pyspark.sql import DataFrame

        jds = self.spark._jsparkSession.createDataset(vertex_rdd, encoder)
        return DataFrame(jds.toDF(), self.spark).toDF("vid", value)


def _index(edges: DataFrame, src: str, dst: str) -> tuple[DataFrame, DataFrame]:
    """Vertex ids for the names in ``edges`` and the edges as (src, dst) of ids."""
    from pyspark.sql import functions as F

    names = (
        edges.select(F.col(src).alias("name"))
        .union(edges.select(F.col(dst).alias("name")))
        .distinct()
        .withColumn("vid", F.monotonically_increasing_id())
        # materialised once: a recomputed shuffle could hand out other ids
        .localCheckpoint()
    )
    s = names.select(F.col("name").alias("_src_name"), F.col("vid").alias("_src"))
    d = names.select(F.col("name").alias("_dst_name"), F.col("vid").alias("_dst"))
    ids = (
        edges.select(F.col(src).alias("_src_name"), F.col(dst).alias("_dst_name"))
        .join(s, "_src_name")
        .join(d, "_dst_name")
        .select(F.col("_src").alias("src"), F.col("_dst").alias("dst"))
    )
    return names, ids


def connected_components(
    edges: DataFrame, *, src: str = "src", dst: str = "dst", max_iter: int = CC_MAX_ITER
) -> DataFrame:
    """Connected components of the undirected graph of ``edges`` (string ids).

    Returns ``name`` (every vertex that has an edge) and ``component`` (a
    64-bit label shared by the vertices of one component). ``max_iter`` is
    passed explicitly: GraphX stops there even if labels still move.
    """
    spark = edges.sparkSession
    bridge = _Bridge(spark)
    names, ids = _index(edges, src, dst)
    cc = bridge.jvm.org.apache.spark.graphx.lib.ConnectedComponents.run(
        bridge.graph(ids), int(max_iter), bridge.tag, bridge.tag
    )
    comp = bridge.frame(cc.vertices(), bridge.pair, "component")
    return names.join(comp, "vid").select("name", "component")


def label_propagation(
    edges: DataFrame, *, src: str = "src", dst: str = "dst", max_steps: int = 10
) -> DataFrame:
    """GraphX label propagation (communities) of ``edges``: ``name``, ``label``."""
    spark = edges.sparkSession
    bridge = _Bridge(spark)
    names, ids = _index(edges, src, dst)
    lp = bridge.jvm.org.apache.spark.graphx.lib.LabelPropagation.run(
        bridge.graph(ids), int(max_steps), bridge.tag
    )
    lab = bridge.frame(lp.vertices(), bridge.pair, "label")
    return names.join(lab, "vid").select("name", "label")


def pagerank(
    edges: DataFrame,
    *,
    src: str = "src",
    dst: str = "dst",
    iterations: int = 20,
    reset: float = 0.15,
) -> DataFrame:
    """GraphX PageRank (unweighted, directed) of ``edges``: ``name``, ``pagerank``."""
    spark = edges.sparkSession
    bridge = _Bridge(spark)
    names, ids = _index(edges, src, dst)
    pr = bridge.jvm.org.apache.spark.graphx.lib.PageRank.run(
        bridge.graph(ids), int(iterations), float(reset), bridge.tag, bridge.tag
    )
    ranks = bridge.frame(pr.vertices(), bridge.pair_double, "pagerank")
    return names.join(ranks, "vid").select("name", "pagerank")
