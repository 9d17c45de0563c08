"""What a case file is made from: the finding, its run, decisions, graph and accounts,
read from the store once (:func:`gather`), and how that data is redacted when asked
(:class:`Redactor`; the rule itself is ``ringscope.api.redact``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ringscope.api.queries import find_finding
from ringscope.api.redact import Redaction, Tokens, identifiers_of, known_in, words_in
from ringscope.api.viz import member_refs
from ringscope.graphs.store import GraphStore
from ringscope.model import Decision, Finding, Run, Subgraph

#: Node budget of the exported graph (the cluster page's default).
GRAPH_LIMIT = 500
GRAPH_HOPS = 1


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


def redaction_for(inp: CaseInputs, redactor: Redactor | None) -> Redaction:
    """The redaction of a case file: every identifier value of its data and of its
    accounts (and, with accounts, every account its data names)."""
    if redactor is None:
        return Redaction.none()
    known = known_in(inp.finding, inp.subgraph, inp.decisions)
    for kind, value in inp.identifiers:
        known.identifiers.setdefault(value, kind)
    known.accounts |= inp.account_ids
    return Redaction(redactor.tokens, known, accounts=redactor.accounts)


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


def iso_time(t: Any) -> str:
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
        str(a): (iso_time(lo), iso_time(hi))
        for a, lo, hi in zip(g.index, g["min"], g["max"], strict=True)
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
            "created_at": iso_time(row.get("created_at")),
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
