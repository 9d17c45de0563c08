"""The case file's documents, made from its (redacted) data: ``members.csv``,
``evidence.csv``, ``metrics.json``, and the statement of reasons (who, what, when, where,
why, how, whether detection was automated, the decisions) as ``summary.md`` and
``summary.html``. Pure functions: the same data gives the same bytes."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from markupsafe import escape as mescape

from ringscope import csvsafe
from ringscope.api.export.case import CaseInputs, iso_time
from ringscope.api.viz import GraphView
from ringscope.model import Finding

#: Evidence sources that describe the evidence rather than being evidence.
META_SOURCES = ("counts",)
_TIME_KEYS = (
    "ts",
    "first_ts",
    "last_ts",
    "first_seen",
    "last_seen",
    "refunded_at",
    "since",
    "started_at",
)


def json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(round(v, 6))
    if isinstance(v, (list, tuple)):
        return "|".join(_cell(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, ensure_ascii=False)
    return str(v)


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file whose cells a spreadsheet will not evaluate (``ringscope.csvsafe``)."""
    cells = ([x if type(x) is str else _cell(x) for x in r] for r in rows)
    return csvsafe.rows_text(header, cells).encode()


def evidence_rows(f: Finding) -> list[dict[str, Any]]:
    rows = []
    for source in sorted(f.evidence):
        if source in META_SOURCES:
            continue
        for r in f.evidence[source]:
            rows.append({"source": source, **(r if isinstance(r, dict) else {"value": r})})
    return rows


