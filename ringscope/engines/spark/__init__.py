"""The detection run on Apache Spark (PySpark), for marketplaces past one machine.

``ringscope detect --engine spark --data URI`` reads a Parquet export from any
Hadoop file system and runs the policy's detectors with their heavy steps on
Spark DataFrames; findings have the same format, ids and scores as the local
engine's. Nothing here is imported unless the spark engine is chosen.
"""
