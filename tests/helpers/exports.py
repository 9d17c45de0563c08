"""Small exports written to disk for the loader tests (and the hostile-input catalogue)."""

from __future__ import annotations

import csv
from pathlib import Path

from ringscope.errors import Problem

#: The small export of the data contract (tests/data/small-export/README.md says what it holds).
SMALL_EXPORT = Path(__file__).resolve().parents[1] / "data" / "small-export"

ACCOUNTS = (
    "account_id,roles,created_at,country\n"
    "c1,creator,2024-04-02T10:00:00Z,SG\n"
    "s1,seller,2023-11-20,MY\n"
    "b1,buyer,1700000000,ID\n"
    "b2,buyer|creator,2024-06-01T08:30:00+08:00,SG\n"
)
STREAMS = "stream_id,creator_id,started_at,ended_at,title\nst1,c1,2026-11-01T19:00:00Z,,Deals\n"
ORDERS_HEAD = "order_id,buyer_id,seller_id,product_id,amount,status,ts\n"
ENGAGEMENTS_HEAD = "account_id,stream_id,kind,ts,amount\n"


def write_export(folder: Path, files: dict[str, str | bytes], *, accounts: bool = True) -> Path:
    """Write ``files`` (name -> text or bytes) into ``folder``, plus the base accounts."""
    folder.mkdir(parents=True, exist_ok=True)
    if accounts and not any(name.startswith("accounts.") for name in files):
        files = {"accounts.csv": ACCOUNTS, **files}
    for name, body in files.items():
        path = folder / name
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8")
    return folder


def read_rejects(path: str | Path) -> list[dict[str, str]]:
    """The lines of a rejects file as dicts."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def one(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]
