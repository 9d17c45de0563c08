"""Turn the integer-coded marketplace into the tables of the data contract and write them.

Row order never gives planted rows away: events and orders are ordered by time, accounts and
identifiers by account id (random hex), and everything else by time or id.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ringscope.contract import ENGAGEMENT_KINDS, IDENTIFIER_KINDS, LABELS, ORDER_STATUSES, SUFFIXES

from ._ids import decimal_ids, hex_ids, ipv4, unique_codes
from ._legit import N_TITLES
from ._world import (
    ADDRESS,
    BUYER,
    CREATOR,
    DAY,
    DEVICE,
    END,
    HOUR,
    IP,
    PAYMENT,
    PHONE,
    SELLER,
    IntArray,
    World,
)

_TS = pa.timestamp("us", tz="UTC")
_COUNTRIES = np.array(["SG", "MY", "ID", "TH", "PH", "VN"])
_COUNTRY_P = np.array([0.12, 0.15, 0.30, 0.15, 0.15, 0.13])
_TITLES = (
    "Evening deals",
    "Flash sale hour",
    "New arrivals",
    "Skincare haul",
    "Kitchen gadgets live",
    "Weekend mega sale",
    "Unboxing with me",
    "Fashion try-on",
    "Phone accessories",
    "Snack tasting",
    "Home decor ideas",
    "Beauty Q&A",
    "Gaming gear",
    "Baby essentials",
    "Fitness must-haves",
    "Midnight clearance",
    "Pet supplies",
    "Jewellery showcase",
    "Tech deals",
    "Bag collection",
    "Payday sale",
    "Shoes restock",
    "Kids toys live",
    "Daily essentials",
)
assert len(_TITLES) == N_TITLES

#: Parquet writer options pinned so that the same data gives the same bytes.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "write_statistics": True,
    "row_group_size": 1 << 20,
    "version": "2.6",
    "data_page_version": "1.0",
    "store_schema": False,
}
#: Columns with few distinct values: dictionary encoded. Other strings are written plain
#: (a dictionary of a million account ids only costs time), timestamps delta encoded.
_DICTIONARY_COLUMNS = frozenset(
    {"roles", "country", "kind", "status", "label", "source", "title", "stream_id", "creator_id"}
)


def _cat(chunks: list[dict[str, Any]], name: str, dtype: Any) -> Any:
    if not chunks:
        return np.empty(0, dtype=dtype)
    return np.concatenate([c[name] for c in chunks]).astype(dtype, copy=False)


def _ts(seconds: IntArray, missing: Any = None) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1_000_000, type=_TS, mask=missing)


def _floats(values: Any) -> pa.Array:
    return pa.array(values, type=pa.float64(), from_pandas=True)


def _take(ids: pa.Array, idx: IntArray) -> pa.Array:
    return ids.take(pa.array(idx.astype(np.int64)))


def _take_optional(ids: pa.Array, idx: IntArray) -> pa.Array:
    missing = idx < 0
    out = ids.take(pa.array(np.where(missing, 0, idx)))
    if not missing.any():
        return out
    return pc.if_else(pa.array(missing), pa.nulls(len(idx), pa.string()), out)


# ---------------------------------------------------------------------- consolidation


def _engagements(w: World, rng: np.random.Generator) -> dict[str, Any]:
    acc = _cat(w.engagements, "account", np.int64)
    st = _cat(w.engagements, "stream", np.int64)
    kind = _cat(w.engagements, "kind", np.int64)
    ts = _cat(w.engagements, "ts", np.int64)
    rel = ts - (w.start - DAY)
    bits_a = max(1, int(w.n_accounts).bit_length())
    bits_s = max(1, len(w.stream_start).bit_length())
    bits_t = max(1, int(rel.max(initial=0)).bit_length())
    if bits_t + bits_a + bits_s + 3 <= 63 and rel.min(initial=0) >= 0:
        key = (((rel << bits_a | acc) << bits_s | st) << 3) | kind
        del rel
        _, first = np.unique(key, return_index=True)
        del key
    else:  # too wide for one integer key: sort on the columns
        order = np.lexsort((kind, st, acc, ts))
        same = np.zeros(len(order), dtype=bool)
        same[1:] = (
            (ts[order][1:] == ts[order][:-1])
            & (acc[order][1:] == acc[order][:-1])
            & (st[order][1:] == st[order][:-1])
            & (kind[order][1:] == kind[order][:-1])
        )
        first = order[~same]
    planted = _cat(w.engagements, "planted", bool)[first]
    excess = len(first) - w.events
    if excess > 0:
        free = np.flatnonzero(~planted)
        if excess >= len(free):
            drop = free
        else:
            drop = free[np.argpartition(rng.random(len(free)), excess)[:excess]]
        keep = np.ones(len(first), dtype=bool)
        keep[drop] = False
        first = first[keep]
    amount = _cat(w.engagements, "amount", np.float64)[first]
    return {
        "account": acc[first],
        "stream": st[first],
        "kind": kind[first],
        "ts": ts[first],
        "amount": amount,
    }


def _orders(w: World) -> dict[str, Any]:
    cols = {k: np.concatenate([o[k] for o in w.orders]) for k in w.orders[0]}
    order = np.argsort(cols["ts"], kind="stable")
    return {k: v[order] for k, v in cols.items()}


def _follows(w: World) -> dict[str, IntArray]:
    f = _cat(w.follows, "follower", np.int64)
    c = _cat(w.follows, "creator", np.int64)
    t = _cat(w.follows, "ts", np.int64)
    by_time = np.argsort(t, kind="stable")
    key = (f * (w.n_accounts + 1) + c)[by_time]
    _, first = np.unique(key, return_index=True)  # the earliest follow of each pair
    pos = by_time[np.sort(first)]
    pos = pos[f[pos] != c[pos]]
    return {"follower": f[pos], "creator": c[pos], "ts": t[pos]}


def _fix_created(
    w: World,
    rng: np.random.Generator,
    eng: dict[str, Any],
    orders: dict[str, Any],
    follows: dict[str, IntArray],
) -> IntArray:
    """Move each account's creation before its first activity."""
    first = np.full(w.n_accounts, END, dtype=np.int64)
    np.minimum.at(first, eng["account"], eng["ts"])
    for col in ("buyer", "seller"):
        np.minimum.at(first, orders[col], orders["ts"])
    has_c = orders["creator"] >= 0
    np.minimum.at(first, orders["creator"][has_c], orders["ts"][has_c])
    np.minimum.at(first, follows["follower"], follows["ts"])
    np.minimum.at(first, w.stream_creator, w.stream_start)
    created = w.created
    lead = rng.integers(HOUR, 3 * DAY, w.n_accounts)
    return np.minimum(created, first - lead)


