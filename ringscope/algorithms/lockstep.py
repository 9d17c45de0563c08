"""Lockstep engagement: groups of accounts that act on the same streams at the same moments.

The detector follows CopyCatch (Beutel et al., 2013) and SynchroTrap (Cao et
al., 2014): an engagement farm's controller makes its accounts arrive, like,
comment or gift on a stream within seconds of each other, and does so again
and again on the streams it is paid to boost. The steps:

1. **Arrivals.** For each account, stream and kind only the first event counts
   (the moment the account turned up and acted). Repeated likes or comments
   of an active viewer would otherwise line up with other viewers by chance.
2. **Buckets.** Arrivals in the first ``start_grace_s`` seconds of a stream
   are set aside (followers are notified when a stream starts, so fans arrive
   together then for an innocent reason). The other arrivals are bucketed
   by (stream, time window) on two grids staggered by half a window, so a
   burst that straddles a window boundary falls whole into one bucket of the
   other grid. All pairwise work is local
   to a bucket. Buckets with more than ``max_bucket`` accounts (a viral
   moment: thousands arriving together) are skipped: every pair in them is
   weak evidence and they would cost quadratic work.
3. **Pairs.** For every pair of accounts, count the distinct *bursts* they
   shared (a stream and a moment: shared buckets of one stream less than two
   windows apart are one burst), the distinct streams of those bursts
   (``n_sync``) and the streams both engaged with at all (``n_both``). A pair
   is an edge when it shared ``min_shared_windows`` bursts (repetition: a
   one-off viral burst is not lockstep) and its synchrony rate ``n_sync /
   n_both >= min_sync_rate`` (fans of one creator share every stream but
   rarely act together). The edge weight is the synchrony rate.
4. **Groups.** The edges form an igraph graph clustered with Leiden (the
   Constant Potts Model, seeded), which keeps rings apart and guarantees
   connected groups.
5. **Signals.** A group is reported when it has ``min_group`` accounts, is
   dense, shares bursts on several distinct streams, and a large part of its
   members' engagement is synchronised. Young accounts and a narrow set of
   target creators raise the score.

:func:`lockstep_pairs` exposes step 3 batch by batch (the iterator inside);
:func:`detect_lockstep` is the function outside.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ringscope.algorithms.base import MarketTables, Seed, iso, seed_int
from ringscope.errors import InputError
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, rank

NAME = "lockstep"
VERSION = "1.0.0"
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
    ev = engagements.iloc[pos]
    acct, account_ids = pd.factorize(ev["account_id"].astype(str), sort=True)
    stream, stream_ids = pd.factorize(ev["stream_id"].astype(str), sort=True)
    kind, kind_ids = pd.factorize(ev["kind"].astype(str), sort=True)
    t = _seconds(ev["ts"])
    acct = acct.astype(np.int64)
    stream = stream.astype(np.int64)
    kind = kind.astype(np.int64)
    # first event per (account, stream, kind): sort by key then time, keep the first
    order = np.lexsort((pos, t, kind, stream, acct))
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


def _buckets(
    arr: _Arrivals,
    *,
    window_s: float,
    by_kind: bool,
    starts: np.ndarray | None = None,
    grace_s: float = 0.0,
) -> _Buckets:
    w = float(window_s)
    base = np.arange(arr.t.size)
    if starts is not None and grace_s > 0:
        since = arr.t - starts[arr.stream]
        base = base[~(since < grace_s)]  # unknown starts (NaN) are kept
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
    t = arr.t[idx]
    order = np.lexsort((t, acct, win, grid, kind, stream))
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


def _sync_counts(
    bk: _Buckets, n_acct: int, *, max_bucket: int, min_bursts: int, gap: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Co-action counts of account pairs: (a, b, bursts, streams) with a < b.

    ``bursts`` counts distinct bursts (a stream and a moment) the two shared,
    ``streams`` the distinct streams. Pass 1 counts shared buckets per pair and
    keeps the pairs with at least ``min_bursts`` of them (each burst fills at
    least one bucket); pass 2 groups the kept pairs' buckets into bursts.
    """
    n = np.int64(max(n_acct, 1))
    e = np.zeros(0, dtype=np.int64)
    uniq: list[np.ndarray] = []
    cnts: list[np.ndarray] = []
    pending = 0

    def _merge(u: list[np.ndarray], c: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        allu = np.concatenate(u)
        mu, inv = np.unique(allu, return_inverse=True)
        return mu, np.bincount(inv, weights=np.concatenate(c), minlength=mu.size)

    for cp in _code_pairs(bk, max_bucket=max_bucket):
        pk, c = np.unique(cp.a * n + cp.b, return_counts=True)
        uniq.append(pk)
        cnts.append(c.astype(np.float64))
        pending += pk.size
        if pending > 4 * _PAIR_CHUNK:
            mu, mc = _merge(uniq, cnts)
            uniq, cnts, pending = [mu], [mc], mu.size
    if not uniq:
        return e, e, e, e
    mu, mc = _merge(uniq, cnts)
    cand = mu[mc >= min_bursts]
    if cand.size == 0:
        return e, e, e, e
    keys, buckets = [], []
    for cp in _code_pairs(bk, max_bucket=max_bucket):
        pk = cp.a * n + cp.b
        pos = np.minimum(np.searchsorted(cand, pk), cand.size - 1)
        hit = cand[pos] == pk
        keys.append(pk[hit])
        buckets.append(cp.bucket[hit])
    key = np.concatenate(keys)
    bucket = np.concatenate(buckets)
    stream = bk.bucket_stream[bucket]
    t0 = bk.bucket_t0[bucket]
    order = np.lexsort((t0, stream, key))
    key, stream, t0 = key[order], stream[order], t0[order]
    burst_first = _bursts(key, stream, t0, gap)
    stream_first = _bursts(key, stream, np.zeros_like(t0), np.inf)
    pk, start = np.unique(key, return_index=True)
    n_bursts = np.add.reduceat(burst_first.astype(np.int64), start) if key.size else e
    n_streams = np.add.reduceat(stream_first.astype(np.int64), start) if key.size else e
    return pk // n, pk % n, n_bursts, n_streams


# --------------------------------------------------------------------------- clustering


def _leiden(
    n: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, *, resolution: float, seed: int
) -> np.ndarray:
    """Leiden (CPM) membership of nodes 0..n-1 of a weighted undirected graph."""
    import igraph as ig
    import leidenalg

    g = ig.Graph(n=n, edges=np.column_stack([a, b]).astype(np.int64), directed=False)
    part = leidenalg.find_partition(
        g,
        leidenalg.CPMVertexPartition,
        weights=w.astype(np.float64).tolist(),
        resolution_parameter=resolution,
        n_iterations=-1,
        seed=seed,
    )
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
    by_kind: bool = False,
    kinds: tuple[str, ...] | None = None,
    max_bucket: int = 300,
    min_shared_windows: int = 3,
    min_sync_rate: float = 0.5,
    resolution: float = 0.05,
    min_group: int = 6,
    min_density: float = 0.35,
    burst_quorum: float = 0.3,
    min_sync_share: float = 0.25,
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
        Arrivals in the first seconds of a stream (by ``streams.started_at``)
        are not evidence of lockstep: a stream's start is announced to every
        follower, and fans arriving together then is expected. 0 disables.
    by_kind : bool
        Bucket each kind of action separately instead of all kinds together.
    kinds : tuple of str, optional
        Only consider these kinds of engagement (default: all).
    max_bucket : int
        Buckets with more accounts than this (viral moments) are skipped.
    min_shared_windows : int
        Distinct bursts (a stream and a moment; buckets of one stream less than
        two windows apart are one burst) two accounts must share to be linked,
        and a group must share to be reported.
    min_sync_rate : float
        Least share of the streams two accounts both engaged with on which they
        acted within one window (separates farms from fans of a creator).
    resolution : float
        Constant Potts Model resolution of Leiden: a group must have an
        average internal edge weight above it. Higher values split more.
    min_group : int
        Least number of accounts in a reported group.
    min_density : float
        Least share of the group's account pairs that are linked.
    burst_quorum : float
        A group burst is a bucket in which at least this share of the group
        (and at least 3 accounts) co-acted.
    min_sync_share : float
        Least share of the members' streams on which they joined a group burst.
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
    params: dict[str, Any] = {
        "window_s": float(window_s),
        "start_grace_s": float(start_grace_s),
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
    bk = _buckets(arr, window_s=window_s, by_kind=by_kind, starts=starts, grace_s=start_grace_s)
    gap = 2.0 * window_s
    a, b, n_sync, n_sync_streams = _sync_counts(
        bk, n_acct, max_bucket=max_bucket, min_bursts=min_shared_windows, gap=gap
    )
    keep = n_sync >= min_shared_windows
    a, b, n_sync, n_sync_streams = a[keep], b[keep], n_sync[keep], n_sync_streams[keep]
    if a.size == 0:
        return []

    # streams each account engaged with at all, and streams both of a pair did
    from scipy.sparse import csr_matrix

    present = csr_matrix(
        (np.ones(arr.acct.size, dtype=np.float64), (arr.acct, arr.stream)),
        shape=(n_acct, n_stream),
    )
    present.data[:] = 1.0
    present.sum_duplicates()
    present.data[:] = 1.0
    n_both = np.asarray(present[a].multiply(present[b]).sum(axis=1)).ravel()
    rate = n_sync_streams / np.maximum(n_both, 1.0)
    keep = rate >= min_sync_rate
    a, b, n_sync, rate = a[keep], b[keep], n_sync[keep], rate[keep]
    if a.size == 0:
        return []

    # graph on the accounts that have an edge, split into components, Leiden on the big ones
    nodes = np.unique(np.concatenate([a, b]))
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

    # per-node weighted degree within its own group
    same = membership[ea] == membership[eb]
    wdeg = np.bincount(ea[same], weights=ew[same], minlength=sub_nodes.size) + np.bincount(
        eb[same], weights=ew[same], minlength=sub_nodes.size
    )
    n_edges_in = np.bincount(membership[ea[same]], minlength=membership.max() + 1)

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
    ages = _ages_days(accounts, arr.account_ids, ref)
    streams_per_acct = np.asarray(present.sum(axis=1)).ravel()

    # entry -> group (via account code)
    acct_group = np.full(n_acct, -1, dtype=np.int64)
    acct_group[group_accts] = membership
    entry_group = acct_group[bk.acct]
    entry_bucket = np.repeat(np.arange(bk.size.size), bk.size)

    findings: list[Finding] = []
    order_groups = np.argsort(-np.bincount(membership), kind="stable")
    for gid in order_groups:
        gnodes = np.flatnonzero(membership == gid)
        n = gnodes.size
        if n < min_group:
            continue
        accts = group_accts[gnodes]
        density = 2.0 * n_edges_in[gid] / (n * (n - 1))
        if density < min_density:
            continue
        # group bursts: buckets where at least a quorum of the group co-acted
        in_g = np.flatnonzero(entry_group == gid)
        g_bucket = entry_bucket[in_g]
        ub, cnt = np.unique(g_bucket, return_counts=True)
        quorum = max(3, math.ceil(burst_quorum * n))
        burst_buckets = ub[cnt >= quorum]
        if burst_buckets.size == 0:
            continue
        bo = np.lexsort((bk.bucket_t0[burst_buckets], bk.bucket_stream[burst_buckets]))
        bb = burst_buckets[bo]
        n_bursts = int(
            _bursts(np.zeros(bb.size, np.int64), bk.bucket_stream[bb], bk.bucket_t0[bb], gap).sum()
        )
        if n_bursts < min_shared_windows:
            continue
        in_burst = np.isin(g_bucket, burst_buckets)
        sync_entries = in_g[in_burst]
        # (account, stream) pairs in sync, and each member's share of its streams
        sync_as = np.unique(bk.acct[sync_entries] * n_stream + bk.stream[sync_entries])
        sync_acct = sync_as // n_stream
        joined = np.bincount(np.searchsorted(accts, sync_acct), minlength=n)
        sync_share = float(joined.sum() / max(streams_per_acct[accts].sum(), 1.0))
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
        n_burst_streams = int(np.unique(bk.bucket_stream[burst_buckets]).size)
        participation = np.minimum(1.0, joined / max(n_burst_streams, 1))
        deg = wdeg[gnodes] / max(n - 1, 1)
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
        wdens = float(wdeg[gnodes].sum() / (n * (n - 1)))
        parts = [
            ("synchronised_share", sync_share, min_sync_share, 0.3),
            ("weighted_density", wdens, min_density * min_sync_rate, 0.25),
            ("distinct_bursts", float(n_bursts), float(min_shared_windows), 0.2),
            ("target_focus_top3", float(top_share), 0.0, 0.1),
        ]
        values = [sync_share, wdens, burst_strength, float(top_share)]
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
