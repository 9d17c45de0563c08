"""Server-rendered pages. Every text from data is escaped by Jinja's autoescape; data
handed to scripts goes through ``tojson`` (which escapes ``<``, ``>``, ``&`` and ``'``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from pydantic import ValidationError

from ringscope import __version__
from ringscope.api import queries, redact
from ringscope.api.auth import allows
from ringscope.api.deps import (
    Caller,
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
    Positions,
    cluster_graph,
    grouped_graph,
    layout,
    member_refs,
    packed,
    placed,
    vis_data,
)
from ringscope.errors import InputError
from ringscope.graphs.store import GraphStore
from ringscope.model import REL_TYPES, Finding, Run

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


#: Rows of the queue page by default, and at most.
QUEUE_PAGE_ROWS, QUEUE_PAGE_MAX = 50, 500


def _choice(name: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """A filter's value from the form: empty (the form's "all") is no filter."""
    if value is None or value.strip() == "":
        return None
    if value not in allowed:
        raise HTTPException(422, f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _score(name: str, value: str | None, default: float) -> float:
    """A score bound from the form: empty is ``default``; else a number in [0, 1]."""
    if value is None or value.strip() == "":
        return default
    try:
        x = float(value)
    except ValueError:
        raise HTTPException(422, f"{name}: {value!r} is not a number") from None
    if not 0.0 <= x <= 1.0:
        raise HTTPException(422, f"{name}: {value!r} is not between 0 and 1")
    return x


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request,
    caller: CallerDep,
    run: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    decision: str | None = None,
    beneficiary: str | None = None,
    min_score: str | None = None,
    max_score: str | None = None,
    sort: SortKey = "rank",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
    limit: Annotated[int, Query(ge=1, le=QUEUE_PAGE_MAX)] = QUEUE_PAGE_ROWS,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """The queue as a page. The filter form sends every field, "all" and an empty score
    as empty values, which mean no filter; ``limit`` rows from page ``page``."""
    low, high = _score("min_score", min_score, 0.0), _score("max_score", max_score, 1.0)
    chosen_status = _choice("status", status, get_args(DiffStatus))
    chosen_decision = _choice("decision", decision, get_args(DecisionStatus))
    q = queries.queue(
        caller.store,
        cache=caller.cache,
        run=run or None,
        kind=kind or None,
        min_score=low,
        max_score=high,
        status=cast(DiffStatus | None, chosen_status),
        decision=cast(DecisionStatus | None, chosen_decision),
        beneficiary=beneficiary or None,
        sort=sort,
        descending=order == "desc",
    )
    red = redact.for_run(
        caller.redaction, caller.store, q.run, caller.cache, request.app.state.page_cache
    )
    first = (page - 1) * limit
    items = [dataclasses.replace(i, finding=red(i.finding)) for i in q.items[first : first + limit]]
    filters = {
        "run": run or "",
        "kind": kind or "",
        "status": chosen_status or "",
        "decision": chosen_decision or "",
        "beneficiary": beneficiary or "",
        "min_score": low if low > 0 else "",
        "max_score": high if high < 1 else "",
    }
    query = {k: v for k, v in filters.items() if v != ""}
    if limit != QUEUE_PAGE_ROWS:
        query["limit"] = limit
    return templates.TemplateResponse(
        request,
        "queue.html",
        _common(
            me=caller.principal,
            run=q.run,
            items=items,
            total=len(q.items),
            first=first,
            page=page,
            pages=max(1, -(-len(q.items) // limit)),
            kinds=q.kinds,
            filters=filters,
            query=query,
            sort=sort,
            order=order,
            statuses=list(get_args(DiffStatus)),
            decisions=list(get_args(DecisionStatus)),
        ),
    )


@dataclass(frozen=True, slots=True)
class DrawnGraph:
    """A finding's graph as drawn for one redaction: the view, its vis data packed
    (``viz.packed``) as JSON for a script element (escaped as Jinja's ``tojson`` does),
    whether the full graph is over budget, and the redaction the graph was drawn with
    (which knows the values of its nodes: the rest of the page goes through it too)."""

    view: GraphView
    data: Markup
    too_big: bool
    red: redact.Redaction


def _graph(
    request: Request,
    store: GraphStore,
    run: Run,
    f: Finding,
    view: str,
    budget: int,
    data_fingerprint: str,
    red: redact.Redaction,
    redaction: str | None,
) -> DrawnGraph:
    """The finding's graph, drawn once per (run, finding, view, budget, data, redaction):
    it changes with the data (a new load, a new ``store.fingerprint()``), not with
    decisions. The nodes' positions are computed once for every redaction (they depend
    on the graph's shape only)."""
    cache: RenderCache[Any] = request.app.state.graph_cache  # graphs, and their layouts
    key = (run.id, f.id, view, budget, data_fingerprint)

    def positions(gv: GraphView) -> Positions:
        found: Positions = cache.get(("layout", *key), lambda: layout(gv))
        return found

    drawn: DrawnGraph = cache.get(
        ("graph", *key, key_digest(redaction)),
        lambda: _draw(store, f, view, budget, red, positions),
    )
    return drawn


def _draw(
    store: GraphStore,
    f: Finding,
    view: str,
    budget: int,
    red: redact.Redaction,
    positions: Callable[[GraphView], Positions],
) -> DrawnGraph:
    """Read the finding's neighbourhood, redact it with the finding (``red``, knowing
    its nodes' values too) and draw what comes out."""
    refs = member_refs(f)
    gv: GraphView | None = None
    too_big = len(refs) > budget
    sub = None
    if view != "collapsed" and not too_big:
        sub = store.neighbourhood(refs, hops=1, limit=budget)
        too_big = sub.truncated
        if too_big and view != "full":
            sub = None
    elif view == "full" and too_big:
        # More members than the budget: "draw anyway" draws the first ``budget``
        # members and the links among them, not the collapsed view again.
        sub = store.neighbourhood(refs[:budget], hops=0, limit=budget)
    collapsed = sub is None
    if sub is None and len(refs) <= budget:
        sub = store.neighbourhood(refs, hops=0, limit=budget)
    if sub is not None:
        red = red.including(sub)
        gv = cluster_graph(red(f), red(sub))
        gv = GraphView(gv.nodes, gv.edges, collapsed, truncated=gv.truncated and not collapsed)
    else:
        gv = grouped_graph(red(f))
    gv = placed(gv, positions(gv))
    return DrawnGraph(gv, _script_json(packed(vis_data(gv))), too_big, red)


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
    red: redact.Redaction


def _cluster_body(
    request: Request,
    caller: Caller,
    run: Run,
    f: Finding,
    view: str,
    budget: int,
) -> ClusterBody:
    store, redaction = caller.store, caller.redaction
    data_fingerprint = store.fingerprint()
    red = redact.for_run(redaction, store, run, caller.cache, request.app.state.page_cache)
    drawn = _graph(request, store, run, f, view, budget, data_fingerprint, red, redaction)
    cache: RenderCache[ClusterBody] = request.app.state.page_cache
    key = ("cluster", run.id, f.id, view, budget, data_fingerprint, key_digest(redaction))

    def render() -> ClusterBody:
        shown = drawn.red(f)
        events, n_events = _timeline(shown)
        gv = drawn.view
        html = templates.get_template("cluster_body.html").render(
            f=shown,
            graph=drawn.data,
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
        return ClusterBody(shown, drawn, Markup(html), drawn.red)

    return cache.get(key, render)


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
    body = _cluster_body(request, caller, r, f, view, budget)
    decisions = [DecisionOut.of(body.red(x)) for x in state.decisions]
    history = queries.history_entries(store, f, cache=cache, runs=state.runs)
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
    red = redact.for_run(caller.redaction, store, r, caller.cache, request.app.state.page_cache)
    red = red.including(node)
    node, node_ref, fs = red(node), red(node_ref), [red(f) for f in fs]
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
