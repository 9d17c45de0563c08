"""A synthetic live-shopping marketplace with planted abuse and hard negatives.

:func:`generate` writes an export in the data contract (all eight tables), ``truth.csv``
(``ring_id, kind, account_id, role``) that says which accounts were planted in which ring,
and ``world.json``, the :class:`WorldParams` the marketplace was made from.

One marketplace shape makes a kind benchmark. :meth:`WorldParams.default` is the sample
marketplace (one month of a UTC+8 market, sized by ``events``); :meth:`WorldParams.random`
draws every parameter from a seed: market size (2,000-500,000 buyers) and activity, span
(7-120 days), time zone and local-time offsets in the files, abuse prevalence (0.2%-25%) and
mix, ring sizes, identifier sharing, burst timing, camouflage, account ages, rings over
several creators and sellers, hard negatives scaled to the market and the labels. Ranges
are documented on each field of :class:`WorldParams`; the tables below give the default
world's values and, after "random:", what a drawn world may hold.

The ordinary marketplace has heavy-tailed creator popularity, buyer activity, stream length
and order values, a daily and weekly rhythm in the market's local time over the span before
the fixed :data:`REFERENCE_NOW`, accounts created over years, about 5% refunds and 6%
cancellations, affiliations with commission rates, and followers. Legit patterns that look
suspicious are written to ``truth.csv`` as hard negatives (ring ids ``hn-<kind>-NNNN``;
an account in a planted ring is never listed as a hard negative):

==========================  ==========================================================
kind                        what
==========================  ==========================================================
``household``               2-5 accounts (random: up to 8) sharing a device, a home IP,
                            often an address and sometimes a payment method
``carrier_ip``              a mobile-carrier IP shared by very many unrelated accounts
                            (300-50,000; random: from 100 up, about one per 10,000
                            accounts)
``carrier_ip_campus``       a campus IP shared by many accounts
``carrier_ip_public_wifi``  a public Wi-Fi IP shared by tens of accounts (random: up to
                            about 230)
``viral_stream``            accounts arriving at a stream within minutes when it goes viral
                            (random: hundreds to tens of thousands)
``flash_sale``              buyers ordering one product in the same minute (30-3,000,
                            random: from 30 to 5,000, in small markets too)
``fan_club``                fans who watch every stream of one creator from its start
==========================  ==========================================================

Planted abuse (ring ids ``ef-``, ``cr-``, ``if-``, ``mc-`` followed by a number, and
``mf-<typology>-`` for money flows). The default world plants a few rings of each of the
first four kinds for its size (about 3.7% of accounts) and no money flows; a drawn world
plants at least one of each and adds rings until its prevalence is reached, money flows on
top:

===================  =============================  =======================================
kind                 roles                          what
===================  =============================  =======================================
``engagement_farm``  ``bot``, ``creator``           10-500 bots (random: 3-1,000, at most
                                                    half the market) hitting the streams of
                                                    1-3 (random: up to 6) target creators
                                                    within the same short windows (10-120 s;
                                                    random: 1 s to 20 minutes, mid-stream or
                                                    at the start), with camouflage and
                                                    partial participation; below-median
                                                    creators (random: popular ones too);
                                                    devices in small pools (random: one for
                                                    all, or each its own), proxy IPs
                                                    (random: shared by up to thousands)
``commission_ring``  ``creator``, ``seller``,       5-60 sock-puppet buyers (random: 3-1,000)
                     ``buyer``                      ordering through a creator's affiliate
                                                    link (random: 1-5 creators, 1-3
                                                    sellers), then refunding or cancelling;
                                                    shared cards and devices
``incentive_farm``   ``buyer``                      new accounts on a few devices and cards,
                                                    one small first order each
``money_cycle``      ``member``                     3-8 accounts (random: 2-12) buying from
                                                    each other in a loop, 3-10 rounds
                                                    (random: 1-10), hops 1-12 hours apart
                                                    (random: minutes to days)
``money_flow``       ``source``, ``mule``,          money passed on once, hop after hop:
                     ``sink``                       fan-in, fan-out, scatter-gather,
                                                    gather-scatter, chains and single-round
                                                    cycles (``_flows``; counts, amounts and
                                                    hop delays from ``WorldParams.flow_*``)
===================  =============================  =======================================

``labels`` is a noisy sample of past decisions, never a copy of the truth: a share of all
planted abusers (never a whole ring) labelled ``abusive``, a share of ordinary accounts
labelled ``legit``, and mistakes both ways (random: ``labels="none"`` in some worlds).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ringscope.errors import InputError

from . import _abuse, _flows, _legit
from ._params import FLOW_TYPOLOGIES, HOUR, REFERENCE_NOW, SPAN_DAYS, WorldParams
from ._world import World
from ._write import LocalTimes, build_tables, write_table

__all__ = [
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
    return world


def _plant_flows(w: World) -> None:
    """The single-round money-flow typologies of the world's ``flow_*`` parameters (truth
    kind ``money_flow``, ring ids ``mf-<typology>-NNNN``)."""
    p = w.p
    if not any(p.flows.values()):
        return
    ranges = _flows.FlowParams(
        amount=(p.flow_amount_min, p.flow_amount_max),
        hop_hours=(p.flow_hop_min / HOUR, p.flow_hop_max / HOUR),
    )
    _flows.plant_money_flows(w, w.rng("money_flows"), per_typology=p.flows, params=ranges)


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
    _plant_flows(w)
    _legit.sessions(w)
    _legit.orders(w)
    in_household = _legit.shared_networks(w)
    _legit.baseline_identifiers(w, in_household)
    _abuse.keep_truth_apart(w)
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
