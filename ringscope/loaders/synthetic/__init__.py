"""A synthetic live-shopping marketplace with planted abuse and hard negatives.

:func:`generate` writes an export in the data contract (all eight tables) and ``truth.csv``
(``ring_id, kind, account_id, role``) that says which accounts were planted in which ring.

The ordinary marketplace has heavy-tailed creator popularity, buyer activity, stream length
and order values, a daily and weekly rhythm over :data:`SPAN_DAYS` days before the fixed
:data:`REFERENCE_NOW`, accounts created over years, about 5% refunds and 6% cancellations,
affiliations with commission rates, and followers. Legit patterns that look suspicious are
written to ``truth.csv`` as hard negatives (ring ids ``hn-<kind>-NNNN``):

==========================  ==========================================================
kind                        what
==========================  ==========================================================
``household``               2-5 accounts sharing a device, a home IP, often an address
                            and sometimes a payment method
``carrier_ip``              a mobile-carrier IP shared by very many unrelated accounts
``carrier_ip_campus``       a campus IP shared by many accounts
``carrier_ip_public_wifi``  a public Wi-Fi IP shared by tens of accounts
``viral_stream``            accounts arriving at a stream within minutes when it goes viral
``flash_sale``              buyers ordering one product in the same minute
``fan_club``                fans who watch every stream of one creator from its start
==========================  ==========================================================

Planted abuse (ring ids ``ef-``, ``cr-``, ``if-``, ``mc-`` followed by a number):

===================  =============================  =======================================
kind                 roles                          what
===================  =============================  =======================================
``engagement_farm``  ``bot``, ``creator``           10-500 bots hitting the streams of a few
                                                    target creators within the same short
                                                    windows, with camouflage and partial
                                                    participation
``commission_ring``  ``creator``, ``seller``,       5-60 sock-puppet buyers ordering through
                     ``buyer``                      the creator's affiliate link, then
                                                    refunding or cancelling; shared cards
                                                    and devices
``incentive_farm``   ``buyer``                      new accounts on a few devices and cards,
                                                    one small first order each
``money_cycle``      ``member``                     accounts buying from each other in a loop
===================  =============================  =======================================
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ringscope.errors import InputError

from . import _abuse, _legit
from ._world import REFERENCE_NOW, SPAN_DAYS, World
from ._write import build_tables, write_table

__all__ = [
    "PARQUET_FROM_EVENTS",
    "REFERENCE_NOW",
    "SPAN_DAYS",
    "TABLE_NAMES",
    "GenerateReport",
    "generate",
]

#: From this many events on, ``fmt="auto"`` writes Parquet instead of CSV.
PARQUET_FROM_EVENTS = 1_000_000
#: Smallest number of events that still makes a marketplace with every planted kind.
MIN_EVENTS = 1_000
TABLE_NAMES = (
    "accounts",
    "streams",
    "affiliations",
    "follows",
    "engagements",
    "orders",
    "identifiers",
    "labels",
)

Format = Literal["auto", "csv", "parquet"]


@dataclass(frozen=True, slots=True)
class GenerateReport:
    """What :func:`generate` wrote."""

    out_dir: str
    seed: int
    fmt: str
    files: dict[str, str]
    rows: dict[str, int]
    rings: dict[str, int]
    seconds: float = field(compare=False)

    @property
    def events(self) -> int:
        return self.rows["engagements"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_args(events: int, seed: int, fmt: str) -> None:
    if isinstance(events, bool) or not isinstance(events, int) or events < MIN_EVENTS:
        raise InputError(f"events must be an integer >= {MIN_EVENTS}, got {events!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if fmt not in ("auto", "csv", "parquet"):
        raise InputError(f"fmt must be 'auto', 'csv' or 'parquet', got {fmt!r}")


def generate(
    out_dir: str | Path, *, events: int = 100_000, seed: int = 0, fmt: Format = "auto"
) -> GenerateReport:
    """Write a synthetic marketplace export with planted abuse and its ``truth.csv``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write to (created if missing). A table already there in another format
        is replaced, so that the folder holds one file per table.
    events : int, default 100_000
        Number of engagement events; every other table scales with it.
    seed : int, default 0
        The same seed gives byte-identical files.
    fmt : {"auto", "csv", "parquet"}
        ``auto`` writes Parquet from :data:`PARQUET_FROM_EVENTS` events on, CSV below.
        ``truth.csv`` is always CSV.

    Returns
    -------
    GenerateReport
        Files, row counts per table, and the number of planted structures per kind.

    Raises
    ------
    InputError
        If ``events``, ``seed`` or ``fmt`` is out of range.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     report = generate(d, events=10_000, seed=1)
    >>> report.events, report.fmt
    (10000, 'csv')
    >>> report.rings["engagement_farm"] >= 3
    True
    """
    _check_args(events, seed, fmt)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = fmt if fmt != "auto" else ("parquet" if events >= PARQUET_FROM_EVENTS else "csv")

    w = World(seed=seed, events=events)
    _legit.accounts(w)
    plan = _abuse.plan(w)
    _legit.streams(w)
    _legit.follows(w)
    _legit.catalogue(w)
    _legit.fan_clubs(w)
    _legit.viral_streams(w)
    _legit.flash_sales(w)
    _abuse.activity(w, plan)
    _legit.sessions(w)
    _legit.orders(w)
    in_household = _legit.shared_networks(w)
    _legit.baseline_identifiers(w, in_household)
    _abuse.labels(w)

    tables = build_tables(w)
    truth = tables.pop("truth")
    files: dict[str, str] = {}
    rows: dict[str, int] = {}
    for name in TABLE_NAMES:
        files[name] = str(write_table(tables[name], out, name, chosen))
        rows[name] = tables[name].num_rows
        del tables[name]
    files["truth"] = str(write_table(truth, out, "truth", "csv"))
    rows["truth"] = truth.num_rows
    return GenerateReport(
        out_dir=str(out),
        seed=seed,
        fmt=chosen,
        files=files,
        rows=rows,
        rings=dict(sorted(w.rings.items())),
        seconds=round(time.perf_counter() - started, 3),
    )
