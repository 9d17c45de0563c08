"""CSV that ringscope writes for people opens in a spreadsheet without running anything:
a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading single quote (OWASP's advice against CSV injection), and numbers stay numbers
(``ringscope.csvsafe``). Checked on every CSV writer: the case file's ``members.csv`` and
``evidence.csv``, ``ringscope findings --format csv``, ``ringscope scores`` and the app's
``/api/ecosystem/*.csv``, on a store whose accounts are named like formulas."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers.app import access_for, auth

from ringscope.api.export import export_case
from ringscope.csvsafe import cell
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import load_export
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Run, Signal

SMALL = Path(__file__).resolve().parents[1] / "data" / "small-export"
#: Account names a spreadsheet would run as formulas.
HOSTILE = ('=HYPERLINK("http://evil.test","open")', "@SUM(1+1)", "-2+3", "+cmd|' /C calc'!A0")
RUN_ID = "run-20261201T000000Z-formulas"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-12.5", "-12.5"),  # a negative amount given as text stays a number
        ("+3", "+3"),
        ("-1e-05", "-1e-05"),
        (-12.5, -12.5),
        (7, 7),
        (None, None),
        ("by-0013", "by-0013"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_the_cell_rule(value: Any, written: Any) -> None:
    assert cell(value) == written


def read(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def assert_defused(rows: list[list[str]]) -> None:
    """No cell starts a formula; every cell that named a hostile account is quoted."""
    for row in rows:
        for c in row:
            if c[:1] in ("=", "+", "-", "@", "\t", "\r"):
                float(c)  # only a number may start so


def hostile_finding() -> Finding:
    return Finding.build(
        kind="identity_cluster",
        score=0.8,
        members=[Member(a, "buyer", 0.8) for a in HOSTILE] + [Member("by-0013", "buyer", 0.5)],
        beneficiaries=[Beneficiary(HOSTILE[0], "seller")],
        signals=[Signal("shared_device", 1.0, 0.5, 1.0)],
        explanation="=HYPERLINK(...) and three more share a device.",
        detector=DetectorInfo("identifiers", "1.0.0", {}),
        evidence={
            "orders": [
                {
                    "order_id": "ord-x1",
                    "buyer_id": HOSTILE[1],
                    "amount": 12.5,
                    "change": -3.25,
                    "status": "=completed",
                    "ts": "2026-10-06T12:10:00+00:00",
                }
            ]
        },
    )


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small export plus accounts named like formulas, one run with their finding and
    a creators' health row (the ecosystem page's CSV) with a falling health."""
    d = tmp_path_factory.mktemp("formulas")
    data = d / "data"
    shutil.copytree(SMALL, data)
    with (data / "accounts.csv").open("a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        for a in HOSTILE:
            w.writerow([a, "buyer", "2026-09-01T00:00:00Z", "SG", "active"])
    path = d / "s.duckdb"
    with EmbeddedStore(path) as s:
        report = load_export(s, data, rejects_dir=d / "rejects")
        assert report.rejected == 0 and not report.failed
        creators = [
            {
                "creator_id": HOSTILE[3],
                "health": 0.4,
                "previous": 0.75,
                "change": -0.35,
                "components": {},
            }
        ]
        s.begin_run(Run(RUN_ID, datetime(2026, 12, 1, tzinfo=UTC), "running"))
        s.complete_run(RUN_ID, [hostile_finding()], {"health": {"creators": creators}})
    return path


def copy_of(store_file: Path, into: Path) -> Path:
    """A private copy of the store (one process per DuckDB file)."""
    shutil.copy(store_file, into / "s.duckdb")
    return into / "s.duckdb"


def test_case_file_csvs(store_file: Path, tmp_path: Path) -> None:
    with EmbeddedStore(copy_of(store_file, tmp_path)) as store:
        data = export_case(store, hostile_finding().id, who="t", via="test").data
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        members = read(z.read("members.csv").decode())
        evidence = read(z.read("evidence.csv").decode())
    for rows in (members, evidence):
        assert_defused(rows)
    ids = {r[0] for r in members[1:]}
    assert {"'" + a for a in HOSTILE} <= ids and "by-0013" in ids
    head, row = evidence[0], evidence[1]
    assert row[head.index("buyer_id")] == "'@SUM(1+1)"
    assert row[head.index("status")] == "'=completed"
    assert row[head.index("change")] == "-3.25"  # a negative number stays a number
    assert row[head.index("amount")] == "12.5"


def test_cli_findings_and_scores_csvs(store_file: Path, tmp_path: Path) -> None:
    db = copy_of(store_file, tmp_path)
    env = {**os.environ, "RINGSCOPE_WORK_DIR": str(tmp_path / "var")}
    env.pop("RINGSCOPE_STORE", None)
    cli = [sys.executable, "-m", "ringscope.cli"]
    found = subprocess.run(
        [*cli, "findings", "--store", str(db), "--format", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr
    rows = read(found.stdout)
    assert_defused(rows)
    head, row = rows[0], rows[1]
    assert row[head.index("explanation")].startswith("'=HYPERLINK(...)")
    assert row[head.index("members")].startswith("'")  # the first member is a formula
    scores = subprocess.run(
        [*cli, "scores", "--store", str(db)], env=env, capture_output=True, text=True, timeout=120
    )
    assert scores.returncode == 0, scores.stderr
    rows = read(scores.stdout)
    assert_defused(rows)
    assert {"'" + a for a in HOSTILE} <= {r[0] for r in rows[1:]}
    assert all(float(r[1]) > 0 for r in rows[1:])
    # the JSON output is data for programs: as it is
    as_json = subprocess.run(
        [*cli, "findings", "--store", str(db)], env=env, capture_output=True, text=True, timeout=120
    )
    members = json.loads(as_json.stdout)["findings"][0]["members"]
    assert {m["account_id"] for m in members} >= set(HOSTILE)


def test_the_apps_csv_downloads(store_file: Path, tmp_path: Path) -> None:
    from ringscope.api.app import create_app

    with (
        EmbeddedStore(copy_of(store_file, tmp_path)) as store,
        TestClient(create_app(store=store, access=access_for()), headers=auth("test-viewer")) as c,
    ):
        for table in ("trend", "kinds", "changes", "creators", "decisions"):
            r = c.get(f"/api/ecosystem/{table}.csv")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            assert_defused(read(r.text))
        creators = read(c.get("/api/ecosystem/creators.csv").text)
    head, row = creators[0], creators[1]
    assert row[head.index("creator_id")] == "'" + HOSTILE[3]
    assert row[head.index("change")] == "-0.35"
