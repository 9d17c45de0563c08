"""A run's findings as they leave ringscope (``ringscope.jobs.reports``), called from
Python as benchmarks and notebooks call them; ``tests/test_cli.py`` checks the same
through the command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from ringscope.errors import NotFoundError
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.jobs.reports import (
    FINDING_KEYS,
    findings_csv,
    findings_document,
    findings_json,
    run_findings,
    scores_csv,
    scores_rows,
)
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal


def finding(kind: str, score: float, members: dict[str, float]) -> Finding:
    return Finding.build(
        kind=kind,
        score=score,
        members=[Member(a, "buyer", s) for a, s in members.items()],
        beneficiaries=[Beneficiary("=HYPERLINK(1)", "seller")],
        signals=[Signal("shared_device", 1.0, 0.5, 1.0)],
        explanation=f"{len(members)} buyers share a device.",
        detector=DetectorInfo("identifiers", "1.0.0", {"min_shared": 2}),
        evidence={"identifiers": [{"account_id": a} for a in members]},
    )


RANKED = [
    finding("identity_cluster", 0.9, {"b2": 0.8, "b1": 0.8, "b3": 0.4}),
    finding("commission_ring", 0.7, {"b1": 0.8, "b3": 0.6, "b4": 0.2}),
]


def test_scores_keep_each_accounts_highest_score_and_the_first_finding_on_a_tie() -> None:
    first, second = RANKED[0].id, RANKED[1].id
    assert scores_rows(RANKED) == [
        ("b1", 0.8, first),  # 0.8 in both: the higher-ranked finding keeps it
        ("b2", 0.8, first),
        ("b3", 0.6, second),
        ("b4", 0.2, second),
    ]
    rows = list(csv.reader(io.StringIO(scores_csv(RANKED))))
    assert rows[0] == ["account_id", "score", "finding_id"]
    assert rows[1] == ["b1", "0.800000", first]


def test_the_findings_document_holds_the_documented_fields_without_evidence() -> None:
    doc = findings_document("run-1", RANKED)
    assert doc["run_id"] == "run-1"
    assert [set(f) for f in doc["findings"]] == [set(FINDING_KEYS)] * 2
    assert json.loads(findings_json("run-1", RANKED)) == json.loads(json.dumps(doc))
    assert findings_json("run-1", RANKED) == findings_json("run-1", list(RANKED))


def test_the_findings_csv_is_safe_in_a_spreadsheet() -> None:
    rows = list(csv.reader(io.StringIO(findings_csv("run-1", RANKED))))
    assert rows[0][:3] == ["run_id", "id", "kind"] and len(rows) == 3
    assert rows[1][5] == "b1|b2|b3"  # members sorted, joined by |
    assert rows[1][6] == "'=HYPERLINK(1)"  # a formula is written as text


def test_a_store_without_a_run_says_what_to_do(tmp_path: Path) -> None:
    with (
        EmbeddedStore(tmp_path / "s.duckdb") as store,
        pytest.raises(NotFoundError, match="ringscope detect"),
    ):
        run_findings(store)


def test_spark_submit_reaches_the_command_through_its_entry_point() -> None:
    from ringscope.cli import main
    from ringscope.engines.spark.submit import command

    assert command() is main