def _roles(w: World, orders: dict[str, Any]) -> Any:
    roles = w.roles.astype(np.uint8)
    roles[orders["buyer"]] |= BUYER
    roles[orders["seller"]] |= SELLER
    roles[orders["creator"][orders["creator"] >= 0]] |= CREATOR
    roles[w.stream_creator] |= CREATOR
    return roles


def _role_names() -> pa.Array:
    names = []
    for mask in range(8):
        parts = [
            n
            for bit, n in ((BUYER, "buyer"), (CREATOR, "creator"), (SELLER, "seller"))
            if mask & bit
        ]
        names.append("|".join(parts) or "buyer")
    return pa.array(names)


def _affiliations(
    w: World, rng: np.random.Generator, orders: dict[str, Any], created: IntArray
) -> dict[str, Any]:
    c = _cat(w.affiliations, "creator", np.int64)
    s = _cat(w.affiliations, "seller", np.int64)
    r = _cat(w.affiliations, "rate", np.float64)
    recent = _cat(w.affiliations, "recent", bool)
    key = c * (w.n_accounts + 1) + s
    _, last = np.unique(key[::-1], return_index=True)
    pos = np.sort(len(key) - 1 - last)
    c, s, r, recent, key = c[pos], s[pos], r[pos], recent[pos], key[pos]
    # the first attributed order of each pair bounds "since"
    oc = orders["creator"]
    att = oc >= 0
    okey = oc[att] * (w.n_accounts + 1) + orders["seller"][att]
    first_order = np.full(len(key), END, dtype=np.int64)
    sorter = np.argsort(key)
    where = np.searchsorted(key, okey, sorter=sorter)
    where = np.minimum(where, len(key) - 1)
    hit = key[sorter[where]] == okey
    np.minimum.at(first_order, sorter[where[hit]], orders["ts"][att][hit])
    lo = np.maximum(created[c], created[s]) + HOUR
    hi = np.maximum(lo, first_order - HOUR)
    since = lo + (rng.random(len(c)) * (hi - lo)).astype(np.int64)
    near = np.maximum(lo, hi - rng.integers(DAY, 10 * DAY, len(c)))
    since = np.where(recent, near, since)
    return {"creator": c, "seller": s, "rate": r, "since": since}


