"""The health of the marketplace over runs: an API, CSV downloads, and a page of charts.

Every figure comes from the runs' summaries (``summary["health"]``, written by
each detection run, see ``ringscope.algorithms.health``) and from the
decisions (``ringscope.jobs.feedback.decision_metrics``); nothing is
recomputed from the raw tables here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from ringscope import csvsafe
from ringscope.algorithms.health import CREATOR_WEIGHTS
from ringscope.api import charts
from ringscope.api.deps import DENIED, CallerDep, StoreDep, Viewer
from ringscope.graphs.store import GraphStore
from ringscope.jobs.diff import STATUSES
from ringscope.model import Run

router = APIRouter(tags=["ecosystem"], dependencies=[Viewer], responses={**DENIED})

RunsParam = Annotated[int, Query(ge=1, le=365, description="How many recent runs.")]
CSV_TABLES = ("trend", "kinds", "changes", "creators", "decisions")


class EcosystemRunOut(BaseModel):
    run_id: str
    started_at: datetime
    findings: int
    findings_by_kind: dict[str, int]
    changes: dict[str, int]
    accounts_flagged: int
    creators_involved: int | None
    engagement_share_flagged: float | None
    order_share_flagged: float | None
    gmv_at_risk: float | None
    gmv_refunded_at_risk: float | None
    commission_at_risk: float | None
    hours_to_detection_median: float | None
    creators_falling: int | None


class CreatorHealthOut(BaseModel):
    creator_id: str
    health: float
    previous: float | None
    change: float | None
    components: dict[str, float]


class DecisionMetricsOut(BaseModel):
    detector: str
    policy: str
    findings: int
    decided: int
    confirmed: int
    dismissed: int
    escalated: int
    precision: float | None
    median_hours_to_decision: float | None


class EcosystemOut(BaseModel):
    runs: list[EcosystemRunOut]
    creators: list[CreatorHealthOut]
    decisions: list[DecisionMetricsOut]
    creator_weights: dict[str, float]


def _run_row(run: Run) -> EcosystemRunOut:
    s, h = run.summary, run.summary.get("health") or {}
    ttd = h.get("hours_to_detection") or {}
    return EcosystemRunOut(
        run_id=run.id,
        started_at=run.started_at,
        findings=int(s.get("findings", 0)),
        findings_by_kind=dict(s.get("by_kind") or {}),
        changes={k: int((s.get("changes") or {}).get(k, 0)) for k in STATUSES},
        accounts_flagged=int(s.get("accounts_flagged", 0)),
        creators_involved=h.get("creators_involved"),
        engagement_share_flagged=h.get("engagement_share_flagged"),
        order_share_flagged=h.get("order_share_flagged"),
        gmv_at_risk=h.get("gmv_at_risk"),
        gmv_refunded_at_risk=h.get("gmv_refunded_at_risk"),
        commission_at_risk=h.get("commission_at_risk"),
        hours_to_detection_median=ttd.get("median"),
        creators_falling=h.get("creators_falling"),
    )


def ecosystem(store: GraphStore, runs: int = 30) -> EcosystemOut:
    """The last ``runs`` succeeded runs (oldest first), the latest run's creators,
    and the decisions' precision and time to decision."""
    from ringscope.jobs.feedback import decision_metrics

    done = store.runs(status="succeeded", limit=runs)
    done.reverse()
    latest = (done[-1].summary.get("health") or {}) if done else {}
    return EcosystemOut(
        runs=[_run_row(r) for r in done],
        creators=[CreatorHealthOut(**c) for c in latest.get("creators") or []],
        decisions=[DecisionMetricsOut(**m) for m in decision_metrics(store, runs=runs)],
        creator_weights=dict(CREATOR_WEIGHTS),
    )


