"""What the routes ask of the store: the ranked queue, one finding with its history,
an entity. Plain functions over a ``GraphStore``, shared by the JSON API and the pages."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ringscope.algorithms.impact import priority
from ringscope.api.schemas import HistoryEntry
from ringscope.errors import InputError, NotFoundError
from ringscope.graphs.store import GraphStore
from ringscope.model import REL_TYPES, Decision, Finding, Node, NodeRef, Run

SORTS = ("rank", "score", "impact", "priority", "kind", "size", "status", "decision")


class RunCache:
    """The findings of succeeded runs, read and parsed once per app.

    A succeeded run's findings do not change; the key holds the run's finish time
    too, so a run completed again is read again. Whole findings are kept for the
    ``size`` runs used last; for the history of a case across runs, a small index per
    run (case -> the finding's id, status, score and size) is kept for ``index_size``
    runs, so that pages showing 20 runs of history do not evict the runs the queue
    reads (or read 20 runs' findings on every request).
    """

    def __init__(self, size: int = 8, index_size: int = 512) -> None:
        self._size = size
        self._index_size = index_size
        self._runs: OrderedDict[tuple[str, str], list[Finding]] = OrderedDict()
        self._indexes: OrderedDict[tuple[str, str], dict[str, CaseEntry]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(run: Run) -> tuple[str, str]:
        return (run.id, run.finished_at.isoformat() if run.finished_at else "")

    def findings(self, store: GraphStore, run: Run) -> list[Finding]:
        if run.status != "succeeded":
            return store.findings(run.id)
        key = self._key(run)
        with self._lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
        found = store.findings(run.id)
        with self._lock:
            self._runs[key] = found
            while len(self._runs) > self._size:
                self._runs.popitem(last=False)
        return found

    def cases(self, store: GraphStore, run: Run) -> dict[str, CaseEntry]:
        """The run's findings by case (the whole findings are read when not cached, and
        not kept)."""
        if run.status != "succeeded":
            return case_index(store.findings(run.id))
        key = self._key(run)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
            cached = self._runs.get(key)
        index = case_index(cached if cached is not None else store.findings(run.id))
        with self._lock:
            self._indexes[key] = index
            while len(self._indexes) > self._index_size:
                self._indexes.popitem(last=False)
        return index


@dataclass(frozen=True, slots=True)
class CaseEntry:
    """What a case's history shows of its finding in one run."""

    finding_id: str
    status: str
    score: float
    size: int


def case_index(findings: Sequence[Finding]) -> dict[str, CaseEntry]:
    """Each case's finding (the first, in rank order, when a case has several)."""
    out: dict[str, CaseEntry] = {}
    for f in findings:
        out.setdefault(f.case_id or f.id, CaseEntry(f.id, f.status, f.score, len(f.members)))
    return out


def _findings(store: GraphStore, run: Run, cache: RunCache | None) -> list[Finding]:
    return cache.findings(store, run) if cache else store.findings(run.id)


@dataclass(frozen=True, slots=True)
class QueueItem:
    finding: Finding
    decision: str  # the case's latest decision or "undecided"
    raised_again: bool


@dataclass(frozen=True, slots=True)
class Queue:
    run: Run | None
    items: list[QueueItem]
    kinds: list[str]


def latest_decisions(store: GraphStore, cases: Iterable[str] | None = None) -> dict[str, str]:
    """The latest decision of every case that has one (only of ``cases`` when given:
    decisions on older cases pile up, every one kept, and a page needs its own)."""
    return store.latest_decisions(cases)


def queue_state(
    store: GraphStore, run: str | None, cases_of: Callable[[Run], Iterable[str]] | None = None
) -> tuple[Run | None, dict[str, str]]:
    """The run ``run`` (default the latest succeeded one) and :func:`latest_decisions`
    (of the cases ``cases_of(run)`` names, when given); through the store's
    ``queue_state`` (one read on Neo4j) when ``run`` is not given."""
    if run is None:
        return store.queue_state(cases_of)
    found = resolve_run(store, run)
    cases = None if found is None or cases_of is None else cases_of(found)
    return found, latest_decisions(store, cases)


def resolve_run(store: GraphStore, run: str | None) -> Run | None:
    """The run ``run`` (``NotFoundError`` when unknown) or the latest succeeded one."""
    return store.get_run(run) if run else store.latest_run()


def queue(
    store: GraphStore,
    *,
    run: str | None = None,
    kind: str | None = None,
    min_score: float = 0.0,
    max_score: float = 1.0,
    status: str | None = None,
    decision: str | None = None,
    beneficiary: str | None = None,
    sort: str = "rank",
    descending: bool = True,
    cache: RunCache | None = None,
    held: bool = False,
) -> Queue:
    """The ranked queue of a run (default the latest), filtered and sorted.

    ``rank`` order puts confirmed cases that grew since (the run's
    ``raised_again``) first, then the order the run's policy names
    (``queue.order``: score, impact or priority; score by default), then id.
    ``impact`` orders by money at risk (commission and refunds), then engagement
    share; ``priority`` blends score and impact index with the policy's
    ``queue.impact_weight``. Findings the run held back (a dismissed network
    that has not changed materially since, the run's ``suppressed``) are left
    out unless ``held``.
    """
    if min_score > max_score:
        raise InputError(f"min_score {min_score} is above max_score {max_score}")
    if sort not in SORTS:
        raise InputError(f"sort: unknown key {sort!r}; use one of {list(SORTS)}")
    read: dict[str, list[Finding]] = {}

    def cases_of(r: Run) -> list[str]:
        read[r.id] = _findings(store, r, cache)
        return [f.case_id or f.id for f in read[r.id]]

    run_obj, decided = queue_state(store, run, cases_of)
    if run_obj is None:
        return Queue(run=None, items=[], kinds=[])
    raised = set(run_obj.summary.get("raised_again") or [])
    suppressed = set(run_obj.summary.get("suppressed") or {})
    all_findings = read.get(run_obj.id) or _findings(store, run_obj, cache)
    policy_queue = (run_obj.policy or {}).get("queue") or {}
    weight = float(policy_queue.get("impact_weight", 0.5))
    measure = {
        "score": lambda f: (f.score, 0.0),
        "impact": _money_at_risk,
        "priority": lambda f: (priority(f, weight), 0.0),
    }
    main = measure.get(str(policy_queue.get("order", "score")), measure["score"])
    items = []
    for f in all_findings:
        if f.id in suppressed and not held:
            continue
        item = QueueItem(f, decided.get(f.case_id or f.id, "undecided"), f.id in raised)
        if kind is not None and f.kind != kind:
            continue
        if not min_score <= f.score <= max_score:
            continue
        if status is not None and f.status != status:
            continue
        if decision is not None and item.decision != decision:
            continue
        if beneficiary is not None and all(b.account_id != beneficiary for b in f.beneficiaries):
            continue
        items.append(item)
    items.sort(key=lambda i: i.finding.id)
    items.sort(key=lambda i: main(i.finding), reverse=True)
    items.sort(key=lambda i: not i.raised_again)
    if sort != "rank" or not descending:
        keys: dict[str, Any] = {
            "rank": lambda i: 0,
            "score": lambda i: i.finding.score,
            "impact": lambda i: _money_at_risk(i.finding),
            "priority": lambda i: priority(i.finding, weight),
            "kind": lambda i: i.finding.kind,
            "size": lambda i: len(i.finding.members),
            "status": lambda i: i.finding.status,
            "decision": lambda i: i.decision,
        }
        if sort == "rank":
            items.reverse()
        else:
            items.sort(key=keys[sort], reverse=descending)  # stable: ties keep rank order
    return Queue(run=run_obj, items=items, kinds=sorted({f.kind for f in all_findings}))


def _money_at_risk(f: Finding) -> tuple[float, float]:
    i = f.impact or {}
    money = float(i.get("commission_paid", 0.0)) + float(i.get("gmv_refunded", 0.0))
    return money, float(i.get("engagement_share", 0.0))


#: Runs a case's history shows (and that a page reads for it).
HISTORY_RUNS = 20


def succeeded_runs(store: GraphStore, limit: int | None = None) -> list[Run]:
    """The succeeded runs (the ``limit`` newest), newest first."""
    return store.runs(status="succeeded", limit=limit)


def find_finding(
    store: GraphStore,
    finding_id: str,
    run: str | None = None,
    cache: RunCache | None = None,
    *,
    runs: list[Run] | None = None,
) -> tuple[Run, Finding]:
    """The finding ``finding_id`` (or the finding of case ``finding_id``) in a run.

    Without ``run``, the latest run is searched first, then older runs (``runs``: the
    newest succeeded runs when the caller has read them already; older ones are read
    when the finding is not in those).
    """
    if run:
        found = _find_in(store, [store.get_run(run)], finding_id, cache)
    else:
        runs = succeeded_runs(store) if runs is None else runs
        found = _find_in(store, runs, finding_id, cache)
        if found is None:
            seen = {r.id for r in runs}
            older = [r for r in succeeded_runs(store) if r.id not in seen]
            found = _find_in(store, older, finding_id, cache)
    if found is None:
        raise NotFoundError(f"no finding {finding_id!r}" + (f" in run {run}" if run else ""))
    return found


def _find_in(
    store: GraphStore, runs: Sequence[Run], finding_id: str, cache: RunCache | None
) -> tuple[Run, Finding] | None:
    for r in runs:
        fs = _findings(store, r, cache)
        for f in fs:
            if f.id == finding_id:
                return r, f
        for f in fs:
            if f.case_id == finding_id:
                return r, f
    return None


def history_entries(
    store: GraphStore,
    finding: Finding,
    *,
    max_runs: int = HISTORY_RUNS,
    cache: RunCache | None = None,
    runs: list[Run] | None = None,
) -> list[HistoryEntry]:
    """The case's finding in every succeeded run (newest first), up to ``max_runs`` runs
    (``runs``: the succeeded runs when the caller has read them already)."""
    case = finding.case_id or finding.id
    out = []
    runs = succeeded_runs(store, limit=max_runs) if runs is None else runs[:max_runs]
    for r in runs:
        index = cache.cases(store, r) if cache else case_index(store.findings(r.id))
        entry = index.get(case)
        if entry is not None:
            out.append(
                HistoryEntry(
                    run_id=r.id,
                    run_started_at=r.started_at,
                    finding_id=entry.finding_id,
                    status=entry.status,
                    score=entry.score,
                    size=entry.size,
                )
            )
    return out


def case_decisions(store: GraphStore, finding: Finding) -> list[Decision]:
    return store.decisions(finding.case_id or finding.id)


@dataclass(frozen=True, slots=True)
class FindingState:
    """What a view of a finding reads on every request: the run and the finding,
    the newest succeeded runs (for the case's history; ``None`` when the caller named
    the run) and the case's decisions."""

    run: Run
    finding: Finding
    runs: list[Run] | None
    decisions: list[Decision]


def finding_state(
    store: GraphStore,
    finding_id: str,
    run: str | None = None,
    cache: RunCache | None = None,
) -> FindingState:
    """:func:`find_finding` (in the :data:`HISTORY_RUNS` newest succeeded runs first,
    unless ``run`` is given) and :func:`case_decisions`.

    Without ``run``, through the store's ``case_state``: on Neo4j the runs and the
    decisions are read in one transaction (the finding is looked up in between, from
    ``cache``); otherwise one read after the other, with the same result.
    """
    if run is None:
        found: list[tuple[Run, Finding]] = []

        def case_of(runs: list[Run]) -> str:
            found[:] = [find_finding(store, finding_id, None, cache, runs=runs)]
            f = found[0][1]
            return f.case_id or f.id

        runs, decisions = store.case_state(case_of, limit=HISTORY_RUNS)
        r, f = found[0]
        return FindingState(r, f, runs, decisions)
    recent = None if run else succeeded_runs(store, limit=HISTORY_RUNS)
    r, f = find_finding(store, finding_id, run, cache, runs=recent)
    return FindingState(r, f, recent, case_decisions(store, f))


def parse_ref(text: str) -> NodeRef:
    """A ``Label:id`` reference; ``InputError`` (422) when malformed."""
    try:
        return NodeRef.parse(text)
    except ValueError as e:
        raise InputError(str(e)) from e


def check_rels(rels: Sequence[str] | None) -> list[str] | None:
    if not rels:
        return None
    unknown = sorted(set(rels) - set(REL_TYPES))
    if unknown:
        raise InputError(f"rel: unknown relationship kinds {unknown}; use {list(REL_TYPES)}")
    return list(rels)


def check_window(start: datetime | None, end: datetime | None) -> None:
    def utc(d: datetime) -> datetime:
        return d if d.tzinfo else d.replace(tzinfo=UTC)

    if start is not None and end is not None and utc(start) > utc(end):
        raise InputError(f"start {start.isoformat()} is after end {end.isoformat()}")


def entity(store: GraphStore, ref: NodeRef) -> Node:
    """The node ``ref`` with its properties; ``NotFoundError`` when the store lacks it."""
    g = store.neighbourhood([ref], hops=0, limit=1)
    return g.nodes[0]


def findings_of_account(store: GraphStore, account_id: str, run: Run | None) -> list[Finding]:
    if run is None:
        return []
    return store.findings_for_account(account_id, run.id)
