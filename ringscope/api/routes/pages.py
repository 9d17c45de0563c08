"""Server-rendered pages. Every text from data is escaped by Jinja's autoescape; data
handed to scripts goes through ``tojson`` (which escapes ``<``, ``>``, ``&`` and ``'``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
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
    CallerDep,
    Investigator,
    Viewer,
    check_identifier_access,
)
from ringscope.api.render_cache import RenderCache, key_digest
from ringscope.api.routes.findings import record_decision
from ringscope.api.schemas import DecisionIn, DecisionOut, DecisionStatus, DiffStatus, SortKey
from ringscope.api.viz import (
    EDGE_COLOURS,
    LABEL_COLOURS,
    MAX_NODES,
    ROLE_COLOURS,
    GraphView,
    cluster_graph,
    grouped_graph,
    member_refs,
    packed,
    vis_data,
    with_layout,
)
from ringscope.errors import InputError
from ringscope.graphs.store import GraphStore
from ringscope.model import REL_TYPES, Finding, Node, NodeRef, Run

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
# The templates are the installed package's: not looked at again (a stat() of every
# template a page extends or includes, on every request).
templates.env.auto_reload = False
templates.env.filters["u"] = lambda s: quote(str(s), safe=":")
router = APIRouter(tags=["pages"], include_in_schema=False, dependencies=[Viewer])

_TIME_KEYS = ("ts", "first_ts", "first_seen", "decided_at", "created_at", "since", "started_at")
TIMELINE_MAX = 400


def _common(**extra: Any) -> dict[str, Any]:
    return {"version": __version__, **extra}


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request,
    caller: CallerDep,
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
    redaction = caller.redaction
    q = queries.queue(
        caller.store,
        cache=caller.cache,
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
            me=caller.principal,
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


@dataclass(frozen=True, slots=True)
class DrawnGraph:
    """A finding's graph as drawn: the view, its vis data packed (``viz.packed``) as JSON
    for a script element (escaped as Jinja's ``tojson`` does), and whether the full
    graph is over budget."""

    view: GraphView
    data: Markup
    too_big: bool


def _graph(
    request: Request,
    store: GraphStore,
    run: Run,
    f: Finding,
    view: str,
    budget: int,
    data_fingerprint: str,
) -> DrawnGraph:
    """The finding's graph, drawn once per (run, finding, view, budget, data): it changes
    with the data (a new load, a new ``store.fingerprint()``), not with decisions."""
    cache: RenderCache[DrawnGraph] = request.app.state.graph_cache
    key = ("graph", run.id, f.id, view, budget, data_fingerprint)
    return cache.get(key, lambda: _draw(store, f, view, budget))


def _draw(store: GraphStore, f: Finding, view: str, budget: int) -> DrawnGraph:
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
    return DrawnGraph(gv, _script_json(packed(vis_data(gv))), too_big)


def _script_json(data: Any) -> Markup:
    """``data`` as JSON for a script element: escaped as Jinja's ``tojson`` does, without
    spaces."""
    return htmlsafe_json_dumps(data, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ClusterBody:
    """The part of a cluster page that is the same for every request of one role and
    redaction: the finding as shown, its graph, members and timeline, rendered; and the
    redaction that the per-request parts (the decisions' notes) go through."""

    finding: Finding
    graph: DrawnGraph
    html: Markup
    red: Callable[[Any], Any] | None


def _cluster_body(
    request: Request,
    store: GraphStore,
    run: Run,
    f: Finding,
    view: str,
    budget: int,
    redaction: str | None,
) -> ClusterBody:
    data_fingerprint = store.fingerprint()
    drawn = _graph(request, store, run, f, view, budget, data_fingerprint)
    cache: RenderCache[ClusterBody] = request.app.state.page_cache
    key = ("cluster", run.id, f.id, view, budget, data_fingerprint, key_digest(redaction))

    def render() -> ClusterBody:
        shown, data, red = f, drawn.data, None
        if redaction is not None:
            red = redact.for_viewer(redaction, findings=[f], nodes=_identifier_nodes(drawn.view))
            shown = redact.finding(f, red)
            data = _script_json(red(packed(vis_data(drawn.view))))
        events, n_events = _timeline(shown)
        gv = drawn.view
        html = templates.get_template("cluster_body.html").render(
            f=shown,
            graph=data,
            view=view,
            budget=budget,
            too_big=drawn.too_big,
            collapsed=gv.collapsed,
            n_nodes=len(gv.nodes),
            n_edges=len(gv.edges),
            physics=gv.physics,
            events=events,
            n_events=n_events,
            legend_roles=ROLE_COLOURS,
            legend_labels=LABEL_COLOURS,
        )
        return ClusterBody(shown, drawn, Markup(html), red)

    return cache.get(key, render)


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
    caller: CallerDep,
    run: str | None = None,
    view: Literal["auto", "full", "collapsed"] = "auto",
    budget: Annotated[int, Query(ge=10, le=MAX_NODES)] = MAX_NODES,
) -> HTMLResponse:
    """A cluster's page. Its graph, members and timeline are rendered once per run,
    data, view and redaction (``ClusterBody``); the case's decisions and history across
    runs are read for every request, and every view is audited."""
    store, cache, principal = caller.store, caller.cache, caller.principal
    state = queries.finding_state(store, finding_id, run, cache)
    r, f = state.run, state.finding
    body = _cluster_body(request, store, r, f, view, budget, caller.redaction)
    decisions = [DecisionOut.of(x) for x in state.decisions]
    history = queries.history_entries(store, f, cache=cache, runs=state.runs)
    if body.red is not None:
        decisions = [redact.model(x, body.red) for x in decisions]
    store.append_audit(caller.user, "view_finding", f.id, {"run_id": r.id, "via": "page"})
    return templates.TemplateResponse(
        request,
        "cluster.html",
        _common(
            me=principal,
            can_decide=allows(principal.role, "investigator"),
            f=body.finding,
            case_id=f.case_id or f.id,
            decision=decisions[-1].decision if decisions else "undecided",
            raised_again=f.id in set(r.summary.get("raised_again") or []),
            decisions=decisions,
            history=history,
            run=r,
            body=body.html,
            choices=["confirmed", "dismissed", "escalated"],
        ),
    )


@router.post("/findings/{finding_id}/decisions", dependencies=[Investigator])
async def decision_form(
    request: Request,
    finding_id: str,
    caller: CallerDep,
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
    _, f = queries.find_finding(caller.store, finding_id, run, caller.cache)
    record_decision(caller.store, f, body, caller.user)
    return RedirectResponse(f"/findings/{quote(f.id)}#decisions", status_code=303)


@router.get("/entities/{ref:path}", response_class=HTMLResponse)
def entity_page(
    request: Request,
    ref: str,
    caller: CallerDep,
    run: str | None = None,
) -> HTMLResponse:
    store, principal = caller.store, caller.principal
    node_ref = queries.parse_ref(ref)
    check_identifier_access(request, principal, node_ref)
    node = queries.entity(store, node_ref)
    r = queries.resolve_run(store, run)
    fs = queries.findings_of_account(store, node_ref.id, r) if node_ref.label == "Account" else []
    store.append_audit(caller.user, "view_entity", str(node_ref), {"via": "page"})
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
