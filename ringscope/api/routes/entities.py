"""Entities (accounts, streams, products, orders, identifiers), their neighbourhood,
and the path between two of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ringscope.api import queries, redact
from ringscope.api.deps import (
    DENIED,
    CallerDep,
    Viewer,
    check_identifier_access,
)
from ringscope.api.render_cache import RenderCache, key_digest
from ringscope.api.schemas import EntityOut, ErrorOut, FindingSummary, GraphOut, NodeOut, PathOut
from ringscope.api.viz import MAX_NODES

router = APIRouter(
    prefix="/api",
    tags=["entities"],
    dependencies=[Viewer],
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}, **DENIED},
)

RelQuery = Annotated[list[str] | None, Query(description="relationship kinds, e.g. USES")]


@router.get("/entities/{ref:path}/neighbourhood", response_model=GraphOut)
def neighbourhood(
    ref: str,
    request: Request,
    caller: CallerDep,
    hops: Annotated[int, Query(ge=0, le=4)] = 1,
    rel: RelQuery = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_NODES)] = 100,
) -> GraphOut:
    """Nodes within ``hops`` of the entity over the given relationship kinds inside the
    time window ``[start, end)``, breadth first, at most ``limit`` nodes."""
    store, redaction = caller.store, caller.redaction
    node = queries.parse_ref(ref)
    check_identifier_access(request, caller.principal, node)
    rels = queries.check_rels(rel)
    queries.check_window(start, end)

    def walk() -> GraphOut:
        g = store.neighbourhood(
            [node], hops=hops, rel_types=rels, start=start, end=end, limit=limit
        )
        return GraphOut.of(redact.for_viewer(redaction, g)(g))

    # a neighbourhood changes with the data (a new load) only: walked once per data
    window = tuple(t.isoformat() if t else "" for t in (start, end))
    key = (str(node), hops, tuple(rels or ()), window, limit, store.fingerprint())
    cache: RenderCache[GraphOut] = request.app.state.walk_cache
    return cache.get((*key, key_digest(redaction)), walk)


@router.get("/entities/{ref:path}", response_model=EntityOut)
def get_entity(
    ref: str,
    request: Request,
    caller: CallerDep,
    run: str | None = None,
) -> EntityOut:
    """An entity by ``Label:id`` (e.g. ``Account:a1``, ``Identifier:device:d-1``) with the
    findings of a run (default the latest) it is a member of. The view is audited."""
    store = caller.store
    node_ref = queries.parse_ref(ref)
    check_identifier_access(request, caller.principal, node_ref)
    node = queries.entity(store, node_ref)
    r = queries.resolve_run(store, run)
    fs = queries.findings_of_account(store, node_ref.id, r) if node_ref.label == "Account" else []
    decided = queries.latest_decisions(store, [f.case_id or f.id for f in fs])
    store.append_audit(caller.user, "view_entity", str(node_ref), {"via": "api"})
    red = redact.for_run(caller.redaction, store, r, caller.cache, request.app.state.page_cache)
    red = red.including(node)
    return EntityOut(
        node=NodeOut.of(red(node)),
        findings=[
            FindingSummary.of(red(f), decision=decided.get(f.case_id or f.id, "undecided"))
            for f in fs
        ],
    )


@router.get("/path", response_model=PathOut)
def path(
    a: str,
    b: str,
    request: Request,
    caller: CallerDep,
    rel: RelQuery = None,
    max_hops: Annotated[int, Query(ge=1, le=10)] = 6,
) -> PathOut:
    """A shortest path between two entities (``found: false`` when there is none
    within ``max_hops``; 404 when an end does not exist)."""
    ra, rb = queries.parse_ref(a), queries.parse_ref(b)
    check_identifier_access(request, caller.principal, ra, rb)
    rels = queries.check_rels(rel)
    p = caller.store.shortest_path(ra, rb, rel_types=rels, max_hops=max_hops)
    return PathOut.of(redact.for_viewer(caller.redaction, p)(p))
