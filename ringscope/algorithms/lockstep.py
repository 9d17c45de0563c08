"""Lockstep engagement: groups of accounts that act on the same streams at the same moments.

The detector follows CopyCatch (Beutel et al., 2013) and SynchroTrap (Cao et
al., 2014): an engagement farm's controller makes its accounts arrive, like,
comment or gift on a stream within seconds or minutes of each other, and does
so again and again on the streams it is paid to boost. The steps:

1. **Arrivals.** For each account, stream and kind only the first event counts
   (the moment the account turned up and acted). Repeated likes or comments
   of an active viewer would otherwise line up with other viewers by chance.
2. **Start graces.** A stream's start is announced to the creator's followers,
   so on some creators' streams fans arrive together then for an innocent
   reason. Each creator's usual start surge is measured: per stream and per
   finest window since the start, the arrivals over what a flat rate over the
   stream would bring, and the median over the creator's streams (a median, so
   a farm that hits a minority of the streams cannot make a surge of it). The
   leading windows at or above ``surge_level`` are the creator's grace, at most
   ``start_grace_s``. Given the ``follows`` table, only the creator's
   followers (following before the stream started) are measured and excused:
   they are the ones notified, and accounts that do not follow the creator
   have no reason to come together at its start. Without it every arrival in
   the grace is set aside.
3. **Buckets at several time scales.** Arrivals are bucketed by (stream, time
   window) at a few window widths, from ``window_s`` up to
   ``max_window_share`` of the market's median stream length, consecutive
   widths at most ``window_factor`` apart (a farm's jitter may be seconds or
   many minutes; a width fitted to it sees the burst whole, a much wider one
   drowns it in ordinary viewers). At each width two grids are staggered by
   half a window, so a burst that straddles a boundary of one grid falls whole
   into a bucket of the other.
4. **Pairs.** Per width, for every pair of accounts, the distinct *bursts* they
   shared (a stream and a moment: shared buckets of one stream less than two
   windows apart are one burst), the distinct streams of those bursts and the
   streams both engaged with at all (``n_both``). The count runs row by row (a
   sparse product of the account x bucket matrix with its transpose, compiled
   with numba), so no list of all co-acting pairs is built; accounts whose
   buckets cannot hold ``min_shared_windows`` bursts with anyone are left out.
   No bucket is skipped: in a bucket with more than ``max_bucket`` such
   accounts (a viral moment, a farm of hundreds, a popular stream at a wide
   window) pairs are counted among the ``max_bucket`` accounts of lowest
   hash rank, a rank fixed per account, so the same accounts are kept in
   every crowded bucket and a farm's kept bots keep all their shared bursts
   (a bottom-k sample, Cohen and Kaplan, 2007); the rest of the farm joins its
   group in step 6. A pair is an edge when it shared ``min_shared_windows``
   bursts and its synchrony rate ``n_sync / n_both`` is at least
   ``min_sync_rate`` of the way from what chance gives at that width (two
   arrivals on a stream share a bucket with about ``2 * width / length``) to
   one. Edges of all widths are merged, each pair keeping its best width.
5. **Groups.** The edges form a graph clustered with Leiden (the Constant
   Potts Model, seeded), which keeps rings apart and guarantees connected
   groups. A *group burst* is a bucket (of any width) where ``burst_quorum``
   of the group co-acted; overlapping group-burst buckets of one stream are
   one burst. Members that joined fewer than ``min_member_bursts`` group
   bursts are dropped. Groups whose bursts coincide (same stream, overlapping
   moments) on at least half of the smaller group's bursts are one farm split
   by Leiden's resolution or by bots' partial participation, and are merged.
6. **Completion.** Accounts outside the group that arrived within the
   group's bursts (on the stream, between the first and the last member's
   arrival, excused start arrivals included) join it when that is
   significant: under the null of an arrival at a random time of the stream,
   the chance of landing in that many of the group's bursts is below
   ``10**-min_member_significance`` over the number of accounts tested
   (Bonferroni). A crowded burst's unsampled bots and a farm's followers
   excused at the start join here.
7. **Significance.** Each group is tested against a null model of
   independent arrivals: on each stream and width, the ``m`` members present
   arrive in a window with the probability that *background* accounts (no
   lockstep edge, not in a group) arrived in it, Laplace-smoothed over the
   stream's windows. Per stream, the chance that some window holds as many
   members as the busiest group window did is bounded by the expected number
   of such windows (a scan statistic with a union bound), the best width's,
   times the number of widths (Bonferroni); the streams' p-values are
   combined by Fisher's method. The test is size-aware: three accounts
   together on six quiet streams is as unlikely as thirty together twice on a
   crowded one.
8. **Signals.** A group is reported when it has ``min_group`` accounts,
   shares ``min_shared_windows`` bursts, reaches ``min_significance``
   (``-log10 p``) and passes the light density and synchronised-share floors
   (``min_density`` among the accounts that formed it, ``min_sync_share``),
   which the significance alone does not guarantee because groups are
   selected from the data they are tested on. A group of fewer than
   ``corroborate_below`` accounts needs a second, independent signal
   (several signals for a small ring, rather than a size floor): its bursts
   concentrate on one creator's streams, or its accounts are young, beyond
   what the market's own shares make likely (a binomial tail below
   ``10**-min_corroboration``); a household watching together on one screen
   keeps time like a farm but watches whatever it likes. Young accounts
   (created within ``young_days`` of ``as_of``) and a narrow set of target
   creators raise the score.

:func:`lockstep_pairs` exposes the co-acting pairs batch by batch (the iterator inside);
:func:`detect_lockstep` is the function outside. The Spark engine
(:mod:`ringscope.engines.spark.lockstep`) runs the same steps with the pair
count of step 4 on Spark.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ringscope.algorithms.base import MarketTables, Seed, iso, seed_int
from ringscope.errors import InputError
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, rank

NAME = "lockstep"
#: igraph's random generator is process-wide; Leiden calls take turns with it.
_IGRAPH_RNG_LOCK = threading.Lock()
VERSION = "3.0.0"
KIND = "engagement_farm"

__all__ = [
    "KIND",
    "NAME",
    "VERSION",
    "PairBatch",
    "detect_lockstep",
    "detect_lockstep_tables",
    "lockstep_pairs",
]

_PAIR_CHUNK = 4_000_000  # pairs materialised at once


# --------------------------------------------------------------------------- sorting


def _radix_argsort(keys: np.ndarray, bits: int) -> np.ndarray:
    """Stable argsort of non-negative int64 ``keys`` below ``2**bits``.

    A least-significant-digit radix sort on bytes: linear in the number of
    keys, where numpy's stable argsort of int64 is a merge sort. Digits that
    all keys share are skipped. Written in the numba-compatible subset of
    Python.
    """
    n = keys.size
    idx = np.arange(n)
    t_idx = np.empty(n, dtype=np.int64)
    k = keys.copy()
    t_k = np.empty(n, dtype=np.int64)
    counts = np.zeros(256, dtype=np.int64)
    shift = 0
    while shift < bits:
        counts[:] = 0
        for i in range(n):
            counts[(k[i] >> shift) & 255] += 1
        if counts.max() < n:
            s = 0
            for d in range(256):
                c = counts[d]
                counts[d] = s
                s += c
            for i in range(n):
                d = (k[i] >> shift) & 255
                p = counts[d]
                counts[d] = p + 1
                t_k[p] = k[i]
                t_idx[p] = idx[i]
            k, t_k = t_k, k
            idx, t_idx = t_idx, idx
        shift += 8
    return idx


_COMPILED: dict[str, Callable[..., Any]] = {}


def _compiled(fn: Callable[..., Any]) -> Callable[..., Any] | None:
    """``fn`` compiled by numba (cached on disk when possible), None without numba."""
    if fn.__name__ not in _COMPILED:
        try:
            import numba
        except ImportError:  # pragma: no cover - depends on the environment
            return None
        try:
            _COMPILED[fn.__name__] = numba.njit(cache=True, nogil=True)(fn)
        except Exception:  # pragma: no cover - unusable cache directory
            _COMPILED[fn.__name__] = numba.njit(cache=False, nogil=True)(fn)
    return _COMPILED[fn.__name__]


_SMALL_SORT = 50_000  # below this many rows numpy's own stable sort is as fast


def _stable_argsort(keys: np.ndarray, bits: int) -> np.ndarray:
    """Stable argsort of non-negative int64 keys below ``2**bits``."""
    radix = _compiled(_radix_argsort) if keys.size > _SMALL_SORT else None
    if radix is None:
        return np.argsort(keys, kind="stable")
    return np.asarray(radix(keys, bits), dtype=np.int64)


def _counting_argsort(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Stable argsort of int64 ``keys`` in ``[0, n_keys)``: one counting pass and one
    placing pass. Written in the numba-compatible subset of Python."""
    counts = np.zeros(n_keys + 1, dtype=np.int64)
    for i in range(keys.size):
        counts[keys[i] + 1] += 1
    for k in range(n_keys):
        counts[k + 1] += counts[k]
    out = np.empty(keys.size, dtype=np.int64)
    for i in range(keys.size):
        k = keys[i]
        out[counts[k]] = i
        counts[k] += 1
    return out


