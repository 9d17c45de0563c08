"""Lockstep engagement: groups of accounts that act on the same streams at the same moments.

The detector follows CopyCatch (Beutel et al., 2013) and SynchroTrap (Cao et
al., 2014): an engagement farm's controller makes its accounts arrive, like,
comment or gift on a stream within seconds of each other, and does so again
and again on the streams it is paid to boost. The steps:

1. **Arrivals.** For each account, stream and kind only the first event counts
   (the moment the account turned up and acted). Repeated likes or comments
   of an active viewer would otherwise line up with other viewers by chance.
2. **Buckets.** Followers are notified when a stream starts, so on some
   creators' streams fans arrive together then for an innocent reason. Each
   creator's usual arrival curve is measured: per stream and per window since
   the start, the arrivals over what a flat rate would bring, and the median
   over the creator's streams. Where that median is at least ``surge_level``
   from the start on (a surge that recurs on most of the creator's streams),
   the arrivals of those first windows, at most ``start_grace_s`` seconds,
   are set aside; a burst at the start of one stream (a farm's) is not a
   recurring surge and is kept. The other arrivals are bucketed
   by (stream, time window) on two grids staggered by half a window, so a
   burst that straddles a window boundary falls whole into one bucket of the
   other grid. All pairwise work is local
   to a bucket. Buckets with more than ``max_bucket`` accounts (a viral
   moment: thousands arriving together) are skipped: every pair in them is
   weak evidence and they would cost quadratic work.
3. **Pairs.** For every pair of accounts, count the distinct *bursts* they
   shared (a stream and a moment: shared buckets of one stream less than two
   windows apart are one burst), the distinct streams of those bursts
   (``n_sync``) and the streams both engaged with at all (``n_both``). The
   count is done row by row (a sparse product of the account x bucket matrix
   with its transpose, compiled with numba), so no list of all co-acting pairs
   is ever built; accounts whose buckets cannot hold ``min_shared_windows``
   bursts with anyone are left out of it. A pair is an edge when it shared
   ``min_shared_windows`` bursts and its synchrony rate
   ``n_sync / n_both >= min_sync_rate`` (fans of one creator share every
   stream but rarely act together). Two shared
   bursts are enough for an edge because groups, not pairs, are tested: bots
   that join half of their farm's bursts share few bursts pairwise.
4. **Groups.** The edges form an igraph graph clustered with Leiden (the
   Constant Potts Model, seeded), which keeps rings apart and guarantees
   connected groups. Members that joined fewer than ``min_member_bursts``
   group bursts (buckets where ``burst_quorum`` of the group co-acted) are
   dropped.
5. **Significance.** Each group is tested against a null model of
   independent arrivals: on each stream, the ``m`` members present after the
   start arrive in a window with the probability that *background* accounts
   (those with no lockstep edge at all) arrived in it, Laplace-smoothed over
   the stream's windows (from the end of its start grace to ``ended_at``).
   Popular moments (a viral clip, a flash sale) thus explain crowds, quiet
   moments do not. Per stream, the chance that some window holds as many
   members as the busiest group window did is bounded by the expected number
   of such windows (a scan statistic with a union bound); the streams'
   p-values are combined by Fisher's method. The test is size-aware: ten
   accounts together six times on one creator's streams is far less likely
   than three accounts together twice on a crowded stream.
6. **Signals.** A group is reported when it has ``min_group`` accounts,
   shares ``min_shared_windows`` bursts, reaches ``min_significance``
   (``-log10 p``), and passes the light density and synchronised-share floors
   (``min_density``, ``min_sync_share``), which the significance alone does
   not guarantee because groups are selected from the data before they are
   tested. Young accounts and a narrow set of target creators raise the score.

:func:`lockstep_pairs` exposes the co-acting pairs batch by batch (the iterator inside);
:func:`detect_lockstep` is the function outside. The Spark engine
(:mod:`ringscope.engines.spark.lockstep`) runs the same steps with the pair
count of step 3 on Spark.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ringscope.algorithms.base import MarketTables, Seed, iso, seed_int
from ringscope.errors import InputError
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, rank

NAME = "lockstep"
#: igraph's random generator is process-wide; Leiden calls take turns with it.
_IGRAPH_RNG_LOCK = threading.Lock()
VERSION = "2.1.0"
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
    return _Arrivals(
        account_ids=np.asarray(account_ids, dtype=object),
        stream_ids=np.asarray(stream_ids, dtype=object),
        kinds=np.asarray(kind_ids, dtype=object),
        acct=acct[sel],
        stream=stream[sel],
        kind=kind[sel],
        t=t[sel],
        row=pos[sel],
    )


@dataclass(frozen=True)
class _Buckets:
    """Bucket membership: one entry per (bucket, account), sorted by bucket then account."""

    bucket: np.ndarray  # bucket number of each entry
    acct: np.ndarray
    stream: np.ndarray  # stream of the entry's bucket
    start: np.ndarray  # per bucket: first entry
    size: np.ndarray  # per bucket: number of accounts
    bucket_stream: np.ndarray  # per bucket: stream
    bucket_t0: np.ndarray  # per bucket: window start (seconds)
    bucket_grid: np.ndarray  # per bucket: grid (0 or 1)
    entry_arrival: np.ndarray  # per entry: index of one arrival behind it (the earliest)


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


def _start_graces(
    streams: pd.DataFrame,
    arr: _Arrivals,
    starts: np.ndarray | None,
    *,
    window_s: float,
    max_grace_s: float,
    surge_level: float,
) -> np.ndarray | None:
    """Seconds after each stream's start during which arrivals are set aside.

    Followers are notified when a stream starts, so on some creators' streams
    many accounts arrive together then for an innocent reason. The creator's
    usual arrival curve tells: for each of its streams and each window
    (``window_s``) since the start, the accounts that arrived then over the
    number a flat arrival rate over the stream would bring (plus one, which
    keeps small streams from looking busy by chance); the median over the
    creator's streams is the creator's typical intensity. A creator's streams
    get as much grace as its leading run of windows at or above
    ``surge_level`` covers, at most ``max_grace_s``: a surge that recurs at
    the start of most of the creator's streams is set aside, a burst on one
    stream (a farm's) is not. ``surge_level`` 0 gives every stream
    ``max_grace_s``. None without stream starts.
    """
    if starts is None:
        return None
    n_s = arr.stream_ids.size
    if surge_level <= 0 or max_grace_s <= 0:
        return np.full(n_s, float(max(max_grace_s, 0.0)))
    n_bins = int(np.ceil(max_grace_s / window_s))
    # first arrival of each account on each stream (arrivals are sorted by account, stream)
    new_run = np.ones(arr.t.size, dtype=bool)
    new_run[1:] = (arr.acct[1:] != arr.acct[:-1]) | (arr.stream[1:] != arr.stream[:-1])
    run_lo = np.flatnonzero(new_run)
    t_first = np.minimum.reduceat(arr.t, run_lo) if run_lo.size else arr.t[:0]
    s_run = arr.stream[run_lo]
    n_acc = np.bincount(s_run, minlength=n_s).astype(np.float64)
    since = t_first - starts[s_run]
    k = np.floor(since / window_s)
    ok = (k >= 0) & (k < n_bins)  # NaN starts fall out here
    counts = np.bincount(
        s_run[ok] * n_bins + k[ok].astype(np.int64), minlength=n_s * n_bins
    ).reshape(n_s, n_bins)
    # stream length: started_at to ended_at, else to the last arrival
    last = np.full(n_s, -np.inf)
    np.maximum.at(last, arr.stream, arr.t.astype(np.float64))
    ended = _stream_ends(streams, arr)
    end = last if ended is None else np.where(np.isnan(ended), last, ended)
    length = np.maximum(np.nan_to_num(end - starts, nan=window_s), window_s)
    flat = n_acc * window_s / length
    rel = counts / (flat[:, None] + 1.0)
    known = ~np.isnan(starts) & (n_acc > 0)
    creator = (
        streams.assign(stream_id=streams["stream_id"].astype(str))
        .drop_duplicates("stream_id")
        .set_index("stream_id")["creator_id"]
        .reindex(pd.Index(arr.stream_ids.astype(str)))
    )
    # streams without a creator stand alone
    label = (
        creator.astype(object)
        .where(creator.notna(), "\0stream:" + creator.index.to_series())
        .astype(str)
    )
    med = pd.DataFrame(rel[known]).groupby(label.to_numpy()[known]).median()
    lead = np.cumprod(med.to_numpy() >= surge_level, axis=1).sum(axis=1)
    grace_of = pd.Series(np.minimum(lead * window_s, max_grace_s), index=med.index)
    grace = grace_of.reindex(label.to_numpy()).to_numpy(dtype=np.float64)
    return np.nan_to_num(grace, nan=0.0)


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


def _stream_windows(
    streams: pd.DataFrame,
    arr: _Arrivals,
    starts: np.ndarray | None,
    *,
    window_s: float,
    grace_s: float | np.ndarray,
) -> np.ndarray:
    """Number of windows of each stream after its grace period.

    The span runs from ``started_at + grace`` (else the first arrival) to
    ``ended_at`` (else the last arrival), at least one window.
    """
    n_s = arr.stream_ids.size
    first = np.full(n_s, np.inf)
    last = np.full(n_s, -np.inf)
    np.minimum.at(first, arr.stream, arr.t.astype(np.float64))
    np.maximum.at(last, arr.stream, arr.t.astype(np.float64))
    lo = first
    if starts is not None:
        lo = np.where(np.isnan(starts), first, starts + grace_s)
    ended = _stream_ends(streams, arr)
    hi = last if ended is None else np.where(np.isnan(ended), last, np.maximum(ended, last))
    span = np.nan_to_num(hi - lo, nan=0.0, posinf=0.0, neginf=0.0)
    return np.maximum(1, np.ceil(np.maximum(span, 0.0) / window_s)).astype(np.int64)


def _buckets(
    arr: _Arrivals,
    *,
    window_s: float,
    by_kind: bool,
    starts: np.ndarray | None = None,
    grace_s: float | np.ndarray = 0.0,
) -> _Buckets:
    w = float(window_s)
    base = np.arange(arr.t.size)
    if starts is not None and np.any(np.asarray(grace_s) > 0):
        since = arr.t - starts[arr.stream]
        grace = grace_s[arr.stream] if isinstance(grace_s, np.ndarray) else grace_s
        base = base[~(since < grace)]  # unknown starts (NaN) are kept
    n = base.size
    grids = []
    for g, offset in enumerate((0.0, w / 2.0)):
        win = np.floor((arr.t[base] - offset) / w).astype(np.int64)
        t0 = (win * w + offset).astype(np.int64)
        grids.append((np.full(n, g, dtype=np.int64), win, t0))
    grid = np.concatenate([x[0] for x in grids])
    win = np.concatenate([x[1] for x in grids])
    t0 = np.concatenate([x[2] for x in grids])
    idx = np.concatenate([base, base])
    stream = arr.stream[idx]
    kind = arr.kind[idx] if by_kind else np.zeros(idx.size, dtype=np.int64)
    acct = arr.acct[idx]
    # within one bucket the window start is the same, so time since it orders as time
    order = _order(stream, kind, grid, win, acct, arr.t[idx] - t0)
    stream, kind, grid, win, acct, t0, idx = (
        x[order] for x in (stream, kind, grid, win, acct, t0, idx)
    )
    m = stream.size
    new_bucket = np.ones(m, dtype=bool)
    if m:
        new_bucket[1:] = (
            (stream[1:] != stream[:-1])
            | (kind[1:] != kind[:-1])
            | (grid[1:] != grid[:-1])
            | (win[1:] != win[:-1])
        )
    # one entry per (bucket, account): several kinds of one account in one bucket count once
    new_entry = new_bucket.copy()
    if m:
        new_entry[1:] |= acct[1:] != acct[:-1]
    keep = new_entry
    bucket = np.cumsum(new_bucket) - 1
    bucket, acct, stream, t0, idx = bucket[keep], acct[keep], stream[keep], t0[keep], idx[keep]
    grid = grid[keep]
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]]) if bucket.size else bucket
    sizes = np.diff(np.r_[starts, bucket.size]) if bucket.size else bucket
    return _Buckets(
        bucket=np.cumsum(np.r_[True, bucket[1:] != bucket[:-1]]) - 1 if bucket.size else bucket,
        acct=acct,
        stream=stream,
        start=starts.astype(np.int64),
        size=sizes.astype(np.int64),
        bucket_stream=stream[starts] if bucket.size else stream,
        bucket_t0=t0[starts] if bucket.size else t0,
        bucket_grid=grid[starts] if bucket.size else grid,
        entry_arrival=idx,
    )


# --------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class _CodePairs:
    a: np.ndarray
    b: np.ndarray
    stream: np.ndarray
    bucket: np.ndarray
    bucket_size: int


def _code_pairs(bk: _Buckets, *, max_bucket: int) -> Iterator[_CodePairs]:
    """All pairs of accounts sharing a bucket, by bucket size (account a < account b)."""
    sizes = bk.size
    for k in np.unique(sizes):
        k = int(k)
        if k < 2 or k > max_bucket:
            continue
        sel = np.flatnonzero(sizes == k)
        iu, ju = np.triu_indices(k, 1)
        per = iu.size
        step = max(1, _PAIR_CHUNK // per)
        for lo in range(0, sel.size, step):
            chunk = sel[lo : lo + step]
            base = bk.start[chunk][:, None]
            a = bk.acct[(base + iu[None, :]).ravel()]
            b = bk.acct[(base + ju[None, :]).ravel()]
            bucket = np.repeat(chunk, per)
            yield _CodePairs(
                a=a, b=b, stream=bk.bucket_stream[bucket], bucket=bucket, bucket_size=k
            )


@dataclass(frozen=True)
class PairBatch:
    """Pairs of accounts that co-acted in buckets of one size.

    One row per (pair, bucket): ``account_a < account_b``; ``stream_id`` is the
    bucket's stream and ``bucket_size`` the number of accounts in the bucket.
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

    The iterator behind :func:`detect_lockstep`: each batch holds the pairs of
    buckets of one size (split further when large), so a caller can count,
    sample or stop early without materialising every pair.

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
        Buckets with more accounts are skipped.

    Yields
    ------
    PairBatch
    """
    _check_columns(engagements, "engagements", ("account_id", "stream_id", "kind", "ts"))
    _check_params(window_s=window_s, max_bucket=max_bucket)
    if engagements.empty:
        return
    arr = _arrivals(engagements, kinds)
    bk = _buckets(arr, window_s=window_s, by_kind=by_kind)
    for cp in _code_pairs(bk, max_bucket=max_bucket):
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


def _bursts(key: np.ndarray, stream: np.ndarray, t0: np.ndarray, gap: float) -> np.ndarray:
    """Mark the first bucket of each burst: buckets of one key and stream whose
    window starts lie within ``gap`` seconds of the previous one are one burst.
    The inputs must be sorted by (key, stream, t0)."""
    first = np.ones(key.size, dtype=bool)
    if key.size > 1:
        first[1:] = (key[1:] != key[:-1]) | (stream[1:] != stream[:-1]) | (t0[1:] - t0[:-1] > gap)
    return first


def _reach_kernel(
    acct_ptr: np.ndarray,
    acct_bucket: np.ndarray,
    b_size: np.ndarray,
    b_stream: np.ndarray,
    b_t0: np.ndarray,
    max_bucket: int,
    gap: float,
    cap: int,
) -> np.ndarray:
    """The most bursts each account could share with any other account (up to ``cap``).

    A pair's shared buckets are a subset of each one's buckets, and its
    bursts start at buckets more than ``gap`` seconds apart on one stream; so
    an account shares at most as many bursts as the largest set of its
    buckets (of a countable size) that lie more than ``gap`` apart per
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
            k = b_size[j]
            if k < 2 or k > max_bucket:
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
    b_size: np.ndarray,
    m_start: np.ndarray,
    m_acct: np.ndarray,
    b_stream: np.ndarray,
    b_t0: np.ndarray,
    stream_ptr: np.ndarray,
    acct_stream: np.ndarray,
    st: np.ndarray,
    a_lo: int,
    a_hi: int,
    max_bucket: int,
    min_bursts: int,
    gap: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Co-burst counts of the pairs (a, b), ``a_lo <= a < a_hi``, ``a < b``.

    Row by row (Gustavson's sparse product of the account x bucket matrix with
    its transpose): for account ``a`` its buckets are walked in (stream, time)
    order and every later account ``b`` met in them updates a dense counter,
    so no pair list is ever materialised and only pairs with at least
    ``min_bursts`` bursts are returned: (a, b, bursts, burst streams, streams
    both engaged with). Bucket ``j`` counts when its full size ``b_size[j]``
    lies in [2, ``max_bucket``]; its members walked are
    ``m_acct[m_start[j]:m_start[j + 1]]`` (sorted), which may leave out
    accounts that cannot reach ``min_bursts``. ``st`` holds four counters
    per account side by side (one cache line): bursts, burst streams, last
    shared stream (-1: none yet) and last shared window start (``b_t0`` is
    relative, so the counters fit in int32). Written in the numba-compatible
    subset of Python.
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
            k = b_size[j]
            if k < 2 or k > max_bucket:
                continue
            s = b_stream[j]
            t = b_t0[j]
            lo = m_start[j]
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
(a, b, bursts, burst streams, streams both engaged with), ordered by (a, b)."""


def _able_accounts(
    bk: _Buckets, n_acct: int, *, max_bucket: int, min_bursts: int, gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The accounts whose buckets can hold ``min_bursts`` bursts with some other account.

    Returns the bucket of each entry, the order of the entries by (account,
    stream, window start), the entries per account and the mask of able
    accounts (the others cannot be in a pair with ``min_bursts`` bursts, see
    :func:`_reach_kernel`).
    """
    nb = bk.size.size
    entry_bucket = np.repeat(np.arange(nb, dtype=np.int64), bk.size)
    order = _order(bk.acct, bk.stream, bk.bucket_t0[entry_bucket])
    acct_bucket = entry_bucket[order]
    acct_n = np.bincount(bk.acct, minlength=n_acct)
    acct_ptr = np.zeros(n_acct + 1, dtype=np.int64)
    np.cumsum(acct_n, out=acct_ptr[1:])
    reach = _compiled(_reach_kernel) or _reach_kernel
    able = (
        reach(
            acct_ptr,
            acct_bucket,
            bk.size,
            bk.bucket_stream,
            bk.bucket_t0,
            int(max_bucket),
            float(gap),
            int(min_bursts),
        )
        >= min_bursts
    )
    return entry_bucket, order, acct_n, np.asarray(able, dtype=bool)


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
    one burst). Accounts whose buckets cannot hold ``min_bursts`` bursts with
    anyone (most viewers: one arrival, one moment) are left out of the pair
    work. The account range is split by work among ``workers`` threads.
    """
    n_acct = arr.account_ids.size
    e = np.zeros(0, dtype=np.int64)
    if bk.acct.size == 0:
        return e, e, e, e, e
    nb = bk.size.size
    # accounts that can reach min_bursts with someone; the others leave the pair work
    entry_bucket, order, acct_n, able = _able_accounts(
        bk, n_acct, max_bucket=max_bucket, min_bursts=min_bursts, gap=gap
    )
    acct_bucket = entry_bucket[order]
    kernel = _compiled(_pair_kernel) or _pair_kernel
    keep = able[bk.acct]
    m_acct = bk.acct[keep]
    m_start = np.zeros(nb + 1, dtype=np.int64)
    np.cumsum(np.bincount(entry_bucket[keep], minlength=nb), out=m_start[1:])
    acct_ptr = np.zeros(n_acct + 1, dtype=np.int64)
    np.cumsum(np.where(able, acct_n, 0), out=acct_ptr[1:])
    acct_bucket = acct_bucket[able[bk.acct[order]]]
    n_s = np.int64(max(arr.stream_ids.size, 1))
    as_key = _unique(arr.acct * n_s + arr.stream)
    acct_stream = as_key % n_s
    stream_ptr = np.zeros(n_acct + 1, dtype=np.int64)
    np.cumsum(np.bincount(as_key // n_s, minlength=n_acct), out=stream_ptr[1:])
    # split accounts so that each part has about the same pair work
    m_size = np.diff(m_start)
    size = np.where((bk.size >= 2) & (bk.size <= max_bucket), m_size, 0)
    work = np.cumsum(np.bincount(m_acct, weights=size[entry_bucket[keep]], minlength=n_acct))
    parts = max(1, int(workers)) * 4
    cuts = np.searchsorted(work, np.linspace(0, work[-1], parts + 1)[1:-1])
    bounds = np.unique(np.r_[0, cuts, n_acct]).astype(np.int64)
    t_rel = bk.bucket_t0 - bk.bucket_t0.min()
    small = int(t_rel.max()) < 2**31 - 1 and arr.stream_ids.size < 2**31 - 1
    st_type = np.int32 if small else np.int64
    args = (
        acct_ptr,
        acct_bucket,
        bk.size,
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
        return kernel(*args, st, lo, hi, int(max_bucket), int(min_bursts), float(gap))

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


@dataclass(frozen=True)
class _GroupStats:
    """Group bursts of every candidate group at once (entries of grouped accounts)."""

    quorum: np.ndarray  # per group: least members in a bucket for a group burst
    n_bursts: np.ndarray  # per group: distinct group bursts
    n_burst_streams: np.ndarray  # per group: distinct streams of its bursts
    joined: np.ndarray  # per account: group bursts it joined
    joined_streams: np.ndarray  # per account: streams on which it joined a group burst
    key: np.ndarray  # sorted (group * n_buckets + bucket) of buckets the groups touched
    count: np.ndarray  # members of the group in that bucket
    sync_entry: np.ndarray  # entries in group bursts, ordered by group
    sync_ptr: np.ndarray  # per group: slice of sync_entry
    burst_gs: np.ndarray  # sorted (group * n_streams + stream) with group bursts
    burst_gs_count: np.ndarray  # group bursts on that stream


def _group_bursts(
    bk: _Buckets, acct_group: np.ndarray, n_groups: int, *, burst_quorum: float, gap: float
) -> _GroupStats:
    """Buckets in which a quorum of a group co-acted, merged into bursts, for all groups."""
    nb_ = bk.size.size
    n_b = np.int64(max(nb_, 1))
    gsize = np.bincount(acct_group[acct_group >= 0], minlength=n_groups)
    quorum = np.maximum(3, np.ceil(burst_quorum * gsize - 1e-9)).astype(np.int64)
    entry_bucket = np.repeat(np.arange(bk.size.size, dtype=np.int64), bk.size)
    eg = acct_group[bk.acct]
    ent = np.flatnonzero(eg >= 0)
    key_all = eg[ent] * n_b + entry_bucket[ent]
    key, inv, count = _unique_inverse(key_all)
    k_group = key // n_b
    k_bucket = key % n_b
    is_burst = count >= quorum[k_group]
    # merge burst buckets of one group and stream less than ``gap`` apart
    bb = np.flatnonzero(is_burst)
    o = _order(k_group[bb], bk.bucket_stream[k_bucket[bb]], bk.bucket_t0[k_bucket[bb]])
    bb = bb[o]
    first = _bursts(k_group[bb], bk.bucket_stream[k_bucket[bb]], bk.bucket_t0[k_bucket[bb]], gap)
    burst_id = np.full(key.size, -1, dtype=np.int64)
    burst_id[bb] = np.cumsum(first) - 1
    n_bursts = np.bincount(k_group[bb][first], minlength=n_groups)
    n_st = np.int64(int(bk.bucket_stream.max()) + 1) if nb_ else np.int64(1)
    burst_gs, burst_gs_count = _unique(
        (k_group[bb] * n_st + bk.bucket_stream[k_bucket[bb]])[first], return_counts=True
    )
    n_burst_streams = np.bincount(burst_gs // n_st, minlength=n_groups)
    # entries in group bursts, and what each account joined
    in_burst = is_burst[inv]
    sync = ent[in_burst]
    n_acct = acct_group.size
    n_bid = np.int64(int(burst_id.max()) + 1) if burst_id.size else np.int64(1)
    ab = _unique(bk.acct[sync] * n_bid + burst_id[inv[in_burst]])
    joined = np.bincount(ab // n_bid, minlength=n_acct)
    n_s = np.int64(max(int(bk.stream.max()) + 1, 1)) if bk.stream.size else np.int64(1)
    as_ = _unique(bk.acct[sync] * n_s + bk.stream[sync])
    joined_streams = np.bincount(as_ // n_s, minlength=n_acct)
    so = _order(eg[sync])
    sync = sync[so]
    sync_ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(eg[sync], minlength=n_groups), out=sync_ptr[1:])
    return _GroupStats(
        quorum=quorum,
        n_bursts=n_bursts,
        n_burst_streams=n_burst_streams,
        joined=joined,
        joined_streams=joined_streams,
        key=key,
        count=count,
        sync_entry=sync,
        sync_ptr=sync_ptr,
        burst_gs=burst_gs,
        burst_gs_count=burst_gs_count,
    )


def _group_log10_p(
    bk: _Buckets,
    acct_group: np.ndarray,
    n_groups: int,
    gst: _GroupStats,
    window_s: float,
    stream_w: np.ndarray,
    linked: np.ndarray,
) -> np.ndarray:
    """Significance of each group's bursts: ``-log10 p`` under independent arrivals.

    For each group and each stream with at least ``quorum`` members present
    (``m``), each member is taken to arrive in a window with the probability
    that background accounts (not ``linked`` by any lockstep edge) arrived in
    it, Laplace-smoothed over the stream's ``stream_w`` windows. The p-value of
    the stream is the expected number of windows (both grids) holding at least
    as many members as the group's busiest window there (a union bound, so
    conservative); the streams' p-values are combined by Fisher's method.
    """
    from scipy.stats import binom, chi2

    out = np.zeros(n_groups, dtype=np.float64)
    nb = bk.size.size
    if nb == 0 or n_groups == 0:
        return out
    n_b = np.int64(nb)
    entry_bucket = np.repeat(np.arange(nb, dtype=np.int64), bk.size)
    # lanes: buckets of one stream, kind and grid are contiguous
    lane_first = np.r_[
        True,
        (bk.bucket_stream[1:] != bk.bucket_stream[:-1])
        | (bk.bucket_grid[1:] != bk.bucket_grid[:-1])
        | (bk.bucket_t0[1:] < bk.bucket_t0[:-1]),
    ]
    lane = np.cumsum(lane_first) - 1
    lane_lo = np.flatnonzero(lane_first)
    lane_hi = np.r_[lane_lo[1:], nb]
    lane_n = np.add.reduceat(bk.size, lane_lo)
    lane_w = (bk.bucket_t0[lane_hi - 1] - bk.bucket_t0[lane_lo]) // max(window_s, 1e-9) + 1
    lane_stream = bk.bucket_stream[lane_lo]
    lane_w = np.maximum(lane_w, stream_w[lane_stream])
    # members of each group present on each stream
    eg = acct_group[bk.acct]
    ent = np.flatnonzero(eg >= 0)
    n_s = np.int64(int(bk.stream.max()) + 1)
    gas = _unique((eg[ent] * np.int64(acct_group.size) + bk.acct[ent]) * n_s + bk.stream[ent])
    gs_key, m = _unique((gas // n_s // acct_group.size) * n_s + gas % n_s, return_counts=True)
    g_of, s_of = gs_key // n_s, gs_key % n_s
    ok = m >= gst.quorum[g_of]
    g_of, s_of, m = g_of[ok], s_of[ok], m[ok]
    if g_of.size == 0:
        return out
    # the largest number of members seen together in one window of each stream
    n_st = np.int64(int(bk.bucket_stream.max()) + 1)
    t_key = (gst.key // n_b) * n_st + bk.bucket_stream[gst.key % n_b]
    t_order = _order(t_key, gst.count)
    t_last = np.r_[t_key[t_order][1:] != t_key[t_order][:-1], True]
    top_key, top_count = t_key[t_order][t_last], gst.count[t_order][t_last]
    key = g_of * n_st + s_of
    pos = np.minimum(np.searchsorted(top_key, key), max(top_key.size - 1, 0))
    c_max = np.where(top_key[pos] == key, top_count[pos], 0) if top_key.size else 0 * key
    # (group, lane) pairs for those streams
    lo_s = np.searchsorted(lane_stream, s_of, side="left")
    hi_s = np.searchsorted(lane_stream, s_of, side="right")
    rep = hi_s - lo_s
    gl_g = np.repeat(g_of, rep)
    gl_m = np.repeat(m, rep)
    gl_lane = np.repeat(lo_s, rep) + (np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep))
    gs_i = np.repeat(np.arange(g_of.size), rep)
    # background: arrivals of accounts in no candidate group, per bucket and lane
    grouped_b = np.bincount(entry_bucket[linked[bk.acct]], minlength=nb)
    bg_b = bk.size - grouped_b
    bg_lane = np.bincount(lane, weights=bg_b, minlength=lane_n.size)
    denom = (bg_lane[gl_lane] + lane_w[gl_lane]).astype(np.float64)
    q = np.maximum(c_max[gs_i], 1)
    # empty windows of the lane
    n_nonempty = lane_hi[gl_lane] - lane_lo[gl_lane]
    lam = np.maximum(lane_w[gl_lane] - n_nonempty, 0) * binom.sf(q - 1, gl_m, 1.0 / denom)
    # every bucket of the lane
    nrep = n_nonempty
    bj_i = np.repeat(np.arange(gl_g.size), nrep)
    bj = np.repeat(lane_lo[gl_lane], nrep) + (
        np.arange(nrep.sum()) - np.repeat(np.cumsum(nrep) - nrep, nrep)
    )
    p_j = (bg_b[bj] + 1.0) / denom[bj_i]
    tail = binom.sf(q[bj_i] - 1, gl_m[bj_i], np.minimum(p_j, 1.0))
    lam = lam + np.bincount(bj_i, weights=tail, minlength=gl_g.size)
    # per (group, stream): the chance that some window holds c_max members (union bound)
    lam_gs = np.bincount(gs_i, weights=lam, minlength=g_of.size)
    with np.errstate(divide="ignore"):
        ln_p = np.where(c_max >= gst.quorum[g_of], np.log(np.clip(lam_gs, 1e-300, 1.0)), 0.0)
    # Fisher's method over the group's streams: -2 sum ln p ~ chi2(2k)
    stat = -2.0 * np.bincount(g_of, weights=ln_p, minlength=n_groups)
    k = np.bincount(g_of, minlength=n_groups)
    with np.errstate(divide="ignore"):
        lp = chi2.logsf(stat, 2 * np.maximum(k, 1)) / np.log(10.0)
    out = np.where((k > 0) & (gst.n_bursts > 0), np.minimum(-lp, 300.0), 0.0)
    return np.asarray(out, dtype=np.float64)


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
    if "max_bucket" in p and p["max_bucket"] < 2:
        raise InputError(f"max_bucket must be at least 2, not {p['max_bucket']}")
    if "min_group" in p and p["min_group"] < 2:
        raise InputError(f"min_group must be at least 2, not {p['min_group']}")
    if "min_shared_windows" in p and p["min_shared_windows"] < 1:
        raise InputError(f"min_shared_windows must be at least 1, not {p['min_shared_windows']}")
    for name in ("min_sync_rate", "min_density", "min_sync_share", "burst_quorum"):
        if name in p and not 0 <= p[name] <= 1:
            raise InputError(f"{name} must lie in [0, 1], not {p[name]}")
    if "resolution" in p and not p["resolution"] >= 0:
        raise InputError(f"resolution must be non-negative, not {p['resolution']}")


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


def _fmt_window(window_s: float) -> str:
    if window_s >= 120 and window_s % 60 == 0:
        return f"{int(window_s // 60)} minutes"
    return f"{window_s:g} seconds"


def detect_lockstep(
    engagements: pd.DataFrame,
    *,
    streams: pd.DataFrame,
    accounts: pd.DataFrame | None = None,
    window_s: float = 120.0,
    start_grace_s: float = 600.0,
    surge_level: float = 1.5,
    by_kind: bool = False,
    kinds: tuple[str, ...] | None = None,
    max_bucket: int = 300,
    min_shared_windows: int = 2,
    min_sync_rate: float = 0.5,
    resolution: float = 0.05,
    min_group: int = 6,
    min_density: float = 0.4,
    burst_quorum: float = 0.3,
    min_sync_share: float = 0.15,
    min_member_bursts: int = 2,
    min_significance: float = 20.0,
    young_days: float = 30.0,
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
        Normalised streams: ``stream_id``, ``creator_id`` (to name the targets).
    accounts : pandas.DataFrame, optional
        Normalised accounts with ``account_id`` and ``created_at``, for the
        young-account signal; without it that signal is left out.
    window_s : float
        Length of a synchronisation window in seconds. Windows lie on two grids
        staggered by half a window, so two arrivals less than ``window_s / 2``
        apart always share a bucket.
    start_grace_s : float
        Longest start grace: arrivals in the first seconds of a stream (by
        ``streams.started_at``) are not evidence of lockstep while the
        creator's streams usually see a surge of arrivals then (a stream's
        start is announced to every follower, and fans arriving together then
        is expected). 0 disables.
    surge_level : float
        Arrival intensity, relative to a flat rate over the stream, that counts
        as a start surge when the median of the creator's streams reaches it
        (1.5: half again as many arrivals as usual). The grace of a creator's
        streams covers the leading windows that reach it, up to
        ``start_grace_s``. 0 gives every stream the whole ``start_grace_s``.
    by_kind : bool
        Bucket each kind of action separately instead of all kinds together.
    kinds : tuple of str, optional
        Only consider these kinds of engagement (default: all).
    max_bucket : int
        Buckets with more accounts than this (viral moments) are skipped.
    min_shared_windows : int
        Distinct bursts (a stream and a moment; buckets of one stream less than
        two windows apart are one burst) two accounts must share to be linked,
        and a group must share to be reported. 2: repetition is required, a
        single shared moment never links two accounts.
    min_sync_rate : float
        Least share of the streams two accounts both engaged with on which they
        acted within one window (separates farms from fans of a creator).
    resolution : float
        Constant Potts Model resolution of Leiden: a group must have an
        average internal edge weight above it. Higher values split more.
    min_group : int
        Least number of accounts in a reported group.
    min_density : float
        Least share of the group's account pairs that are linked (0.4: a
        farm's bots are linked to most of the farm; a chain of chance
        coincidences is not).
    burst_quorum : float
        A group burst is a bucket in which at least this share of the group
        (and at least 3 accounts) co-acted.
    min_sync_share : float
        Least share of the members' streams on which they joined a group burst
        (0.15: camouflage viewing may dilute a farm's share, but an ordinary
        audience's chance coincidences are a smaller share still).
    min_member_bursts : int
        Members that joined fewer group bursts are dropped from the group.
    min_significance : float
        Least ``-log10 p`` of the group's bursts under the null model of
        independent arrivals (20: p below 1e-20; a Bonferroni margin for the
        many groups a large marketplace offers, and for groups being selected
        from the same data they are tested on).
    young_days : float
        Accounts created at most this many days before ``as_of`` count as young.
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
        window_s=window_s,
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
        min_significance=min_significance,
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
    window_s: float,
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
    min_significance: float,
    young_days: float,
    as_of: Any,
    max_evidence: int,
    seed: Seed,
) -> list[Finding]:
    """:func:`detect_lockstep` with the pair count of step 3 done by ``count_pairs``.

    ``count_pairs(bk, arr, *, max_bucket, min_bursts, gap)`` returns what
    :func:`_sync_counts` returns (the Spark engine passes one that runs on
    Spark); the other arguments are those of :func:`detect_lockstep`.
    """
    params: dict[str, Any] = {
        "window_s": float(window_s),
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
        "min_significance": float(min_significance),
        "young_days": float(young_days),
        "max_evidence": int(max_evidence),
        "seed": seed_int(seed),
    }
    _check_params(**params)
    _check_columns(engagements, "engagements", ("account_id", "stream_id", "kind", "ts"))
    _check_columns(streams, "streams", ("stream_id", "creator_id"))
    if accounts is not None:
        _check_columns(accounts, "accounts", ("account_id",))
    info = DetectorInfo(NAME, VERSION, params)
    if engagements.empty:
        return []
    arr = _arrivals(engagements, kinds)
    n_acct, n_stream = arr.account_ids.size, arr.stream_ids.size
    if n_acct < min_group:
        return []
    starts = _stream_starts(streams, arr.stream_ids)
    graces = _start_graces(
        streams,
        arr,
        starts,
        window_s=window_s,
        max_grace_s=start_grace_s,
        surge_level=surge_level,
    )
    grace: float | np.ndarray = start_grace_s if graces is None else graces
    bk = _buckets(arr, window_s=window_s, by_kind=by_kind, starts=starts, grace_s=grace)
    gap = 2.0 * window_s
    a, b, n_sync, n_sync_streams, n_both = count_pairs(
        bk, arr, max_bucket=max_bucket, min_bursts=min_shared_windows, gap=gap
    )
    rate = n_sync_streams / np.maximum(n_both, 1.0)
    keep = rate >= min_sync_rate
    a, b, n_sync, rate = a[keep], b[keep], n_sync[keep], rate[keep]
    if a.size == 0:
        return []

    # graph on the accounts that have an edge, split into components, Leiden on the big ones
    nodes = _unique(np.concatenate([a, b]))
    la, lb = np.searchsorted(nodes, a), np.searchsorted(nodes, b)
    comp = _components(nodes.size, la, lb)
    comp_size = np.bincount(comp)
    big = comp_size[comp] >= min_group
    if not big.any():
        return []
    sub_nodes = np.flatnonzero(big)
    remap = np.full(nodes.size, -1, dtype=np.int64)
    remap[sub_nodes] = np.arange(sub_nodes.size)
    e_keep = big[la] & big[lb]
    ea, eb, ew = remap[la[e_keep]], remap[lb[e_keep]], rate[e_keep]
    membership = _leiden(sub_nodes.size, ea, eb, ew, resolution=resolution, seed=params["seed"])
    group_accts = nodes[sub_nodes]  # account code of each subgraph node

    # groups large enough; members that joined too few group bursts are dropped
    acct_group = np.full(n_acct, -1, dtype=np.int64)
    acct_group[group_accts] = membership
    n_groups = int(membership.max()) + 1
    gsize = np.bincount(membership, minlength=n_groups)
    acct_group[acct_group >= 0] = np.where(
        gsize[acct_group[acct_group >= 0]] >= min_group, acct_group[acct_group >= 0], -1
    )
    if not (acct_group >= 0).any():
        return []
    stats = _group_bursts(bk, acct_group, n_groups, burst_quorum=burst_quorum, gap=gap)
    weak = (acct_group >= 0) & (stats.joined < min_member_bursts)
    acct_group[weak] = -1
    if not (acct_group >= 0).any():
        return []
    stats = _group_bursts(bk, acct_group, n_groups, burst_quorum=burst_quorum, gap=gap)
    gsize = np.bincount(acct_group[acct_group >= 0], minlength=n_groups)
    stream_w = _stream_windows(streams, arr, starts, window_s=window_s, grace_s=grace)
    linked = np.zeros(n_acct, dtype=bool)
    linked[nodes] = True
    log_p = _group_log10_p(bk, acct_group, n_groups, stats, window_s, stream_w, linked)

    # within-group edges of the kept members: density and weighted degree
    ga, gb = acct_group[group_accts[ea]], acct_group[group_accts[eb]]
    same = (ga >= 0) & (ga == gb)
    wdeg = np.bincount(ea[same], weights=ew[same], minlength=sub_nodes.size) + np.bincount(
        eb[same], weights=ew[same], minlength=sub_nodes.size
    )
    node_of_acct = np.full(n_acct, -1, dtype=np.int64)
    node_of_acct[group_accts] = np.arange(group_accts.size)
    n_edges_in = np.bincount(ga[same], minlength=n_groups)

    stream_creator = (
        streams.assign(stream_id=streams["stream_id"].astype(str))
        .drop_duplicates("stream_id")
        .set_index("stream_id")["creator_id"]
        .reindex(pd.Index(arr.stream_ids.astype(str)))
        .to_numpy(dtype=object)
    )
    if as_of is None:
        ref = pd.Timestamp(int(arr.t.max()), unit="s", tz="UTC")
    else:
        ref = pd.Timestamp(as_of)
        ref = ref.tz_localize("UTC") if ref.tzinfo is None else ref.tz_convert("UTC")
    streams_per_acct = np.bincount(
        _unique(arr.acct * np.int64(n_stream) + arr.stream) // n_stream, minlength=n_acct
    )

    findings: list[Finding] = []
    grouped = np.flatnonzero(acct_group >= 0)
    grouped = grouped[np.argsort(acct_group[grouped], kind="stable")]
    ages: np.ndarray | None = None  # of the grouped accounts only (NaN elsewhere)
    ages_grouped = _ages_days(accounts, arr.account_ids[grouped], ref)
    if ages_grouped is not None:
        ages = np.full(n_acct, np.nan)
        ages[grouped] = ages_grouped
    g_ptr = np.zeros(n_groups + 1, dtype=np.int64)
    np.cumsum(gsize, out=g_ptr[1:])
    order_groups = np.lexsort((np.arange(n_groups), -gsize))
    for gid in order_groups:
        n = int(gsize[gid])
        n_bursts = int(stats.n_bursts[gid])
        if n < min_group or n_bursts < min_shared_windows:
            continue
        significance = float(log_p[gid])
        if significance < min_significance:
            continue
        accts = grouped[g_ptr[gid] : g_ptr[gid + 1]]  # sorted account codes
        density = 2.0 * n_edges_in[gid] / (n * (n - 1))
        if density < min_density:
            continue
        sync_entries = stats.sync_entry[stats.sync_ptr[gid] : stats.sync_ptr[gid + 1]]
        sync_share = float(
            stats.joined_streams[accts].sum() / max(streams_per_acct[accts].sum(), 1.0)
        )
        if sync_share < min_sync_share:
            continue
        # synchronised events: the arrivals behind the sync entries (deduplicated)
        ev_idx = np.unique(bk.entry_arrival[sync_entries])
        ev_creators = stream_creator[arr.stream[ev_idx]]
        cr = pd.Series(ev_creators).fillna("?").value_counts()
        cr = cr.sort_index().sort_values(ascending=False, kind="stable")
        total_ev = int(ev_idx.size)
        top_share = cr.iloc[:3].sum() / max(total_ev, 1)
        bens = [str(c) for c, k in cr.items() if c != "?" and (k / total_ev >= 0.2)]
        if not bens and len(cr) and cr.index[0] != "?":
            bens = [str(cr.index[0])]
        participation = np.minimum(1.0, stats.joined[accts] / max(n_bursts, 1))
        deg = wdeg[node_of_acct[accts]] / max(n - 1, 1)
        member_scores = np.clip(np.sqrt(participation * deg), 0.0, 1.0)
        young_share: float | None = None
        young_n = 0
        if ages is not None:
            ga = ages[accts]
            known = ~np.isnan(ga)
            if known.any():
                young_n = int((ga[known] <= young_days).sum())
                young_share = young_n / int(known.sum())
        burst_strength = min(1.0, n_bursts / (2.0 * min_shared_windows))
        wdens = float(wdeg[node_of_acct[accts]].sum() / (n * (n - 1)))
        parts = [
            ("significance_log10", significance, min_significance, 0.0),
            ("synchronised_share", sync_share, min_sync_share, 0.3),
            ("weighted_density", wdens, min_density * min_sync_rate, 0.25),
            ("distinct_bursts", float(n_bursts), float(min_shared_windows), 0.2),
            ("target_focus_top3", float(top_share), 0.0, 0.1),
        ]
        values = [0.0, sync_share, wdens, burst_strength, float(top_share)]
        if young_share is not None:
            parts.append(("young_account_share", young_share, 0.0, 0.15))
            values.append(young_share)
        weights = [p[3] for p in parts]
        score = float(np.dot(values, weights) / sum(weights))
        signals = [Signal(nm, round(float(v), 6), float(th), wt) for nm, v, th, wt in parts]
        signals += [
            Signal("group_size", float(n), float(min_group), 0.0),
            Signal("pair_density", round(float(density), 6), min_density, 0.0),
            Signal("synchronised_events", float(total_ev), 0.0, 0.0),
            Signal("target_creators", float(len(cr)), 0.0, 0.0),
        ]
        # evidence rows, in time order
        ev_sorted = ev_idx[np.lexsort((arr.acct[ev_idx], arr.t[ev_idx]))][:max_evidence]
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
                stream_creator[arr.stream[ev_sorted]],
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
        explanation = (
            f"{who} acted together on {n_bursts} streams, {top_n} of them by creator "
            f"{top}{others}, each time within {_fmt_window(window_s)} of each other; "
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
        tables.engagements, streams=tables.streams, accounts=tables.accounts, **params
    )
