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
"""

from __future__ import annotations

from collections.abc import Mapping
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


def creator_health(
    tables: MarketTables, flagged: set[str], beneficiaries: set[str]
) -> pd.DataFrame:
    """One row per creator with a component above zero: the components and ``health``."""
    parts: list[pd.DataFrame] = []
    ev, streams = tables.engagements, tables.streams
    if not ev.empty and not streams.empty:
        e = ev[["account_id", "stream_id"]].merge(
            streams[["stream_id", "creator_id"]], on="stream_id"
        )
        e["flagged"] = e["account_id"].isin(flagged)
        g = e.groupby("creator_id")["flagged"].agg(["sum", "size"])
        parts.append((g["sum"] / g["size"]).rename("flagged_engagement_share").to_frame())
    orders = tables.orders
    if not orders.empty and "creator_id" in orders:
        o = orders[orders["creator_id"].notna()]
        if len(o):
            a = order_amounts(o)
            a["creator_id"] = o["creator_id"]
            a["flagged_amount"] = np.where(o["buyer_id"].isin(flagged), a["amount"], 0.0)
            g = a.groupby("creator_id")[["amount", "flagged_amount", "refunded"]].sum()
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


def ecosystem_health(
    tables: MarketTables,
    findings: list[Finding],
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's health figures (see the module); ``previous`` is the previous run's,
    for each creator's change in health."""
    flagged = {a for f in findings for a in f.member_ids}
    beneficiaries = {b.account_id for f in findings for b in f.beneficiaries if b.role == "creator"}
    creators_as_members = {m.account_id for f in findings for m in f.members if m.role == "creator"}
    by_kind: dict[str, int] = {}
    for f in findings:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1

    ev, orders = tables.engagements, tables.orders
    events_all = len(ev)
    events_flagged = int(ev["account_id"].isin(flagged).sum()) if events_all else 0
    money = {"orders": 0, "gmv": 0.0, "gmv_refunded": 0.0, "commission": 0.0}
    orders_all = len(orders)
    if orders_all:
        mine = orders[orders["buyer_id"].isin(flagged)]
        a = order_amounts(mine)
        money = {
            "orders": len(mine),
            "gmv": round(float(a["amount"].sum()), 2),
            "gmv_refunded": round(float(a["refunded"].sum()), 2),
            "commission": round(float(a["commission"].sum()), 2),
        }

    health = creator_health(tables, flagged, beneficiaries)
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
        "events": events_all,
        "events_flagged": events_flagged,
        "engagement_share_flagged": _share(events_flagged, events_all),
        "orders": orders_all,
        "orders_flagged": money["orders"],
        "order_share_flagged": _share(float(money["orders"]), float(orders_all)),
        "gmv_at_risk": money["gmv"],
        "gmv_refunded_at_risk": money["gmv_refunded"],
        "commission_at_risk": money["commission"],
        "creators": rows,
        "creators_falling": falling,
    }


def first_activity(tables: MarketTables, findings: list[Finding]) -> dict[str, pd.Timestamp]:
    """The earliest event or order of each finding's members (by finding id)."""
    times = []
    if not tables.engagements.empty:
        times.append(tables.engagements[["account_id", "ts"]])
    if not tables.orders.empty:
        times.append(tables.orders[["buyer_id", "ts"]].rename(columns={"buyer_id": "account_id"}))
    if not times:
        return {}
    first = pd.concat(times, ignore_index=True).groupby("account_id")["ts"].min()
    out = {}
    for f in findings:
        t = first.reindex(list(f.member_ids)).min()
        if pd.notna(t):
            out[f.id] = pd.Timestamp(t)
    return out
