"""The case file assembled: every document and picture, the manifest (ids, versions,
policy and digest, data fingerprint, loads, the queries behind the evidence, SHA-256 of
every file), ``SHA256SUMS`` and the ZIP (fixed order, fixed entry timestamps); and
:func:`export_case`, which reads the store, builds the ZIP and records the export in
the audit log."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime

from ringscope import __version__
from ringscope.api.export.case import CaseInputs, Redactor, gather, redaction_for
from ringscope.api.export.documents import (
    MEMBER_COLUMNS,
    csv_bytes,
    evidence_rows,
    json_bytes,
    member_rows,
    metrics_of,
    summary_html,
    summary_md,
    summary_sections,
)
from ringscope.api.export.picture import graph_html, graph_png, seeded_layout
from ringscope.api.viz import cluster_graph, vis_data
from ringscope.graphs.store import GraphStore
from ringscope.model import Run

#: The order of the files in the ZIP.
FILES = (
    "manifest.json",
    "SHA256SUMS",
    "summary.md",
    "summary.html",
    "members.csv",
    "evidence.csv",
    "signals.json",
    "metrics.json",
    "graph.html",
    "graph.png",
)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CaseFile:
    finding_id: str
    files: dict[str, bytes]

    def to_zip(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name in FILES:
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3
                info.external_attr = 0o644 << 16
                z.writestr(info, self.files[name], compresslevel=9)
        return buf.getvalue()


def _policy_sha256(run: Run) -> str:
    """SHA-256 of the run's policy as canonical JSON (sorted keys): checkable from the
    manifest's ``policy`` alone."""
    return sha256(json.dumps(run.policy, sort_keys=True, separators=(",", ":")).encode())


def _policy_digest(run: Run) -> str:
    """The policy digest the run recorded when it started (else the canonical one)."""
    given = run.summary.get("policy_digest")
    return given if isinstance(given, str) and given else _policy_sha256(run)


def _identifier_kinds(inp: CaseInputs) -> list[str]:
    """The identifier kinds of a case: the stored ones (``imei``, ``cookie``, as the export
    named them) and those the evidence gives (mapped by the run's policy)."""
    kinds = {kind for kind, _ in inp.identifiers}
    kinds |= {n.ref.id.partition(":")[0] for n in inp.subgraph.nodes if n.ref.label == "Identifier"}
    kinds |= {
        str(row["kind"])
        for row in inp.finding.evidence.get("identifiers", [])
        if isinstance(row, dict) and row.get("kind")
    }
    return sorted(kinds)


def build_files(
    inp: CaseInputs, *, created_at: datetime, redactor: Redactor | None = None
) -> CaseFile:
    """The case file's contents (pure): only ``manifest.json`` depends on ``created_at``."""
    # the case's data, redacted once (when asked): every file below is made from it
    shown = redaction_for(inp, redactor)(inp)
    f, run = shown.finding, shown.run
    if not f.detectors:
        f = dataclasses.replace(f, detectors=(f.detector,))
        shown = dataclasses.replace(shown, finding=f)
    view = seeded_layout(cluster_graph(f, shown.subgraph))
    data = vis_data(view)

    ev = evidence_rows(f)
    metrics = metrics_of(f, ev, view)
    digest = _policy_digest(run)
    title = f"Case file: {f.kind} {f.id}"
    sections = summary_sections(shown, ev, metrics, digest)
    columns = ["source", *sorted({k for r in ev for k in r} - {"source"})]
    files: dict[str, bytes] = {
        "summary.md": summary_md(title, sections),
        "summary.html": summary_html(title, sections),
        "members.csv": csv_bytes(
            MEMBER_COLUMNS, ([r[c] for c in MEMBER_COLUMNS] for r in member_rows(shown))
        ),
        "evidence.csv": csv_bytes(columns, ([r.get(c) for c in columns] for r in ev)),
        "signals.json": json_bytes(
            [
                {
                    "name": s.name,
                    "value": s.value,
                    "threshold": s.threshold,
                    "weight": s.weight,
                    "fired": s.value >= s.threshold,
                }
                for s in f.signals
            ]
        ),
        "metrics.json": json_bytes(metrics),
        "graph.html": graph_html(f"Network of {f.kind} {f.id}", data),
        "graph.png": graph_png(view),
    }
    manifest = {
        "format": "ringscope-case-file/1",
        "finding_id": f.id,
        "case_id": f.case_id or f.id,
        "run_id": run.id,
        "created_at": created_at.astimezone(UTC).isoformat(),
        "ringscope_version": __version__,
        "detectors": [
            {"name": d.name, "version": d.version, "params": d.params} for d in f.detectors
        ],
        "policy": run.policy,
        "policy_digest": digest,
        "policy_sha256": _policy_sha256(run),
        "data_fingerprint": run.data_fingerprint,
        "loads": shown.loads,
        "queries": [
            {
                "what": "the finding as saved by its run",
                "call": f"store.findings({run.id!r})",
                "evidence_sources": sorted(f.evidence),
            },
            {**shown.graph_query, "call": "store.neighbourhood"},
            {"what": "decisions of the case", "call": f"store.decisions({(f.case_id or f.id)!r})"},
            {
                "what": "account ages and activity",
                "tables": ["accounts", "engagements", "orders", "follows", "streams"],
            },
        ],
        "redaction": None
        if redactor is None
        else {
            "method": "HMAC-SHA256, first 16 hex digits, key from RINGSCOPE_REDACTION_KEY",
            # every kind is redacted, those of the export as it named them included
            "identifiers": _identifier_kinds(inp),
            "accounts": redactor.accounts,
        },
        "files": {name: sha256(files[name]) for name in sorted(files)},
    }
    files["manifest.json"] = json_bytes(manifest)
    files["SHA256SUMS"] = "".join(
        f"{sha256(files[n])}  {n}\n" for n in FILES if n != "SHA256SUMS"
    ).encode()
    return CaseFile(f.id, files)


@dataclass(frozen=True)
class Export:
    finding_id: str
    run_id: str
    data: bytes
    redacted: bool

    @property
    def filename(self) -> str:
        return f"{self.finding_id}{'-redacted' if self.redacted else ''}.zip"


def export_case(
    store: GraphStore,
    finding_id: str,
    *,
    who: str,
    via: str,
    run_id: str | None = None,
    redact: bool = False,
    redact_accounts: bool = False,
    key: str = "",
    now: datetime | None = None,
) -> Export:
    """Build the ZIP case file of a finding and record the export in the audit log."""
    redactor = Redactor.from_key(key, accounts=redact_accounts) if redact else None
    inp = gather(store, finding_id, run_id)
    case = build_files(inp, created_at=now or datetime.now(UTC), redactor=redactor)
    data = case.to_zip()
    store.append_audit(
        who,
        "export",
        inp.finding.id,
        {
            "run_id": inp.run.id,
            "format": "zip",
            "channel": via,
            "redacted": redact,
            "redacted_accounts": bool(redact and redact_accounts),
            "sha256": sha256(data),
        },
    )
    return Export(inp.finding.id, inp.run.id, data, redact)