def _identifiers(
    w: World, rng: np.random.Generator, created: IntArray, rank: IntArray
) -> dict[str, Any]:
    """Distinct (account, kind, value) links ordered by kind, then account id."""
    a = _cat(w.identifiers, "account", np.int64)
    k = _cat(w.identifiers, "kind", np.int64)
    v = _cat(w.identifiers, "value", np.int64)
    dup = pd.DataFrame({"a": a, "k": k, "v": v}).duplicated().to_numpy()
    a, k, v = a[~dup], k[~dup], v[~dup]
    order = np.argsort(k * (w.n_accounts + 1) + rank[a], kind="stable")
    a, k, v = a[order], k[order], v[order]
    n = len(a)
    c = created[a]
    first_seen = c + (rng.random(n) * np.minimum(7 * DAY, END - HOUR - c)).astype(np.int64)
    last_seen = first_seen + (rng.random(n) ** 0.3 * (END - 60 - first_seen)).astype(np.int64)
    open_ = rng.random(n) < 0.25
    return {
        "account": a,
        "kind": k,
        "value": v,
        "first_seen": first_seen,
        "last_seen": last_seen,
        "open": open_,
    }


def _identifier_values(kind: IntArray, value: IntArray) -> pa.Array:
    """Format identifier codes of rows grouped by kind (in the order of the contract)."""
    parts = []
    for code in range(len(IDENTIFIER_KINDS)):
        sel = value[kind == code]
        if code == DEVICE:
            parts.append(hex_ids(sel & ((1 << 60) - 1), "d-", 15))
        elif code == IP:
            parts.append(ipv4(sel))
        elif code == PAYMENT:
            parts.append(hex_ids(sel & ((1 << 48) - 1), "pm-", 12))
        elif code == PHONE:
            parts.append(decimal_ids(sel, "+", 11))
        elif code == ADDRESS:
            parts.append(hex_ids(sel & ((1 << 48) - 1), "ad-", 12))
    return pa.concat_arrays(parts)


def build_tables(w: World) -> dict[str, pa.Table]:
    """Every table of the export plus ``truth``, as Arrow tables with contract column names."""
    rng = w.rng("write")
    eng = _engagements(w, rng)
    orders = _orders(w)
    follows = _follows(w)
    created = _fix_created(w, rng, eng, orders, follows)
    n = w.n_accounts

    acc_codes = unique_codes(rng, n, 48)
    acc_ids = hex_ids(acc_codes, "a", 12)
    ns = len(w.stream_start)
    stream_ids = hex_ids(unique_codes(rng, ns, 40), "s", 10)
    np_ = len(w.product_seller)
    product_ids = hex_ids(unique_codes(rng, np_, 40), "p", 10)
    no = len(orders["ts"])
    order_ids = hex_ids(unique_codes(rng, no, 48), "o", 12)

    tables: dict[str, pa.Table] = {}
    by_id = np.argsort(acc_codes)
    rank = np.empty(n, dtype=np.int64)
    rank[by_id] = np.arange(n)
    roles = _roles(w, orders)
    tables["accounts"] = pa.table(
        {
            "account_id": _take(acc_ids, by_id),
            "roles": _role_names().take(pa.array(roles[by_id].astype(np.int64))),
            "created_at": _ts(created[by_id]),
            "country": pa.array(rng.choice(_COUNTRIES, n, p=_COUNTRY_P)[by_id]),
        }
    )
    tables["streams"] = pa.table(
        {
            "stream_id": stream_ids,
            "creator_id": _take(acc_ids, w.stream_creator),
            "started_at": _ts(w.stream_start),
            "ended_at": _ts(w.stream_end),
            "title": pa.array(_TITLES).take(pa.array(w.stream_title)),
        }
    )
    aff = _affiliations(w, rng, orders, created)
    order = np.argsort(rank[aff["creator"]] * (n + 1) + rank[aff["seller"]], kind="stable")
    tables["affiliations"] = pa.table(
        {
            "creator_id": _take(acc_ids, aff["creator"][order]),
            "seller_id": _take(acc_ids, aff["seller"][order]),
            "commission_rate": _floats(aff["rate"][order]),
            "since": _ts(aff["since"][order]),
        }
    )
    tables["follows"] = pa.table(
        {
            "follower_id": _take(acc_ids, follows["follower"]),
            "creator_id": _take(acc_ids, follows["creator"]),
            "ts": _ts(follows["ts"]),
        }
    )
    del follows
    tables["engagements"] = pa.table(
        {
            "account_id": hex_ids(acc_codes[eng["account"]], "a", 12),
            "stream_id": _take(stream_ids, eng["stream"]),
            "kind": pa.array(ENGAGEMENT_KINDS).take(pa.array(eng["kind"])),
            "ts": _ts(eng["ts"]),
            "amount": _floats(eng["amount"]),
        }
    )
    del eng
    refunded = orders["refunded_at"]
    tables["orders"] = pa.table(
        {
            "order_id": order_ids,
            "buyer_id": _take(acc_ids, orders["buyer"]),
            "seller_id": _take(acc_ids, orders["seller"]),
            "product_id": _take(product_ids, orders["product"]),
            "amount": _floats(orders["amount"]),
            "status": pa.array(ORDER_STATUSES).take(pa.array(orders["status"].astype(np.int64))),
            "ts": _ts(orders["ts"]),
            "creator_id": _take_optional(acc_ids, orders["creator"]),
            "stream_id": _take_optional(stream_ids, orders["stream"]),
            "commission": _floats(orders["commission"]),
            "refunded_at": _ts(np.maximum(refunded, 0), missing=refunded < 0),
        }
    )
    ids = _identifiers(w, rng, created, rank)
    tables["identifiers"] = pa.table(
        {
            "account_id": _take(acc_ids, ids["account"]),
            "kind": pa.array(IDENTIFIER_KINDS).take(pa.array(ids["kind"])),
            "value": _identifier_values(ids["kind"], ids["value"]),
            "first_seen": _ts(ids["first_seen"]),
            "last_seen": _ts(ids["last_seen"], missing=ids["open"]),
        }
    )
    del ids
    la = _cat(w.labels, "account", np.int64)
    ll = _cat(w.labels, "label", np.int64)
    ld = _cat(w.labels, "decided", np.int64)
    ld = np.minimum(np.maximum(ld, created[la] + HOUR), END - 60)
    order = np.lexsort((rank[la], ld))
    tables["labels"] = pa.table(
        {
            "subject_id": _take(acc_ids, la[order]),
            "label": pa.array(LABELS).take(pa.array(ll[order])),
            "decided_at": _ts(ld[order]),
            "source": pa.array(["review"] * len(la), type=pa.string()),
        }
    )
    ring = np.concatenate([np.full(len(t[2]), i, dtype=np.int64) for i, t in enumerate(w.truth)])
    accs = np.concatenate([t[2] for t in w.truth])
    ring_rank = np.empty(len(w.truth), dtype=np.int64)
    ring_rank[sorted(range(len(w.truth)), key=lambda i: (w.truth[i][0], w.truth[i][3]))] = (
        np.arange(len(w.truth))
    )
    order = np.argsort(ring_rank[ring] * (n + 1) + rank[accs], kind="stable")
    ring, accs = pa.array(ring[order]), accs[order]
    tables["truth"] = pa.table(
        {
            "ring_id": pa.array([t[0] for t in w.truth]).take(ring),
            "kind": pa.array([t[1] for t in w.truth]).take(ring),
            "account_id": _take(acc_ids, accs),
            "role": pa.array([t[3] for t in w.truth]).take(ring),
        }
    )
    return tables


