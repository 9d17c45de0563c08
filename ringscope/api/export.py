"""The case file of a finding: a ZIP that stands on its own for enforcement.

Layout (fixed order, fixed entry timestamps, sorted JSON keys)::

    manifest.json   ids, creation time, versions, policy and digest, data fingerprint,
                    loads, the queries behind the evidence, SHA-256 of every other file
    SHA256SUMS      ``sha256sum -c`` format, every other file (the manifest included)
    summary.md      the statement of reasons in plain language
    summary.html    the same, escaped and self-contained
    members.csv     members and beneficiaries: role, score, account age, activity span
    evidence.csv    every evidence row of the finding, one column set, ``source`` first
    signals.json    the signals with values, thresholds, weights and whether they fired
    metrics.json    size, score, evidence counts, money totals, time span
    graph.html      the interactive cluster graph, vis-network inlined (opens from disk)
    graph.png       a static drawing of the same graph

Reading the store happens in :func:`gather`; :func:`build_files` is pure. The
same finding on the same data gives the same bytes except the creation time,
which only the manifest holds. A redacted case file is made from the case's data
redacted once, before any file is made (``ringscope.api.redact``): every file
shows tokens where the values were.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import random
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyvis
from markupsafe import Markup
from markupsafe import escape as mescape

from ringscope import __version__, csvsafe
from ringscope.api.queries import find_finding
from ringscope.api.redact import Redaction, Tokens, identifiers_of, known_in, words_in
from ringscope.api.viz import GraphView, cluster_graph, member_refs, vis_data, with_layout
from ringscope.graphs.store import GraphStore
from ringscope.model import Decision, Finding, Run, Subgraph

#: vis-network as bundled by pyvis (the same files the app serves).
VIS_DIR = Path(pyvis.__file__).parent / "templates" / "lib" / "vis-9.1.2"
#: Node budget of the exported graph (the cluster page's default).
GRAPH_LIMIT = 500
GRAPH_HOPS = 1
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


# ----------------------------------------------------------------------------- redaction


@dataclass(frozen=True)
class Redactor:
    """How a case file is redacted: identifier values, and with ``accounts`` account ids
    too, replaced by keyed hashes (``ringscope.api.redact``): the same value gives the
    same token in every case file made with the same key."""

    tokens: Tokens
    accounts: bool = False

    @staticmethod
    def from_key(key: str, *, accounts: bool = False) -> Redactor:
        return Redactor(Tokens.from_key(key), accounts)


def _redaction(inp: CaseInputs, redactor: Redactor | None) -> Redaction:
    """The redaction of a case file: every identifier value of its data and of its
    accounts (and, with accounts, every account its data names)."""
    if redactor is None:
        return Redaction.none()
    known = known_in(inp.finding, inp.subgraph, inp.decisions)
    for kind, value in inp.identifiers:
        known.identifiers.setdefault(value, kind)
    known.accounts |= inp.account_ids
    return Redaction(redactor.tokens, known, accounts=redactor.accounts)


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class CaseInputs:
    """Everything the case file is made from, read from the store by :func:`gather`."""

    finding: Finding
    run: Run
    decisions: list[Decision]
    subgraph: Subgraph
    graph_query: dict[str, Any]
    loads: list[dict[str, Any]]
    accounts: dict[str, dict[str, Any]]  # account_id -> created_at, roles, first/last activity
    identifiers: list[tuple[str, str]]  # (kind, value) of the case's accounts
    #: every string of the case's data (whole or word by word) that is a stored account id
    account_ids: frozenset[str] = frozenset()


def _iso(t: Any) -> str:
    if t is None or (not isinstance(t, str) and pd.isna(t)):
        return ""
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return str(ts.tz_convert("UTC").isoformat())


def _activity(store: GraphStore, ids: set[str]) -> dict[str, tuple[str, str]]:
    """First and last activity per account over engagements, orders, follows and streams."""
    spans: list[pd.DataFrame] = []
    sources = (
        ("engagements", ("account_id",), "ts"),
        ("orders", ("buyer_id", "seller_id", "creator_id"), "ts"),
        ("follows", ("follower_id",), "ts"),
        ("streams", ("creator_id",), "started_at"),
    )
    for table, cols, ts in sources:
        try:
            frame = store.table(table, columns=[*cols, ts])
        except ValueError:
            continue
        if frame.empty:
            continue
        for c in cols:
            if c not in frame.columns or ts not in frame.columns:
                continue
            part = frame[[c, ts]].dropna()
            part = part[part[c].astype(str).isin(ids)]
            spans.append(pd.DataFrame({"a": part[c].astype(str), "t": part[ts]}))
    if not spans:
        return {}
    allp = pd.concat(spans, ignore_index=True)
    if allp.empty:
        return {}
    g = allp.groupby("a")["t"].agg(["min", "max"])
    return {
        str(a): (_iso(lo), _iso(hi)) for a, lo, hi in zip(g.index, g["min"], g["max"], strict=True)
    }


def gather(
    store: GraphStore,
    finding_id: str,
    run_id: str | None = None,
    *,
    graph_limit: int = GRAPH_LIMIT,
) -> CaseInputs:
    """Read what the case file of ``finding_id`` needs (``NotFoundError`` when unknown)."""
    run, f = find_finding(store, finding_id, run_id)
    refs = member_refs(f)
    rels: list[str] | None = None
    members_only: Subgraph | None = None
    if len(refs) > graph_limit:
        # When more seeds exist than the budget, the walk stops at its first level and the
        # graph falls back to the members and beneficiaries: that graph is read first.
        members_only = store.neighbourhood(refs, hops=0, limit=len(refs))
    if members_only is not None and len(members_only.nodes) > graph_limit:
        sub, truncated = members_only, True
    else:
        sub = store.neighbourhood(refs, hops=GRAPH_HOPS, rel_types=rels, limit=graph_limit)
        truncated = sub.truncated
    query = {
        "what": "neighbourhood of the members and beneficiaries",
        "seeds": len(refs),
        "hops": GRAPH_HOPS,
        "rel_types": "all",
        "limit": graph_limit,
        "truncated": truncated,
    }
    if truncated:
        if sub is not members_only:
            sub = store.neighbourhood(refs, hops=0, limit=max(graph_limit, len(refs)))
        query = {**query, "fallback": "members and beneficiaries only (hops=0)"}
    ids = {m.account_id for m in f.members} | {b.account_id for b in f.beneficiaries}
    accounts: dict[str, dict[str, Any]] = {}
    acc = store.table("accounts", columns=["account_id", "created_at", "roles"])
    acc = acc[acc["account_id"].astype(str).isin(ids)]
    for row in acc.to_dict("records"):
        accounts[str(row["account_id"])] = {
            "created_at": _iso(row.get("created_at")),
            "roles": str(row.get("roles") or ""),
        }
    for a, (first, last) in _activity(store, ids).items():
        accounts.setdefault(a, {}).update(first_activity=first, last_activity=last)
    identifiers = sorted((k, v) for v, k in identifiers_of(store, ids).items())
    decisions = store.decisions(f.case_id or f.id)
    return CaseInputs(
        finding=f,
        run=run,
        decisions=decisions,
        subgraph=sub,
        graph_query=query,
        loads=[r.to_dict() for r in store.loads()],
        accounts=accounts,
        identifiers=identifiers,
        account_ids=frozenset(store.known_ids("account", words_in(f, sub, decisions))),
    )


# ----------------------------------------------------------------------------- helpers


def _json(obj: Any) -> bytes:
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


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A CSV file whose cells a spreadsheet will not evaluate (``ringscope.csvsafe``)."""
    cells = ([x if type(x) is str else _cell(x) for x in r] for r in rows)
    return csvsafe.rows_text(header, cells).encode()


