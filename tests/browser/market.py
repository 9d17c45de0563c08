"""A generated marketplace for the app's tests, built once per test session.

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

if TYPE_CHECKING:
    from ringscope.api.auth import Access
    from ringscope.api.refusals import RefusalLimits
    from ringscope.graphs.store import GraphStore

#: The app's users in these tests, by name, with their roles; see ``key_of``.
USERS = {
    "test-viewer": "viewer",
    "test-investigator": "investigator",
    "test-admin": "admin",
    "inspector-7": "investigator",
    "analyst-3": "investigator",
    "form-user": "investigator",
    "browser-user": "investigator",
    "browser-viewer": "viewer",
}

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


def key_of(name: str) -> str:
    """The API key of the test user ``name``."""
    return f"rsk_test_{name}"


def auth(name: str) -> dict[str, str]:
    """Headers that authenticate as the test user ``name``."""
    return {"Authorization": f"Bearer {key_of(name)}"}


def access_for(users: dict[str, str] | None = None) -> Access:
    """Who may use the app in the tests: ``USERS`` (or ``users``), each with ``key_of``."""
    from ringscope.api.auth import Access, User, Users, check_role, hash_key

    chosen = USERS if users is None else users
    return Access(Users(User(n, check_role(r), hash_key(key_of(n))) for n, r in chosen.items()))


class ServedApp:
    """The real app served by uvicorn on a free localhost port, in a thread."""

    def __init__(
        self,
        store_path: Path | None,
        access: Access | None = None,
        *,
        store: GraphStore | None = None,
        refusals: RefusalLimits | None = None,
    ) -> None:
        """Serve the embedded store at ``store_path``, or ``store`` (left open at exit);
        ``refusals``: how many refused requests the audit log keeps (default: settings)."""
        import socket
        import threading

        import uvicorn

        from ringscope.api.app import create_app
        from ringscope.graphs.embedded import EmbeddedStore

        self._owned = store is None
        if store is None:
            assert store_path is not None
            store = EmbeddedStore(store_path)
        self.store = store
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(store=self.store, access=access or access_for(), refusals=refusals),
            log_level="warning",
            lifespan="on",
            access_log=False,
            proxy_headers=False,  # as `ringscope serve`: the app trusts on the socket's peer
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> ServedApp:
        import time

        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
        if self._owned:
            self.store.close()


def fill_store(store: GraphStore, root: Path, *, events: int = 3000, seed: int = 11) -> None:
    """Load a small generated marketplace into ``store`` and run detection once."""
    from ringscope.jobs.detect import run_detection
    from ringscope.loaders.pipeline import load_export
    from ringscope.loaders.synthetic import generate

    generate(root / "data", events=events, seed=seed)
    load_export(store, root / "data", rejects_dir=root / "rejects")
    run_detection(store)


def open_neo4j(uri: str, root: Path) -> GraphStore:
    """A Neo4j store on an emptied database (credentials as in tests/conftest.py), with
    its columnar file under ``root``."""
    import os

    from ringscope.graphs.neo4j_store import Neo4jStore

    password = os.environ.get("NEO4J_PASSWORD")
    store = Neo4jStore(
        uri,
        auth=(os.environ.get("NEO4J_USER", "neo4j"), password) if password else None,
        database=os.environ.get("NEO4J_DATABASE", "neo4j"),
        columnar_path=root / "events.duckdb",
    )
    store.wipe(erase_audit_log=True)  # an emptied database: the audit log too
    return store


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
