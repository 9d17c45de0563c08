"""The ranked queue, one finding, its graph, decisions and export."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from ringscope.api import queries, redact
from ringscope.api.deps import (
    DENIED,
    Caller,
    CallerDep,
    Investigator,
    Viewer,
)
from ringscope.api.export import export_case
from ringscope.api.queries import RunCache
from ringscope.api.render_cache import RenderCache, key_digest
from ringscope.api.schemas import (
    DecisionIn,
    DecisionOut,
    DecisionStatus,
    DetectorOut,
    DiffStatus,
    ErrorOut,
    FindingDetail,
    FindingSummary,
    GraphOut,
    MemberOut,
    Page,
    SignalOut,
    SortKey,
)
from ringscope.api.viz import MAX_NODES, member_refs
from ringscope.errors import InputError
from ringscope.graphs.store import GraphStore
from ringscope.model import Decision, Finding, Run
from ringscope.settings import get_settings

router = APIRouter(
    prefix="/api/findings",
    tags=["findings"],
    dependencies=[Viewer],
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}, **DENIED},
)


@router.get("", response_model=Page[FindingSummary])
def list_findings(
    request: Request,
    caller: CallerDep,
    run: str | None = None,
    kind: str | None = None,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.0,
    max_score: Annotated[float, Query(ge=0, le=1)] = 1.0,
    status: DiffStatus | None = None,
    decision: DecisionStatus | None = None,
    beneficiary: str | None = None,
    sort: SortKey = "rank",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    held: Annotated[
        bool, Query(description="Include findings held back (dismissed, unchanged since).")
    ] = False,
) -> Page[FindingSummary]:
    """The ranked queue of a run (default the latest): confirmed cases that grew since
    first, then the order of the run's policy (score, impact or priority), then id;
    filtered and paged. ``sort=impact`` orders by money at risk, ``sort=priority`` by
    the policy's blend of score and impact."""
    cache = caller.cache
    q = queries.queue(
        caller.store,
        cache=cache,
        run=run,
        kind=kind,
        min_score=min_score,
        max_score=max_score,
        status=status,
        decision=decision,
        beneficiary=beneficiary,
        sort=sort,
        descending=order == "desc",
        held=held,
    )
    red = redact.for_run(caller.redaction, caller.store, q.run, cache, request.app.state.page_cache)
    return Page[FindingSummary](
        run_id=q.run.id if q.run else None,
        total=len(q.items),
        offset=offset,
        limit=limit,
        items=[
            FindingSummary.of(red(i.finding), decision=i.decision, raised_again=i.raised_again)
            for i in q.items[offset : offset + limit]
        ],
    )


def _static_detail(run: Run, f: Finding) -> FindingDetail:
    """The parts of a finding's detail that do not change after its run: all but the
    case's decisions and history (left empty)."""
    # built from the finding's fields: ``Finding.to_dict`` deep-copies all the evidence
    return FindingDetail(
        **FindingSummary.of(
            f, raised_again=f.id in set(run.summary.get("raised_again") or [])
        ).model_dump(),
        run_id=run.id,
        previous_id=f.previous_id,
        members=[MemberOut(account_id=m.account_id, role=m.role, score=m.score) for m in f.members],
        signals=[
            SignalOut(name=s.name, value=s.value, threshold=s.threshold, weight=s.weight)
            for s in f.signals
        ],
        detector=DetectorOut(
            name=f.detector.name, version=f.detector.version, params=f.detector.params
        ),
        detectors=[
            DetectorOut(name=x.name, version=x.version, params=x.params) for x in f.detectors
        ],
        evidence=f.evidence,
        history=[],
        decisions=[],
    )


@dataclass(frozen=True, slots=True)
class StaticDetail:
    """A finding's detail without decisions and history, as a caller of one redaction
    sees it, and that redaction (the identity for a caller who sees everything)."""

    out: FindingDetail
    red: redact.Redaction


def static_detail(request: Request, caller: Caller, run: Run, f: Finding) -> StaticDetail:
    """:func:`_static_detail` of the finding as the caller sees it (redacted before it is
    made), once per run, finding and redaction key."""
    cache: RenderCache[Any] = request.app.state.page_cache
    key = ("detail", run.id, f.id, key_digest(caller.redaction))

    def make() -> StaticDetail:
        red = redact.for_run(caller.redaction, caller.store, run, caller.cache, cache)
        return StaticDetail(_static_detail(run, red(f)), red)

    found: StaticDetail = cache.get(key, make)
    return found