def csv_rows(eco: EcosystemOut, table: str) -> tuple[list[str], list[list[Any]]]:
    """The numbers behind one chart or table of the page."""
    if table == "trend":
        head = [
            "run_id", "started_at", "findings", "accounts_flagged", "creators_involved",
            "engagement_share_flagged", "order_share_flagged", "gmv_at_risk",
            "gmv_refunded_at_risk", "commission_at_risk", "hours_to_detection_median",
            "creators_falling",
        ]  # fmt: skip
        rows = [[getattr(r, k) for k in head] for r in eco.runs]
        for row in rows:
            row[1] = row[1].isoformat()
        return head, rows
    if table == "kinds":
        kinds = sorted({k for r in eco.runs for k in r.findings_by_kind})
        return ["run_id", *kinds], [
            [r.run_id, *(r.findings_by_kind.get(k, 0) for k in kinds)] for r in eco.runs
        ]
    if table == "changes":
        return ["run_id", *STATUSES], [
            [r.run_id, *(r.changes.get(k, 0) for k in STATUSES)] for r in eco.runs
        ]
    if table == "creators":
        comps = list(CREATOR_WEIGHTS)
        return ["creator_id", "health", "previous", "change", *comps], [
            [c.creator_id, c.health, c.previous, c.change, *(c.components.get(k) for k in comps)]
            for c in eco.creators
        ]
    head = list(DecisionMetricsOut.model_fields)
    return head, [[getattr(m, k) for k in head] for m in eco.decisions]


@router.get("/api/ecosystem", response_model=EcosystemOut)
def get_ecosystem(store: StoreDep, runs: RunsParam = 30) -> EcosystemOut:
    """Health of the marketplace per run and as a trend across runs."""
    return ecosystem(store, runs)


@router.get(
    "/api/ecosystem/{table}.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the numbers as CSV"}},
)
def get_ecosystem_csv(
    table: Literal["trend", "kinds", "changes", "creators", "decisions"],
    store: StoreDep,
    runs: RunsParam = 30,
) -> Response:
    """The numbers behind a chart or table of the ecosystem page, as CSV."""
    head, rows = csv_rows(ecosystem(store, runs), table)
    return Response(
        csvsafe.rows_text(head, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ecosystem-{table}.csv"'},
    )


@router.get("/ecosystem", response_class=HTMLResponse, include_in_schema=False)
def ecosystem_page(request: Request, caller: CallerDep, runs: RunsParam = 30) -> HTMLResponse:
    from ringscope.api.routes.pages import _common, templates

    eco = ecosystem(caller.store, runs)
    labels = [r.started_at.strftime("%m-%d %H:%M") for r in eco.runs]
    kinds = sorted({k for r in eco.runs for k in r.findings_by_kind})
    figures = {
        "kinds": charts.stacked_bars(
            "Findings by kind per run",
            labels,
            {k: [float(r.findings_by_kind.get(k, 0)) for r in eco.runs] for k in kinds},
        ),
        "changes": charts.stacked_bars(
            "Findings by change since the previous run",
            labels,
            {s: [float(r.changes.get(s, 0)) for r in eco.runs] for s in STATUSES},
        ),
        "shares": charts.lines(
            "Share of engagement and of orders from flagged accounts",
            labels,
            {
                "engagement": [r.engagement_share_flagged or 0.0 for r in eco.runs],
                "orders": [r.order_share_flagged or 0.0 for r in eco.runs],
            },
        ),
        "money": charts.lines(
            "Money at risk (orders of flagged buyers)",
            labels,
            {
                "amount": [r.gmv_at_risk or 0.0 for r in eco.runs],
                "refunded": [r.gmv_refunded_at_risk or 0.0 for r in eco.runs],
                "commission": [r.commission_at_risk or 0.0 for r in eco.runs],
            },
        ),
    }
    return templates.TemplateResponse(
        request,
        "ecosystem.html",
        _common(
            me=caller.principal,
            run=None,
            eco=eco,
            latest=eco.runs[-1] if eco.runs else None,
            figures=figures,
            runs=runs,
        ),
    )
