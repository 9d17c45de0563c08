from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ringscope.api.deps import StoreDep
from ringscope.api.schemas import FindingDetail, FindingSummary, Page
from ringscope.errors import NotFoundError
from ringscope.graphs.store import GraphStore
from ringscope.model import Finding

router = APIRouter(prefix="/api/findings", tags=["findings"])


def queue(
    store: GraphStore,
    *,
    run: str | None = None,
    kind: str | None = None,
    min_score: float = 0.0,
    max_score: float = 1.0,
) -> tuple[str | None, list[Finding]]:
    """The ranked findings of a run (default the latest), filtered."""
    run_obj = store.get_run(run) if run else store.latest_run()
    if run_obj is None:
        return None, []
    fs = [
        f
        for f in store.findings(run_obj.id)
        if (kind is None or f.kind == kind) and min_score <= f.score <= max_score
    ]
    return run_obj.id, fs


@router.get("", response_model=Page[FindingSummary])
async def list_findings(
    store: StoreDep,
    run: str | None = None,
    kind: str | None = None,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.0,
    max_score: Annotated[float, Query(ge=0, le=1)] = 1.0,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> Page[FindingSummary]:
    """The ranked queue of findings (score descending, then id)."""
    run_id, fs = queue(store, run=run, kind=kind, min_score=min_score, max_score=max_score)
    return Page[FindingSummary](
        run_id=run_id,
        total=len(fs),
        offset=offset,
        limit=limit,
        items=[FindingSummary.of(f) for f in fs[offset : offset + limit]],
    )


@router.get("/{finding_id}", response_model=FindingDetail)
async def get_finding(finding_id: str, store: StoreDep, run: str | None = None) -> FindingDetail:
    """One finding with its members, signals, evidence and detectors."""
    _, fs = queue(store, run=run)
    for f in fs:
        if f.id == finding_id:
            return FindingDetail.of(f)
    raise NotFoundError(f"no finding {finding_id!r} in that run")
