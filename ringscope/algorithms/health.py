"""The health of the marketplace as one run sees it, for governance dashboards.

:func:`ecosystem_health` sums a run's findings up against the whole
marketplace (the tables the detectors read):

- findings by kind, accounts flagged, creators involved (as members or as
  beneficiaries);
- money at risk: the amount, refunded amount and commission of orders whose
  buyer is flagged (each order once, however many findings name its buyer);
- the share of all engagement events and of all orders that came from
  flagged accounts;
- for each creator, a health score in [0, 1] from four components, each a
  share in [0, 1]: engagement from flagged accounts on its streams, order
  amount from flagged buyers through its links, refunded amount through its
  links, and whether findings name it as a beneficiary (1 when at least one
  does). ``health = 1 - weighted mean`` with :data:`CREATOR_WEIGHTS`. Creators
  with no flagged engagement, no flagged orders and no findings are healthy
  by definition and not listed.

Pure: tables and findings in, a JSON-able dict out. The run stores it in its
summary, so trends across runs need no re-computation.

What the figures read from the whole tables is summed first (:class:`HealthCounts`,
one row per creator at most): :func:`health_counts` sums pandas tables, and an engine
that keeps the tables elsewhere sums them there (the Spark engine's
``ringscope.engines.spark.health``) and gives the same figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.impact import order_amounts
from ringscope.model import Finding

#: Weights of the creator health components.
CREATOR_WEIGHTS: dict[str, float] = {
    "flagged_engagement_share": 0.35,
    "flagged_order_share": 0.35,
    "refund_share": 0.15,
    "named_beneficiary": 0.15,
}
#: Creators listed in a run's health (the least healthy first).
MAX_CREATORS = 50


def _share(part: float, whole: float) -> float:
    return round(part / whole, 6) if whole > 0 else 0.0


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}).rename_axis("creator_id")


@dataclass(frozen=True)
class HealthCounts:
    """What the health figures read from the whole tables, summed for one set of
    flagged accounts.

    ``creator_events``: per creator (index ``creator_id``) ``events`` on its streams
    and ``flagged_events`` of them by flagged accounts. ``creator_orders``: per creator
    the ``amount``, ``flagged_amount`` (flagged buyers) and ``refunded`` amount of the
    orders through its links (amounts as :func:`~ringscope.algorithms.impact.order_amounts`
    reads them). ``first_seen``: each flagged account's earliest event or order.
    """

    events: int = 0
    events_flagged: int = 0
    orders: int = 0
    orders_flagged: int = 0
    gmv_flagged: float = 0.0
    gmv_refunded_flagged: float = 0.0
    commission_flagged: float = 0.0
    creator_events: pd.DataFrame = field(
        default_factory=lambda: _empty(["events", "flagged_events"])
    )
    creator_orders: pd.DataFrame = field(
        default_factory=lambda: _empty(["amount", "flagged_amount", "refunded"])
    )
    first_seen: Mapping[str, pd.Timestamp] = field(default_factory=dict)


def health_counts(tables: MarketTables, flagged: Iterable[str]) -> HealthCounts:
    """:class:`HealthCounts` of pandas ``tables`` for the ``flagged`` accounts."""
    flagged = set(flagged)
    ev, streams, orders = tables.engagements, tables.streams, tables.orders
    counts: dict[str, Any] = {"events": len(ev), "orders": len(orders)}
    if len(ev):
        counts["events_flagged"] = int(ev["account_id"].isin(flagged).sum())
    if len(ev) and not streams.empty:
        e = ev[["account_id", "stream_id"]].merge(
            streams[["stream_id", "creator_id"]], on="stream_id"
        )
        e["flagged_events"] = e["account_id"].isin(flagged).astype("int64")
        g = e.groupby("creator_id")["flagged_events"].agg(["sum", "size"])
        counts["creator_events"] = pd.DataFrame(
            {"events": g["size"], "flagged_events": g["sum"]}
        ).rename_axis("creator_id")
    if len(orders):
        mine = orders[orders["buyer_id"].isin(flagged)]
        a = order_amounts(mine)
        counts |= {
            "orders_flagged": len(mine),
            "gmv_flagged": float(a["amount"].sum()),
            "gmv_refunded_flagged": float(a["refunded"].sum()),
            "commission_flagged": float(a["commission"].sum()),
        }
        if "creator_id" in orders:
            o = orders[orders["creator_id"].notna()]
            if len(o):
                a = order_amounts(o)
                a["creator_id"] = o["creator_id"]
                a["flagged_amount"] = np.where(o["buyer_id"].isin(flagged), a["amount"], 0.0)
                counts["creator_orders"] = a.groupby("creator_id")[
                    ["amount", "flagged_amount", "refunded"]
                ].sum()
    times = []
    if len(ev):
        times.append(ev.loc[ev["account_id"].isin(flagged), ["account_id", "ts"]])
    if len(orders):
        o = orders.loc[orders["buyer_id"].isin(flagged), ["buyer_id", "ts"]]
        times.append(o.rename(columns={"buyer_id": "account_id"}))
    if times:
        first = pd.concat(times, ignore_index=True).groupby("account_id")["ts"].min()
        counts["first_seen"] = {str(a): pd.Timestamp(t) for a, t in first.items() if pd.notna(t)}
    return HealthCounts(**counts)


def creator_health(counts: HealthCounts, beneficiaries: set[str]) -> pd.DataFrame:
    """One row per creator with a component above zero: the components and ``health``."""
    parts: list[pd.DataFrame] = []
    ce = counts.creator_events
    if len(ce):
        parts.append(
            (ce["flagged_events"] / ce["events"]).rename("flagged_engagement_share").to_frame()
        )
    g = counts.creator_orders
    if len(g):
        total = g["amount"].where(g["amount"] > 0)
        parts.append(
            pd.DataFrame(
                {
                    "flagged_order_share": (g["flagged_amount"] / total).fillna(0.0),
                    "refund_share": (g["refunded"] / total).fillna(0.0),
                }
            )
        )
    if beneficiaries:
        parts.append(
            pd.DataFrame(
                {"named_beneficiary": 1.0}, index=pd.Index(sorted(beneficiaries), name="creator_id")
            )
        )
    if not parts:
        return pd.DataFrame(columns=["creator_id", *CREATOR_WEIGHTS, "health"])
    table = pd.concat(parts, axis=1).fillna(0.0)
    for c in CREATOR_WEIGHTS:
        if c not in table:
            table[c] = 0.0
    flaggy = (table["flagged_engagement_share"] > 0) | (table["flagged_order_share"] > 0)
    table = table[flaggy | (table["named_beneficiary"] > 0)]
    weights = pd.Series(CREATOR_WEIGHTS)
    risk = table[list(CREATOR_WEIGHTS)].mul(weights, axis=1).sum(axis=1) / weights.sum()
    table["health"] = (1.0 - risk).clip(0.0, 1.0)
    table.index.name = "creator_id"
    return table.reset_index()[["creator_id", *CREATOR_WEIGHTS, "health"]]


def flagged_accounts(findings: Iterable[Finding]) -> set[str]:
    """Every member of ``findings``: the accounts the health figures call flagged."""
    return {a for f in findings for a in f.member_ids}


def ecosystem_health(
    tables: MarketTables | HealthCounts,
    findings: list[Finding],
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's health figures (see the module) from ``tables`` or their
    :class:`HealthCounts` for the findings' members; ``previous`` is the previous run's,
    for each creator's change in health."""
    flagged = flagged_accounts(findings)
    counts = tables if isinstance(tables, HealthCounts) else health_counts(tables, flagged)
    beneficiaries = {b.account_id for f in findings for b in f.beneficiaries if b.role == "creator"}
    creators_as_members = {m.account_id for f in findings for m in f.members if m.role == "creator"}
    by_kind: dict[str, int] = {}
    for f in findings:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1

    health = creator_health(counts, beneficiaries)
    before = {c["creator_id"]: float(c["health"]) for c in ((previous or {}).get("creators") or [])}
    rows: list[dict[str, Any]] = []
    worst = health.sort_values(["health", "creator_id"]).head(MAX_CREATORS)
    for r in worst.to_dict("records"):
        value = round(float(r["health"]), 4)
        prev = before.get(str(r["creator_id"]))
        rows.append(
            {
                "creator_id": str(r["creator_id"]),
                "health": value,
                "previous": prev,
                "change": None if prev is None else round(value - prev, 4),
                "components": {c: round(float(r[c]), 4) for c in CREATOR_WEIGHTS},
            }
        )
    falling = sum(1 for r in rows if r["change"] is not None and r["change"] < 0)
    return {
        "findings": len(findings),
        "findings_by_kind": dict(sorted(by_kind.items())),
        "accounts_flagged": len(flagged),
        "creators_involved": len(beneficiaries | creators_as_members),
        "events": counts.events,
        "events_flagged": counts.events_flagged,
        "engagement_share_flagged": _share(counts.events_flagged, counts.events),
        "orders": counts.orders,
        "orders_flagged": counts.orders_flagged,
        "order_share_flagged": _share(float(counts.orders_flagged), float(counts.orders)),
        "gmv_at_risk": round(counts.gmv_flagged, 2),
        "gmv_refunded_at_risk": round(counts.gmv_refunded_flagged, 2),
        "commission_at_risk": round(counts.commission_flagged, 2),
        "creators": rows,
        "creators_falling": falling,
    }


def first_activity(
    tables: MarketTables | HealthCounts, findings: list[Finding]
) -> dict[str, pd.Timestamp]:
    """The earliest event or order of each finding's members (by finding id), from
    ``tables`` or from :class:`HealthCounts` whose flagged accounts include them."""
    counts = (
        tables
        if isinstance(tables, HealthCounts)
        else health_counts(tables, flagged_accounts(findings))
    )
    out = {}
    for f in findings:
        seen = [counts.first_seen[a] for a in f.member_ids if a in counts.first_seen]
        if seen:
            out[f.id] = min(seen)
    return out
