"""Investigators' decisions fed back into detection, and measured.

- :func:`decision_labels`: a decision becomes labels for the next run. The
  members of a confirmed network are ``abusive`` seeds and those of a
  dismissed one ``legit`` seeds of the propagation detector (TrustRank /
  anti-TrustRank), dated by the decision, so a later decision or a label in
  the export overrides an earlier one.
- :func:`suppressed`: a network an investigator dismissed is not raised again
  unless it changed materially since: it gained at least ``regrowth`` of its
  members at the time (new accounts), or its score rose by ``rescore``.
  Suppressed findings are still saved with the run (the next run's diff
  continues them, and the decision keeps following them), and listed in the
  run's summary with the size and score they are measured against.
- :func:`decision_metrics`: per detector and per policy version, how many
  findings were decided, the precision of the decided ones (confirmed /
  confirmed + dismissed) and the median time from a network's first
  appearance to its first decision.
- :func:`decided_findings`: the finding each decided case was last seen as, which
  ``ringscope policy suggest`` weighs (``ringscope.jobs.suggest``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ringscope.graphs.store import GraphStore
from ringscope.model import Decision, Finding

#: Label of the members of a case, by the case's latest decision.
LABEL_OF = {"confirmed": "abusive", "dismissed": "legit"}


def latest_decisions(decisions: list[Decision]) -> dict[str, Decision]:
    """The latest decision of each case (decisions come oldest first)."""
    out: dict[str, Decision] = {}
    for d in decisions:
        out[d.finding_id] = d
    return out


def decision_labels(decisions: list[Decision], findings: list[Finding]) -> pd.DataFrame:
    """Labels (``subject_id, label, decided_at, source, note``) from the latest
    decision of each case found among ``findings``."""
    by_case = {f.case_id or f.id: f for f in findings}
    rows = []
    for case, d in sorted(latest_decisions(decisions).items()):
        label = LABEL_OF.get(d.decision)
        f = by_case.get(case)
        if label is None or f is None:
            continue
        for account in f.member_ids:
            rows.append((account, label, d.decided_at, "decision", f"{d.decision} {case}"))
    frame = pd.DataFrame(rows, columns=["subject_id", "label", "decided_at", "source", "note"])
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    return frame


def with_decision_labels(labels: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """The export's labels and the decisions' labels, as one labels table."""
    if extra.empty:
        return labels
    if labels.empty:
        return extra.reset_index(drop=True)
    return pd.concat([labels, extra[list(labels.columns)]], ignore_index=True)


@dataclass(frozen=True)
class Baseline:
    """What a dismissed network is measured against: its size and score then."""

    case_id: str
    members: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "members": self.members, "score": self.score}


def suppressed(
    findings: list[Finding],
    decisions: list[Decision],
    previous: list[Finding],
    previous_baselines: Mapping[str, Mapping[str, Any]],
    *,
    regrowth: float,
    rescore: float,
) -> dict[str, Baseline]:
    """The findings (by id) to keep out of the queue, with their baselines.

    ``findings`` are diffed (``case_id``/``previous_id`` set); a finding
    continuing a dismissed case is suppressed while it has fewer than
    ``baseline members * (1 + regrowth)`` members and a score below
    ``baseline score + rescore``. The baseline is the one its previous
    finding was suppressed against, else that previous finding itself.
    """
    latest = latest_decisions(decisions)
    prev_by_id = {f.id: f for f in previous}
    out: dict[str, Baseline] = {}
    for f in findings:
        d = latest.get(f.case_id)
        if d is None or d.decision != "dismissed" or not f.previous_id:
            continue
        held = previous_baselines.get(f.previous_id)
        if held is not None:
            base = Baseline(f.case_id, int(held["members"]), float(held["score"]))
        elif f.previous_id in prev_by_id:
            p = prev_by_id[f.previous_id]
            base = Baseline(f.case_id, len(p.members), p.score)
        else:
            continue
        grew = len(f.members) >= base.members * (1.0 + regrowth) and len(f.members) > base.members
        rose = f.score >= base.score + rescore
        if not (grew or rose):
            out[f.id] = base
    return out


def decision_metrics(store: GraphStore, *, runs: int = 30) -> list[dict[str, Any]]:
    """Per detector and policy version: decided findings, precision, time to decision.

    Looks at the last ``runs`` succeeded runs: a case is attributed to the
    detector and policy of the run it first appeared in (among those), and
    its time to decision runs from that run's start to its first decision.
    """
    history = list(reversed(store.runs(status="succeeded", limit=runs)))
    first_seen: dict[str, tuple[str, str, Any]] = {}
    for run in history:
        version = str(run.policy.get("version", "")) if run.policy else ""
        digest = str(run.summary.get("policy_digest", ""))[:12]
        for f in store.findings(run.id):
            case = f.case_id or f.id
            if case not in first_seen:
                first_seen[case] = (f.detector.name, f"{version} ({digest})", run.started_at)
    decided: dict[str, list[Decision]] = defaultdict(list)
    for d in store.decisions():
        decided[d.finding_id].append(d)
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for case, (detector, policy, seen_at) in first_seen.items():
        g = groups.setdefault(
            (detector, policy),
            {"findings": 0, "confirmed": 0, "dismissed": 0, "escalated": 0, "hours": []},
        )
        g["findings"] += 1
        ds = decided.get(case)
        if not ds:
            continue
        g[ds[-1].decision] += 1
        g["hours"].append(max(0.0, (ds[0].decided_at - seen_at).total_seconds() / 3600))
    out = []
    for (detector, policy), g in sorted(groups.items()):
        closed = g["confirmed"] + g["dismissed"]
        out.append(
            {
                "detector": detector,
                "policy": policy,
                "findings": g["findings"],
                "decided": closed + g["escalated"],
                "confirmed": g["confirmed"],
                "dismissed": g["dismissed"],
                "escalated": g["escalated"],
                "precision": round(g["confirmed"] / closed, 4) if closed else None,
                "median_hours_to_decision": (
                    round(statistics.median(g["hours"]), 2) if g["hours"] else None
                ),
            }
        )
    return out


def decided_findings(store: GraphStore, runs: int = 30) -> list[Finding]:
    """The latest finding of each decided case, over the last ``runs`` succeeded runs."""
    cases = {d.finding_id for d in store.decisions()}
    found: dict[str, Finding] = {}
    for run in store.runs(status="succeeded", limit=runs):
        if not cases - found.keys():
            break
        for f in store.findings(run.id):
            case = f.case_id or f.id
            if case in cases and case not in found:
                found[case] = f
    return list(found.values())
