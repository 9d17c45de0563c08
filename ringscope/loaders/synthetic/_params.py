"""The parameters of a synthetic marketplace: :class:`WorldParams`.

One marketplace shape makes a kind benchmark: detectors end up tuned to its constants. A
``WorldParams`` holds every number that shapes a generated marketplace (its size, rhythm,
abuse prevalence, ring sizes, how rings share devices and IPs, their timing and camouflage,
the hard negatives and the labels), so that :meth:`WorldParams.random` can draw a different
world from each seed while :meth:`WorldParams.default` keeps the sample marketplace that
``ringscope generate`` has always written.

Each field's docstring gives what it shapes and the range :meth:`WorldParams.random` draws it
from ("log-uniform" for sizes and rates that span orders of magnitude). Fields named
``*_min``/``*_max`` bound a draw made per ring or per structure at generation time.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from ringscope.errors import InputError

#: The fixed "now" of every synthetic export: all timestamps fall before it.
REFERENCE_NOW = datetime(2026, 11, 1, tzinfo=UTC)
END = int(REFERENCE_NOW.timestamp())
#: Days of activity in the default world's export.
SPAN_DAYS = 30
DAY = 86_400
HOUR = 3_600
#: Oldest account of the default world.
HISTORY_START = int(datetime(2019, 1, 1, tzinfo=UTC).timestamp())

LabelMode = Literal["sample", "none"]
LABEL_MODES = ("sample", "none")

#: The money-flow typologies whose instance counts a world holds (``flow_<name>``).
FLOW_TYPOLOGIES = ("fan_in", "fan_out", "scatter_gather", "gather_scatter", "chain", "cycle")


def scaled_count(events: int, base: float, minimum: int) -> int:
    """How many of a planted structure the default world makes for ``events`` events."""
    return max(minimum, round(base * (events / 100_000) ** 0.6))


def log2_count(events: int, extra: int = 1) -> int:
    """A count that grows with the logarithm of the default world's size."""
    return extra + round(float(np.log2(1 + events / 100_000)))


def _b(lo: float | None = None, hi: float | None = None) -> Any:
    """A required field whose value must lie in ``[lo, hi]``."""
    return field(metadata={"lo": lo, "hi": hi})


def _one_of(choices: tuple[str, ...]) -> Any:
    """A required field whose value must be one of ``choices``."""
    return field(metadata={"choices": choices})


_SHARE = (0.0, 1.0)