def _times(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(
        str(r[k]) for r in rows for k in _TIME_KEYS if isinstance(r.get(k), str) and r.get(k)
    )


def _num(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(x) else x


def _days(a: str, b: str) -> float:
    return round((pd.Timestamp(b) - pd.Timestamp(a)).total_seconds() / 86400, 3)


#: A part of a summary section: a paragraph, or a table (header row first).
Part = str | list[list[str]]


def member_rows(inp: CaseInputs) -> list[dict[str, Any]]:
    f, run = inp.finding, inp.run
    at = pd.Timestamp(run.started_at)
    if at.tzinfo is None:
        at = at.tz_localize("UTC")
    bens = {b.account_id: b.role for b in f.beneficiaries}
    rows: list[dict[str, Any]] = []

    def row(a: str, role: str, score: float | None, member: bool) -> dict[str, Any]:
        info = inp.accounts.get(a, {})
        created = info.get("created_at", "")
        age = int((at - pd.Timestamp(created)).total_seconds() // 86400) if created else None
        return {
            "account_id": a,
            "role": role,
            "score": score,
            "member": member,
            "beneficiary": a in bens,
            "created_at": created,
            "account_age_days": age,
            "first_activity": info.get("first_activity", ""),
            "last_activity": info.get("last_activity", ""),
        }

    for m in f.members:
        rows.append(row(m.account_id, m.role, m.score, True))
    member_ids = set(f.member_ids)
    for b in f.beneficiaries:
        if b.account_id not in member_ids:
            rows.append(row(b.account_id, b.role, None, False))
    return rows


MEMBER_COLUMNS = (
    "account_id",
    "role",
    "score",
    "member",
    "beneficiary",
    "created_at",
    "account_age_days",
    "first_activity",
    "last_activity",
)


def metrics_of(f: Finding, ev: list[dict[str, Any]], graph: GraphView) -> dict[str, Any]:
    per_source: dict[str, int] = {}
    for r in ev:
        per_source[r["source"]] = per_source.get(r["source"], 0) + 1
    totals = {
        str(c.get("source")): {"shown": c.get("shown"), "total": c.get("total")}
        for c in f.evidence.get("counts", [])
        if isinstance(c, dict)
    }
    out: dict[str, Any] = {
        "finding_id": f.id,
        "kind": f.kind,
        "score": f.score,
        "members": len(f.members),
        "beneficiaries": len(f.beneficiaries),
        "signals": len(f.signals),
        "signals_fired": sum(1 for s in f.signals if s.value >= s.threshold),
        "evidence_rows": per_source,
        "evidence_totals": totals,
        "graph": {"nodes": len(graph.nodes), "edges": len(graph.edges)},
    }
    orders = [r for r in ev if r["source"] == "orders"]
    if orders:
        refunded = [r for r in orders if r.get("status") == "refunded"]
        out["orders"] = {
            "count": len(orders),
            "gmv": round(sum(_num(r.get("amount")) for r in orders), 2),
            "commission": round(sum(_num(r.get("commission")) for r in orders), 2),
            "refunded_count": len(refunded),
            "refunded_amount": round(sum(_num(r.get("amount")) for r in refunded), 2),
            "cancelled_count": sum(1 for r in orders if r.get("status") == "cancelled"),
        }
    times = _times(ev)
    out["time_span"] = (
        {"first": times[0], "last": times[-1], "days": _days(times[0], times[-1])}
        if times
        else None
    )
    return out


def _where(ev: list[dict[str, Any]], f: Finding) -> dict[str, list[str]]:
    streams = sorted({str(r["stream_id"]) for r in ev if r.get("stream_id")})
    sellers = sorted({str(r["seller_id"]) for r in ev if r.get("seller_id")})
    creators = sorted({str(r["creator_id"]) for r in ev if r.get("creator_id")})
    for b in f.beneficiaries:
        if "seller" in b.role and b.account_id not in sellers:
            sellers.append(b.account_id)
        if "creator" in b.role and b.account_id not in creators:
            creators.append(b.account_id)
    return {"streams": streams, "sellers": sorted(sellers), "creators": sorted(creators)}


def summary_sections(
    inp: CaseInputs, ev: list[dict[str, Any]], metrics: dict[str, Any], policy_digest: str
) -> list[tuple[str, list[Part]]]:
    """Sections of the statement of reasons: (heading, paragraphs or tables)."""
    f, run = inp.finding, inp.run
    roles: dict[str, int] = {}
    for m in f.members:
        roles[m.role] = roles.get(m.role, 0) + 1
    where = _where(ev, f)
    span = metrics.get("time_span")
    policy_version = str(run.policy.get("version", "")) or "unnamed"
    decision = inp.decisions[-1].decision if inp.decisions else "undecided"

    def listing(items: Sequence[str], limit: int = 30) -> str:
        if not items:
            return "none"
        more = f" and {len(items) - limit} more" if len(items) > limit else ""
        return ", ".join(items[:limit]) + more

    who: list[Part] = [
        f"{len(f.members)} member accounts ("
        + ", ".join(f"{n} {r}" for r, n in sorted(roles.items()))
        + ").",
        "Beneficiaries: "
        + (", ".join(f"{b.account_id} ({b.role})" for b in f.beneficiaries) or "none")
        + ".",
        [["account", "role", "score"]]
        + [[m.account_id, m.role, f"{m.score:.3f}"] for m in f.members],
    ]
    what: list[Part] = [
        f"Kind: {f.kind}. Score: {f.score:.3f} (0 to 1). Finding {f.id}, "
        f"case {f.case_id or f.id}, run {run.id}.",
        f"Explanation: {f.explanation}",
    ]
    when: list[Part] = [
        f"First evidence: {span['first']}; last evidence: {span['last']} ({span['days']} days)."
        if span
        else "The evidence carries no timestamps.",
        f"Detection run started {iso_time(run.started_at)}.",
    ]
    where_p: list[Part] = [
        f"Streams: {listing(where['streams'])}.",
        f"Sellers: {listing(where['sellers'])}.",
        f"Creators: {listing(where['creators'])}.",
    ]
    why: list[Part] = [
        "Signals (a signal fires when its value reaches its threshold):",
        [["signal", "value", "threshold", "weight", "fired"]]
        + [
            [
                s.name,
                f"{s.value:.4g}",
                f"{s.threshold:.4g}",
                f"{s.weight:.3g}",
                "yes" if s.value >= s.threshold else "no",
            ]
            for s in f.signals
        ],
    ]
    how: list[Part] = [
        [["detector", "version", "parameters"]]
        + [
            [d.name, d.version, json.dumps(d.params, sort_keys=True, ensure_ascii=False)]
            for d in f.detectors
        ],
        f"Input data fingerprint (SHA-256): {run.data_fingerprint or 'unknown'}.",
    ]
    automated: list[Part] = [
        "Yes. The finding was produced by automated detection under "
        f"policy version {policy_version} (SHA-256 {policy_digest}). "
        "Decisions by investigators, when recorded, are listed below.",
    ]
    dec: list[Part] = [f"Current decision: {decision}."]
    if inp.decisions:
        dec.append(
            [["when", "who", "decision", "note"]]
            + [[iso_time(d.decided_at), d.decided_by, d.decision, d.note] for d in inp.decisions]
        )
    else:
        dec.append("No decision has been recorded.")
    return [
        ("Who", who),
        ("What", what),
        ("When", when),
        ("Where", where_p),
        ("Why", why),
        ("How", how),
        ("Automated detection", automated),
        ("Decision and history", dec),
    ]


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def _md_text(s: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", s.replace("\r", " ").replace("\n", " "))


def summary_md(title: str, sections: list[tuple[str, list[Part]]]) -> bytes:
    out = [f"# {_md_text(title)}", ""]
    for heading, parts in sections:
        out += [f"## {heading}", ""]
        for p in parts:
            if isinstance(p, str):
                out += [_md_text(p), ""]
            else:
                out.append("| " + " | ".join(_md_text(c) for c in p[0]) + " |")
                out.append("|" + " --- |" * len(p[0]))
                out += ["| " + " | ".join(_md_text(c) for c in r) + " |" for r in p[1:]]
                out.append("")
    return ("\n".join(out).rstrip() + "\n").encode()


_CSS = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
    "th{background:#f1f3f5}"
)


def summary_html(title: str, sections: list[tuple[str, list[Part]]]) -> bytes:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{mescape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{mescape(title)}</h1>",
    ]
    for heading, parts in sections:
        out.append(f"<h2>{mescape(heading)}</h2>")
        for p in parts:
            if isinstance(p, str):
                out.append(f"<p>{mescape(p)}</p>")
            else:
                out.append("<table><thead><tr>")
                out.append("".join(f"<th>{mescape(c)}</th>" for c in p[0]))
                out.append("</tr></thead><tbody>")
                for r in p[1:]:
                    out.append("<tr>" + "".join(f"<td>{mescape(c)}</td>" for c in r) + "</tr>")
                out.append("</tbody></table>")
    out.append("</body></html>")
    return ("\n".join(out) + "\n").encode()
