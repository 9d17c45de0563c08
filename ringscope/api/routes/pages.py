"""Server-rendered pages. Every text from data is escaped by Jinja's autoescape; data
handed to scripts goes through ``tojson`` (which escapes ``<``, ``>``, ``&`` and ``'``)."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from pydantic import ValidationError

from ringscope import __version__
from ringscope.api import queries, redact
from ringscope.api.auth import allows
from ringscope.api.deps import (
    Investigator,
    PrincipalDep,
    RedactionKeyDep,
    RunCacheDep,
    StoreDep,
    UserDep,
    Viewer,
    check_identifier_access,
)
from ringscope.api.routes.findings import record_decision
from ringscope.api.schemas import DecisionIn, DecisionStatus, DiffStatus, SortKey
from ringscope.api.viz import (
    EDGE_COLOURS,
    LABEL_COLOURS,
    MAX_NODES,
    ROLE_COLOURS,
    GraphView,
    cluster_graph,
    grouped_graph,
    member_refs,
    vis_data,
    with_layout,
)
from ringscope.errors import InputError
from ringscope.graphs.store import GraphStore
from ringscope.model import REL_TYPES, Finding, Node, NodeRef, Run

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
templates.env.filters["u"] = lambda s: quote(str(s), safe=":")
router = APIRouter(tags=["pages"], include_in_schema=False, dependencies=[Viewer])

#: Rendered graphs kept per app: a succeeded run's findings never change.
GRAPH_CACHE_SIZE = 64
#: Pages are served from a thread pool: the graph cache is shared between threads, and
#: a graph is drawn once however many requests ask for it at the same time.
_GRAPH_CACHE_LOCK = threading.Lock()
_GRAPH_DRAWING: dict[tuple[str, ...], threading.Lock] = {}
_TIME_KEYS = ("ts", "first_ts", "first_seen", "decided_at", "created_at", "since", "started_at")
TIMELINE_MAX = 400


def _common(**extra: Any) -> dict[str, Any]:
    return {"version": __version__, **extra}


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request,
    store: StoreDep,
    cache: RunCacheDep,
    principal: PrincipalDep,
    redaction: RedactionKeyDep,
    run: str | None = None,
    kind: str | None = None,
    status: DiffStatus | None = None,
    decision: DecisionStatus | None = None,
    beneficiary: str | None = None,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.0,
    max_score: Annotated[float, Query(ge=0, le=1)] = 1.0,
    sort: SortKey = "rank",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
) -> HTMLResponse:
    q = queries.queue(
        store,
        cache=cache,
        run=run,
        kind=kind or None,
        min_score=min_score,
        max_score=max_score,
        status=status,
        decision=decision,
        beneficiary=beneficiary or None,
        sort=sort,
        descending=order == "desc",
    )
    items = q.items
    if redaction is not None:
        red = redact.for_viewer(redaction, findings=[i.finding for i in items])
        items = [dataclasses.replace(i, finding=redact.finding(i.finding, red)) for i in items]
    filters = {
        "run": run or "",
        "kind": kind or "",
        "status": status or "",
        "decision": decision or "",
        "beneficiary": beneficiary or "",
        "min_score": min_score if min_score > 0 else "",
        "max_score": max_score if max_score < 1 else "",
    }
    return templates.TemplateResponse(
        request,
        "queue.html",
        _common(
            me=principal,
            run=q.run,
            items=items,
            kinds=q.kinds,
            filters=filters,
            query={k: v for k, v in filters.items() if v != ""},
            sort=sort,
            order=order,
            statuses=["new", "grown", "shrunk", "unchanged"],
            decisions=["confirmed", "dismissed", "escalated", "undecided"],
        ),
    )


def _graph(
    request: Request,
    store: GraphStore,
    run: Run,
    f: Finding,
    view: str,
    budget: int,
) -> tuple[Markup, GraphView, bool]:
    """The vis data of the cluster's graph as JSON for a script element, the view, and
    whether the full graph is over budget."""
    cache: OrderedDict[tuple[str, ...], tuple[Markup, GraphView, bool]]
    cache = request.app.state.graph_cache
    # the graph changes with the data (a new load), not with decisions
    key = (run.id, f.id, view, str(budget), store.fingerprint())
    with _GRAPH_CACHE_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        drawing = _GRAPH_DRAWING.setdefault(key, threading.Lock())
    try:
        with drawing:
            return _draw(cache, key, store, f, view, budget)
    finally:
        with _GRAPH_CACHE_LOCK:
            _GRAPH_DRAWING.pop(key, None)


def _draw(
    cache: OrderedDict[tuple[str, ...], tuple[Markup, GraphView, bool]],
    key: tuple[str, ...],
    store: GraphStore,
    f: Finding,
    view: str,
    budget: int,
) -> tuple[Markup, GraphView, bool]:
    """The cached graph of ``key`` when another request drew it meanwhile, else drawn now."""
    with _GRAPH_CACHE_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    refs = member_refs(f)
    gv: GraphView | None = None
    too_big = len(refs) > budget
    if view != "collapsed" and not too_big:
        sub = store.neighbourhood(refs, hops=1, limit=budget)
        too_big = sub.truncated
        if not too_big or view == "full":
            gv = cluster_graph(f, sub)
    if gv is None:
        if len(refs) <= budget:
            gv = cluster_graph(f, store.neighbourhood(refs, hops=0, limit=budget))
            gv = GraphView(gv.nodes, gv.edges, collapsed=True)
        else:
            gv = grouped_graph(f)
    gv = with_layout(gv)
    # serialised once, escaped for a <script> element as Jinja's ``tojson`` does
    out = (htmlsafe_json_dumps(vis_data(gv)), gv, too_big)
    with _GRAPH_CACHE_LOCK:
        cache[key] = out
        while len(cache) > GRAPH_CACHE_SIZE:
            cache.popitem(last=False)
    return out


def _identifier_nodes(gv: GraphView) -> list[Node]:
    """The identifier nodes drawn in a graph view, whose values a viewer must not see."""
    out = []
    for n in gv.nodes:
        if n.id.startswith("Identifier:"):
            ref = NodeRef.parse(n.id)
            out.append(Node(ref, {}))
    return out


def _timeline(f: Finding) -> tuple[list[dict[str, str]], int]:
    """Evidence rows that carry a time, oldest first (at most ``TIMELINE_MAX``)."""
    events = []
    for source, rows in sorted(f.evidence.items()):
        for row in rows:
            key = next((k for k in _TIME_KEYS if isinstance(row.get(k), str)), None)
            if key is None:
                continue
            what = ", ".join(
                f"{k}: {v if not isinstance(v, list) else f'{len(v)} items'}"
                for k, v in row.items()
                if k != key
            )
            events.append({"at": str(row[key]), "source": source, "key": key, "what": what})
    events.sort(key=lambda e: (e["at"], e["source"]))
    return events[:TIMELINE_MAX], len(events)


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def cluster_page(
    request: Request,
    finding_id: str,
    store: StoreDep,
    cache: RunCacheDep,
    user: UserDep,
    principal: PrincipalDep,
    redaction: RedactionKeyDep,
    run: str | None = None,
    view: Literal["auto", "full", "collapsed"] = "auto",
    budget: Annotated[int, Query(ge=10, le=MAX_NODES)] = MAX_NODES,
) -> HTMLResponse:
    from ringscope.api.routes.findings import detail

    r, f = queries.find_finding(store, finding_id, run, cache)
    d = detail(store, r, f, cache)
    data, gv, too_big = _graph(request, store, r, f, view, budget)
    if redaction is not None:
        red = redact.for_viewer(redaction, findings=[f], nodes=_identifier_nodes(gv))
        f, d = redact.finding(f, red), redact.model(d, red)
        data = htmlsafe_json_dumps(red(vis_data(gv)))
    events, n_events = _timeline(f)
    store.append_audit(user, "view_finding", f.id, {"run_id": r.id, "via": "page"})
    return templates.TemplateResponse(
        request,
        "cluster.html",
        _common(
            me=principal,
            can_decide=allows(principal.role, "investigator"),
            f=f,
            d=d,
            run=r,
            graph=data,
            view=view,
            budget=budget,
            too_big=too_big,
            collapsed=gv.collapsed,
            n_nodes=len(gv.nodes),
            n_edges=len(gv.edges),
            physics=gv.physics,
            events=events,
            n_events=n_events,
            legend_roles=ROLE_COLOURS,
            legend_labels=LABEL_COLOURS,
            legend_edges=EDGE_COLOURS,
            choices=["confirmed", "dismissed", "escalated"],
        ),
    )


@router.post("/findings/{finding_id}/decisions", dependencies=[Investigator])
async def decision_form(
    request: Request,
    finding_id: str,
    store: StoreDep,
    cache: RunCacheDep,
    user: UserDep,
    run: str | None = None,
) -> Response:
    """The decision form (URL-encoded): record, then back to the cluster page."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    try:
        body = DecisionIn(
            decision=form.get("decision", [""])[0],  # type: ignore[arg-type]
            note=form.get("note", [""])[0],
        )
    except ValidationError as e:
        raise InputError(f"decision form: {e.errors()[0]['msg']}") from e
    _, f = queries.find_finding(store, finding_id, run, cache)
    record_decision(store, f, body, user)
    return RedirectResponse(f"/findings/{quote(f.id)}#decisions", status_code=303)


@router.get("/entities/{ref:path}", response_class=HTMLResponse)
def entity_page(
    request: Request,
    ref: str,
    store: StoreDep,
    cache: RunCacheDep,
    user: UserDep,
    principal: PrincipalDep,
    run: str | None = None,
) -> HTMLResponse:
    node_ref = queries.parse_ref(ref)
    check_identifier_access(request, principal, node_ref)
    node = queries.entity(store, node_ref)
    r = queries.resolve_run(store, run)
    fs = queries.findings_of_account(store, node_ref.id, r) if node_ref.label == "Account" else []
    store.append_audit(user, "view_entity", str(node_ref), {"via": "page"})
    return templates.TemplateResponse(
        request,
        "entity.html",
        _common(
            me=principal,
            node=node,
            ref=str(node_ref),
            findings=fs,
            run=r,
            rel_types=REL_TYPES,
            config={"ref": str(node_ref), "labels": LABEL_COLOURS, "edges": EDGE_COLOURS},
        ),
    )
