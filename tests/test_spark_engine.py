"""The Spark engine (PySpark in local mode) finds what the local engine finds.

One Spark session (``local[2]``, few shuffle partitions) serves every test of
this module; the marketplace is a small generated one, written as Parquet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.registry import DETECTORS
from ringscope.cli import app
from ringscope.jobs.detect import detect_tables
from ringscope.loaders.pipeline import read_export_tables
from ringscope.loaders.synthetic import generate
from ringscope.model import Finding
from ringscope.policy import default_policy


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spark-market")
    generate(folder, events=4_000, seed=7, fmt="parquet")
    return folder


@pytest.fixture(scope="module")
def local_tables(market: Path) -> MarketTables:
    return read_export_tables(market)


def _canon(findings: list[Finding]) -> list[str]:
    return [json.dumps(f.to_dict(), sort_keys=True, default=str) for f in findings]


@pytest.fixture(scope="module")
def spark_run(spark: SparkSession, market: Path) -> Any:
    from ringscope.engines.spark.detect import detect_export

    return detect_export(spark, str(market), default_policy())


def test_detectors_on_spark_equal_local(spark_run: Any, local_tables: MarketTables) -> None:
    from ringscope.engines.spark.detect import SPARK_DETECTORS

    policy = default_policy()
    assert set(SPARK_DETECTORS) == {
        "shared_identifiers",
        "commission_rings",
        "label_propagation",
        "dense_blocks",
        "money_cycles",
        "lockstep",
    }
    for name in SPARK_DETECTORS:
        assert spark_run.engines[name] == "spark"
        params = policy.detectors[name].params
        local = DETECTORS[name].run(local_tables, params, policy.seed)
        assert local, f"the generated marketplace plants what {name} finds"
        # the same findings, byte for byte: ids, scores, members, evidence, explanations
        assert _canon(spark_run.by_detector[name]) == _canon(local), name


def test_account_graph_on_spark_equals_local(spark: SparkSession, market: Path) -> None:
    import numpy as np

    from ringscope.algorithms import linkanalysis
    from ringscope.engines.spark import linkanalysis as spark_links
    from ringscope.engines.spark.tables import read_export, to_pandas

    tables = read_export(spark, str(market))
    extra = ("seed-without-links", "a-seed")
    nodes, edges = spark_links.account_graph(
        tables, extra_accounts=extra, max_accounts_per_identifier=12, max_stream_engagers=20
    )
    want_nodes, want_edges = linkanalysis.account_graph(
        identifiers=to_pandas(tables.identifiers),
        orders=to_pandas(tables.orders),
        engagements=to_pandas(tables.engagements),
        extra_accounts=extra,
        max_accounts_per_identifier=12,
        max_stream_engagers=20,
    )
    assert len(want_edges) > 100 and set(want_edges["via"]) >= {"identifier", "order"}
    assert nodes.tolist() == want_nodes.tolist()
    assert set(extra) <= set(nodes)
    assert edges[["a", "b", "via"]].equals(want_edges[["a", "b", "via"]])
    # the same links, summed in another order: equal to the last bits
    np.testing.assert_allclose(edges["weight"], want_edges["weight"], rtol=1e-12, atol=0)


def test_whole_run_on_spark_gives_the_local_queue(
    spark_run: Any, local_tables: MarketTables
) -> None:
    local_queue, _ = detect_tables(local_tables, default_policy())
    assert set(spark_run.engines) == set(DETECTORS)
    assert [f.id for f in spark_run.findings] == [f.id for f in local_queue]
    assert _canon(spark_run.findings) == _canon(local_queue)


def test_cli_detect_engine_spark_saves_a_run(
    spark: SparkSession, market: Path, local_tables: MarketTables, tmp_path: Path
) -> None:
    # the detectors that run on Spark are checked above; here the command's plumbing
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "detectors:\n"
        "  shared_identifiers: {enabled: false}\n"
        "  commission_rings: {enabled: false}\n"
        "  lockstep: {enabled: false}\n",
        "utf-8",
    )
    store = tmp_path / "s.duckdb"
    out = tmp_path / "findings.json"
    runner = CliRunner()
    env = {"RINGSCOPE_WORK_DIR": str(tmp_path)}
    args = ["detect", "--engine", "spark", "--spark-master", "local[2]", "--policy", str(policy)]
    args += ["--data", str(market), "--store", str(store), "--out", str(out)]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text("utf-8"))
    assert written["findings"], "money cycles and dense blocks are planted"
    shown = runner.invoke(app, ["findings", "--store", str(store)], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout) == written
    from ringscope.policy import load_policy

    local_queue, _ = detect_tables(local_tables, load_policy(policy))
    assert [f["id"] for f in written["findings"]] == [f.id for f in local_queue]


def test_graphx_components_labels_and_ranks(spark: SparkSession) -> None:
    from ringscope.engines.spark.graphx import (
        connected_components,
        label_propagation,
        pagerank,
    )

    edges = spark.createDataFrame(
        [("a", "b"), ("b", "c"), ("c", "a"), ("x", "y"), ("y", "z"), ("z", "x"), ("p", "q")],
        "src string, dst string",
    )
    comp = {r["name"]: r["component"] for r in connected_components(edges).collect()}
    groups = {frozenset(n for n in comp if comp[n] == c) for c in comp.values()}
    assert groups == {frozenset("abc"), frozenset("xyz"), frozenset("pq")}
    labels = {r["name"]: r["label"] for r in label_propagation(edges, max_steps=5).collect()}
    assert labels["a"] != labels["x"] and labels["a"] != labels["p"]
    # a directed cycle a -> b -> c -> a and d -> a: a collects the most
    directed = spark.createDataFrame(
        [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")], "src string, dst string"
    )
    ranks = {r["name"]: r["pagerank"] for r in pagerank(directed, iterations=30).collect()}
    assert max(ranks, key=lambda k: ranks[k]) == "a"
    assert ranks["d"] < ranks["c"]


def test_missing_export_and_bad_options_are_clear(market: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"RINGSCOPE_WORK_DIR": str(tmp_path)}
    no_data = runner.invoke(app, ["detect", "--engine", "spark"], env=env)
    assert no_data.exit_code == 2 and "--data" in no_data.output
    wrong = runner.invoke(app, ["detect", "--engine", "dask"], env=env)
    assert wrong.exit_code == 2 and "local or spark" in wrong.output
    args = ["detect", "--engine", "spark", "--data", str(tmp_path / "nowhere")]
    args += ["--store", str(tmp_path / "s.duckdb")]
    missing = runner.invoke(app, args, env=env)
    assert missing.exit_code == 1
    assert "accounts table is required" in missing.output


def test_executors_without_ringscope_stop_the_run_at_once(market: Path, tmp_path: Path) -> None:
    """Executors whose Python lacks ringscope (here Debian's own python3): the command
    stops after one tiny job with the fix, before reading the export, and saves no run."""
    system_python = Path("/usr/bin/python3")
    probe = subprocess.run(
        [str(system_python), "-c", "import ringscope"],
        capture_output=True,
        check=False,
        cwd=tmp_path,
    )
    assert probe.returncode != 0, "the system Python must not have ringscope for this test"
    store = tmp_path / "s.duckdb"
    args = ["detect", "--engine", "spark", "--spark-master", "local[1]"]
    args += ["--data", str(market), "--store", str(store)]
    done = subprocess.run(
        [sys.executable, "-m", "ringscope.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            **os.environ,
            "PYSPARK_PYTHON": str(system_python),
            "RINGSCOPE_WORK_DIR": str(tmp_path),
        },
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert (
        "ringscope/cli.py" not in done.stderr
    )  # Spark logs the worker's error; no traceback of ours
    error = done.stderr[done.stderr.index("error:") :]
    assert "executors" in error and "No module named" in error, error
    assert "pip install" in error and "PYSPARK_PYTHON" in error, error
    if store.exists():
        from ringscope.graphs.embedded import EmbeddedStore

        with EmbeddedStore(store) as s:
            assert s.runs() == []


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_and_algorithms_need_no_pyspark(tmp_path: Path) -> None:
    code = (
        "import sys, json, pkgutil, importlib\n"
        "import ringscope.algorithms, ringscope.cli, ringscope.jobs.detect\n"
        "for m in pkgutil.walk_packages(ringscope.algorithms.__path__, 'ringscope.algorithms.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] == 'pyspark')))\n"
    )
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    # without PySpark, asking for the spark engine says what to install
    blocked: dict[str, Any] = {"pyspark": None}
    code = (
        f"import sys; sys.modules.update({blocked!r})\n"
        "from ringscope.cli import main\n"
        f"sys.exit(main(['detect', '--engine', 'spark', '--data', {str(tmp_path)!r},"
        f" '--store', {str(tmp_path / 's.duckdb')!r}]))\n"
    )
    out = _run_python(code)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ringscope[spark]" in out.stderr


def test_spark_submit_entry_file_is_the_cli() -> None:
    from ringscope.engines.spark import submit

    path = _run_python("import runpy, sys; sys.argv = ['x', '--path']; " + _RUN_SUBMIT)
    assert path.returncode == 0, path.stderr
    assert Path(path.stdout.strip()) == Path(submit.__file__)
    helped = _run_python("import runpy, sys; sys.argv = ['x', 'detect', '--help']; " + _RUN_SUBMIT)
    assert helped.returncode == 0, helped.stderr
    assert "--spark-master" in helped.stdout and "--engine" in helped.stdout


_RUN_SUBMIT = "runpy.run_module('ringscope.engines.spark.submit', run_name='__main__')"


def _summary(store: Any, run_id: str) -> dict[str, Any]:
    """A run's summary without what differs by engine or by run (timings, run ids,
    where the engine ran)."""
    s = dict(store.get_run(run_id).summary)
    for key in ("seconds", "engine", "spark_master", "export", "detector_engines"):
        s.pop(key, None)
    s["previous_run"] = s["previous_run"] is not None
    return s


def test_runs_on_spark_save_the_summary_of_local_runs(
    spark: SparkSession, market: Path, tmp_path: Path
) -> None:
    """Two runs on each engine over the same export, the second after decisions on the
    first's findings: the summaries are equal, health, labels from decisions, dismissed
    cases held back and confirmed cases raised again included. The first run sees only
    the last ten days of activity, so the second finds networks that have grown (of the
    last week's networks only a farm whose accounts had not ordered yet grows, and shared
    identifiers judge a farm by its accounts' orders)."""
    from ringscope.engines.spark.detect import SparkEngine
    from ringscope.graphs.embedded import EmbeddedStore
    from ringscope.jobs.detect import run_detection
    from ringscope.loaders.pipeline import load_export
    from ringscope.model import Decision
    from ringscope.policy import Policy

    recent = Policy.model_validate({**default_policy().model_dump(), "window_days": 10})
    summaries = []
    for engine in ("local", "spark"):
        with EmbeddedStore(tmp_path / f"{engine}.duckdb") as store:
            if engine == "local":
                load_export(store, market, rejects_dir=tmp_path / "rejects")
            how = None if engine == "local" else SparkEngine(spark, str(market))
            first = run_detection(store, recent, engine=how)
            assert len(first.findings) >= 3, "the generated market plants networks"
            for i, f in enumerate(first.findings):
                decision = "dismissed" if i % 3 == 2 else "confirmed"
                store.record_decision(
                    Decision(f.case_id or f.id, decision, "analyst", first.run.started_at, "note")
                )
            second = run_detection(store, default_policy(), engine=how)
            summaries.append((_summary(store, first.run.id), _summary(store, second.run.id)))
    (local_first, local_second), (spark_first, spark_second) = summaries
    assert local_first == spark_first
    assert local_second == spark_second
    assert local_second["labels_from_decisions"] > 0
    assert local_second["suppressed"], "a dismissed case comes back unchanged"
    assert local_second["raised_again"], "a confirmed case has grown"
    assert local_second["health"]["creators"] and local_second["health"]["events_flagged"] > 0
