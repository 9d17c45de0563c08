"""``ringscope neo4j-import --csv-only``: the import files and the neo4j-admin command.

No Neo4j here: the contract suite (tests/contract/test_bulk_import.py) imports into a
real one and compares the graph with a transactional load's.
"""

from __future__ import annotations

import csv
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from ringscope.graphs.neo4j_store import SideFile

SMALL = Path(__file__).resolve().parent / "data" / "small-export"


def rs(*args: str | Path, cwd: Path, check: int = 0) -> subprocess.CompletedProcess[str]:
    """``ringscope ARGS`` in ``cwd`` (the side file's default place) as a user runs it."""
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(cwd / "var"), "COLUMNS": "200"}
    for name in ("RINGSCOPE_STORE", "RINGSCOPE_COLUMNAR_PATH"):
        env.pop(name, None)
    p = subprocess.run(
        [sys.executable, "-m", "ringscope.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == check, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_csv_only_writes_the_files_the_command_names(tmp_path: Path) -> None:
    p = rs("neo4j-import", SMALL, "--csv-only", tmp_path / "csv", cwd=tmp_path)
    command = shlex.split(p.stdout.strip())
    assert command[:5] == ["neo4j-admin", "database", "import", "full", "neo4j"]
    named = [a.split("=")[-1] for a in command if a.startswith(("--nodes=", "--relationships="))]
    assert named and all(Path(f).is_file() for f in named)
    assert "--relationships=ENGAGED=" + str(tmp_path / "csv" / "rels_engaged.csv") in command
    accounts = _rows(tmp_path / "csv" / "nodes_accounts.csv")
    assert len(accounts) == 47
    for row in accounts:
        labels = row[":LABEL"].split(";")
        assert labels[0] == "Account"
        assert sorted(label.lower() for label in labels[1:]) == row["roles"].split("|")
    with SideFile(tmp_path / "ringscope-events.duckdb") as side:
        assert side.counts()["engagements"] == 60
        assert len(side.loads()) == 1


def test_a_second_import_into_the_same_side_file_is_refused(tmp_path: Path) -> None:
    rs("neo4j-import", SMALL, "--csv-only", tmp_path / "csv", cwd=tmp_path)
    p = rs("neo4j-import", SMALL, "--csv-only", tmp_path / "csv2", cwd=tmp_path, check=1)
    assert "already holds loaded rows" in p.stderr
    assert not (tmp_path / "csv2").exists()


def test_csv_only_takes_no_home(tmp_path: Path) -> None:
    rs(
        "neo4j-import",
        SMALL,
        "--csv-only",
        tmp_path / "c",
        "--home",
        tmp_path,
        cwd=tmp_path,
        check=2,
    )


def test_a_bad_row_refuses_the_import_with_its_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(SMALL, data)
    streams = pd.read_csv(data / "streams.csv", dtype=str, keep_default_na=False)
    streams.loc[2, "started_at"] = "yesterday"
    streams.to_csv(data / "streams.csv", index=False)
    p = rs("neo4j-import", data, "--csv-only", tmp_path / "csv", cwd=tmp_path, check=1)
    text = " ".join(p.stderr.split())
    assert "streams.csv, row 3, column 'started_at'" in text
    assert "nothing was imported" in text
    assert not (tmp_path / "csv").exists()
    assert not (tmp_path / "ringscope-events.duckdb").exists()