def detail(
    store: GraphStore,
    run: Run,
    f: Finding,
    cache: RunCache | None = None,
    *,
    static: StaticDetail | None = None,
    runs: list[Run] | None = None,
    decided: list[Decision] | None = None,
) -> FindingDetail:
    """A finding with its history across runs and its case's decisions (``decided``
    when the caller has just read them, else read now), through ``static``'s redaction."""
    if static is None:
        static = StaticDetail(_static_detail(run, f), redact.Redaction.none())
    if decided is None:
        decided = queries.case_decisions(store, f)
    decisions = [DecisionOut.of(static.red(x)) for x in decided]
    return static.out.model_copy(
        update={
            "decision": decisions[-1].decision if decisions else "undecided",
            "history": queries.history_entries(store, f, cache=cache, runs=runs),
            "decisions": decisions,
        }
    )


@router.get("/{finding_id}", response_model=FindingDetail)
def get_finding(
    request: Request,
    finding_id: str,
    caller: CallerDep,
    run: str | None = None,
) -> FindingDetail:
    """One finding (by id or case id): members, beneficiaries, signals, explanation,
    evidence, its case's history across runs and decisions. The view is audited."""
    store, cache, user = caller.store, caller.cache, caller.user
    state = queries.finding_state(store, finding_id, run, cache)
    r, f = state.run, state.finding
    static = static_detail(request, caller, r, f)
    out = detail(store, r, f, cache, static=static, runs=state.runs, decided=state.decisions)
    store.append_audit(user, "view_finding", f.id, {"run_id": r.id, "via": "api"})
    return out


@router.get("/{finding_id}/graph", response_model=GraphOut)
def finding_graph(
    request: Request,
    finding_id: str,
    caller: CallerDep,
    run: str | None = None,
    hops: Annotated[int, Query(ge=0, le=3)] = 1,
    limit: Annotated[int, Query(ge=1, le=MAX_NODES)] = 500,
) -> GraphOut:
    """The neighbourhood of the finding's members and beneficiaries, within a node budget."""
    store, cache = caller.store, caller.cache
    r, f = queries.find_finding(store, finding_id, run, cache)
    g = store.neighbourhood(member_refs(f), hops=hops, limit=limit)
    red = redact.for_run(caller.redaction, store, r, cache, request.app.state.page_cache)
    return GraphOut.of(red.including(g)(g))


@router.get("/{finding_id}/decisions", response_model=list[DecisionOut])
def list_decisions(
    request: Request,
    finding_id: str,
    caller: CallerDep,
    run: str | None = None,
) -> list[DecisionOut]:
    """The decisions on the finding's case, oldest first."""
    store, cache = caller.store, caller.cache
    r, f = queries.find_finding(store, finding_id, run, cache)
    red = redact.for_run(caller.redaction, store, r, cache, request.app.state.page_cache)
    return [DecisionOut.of(red(d)) for d in queries.case_decisions(store, f)]


def record_decision(store: GraphStore, f: Finding, body: DecisionIn, user: str) -> Decision:
    """Record a decision against the finding's case id, and audit it."""
    d = Decision(
        finding_id=f.case_id or f.id,
        decision=body.decision,
        decided_by=user,
        decided_at=datetime.now(UTC),
        note=body.note,
    )
    store.record_decision(d)
    store.append_audit(
        user,
        "decision",
        f.id,
        {"case_id": d.finding_id, "decision": d.decision, "note": d.note},
    )
    return d


@router.post(
    "/{finding_id}/decisions",
    response_model=DecisionOut,
    status_code=201,
    dependencies=[Investigator],
)
async def post_decision(
    finding_id: str,
    body: DecisionIn,
    caller: CallerDep,
    run: str | None = None,
) -> DecisionOut:
    """Record ``confirmed``, ``dismissed`` or ``escalated`` with a note, against the
    finding's case id (so it follows the network across runs)."""
    _, f = queries.find_finding(caller.store, finding_id, run, caller.cache)
    return DecisionOut.of(record_decision(caller.store, f, body, caller.user))


@router.get(
    "/{finding_id}/export",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "the case file"},
        400: {"model": ErrorOut, "description": "redaction asked for but no key is set"},
    },
    dependencies=[Investigator],
)
async def export_finding(
    finding_id: str,
    caller: CallerDep,
    run: str | None = None,
    redact: bool = False,
    redact_accounts: bool = False,
) -> Response:
    """The finding's case file (ZIP): members, evidence, signals, the statement of reasons,
    the graph, the detector and policy used, the input data's fingerprint and SHA-256 sums.
    ``redact`` replaces personal identifiers by keyed hashes (``redact_accounts``: account
    ids too). The export is audited."""
    if redact_accounts and not redact:
        raise InputError("redact_accounts needs redact=true")
    key = get_settings().redaction_key.get_secret_value()
    result = await run_in_threadpool(
        export_case,
        caller.store,
        finding_id,
        who=caller.user,
        via="api",
        run_id=run,
        redact=redact,
        redact_accounts=redact_accounts,
        key=key,
    )
    return Response(
        content=result.data,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{result.filename}"'},
    )
