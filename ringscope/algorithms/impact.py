"""What a finding costs the marketplace: money through it, engagement it inflated, reach.

Each finding gets an impact estimate next to its score (:func:`add_impact`),
computed from the same tables the detectors read:

``orders``, ``gmv``, ``gmv_refunded``, ``commission_paid``
    The orders its members placed as buyers: how many, their amount, the
    amount of those refunded (a ``refunded_at``, or status ``refunded``), and
    the commission paid out on them.
``events``, ``engagement_share``, ``audience``
    The engagement events its members made on the boosted streams (the
    streams of its beneficiary creators they engaged with; without creator
    beneficiaries, every stream they engaged with), the share of all events
    on those streams that came from them, and how many other accounts
    engaged with those streams (the audience the inflated numbers reached).
``index``
    One number in [0, 1] for ordering: half the money (commission and
    refunded amount, on a log scale against the largest finding of the run),
    half the engagement share.

:func:`priority` blends score and impact index with the policy's weight.
Pure functions; nothing here touches a store.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from ringscope.algorithms.base import MarketTables
from ringscope.model import Finding

#: The keys of a finding's ``impact``.
IMPACT_KEYS = (
    "orders",
    "gmv",
    "gmv_refunded",
    "commission_paid",
    "events",
    "engagement_share",
    "audience",
    "index",
)


def _membership(findings: list[Finding]) -> pd.DataFrame:
    rows = [(i, m) for i, f in enumerate(findings) for m in f.member_ids]
    return pd.DataFrame(rows, columns=["f", "account_id"]).astype({"f": "int64"})


def order_amounts(orders: pd.DataFrame) -> pd.DataFrame:
    """Per order: ``amount``, ``commission`` (missing or not a number: 0) and
    ``refunded``, the amount of an order refunded (a ``refunded_at``, or status
    ``refunded``), else 0. Same index as ``orders``."""
    out = pd.DataFrame(index=orders.index)
    for name in ("amount", "commission"):
        out[name] = (
            pd.to_numeric(orders[name], errors="coerce").fillna(0.0) if name in orders else 0.0
        )
    refunded = pd.Series(False, index=orders.index)
    if "refunded_at" in orders:
        refunded |= orders["refunded_at"].notna()
    if "status" in orders:
        refunded |= orders["status"].astype("string").str.lower().eq("refunded").fillna(False)
    out["refunded"] = np.where(refunded.to_numpy(), out["amount"].to_numpy(), 0.0)
    return out


def _order_sums(findings: list[Finding], orders: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(
        0.0,
        index=range(len(findings)),
        columns=["orders", "gmv", "gmv_refunded", "commission_paid"],
    )
    if orders.empty or "buyer_id" not in orders:
        return out
    members = _membership(findings)
    # only the members' orders can join: the rest is left out before any work
    orders = orders[orders["buyer_id"].isin(members["account_id"].unique())]
    cols = order_amounts(orders)
    cols["buyer_id"] = orders["buyer_id"]
    joined = members.merge(cols, left_on="account_id", right_on="buyer_id")
    sums = joined.groupby("f").agg(
        orders=("amount", "size"),
        gmv=("amount", "sum"),
        gmv_refunded=("refunded", "sum"),
        commission_paid=("commission", "sum"),
    )
    out.loc[sums.index, sums.columns] = sums.to_numpy(dtype=float)
    return out


def _engagement(findings: list[Finding], tables: MarketTables) -> pd.DataFrame:
    out = pd.DataFrame(0.0, index=range(len(findings)), columns=["events", "total", "audience"])
    ev = tables.engagements
    if ev.empty:
        return out
    ev = ev[["account_id", "stream_id"]]
    members = _membership(findings)
    own = members.merge(ev[ev["account_id"].isin(members["account_id"].unique())], on="account_id")
    creators = pd.DataFrame(
        [(i, b.account_id) for i, f in enumerate(findings) for b in f.beneficiaries
         if b.role == "creator"],
        columns=["f", "creator_id"],
    )  # fmt: skip
    streams = tables.streams
    if not creators.empty and not streams.empty:
        boosted = creators.merge(streams[["stream_id", "creator_id"]], on="creator_id")
        with_creator = set(creators["f"])
        own = pd.concat(
            [
                own[~own["f"].isin(with_creator)],
                own.merge(boosted[["f", "stream_id"]], on=["f", "stream_id"]),
            ],
            ignore_index=True,
        )
    if own.empty:
        return out
    out.loc[:, "events"] = own.groupby("f").size().reindex(out.index, fill_value=0).to_numpy()
    pairs = own[["f", "stream_id"]].drop_duplicates()
    # every figure below is about the streams in ``pairs``: the other events drop out
    ev = ev[ev["stream_id"].isin(pairs["stream_id"].unique())]
    per_stream = ev.groupby("stream_id").size().rename("n").reset_index()
    total = pairs.merge(per_stream, on="stream_id").groupby("f")["n"].sum()
    out.loc[total.index, "total"] = total.to_numpy(dtype=float)
    viewers = ev.drop_duplicates()
    reach = pairs.merge(viewers, on="stream_id")[["f", "account_id"]].drop_duplicates()
    reach = reach.merge(members, on=["f", "account_id"], how="left", indicator=True)
    audience = reach[reach["_merge"] == "left_only"].groupby("f").size()
    out.loc[audience.index, "audience"] = audience.to_numpy(dtype=float)
    return out


def impact_table(findings: list[Finding], tables: MarketTables) -> pd.DataFrame:
    """One row of impact figures per finding (in the order given), columns :data:`IMPACT_KEYS`."""
    money = _order_sums(findings, tables.orders)
    eng = _engagement(findings, tables)
    out = money.copy()
    out["events"] = eng["events"]
    out["engagement_share"] = np.where(
        eng["total"] > 0, eng["events"] / eng["total"].where(eng["total"] > 0, 1.0), 0.0
    )
    out["audience"] = eng["audience"]
    at_risk = np.log1p(out["commission_paid"] + out["gmv_refunded"])
    top = float(at_risk.max()) if len(out) else 0.0
    money_norm = at_risk / top if top > 0 else at_risk * 0.0
    out["index"] = 0.5 * money_norm + 0.5 * out["engagement_share"]
    return out[list(IMPACT_KEYS)]


def add_impact(findings: list[Finding], tables: MarketTables) -> list[Finding]:
    """The findings with their ``impact`` filled in (same order)."""
    if not findings:
        return []
    table = impact_table(findings, tables)
    out = []
    records: list[dict[str, float]] = table.to_dict("records")  # type: ignore[assignment]
    for f, values in zip(findings, records, strict=True):
        impact = {
            k: (int(v) if k in ("orders", "events", "audience") else round(float(v), 4))
            for k, v in values.items()
        }
        out.append(dataclasses.replace(f, impact=impact))
    return out


def priority(finding: Finding, impact_weight: float) -> float:
    """``(1 - w) * score + w * impact index``, in [0, 1]."""
    index = float(finding.impact.get("index", 0.0)) if finding.impact else 0.0
    value = (1.0 - impact_weight) * finding.score + impact_weight * index
    return round(min(1.0, max(0.0, value)), 6) if math.isfinite(value) else 0.0


def order_queue(findings: list[Finding], by: str, impact_weight: float = 0.5) -> list[Finding]:
    """The queue by ``score`` (the canonical order), ``impact`` (money at risk, then
    engagement share) or ``priority`` (:func:`priority`); ties by id."""
    if by == "score":
        return sorted(findings, key=lambda f: (-f.score, f.id))
    if by == "impact":

        def money(f: Finding) -> float:
            i = f.impact or {}
            return float(i.get("commission_paid", 0.0)) + float(i.get("gmv_refunded", 0.0))

        return sorted(
            findings,
            key=lambda f: (-money(f), -float((f.impact or {}).get("engagement_share", 0.0)), f.id),
        )
    if by == "priority":
        return sorted(findings, key=lambda f: (-priority(f, impact_weight), f.id))
    raise ValueError(f"unknown order {by!r}: use score, impact or priority")
