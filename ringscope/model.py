"""Domain objects shared by loaders, stores, detectors, jobs and the app.

Immutable and canonical: members are sorted, findings order by score then id,
so that two runs on the same data serialise to the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

# --------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class Member:
    account_id: str
    role: str
    score: float


@dataclass(frozen=True, slots=True)
class Beneficiary:
    account_id: str
    role: str


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    value: float
    threshold: float
    weight: float


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    name: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)


def finding_id(kind: str, account_ids: list[str] | tuple[str, ...]) -> str:
    """Stable id of a finding: a hash of its kind and its sorted member ids."""
    h = hashlib.sha256()
    h.update(kind.encode())
    for a in sorted(set(account_ids)):
        h.update(b"\x00")
        h.update(a.encode())
    return f"{kind[:2]}-{h.hexdigest()[:16]}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One suspect cluster, scored and explained.

    ``evidence`` maps a source (``engagements``, ``orders``, ``identifiers``,
    ...) to a list of rows (plain JSON-able dicts with timestamps as ISO
    strings). ``detectors`` lists every detector whose result was merged into
    this finding; ``detector`` is the main one.
    """

    id: str
    kind: str
    score: float
    members: tuple[Member, ...]
    beneficiaries: tuple[Beneficiary, ...]
    signals: tuple[Signal, ...]
    explanation: str
    detector: DetectorInfo
    evidence: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    detectors: tuple[DetectorInfo, ...] = ()
    #: Compared with the previous run: new, grown, shrunk, unchanged ("" before any comparison).
    status: str = ""
    #: Stable across runs: the id this network had when first found; decisions follow it.
    case_id: str = ""
    #: The finding of the previous run this one continues ("" when new).
    previous_id: str = ""
    #: What it costs the marketplace (``ringscope.algorithms.impact``; empty before).
    impact: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def build(
        *,
        kind: str,
        score: float,
        members: list[Member] | tuple[Member, ...],
        beneficiaries: list[Beneficiary] | tuple[Beneficiary, ...] = (),
        signals: list[Signal] | tuple[Signal, ...] = (),
        explanation: str,
        detector: DetectorInfo,
        evidence: dict[str, list[dict[str, Any]]] | None = None,
        detectors: tuple[DetectorInfo, ...] = (),
    ) -> Finding:
        """Make a canonical finding: id from kind and members, members sorted, score clipped."""
        ms = tuple(sorted(members, key=lambda m: m.account_id))
        bs = tuple(sorted(set(beneficiaries), key=lambda b: (b.account_id, b.role)))
        return Finding(
            id=finding_id(kind, [m.account_id for m in ms]),
            kind=kind,
            score=round(min(1.0, max(0.0, float(score))), 6),
            members=ms,
            beneficiaries=bs,
            signals=tuple(signals),
            explanation=explanation,
            detector=detector,
            evidence=evidence or {},
            detectors=detectors or (detector,),
        )

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.account_id for m in self.members)

    def to_dict(self, *, evidence: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not evidence:
            d.pop("evidence")
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Finding:
        return Finding(
            id=d["id"],
            kind=d["kind"],
            score=float(d["score"]),
            members=tuple(Member(**m) for m in d["members"]),
            beneficiaries=tuple(Beneficiary(**b) for b in d.get("beneficiaries", ())),
            signals=tuple(Signal(**s) for s in d.get("signals", ())),
            explanation=d.get("explanation", ""),
            detector=DetectorInfo(**d["detector"]),
            evidence=d.get("evidence") or {},
            detectors=tuple(DetectorInfo(**x) for x in d.get("detectors", ()))
            or (DetectorInfo(**d["detector"]),),
            status=d.get("status", ""),
            case_id=d.get("case_id", ""),
            previous_id=d.get("previous_id", ""),
            impact=dict(d.get("impact") or {}),
        )


def rank(findings: list[Finding]) -> list[Finding]:
    """Canonical order of a queue: score descending, then id."""
    return sorted(findings, key=lambda f: (-f.score, f.id))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal objects give equal bytes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# --------------------------------------------------------------------------- runs and decisions

RunStatus = Literal["running", "succeeded", "failed"]
DecisionKind = Literal["confirmed", "dismissed", "escalated"]


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    started_at: datetime
    status: RunStatus
    finished_at: datetime | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    finding_id: str
    decision: DecisionKind
    decided_by: str
    decided_at: datetime
    note: str = ""


# --------------------------------------------------------------------------- loads


@dataclass(slots=True)
class TableReport:
    """What happened to one table of an export."""

    table: str
    file: str | None = None
    read: int = 0
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejects_file: str | None = None
    error: str | None = None  # set when the file could not be read at all
    #: stored rows changed by rows their columns' update rules allow (a refund of a
    #: completed order, an identifier seen again): see :mod:`ringscope.contract`
    updated: int = 0
    #: per column (order status, identifier kind), the values that the default policy's
    #: mapping does not know, with the count of rows that passed holding each: loaded
    #: all the same, and detectors see them as they are unless a policy maps them
    unknown_values: dict[str, dict[str, int]] = field(default_factory=dict)

    def add_unknown(self, found: dict[str, dict[str, int]]) -> None:
        """Add the counts of unknown values ``found`` in one more chunk."""
        for column, counts in found.items():
            mine = self.unknown_values.setdefault(column, {})
            for value, n in counts.items():
                mine[value] = mine.get(value, 0) + n
            self.unknown_values[column] = dict(sorted(mine.items()))

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class LoadReport:
    load_id: str
    data_dir: str
    fingerprint: str = ""
    tables: dict[str, TableReport] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.tables.values())

    @property
    def failed(self) -> bool:
        return any(not t.ok for t in self.tables.values())

    @property
    def unknown_values(self) -> dict[str, dict[str, int]]:
        """``{"table.column": {value: rows}}``: the values the default policy's mapping
        does not know, over every table (see :attr:`TableReport.unknown_values`)."""
        return {
            f"{name}.{column}": counts
            for name, t in self.tables.items()
            for column, counts in t.unknown_values.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "load_id": self.load_id,
            "data_dir": self.data_dir,
            "fingerprint": self.fingerprint,
            "tables": {k: asdict(v) for k, v in self.tables.items()},
        }


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a store did with one batch: rows inserted, identical rows skipped,
    the positions (in the batch) of rows whose key is already stored with
    different values (not written; the loader rejects them), and stored rows
    updated by rows their columns' update rules allow (see
    :mod:`ringscope.contract`)."""

    inserted: int
    duplicates: int
    conflicts: tuple[int, ...] = ()
    updated: int = 0


# --------------------------------------------------------------------------- graph views

NodeLabel = Literal["Account", "Stream", "Product", "Order", "Identifier"]
RelType = Literal[
    "HOSTED",
    "ENGAGED",
    "FOLLOWS",
    "PLACED",
    "FOR",
    "SELLS",
    "ATTRIBUTED_TO",
    "IN_STREAM",
    "AFFILIATE_OF",
    "USES",
]
REL_TYPES: tuple[str, ...] = (
    "HOSTED",
    "ENGAGED",
    "FOLLOWS",
    "PLACED",
    "FOR",
    "SELLS",
    "ATTRIBUTED_TO",
    "IN_STREAM",
    "AFFILIATE_OF",
    "USES",
)
NODE_LABELS: tuple[str, ...] = ("Account", "Stream", "Product", "Order", "Identifier")


@dataclass(frozen=True, slots=True, order=True)
class NodeRef:
    """A node by its platform id. Identifiers have id ``"<kind>:<value>"``."""

    label: str
    id: str

    def __str__(self) -> str:
        return f"{self.label}:{self.id}"

    @staticmethod
    def parse(text: str) -> NodeRef:
        label, _, ident = text.partition(":")
        if label not in NODE_LABELS or not ident:
            raise ValueError(f"not a node reference: {text!r} (expected Label:id)")
        return NodeRef(label, ident)


@dataclass(frozen=True, slots=True)
class Node:
    ref: NodeRef
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Edge:
    source: NodeRef
    target: NodeRef
    type: str
    props: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Subgraph:
    """Nodes sorted by ref, edges sorted by (source, type, target)."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Path:
    """A path in walking order: ``nodes[i]`` and ``nodes[i+1]`` are joined by ``edges[i]``
    (each edge keeps its stored direction)."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @property
    def length(self) -> int:
        return len(self.edges)