@dataclass(frozen=True, slots=True)
class WorldParams:
    """Every parameter of a synthetic marketplace (see the module docstring).

    Build one with :meth:`default` (the sample marketplace) or :meth:`random` (a world drawn
    from a seed), change fields with :func:`dataclasses.replace` or :meth:`resized`, and
    save or read it with :meth:`to_dict` / :meth:`from_dict` (``world.json``).

    Examples
    --------
    >>> w = WorldParams.default(events=10_000)
    >>> w.events, w.span_days, w.labels
    (10000, 30, 'sample')
    >>> WorldParams.from_dict(w.to_dict()) == w
    True
    >>> r = WorldParams.random(5)
    >>> 2_000 <= r.buyers <= 500_000 and 0.002 <= r.abuser_share <= 0.25
    True
    """

    # ------------------------------------------------------------------ market
    buyers: int = _b(100)
    """Ordinary accounts that are neither creators nor sellers. Random: log-uniform
    2,000-500,000."""
    creators: int = _b(3)
    """Ordinary creators (they stream). Random: buyers x log-uniform 0.4%-3%, at least 10."""
    sellers: int = _b(2)
    """Ordinary sellers (they list products). Random: buyers x log-uniform 0.2%-1.5%, at
    least 5."""
    creator_sellers: int = _b(0)
    """Accounts that are both creator and seller (counted in both). Random: uniform 0-50% of
    the smaller of the two."""
    events_per_account: float = _b(0.5, 1_000.0)
    """Engagement events per ordinary account over the span: the export's size follows from
    the market. Random: log-uniform 3-20."""
    orders_per_event: float = _b(0.0, 1.0)
    """Ordinary orders per engagement event. Random: log-uniform 0.01-0.12."""
    follows_per_account: float = _b(0.0, 100.0)
    """Follows per ordinary account. Random: log-uniform 0.5-8."""
    span_days: int = _b(2, 400)
    """Days of activity in the export, ending at ``REFERENCE_NOW``. Random: uniform 7-120."""
    history_days: int = _b(30, 9_000)
    """Age in days of the oldest ordinary account (the market's age). Random: uniform from
    the span plus 60 days to 3,650."""
    account_age_shape: float = _b(0.2, 20.0)
    """Shape ``a`` of the Beta(a, 1) spread of ordinary accounts' creation over the market's
    history: above 1 most accounts are young, below 1 most are old. Random: uniform 0.6-4."""
    utc_offset_hours: float = _b(-12.0, 14.0)
    """The market's local time zone (UTC offset, hours): its daily rhythm follows local
    time. Random: one of -8, -6, -5, -4, -3, 0, 1, 2, 3, 4, 5.5, 7, 8, 9, 10."""
    local_time_share: float = _b(*_SHARE)
    """Share of CSV timestamps written in local time with an explicit offset
    (``2026-10-05T14:03:00+08:00``) instead of UTC with ``Z``. Random: 0 in half of the
    worlds, else uniform 5%-100%."""

    # ------------------------------------------------------------------ abuse prevalence
    abuser_share: float = _b(0.0, 0.9)
    """Target share of all accounts that are planted abusers; rings are added to the minimum
    counts below until each kind's part is reached (0: the minimum counts only). Random:
    log-uniform 0.2%-25%."""
    mix_farm: float = _b(0.0)
    """Weight of engagement farms in the abusers (normalised with the other ``mix_``
    fields). Random: Dirichlet(1, 1, 1, 1) over the four kinds."""
    mix_commission: float = _b(0.0)
    """Weight of commission rings in the abusers. Random: see ``mix_farm``."""
    mix_incentive: float = _b(0.0)
    """Weight of incentive farms in the abusers. Random: see ``mix_farm``."""
    mix_cycle: float = _b(0.0)
    """Weight of money cycles in the abusers. Random: see ``mix_farm``."""
    farm_rings: int = _b(0)
    """Minimum number of engagement farms. Random: 1."""
    commission_rings: int = _b(0)
    """Minimum number of commission rings. Random: 1."""
    incentive_rings: int = _b(0)
    """Minimum number of incentive (coupon) farms. Random: 1."""
    cycle_rings: int = _b(0)
    """Minimum number of repeated-round money cycles. Random: 1."""

    # ------------------------------------------------------------------ engagement farms
    farm_size_min: float = _b(2.0)
    """Smallest farm (bots); each farm's size is log-uniform between min and max, at most
    half the market. Random: log-uniform 3-30."""
    farm_size_max: float = _b(2.0)
    """Largest farm (bots). Random: log-uniform from the min (at least 20) to 1,000."""
    farm_targets_min: int = _b(1)
    """Fewest creators one farm boosts. Random: 1."""
    farm_targets_max: int = _b(1)
    """Most creators one farm boosts. Random: uniform 1-6."""
    farm_bursts_min: int = _b(1)
    """Fewest bursts of one farm (streams hit together). Random: uniform 2-10."""
    farm_bursts_max: int = _b(1)
    """Most bursts of one farm. Random: the min plus uniform 0-40."""
    farm_window_min: float = _b(0.0)
    """Shortest timing jitter of a farm's burst (seconds from the first bot to the last):
    drawn per farm, uniform between min and max. Random: log-uniform 1-60 s."""
    farm_window_max: float = _b(1.0)
    """Longest timing jitter of a farm's burst (seconds). Random: log-uniform from the min
    to 1,200 s."""
    farm_participation_min: float = _b(0.01, 1.0)
    """Lowest mean share of a farm's bots that join each burst (drawn per farm). Random:
    uniform 0.1-0.8."""
    farm_participation_max: float = _b(0.01, 1.0)
    """Highest mean share of a farm's bots that join each burst. Random: uniform from the
    min to 1."""
    farm_at_start_share: float = _b(*_SHARE)
    """Share of farms whose bursts come at their streams' start (arriving with the first
    viewers) rather than mid-stream. Random: uniform 0-1."""
    farm_popular_share: float = _b(*_SHARE)
    """Share of farms that boost creators of any popularity, the most popular likeliest
    (their bursts then sit among thousands of ordinary viewers); the others boost creators
    below the median. Random: uniform 0-0.8."""
    farm_camouflage_min: float = _b(0.0)
    """Lowest mean number of ordinary-looking viewing sessions per bot (drawn per farm).
    Random: uniform 0-5."""
    farm_camouflage_max: float = _b(0.0)
    """Highest mean number of camouflage sessions per bot. Random: the min plus log-uniform
    0.5-40."""
    camouflage_popularity: float = _b(0.0, 5.0)
    """Exponent on stream popularity when bots pick camouflage streams: 0 spreads them over
    ordinary creators, higher concentrates them on the most popular streams. Random:
    uniform 0-1.5."""
    farm_fresh_share: float = _b(*_SHARE)
    """Share of farms made of fresh accounts created in a batch for the job; the others are
    aged accounts (bought or taken over) created over the market's history. Random: uniform
    0-1."""
    fresh_days: float = _b(0.0, 3_000.0)
    """Fresh farm accounts are created up to this many days before the span starts (fresh
    commission-ring buyers up to twice as long). Random: log-uniform 1-365."""
    fresh_in_span: float = _b(*_SHARE)
    """Fresh accounts may also be created this share of the span after it starts, hours
    before they act. Random: 0 in half of the worlds, else uniform 0-0.8."""

    # ------------------------------------------------------------------ shared identifiers
    share_one: float = _b(0.0)
    """Weight of rings whose accounts all sit on one or two devices and cards (the ring's
    sharing mode is drawn per ring from ``share_one``, ``share_pools``, ``share_own``).
    Random: Dirichlet(1, 1, 1) over the three modes."""
    share_pools: float = _b(0.0)
    """Weight of rings whose accounts share many small pools of devices and cards (a few
    accounts per device). Random: see ``share_one``."""
    share_own: float = _b(0.0)
    """Weight of rings whose every account has its own device and card. Random: see
    ``share_one``."""
    device_accounts_min: float = _b(1.0)
    """Fewest accounts per shared device in a pooled ring (drawn per ring). Random: uniform
    2-5."""
    device_accounts_max: float = _b(1.0)
    """Most accounts per shared device in a pooled ring. Random: uniform from the min to
    30."""
    proxy_accounts_min: float = _b(1.0)
    """Fewest farm bots per proxy IP (drawn per farm). Random: log-uniform 2-50."""
    proxy_accounts_max: float = _b(1.0)
    """Most farm bots per proxy IP. Random: log-uniform from the min to 3,000."""

    # ------------------------------------------------------------------ commission rings
    commission_size_min: float = _b(1.0)
    """Fewest sock-puppet buyers of a commission ring (the first ring draws 1-2 times the
    min, the second 3-8 times, the rest log-uniform between min and max). Random: uniform
    3-10."""
    commission_size_max: float = _b(1.0)
    """Most sock-puppet buyers of a commission ring. Random: log-uniform from twice the min
    to 1,000."""
    commission_creators_max: int = _b(1, 20)
    """Most creators whose affiliate links one ring orders through (uniform 1 to this, per
    ring). Random: uniform 1-5."""
    commission_sellers_max: int = _b(1, 20)
    """Most sellers one ring orders from (uniform 1 to this, per ring). Random: uniform
    1-3."""
    commission_quiet_share: float = _b(*_SHARE)
    """Share of commission rings with ordinary refund rates and little identifier sharing.
    Random: uniform 0-1."""
    commission_fresh_share: float = _b(*_SHARE)
    """Share of a commission ring's buyers that are fresh accounts. Random: uniform 0-1."""

    # ------------------------------------------------------------------ incentive farms
    incentive_size_min: float = _b(1.0)
    """Fewest accounts of an incentive farm (log-uniform between min and max). Random:
    uniform 3-10."""
    incentive_size_max: float = _b(1.0)
    """Most accounts of an incentive farm. Random: log-uniform from twice the min to
    1,000."""

    # ------------------------------------------------------------------ money cycles
    cycle_length_min: int = _b(2)
    """Fewest accounts in a money cycle. Random: uniform 2-4."""
    cycle_length_max: int = _b(2)
    """Most accounts in a money cycle. Random: uniform from the min to 12."""
    cycle_rounds_min: int = _b(1)
    """Fewest times the money goes round. Random: uniform 1-3."""
    cycle_rounds_max: int = _b(1)
    """Most times the money goes round. Random: uniform from the min to 10."""
    cycle_hop_min: float = _b(1.0)
    """Shortest delay between two hops of a cycle (seconds). Random: log-uniform 1 minute to
    6 hours, at most half the longest."""
    cycle_hop_max: float = _b(1.0)
    """Longest delay between two hops (seconds). Random: the min times log-uniform 2-50, at
    most 4 days and a quarter of the span per round."""
    cycle_amount_min: float = _b(1.0)
    """Lowest amount sent round a cycle. Random: log-uniform 20-2,000."""
    cycle_amount_max: float = _b(1.0)
    """Highest amount sent round a cycle. Random: the min times uniform 1.5-10."""

    # ------------------------------------------------------------------ money flows
    flow_fan_in: int = _b(0)
    """Fan-in instances (many senders to one account) planted by the money-flow module.
    Random: 0 (see ``FLOWS_AVAILABLE``)."""
    flow_fan_out: int = _b(0)
    """Fan-out instances (one account to many). Random: as ``flow_fan_in``."""
    flow_scatter_gather: int = _b(0)
    """Scatter-gather instances. Random: as ``flow_fan_in``."""
    flow_gather_scatter: int = _b(0)
    """Gather-scatter instances. Random: as ``flow_fan_in``."""
    flow_chain: int = _b(0)
    """Chains (money passed along a line of accounts). Random: as ``flow_fan_in``."""
    flow_cycle: int = _b(0)
    """Single-round laundering cycles. Random: as ``flow_fan_in``."""
    flow_amount_min: float = _b(1.0)
    """Lowest amount moved by a money-flow instance. Random: log-uniform 100-5,000."""
    flow_amount_max: float = _b(1.0)
    """Highest amount moved by a money-flow instance. Random: the min times uniform 2-20."""
    flow_hop_min: float = _b(1.0)
    """Shortest delay between two hops of a money flow (seconds). Random: log-uniform 1
    minute to 6 hours."""
    flow_hop_max: float = _b(1.0)
    """Longest delay between two hops of a money flow (seconds). Random: the min times
    log-uniform 2-50, at most 4 days."""

    # ------------------------------------------------------------------ hard negatives
    household_share: float = _b(0.0, 0.9)
    """Share of ordinary buyers living in households that share a device, a home IP, often
    an address and sometimes a card. Random: uniform 2%-20%."""
    household_size_min: int = _b(2)
    """Smallest household. Random: 2."""
    household_size_max: int = _b(2)
    """Largest household. Random: uniform 3-8."""
    carrier_ips: int = _b(0)
    """Mobile-carrier IPs shared by very many unrelated accounts. Random: about one per
    10,000 accounts (times log-uniform 0.5-3), at least 1."""
    carrier_ip_share: float = _b(0.0, 0.5)
    """Share of the market behind one carrier IP (times uniform 0.6-1.6 per IP, at most 35%
    of the market). Random: log-uniform 0.5%-8%."""
    carrier_ip_accounts_min: float = _b(1.0)
    """Fewest accounts behind a carrier IP. Random: log-uniform 100-1,000, at most 35% of
    the market."""
    carrier_ip_accounts_max: float = _b(1.0)
    """Most accounts behind a carrier IP. Random: log-uniform 2,000-50,000."""
    campus_ips: int = _b(0)
    """Campus IPs shared by many students. Random: about one per 30,000 accounts (times
    log-uniform 0.5-3), at least 1."""
    campus_ip_share: float = _b(0.0, 0.5)
    """Share of the market behind one campus IP. Random: log-uniform 0.3%-3%."""
    campus_ip_accounts_min: float = _b(1.0)
    """Fewest accounts behind a campus IP. Random: log-uniform 30-300."""
    campus_ip_accounts_max: float = _b(1.0)
    """Most accounts behind a campus IP. Random: log-uniform 1,000-10,000."""
    public_wifi_ips: int = _b(0)
    """Public Wi-Fi IPs (cafes, malls) shared by tens of accounts. Random: about one per
    5,000 accounts (times log-uniform 0.5-3), at least 1."""
    public_wifi_accounts_min: int = _b(1)
    """Fewest accounts behind a public Wi-Fi IP. Random: uniform 5-30."""
    public_wifi_accounts_max: int = _b(1)
    """Most accounts behind a public Wi-Fi IP. Random: the min plus uniform 10-200."""
    viral_streams: int = _b(0)
    """Streams that go viral. Random: about one per 50,000 accounts (times log-uniform
    0.5-3), at least 1."""
    viral_share: float = _b(0.0, 1.0)
    """Share of the market arriving at a viral stream (times uniform 0.6-1.4). Random:
    log-uniform 2%-15%."""
    viral_accounts_min: float = _b(1.0)
    """Fewest arrivals at a viral stream. Random: log-uniform 100-1,000."""
    viral_accounts_max: float = _b(1.0)
    """Most arrivals at a viral stream. Random: log-uniform 5,000-40,000."""
    viral_arrival_seconds: float = _b(1.0)
    """Mean delay of a viral stream's arrivals after it takes off (exponential, cut at five
    times the mean, at least 15 minutes). Random: log-uniform 30-600 s."""
    flash_sales: int = _b(0)
    """Flash sales: many buyers ordering one product within the same minute. Random: about
    one per 30,000 accounts (times log-uniform 0.5-3), at least 1."""
    flash_share: float = _b(0.0, 1.0)
    """Share of the market ordering in one flash sale (times uniform 0.6-1.4). Random:
    log-uniform 0.5%-5%."""
    flash_accounts_min: float = _b(1.0)
    """Fewest buyers of a flash sale. Random: log-uniform 30-300."""
    flash_accounts_max: float = _b(1.0)
    """Most buyers of a flash sale. Random: log-uniform 1,000-5,000."""
    fan_clubs: int = _b(0)
    """Fan clubs watching every stream of one creator from its announced start. Random:
    about one per 30,000 accounts (times log-uniform 0.5-3), at least 1."""
    fan_share: float = _b(0.0, 1.0)
    """Share of the market in one fan club (times uniform 0.7-1.3). Random: log-uniform
    0.5%-4%."""
    fan_accounts_min: float = _b(1.0)
    """Fewest members of a fan club. Random: log-uniform 20-100."""
    fan_accounts_max: float = _b(1.0)
    """Most members of a fan club. Random: log-uniform 300-3,000."""
    fan_arrival_seconds: float = _b(1.0)
    """Mean delay of fans' arrival after a stream starts (exponential). Random: log-uniform
    30-600 s."""

    # ------------------------------------------------------------------ labels
    labels: str = _one_of(LABEL_MODES)
    """``sample``: ``labels`` holds a noisy sample of past investigator decisions;
    ``none``: no decisions (an empty ``labels`` table). Random: ``none`` in a quarter of the
    worlds."""
    label_abuser_share: float = _b(0.0, 1.0)
    """Share of planted abusers labelled ``abusive``, sampled over all rings (never a whole
    ring). Random: log-uniform 0.5%-20%."""
    label_abusive_errors: float = _b(0.0, 0.9)
    """Share of ``abusive`` labels that are mistakes, on ordinary accounts (at least one
    when labels are sampled). Random: uniform 2%-40%."""
    label_legit_share: float = _b(0.0, 1.0)
    """Share of ordinary accounts labelled ``legit`` (at least 5). Random: log-uniform
    0.05%-1%."""
    label_legit_errors: float = _b(0.0, 0.9)
    """Share of ``legit`` labels that are mistakes, on planted abusers (at least one when
    labels are sampled). Random: uniform 1%-30%."""
    label_lookalike_share: float = _b(0.0, 1.0)
    """Share of mistaken ``abusive`` labels that fall on members of hard negatives
    (households, fan clubs...), which look suspicious, rather than on any ordinary account.
    Random: uniform 0-1."""

    def __post_init__(self) -> None:
        _check(self)

    # ------------------------------------------------------------------ derived

    @property
    def accounts(self) -> int:
        """Ordinary accounts (buyers, creators and sellers)."""
        return self.buyers + self.creators + self.sellers - self.creator_sellers

    @property
    def events(self) -> int:
        """Engagement events of the export (ordinary and planted)."""
        return round(self.accounts * self.events_per_account)

    @property
    def flows(self) -> dict[str, int]:
        """Money-flow instances to plant, per typology."""
        return {name: int(getattr(self, f"flow_{name}")) for name in FLOW_TYPOLOGIES}

    # ------------------------------------------------------------------ constructors

    @classmethod
    def default(cls, events: int = 100_000) -> WorldParams:
        """The sample marketplace of ``events`` engagement events: one month of a UTC+8
        market, about 3.7% planted abusers in every kind, labels sampled."""
        n = max(800, round(events * 0.11))
        n_c = max(25, round(n * 0.012))
        n_s = max(12, round(n * 0.006))
        both = n_s // 5
        return cls(
            buyers=n - n_c - n_s + both,
            creators=n_c,
            sellers=n_s,
            creator_sellers=both,
            events_per_account=events / n,
            orders_per_event=0.035,
            follows_per_account=2.5,
            span_days=SPAN_DAYS,
            history_days=(END - HISTORY_START) // DAY,
            account_age_shape=2.2,
            utc_offset_hours=8.0,
            local_time_share=0.0,
            abuser_share=0.0,
            mix_farm=0.25,
            mix_commission=0.25,
            mix_incentive=0.25,
            mix_cycle=0.25,
            farm_rings=scaled_count(events, 5, 3),
            commission_rings=scaled_count(events, 5, 3),
            incentive_rings=scaled_count(events, 4, 2),
            cycle_rings=scaled_count(events, 3, 2),
            farm_size_min=10.0,
            farm_size_max=min(500.0, max(14.0, 0.02 * n)),
            farm_targets_min=1,
            farm_targets_max=3,
            farm_bursts_min=6,
            farm_bursts_max=25,
            farm_window_min=10.0,
            farm_window_max=120.0,
            farm_participation_min=0.4,
            farm_participation_max=0.85,
            farm_at_start_share=0.0,
            farm_popular_share=0.0,
            farm_camouflage_min=0.5,
            farm_camouflage_max=12.0,
            camouflage_popularity=1.2,
            farm_fresh_share=0.7,
            fresh_days=60.0,
            fresh_in_span=0.0,
            share_one=0.0,
            share_pools=1.0,
            share_own=0.0,
            device_accounts_min=3.0,
            device_accounts_max=15.0,
            proxy_accounts_min=5.0,
            proxy_accounts_max=30.0,
            commission_size_min=5.0,
            commission_size_max=60.0,
            commission_creators_max=1,
            commission_sellers_max=1,
            commission_quiet_share=0.3,
            commission_fresh_share=0.5,
            incentive_size_min=5.0,
            incentive_size_max=min(60.0, max(10.0, 0.01 * n)),
            cycle_length_min=3,
            cycle_length_max=8,
            cycle_rounds_min=3,
            cycle_rounds_max=10,
            cycle_hop_min=float(HOUR),
            cycle_hop_max=float(12 * HOUR),
            cycle_amount_min=150.0,
            cycle_amount_max=1500.0,
            flow_fan_in=0,
            flow_fan_out=0,
            flow_scatter_gather=0,
            flow_gather_scatter=0,
            flow_chain=0,
            flow_cycle=0,
            flow_amount_min=500.0,
            flow_amount_max=20_000.0,
            flow_hop_min=600.0,
            flow_hop_max=float(2 * DAY),
            household_share=0.09,
            household_size_min=2,
            household_size_max=5,
            carrier_ips=log2_count(events, 3) * 2 - 3,
            carrier_ip_share=0.05,
            carrier_ip_accounts_min=300.0,
            carrier_ip_accounts_max=50_000.0,
            campus_ips=log2_count(events, 1),
            campus_ip_share=0.015,
            campus_ip_accounts_min=80.0,
            campus_ip_accounts_max=8_000.0,
            public_wifi_ips=scaled_count(events, 6, 2),
            public_wifi_accounts_min=15,
            public_wifi_accounts_max=60,
            viral_streams=log2_count(events, 1),
            viral_share=0.12,
            viral_accounts_min=100.0,
            viral_accounts_max=40_000.0,
            viral_arrival_seconds=120.0,
            flash_sales=log2_count(events, 1),
            flash_share=0.01,
            flash_accounts_min=30.0,
            flash_accounts_max=3_000.0,
            fan_clubs=log2_count(events, 1) + (events >= 50_000),
            fan_share=0.012,
            fan_accounts_min=20.0,
            fan_accounts_max=300.0,
            fan_arrival_seconds=240.0,
            labels="sample",
            label_abuser_share=0.025,
            label_abusive_errors=0.1,
            label_legit_share=0.002,
            label_legit_errors=0.05,
            label_lookalike_share=0.0,
        )

    @classmethod
    def random(cls, seed: int) -> WorldParams:
        """A world with every parameter drawn from ``seed`` (ranges in the fields' docs).

        The same seed gives the same world. Counts of hard negatives scale with the drawn
        market; ring sizes are bounded by it (a farm may be half of a small market).
        """
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {seed!r}")
        r = np.random.default_rng([seed, zlib.crc32(b"ringscope-world")])

        def lu(lo: float, hi: float) -> float:
            return float(np.exp(r.uniform(math.log(lo), math.log(max(hi, lo)))))

        def un(lo: float, hi: float) -> float:
            return float(r.uniform(lo, max(hi, lo)))

        def ui(lo: int, hi: int) -> int:
            """Uniform integer in ``[lo, hi]``."""
            return int(r.integers(lo, max(hi, lo) + 1))

        buyers = round(lu(2_000, 500_000))
        creators = max(10, round(buyers * lu(0.004, 0.03)))
        sellers = max(5, round(buyers * lu(0.002, 0.015)))
        both = round(min(creators, sellers) * un(0.0, 0.5))
        accounts = buyers + creators + sellers - both
        span = ui(7, 120)

        def per(accounts_per_one: float) -> int:
            return max(1, round(accounts / accounts_per_one * lu(0.5, 3.0)))

        mix = r.dirichlet(np.ones(4))
        modes = r.dirichlet(np.ones(3))
        farm_min = lu(3, 30)
        window_min = lu(1, 60)
        part_min = un(0.1, 0.8)
        camo_min = un(0.0, 5.0)
        device_min = un(2, 5)
        proxy_min = lu(2, 50)
        com_min = float(ui(3, 10))
        inc_min = float(ui(3, 10))
        len_min = ui(2, 4)
        len_max = ui(len_min, 12)
        rounds_min = ui(1, 3)
        # every round of a cycle fits in a quarter of the span
        hop_cap = min(4 * DAY, span * DAY / 4 / len_max)
        hop_min = min(lu(60, 6 * HOUR), hop_cap / 2)
        amount_min = lu(20, 2_000)
        flow_amount = lu(100, 5_000)
        flow_hop = lu(60, 6 * HOUR)
        wifi_min = ui(5, 30)
        return cls(
            buyers=buyers,
            creators=creators,
            sellers=sellers,
            creator_sellers=both,
            events_per_account=lu(3, 20),
            orders_per_event=lu(0.01, 0.12),
            follows_per_account=lu(0.5, 8),
            span_days=span,
            history_days=ui(span + 60, 3_650),
            account_age_shape=un(0.6, 4.0),
            utc_offset_hours=float(r.choice([-8, -6, -5, -4, -3, 0, 1, 2, 3, 4, 5.5, 7, 8, 9, 10])),
            local_time_share=0.0 if r.random() < 0.5 else un(0.05, 1.0),
            abuser_share=lu(0.002, 0.25),
            mix_farm=float(mix[0]),
            mix_commission=float(mix[1]),
            mix_incentive=float(mix[2]),
            mix_cycle=float(mix[3]),
            farm_rings=1,
            commission_rings=1,
            incentive_rings=1,
            cycle_rings=1,
            farm_size_min=farm_min,
            farm_size_max=lu(max(farm_min, 20), 1_000),
            farm_targets_min=1,
            farm_targets_max=ui(1, 6),
            farm_bursts_min=(bursts_min := ui(2, 10)),
            farm_bursts_max=bursts_min + ui(0, 40),
            farm_window_min=window_min,
            farm_window_max=lu(window_min, 1_200),
            farm_participation_min=part_min,
            farm_participation_max=un(part_min, 1.0),
            farm_at_start_share=un(0.0, 1.0),
            farm_popular_share=un(0.0, 0.8),
            farm_camouflage_min=camo_min,
            farm_camouflage_max=camo_min + lu(0.5, 40),
            camouflage_popularity=un(0.0, 1.5),
            farm_fresh_share=un(0.0, 1.0),
            fresh_days=lu(1, 365),
            fresh_in_span=0.0 if r.random() < 0.5 else un(0.0, 0.8),
            share_one=float(modes[0]),
            share_pools=float(modes[1]),
            share_own=float(modes[2]),
            device_accounts_min=device_min,
            device_accounts_max=un(device_min, 30),
            proxy_accounts_min=proxy_min,
            proxy_accounts_max=lu(proxy_min, 3_000),
            commission_size_min=com_min,
            commission_size_max=lu(2 * com_min, 1_000),
            commission_creators_max=ui(1, 5),
            commission_sellers_max=ui(1, 3),
            commission_quiet_share=un(0.0, 1.0),
            commission_fresh_share=un(0.0, 1.0),
            incentive_size_min=inc_min,
            incentive_size_max=lu(2 * inc_min, 1_000),
            cycle_length_min=len_min,
            cycle_length_max=len_max,
            cycle_rounds_min=rounds_min,
            cycle_rounds_max=ui(rounds_min, 10),
            cycle_hop_min=hop_min,
            cycle_hop_max=min(hop_min * lu(2, 50), hop_cap),
            cycle_amount_min=amount_min,
            cycle_amount_max=amount_min * un(1.5, 10),
            flow_fan_in=0,
            flow_fan_out=0,
            flow_scatter_gather=0,
            flow_gather_scatter=0,
            flow_chain=0,
            flow_cycle=0,
            flow_amount_min=flow_amount,
            flow_amount_max=flow_amount * un(2, 20),
            flow_hop_min=flow_hop,
            flow_hop_max=min(flow_hop * lu(2, 50), 4 * DAY),
            household_share=un(0.02, 0.2),
            household_size_min=2,
            household_size_max=ui(3, 8),
            carrier_ips=per(10_000),
            carrier_ip_share=lu(0.005, 0.08),
            carrier_ip_accounts_min=min(lu(100, 1_000), 0.35 * accounts),
            carrier_ip_accounts_max=lu(2_000, 50_000),
            campus_ips=per(30_000),
            campus_ip_share=lu(0.003, 0.03),
            campus_ip_accounts_min=lu(30, 300),
            campus_ip_accounts_max=lu(1_000, 10_000),
            public_wifi_ips=per(5_000),
            public_wifi_accounts_min=wifi_min,
            public_wifi_accounts_max=wifi_min + ui(10, 200),
            viral_streams=per(50_000),
            viral_share=lu(0.02, 0.15),
            viral_accounts_min=lu(100, 1_000),
            viral_accounts_max=lu(5_000, 40_000),
            viral_arrival_seconds=lu(30, 600),
            flash_sales=per(30_000),
            flash_share=lu(0.005, 0.05),
            flash_accounts_min=lu(30, 300),
            flash_accounts_max=lu(1_000, 5_000),
            fan_clubs=per(30_000),
            fan_share=lu(0.005, 0.04),
            fan_accounts_min=lu(20, 100),
            fan_accounts_max=lu(300, 3_000),
            fan_arrival_seconds=lu(30, 600),
            labels="none" if r.random() < 0.25 else "sample",
            label_abuser_share=lu(0.005, 0.2),
            label_abusive_errors=un(0.02, 0.4),
            label_legit_share=lu(0.0005, 0.01),
            label_legit_errors=un(0.01, 0.3),
            label_lookalike_share=un(0.0, 1.0),
        )

    def resized(self, buyers: int) -> WorldParams:
        """The same world with ``buyers`` ordinary buyers: creators, sellers and the counts
        of hard negatives scale with the market, ring sizes stay (bounded by the market
        when generated). For tests and benchmarks that need a given size."""
        if isinstance(buyers, bool) or not isinstance(buyers, int) or buyers < 100:
            raise InputError(f"buyers must be an integer >= 100, got {buyers!r}")
        f = buyers / self.buyers

        def scale(n: int, lo: int) -> int:
            return max(lo, round(n * f))

        creators = scale(self.creators, 3)
        sellers = scale(self.sellers, 2)
        return replace(
            self,
            buyers=buyers,
            creators=creators,
            sellers=sellers,
            creator_sellers=min(scale(self.creator_sellers, 0), creators, sellers),
            carrier_ips=scale(self.carrier_ips, min(1, self.carrier_ips)),
            campus_ips=scale(self.campus_ips, min(1, self.campus_ips)),
            public_wifi_ips=scale(self.public_wifi_ips, min(1, self.public_wifi_ips)),
            viral_streams=scale(self.viral_streams, min(1, self.viral_streams)),
            flash_sales=scale(self.flash_sales, min(1, self.flash_sales)),
            fan_clubs=scale(self.fan_clubs, min(1, self.fan_clubs)),
        )

    # ------------------------------------------------------------------ JSON

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a JSON-able dict (field order)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldParams:
        """Parameters from :meth:`to_dict`'s form (``world.json``); every field is needed.

        Raises
        ------
        InputError
            If a key is unknown or missing, or a value has the wrong type or range.
        """
        if not isinstance(data, dict):
            raise InputError(f"world parameters must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise InputError(f"unknown world parameter {unknown[0]!r}")
        missing = [n for n in names if n not in data]
        if missing:
            raise InputError(f"world parameter {missing[0]!r} is missing")
        return cls(**data)


#: Pairs of fields where the first must not exceed the second.
_ORDERED = tuple(
    (f"{stem}_min", f"{stem}_max")
    for stem in (
        "farm_size",
        "farm_targets",
        "farm_bursts",
        "farm_window",
        "farm_participation",
        "farm_camouflage",
        "device_accounts",
        "proxy_accounts",
        "commission_size",
        "incentive_size",
        "cycle_length",
        "cycle_rounds",
        "cycle_hop",
        "cycle_amount",
        "flow_amount",
        "flow_hop",
        "household_size",
        "carrier_ip_accounts",
        "campus_ip_accounts",
        "public_wifi_accounts",
        "viral_accounts",
        "flash_accounts",
        "fan_accounts",
    )
)


def _check(p: WorldParams) -> None:
    """Check every field's type and range, and that each min is at most its max."""
    for f in fields(p):
        value = getattr(p, f.name)
        choices = f.metadata.get("choices")
        if choices is not None:
            if value not in choices:
                raise InputError(f"world parameter {f.name!r} must be one of {choices}")
            continue
        if f.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InputError(f"world parameter {f.name!r} must be an integer, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"world parameter {f.name!r} must be a number, got {value!r}")
        elif not math.isfinite(value):
            raise InputError(f"world parameter {f.name!r} must be finite, got {value!r}")
        else:
            object.__setattr__(p, f.name, float(value))
        lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise InputError(f"world parameter {f.name!r} must be {span}, got {value!r}")
    for lo_name, hi_name in _ORDERED:
        if getattr(p, lo_name) > getattr(p, hi_name):
            raise InputError(f"world parameter {lo_name!r} must not exceed {hi_name!r}")
    if p.creator_sellers > min(p.creators, p.sellers):
        raise InputError("world parameter 'creator_sellers' exceeds 'creators' or 'sellers'")
    mix = p.mix_farm + p.mix_commission + p.mix_incentive + p.mix_cycle
    if p.abuser_share > 0 and mix <= 0:
        raise InputError("world parameters 'mix_*' must not all be 0 when 'abuser_share' > 0")
    if p.share_one + p.share_pools + p.share_own <= 0:
        raise InputError("world parameters 'share_*' must not all be 0")
    if round(p.utc_offset_hours * 4) != p.utc_offset_hours * 4:
        raise InputError("world parameter 'utc_offset_hours' must be a multiple of 0.25")
    if p.events < 1_000:
        raise InputError(
            f"world has {p.events} events (accounts x events_per_account); at least 1000"
        )
    if p.history_days < p.span_days:
        raise InputError("world parameter 'history_days' must be at least 'span_days'")
