"""API response models, separate from the domain dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from ringscope.model import Decision, Edge, Finding, Node, Path, Run, Subgraph

T = TypeVar("T")

DiffStatus = Literal["new", "grown", "shrunk", "unchanged"]
DecisionKind = Literal["confirmed", "dismissed", "escalated"]
DecisionStatus = Literal["confirmed", "dismissed", "escalated", "undecided"]
SortKey = Literal["rank", "score", "impact", "priority", "kind", "size", "status", "decision"]


class Health(BaseModel):
    status: str
    version: str
    store: str


class RunOut(BaseModel):
    id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    data_fingerprint: str
    summary: dict[str, Any]

    @staticmethod
    def of(run: Run) -> RunOut:
        return RunOut(
            id=run.id,
            status=run.status,
            started_at=run.started_at,
            finished_at=run.finished_at,
            data_fingerprint=run.data_fingerprint,
            summary=run.summary,
        )


class MemberOut(BaseModel):
    account_id: str
    role: str
    score: float


class BeneficiaryOut(BaseModel):
    account_id: str
    role: str


class SignalOut(BaseModel):
    name: str
    value: float
    threshold: float
    weight: float


class DetectorOut(BaseModel):
    name: str
    version: str
    params: dict[str, Any]


class DecisionOut(BaseModel):
    case_id: str
    decision: str
    decided_by: str
    decided_at: datetime
    note: str

    @staticmethod
    def of(d: Decision) -> DecisionOut:
        return DecisionOut(
            case_id=d.finding_id,
            decision=d.decision,
            decided_by=d.decided_by,
            decided_at=d.decided_at,
            note=d.note,
        )


class DecisionIn(BaseModel):
    decision: DecisionKind
    note: str = Field(default="", max_length=4000)


class FindingSummary(BaseModel):
    id: str
    case_id: str
    kind: str
    score: float
    size: int
    beneficiaries: list[BeneficiaryOut]
    explanation: str
    #: Compared with the previous run: new, grown, shrunk, unchanged.
    status: str
    #: The case's latest decision, or "undecided".
    decision: str
    #: A confirmed case that grew since: shown first in the queue.
    raised_again: bool
    #: What it costs the marketplace (orders, amounts, commission, engagement share...).
    impact: dict[str, float] = Field(default_factory=dict)

    @staticmethod
    def of(
        f: Finding, *, decision: str = "undecided", raised_again: bool = False
    ) -> FindingSummary:
        return FindingSummary(
            id=f.id,
            case_id=f.case_id or f.id,
            kind=f.kind,
            score=f.score,
            size=len(f.members),
            beneficiaries=[
                BeneficiaryOut(account_id=b.account_id, role=b.role) for b in f.beneficiaries
            ],
            explanation=f.explanation,
            status=f.status,
            decision=decision,
            raised_again=raised_again,
            impact=dict(f.impact),
        )


class HistoryEntry(BaseModel):
    """The case in one run."""

    run_id: str
    run_started_at: datetime
    finding_id: str
    status: str
    score: float
    size: int


class FindingDetail(FindingSummary):
    run_id: str
    previous_id: str
    members: list[MemberOut]
    signals: list[SignalOut]
    detector: DetectorOut
    detectors: list[DetectorOut]
    evidence: dict[str, list[dict[str, Any]]]
    history: list[HistoryEntry]
    decisions: list[DecisionOut]


class Page(BaseModel, Generic[T]):
    run_id: str | None
    total: int
    offset: int
    limit: int
    items: list[T]


class NodeOut(BaseModel):
    ref: str
    label: str
    id: str
    props: dict[str, Any]

    @staticmethod
    def of(n: Node) -> NodeOut:
        return NodeOut(ref=str(n.ref), label=n.ref.label, id=n.ref.id, props=n.props)


class EdgeOut(BaseModel):
    source: str
    target: str
    type: str
    props: dict[str, Any]

    @staticmethod
    def of(e: Edge) -> EdgeOut:
        return EdgeOut(source=str(e.source), target=str(e.target), type=e.type, props=e.props)


class GraphOut(BaseModel):
    nodes: list[NodeOut]
    edges: list[EdgeOut]
    truncated: bool

    @staticmethod
    def of(g: Subgraph) -> GraphOut:
        return GraphOut(
            nodes=[NodeOut.of(n) for n in g.nodes],
            edges=[EdgeOut.of(e) for e in g.edges],
            truncated=g.truncated,
        )


class PathOut(BaseModel):
    found: bool
    length: int | None
    nodes: list[NodeOut]
    edges: list[EdgeOut]

    @staticmethod
    def of(p: Path | None) -> PathOut:
        if p is None:
            return PathOut(found=False, length=None, nodes=[], edges=[])
        return PathOut(
            found=True,
            length=p.length,
            nodes=[NodeOut.of(n) for n in p.nodes],
            edges=[EdgeOut.of(e) for e in p.edges],
        )


class EntityOut(BaseModel):
    node: NodeOut
    findings: list[FindingSummary]


class AuditEntryOut(BaseModel):
    seq: int
    at: datetime
    who: str
    action: str
    subject: str
    detail: dict[str, Any]


class ErrorOut(BaseModel):
    error: str
    detail: str
