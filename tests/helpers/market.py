"""A generated marketplace for the app's tests (the API, the pages in a browser, access and
security), built once per test session (the ``app_market`` fixture of ``tests/conftest.py``).

Two detection runs: run 1 on the generated marketplace plus a small export that
plants a copy of a commission ring under hostile names (a seller named
``<img src=x onerror=alert(1)>``); then an investigator confirms the top
commission ring, three more buyers join it (a second small export), and run 2
finds it grown, so the run raises it again.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from helpers.app import ServedApp

if TYPE_CHECKING:
    from ringscope.api.auth import Access
    from ringscope.api.refusals import RefusalLimits

XSS_SELLER = "<img src=x onerror=alert(1)>"
XSS_BUYER = '"><script>window.__xss=1</script>'
SEED = 5
EVENTS = 20_000


@dataclass(frozen=True)
class Market:
    store_path: Path  # a finished store; copy it before opening (one process per file)
    data_dir: Path
    truth: dict[str, set[str]]  # ring id -> member accounts
    confirmed_case: str  # the case confirmed between the runs, grown in run 2
    xss_ring: set[str]


def _rows(data_dir: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(data_dir / f"{table}.csv", dtype=str, keep_default_na=False)


def clone_ring(
    data_dir: Path, out_dir: Path, rename: dict[str, str], *, tag: str, new_identifiers: bool
) -> None:
    """Write an export that copies the rows of the accounts in ``rename`` under their new
    names: accounts, their orders as buyers, their identifiers, affiliations among them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    accounts = _rows(data_dir, "accounts")
    acc = accounts[accounts.account_id.isin(list(rename))].copy()
    acc["account_id"] = acc.account_id.map(rename)
    acc.to_csv(out_dir / "accounts.csv", index=False)
    orders = _rows(data_dir, "orders")
    o = orders[orders.buyer_id.isin(list(rename))].copy()
    for col in ("buyer_id", "seller_id", "creator_id"):
        o[col] = o[col].map(lambda v: rename.get(v, v))
    o["order_id"] = o.order_id + f"-{tag}"
    o.to_csv(out_dir / "orders.csv", index=False)
    ids = _rows(data_dir, "identifiers")
    i = ids[ids.account_id.isin(list(rename))].copy()
    i["account_id"] = i.account_id.map(rename)
    if new_identifiers:
        i["value"] = i.value + f"-{tag}"
    i.to_csv(out_dir / "identifiers.csv", index=False)
    aff = _rows(data_dir, "affiliations")
    a = aff[aff.creator_id.isin(list(rename)) & aff.seller_id.isin(list(rename))].copy()
    a["creator_id"] = a.creator_id.map(rename)
    a["seller_id"] = a.seller_id.map(rename)
    a.to_csv(out_dir / "affiliations.csv", index=False)


def read_truth(data_dir: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    rings: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    with (data_dir / "truth.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            rings.setdefault(row["ring_id"], set()).add(row["account_id"])
            kinds[row["ring_id"]] = row["kind"]
    return rings, kinds


def build(root: Path) -> Market:
    """Generate, load, detect twice; the finished store is ``root / "market.duckdb"``."""
    from ringscope.graphs.embedded import EmbeddedStore
    from ringscope.jobs.detect import run_detection
    from ringscope.loaders.pipeline import load_export
    from ringscope.loaders.synthetic import generate
    from ringscope.model import Decision

    data = root / "data"
    generate(data, events=EVENTS, seed=SEED)
    rings, kinds = read_truth(data)
    truth_rows = pd.read_csv(data / "truth.csv", dtype=str)
    ring_id = sorted(r for r, k in kinds.items() if k == "commission_ring")[-1]
    ring = truth_rows[truth_rows.ring_id == ring_id]
    rename: dict[str, str] = {}
    for n, row in enumerate(ring.itertuples()):
        if row.role == "seller":
            rename[str(row.account_id)] = XSS_SELLER
        elif row.role == "creator":
            rename[str(row.account_id)] = "xss-creator"
        else:
            rename[str(row.account_id)] = XSS_BUYER if n == 0 else f"xss-buyer-{n:02d}"
    clone_ring(data, root / "hostile", rename, tag="x", new_identifiers=True)

    path = root / "market.duckdb"
    store = EmbeddedStore(path)
    try:
        load_export(store, data, rejects_dir=root / "rejects")
        load_export(store, root / "hostile", rejects_dir=root / "rejects")
        run_detection(store)
        rings_found = [f for f in store.findings() if f.kind == "commission_ring"]
        top = rings_found[0]
        store.record_decision(
            Decision(top.case_id or top.id, "confirmed", "setup", datetime.now(UTC), "seed")
        )
        buyers = [m.account_id for m in top.members if m.role == "buyer"][:3]
        grow = {b: f"join-{k}" for k, b in enumerate(buyers)}
        clone_ring(data, root / "grow", grow, tag="g", new_identifiers=False)
        load_export(store, root / "grow", rejects_dir=root / "rejects")
        run_detection(store)
    finally:
        store.close()
    return Market(
        store_path=path,
        data_dir=data,
        truth=rings,
        confirmed_case=top.case_id or top.id,
        xss_ring=set(rename.values()),
    )


def shared_market(base: Path) -> Market:
    """The session's market: built on first use under ``base``, reused after."""
    root = base / "app-market"
    done = root / "market.done"
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        m = build(root)
        done.write_text(m.confirmed_case, encoding="utf-8")
    data = root / "data"
    rings, _ = read_truth(data)
    rename_names = {XSS_SELLER, XSS_BUYER, "xss-creator"}
    return Market(
        store_path=root / "market.duckdb",
        data_dir=data,
        truth=rings,
        confirmed_case=done.read_text(encoding="utf-8"),
        xss_ring=rename_names,
    )


def served_copy(
    market: Market,
    into: Path,
    access: Access | None = None,
    refusals: RefusalLimits | None = None,
) -> ServedApp:
    """Serve a private copy of the market's store (one process per DuckDB file)."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / "served.duckdb"
    shutil.copy(market.store_path, target)
    return ServedApp(target, access, refusals=refusals)