def _dense_argsort(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Stable argsort of int64 keys in ``[0, n_keys)`` (compiled counting sort, or numpy)."""
    fn = _compiled(_counting_argsort) if keys.size > _SMALL_SORT else None
    if fn is None:
        return np.argsort(keys, kind="stable")
    return np.asarray(fn(keys, n_keys), dtype=np.int64)


def _order(*keys: np.ndarray) -> np.ndarray:
    """Stable order of rows by integer ``keys``, most significant first.

    The same permutation as ``np.lexsort(keys[::-1])``: the keys (shifted to
    start at 0) are packed into as few int64 words as their ranges allow,
    and the words are sorted from the least significant one with a stable
    radix sort.
    """
    n = keys[0].size if keys else 0
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    # trailing keys that are already non-decreasing need no sorting: a stable
    # sort by the others keeps them in order
    while len(keys) > 1 and bool(np.all(keys[-1][1:] >= keys[-1][:-1])):
        keys = keys[:-1]
    words: list[tuple[list[np.ndarray], list[int]]] = []
    cols: list[np.ndarray] = []
    widths: list[int] = []
    used = 0
    for key in reversed(keys):  # least significant first
        lo, hi = int(key.min()), int(key.max())
        width = max(int(hi - lo).bit_length(), 1)
        if width > 62:
            return np.lexsort(keys[::-1])
        if used + width > 62:
            words.append((cols, widths))
            cols, widths, used = [], [], 0
        cols.append(np.asarray(key, dtype=np.int64) - lo)
        widths.append(width)
        used += width
    words.append((cols, widths))
    perm: np.ndarray | None = None
    for cols, widths in words:
        word = np.zeros(n, dtype=np.int64)
        shift = 0
        for col, width in zip(cols, widths, strict=True):
            word |= (col if perm is None else col[perm]) << np.int64(shift)
            shift += width
        o = _stable_argsort(word, shift)
        perm = o if perm is None else perm[o]
    assert perm is not None
    return perm


def _unique(x: np.ndarray, return_counts: bool = False) -> Any:
    """``np.unique`` of a 1-d integer array by sorting (numpy's hash-based
    unique is many times slower on millions of values)."""
    s = np.sort(x)
    first = np.ones(s.size, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    u = s[first]
    if not return_counts:
        return u
    return u, np.diff(np.r_[np.flatnonzero(first), s.size])


def _unique_inverse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True, return_counts=True)`` of a 1-d integer array."""
    o = _order(x)
    s = x[o]
    first = np.ones(s.size, dtype=bool)
    first[1:] = s[1:] != s[:-1]
    inverse = np.empty(s.size, dtype=np.int64)
    inverse[o] = np.cumsum(first) - 1
    return s[first], inverse, np.diff(np.r_[np.flatnonzero(first), s.size])


# --------------------------------------------------------------------------- input


def _check_columns(frame: Any, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{name} must be a pandas DataFrame, not {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{name} lacks column(s) {', '.join(missing)}")
    return frame


def _seconds(ts: pd.Series) -> np.ndarray:
    """Whole seconds since the epoch of a timestamp column (naive values taken as UTC)."""
    idx = pd.DatetimeIndex(ts)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    if idx.hasnans:
        raise InputError("engagements.ts has missing timestamps")
    return np.asarray(idx.as_unit("us").asi8 // 1_000_000, dtype=np.int64)


@dataclass(frozen=True)
class _Arrivals:
    """First event of each (account, stream, kind), as integer codes."""

    account_ids: np.ndarray  # sorted unique account ids (object)
    stream_ids: np.ndarray  # sorted unique stream ids (object)
    kinds: np.ndarray  # sorted unique kinds (object)
    acct: np.ndarray
    stream: np.ndarray
    kind: np.ndarray
    t: np.ndarray  # seconds
    row: np.ndarray  # position of the event in the input frame
    prio: np.ndarray  # per account: rank of a hash of its id (the bottom-k sample order)

    @cached_property
    def acct_streams(self) -> np.ndarray:
        """Sorted distinct ``account * n_streams + stream`` keys (computed once: the pair
        count of each width, the landing test and the signals all use them)."""
        n_s = np.int64(max(self.stream_ids.size, 1))
        return np.asarray(_unique(self.acct * n_s + self.stream), dtype=np.int64)


def _arrivals(engagements: pd.DataFrame, kinds: tuple[str, ...] | None) -> _Arrivals:
    mask = engagements["account_id"].notna() & engagements["stream_id"].notna()
    if kinds is not None:
        mask &= engagements["kind"].isin(list(kinds))
    pos = np.flatnonzero(mask.to_numpy(dtype=bool))
    ev = engagements if pos.size == len(engagements) else engagements.iloc[pos]
    acct, account_ids = pd.factorize(ev["account_id"].astype(str), sort=True)
    stream, stream_ids = pd.factorize(ev["stream_id"].astype(str), sort=True)
    kind, kind_ids = pd.factorize(ev["kind"].astype(str), sort=True)
    t = _seconds(ev["ts"])
    acct = acct.astype(np.int64)
    stream = stream.astype(np.int64)
    kind = kind.astype(np.int64)
    # first event per (account, stream, kind): sort by key then time (then input
    # position: the sort is stable), keep the first
    order = _order(acct, stream, kind, t)
    a, s, k = acct[order], stream[order], kind[order]
    first = np.ones(order.size, dtype=bool)
    first[1:] = (a[1:] != a[:-1]) | (s[1:] != s[:-1]) | (k[1:] != k[:-1])
    sel = order[first]
    ids = np.asarray(account_ids, dtype=object)
    # a rank fixed by the account id alone (not by the input's order or the other
    # accounts): hash the ids, rank the hashes (ties by id, which is sorted)
    hashed = pd.util.hash_array(ids.astype(str).astype(object), categorize=False)
    prio = np.empty(ids.size, dtype=np.int64)
    prio[np.argsort(hashed, kind="stable")] = np.arange(ids.size, dtype=np.int64)
    return _Arrivals(
        account_ids=ids,
        stream_ids=np.asarray(stream_ids, dtype=object),
        kinds=np.asarray(kind_ids, dtype=object),
        acct=acct[sel],
        stream=stream[sel],
        kind=kind[sel],
        t=t[sel],
        row=pos[sel],
        prio=prio,
    )


# --------------------------------------------------------------------------- streams


def _stream_starts(streams: pd.DataFrame, stream_ids: np.ndarray) -> np.ndarray | None:
    """Start of each stream in seconds (NaN when unknown), or None without the column."""
    if "started_at" not in streams.columns or streams.empty:
        return None
    st = streams[["stream_id", "started_at"]].dropna()
    st = st.assign(stream_id=st["stream_id"].astype(str)).drop_duplicates("stream_id")
    if st.empty:
        return None
    sec = pd.Series(_seconds(st["started_at"]).astype(np.float64), index=st["stream_id"].to_numpy())
    return sec.reindex(pd.Index(stream_ids.astype(str))).to_numpy(dtype=np.float64)


def _stream_ends(streams: pd.DataFrame, arr: _Arrivals) -> np.ndarray | None:
    """``ended_at`` of each stream of ``arr`` in seconds (NaN where unknown), or None
    when no stream has one."""
    if "ended_at" not in streams.columns or streams.empty:
        return None
    st = streams[["stream_id", "ended_at"]].dropna()
    if st.empty:
        return None
    st = st.assign(stream_id=st["stream_id"].astype(str)).drop_duplicates("stream_id")
    sec = pd.Series(_seconds(st["ended_at"]).astype(np.float64), index=st["stream_id"].to_numpy())
    return sec.reindex(pd.Index(arr.stream_ids.astype(str))).to_numpy(dtype=np.float64)


def _stream_creators(streams: pd.DataFrame, arr: _Arrivals) -> np.ndarray:
    """Creator id of each stream of ``arr`` (None where unknown), as objects."""
    return (
        streams.assign(stream_id=streams["stream_id"].astype(str))
        .drop_duplicates("stream_id")
        .set_index("stream_id")["creator_id"]
        .reindex(pd.Index(arr.stream_ids.astype(str)))
        .to_numpy(dtype=object)
    )


@dataclass(frozen=True)
class _Spans:
    """Each stream's span: ``lo`` (start, else first arrival) to ``hi`` (end, else last
    arrival, at least the last arrival), in seconds."""

    lo: np.ndarray
    hi: np.ndarray
    start: np.ndarray | None  # started_at (NaN where unknown), None without the column

    @property
    def length(self) -> np.ndarray:
        return np.maximum(self.hi - self.lo, 1.0)


def _spans(streams: pd.DataFrame, arr: _Arrivals) -> _Spans:
    n_s = arr.stream_ids.size
    first = np.full(n_s, np.inf)
    last = np.full(n_s, -np.inf)
    np.minimum.at(first, arr.stream, arr.t.astype(np.float64))
    np.maximum.at(last, arr.stream, arr.t.astype(np.float64))
    starts = _stream_starts(streams, arr.stream_ids)
    lo = first if starts is None else np.where(np.isnan(starts), first, np.minimum(starts, first))
    ended = _stream_ends(streams, arr)
    hi = last if ended is None else np.where(np.isnan(ended), last, np.maximum(ended, last))
    return _Spans(lo=lo, hi=hi, start=starts)


def _widths(
    window_s: float, max_window_share: float, window_factor: float, spans: _Spans
) -> np.ndarray:
    """Window widths in seconds: ``window_s``, then geometric steps of at most
    ``window_factor`` up to ``max_window_share`` of the median stream length."""
    length = spans.length
    top = max_window_share * float(np.median(length)) if length.size else 0.0
    if not top > window_s * window_factor**0.5:
        return np.array([float(window_s)])
    k = max(1, math.ceil(math.log(top / window_s) / math.log(window_factor) - 0.01))
    w = window_s * (top / window_s) ** (np.arange(k + 1) / k)
    return np.unique(np.round(w)).astype(np.float64)


# --------------------------------------------------------------------------- start graces


def _followers(
    follows: pd.DataFrame | None, arr: _Arrivals, creators: np.ndarray, spans: _Spans
) -> np.ndarray | None:
    """Per arrival: whether the account follows the stream's creator (at any time in the
    data: a follow recorded late, or an export cut after it, still says who is told of
    the creator's streams). None without follows."""
    if follows is None or follows.empty:
        return None
    f = follows.dropna(subset=["follower_id", "creator_id"])
    if f.empty:
        return None
    creator_codes, creator_ids = pd.factorize(pd.Series(creators, dtype=object))
    pos = pd.Index(arr.account_ids.astype(str)).get_indexer(f["follower_id"].astype(str))
    known = pos >= 0
    c_pos = pd.Index(np.asarray(creator_ids).astype(str)).get_indexer(f["creator_id"].astype(str))
    ok = known & (c_pos >= 0)
    if not ok.any():
        return np.zeros(arr.t.size, dtype=bool)
    n_c = np.int64(max(len(creator_ids), 1))
    key = pos[ok].astype(np.int64) * n_c + c_pos[ok]
    key = _unique(key)
    a_key = arr.acct * n_c + creator_codes[arr.stream]
    at = np.minimum(np.searchsorted(key, a_key), max(key.size - 1, 0))
    return (key[at] == a_key) & (creator_codes[arr.stream] >= 0)


def _start_graces(
    arr: _Arrivals,
    spans: _Spans,
    creators: np.ndarray,
    who: np.ndarray | None,
    *,
    window_s: float,
    max_grace_s: float,
    surge_level: float,
) -> np.ndarray | None:
    """Seconds after each stream's start during which the arrivals of ``who`` (every
    arrival when None) are set aside; None without stream starts.

    For each of a creator's streams and each window (``window_s``) since its
    start, the accounts of ``who`` that arrived then over the number a flat
    arrival rate of theirs over the stream would bring (plus one, which keeps
    small streams from looking busy by chance); the median over the creator's
    streams is the creator's typical intensity, and its streams get as much
    grace as the leading run of windows at or above ``surge_level`` covers, at
    most ``max_grace_s``: a surge that recurs at the start of most of the
    creator's streams is set aside, a burst on a few streams (a farm's) is not.
    When ``who`` are the followers, a creator whose followers surge at the
    start of most of its streams gets the whole ``max_grace_s`` for them: they
    were told the stream started, and the stragglers of a notified crowd keep
    coming after its peak. ``surge_level`` 0 gives every stream ``max_grace_s``.
    """
    starts = spans.start
    if starts is None:
        return None
    n_s = arr.stream_ids.size
    if surge_level <= 0 or max_grace_s <= 0:
        return np.full(n_s, float(max(max_grace_s, 0.0)))
    n_bins = max(1, int(np.ceil(max_grace_s / window_s)))
    sel = np.ones(arr.t.size, dtype=bool) if who is None else who
    # first arrival of each account on each stream (arrivals are sorted by account, stream)
    new_run = np.ones(arr.t.size, dtype=bool)
    new_run[1:] = (arr.acct[1:] != arr.acct[:-1]) | (arr.stream[1:] != arr.stream[:-1])
    run_lo = np.flatnonzero(new_run)
    t_first = np.minimum.reduceat(arr.t, run_lo) if run_lo.size else arr.t[:0]
    s_run = arr.stream[run_lo]
    in_run = np.maximum.reduceat(sel.astype(np.int8), run_lo) > 0 if run_lo.size else sel[:0]
    t_first, s_run = t_first[in_run], s_run[in_run]
    n_acc = np.bincount(s_run, minlength=n_s).astype(np.float64)
    since = t_first - starts[s_run]
    k = np.floor(since / window_s)
    ok = (k >= 0) & (k < n_bins)  # NaN starts fall out here
    counts = np.bincount(
        s_run[ok] * n_bins + k[ok].astype(np.int64), minlength=n_s * n_bins
    ).reshape(n_s, n_bins)
    length = np.maximum(np.nan_to_num(spans.hi - starts, nan=window_s), window_s)
    flat = n_acc * window_s / length
    rel = counts / (flat[:, None] + 1.0)
    known = ~np.isnan(starts) & (n_acc > 0)
    if not known.any():
        return np.zeros(n_s)
    # streams without a creator stand alone
    label = np.where(
        pd.isna(creators), "\0stream:" + arr.stream_ids.astype(str), creators.astype(str)
    )
    med = pd.DataFrame(rel[known]).groupby(label[known]).median()
    lead = np.cumprod(med.to_numpy() >= surge_level, axis=1).sum(axis=1)
    if who is not None:  # followers of a creator with a recurring surge: the whole grace
        lead = np.where(lead > 0, n_bins, 0)
    grace_of = pd.Series(np.minimum(lead * window_s, max_grace_s), index=med.index)
    grace = grace_of.reindex(label).to_numpy(dtype=np.float64)
    return np.nan_to_num(grace, nan=0.0)


def _excused(
    arr: _Arrivals, spans: _Spans, graces: np.ndarray | None, who: np.ndarray | None
) -> np.ndarray:
    """Per arrival: set aside as part of its creator's start surge."""
    if graces is None or spans.start is None:
        return np.zeros(arr.t.size, dtype=bool)
    since = arr.t - spans.start[arr.stream]
    out = since < graces[arr.stream]  # unknown starts (NaN) are kept
    return out if who is None else out & who


# --------------------------------------------------------------------------- buckets


@dataclass(frozen=True)
class _Buckets:
    """Bucket membership: one entry per (bucket, account), sorted by bucket then account.

    Buckets are ordered by width, stream, kind, grid and window, so each width's
    buckets (and entries) are contiguous: ``width_ptr[i]:width_ptr[i + 1]``.
    """

    bucket: np.ndarray  # bucket number of each entry
    acct: np.ndarray
    stream: np.ndarray  # stream of the entry's bucket
    start: np.ndarray  # per bucket: first entry
    size: np.ndarray  # per bucket: number of accounts
    bucket_stream: np.ndarray  # per bucket: stream
    bucket_t0: np.ndarray  # per bucket: window start (seconds)
    bucket_grid: np.ndarray  # per bucket: grid (0 or 1)
    bucket_width: np.ndarray  # per bucket: index into ``widths``
    widths: np.ndarray  # the window widths (seconds)
    width_ptr: np.ndarray  # per width: first bucket (and the number of buckets last)
    entry_arrival: np.ndarray  # per entry: index of one arrival behind it (the earliest)


def _buckets(
    arr: _Arrivals,
    *,
    widths: np.ndarray | float,
    by_kind: bool,
    excused: np.ndarray | None = None,
) -> _Buckets:
    """Bucket membership of the arrivals (not ``excused``) at each width and grid.

    The arrivals are ordered once by (stream, kind, time), and that order once more
    by account (stable). In the first order a window number only grows within a
    (stream, kind) run, so the buckets of each width and grid are numbered by one
    pass, in (stream, kind, window) order; a counting sort of the account-ordered
    arrivals by that number then lists each bucket's accounts in order, the
    earliest arrival of an account first: the order (width, stream, kind, grid,
    window, account, time) without sorting millions of wide keys.
    """
    ws = np.atleast_1d(np.asarray(widths, dtype=np.float64))
    base = np.arange(arr.t.size) if excused is None else np.flatnonzero(~excused)
    kind_all = arr.kind if by_kind else np.zeros(arr.t.size, dtype=np.int64)
    base = base[_order(arr.stream[base], kind_all[base], arr.t[base])]
    n = base.size
    t_b = arr.t[base]
    s_b, k_b = arr.stream[base], kind_all[base]
    new_run = np.ones(n, dtype=bool)
    if n:
        new_run[1:] = (s_b[1:] != s_b[:-1]) | (k_b[1:] != k_b[:-1])
    run_of = np.cumsum(new_run) - 1
    n_run = int(run_of[-1]) + 1 if n else 0
    by_acct = _order(arr.acct[base])  # positions in ``base`` order, by account (stable)
    keys, b_final, b_t0, b_stream, b_grid, b_wid = ([] for _ in range(6))
    total = 0
    for wi, w in enumerate(ws):
        grids = []
        for offset in (0.0, w / 2.0):
            win = np.floor((t_b - offset) / w).astype(np.int64)
            new_b = new_run.copy()
            if n:
                new_b[1:] |= win[1:] != win[:-1]
            heads = np.flatnonzero(new_b)
            per_run = np.bincount(run_of[heads], minlength=n_run)
            grids.append((win, np.cumsum(new_b) - 1, heads, per_run))
        # final number of a bucket within the width, in (stream, kind, grid, window)
        # order: the buckets of both grids in the runs before, the first grid's in its
        # own run before the second grid's
        shift = (
            np.cumsum(grids[1][3]) - grids[1][3],  # first grid: second grid's, runs before
            np.cumsum(grids[0][3]),  # second grid: first grid's, runs up to its own
        )
        for g, (offset, (win, seq, heads, _)) in enumerate(zip((0.0, w / 2.0), grids, strict=True)):
            final = total + np.arange(heads.size) + shift[g][run_of[heads]]
            keys.append(final[seq[by_acct]])
            b_final.append(final)
            b_t0.append(np.floor(win[heads] * w + offset).astype(np.int64))
            b_stream.append(s_b[heads])
            b_grid.append(np.full(heads.size, g, dtype=np.int64))
            b_wid.append(np.full(heads.size, wi, dtype=np.int64))
        total += grids[0][2].size + grids[1][2].size
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    del keys
    o = _dense_argsort(key, total)  # by bucket, then account, then time (stable)
    sq = key[o]
    del key
    pos = np.tile(by_acct, 2 * ws.size)[o]
    del o
    acct = arr.acct[base[pos]]
    keep = np.ones(pos.size, dtype=bool)
    if pos.size:  # one entry per (bucket, account): its earliest arrival
        keep[1:] = (sq[1:] != sq[:-1]) | (acct[1:] != acct[:-1])
    sq, acct, idx = sq[keep], acct[keep], base[pos[keep]]
    del pos, keep
    size = np.bincount(sq, minlength=total).astype(np.int64)
    at = np.concatenate(b_final) if b_final else np.zeros(0, dtype=np.int64)
    bucket_t0, bucket_stream, bucket_grid, bucket_width = (
        np.zeros(total, dtype=np.int64) for _ in range(4)
    )
    for out, parts in (
        (bucket_t0, b_t0),
        (bucket_stream, b_stream),
        (bucket_grid, b_grid),
        (bucket_width, b_wid),
    ):
        if parts:
            out[at] = np.concatenate(parts)
    starts = np.r_[0, np.cumsum(size)[:-1]].astype(np.int64) if total else size
    width_ptr = np.searchsorted(bucket_width, np.arange(ws.size + 1), side="left")
    return _Buckets(
        bucket=sq,
        acct=acct,
        stream=arr.stream[idx],
        start=starts,
        size=size,
        bucket_stream=bucket_stream,
        bucket_t0=bucket_t0,
        bucket_grid=bucket_grid,
        bucket_width=bucket_width,
        widths=ws,
        width_ptr=width_ptr.astype(np.int64),
        entry_arrival=idx,
    )


def _width_slice(bk: _Buckets, i: int) -> _Buckets:
    """The buckets of width ``i`` alone, renumbered from 0."""
    lo, hi = int(bk.width_ptr[i]), int(bk.width_ptr[i + 1])
    e_lo = int(bk.start[lo]) if lo < bk.size.size else bk.acct.size
    e_hi = int(bk.start[hi]) if hi < bk.size.size else bk.acct.size
    return _Buckets(
        bucket=bk.bucket[e_lo:e_hi] - lo,
        acct=bk.acct[e_lo:e_hi],
        stream=bk.stream[e_lo:e_hi],
        start=bk.start[lo:hi] - e_lo,
        size=bk.size[lo:hi],
        bucket_stream=bk.bucket_stream[lo:hi],
        bucket_t0=bk.bucket_t0[lo:hi],
        bucket_grid=bk.bucket_grid[lo:hi],
        bucket_width=np.zeros(hi - lo, dtype=np.int64),
        widths=bk.widths[i : i + 1],
        width_ptr=np.array([0, hi - lo], dtype=np.int64),
        entry_arrival=bk.entry_arrival[e_lo:e_hi],
    )


def _surprising(
    bk: _Buckets, spans: _Spans, n_stream: int, *, min_surprise: float, max_share: float
) -> np.ndarray:
    """Per bucket: whether it holds more accounts than its stream's nearby windows make
    likely (the Poisson tail at least ``10**-min_surprise``), on a stream at least
    ``1 / max_share`` windows long (a window that is much of a stream is no moment
    of it, and has no neighbours to compare with).

    The expected count is the mean of the two windows on either side in the same
    grid (those within the stream), at least the stream's other accounts spread
    flat over it: neighbours follow an ordinary arrival curve (a stream's early
    peak), and leave the bucket's own accounts out, so a farm's burst cannot
    make itself look ordinary.
    """
    from scipy.stats import poisson

    nb = bk.size.size
    if nb == 0:
        return np.zeros(0, dtype=bool)
    w = bk.widths[bk.bucket_width]
    off = np.where(bk.bucket_grid == 1, w / 2.0, 0.0)
    win = np.round((bk.bucket_t0 - off) / w).astype(np.int64)
    lane_first = np.r_[
        True,
        (bk.bucket_width[1:] != bk.bucket_width[:-1])
        | (bk.bucket_stream[1:] != bk.bucket_stream[:-1])
        | (bk.bucket_grid[1:] != bk.bucket_grid[:-1])
        | (win[1:] <= win[:-1]),
    ]
    lane = np.cumsum(lane_first) - 1
    w0 = int(win.min()) - 3
    wide = np.int64(int(win.max()) - w0 + 4)
    key = lane * wide + (win - w0)
    s = bk.bucket_stream
    lo_w = np.floor((spans.lo[s] - off) / w)
    hi_w = np.floor((spans.hi[s] - off) / w)
    total = np.zeros(nb)
    seen = np.zeros(nb)
    for d in (-2, -1, 1, 2):
        nw = win + d
        inside = (nw >= lo_w) & (nw <= hi_w)
        q = lane * wide + (nw - w0)
        at = np.minimum(np.searchsorted(key, q), nb - 1)
        c = np.where(key[at] == q, bk.size[at], 0)
        total += np.where(inside, c, 0)
        seen += inside
    local = np.where(seen > 0, total / np.maximum(seen, 1), 0.0)
    # the stream's audience (distinct accounts in its buckets of one width and grid)
    first_lane = (bk.bucket_width == 0) & (bk.bucket_grid == 0)
    e = first_lane[bk.bucket]
    ns = np.int64(max(n_stream, 1))
    aud = np.bincount(_unique(bk.acct[e] * ns + bk.stream[e]) % ns, minlength=n_stream)
    flat = np.maximum(aud[s] - bk.size, 0) * w / spans.length[s]
    lam = np.maximum(np.maximum(local, flat), 1e-6)
    with np.errstate(divide="ignore"):
        surprise = -poisson.logsf(bk.size - 1, lam) / np.log(10.0)
    long_enough = w <= max_share * spans.length[s] if max_share > 0 else np.ones(nb, dtype=bool)
    return (bk.size >= 2) & (surprise >= min_surprise) & long_enough


def _bucket_subset(bk: _Buckets, keep: np.ndarray) -> _Buckets:
    """The buckets of ``keep`` (a mask over buckets) alone, renumbered from 0."""
    kb = np.flatnonzero(keep)
    e = keep[bk.bucket]
    new = np.full(bk.size.size, -1, dtype=np.int64)
    new[kb] = np.arange(kb.size)
    size = bk.size[kb]
    return _Buckets(
        bucket=new[bk.bucket[e]],
        acct=bk.acct[e],
        stream=bk.stream[e],
        start=np.r_[0, np.cumsum(size)[:-1]].astype(np.int64) if kb.size else kb,
        size=size,
        bucket_stream=bk.bucket_stream[kb],
        bucket_t0=bk.bucket_t0[kb],
        bucket_grid=bk.bucket_grid[kb],
        bucket_width=bk.bucket_width[kb],
        widths=bk.widths,
        width_ptr=np.searchsorted(bk.bucket_width[kb], np.arange(bk.widths.size + 1)).astype(
            np.int64
        ),
        entry_arrival=bk.entry_arrival[e],
    )


# --------------------------------------------------------------------------- pairs


def _sampled(bk: _Buckets, keep: np.ndarray, prio: np.ndarray, cap: int) -> np.ndarray:
    """Entries kept for the pair count: those of ``keep`` (a mask over entries) and, in a
    bucket with more than ``cap`` of them, the ``cap`` of lowest ``prio`` (the account's
    fixed rank, so every crowded bucket keeps the same accounts where it can)."""
    out = keep.copy()
    nb = bk.size.size
    if nb == 0:
        return out
    entry_bucket = bk.bucket
    n_keep = np.bincount(entry_bucket[keep], minlength=nb)
    crowded = n_keep > cap
    if not crowded.any():
        return out
    e = np.flatnonzero(keep & crowded[entry_bucket])
    o = _order(entry_bucket[e], prio[bk.acct[e]])
    e = e[o]
    b = entry_bucket[e]
    first = np.r_[0, np.flatnonzero(b[1:] != b[:-1]) + 1]
    pos = np.arange(e.size) - np.repeat(first, np.diff(np.r_[first, e.size]))
    out[e[pos >= cap]] = False
    return out


@dataclass(frozen=True)
class _CodePairs:
    a: np.ndarray
    b: np.ndarray
    stream: np.ndarray
    bucket: np.ndarray
    bucket_size: int


def _code_pairs(bk: _Buckets, arr: _Arrivals, *, max_bucket: int) -> Iterator[_CodePairs]:
    """All pairs of accounts sharing a bucket, by bucket size (account a < account b);
    a bucket of more than ``max_bucket`` accounts gives the pairs of its sample."""
    kept = _sampled(bk, np.ones(bk.acct.size, dtype=bool), arr.prio, max_bucket)
    acct = bk.acct[kept]
    bucket = bk.bucket[kept]
    nb = bk.size.size
    sizes = np.bincount(bucket, minlength=nb)
    start = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
    for k in np.unique(sizes):
        k = int(k)
        if k < 2:
            continue
        sel = np.flatnonzero(sizes == k)
        iu, ju = np.triu_indices(k, 1)
        per = iu.size
        step = max(1, _PAIR_CHUNK // per)
        for lo in range(0, sel.size, step):
            chunk = sel[lo : lo + step]
            base = start[chunk][:, None]
            a = acct[(base + iu[None, :]).ravel()]
            b = acct[(base + ju[None, :]).ravel()]
            rep = np.repeat(chunk, per)
            yield _CodePairs(a=a, b=b, stream=bk.bucket_stream[rep], bucket=rep, bucket_size=k)


@dataclass(frozen=True)
class PairBatch:
    """Pairs of accounts that co-acted in buckets of one size.

    One row per (pair, bucket): ``account_a < account_b``; ``stream_id`` is the
    bucket's stream and ``bucket_size`` the number of accounts whose pairs the
    bucket gave (its accounts, or its sample when it had more than ``max_bucket``).
    """

    bucket_size: int
    pairs: pd.DataFrame


def lockstep_pairs(
    engagements: pd.DataFrame,
    *,
    window_s: float = 60.0,
    by_kind: bool = False,
    kinds: tuple[str, ...] | None = None,
    max_bucket: int = 300,
) -> Iterator[PairBatch]:
    """Yield the co-acting account pairs of every (stream, window) bucket, batch by batch.

    The iterator behind the pair count of :func:`detect_lockstep`, at one window
    width: each batch holds the pairs of buckets of one size (split further when
    large), so a caller can count, sample or stop early without materialising
    every pair.

    Parameters
    ----------
    engagements : pandas.DataFrame
        Normalised engagements (``account_id``, ``stream_id``, ``kind``, ``ts``).
    window_s : float
        Window length in seconds; windows are laid on two grids staggered by half.
    by_kind : bool
        Bucket each kind of action separately (default: all kinds together).
    kinds : tuple of str, optional
        Only these kinds of engagement (default: all).
    max_bucket : int
        A bucket with more accounts gives the pairs of its ``max_bucket``
        accounts of lowest hash rank (the same accounts in every crowded bucket).

    Yields
    ------
    PairBatch
    """
    _check_columns(engagements, "engagements", ("account_id", "stream_id", "kind", "ts"))
    _check_params(window_s=window_s, max_bucket=max_bucket)
    if engagements.empty:
        return
    arr = _arrivals(engagements, kinds)
    bk = _buckets(arr, widths=window_s, by_kind=by_kind)
    for cp in _code_pairs(bk, arr, max_bucket=max_bucket):
        yield PairBatch(
            bucket_size=cp.bucket_size,
            pairs=pd.DataFrame(
                {
                    "account_a": arr.account_ids[cp.a],
                    "account_b": arr.account_ids[cp.b],
                    "stream_id": arr.stream_ids[cp.stream],
                    "bucket_size": cp.bucket_size,
                }
            ),
        )


def _reach_kernel(
    acct_ptr: np.ndarray,
    acct_bucket: np.ndarray,
    b_size: np.ndarray,
    b_stream: np.ndarray,
    b_t0: np.ndarray,
    gap: float,
    cap: int,
) -> np.ndarray:
    """The most bursts each account could share with any other account (up to ``cap``).

    A pair's shared buckets are a subset of each one's buckets, and its
    bursts start at buckets more than ``gap`` seconds apart on one stream; so
    an account shares at most as many bursts as the largest set of its
    buckets (of two accounts or more) that lie more than ``gap`` apart per
    stream, found greedily in (stream, time) order. Written in the
    numba-compatible subset of Python.
    """
    n = acct_ptr.size - 1
    out = np.zeros(n, dtype=np.int64)
    for a in range(n):
        c = 0
        last_s = -1
        last_t = 0
        for e in range(acct_ptr[a], acct_ptr[a + 1]):
            j = acct_bucket[e]
            if b_size[j] < 2:
                continue
            if b_stream[j] != last_s or b_t0[j] - last_t > gap:
                c += 1
                last_s = b_stream[j]
                last_t = b_t0[j]
                if c >= cap:
                    break
        out[a] = c
    return out


def _pair_kernel(
    acct_ptr: np.ndarray,
    acct_bucket: np.ndarray,
    m_start: np.ndarray,
    m_acct: np.ndarray,
    b_stream: np.ndarray,
    b_t0: np.ndarray,
    stream_ptr: np.ndarray,
    acct_stream: np.ndarray,
    st: np.ndarray,
    a_lo: int,
    a_hi: int,
    min_bursts: int,
    gap: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Co-burst counts of the pairs (a, b), ``a_lo <= a < a_hi``, ``a < b``.

    Row by row (Gustavson's sparse product of the account x bucket matrix with
    its transpose): for account ``a`` its buckets are walked in (stream, time)
    order and every later account ``b`` met in them updates a dense counter,
    so no pair list is ever materialised and only pairs with at least
    ``min_bursts`` bursts are returned: (a, b, bursts, burst streams, streams
    both engaged with). The members of bucket ``j`` walked are
    ``m_acct[m_start[j]:m_start[j + 1]]`` (sorted: the kept entries). ``st``
    holds four counters per account side by side (one cache line): bursts,
    burst streams, last shared stream (-1: none yet) and last shared window
    start (``b_t0`` is relative, so the counters fit in int32). Written in the
    numba-compatible subset of Python.
    """
    n = acct_ptr.size - 1
    touched = np.empty(n, dtype=np.int64)
    cap = 1024
    oa = np.empty(cap, dtype=np.int64)
    ob = np.empty(cap, dtype=np.int64)
    oc = np.empty(cap, dtype=np.int64)
    os_ = np.empty(cap, dtype=np.int64)
    ou = np.empty(cap, dtype=np.int64)
    m = 0
    for a in range(a_lo, a_hi):
        nt = 0
        for e in range(acct_ptr[a], acct_ptr[a + 1]):
            j = acct_bucket[e]
            lo = m_start[j]
            if m_start[j + 1] - lo < 2:
                continue
            s = b_stream[j]
            t = b_t0[j]
            for x in range(m_start[j + 1] - 1, lo - 1, -1):
                b = m_acct[x]
                if b <= a:
                    break
                if st[b, 0] == 0:
                    touched[nt] = b
                    nt += 1
                    st[b, 0] = 1
                    st[b, 1] = 1
                elif st[b, 2] != s:
                    st[b, 0] += 1
                    st[b, 1] += 1
                elif t - st[b, 3] > gap:
                    st[b, 0] += 1
                st[b, 2] = s
                st[b, 3] = t
        for i in range(nt):
            b = touched[i]
            if st[b, 0] >= min_bursts:
                if m == cap:
                    cap *= 2
                    oa2 = np.empty(cap, dtype=np.int64)
                    ob2 = np.empty(cap, dtype=np.int64)
                    oc2 = np.empty(cap, dtype=np.int64)
                    os2 = np.empty(cap, dtype=np.int64)
                    ou2 = np.empty(cap, dtype=np.int64)
                    oa2[:m] = oa[:m]
                    ob2[:m] = ob[:m]
                    oc2[:m] = oc[:m]
                    os2[:m] = os_[:m]
                    ou2[:m] = ou[:m]
                    oa, ob, oc, os_, ou = oa2, ob2, oc2, os2, ou2
                # streams both engaged with: merge of two sorted stream lists
                p, pe = stream_ptr[a], stream_ptr[a + 1]
                q, qe = stream_ptr[b], stream_ptr[b + 1]
                both = 0
                while p < pe and q < qe:
                    if acct_stream[p] < acct_stream[q]:
                        p += 1
                    elif acct_stream[p] > acct_stream[q]:
                        q += 1
                    else:
                        both += 1
                        p += 1
                        q += 1
                oa[m] = a
                ob[m] = b
                oc[m] = st[b, 0]
                os_[m] = st[b, 1]
                ou[m] = both
                m += 1
            st[b, 0] = 0
            st[b, 1] = 0
            st[b, 2] = -1
    return oa[:m], ob[:m], oc[:m], os_[:m], ou[:m]


_PairCounter = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
"""What :func:`_sync_counts` is: ``(bk, arr, *, max_bucket, min_bursts, gap)`` to
(a, b, bursts, burst streams, streams both engaged with), ordered by (a, b), on the
buckets of one width."""


def _pair_entries(
    bk: _Buckets, arr: _Arrivals, *, max_bucket: int, min_bursts: int, gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """The entries the pair count walks, and the accounts that can reach ``min_bursts``.

    An account whose buckets cannot hold ``min_bursts`` bursts with any other
    account (see :func:`_reach_kernel`) is left out; of the others, a bucket
    keeps at most ``max_bucket`` (:func:`_sampled`). Returns the mask of kept
    entries and the mask of able accounts. Both engines count on these.
    """
    kept, able, _ = _walked_entries(bk, arr, max_bucket=max_bucket, min_bursts=min_bursts, gap=gap)
    return kept, able


def _walked_entries(
    bk: _Buckets, arr: _Arrivals, *, max_bucket: int, min_bursts: int, gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_pair_entries`, and the order of all entries by (account, stream, window
    start), which the pair count reuses for the kept ones."""
    n_acct = arr.account_ids.size
    order = _order(bk.acct, bk.stream, bk.bucket_t0[bk.bucket])
    acct_bucket = bk.bucket[order]
    acct_ptr = np.zeros(n_acct + 1, dtype=np.int64)
    np.cumsum(np.bincount(bk.acct, minlength=n_acct), out=acct_ptr[1:])
    reach = _compiled(_reach_kernel) or _reach_kernel
    able = np.asarray(
        reach(
            acct_ptr,
            acct_bucket,
            bk.size,
            bk.bucket_stream,
            bk.bucket_t0,
            float(gap),
            int(min_bursts),
        )
        >= min_bursts,
        dtype=bool,
    )
    kept = _sampled(bk, able[bk.acct], arr.prio, max_bucket)
    return kept, able, order


def _sync_counts(
    bk: _Buckets,
    arr: _Arrivals,
    *,
    max_bucket: int,
    min_bursts: int,
    gap: float,
    workers: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Co-action counts of account pairs with at least ``min_bursts`` shared bursts.

    Returns (a, b, bursts, burst streams, streams both engaged with), ``a < b``,
    ordered by (a, b). ``bursts`` counts distinct bursts (a stream and a
    moment: shared buckets of one stream less than ``gap`` seconds apart are
    one burst). The entries walked are :func:`_pair_entries`'. The account
    range is split by work among ``workers`` threads.
    """
    n_acct = arr.account_ids.size
    e = np.zeros(0, dtype=np.int64)
    if bk.acct.size == 0:
        return e, e, e, e, e
    nb = bk.size.size
    kept, _, order = _walked_entries(bk, arr, max_bucket=max_bucket, min_bursts=min_bursts, gap=gap)
    if not kept.any():
        return e, e, e, e, e
    kernel = _compiled(_pair_kernel) or _pair_kernel
    m_acct = bk.acct[kept]
    m_bucket = bk.bucket[kept]
    m_start = np.zeros(nb + 1, dtype=np.int64)
    np.cumsum(np.bincount(m_bucket, minlength=nb), out=m_start[1:])
    # each account's kept buckets in (stream, time) order: the kept entries of the
    # order of all entries by (account, stream, window start)
    acct_bucket = bk.bucket[order[kept[order]]]
    acct_ptr = np.zeros(n_acct + 1, dtype=np.int64)
    np.cumsum(np.bincount(m_acct, minlength=n_acct), out=acct_ptr[1:])
    n_s = np.int64(max(arr.stream_ids.size, 1))
    as_key = arr.acct_streams
    acct_stream = as_key % n_s
    stream_ptr = np.zeros(n_acct + 1, dtype=np.int64)
    np.cumsum(np.bincount(as_key // n_s, minlength=n_acct), out=stream_ptr[1:])
    # split accounts so that each part has about the same pair work
    m_size = np.diff(m_start)
    work = np.cumsum(np.bincount(m_acct, weights=m_size[m_bucket], minlength=n_acct))
    parts = max(1, int(workers)) * 4
    cuts = np.searchsorted(work, np.linspace(0, work[-1], parts + 1)[1:-1])
    bounds = np.unique(np.r_[0, cuts, n_acct]).astype(np.int64)
    t_rel = bk.bucket_t0 - bk.bucket_t0.min()
    small = int(t_rel.max()) < 2**31 - 1 and arr.stream_ids.size < 2**31 - 1
    st_type = np.int32 if small else np.int64
    args = (
        acct_ptr,
        acct_bucket,
        m_start,
        m_acct,
        bk.bucket_stream.astype(st_type),
        t_rel.astype(st_type),
        stream_ptr,
        acct_stream,
    )

    def run(i: int) -> tuple[np.ndarray, ...]:
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        st = np.zeros((n_acct, 4), dtype=st_type)
        st[:, 2] = -1
        return kernel(*args, st, lo, hi, int(min_bursts), float(gap))

    idx = range(bounds.size - 1)
    if workers > 1 and bounds.size > 2:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=int(workers)) as pool:
            outs = list(pool.map(run, idx))
    else:
        outs = [run(i) for i in idx]
    a, b, c, st, both = (np.concatenate([o[i] for o in outs]) for i in range(5))
    o = _order(a, b)
    return a[o], b[o], c[o], st[o], both[o]


# --------------------------------------------------------------------------- groups


def _burst_starts(seg: np.ndarray, t0: np.ndarray, end: np.ndarray) -> np.ndarray:
    """First interval of each burst: intervals ``[t0, end)`` sorted by (``seg``, ``t0``);
    an interval starts a burst where the segment changes or it begins after every
    earlier interval of its segment has ended."""
    first = np.ones(seg.size, dtype=bool)
    if seg.size < 2:
        return first
    seg_id = np.cumsum(np.r_[True, seg[1:] != seg[:-1]]) - 1
    base = min(int(t0.min()), int(end.min()))
    span = np.int64(int(end.max()) - base + 1)
    run = np.maximum.accumulate(seg_id * span + (end - base))
    prev_end = run[:-1] - seg_id[1:] * span + base  # the running end before each interval
    first[1:] = (seg[1:] != seg[:-1]) | (t0[1:] > prev_end)
    return first


@dataclass(frozen=True)
class _GroupStats:
    """Group bursts of every candidate group at once (entries of grouped accounts)."""

    quorum: np.ndarray  # per group: least members in a bucket for a group burst
    n_bursts: np.ndarray  # per group: distinct group bursts
    joined: np.ndarray  # per account: group bursts it joined
    joined_streams: np.ndarray  # per account: streams on which it joined a group burst
    key: np.ndarray  # sorted (group * n_buckets + bucket) of buckets the groups touched
    count: np.ndarray  # members of the group in that bucket
    sync_entry: np.ndarray  # entries in group bursts, ordered by group
    sync_ptr: np.ndarray  # per group: slice of sync_entry
    burst_group: np.ndarray  # per burst: group (bursts ordered by group, stream, time)
    burst_stream: np.ndarray  # per burst: stream
    burst_t0: np.ndarray  # per burst: start of its first bucket
    burst_t1: np.ndarray  # per burst: end of its last bucket
    burst_lo: np.ndarray  # per burst: start of the members' arrival span in its buckets
    burst_hi: np.ndarray  # per burst: end of that span
    burst_first: np.ndarray  # per burst: first member arrival in its buckets
    burst_last: np.ndarray  # per burst: last member arrival in its buckets


def _segmented_cummax(seg: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Running maximum of ``value`` within runs of equal ``seg`` (sorted by ``seg``)."""
    if seg.size == 0:
        return value.copy()
    seg_id = np.cumsum(np.r_[True, seg[1:] != seg[:-1]]) - 1
    base = int(value.min())
    span = np.int64(int(value.max()) - base + 1)
    return np.maximum.accumulate(seg_id * span + (value - base)) - seg_id * span + base


def _finest_first(
    bk: _Buckets, seg: np.ndarray, bucket: np.ndarray, candidate: np.ndarray
) -> np.ndarray:
    """Of the ``candidate`` buckets (``bucket``, in segments ``seg``: a group and a
    stream), those that overlap no candidate of a finer width in their segment: a
    moment is described by the finest window that holds it, and a wide window over
    two nearby bursts does not make one of them."""
    keep = np.zeros(bucket.size, dtype=bool)
    wid = bk.bucket_width[bucket]
    t0 = bk.bucket_t0[bucket]
    end = t0 + np.ceil(bk.widths[wid]).astype(np.int64)
    if not candidate.any():
        return keep
    base = int(t0[candidate].min())
    span = np.int64(int(end[candidate].max()) - base + 2)
    for wi in range(bk.widths.size):
        cand = np.flatnonzero(candidate & (wid == wi))
        kept = np.flatnonzero(keep)
        if cand.size == 0:
            continue
        if kept.size == 0:
            keep[cand] = True
            continue
        ko = kept[_order(seg[kept], t0[kept])]
        ks = seg[ko]
        run = _segmented_cummax(ks, end[ko])
        kkey = ks * span + (t0[ko] - base)
        j = np.searchsorted(kkey, seg[cand] * span + (end[cand] - base), side="left") - 1
        jj = np.maximum(j, 0)
        overlap = (j >= 0) & (ks[jj] == seg[cand]) & (run[jj] > t0[cand])
        keep[cand[~overlap]] = True
    return keep


def _group_bursts(
    bk: _Buckets,
    arr: _Arrivals,
    acct_group: np.ndarray,
    n_groups: int,
    *,
    burst_quorum: float,
    gsize: np.ndarray | None = None,
) -> _GroupStats:
    """Buckets (of any width) in which a quorum of a group co-acted, merged into bursts
    (overlapping buckets of one group and stream), for all groups. The quorum is
    taken of ``gsize`` (default: the groups' sizes)."""
    nb_ = bk.size.size
    n_b = np.int64(max(nb_, 1))
    if gsize is None:
        gsize = np.bincount(acct_group[acct_group >= 0], minlength=n_groups)
    # at least three members (two in a group of two), and burst_quorum of the group
    quorum = np.maximum(np.minimum(3, gsize), np.ceil(burst_quorum * gsize - 1e-9))
    quorum = np.maximum(quorum, 1).astype(np.int64)
    eg = acct_group[bk.acct]
    ent = np.flatnonzero(eg >= 0)
    key_all = eg[ent] * n_b + bk.bucket[ent]
    key, inv, count = _unique_inverse(key_all)
    k_group = key // n_b
    k_bucket = key % n_b
    is_burst = count >= quorum[k_group]
    n_st = np.int64(max(arr.stream_ids.size, 1))
    is_burst &= _finest_first(bk, k_group * n_st + bk.bucket_stream[k_bucket], k_bucket, is_burst)
    # merge overlapping burst buckets of one group and stream
    bb = np.flatnonzero(is_burst)
    b_of = k_bucket[bb]
    t0 = bk.bucket_t0[b_of]
    end = t0 + np.ceil(bk.widths[bk.bucket_width[b_of]]).astype(np.int64)
    seg = k_group[bb] * n_st + bk.bucket_stream[b_of]
    o = _order(seg, t0)
    bb, seg, t0, end = bb[o], seg[o], t0[o], end[o]
    first = _burst_starts(seg, t0, end)
    burst_id = np.full(key.size, -1, dtype=np.int64)
    burst_id[bb] = np.cumsum(first) - 1
    n_burst = int(first.sum())
    lo_idx = np.flatnonzero(first)
    burst_group = seg[lo_idx] // n_st
    burst_stream = seg[lo_idx] % n_st
    burst_t0 = t0[lo_idx]
    burst_t1 = np.maximum.reduceat(end, lo_idx) if lo_idx.size else end[:0]
    n_bursts = np.bincount(burst_group, minlength=n_groups)
    # entries in group bursts, and what each account joined
    in_burst = is_burst[inv]
    sync = ent[in_burst]
    sync_burst = burst_id[inv[in_burst]]
    # the members' arrival span of each burst: its 10% to 90% quantiles, widened by an
    # eighth of their distance on each side (a straggler does not stretch it)
    n_arr = np.int64(max(arr.t.size, 1))
    ba = _unique(sync_burst * n_arr + bk.entry_arrival[sync])
    b_, t_ = ba // n_arr, arr.t[ba % n_arr]
    o = _order(b_, t_)
    b_, t_ = b_[o], t_[o]
    b_first = np.searchsorted(b_, np.arange(n_burst), side="left")
    b_n = np.searchsorted(b_, np.arange(n_burst), side="right") - b_first
    lo_t = t_[b_first + np.floor(0.1 * (b_n - 1)).astype(np.int64)]
    hi_t = t_[b_first + np.ceil(0.9 * (b_n - 1)).astype(np.int64)]
    pad = (hi_t - lo_t) // 8
    burst_lo, burst_hi = lo_t - pad, hi_t + pad
    burst_first = t_[b_first]
    burst_last = t_[b_first + b_n - 1]
    n_acct = acct_group.size
    n_bid = np.int64(max(n_burst, 1))
    ab = _unique(bk.acct[sync] * n_bid + sync_burst)
    joined = np.bincount(ab // n_bid, minlength=n_acct)
    as_ = _unique(bk.acct[sync] * n_st + bk.stream[sync])
    joined_streams = np.bincount(as_ // n_st, minlength=n_acct)
    so = _order(eg[sync])
    sync = sync[so]
    sync_ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(eg[sync], minlength=n_groups), out=sync_ptr[1:])
    return _GroupStats(
        quorum=quorum,
        n_bursts=n_bursts,
        joined=joined,
        joined_streams=joined_streams,
        key=key,
        count=count,
        sync_entry=sync,
        sync_ptr=sync_ptr,
        burst_group=burst_group,
        burst_stream=burst_stream,
        burst_t0=burst_t0,
        burst_t1=burst_t1,
        burst_lo=burst_lo,
        burst_hi=burst_hi,
        burst_first=burst_first,
        burst_last=burst_last,
    )


def _merge_fragments(gst: _GroupStats, n_groups: int, *, min_bursts: int) -> np.ndarray:
    """Group of each group after merging fragments of one farm: groups whose bursts
    coincide (one stream, overlapping windows) on at least half of the bursts of one of
    them, and on at least ``min_bursts`` bursts, are one. Returns new group numbers."""
    if gst.burst_group.size == 0 or n_groups < 2:
        return np.arange(n_groups, dtype=np.int64)
    b = pd.DataFrame(
        {
            "g": gst.burst_group,
            "s": gst.burst_stream,
            "t0": gst.burst_t0,
            "t1": gst.burst_t1,
        }
    )
    b["i"] = np.arange(len(b))
    pairs = b.merge(b, on="s", suffixes=("", "_o"))
    pairs = pairs[
        (pairs["g"] != pairs["g_o"]) & (pairs["t0"] < pairs["t1_o"]) & (pairs["t0_o"] < pairs["t1"])
    ]
    if pairs.empty:
        return np.arange(n_groups, dtype=np.int64)
    # bursts of g that coincide with some burst of h
    sizes = pairs.drop_duplicates(["i", "g_o"]).groupby(["g", "g_o"]).size()
    co: pd.DataFrame = sizes.reset_index(name="n")
    nb = np.bincount(gst.burst_group, minlength=n_groups)
    co["share"] = co["n"] / nb[co["g"].to_numpy()]
    both = co.merge(co, left_on=["g", "g_o"], right_on=["g_o", "g"], suffixes=("", "_r"))
    ok = (np.minimum(both["n"], both["n_r"]) >= min_bursts) & (
        np.maximum(both["share"], both["share_r"]) >= 0.5
    )
    both = both[ok]
    if both.empty:
        return np.arange(n_groups, dtype=np.int64)
    comp = _components(
        n_groups, both["g"].to_numpy(dtype=np.int64), both["g_o"].to_numpy(dtype=np.int64)
    )
    return np.asarray(comp, dtype=np.int64)


def _stream_index(arr: _Arrivals) -> tuple[np.ndarray, np.ndarray, np.int64]:
    """Arrivals ordered by (stream, time): the order and its sort keys (``stream * span +
    seconds since the first arrival``), and ``span``."""
    o = _order(arr.stream, arr.t)
    t_min = int(arr.t.min()) if arr.t.size else 0
    span = np.int64((int(arr.t.max()) - t_min + 2) if arr.t.size else 2)
    return o, arr.stream[o] * span + (arr.t[o] - t_min), span


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[lo, hi)``: the range of each position and the positions, flattened."""
    n = np.maximum(hi - lo, 0)
    which = np.repeat(np.arange(n.size), n)
    pos = np.repeat(lo, n) + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    return which, pos


@dataclass(frozen=True)
class _Landing:
    """Who landed in each group's bursts, and how often chance would have them do so.

    One row per (group, account present on one of the group's burst streams):
    ``k`` bursts of the group the account landed in (arrived on the burst's
    stream within the members' arrival span), ``lam`` the bursts it would land
    in by chance. Per group and level ``k`` (columns): ``x`` accounts that
    landed in ``k`` bursts or more, ``mu`` the number chance predicts; ``k_top``
    per group: the most bursts an account landed in.
    """

    group: np.ndarray
    acct: np.ndarray
    k: np.ndarray
    lam: np.ndarray
    x: np.ndarray
    mu: np.ndarray
    k_top: np.ndarray


@dataclass(frozen=True)
class _Audience:
    """Who arrived on each stream, indexed once for :func:`_landing` (which runs twice).

    ``order`` and ``key``: arrivals ordered by (stream, time) and their keys
    (:func:`_stream_index`); ``st_of``/``acct_of``: the distinct (stream, account)
    pairs ordered by stream (then account); ``unexcused``: whether the pair has an
    arrival not excused at a start.
    """

    order: np.ndarray
    key: np.ndarray
    span: np.int64
    t_min: int
    st_of: np.ndarray
    acct_of: np.ndarray
    unexcused: np.ndarray  # per (stream, account) pair of ``st_of``/``acct_of``

    @classmethod
    def of(cls, arr: _Arrivals, excused: np.ndarray) -> _Audience:
        n_st = np.int64(max(arr.stream_ids.size, 1))
        o, key, span = _stream_index(arr)
        a_st = arr.acct_streams
        free = _unique(arr.acct[~excused] * n_st + arr.stream[~excused])
        at = np.minimum(np.searchsorted(free, a_st), max(free.size - 1, 0))
        has_free = free[at] == a_st if free.size else np.zeros(a_st.size, dtype=bool)
        s_sorted_o = _stable_argsort(a_st % n_st, max(int(n_st).bit_length(), 1))
        return cls(
            order=o,
            key=key,
            span=span,
            t_min=int(arr.t.min()) if arr.t.size else 0,
            st_of=(a_st % n_st)[s_sorted_o],
            acct_of=(a_st // n_st)[s_sorted_o],
            unexcused=has_free[s_sorted_o],
        )


def _landing(
    gst: _GroupStats,
    arr: _Arrivals,
    acct_group: np.ndarray,
    spans: _Spans,
    excused: np.ndarray,
    n_groups: int,
    *,
    width: float,
    audience: _Audience | None = None,
) -> _Landing:
    """The accounts landing in each group's bursts, against the background of the
    stream (step 6 and 7 of the module documentation).

    A burst's chance for an account present on its stream is the share of the
    stream's *background* that arrived within the burst's span, Laplace-smoothed
    over the stream's windows of the span's length (at least ``width``): a quiet
    stream's audience spreads over it, a viral moment's does not. The
    background is the stream's accounts that are not members of the group,
    counted by their arrivals that were not ``excused`` at a start: a farm does
    not make its own bursts look ordinary, nor do its bots excused at a start
    fill the start's window. The bursts an account lands in by chance are taken
    as Poisson with the sum of those chances over the group's bursts on its
    streams; per level ``k``, the accounts landing in ``k`` bursts or more are
    counted against the sum of their Poisson tails (what chance predicts).
    Since every account on the streams is counted, not only the members, a
    group picked out of a crowd that chance packs together (two viral moments
    sharing their audience) predicts as many as it has.
    """
    empty = np.zeros(0, dtype=np.int64)
    nbst = gst.burst_group.size
    if nbst == 0:
        z = np.zeros((n_groups, 1))
        return _Landing(empty, empty, empty, np.zeros(0), z, z, np.zeros(n_groups, np.int64))
    n_acct = np.int64(max(acct_group.size, 1))
    n_st = np.int64(max(arr.stream_ids.size, 1))
    aud = audience if audience is not None else _Audience.of(arr, excused)
    o, key, span, t_min = aud.order, aud.key, aud.span, aud.t_min
    b_lo = np.searchsorted(key, gst.burst_stream * span + (gst.burst_lo - t_min), side="left")
    b_hi = np.searchsorted(key, gst.burst_stream * span + (gst.burst_hi - t_min), side="right")
    which, pos = _ranges(b_lo, b_hi)
    # (burst, account) landings, and whether the account arrived then unexcused
    ev = o[pos]
    l_key = which * n_acct + arr.acct[ev]
    ba = _unique(l_key)
    l_burst, l_acct = ba // n_acct, ba % n_acct
    l_group = gst.burst_group[l_burst]
    ga_key, k = _unique(l_group * n_acct + l_acct, return_counts=True)
    # background within each burst: non-members arriving unexcused
    free = ~excused[ev] & (acct_group[arr.acct[ev]] != gst.burst_group[which])
    bg_in = np.bincount(_unique(l_key[free]) // n_acct, minlength=nbst).astype(np.float64)
    # every (group, burst stream) and the accounts on that stream
    st_of, acct_of = aud.st_of, aud.acct_of
    gs_key, gs_inv = np.unique(gst.burst_group * n_st + gst.burst_stream, return_inverse=True)
    gs_g, gs_s = gs_key // n_st, gs_key % n_st
    r_gs, r_pos = _ranges(
        np.searchsorted(st_of, gs_s, side="left"), np.searchsorted(st_of, gs_s, side="right")
    )
    r_acct = acct_of[r_pos]
    r_group = gs_g[r_gs]
    # background on each stream: non-members with an unexcused arrival there
    unexcused = aud.unexcused[r_pos]
    bg_on = np.bincount(
        r_gs[unexcused & (acct_group[r_acct] != r_group)], minlength=gs_key.size
    ).astype(np.float64)
    # each burst's chance, summed per (group, stream)
    b_span = np.maximum((gst.burst_hi - gst.burst_lo).astype(np.float64), width)
    n_win = spans.length[gst.burst_stream] / b_span
    p_b = np.minimum(1.0, (bg_in + 1.0) / (bg_on[gs_inv] + n_win))
    gs_p = np.bincount(gs_inv, weights=p_b, minlength=gs_key.size)
    # per (group, account): expected landings and landings
    row_key, row_inv, _ = _unique_inverse(r_group * n_acct + r_acct)
    lam = np.bincount(row_inv, weights=gs_p[r_gs], minlength=row_key.size)
    at = np.minimum(np.searchsorted(ga_key, row_key), max(ga_key.size - 1, 0))
    k_row = np.where(ga_key[at] == row_key, k[at], 0) if ga_key.size else 0 * row_key
    k_row = np.asarray(k_row, dtype=np.int64)
    # per group and level k: accounts landing in k bursts or more (x), and the number
    # chance predicts (mu: the sum of each account's Poisson tail, by the recurrences
    # pmf(k) = pmf(k - 1) * lam / k and sf(k) = sf(k - 1) - pmf(k - 1))
    row_g = row_key // n_acct
    k_top = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(k_top, row_g, k_row)
    top = int(k_top.max()) if k_top.size else 0
    x = np.zeros((n_groups, top + 1))
    mu = np.zeros((n_groups, top + 1))
    # levels above a group's k_top are never read: rows ordered by their group's k_top
    # (most first), so each level works on a prefix of them
    by_top = _order(top - k_top[row_g])
    g_s, k_s = row_g[by_top], k_row[by_top]
    lam_c = np.maximum(lam[by_top], 1e-12)
    n_at = np.searchsorted(-k_top[g_s], -np.arange(top + 1), side="right")
    pmf = np.exp(-lam_c)  # P(K = 0)
    sf = np.ones(lam_c.size)  # P(K >= 0)
    for lev in range(1, top + 1):
        m = int(n_at[lev])
        sf[:m] = np.maximum(sf[:m] - pmf[:m], 0.0)
        pmf[:m] *= lam_c[:m] / lev
        gm = g_s[:m]
        mu[:, lev] = np.bincount(gm, weights=sf[:m], minlength=n_groups)
        x[:, lev] = np.bincount(gm[k_s[:m] >= lev], minlength=n_groups)
    return _Landing(row_g, row_key % n_acct, k_row, lam, x, mu, k_top)


def _significance(landing: _Landing, *, min_member_bursts: int) -> np.ndarray:
    """``-log10 p`` of each group's burst overlap: at each level ``k`` from
    ``min_member_bursts`` to the most bursts an account landed in, the Poisson tail of
    the number of accounts landing in ``k`` or more against the number chance predicts;
    the best level's, times the number of levels (Bonferroni)."""
    from scipy.stats import poisson

    x, mu = landing.x, landing.mu
    n_groups, n_lev = x.shape
    out = np.zeros(n_groups)
    if n_lev <= min_member_bursts:
        return out
    lev = np.arange(n_lev)
    use = (lev[None, :] >= min_member_bursts) & (lev[None, :] <= landing.k_top[:, None])
    use &= x >= min_member_bursts
    with np.errstate(divide="ignore"):
        lp = -poisson.logsf(x - 1, np.maximum(mu, 1e-300)) / np.log(10.0)
    best = np.where(use, lp, 0.0).max(axis=1)
    n_levels = np.maximum(landing.k_top - min_member_bursts + 1, 1)
    return np.asarray(np.clip(best - np.log10(n_levels), 0.0, 300.0), dtype=np.float64)


def _complete_groups(
    landing: _Landing,
    acct_group: np.ndarray,
    *,
    min_member_bursts: int,
    member_fdr: float,
) -> np.ndarray:
    """Group of each account after testing who landed in the groups' bursts.

    Taking every account that landed in ``t`` or more of a group's bursts
    (``t`` at least ``min_member_bursts``) would take ``mu / x`` of them by
    chance (:class:`_Landing`: the false discovery rate of that cut, as in
    Benjamini and Hochberg); an account that landed in ``k`` bursts belongs to
    the group when some cut ``t <= k`` keeps that rate at ``member_fdr`` or
    below. Members and other accounts alike: a member the pair count picked
    out that seldom landed in the bursts leaves, an account the pair count
    could not see (a bot excused at a start, one left out of a crowded
    bucket's sample) joins. An account that qualifies for several groups joins
    the one where its rate is lowest.
    """
    out = np.full(acct_group.size, -1, dtype=np.int64)
    g, a, k = landing.group, landing.acct, landing.k
    if g.size == 0 or landing.x.shape[1] <= min_member_bursts:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(landing.x > 0, landing.mu / np.maximum(landing.x, 1), np.inf)
    rate[:, :min_member_bursts] = np.inf
    qv = np.minimum.accumulate(rate, axis=1)  # q-value of each level: the best cut below it
    cand = k >= min_member_bursts
    g, a, k = g[cand], a[cand], k[cand]
    q = qv[g, k]
    ok = q <= member_fdr
    if not ok.any():
        return out
    g, a, q = g[ok], a[ok], q[ok]
    o = np.lexsort((g, q, a))
    g, a = g[o], a[o]
    first = np.r_[True, a[1:] != a[:-1]]
    out[a[first]] = g[first]
    return out


# --------------------------------------------------------------------------- clustering


def _leiden(
    n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, *, resolution: float, seed: int
) -> np.ndarray:
    """Leiden (CPM) membership of nodes 0..n-1 of a weighted undirected graph.

    igraph's own Leiden (C core) is about 15 times faster than leidenalg's on
    projections of a million events. It draws from igraph's process-wide
    random generator, so the call installs a generator seeded with ``seed``
    and puts the previous one back afterwards: the result depends on the seed
    only, and nothing else sees a changed random state.
    """
    import random

    import igraph as ig

    # igraph reads a list of int pairs about twice as fast as a numpy array (which
    # it converts element by element through a memoryview)
    g = ig.Graph(n=n, edges=list(zip(a.tolist(), b.tolist(), strict=True)), directed=False)
    with _IGRAPH_RNG_LOCK:
        ig.set_random_number_generator(random.Random(seed))
        try:
            part = g.community_leiden(
                objective_function="CPM",
                weights=w.astype(np.float64),
                resolution=resolution,
                n_iterations=2,
            )
        finally:
            ig.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=np.int64)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    _, labels = connected_components(m, directed=False)
    return np.asarray(labels, dtype=np.int64)


# --------------------------------------------------------------------------- detector


def _check_params(**p: Any) -> None:
    if "window_s" in p and not p["window_s"] > 0:
        raise InputError(f"window_s must be positive, not {p['window_s']}")
    if "window_factor" in p and not p["window_factor"] > 1:
        raise InputError(f"window_factor must be above 1, not {p['window_factor']}")
    if "max_window_share" in p and not p["max_window_share"] >= 0:
        raise InputError(f"max_window_share must be non-negative, not {p['max_window_share']}")
    if "max_bucket" in p and p["max_bucket"] < 2:
        raise InputError(f"max_bucket must be at least 2, not {p['max_bucket']}")
    if "min_group" in p and p["min_group"] < 2:
        raise InputError(f"min_group must be at least 2, not {p['min_group']}")
    if "min_shared_windows" in p and p["min_shared_windows"] < 1:
        raise InputError(f"min_shared_windows must be at least 1, not {p['min_shared_windows']}")
    if "min_member_bursts" in p and p["min_member_bursts"] < 1:
        raise InputError(f"min_member_bursts must be at least 1, not {p['min_member_bursts']}")
    for name in ("min_sync_rate", "min_density", "min_sync_share", "burst_quorum", "member_fdr"):
        if name in p and not 0 <= p[name] <= 1:
            raise InputError(f"{name} must lie in [0, 1], not {p[name]}")
    if "corroborate_below" in p and p["corroborate_below"] < 0:
        raise InputError(f"corroborate_below must be non-negative, not {p['corroborate_below']}")
    for name in (
        "resolution",
        "min_burst_surprise",
        "min_significance",
        "min_corroboration",
    ):
        if name in p and not p[name] >= 0:
            raise InputError(f"{name} must be non-negative, not {p[name]}")
    if p.get("young_days") is not None and not p["young_days"] >= 0:
        raise InputError(f"young_days must be non-negative or null, not {p['young_days']}")


def _ages_days(
    accounts: pd.DataFrame | None, ids: np.ndarray, as_of: pd.Timestamp
) -> np.ndarray | None:
    """Age in days at ``as_of`` of each account in ``ids`` (NaN when unknown)."""
    if accounts is None or accounts.empty or "created_at" not in accounts.columns:
        return None
    created = pd.Series(
        pd.DatetimeIndex(pd.to_datetime(accounts["created_at"], utc=True)),
        index=accounts["account_id"].astype(str).to_numpy(),
    )
    created = created[~created.index.duplicated(keep="first")]
    got = created.reindex(pd.Index(ids.astype(str)))
    age = (as_of - pd.DatetimeIndex(got)) / pd.Timedelta(days=1)
    return np.asarray(age, dtype=np.float64)


def _fmt_seconds(seconds: float) -> str:
    if seconds >= 120:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{max(1, math.ceil(seconds))} seconds"


@dataclass(frozen=True)
class _Edges:
    a: np.ndarray  # account codes, a < b
    b: np.ndarray
    rate: np.ndarray  # synchrony rate at the pair's best width


def _edges(
    bk: _Buckets,
    arr: _Arrivals,
    spans: _Spans,
    count_pairs: _PairCounter,
    *,
    max_bucket: int,
    min_shared_windows: int,
    min_sync_rate: float,
    min_burst_surprise: float,
    max_window_share: float,
) -> _Edges:
    """Pairs that shared ``min_shared_windows`` bursts at some width with a synchrony
    rate of ``min_sync_rate`` (step 4): in every bucket of the finest width, in the
    surprising buckets (:func:`_surprising`) of the wider ones."""
    n_acct = np.int64(arr.account_ids.size)
    hot = _surprising(
        bk,
        spans,
        arr.stream_ids.size,
        min_surprise=min_burst_surprise,
        max_share=max_window_share,
    )
    keys, rates = [], []
    for i, w in enumerate(bk.widths):
        sub = _width_slice(bk, i)
        if i > 0:
            sub = _bucket_subset(sub, hot[bk.width_ptr[i] : bk.width_ptr[i + 1]])
        if sub.acct.size == 0:
            continue
        a, b, _, n_streams, n_both = count_pairs(
            sub, arr, max_bucket=max_bucket, min_bursts=min_shared_windows, gap=2.0 * w
        )
        rate = n_streams / np.maximum(n_both, 1.0)
        keep = rate >= min_sync_rate
        keys.append(a[keep] * n_acct + b[keep])
        rates.append(rate[keep])
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    rate = np.concatenate(rates) if rates else np.zeros(0)
    if key.size:
        o = np.lexsort((-rate, key))
        key, rate = key[o], rate[o]
        first = np.r_[True, key[1:] != key[:-1]]
        key, rate = key[first], rate[first]
    div = np.int64(max(int(n_acct), 1))
    return _Edges(a=key // div, b=key % div, rate=rate)


def _prune(acct_group: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = acct_group.copy()
    out[~keep & (out >= 0)] = -1
    return out


def _renumber(acct_group: np.ndarray) -> tuple[np.ndarray, int]:
    """Groups renumbered 0..n-1 by their smallest account (so numbering does not depend
    on how they were found)."""
    out = np.full(acct_group.size, -1, dtype=np.int64)
    grouped = np.flatnonzero(acct_group >= 0)
    if grouped.size == 0:
        return out, 0
    g = acct_group[grouped]
    first_acct = pd.Series(grouped).groupby(g).min()
    new_of = pd.Series(np.argsort(np.argsort(first_acct.to_numpy())), index=first_acct.index)
    out[grouped] = new_of.reindex(g).to_numpy()
    return out, int(first_acct.size)


def detect_lockstep(
    engagements: pd.DataFrame,
    *,
    streams: pd.DataFrame,
    accounts: pd.DataFrame | None = None,
    follows: pd.DataFrame | None = None,
    window_s: float = 60.0,
    max_window_share: float = 0.2,
    window_factor: float = 4.0,
    start_grace_s: float = 1800.0,
    surge_level: float = 1.5,
    by_kind: bool = False,
    kinds: tuple[str, ...] | None = None,
    max_bucket: int = 300,
    min_shared_windows: int = 2,
    min_sync_rate: float = 0.5,
    resolution: float = 0.05,
    min_group: int = 3,
    min_density: float = 0.4,
    burst_quorum: float = 0.3,
    min_sync_share: float = 0.0,
    min_member_bursts: int = 2,
    member_fdr: float = 0.05,
    min_burst_surprise: float = 3.0,
    min_significance: float = 20.0,
    corroborate_below: int = 6,
    min_corroboration: float = 2.0,
    young_days: float | None = 30.0,
    as_of: Any = None,
    max_evidence: int = 500,
    seed: Seed = None,
) -> list[Finding]:
    """Find engagement farms: groups of accounts acting on the same streams in lockstep.

    See the module documentation for the method. Each group becomes one
    finding of kind ``engagement_farm`` whose members are the accounts, whose
    beneficiaries are the creators whose streams received most of the group's
    synchronised events, and whose evidence is those events.

    Parameters
    ----------
    engagements : pandas.DataFrame
        Normalised engagements: ``account_id``, ``stream_id``, ``kind``, ``ts``
        (``datetime64[us, UTC]``), optionally ``amount``.
    streams : pandas.DataFrame
        Normalised streams: ``stream_id``, ``creator_id`` (to name the targets),
        optionally ``started_at`` (start graces) and ``ended_at``.
    accounts : pandas.DataFrame, optional
        Normalised accounts with ``account_id`` and ``created_at``, for the
        young-account signal; without it that signal is left out.
    follows : pandas.DataFrame, optional
        Normalised follows (``follower_id``, ``creator_id``, ``ts``): only a
        creator's followers are excused at the start of its streams. Without
        it (or when empty), every arrival in a creator's start grace is.
    window_s : float
        The finest synchronisation window in seconds. Windows lie on two grids
        staggered by half a window, so two arrivals less than half a window
        apart always share a bucket.
    max_window_share : float
        The widest window, as a share of the median stream length (0.2: a
        burst is a moment of a stream, not a fifth of it). 0: ``window_s`` only.
    window_factor : float
        Consecutive window widths are at most this factor apart.
    start_grace_s : float
        Longest start grace: arrivals in the first seconds of a stream (by
        ``streams.started_at``) are not evidence of lockstep while the
        creator's streams usually see a surge of arrivals then. 0 disables.
    surge_level : float
        Arrival intensity, relative to a flat rate over the stream, that counts
        as a start surge when the median of the creator's streams reaches it
        (1.5: half again as many arrivals as usual). The grace of a creator's
        streams covers the leading finest windows that reach it, up to
        ``start_grace_s``. 0 gives every stream the whole ``start_grace_s``.
    by_kind : bool
        Bucket each kind of action separately instead of all kinds together.
    kinds : tuple of str, optional
        Only consider these kinds of engagement (default: all).
    max_bucket : int
        In a bucket with more accounts than this (viral moments, big farms,
        wide windows on popular streams), pairs are counted among this many of
        them, the same accounts in every crowded bucket; none is skipped.
    min_shared_windows : int
        Distinct bursts (a stream and a moment; buckets of one stream less than
        two windows apart are one burst) two accounts must share to be linked,
        and a group must share to be reported. 2: repetition is required, a
        single shared moment never links two accounts.
    min_sync_rate : float
        Least share of the streams two accounts both engaged with on which they
        acted within one window, counted from what chance gives at the width
        (0) to always (1); separates farms from fans of a creator.
    resolution : float
        Constant Potts Model resolution of Leiden: a group must have an
        average internal edge weight above it. Higher values split more.
    min_group : int
        Least number of accounts in a reported group (the significance decides
        above it; 3 is the smallest ring the evaluation counts).
    min_density : float
        Least share of the account pairs linked in each group Leiden forms
        (0.4: a farm's bots are linked to most of the farm; a chain of chance
        coincidences is not).
    burst_quorum : float
        A group burst is a bucket in which at least this share of the group
        (and at least 3 accounts) co-acted.
    min_sync_share : float
        Least share of the streams of the group's linked members on which they
        joined a group burst (camouflage viewing may dilute a farm's share, but
        an ordinary audience's chance coincidences are a smaller share still).
    min_member_bursts : int
        Members that joined fewer group bursts are dropped from the group, and
        an account must land in this many to be added to it.
    member_fdr : float
        Accounts join a group (and members stay) by landing in its bursts when
        the share of such accounts chance would put there (the false discovery
        rate of the cut) is at most this.
    min_significance : float
        Least ``-log10 p`` of the group's bursts under the null model of
        independent arrivals (20: p below 1e-20; a Bonferroni margin for the
        many groups a large marketplace offers, and for groups being selected
        from the same data they are tested on).
    corroborate_below : int
        Groups of fewer accounts need a second, independent signal besides
        their timing: their bursts concentrate on one creator's streams, or
        their accounts are young, beyond what the market's own shares make
        likely (a few accounts that watch together, a household on one
        screen, time their arrivals as a farm does, but on whatever they
        watch). 0: never asked.
    min_corroboration : float
        Least ``-log10 p`` of that second signal (2: p below 0.01), a binomial
        tail against the market's share of the creator's streams (times the
        number of creators) or of young accounts among the active ones.
    young_days : float or None
        Accounts created at most this many days before ``as_of`` count as
        young; None: the span of the engagements (accounts that appeared while
        the data was being recorded).
    as_of : datetime-like, optional
        Reference time for account ages (default: the last engagement).
    max_evidence : int
        At most this many synchronised events are kept as evidence (the total
        count is a signal).
    seed : int, numpy.random.Generator or None
        Seed of Leiden. ``None`` uses 0: results are deterministic.

    Returns
    -------
    list of Finding
        Canonically ordered (score descending, then id).

    Raises
    ------
    InputError
        If a table lacks a required column or a parameter is out of range.

    References
    ----------
    .. [1] A. Beutel, W. Xu, V. Guruswami, C. Palow, C. Faloutsos, "CopyCatch:
       Stopping Group Attacks by Spotting Lockstep Behavior in Social Networks",
       WWW 2013. https://doi.org/10.1145/2488388.2488400
    .. [2] Q. Cao, X. Yang, J. Yu, C. Palow, "Uncovering Large Groups of Active
       Malicious Accounts in Online Social Networks", CCS 2014 (SynchroTrap).
       https://doi.org/10.1145/2660267.2660269
    .. [3] V. A. Traag, L. Waltman, N. J. van Eck, "From Louvain to Leiden:
       guaranteeing well-connected communities", Sci. Rep. 9, 5233 (2019).
       https://doi.org/10.1038/s41598-019-41695-z
    .. [4] J. Glaz, J. Naus, S. Wallenstein, "Scan Statistics", Springer, 2001
       (the chance that some window holds many events, bounded by the expected
       number of such windows).
    .. [5] R. A. Fisher, "Statistical Methods for Research Workers", 1925
       (combining independent p-values: -2 sum ln p follows chi-squared).
    .. [6] F. G. Gustavson, "Two fast algorithms for sparse matrices:
       multiplication and permuted transposition", ACM TOMS 4(3), 1978
       (the row-by-row pair count). https://doi.org/10.1145/355791.355796
    .. [7] E. Cohen, H. Kaplan, "Summarizing data using bottom-k sketches",
       PODC 2007 (a sample of a set by the lowest hash ranks, consistent across
       sets). https://doi.org/10.1145/1281100.1281133

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> t0 = pd.Timestamp("2024-05-01", tz="UTC")
    >>> streams = pd.DataFrame({"stream_id": [f"s{i}" for i in range(8)],
    ...                         "creator_id": ["c1"] * 4 + ["c2"] * 4})
    >>> farm = [dict(account_id=f"f{a}", stream_id=f"s{s}", kind="like",
    ...              ts=t0 + pd.Timedelta(hours=s, seconds=int(rng.integers(0, 20))))
    ...         for s in range(4) for a in range(8)]
    >>> crowd = [dict(account_id=f"u{i}", stream_id=f"s{rng.integers(0, 8)}", kind="view",
    ...               ts=t0 + pd.Timedelta(seconds=int(rng.integers(0, 8 * 3600))))
    ...          for i in range(200)]
    >>> ev = pd.DataFrame(farm + crowd).astype({"ts": "datetime64[us, UTC]"})
    >>> found = detect_lockstep(ev, streams=streams, seed=0)
    >>> [f.member_ids for f in found]
    [('f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7')]
    >>> [b.account_id for b in found[0].beneficiaries]
    ['c1']
    """
    return _detect_lockstep(
        engagements,
        streams=streams,
        accounts=accounts,
        follows=follows,
        window_s=window_s,
        max_window_share=max_window_share,
        window_factor=window_factor,
        start_grace_s=start_grace_s,
        surge_level=surge_level,
        by_kind=by_kind,
        kinds=kinds,
        max_bucket=max_bucket,
        min_shared_windows=min_shared_windows,
        min_sync_rate=min_sync_rate,
        resolution=resolution,
        min_group=min_group,
        min_density=min_density,
        burst_quorum=burst_quorum,
        min_sync_share=min_sync_share,
        min_member_bursts=min_member_bursts,
        member_fdr=member_fdr,
        min_burst_surprise=min_burst_surprise,
        min_significance=min_significance,
        corroborate_below=corroborate_below,
        min_corroboration=min_corroboration,
        young_days=young_days,
        as_of=as_of,
        max_evidence=max_evidence,
        seed=seed,
        count_pairs=_sync_counts,
    )


def _detect_lockstep(
    engagements: pd.DataFrame,
    *,
    count_pairs: _PairCounter,
    streams: pd.DataFrame,
    accounts: pd.DataFrame | None,
    follows: pd.DataFrame | None,
    window_s: float,
    max_window_share: float,
    window_factor: float,
    start_grace_s: float,
    surge_level: float,
    by_kind: bool,
    kinds: tuple[str, ...] | None,
    max_bucket: int,
    min_shared_windows: int,
    min_sync_rate: float,
    resolution: float,
    min_group: int,
    min_density: float,
    burst_quorum: float,
    min_sync_share: float,
    min_member_bursts: int,
    member_fdr: float,
    min_burst_surprise: float,
    min_significance: float,
    corroborate_below: int,
    min_corroboration: float,
    young_days: float | None,
    as_of: Any,
    max_evidence: int,
    seed: Seed,
) -> list[Finding]:
    """:func:`detect_lockstep` with the pair count of step 4 done by ``count_pairs``.

    ``count_pairs(bk, arr, *, max_bucket, min_bursts, gap)`` returns what
    :func:`_sync_counts` returns on the buckets of one width (the Spark engine
    passes one that runs on Spark); the other arguments are those of
    :func:`detect_lockstep`.
    """
    params: dict[str, Any] = {
        "window_s": float(window_s),
        "max_window_share": float(max_window_share),
        "window_factor": float(window_factor),
        "start_grace_s": float(start_grace_s),
        "surge_level": float(surge_level),
        "by_kind": bool(by_kind),
        "kinds": list(kinds) if kinds is not None else None,
        "max_bucket": int(max_bucket),
        "min_shared_windows": int(min_shared_windows),
        "min_sync_rate": float(min_sync_rate),
        "resolution": float(resolution),
        "min_group": int(min_group),
        "min_density": float(min_density),
        "burst_quorum": float(burst_quorum),
        "min_sync_share": float(min_sync_share),
        "min_member_bursts": int(min_member_bursts),
        "member_fdr": float(member_fdr),
        "min_burst_surprise": float(min_burst_surprise),
        "min_significance": float(min_significance),
        "corroborate_below": int(corroborate_below),
        "min_corroboration": float(min_corroboration),
        "young_days": None if young_days is None else float(young_days),
        "max_evidence": int(max_evidence),
        "seed": seed_int(seed),
    }
    _check_params(**params)
    _check_columns(engagements, "engagements", ("account_id", "stream_id", "kind", "ts"))
    _check_columns(streams, "streams", ("stream_id", "creator_id"))
    if accounts is not None:
        _check_columns(accounts, "accounts", ("account_id",))
    if follows is not None:
        _check_columns(follows, "follows", ("follower_id", "creator_id"))
    info = DetectorInfo(NAME, VERSION, params)
    if engagements.empty:
        return []
    arr = _arrivals(engagements, kinds)
    n_acct = arr.account_ids.size
    if n_acct < min_group:
        return []
    spans = _spans(streams, arr)
    creators = _stream_creators(streams, arr)
    fol = _followers(follows, arr, creators, spans)
    widths = _widths(window_s, max_window_share, window_factor, spans)
    graces = _start_graces(
        arr,
        spans,
        creators,
        fol,
        window_s=window_s,
        max_grace_s=start_grace_s,
        surge_level=surge_level,
    )
    excused = _excused(arr, spans, graces, fol)
    bk = _buckets(arr, widths=widths, by_kind=by_kind, excused=excused)
    edges = _edges(
        bk,
        arr,
        spans,
        count_pairs,
        max_bucket=max_bucket,
        min_shared_windows=min_shared_windows,
        min_sync_rate=min_sync_rate,
        min_burst_surprise=min_burst_surprise,
        max_window_share=max_window_share,
    )
    if edges.a.size == 0:
        return []

    # graph on the accounts that have an edge, split into components, Leiden on the big ones
    nodes = _unique(np.concatenate([edges.a, edges.b]))
    la, lb = np.searchsorted(nodes, edges.a), np.searchsorted(nodes, edges.b)
    comp = _components(nodes.size, la, lb)
    big = np.bincount(comp)[comp] >= min_group
    if not big.any():
        return []
    sub_nodes = np.flatnonzero(big)
    remap = np.full(nodes.size, -1, dtype=np.int64)
    remap[sub_nodes] = np.arange(sub_nodes.size)
    e_keep = big[la] & big[lb]
    ea, eb, ew = remap[la[e_keep]], remap[lb[e_keep]], edges.rate[e_keep]
    membership = _leiden(sub_nodes.size, ea, eb, ew, resolution=resolution, seed=params["seed"])
    group_accts = nodes[sub_nodes]  # account code of each subgraph node

    # Leiden's groups: large and dense enough
    n_groups = int(membership.max()) + 1
    gsize = np.bincount(membership, minlength=n_groups)
    ga, gb = membership[ea], membership[eb]
    n_in = np.bincount(ga[ga == gb], minlength=n_groups)
    dens = 2.0 * n_in / np.maximum(gsize * (gsize - 1), 1)
    ok_group = (gsize >= min_group) & (dens >= min_density)
    acct_group = np.full(n_acct, -1, dtype=np.int64)
    acct_group[group_accts] = np.where(ok_group[membership], membership, -1)
    acct_group, n_groups = _renumber(acct_group)
    if n_groups == 0:
        return []
    # members that joined too few group bursts leave; fragments of one farm merge
    stats = _group_bursts(bk, arr, acct_group, n_groups, burst_quorum=burst_quorum)
    acct_group = _prune(acct_group, stats.joined >= min_member_bursts)
    acct_group, n_groups = _renumber(acct_group)
    if n_groups == 0:
        return []
    stats = _group_bursts(bk, arr, acct_group, n_groups, burst_quorum=burst_quorum)
    merged = _merge_fragments(stats, n_groups, min_bursts=min_shared_windows)
    acct_group = np.where(acct_group >= 0, merged[np.maximum(acct_group, 0)], -1)
    acct_group, n_groups = _renumber(acct_group)
    stats = _group_bursts(bk, arr, acct_group, n_groups, burst_quorum=burst_quorum)
    core = acct_group.copy()
    core_size = np.bincount(core[core >= 0], minlength=n_groups)
    # who landed in each group's bursts: members that did not leave, accounts that did join
    width = float(widths[0])
    audience = _Audience.of(arr, excused)
    landing = _landing(
        stats, arr, acct_group, spans, excused, n_groups, width=width, audience=audience
    )
    acct_group = _complete_groups(
        landing,
        acct_group,
        min_member_bursts=min_member_bursts,
        member_fdr=member_fdr,
    )
    gsize = np.bincount(acct_group[acct_group >= 0], minlength=n_groups)
    stats = _group_bursts(bk, arr, acct_group, n_groups, burst_quorum=burst_quorum, gsize=core_size)
    landing = _landing(
        stats, arr, acct_group, spans, excused, n_groups, width=width, audience=audience
    )
    return _findings(
        engagements,
        arr,
        spans,
        creators,
        bk,
        stats,
        acct_group,
        core,
        gsize,
        _significance(landing, min_member_bursts=min_member_bursts),
        edges,
        accounts=accounts,
        info=info,
        params=params,
        as_of=as_of,
    )


def _landed(
    stats: _GroupStats, arr: _Arrivals, acct_group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals of each group's members within the group's bursts (on the burst's
    stream, from its first member arrival, or the start of its span, to the last, or
    the span's end): the arrival indices ordered by group, and per account the
    number of its group's bursts it landed in."""
    n_acct = acct_group.size
    nbst = stats.burst_group.size
    if nbst == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(n_acct, dtype=np.int64)
    o = _order(arr.stream, arr.t)
    t_min = int(arr.t.min())
    span = np.int64(int(arr.t.max()) - t_min + 2)
    key = arr.stream[o] * span + (arr.t[o] - t_min)
    b_lo = np.minimum(stats.burst_first, stats.burst_lo) - t_min
    b_hi = np.maximum(stats.burst_last, stats.burst_hi) - t_min
    lo = np.searchsorted(key, stats.burst_stream * span + b_lo, side="left")
    hi = np.searchsorted(key, stats.burst_stream * span + b_hi, side="right")
    n = hi - lo
    burst_of = np.repeat(np.arange(nbst), n)
    pos = np.repeat(lo, n) + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
    ev = o[pos]
    mine = acct_group[arr.acct[ev]] == stats.burst_group[burst_of]
    ev, burst_of = ev[mine], burst_of[mine]
    n_b = np.int64(nbst)
    ab = _unique(arr.acct[ev] * n_b + burst_of)
    landed = np.bincount(ab // n_b, minlength=n_acct)
    ev = _unique(ev)
    ev = ev[_order(acct_group[arr.acct[ev]])]
    return ev, landed


@dataclass(frozen=True)
class _MarketShares:
    """The market's own shares behind a small group's second signal: each creator's
    share of the streams, and the share of young accounts among the active ones."""

    stream_creator: np.ndarray  # per stream: creator code (-1: none)
    creator_share: np.ndarray  # per creator code: share of the streams
    young_share: float  # of the active accounts with a known age; NaN without ages

    @classmethod
    def of(
        cls,
        arr: _Arrivals,
        creators: np.ndarray,
        accounts: pd.DataFrame | None,
        ref: pd.Timestamp,
        young_days: float,
    ) -> _MarketShares:
        codes, _ = pd.factorize(pd.Series(creators, dtype=object))
        codes = np.asarray(codes, dtype=np.int64)
        counts = np.bincount(codes[codes >= 0], minlength=int(codes.max(initial=-1)) + 1)
        share = counts / max(int(codes.size), 1)
        ages = _ages_days(accounts, arr.account_ids, ref)
        young = float("nan")
        if ages is not None and not np.isnan(ages).all():
            known = ages[~np.isnan(ages)]
            young = float((known <= young_days).mean())
        return cls(codes, share.astype(np.float64), young)

    def corroboration(self, g_streams: np.ndarray, young_n: int, n_known: int) -> float:
        """``-log10 p`` of the stronger second signal of a group whose bursts were on
        ``g_streams`` and which has ``young_n`` young accounts of ``n_known`` with an
        age: the binomial tail of its busiest creator's burst streams against that
        creator's share of the market's streams (times the number of creators, a
        Bonferroni margin for picking the busiest), and that of its young accounts
        against the market's young share."""
        from scipy.stats import binom

        best = 0.0
        c = self.stream_creator[g_streams]
        c = c[c >= 0]
        if c.size and self.creator_share.size:
            per = np.bincount(c, minlength=self.creator_share.size)
            top = int(np.argmax(per))
            tail = binom.sf(per[top] - 1, g_streams.size, self.creator_share[top])
            lp = -np.log10(max(float(tail) * self.creator_share.size, 1e-300))
            best = max(best, float(lp))
        if n_known and young_n and not math.isnan(self.young_share):
            tail = binom.sf(young_n - 1, n_known, self.young_share)
            best = max(best, float(-np.log10(max(float(tail), 1e-300))))
        return best


def _findings(
    engagements: pd.DataFrame,
    arr: _Arrivals,
    spans: _Spans,
    creators: np.ndarray,
    bk: _Buckets,
    stats: _GroupStats,
    acct_group: np.ndarray,
    core: np.ndarray,
    gsize: np.ndarray,
    log_p: np.ndarray,
    edges: _Edges,
    *,
    accounts: pd.DataFrame | None,
    info: DetectorInfo,
    params: dict[str, Any],
    as_of: Any,
) -> list[Finding]:
    """One finding per group that passes the floors (step 8)."""
    p = params
    n_acct = arr.account_ids.size
    n_stream = arr.stream_ids.size
    n_groups = gsize.size
    # within-group edges of the accounts that formed the group: density and degree
    ga, gb = core[edges.a], core[edges.b]
    same = (ga >= 0) & (ga == gb)
    wdeg = np.bincount(edges.a[same], weights=edges.rate[same], minlength=n_acct)
    wdeg += np.bincount(edges.b[same], weights=edges.rate[same], minlength=n_acct)
    n_edges_in = np.bincount(ga[same], minlength=n_groups)
    core_size = np.bincount(core[core >= 0], minlength=n_groups)
    if as_of is None:
        ref = pd.Timestamp(int(arr.t.max()), unit="s", tz="UTC")
    else:
        ref = pd.Timestamp(as_of)
        ref = ref.tz_localize("UTC") if ref.tzinfo is None else ref.tz_convert("UTC")
    young_days = p["young_days"]
    if young_days is None:  # accounts that appeared while the data was being recorded
        young_days = max(float(arr.t.max() - arr.t.min()) / 86400.0, 1.0)
    streams_per_acct = np.bincount(arr.acct_streams // np.int64(max(n_stream, 1)), minlength=n_acct)
    ev_all, landed = _landed(stats, arr, acct_group)
    ev_ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(acct_group[arr.acct[ev_all]], minlength=n_groups), out=ev_ptr[1:])
    grouped = np.flatnonzero(acct_group >= 0)
    grouped = grouped[np.argsort(acct_group[grouped], kind="stable")]
    ages: np.ndarray | None = None  # of the grouped accounts only (NaN elsewhere)
    ages_grouped = _ages_days(accounts, arr.account_ids[grouped], ref)
    if ages_grouped is not None:
        ages = np.full(n_acct, np.nan)
        ages[grouped] = ages_grouped
    g_ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(gsize, out=g_ptr[1:])
    burst_span = (stats.burst_hi - stats.burst_lo).astype(np.float64)
    min_group, min_bursts = p["min_group"], p["min_shared_windows"]
    market: _MarketShares | None = None  # for small groups' second signal, when needed
    findings: list[Finding] = []
    for gid in np.lexsort((np.arange(n_groups), -gsize)):
        n = int(gsize[gid])
        n_bursts = int(stats.n_bursts[gid])
        if n < min_group or n_bursts < min_bursts:
            continue
        significance = float(log_p[gid])
        if significance < p["min_significance"]:
            continue
        accts = grouped[g_ptr[gid] : g_ptr[gid + 1]]  # sorted account codes
        formed = accts[core[accts] == gid]
        n_core = max(int(core_size[gid]), 2)
        density = 2.0 * n_edges_in[gid] / (n_core * (n_core - 1))
        sync_share = float(
            stats.joined_streams[formed].sum() / max(streams_per_acct[formed].sum(), 1.0)
        )
        if sync_share < p["min_sync_share"]:
            continue
        young_share: float | None = None
        young_n = 0
        if ages is not None:
            a_g = ages[accts]
            known = ~np.isnan(a_g)
            if known.any():
                young_n = int((a_g[known] <= young_days).sum())
                young_share = young_n / int(known.sum())
        if n < p["corroborate_below"]:
            if market is None:
                market = _MarketShares.of(arr, creators, accounts, ref, young_days)
            g_streams = np.unique(stats.burst_stream[stats.burst_group == gid])
            n_known = int((~np.isnan(ages[accts])).sum()) if ages is not None else 0
            corroboration = market.corroboration(g_streams, young_n, n_known)
            if corroboration < p["min_corroboration"]:
                continue
        ev_idx = ev_all[ev_ptr[gid] : ev_ptr[gid + 1]]
        ev_creators = creators[arr.stream[ev_idx]]
        cr = pd.Series(ev_creators).fillna("?").value_counts()
        cr = cr.sort_index().sort_values(ascending=False, kind="stable")
        total_ev = int(ev_idx.size)
        top_share = cr.iloc[:3].sum() / max(total_ev, 1)
        bens = [str(c) for c, k in cr.items() if c != "?" and (k / total_ev >= 0.2)]
        if not bens and len(cr) and cr.index[0] != "?":
            bens = [str(cr.index[0])]
        member_scores = np.clip(landed[accts] / max(n_bursts, 1), 0.0, 1.0)
        burst_strength = min(1.0, n_bursts / (2.0 * min_bursts))
        wdens = float(wdeg[formed].sum() / (n_core * (n_core - 1)))
        parts = [
            ("significance_log10", significance, p["min_significance"], 0.0),
            ("synchronised_share", sync_share, p["min_sync_share"], 0.3),
            ("weighted_density", wdens, p["min_density"] * p["min_sync_rate"], 0.25),
            ("distinct_bursts", float(n_bursts), float(min_bursts), 0.2),
            ("target_focus_top3", float(top_share), 0.0, 0.1),
        ]
        values = [0.0, sync_share, wdens, burst_strength, float(top_share)]
        if young_share is not None:
            parts.append(("young_account_share", young_share, 0.0, 0.15))
            values.append(young_share)
        weights = [x[3] for x in parts]
        score = float(np.dot(values, weights) / sum(weights))
        signals = [Signal(nm, round(float(v), 6), float(th), wt) for nm, v, th, wt in parts]
        signals += [
            Signal("group_size", float(n), float(min_group), 0.0),
            Signal("pair_density", round(float(density), 6), p["min_density"], 0.0),
            Signal("synchronised_events", float(total_ev), 0.0, 0.0),
            Signal("target_creators", float(len(cr)), 0.0, 0.0),
        ]
        # evidence rows, in time order
        ev_sorted = ev_idx[np.lexsort((arr.acct[ev_idx], arr.t[ev_idx]))][: p["max_evidence"]]
        src = engagements.iloc[arr.row[ev_sorted]]
        evidence = [
            {
                "account_id": str(acc),
                "stream_id": str(st),
                "creator_id": None if pd.isna(c) else str(c),
                "kind": str(k),
                "ts": iso(ts),
            }
            for acc, st, c, k, ts in zip(
                src["account_id"],
                src["stream_id"],
                creators[arr.stream[ev_sorted]],
                src["kind"],
                src["ts"],
                strict=True,
            )
        ]
        members = [
            Member(str(arr.account_ids[ac]), "engager", round(float(s), 6))
            for ac, s in zip(accts, member_scores, strict=True)
        ]
        top = cr.index[0] if len(cr) else "?"
        top_n = int(np.unique(arr.stream[ev_idx][ev_creators == top]).size) if len(cr) else 0
        who = f"{n} accounts"
        if young_share is not None and young_n:
            who += f" ({young_n} created in the last {young_days:g} days)"
        others = f" and {len(cr) - 1} other creator(s)" if len(cr) > 1 else ""
        mine = stats.burst_group == gid
        within = float(np.median(burst_span[mine])) if mine.any() else 0.0
        explanation = (
            f"{who} acted together on {n_bursts} streams, {top_n} of them by creator "
            f"{top}{others}, half the time within {_fmt_seconds(within)} of each other; "
            f"{sync_share:.0%} of the streams they engaged with saw them act in sync "
            f"({total_ev} synchronised events)."
        )
        findings.append(
            Finding.build(
                kind=KIND,
                score=score,
                members=members,
                beneficiaries=[Beneficiary(c, "creator") for c in bens],
                signals=signals,
                explanation=explanation,
                detector=info,
                evidence={"engagements": evidence},
            )
        )
    return rank(findings)


def detect_lockstep_tables(tables: MarketTables, **params: Any) -> list[Finding]:
    """:func:`detect_lockstep` on a :class:`MarketTables` (``as_of`` from the tables)."""
    params.setdefault("as_of", tables.reference_time())
    return detect_lockstep(
        tables.engagements,
        streams=tables.streams,
        accounts=tables.accounts,
        follows=tables.follows,
        **params,
    )