@dataclass(frozen=True, slots=True)
class LocalTimes:
    """Write a ``share`` of CSV timestamps in local time with an explicit UTC offset."""

    share: float
    offset_hours: float
    seed: int


def _offset_suffix(offset_hours: float) -> str:
    minutes = round(offset_hours * 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _csv_ready(table: pa.Table, local: LocalTimes | None = None, name: str = "") -> pa.Table:
    rng = None
    if local is not None and local.share > 0:
        rng = np.random.default_rng([local.seed, zlib.crc32(f"local-times-{name}".encode())])
    cols = []
    for field, col in zip(table.schema, table.columns, strict=True):
        if pa.types.is_timestamp(field.type):
            seconds = col.cast(pa.timestamp("s", tz="UTC"))
            utc = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
            if rng is not None and local is not None:
                shift = pa.scalar(round(local.offset_hours * HOUR), pa.duration("s"))
                wall = pc.strftime(pc.add(seconds, shift), format="%Y-%m-%dT%H:%M:%S")
                zoned = pc.binary_join_element_wise(wall, _offset_suffix(local.offset_hours), "")
                pick = pa.array(rng.random(len(col)) < local.share)
                utc = pc.if_else(pick, zoned, utc)
            col = utc
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def write_table(
    table: pa.Table, out_dir: Path, name: str, fmt: str, *, local: LocalTimes | None = None
) -> Path:
    """Write one table as ``NAME.csv`` or ``NAME.parquet``; remove the same table in other
    formats so that the folder holds one file per table. ``local`` writes a share of a CSV's
    timestamps in local time (Parquet timestamps are typed instants)."""
    suffix = ".parquet" if fmt == "parquet" else ".csv"
    for other in SUFFIXES:
        stale = out_dir / f"{name}{other}"
        if other != suffix and stale.exists():
            stale.unlink()
    path = out_dir / f"{name}{suffix}"
    if fmt == "parquet":
        dictionary = [c for c in table.column_names if c in _DICTIONARY_COLUMNS]
        delta = {
            f.name: "DELTA_BINARY_PACKED" for f in table.schema if pa.types.is_timestamp(f.type)
        }
        pq.write_table(
            table, path, use_dictionary=dictionary, column_encoding=delta, **PARQUET_OPTIONS
        )
    else:
        options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
        pacsv.write_csv(_csv_ready(table, local, name), path, write_options=options)
    return path
