"""A run's findings as they leave ringscope: the findings JSON (the public format that
``ringscope findings`` prints, see ``docs/design.md``), the same findings as CSV, each
flagged account's highest score (``ringscope scores``), and a run evaluated against a
planted truth (``ringscope evaluate``).

These are what the command line prints, usable from Python (benchmarks and notebooks
call them): the command only opens the store and writes the text.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd

from ringscope import csvsafe
from ringscope.algorithms.evaluate import EvaluationReport, evaluate
from ringscope.errors import NotFoundError
from ringscope.graphs.store import GraphStore
from ringscope.model import Finding, Run

#: The fields of a finding in the findings JSON, in the order the format lists them.
FINDING_KEYS = (
    "id",
    "kind",
    "score",
    "members",
    "beneficiaries",
    "signals",
    "explanation",
    "detector",
)
#: The columns of the findings CSV.
FINDINGS_CSV_COLUMNS = (
    "run_id",
    "id",
    "kind",
    "score",
    "size",
    "members",
    "beneficiaries",
    "detector",
    "explanation",
)
#: The columns of the scores CSV (and of :func:`scores_frame`).
SCORES_COLUMNS = ("account_id", "score", "finding_id")


def run_findings(store: GraphStore, run_id: str | None = None) -> tuple[Run, list[Finding]]:
    """The run ``run_id`` (default: the latest succeeded run) and its ranked findings.

    Raises :class:`~ringscope.errors.NotFoundError` when the run is unknown or the
    store holds no succeeded run yet."""
    run = store.get_run(run_id) if run_id else store.latest_run()
    if run is None:
        raise NotFoundError("the store holds no succeeded run yet: run `ringscope detect` first")
    return run, store.findings(run.id)


def findings_document(run_id: str, findings: list[Finding]) -> dict[str, Any]:
    """The findings JSON of ``docs/design.md``: stable across runs on the same data."""
    return {
        "run_id": run_id,
        "findings": [{k: f.to_dict(evidence=False)[k] for k in FINDING_KEYS} for f in findings],
    }


def findings_json(run_id: str, findings: list[Finding]) -> str:
    """:func:`findings_document` as text (sorted keys, one space of indent)."""
    return json.dumps(findings_document(run_id, findings), indent=1, sort_keys=True) + "\n"


def findings_csv(run_id: str, findings: list[Finding]) -> str:
    """One row per finding (members and beneficiaries joined by ``|``), safe to open in a
    spreadsheet (``ringscope.csvsafe``)."""
    buf = io.StringIO()
    w = csvsafe.writer(buf)
    w.writerow(FINDINGS_CSV_COLUMNS)
    for f in findings:
        w.writerow(
            [
                run_id,
                f.id,
                f.kind,
                f"{f.score:.6f}",
                len(f.members),
                "|".join(f.member_ids),
                "|".join(b.account_id for b in f.beneficiaries),
                f.detector.name,
                f.explanation,
            ]
        )
    return buf.getvalue()


def scores_rows(findings: list[Finding]) -> list[tuple[str, float, str]]:
    """Every account any finding touches, with its highest member score and that finding."""
    best: dict[str, tuple[float, str]] = {}
    for f in findings:
        for m in f.members:
            cur = best.get(m.account_id)
            if cur is None or m.score > cur[0]:  # findings come ranked: ties keep the first
                best[m.account_id] = (m.score, f.id)
    rows = [(a, s, fid) for a, (s, fid) in best.items()]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return rows


def scores_csv(findings: list[Finding]) -> str:
    """:func:`scores_rows` as CSV ``account_id,score,finding_id`` (scores to 6 decimals)."""
    buf = io.StringIO()
    w = csvsafe.writer(buf)
    w.writerow(SCORES_COLUMNS)
    for a, s, fid in scores_rows(findings):
        w.writerow([a, f"{s:.6f}", fid])
    return buf.getvalue()


def evaluate_run(
    store: GraphStore, truth: pd.DataFrame, run_id: str | None = None
) -> tuple[Run, EvaluationReport]:
    """The run ``run_id`` (default: the latest) judged against ``truth`` (columns
    ``ring_id, kind, account_id, role``, as ``ringscope.algorithms.evaluate.read_truth``
    reads a ``truth.csv``), its account ranking scored over every stored account."""
    run, findings = run_findings(store, run_id)
    scores = pd.DataFrame(scores_rows(findings), columns=list(SCORES_COLUMNS))
    accounts = store.table("accounts", columns=["account_id"])["account_id"].tolist()
    return run, evaluate(findings, truth, scores, all_accounts=accounts)
