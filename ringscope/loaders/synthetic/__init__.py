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

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ringscope.errors import InputError

from . import _abuse, _legit
from ._params import FLOW_TYPOLOGIES, REFERENCE_NOW, SPAN_DAYS, WorldParams
from ._world import World
from ._write import LocalTimes, build_tables, write_table

__all__ = [
    "FLOWS_AVAILABLE",
    "FLOW_TYPOLOGIES",
    "PARQUET_FROM_EVENTS",
    "REFERENCE_NOW",
    "SPAN_DAYS",
    "TABLE_NAMES",
    "GenerateReport",
    "WorldParams",
    "generate",
    "world_from",
]

#: From this many events on, ``fmt="auto"`` writes Parquet instead of CSV.
PARQUET_FROM_EVENTS = 1_000_000
#: Smallest number of events that still makes a marketplace with every planted kind.
MIN_EVENTS = 1_000
#: Default size of :func:`generate` without a world.
DEFAULT_EVENTS = 100_000
#: Whether this version plants money-flow typologies (``WorldParams.flow_*``).
FLOWS_AVAILABLE = False
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
    #: the world's parameters (:meth:`WorldParams.to_dict`), as written to ``world.json``
    world: dict[str, Any]
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


def _the_world(events: int | None, world: WorldParams | None) -> WorldParams:
    if world is None:
        n = DEFAULT_EVENTS if events is None else events
        _check_args(n, 0, "auto")
        return WorldParams.default(n)
    if not isinstance(world, WorldParams):
        raise InputError(f"world must be a WorldParams, got {type(world).__name__}")
    if events is not None and events != world.events:
        raise InputError(
            f"events ({events}) differs from the world's ({world.events}): give one of them"
        )
    if not FLOWS_AVAILABLE and any(world.flows.values()):
        raise InputError("this version plants no money-flow typologies: set 'flow_*' to 0")
    return world


def world_from(spec: str | Path, *, events: int | None = None, seed: int = 0) -> WorldParams:
    """The world named by ``spec``: ``default`` (the sample marketplace of ``events``),
    ``random`` (drawn from ``seed``) or the path of a JSON file of parameters (such as a
    ``world.json`` written by :func:`generate`).

    Raises
    ------
    InputError
        If the file cannot be read, is not JSON, or holds an unknown, missing or bad
        parameter.
    """
    if str(spec) == "default":
        return WorldParams.default(DEFAULT_EVENTS if events is None else events)
    if str(spec) == "random":
        return WorldParams.random(seed)
    path = Path(spec)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"cannot read world file {path}: {e.strerror or e}") from e
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"world file {path} is not JSON: {e}") from e
    return WorldParams.from_dict(data)


def generate(
    out_dir: str | Path,
    *,
    events: int | None = None,
    seed: int = 0,
    fmt: Format = "auto",
    world: WorldParams | None = None,
) -> GenerateReport:
    """Write a synthetic marketplace export with planted abuse, its ``truth.csv`` and the
    world's parameters in ``world.json``.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write to (created if missing). A table already there in another format
        is replaced, so that the folder holds one file per table.
    events : int, optional
        Number of engagement events of the default world (100,000 when neither this nor
        ``world`` is given); every other table scales with it. With ``world``, leave it
        out (the world's size follows from its market).
    seed : int, default 0
        The same seed and world give byte-identical files.
    fmt : {"auto", "csv", "parquet"}
        ``auto`` writes Parquet from :data:`PARQUET_FROM_EVENTS` events on, CSV below.
        ``truth.csv`` is always CSV.
    world : WorldParams, optional
        The world to make (:meth:`WorldParams.random` for a drawn one); ``None`` is
        :meth:`WorldParams.default` of ``events``.

    Returns
    -------
    GenerateReport
        Files, row counts per table, the number of planted structures per kind and the
        world's parameters.

    Raises
    ------
    InputError
        If ``events``, ``seed``, ``fmt`` or ``world`` is out of range.

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
    params = _the_world(events, world)
    n_events = params.events
    _check_args(n_events, seed, fmt)
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = fmt if fmt != "auto" else ("parquet" if n_events >= PARQUET_FROM_EVENTS else "csv")

    w = World(seed=seed, events=n_events, params=params)
    _legit.accounts(w)
    plan = _abuse.plan(w)
    _legit.streams(w)
    _legit.follows(w)
    _legit.catalogue(w)
    _legit.fan_clubs(w)
    _legit.viral_streams(w)
    _legit.flash_sales(w)
    _abuse.activity(w, plan)
    # ---- money-flow typologies (truth kind ``money_flow``) are planted here, from the
    # ``flow_*`` parameters, by ``_flows``; FLOWS_AVAILABLE says whether this version has it.
    _legit.sessions(w)
    _legit.orders(w)
    in_household = _legit.shared_networks(w)
    _legit.baseline_identifiers(w, in_household)
    _abuse.labels(w)

    tables = build_tables(w)
    truth = tables.pop("truth")
    local = LocalTimes(params.local_time_share, params.utc_offset_hours, seed)
    files: dict[str, str] = {}
    rows: dict[str, int] = {}
    for name in TABLE_NAMES:
        files[name] = str(write_table(tables[name], out, name, chosen, local=local))
        rows[name] = tables[name].num_rows
        del tables[name]
    files["truth"] = str(write_table(truth, out, "truth", "csv"))
    rows["truth"] = truth.num_rows
    world_path = out / "world.json"
    world_path.write_text(json.dumps(params.to_dict(), indent=2) + "\n", encoding="utf-8")
    files["world"] = str(world_path)
    return GenerateReport(
        out_dir=str(out),
        seed=seed,
        fmt=chosen,
        files=files,
        rows=rows,
        rings=dict(sorted(w.rings.items())),
        world=params.to_dict(),
        seconds=round(time.perf_counter() - started, 3),
    )
