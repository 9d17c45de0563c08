"""Threshold changes suggested by investigators' decisions (never applied by themselves).

For each detector with enough decided findings (``min_decided``), the decided
findings it led (its ``detector``) are split into confirmed and dismissed:

- mostly dismissed (precision below ``low``): raise its ``min_score`` to the
  lowest score that leaves out at least ``target_dismissed`` of the
  dismissed ones, if that keeps at least ``keep_confirmed`` of the confirmed;
- nearly all confirmed (precision at least ``high``): lower ``min_score`` a
  step (``step``), since the detector's threshold looks stricter than needed.

Each suggestion carries its evidence and its expected effect on the latest
run's queue: how many of that detector's findings a raised threshold would
leave out, and how many of them were confirmed. The effect of a lowered
threshold can only be seen by a run with it (``ringscope detect --policy``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import Any

from ringscope.graphs.store import GraphStore
from ringscope.jobs.feedback import decided_findings, latest_decisions
from ringscope.model import Decision, Finding
from ringscope.policy import Policy


@dataclass(frozen=True)
class Suggestion:
    detector: str
    parameter: str
    current: float
    proposed: float
    reason: str
    decided: int
    confirmed: int
    dismissed: int
    #: Findings of the latest run this change would leave out (None: needs a run).
    latest_removed: int | None
    latest_removed_confirmed: int | None
    latest_findings: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _param(policy: Policy, detector: str, name: str) -> float | None:
    from ringscope.algorithms.registry import DETECTORS

    spec = DETECTORS.get(detector)
    if spec is None:
        return None
    params = spec.parameters()
    if name not in params:
        return None
    section = policy.detectors.get(detector)
    value = section.params.get(name, params[name]) if section else params[name]
    return float(value)


def suggest(
    policy: Policy,
    decided_findings: list[Finding],
    decisions: list[Decision],
    latest: list[Finding],
    *,
    min_decided: int = 5,
    low: float = 0.5,
    high: float = 0.95,
    target_dismissed: float = 0.8,
    keep_confirmed: float = 0.9,
    step: float = 0.05,
) -> list[Suggestion]:
    """Suggestions from the decisions on ``decided_findings`` (the findings the
    decisions were made on, one per case), and their effect on ``latest``."""
    verdict = {case: d.decision for case, d in latest_decisions(decisions).items()}
    by_detector: dict[str, list[tuple[float, str]]] = {}
    for f in decided_findings:
        v = verdict.get(f.case_id or f.id)
        if v in ("confirmed", "dismissed"):
            by_detector.setdefault(f.detector.name, []).append((f.score, v))
    out: list[Suggestion] = []
    for detector, rows in sorted(by_detector.items()):
        if len(rows) < min_decided:
            continue
        current = _param(policy, detector, "min_score")
        if current is None:
            continue
        confirmed = sorted(s for s, v in rows if v == "confirmed")
        dismissed = sorted(s for s, v in rows if v == "dismissed")
        precision = len(confirmed) / len(rows)
        mine = [f for f in latest if f.detector.name == detector]

        make = functools.partial(
            Suggestion,
            detector=detector,
            parameter="min_score",
            current=current,
            decided=len(rows),
            confirmed=len(confirmed),
            dismissed=len(dismissed),
            latest_findings=len(mine),
        )
        if precision < low and dismissed:
            k = math.ceil(target_dismissed * len(dismissed)) - 1
            proposed = round(math.floor(dismissed[k] * 1000 + 1) / 1000, 3)
            kept = sum(s >= proposed for s in confirmed)
            if proposed <= current or (confirmed and kept / len(confirmed) < keep_confirmed):
                continue
            removed = [f for f in mine if f.score < proposed]
            reason = (
                f"{len(dismissed)} of {len(rows)} decided findings were dismissed "
                f"(precision {precision:.2f}); {target_dismissed:.0%} of the dismissed "
                f"scored below {proposed}, and {kept} of {len(confirmed)} confirmed "
                "scored at or above it"
            )
            lost = sum(verdict.get(f.case_id or f.id) == "confirmed" for f in removed)
            out.append(
                make(
                    proposed=proposed,
                    reason=reason,
                    latest_removed=len(removed),
                    latest_removed_confirmed=lost,
                )
            )
        elif precision >= high and current - step >= 0:
            reason = (
                f"{len(confirmed)} of {len(rows)} decided findings were confirmed "
                f"(precision {precision:.2f}): the threshold may hide more of the same; "
                "try it with `ringscope detect --policy`"
            )
            out.append(
                make(
                    proposed=round(current - step, 3),
                    reason=reason,
                    latest_removed=None,
                    latest_removed_confirmed=None,
                )
            )
    return out


def suggest_from_store(
    policy: Policy, store: GraphStore, *, min_decided: int = 5
) -> list[Suggestion]:
    """:func:`suggest` on what ``store`` holds: the decided findings of its recent runs
    (:func:`~ringscope.jobs.feedback.decided_findings`), every decision, and the
    findings of its latest run (``ringscope policy suggest``)."""
    latest = store.latest_run()
    current = store.findings(latest.id) if latest else []
    return suggest(
        policy, decided_findings(store), store.decisions(), current, min_decided=min_decided
    )


def as_policy_yaml(suggestions: list[Suggestion]) -> str:
    """The suggestions as a policy file fragment (to review, then pass with ``--policy``)."""
    if not suggestions:
        return ""
    lines = ["detectors:"]
    for s in suggestions:
        lines += [f"  {s.detector}:", "    params:", f"      {s.parameter}: {s.proposed}"]
    return "\n".join(lines) + "\n"