def _evidence_rows(f: Finding) -> list[dict[str, Any]]:
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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- the files

#: A part of a summary section: a paragraph, or a table (header row first).
Part = str | list[list[str]]


def _members(inp: CaseInputs) -> list[dict[str, Any]]:
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


def _metrics(f: Finding, ev: list[dict[str, Any]], graph: GraphView) -> dict[str, Any]:
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


def _summary(
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
        f"Detection run started {_iso(run.started_at)}.",
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
            + [[_iso(d.decided_at), d.decided_by, d.decision, d.note] for d in inp.decisions]
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


def _summary_md(title: str, sections: list[tuple[str, list[Part]]]) -> bytes:
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


def _summary_html(title: str, sections: list[tuple[str, list[Part]]]) -> bytes:
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


def _vis_assets() -> tuple[str, str]:
    """vis-network's JS and CSS for inlining, unchanged.

    Only a ``</script`` or ``</style`` inside them could end the element early;
    the bundled files hold neither (checked here, so a new pyvis cannot slip one in).
    The URLs in the library's text are strings it never fetches: the page loads
    nothing (a browser test opens it from disk with the network blocked).
    """
    js = (VIS_DIR / "vis-network.min.js").read_text("utf-8")
    css = (VIS_DIR / "vis-network.css").read_text("utf-8")
    if "</script" in js.lower() or "</style" in css.lower():
        raise RuntimeError(f"the vis-network files in {VIS_DIR} cannot be inlined safely")
    return js, css


_GRAPH_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var holder = document.getElementById("graph");
  var nodes = new vis.DataSet(data.nodes);
  var edges = new vis.DataSet(data.edges);
  var network = new vis.Network(holder, {nodes: nodes, edges: edges}, data.options);
  window.rsGraph = {network: network, nodes: nodes, edges: edges};
})();
"""


def _graph_html(title: str, data: dict[str, Any]) -> bytes:
    js, css = _vis_assets()
    payload = json.dumps(data, sort_keys=True, ensure_ascii=False)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    payload = payload.replace("'", "\\u0027")
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{mescape(title)}</title>\n"
        f"<style>{css}</style>\n"
        "<style>body{font-family:sans-serif;margin:1em}"
        "#graph{width:100%;height:90vh;border:1px solid #ccc}</style>\n"
        "</head><body>\n"
        f"<h1>{mescape(title)}</h1>\n"
        '<div id="graph"></div>\n'
        f'<script type="application/json" id="graph-data">{Markup(payload)}</script>\n'
        f"<script>{js}</script>\n"
        f"<script>{_GRAPH_JS}</script>\n"
        "</body></html>\n"
    )
    return page.encode()


# ----------------------------------------------------------------------------- graph.png


def _hex(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    if len(c) != 6:
        return (134, 142, 150)
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16))


def _png(pixels: np.ndarray) -> bytes:
    """An RGB image as PNG bytes (8 bits per channel, no filter, fixed compression)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def graph_png(view: GraphView, size: int = 1000) -> bytes:
    """The laid-out graph drawn as edges (lines) and nodes (discs in their colours)."""
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    if not view.nodes:
        return _png(img)
    xs = np.array([v.x for v in view.nodes], dtype=float)
    ys = np.array([v.y for v in view.nodes], dtype=float)
    margin = 40.0
    span = max(float(xs.max() - xs.min()), float(ys.max() - ys.min()), 1.0)
    scale = (size - 2 * margin) / span
    px = np.rint((xs - xs.min()) * scale + margin + (size - 2 * margin - (np.ptp(xs) * scale)) / 2)
    py = np.rint((ys - ys.min()) * scale + margin + (size - 2 * margin - (np.ptp(ys) * scale)) / 2)
    index = {v.id: i for i, v in enumerate(view.nodes)}
    ends = [(index.get(e.source), index.get(e.target), e.color) for e in view.edges]
    lines = [(a, b, c) for a, b, c in ends if a is not None and b is not None]
    if lines:
        # every edge's pixels at once: the points of np.linspace(start, stop, n) per edge,
        # drawn in edge order (a later edge paints over an earlier one)
        ea = np.array([a for a, _b, _c in lines], dtype=np.int64)
        eb = np.array([b for _a, b, _c in lines], dtype=np.int64)
        colour = np.array([_hex(c) for _a, _b, c in lines], dtype=np.uint8)
        n = np.maximum(np.abs(px[eb] - px[ea]), np.abs(py[eb] - py[ea])).astype(np.int64) + 1
        edge = np.repeat(np.arange(len(lines)), n)
        step_no = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        last = np.cumsum(n)[n > 1] - 1

        def points(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
            step = (stop - start) / np.maximum(n - 1, 1)
            y = step_no * step[edge] + start[edge]
            y[last] = stop[n > 1]
            return np.rint(y).astype(int).clip(0, size - 1)

        img[points(py[ea], py[eb]), points(px[ea], px[eb])] = colour[edge]
    yy, xx = np.mgrid[0:size, 0:size]
    order = sorted(range(len(view.nodes)), key=lambda i: (view.nodes[i].size, view.nodes[i].id))
    for i in order:
        v = view.nodes[i]
        r = max(3.0, v.size * 0.5)
        x0, y0 = int(px[i]), int(py[i])
        lo_y, hi_y = max(0, int(y0 - r - 2)), min(size, int(y0 + r + 3))
        lo_x, hi_x = max(0, int(x0 - r - 2)), min(size, int(x0 + r + 3))
        d2 = (xx[lo_y:hi_y, lo_x:hi_x] - x0) ** 2 + (yy[lo_y:hi_y, lo_x:hi_x] - y0) ** 2
        block = img[lo_y:hi_y, lo_x:hi_x]
        block[d2 <= (r + 1) ** 2] = (52, 58, 64)
        block[d2 <= r**2] = _hex(v.color)
    return _png(img)


# ----------------------------------------------------------------------------- assembly


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


def _layout(view: GraphView) -> GraphView:
    """The server layout with igraph's random numbers (Python's ``random``) seeded, so that
    the same graph gets the same positions; the caller's random state is restored."""
    state = random.getstate()
    try:
        random.seed(0)
        return with_layout(view)
    finally:
        random.setstate(state)


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
    shown = _redaction(inp, redactor)(inp)
    f, run = shown.finding, shown.run
    if not f.detectors:
        f = dataclasses.replace(f, detectors=(f.detector,))
        shown = dataclasses.replace(shown, finding=f)
    view = _layout(cluster_graph(f, shown.subgraph))
    data = vis_data(view)

    ev = _evidence_rows(f)
    metrics = _metrics(f, ev, view)
    digest = _policy_digest(run)
    title = f"Case file: {f.kind} {f.id}"
    sections = _summary(shown, ev, metrics, digest)
    columns = ["source", *sorted({k for r in ev for k in r} - {"source"})]
    files: dict[str, bytes] = {
        "summary.md": _summary_md(title, sections),
        "summary.html": _summary_html(title, sections),
        "members.csv": _csv(
            MEMBER_COLUMNS, ([r[c] for c in MEMBER_COLUMNS] for r in _members(shown))
        ),
        "evidence.csv": _csv(columns, ([r.get(c) for c in columns] for r in ev)),
        "signals.json": _json(
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
        "metrics.json": _json(metrics),
        "graph.html": _graph_html(f"Network of {f.kind} {f.id}", data),
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
    files["manifest.json"] = _json(manifest)
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
