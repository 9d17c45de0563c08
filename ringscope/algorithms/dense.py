"""Dense blocks in bipartite graphs: FRAUDAR greedy peeling, weighted and fast.

:func:`fraudar` works on integer index arrays (one entry per edge) and returns
:class:`Block` s: sets of rows and columns whose average suspiciousness
``g(S) = f(S) / |S|`` is the highest that greedy peeling reaches, where
``f(S)`` is the total weight of the edges inside ``S``. Column weights
``1 / log(deg + c)`` discount popular columns so that a fraudster cannot hide a
block by also engaging with popular targets (camouflage resistance).

:func:`detect_dense_blocks` runs it on the account x creator engagement graph
and on the buyer x seller order graph and turns blocks that are dense and
unusual into findings.

The peeling loop and the adjacency's counting sort are compiled with numba
when numba is installed (a whole peel takes about 0.35 microseconds of CPU per
edge on these 2-core machines, see ``benchmarks/fraudar_compare.py``); without
it the same loops run as plain Python, with identical results, roughly a
hundred times slower.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from ringscope.algorithms.base import MarketTables, iso
from ringscope.errors import InputError
from ringscope.model import Beneficiary, DetectorInfo, Finding, Member, Signal, rank

NAME = "dense_blocks"
VERSION = "1.1.0"

ColumnWeighting = Literal["log", "none"]

__all__ = [
    "NAME",
    "VERSION",
    "Block",
    "detect_dense_blocks",
    "detect_dense_blocks_tables",
    "fraudar",
    "fraudar_blocks",
    "peel",
]


@dataclass(frozen=True, slots=True)
class Block:
    """One dense block found by :func:`fraudar`.

    Attributes
    ----------
    rows, cols : tuple of int
        Sorted row and column indices of the block (as given to :func:`fraudar`).
    score : float
        Average suspiciousness ``g(S) = f(S) / (|rows| + |cols|)`` of the block,
        with the column weighting applied.
    mass : float
        ``f(S)``: the total (column-weighted) weight of the block's edges.
    n_edges : int
        Number of distinct (row, col) edges inside the block.
    """

    rows: tuple[int, ...]
    cols: tuple[int, ...]
    score: float
    mass: float
    n_edges: int


# --------------------------------------------------------------------------- peeling kernel


def _peel_kernel(
    indptr: np.ndarray, nbr: np.ndarray, ew: np.ndarray, prio0: np.ndarray, total: float
) -> tuple[np.ndarray, int, float]:
    """Greedy peeling with a lazy-deletion binary heap keyed by (priority, node).

    Returns the removal order, the number of removals before the best prefix
    and the best value of ``g``. Written in the numba-compatible subset of
    Python: compiled when numba is available, run as is otherwise.
    """
    n = prio0.shape[0]
    prio = prio0.copy()
    alive = np.ones(n, dtype=np.bool_)
    cap = n + nbr.shape[0] + 1
    hp = np.empty(cap, dtype=np.float64)
    hn = np.empty(cap, dtype=np.int64)
    size = 0
    # heapify: the nodes in index order form a heap once sifted down
    for i in range(n):
        hp[i] = prio[i]
        hn[i] = i
    size = n
    for start in range(n // 2 - 1, -1, -1):
        pos = start
        while True:
            left = 2 * pos + 1
            if left >= size:
                break
            best = left
            right = left + 1
            if right < size and (
                hp[right] < hp[left] or (hp[right] == hp[left] and hn[right] < hn[left])
            ):
                best = right
            if hp[best] < hp[pos] or (hp[best] == hp[pos] and hn[best] < hn[pos]):
                tp = hp[pos]
                tn = hn[pos]
                hp[pos] = hp[best]
                hn[pos] = hn[best]
                hp[best] = tp
                hn[best] = tn
                pos = best
            else:
                break

    order = np.empty(n, dtype=np.int64)
    f = total
    best_g = f / n if n > 0 else 0.0
    best_k = 0
    removed = 0
    while removed < n:
        # pop the smallest valid entry
        v = -1
        while size > 0:
            p = hp[0]
            node = hn[0]
            size -= 1
            hp[0] = hp[size]
            hn[0] = hn[size]
            pos = 0
            while True:
                left = 2 * pos + 1
                if left >= size:
                    break
                best = left
                right = left + 1
                if right < size and (
                    hp[right] < hp[left] or (hp[right] == hp[left] and hn[right] < hn[left])
                ):
                    best = right
                if hp[best] < hp[pos] or (hp[best] == hp[pos] and hn[best] < hn[pos]):
                    tp = hp[pos]
                    tn = hn[pos]
                    hp[pos] = hp[best]
                    hn[pos] = hn[best]
                    hp[best] = tp
                    hn[best] = tn
                    pos = best
                else:
                    break
            if alive[node] and p == prio[node]:
                v = node
                break
        if v < 0:
            break
        order[removed] = v
        removed += 1
        alive[v] = False
        f -= prio[v]
        for k in range(indptr[v], indptr[v + 1]):
            u = nbr[k]
            if alive[u]:
                prio[u] -= ew[k]
                # push (prio[u], u) and sift up
                pos = size
                hp[pos] = prio[u]
                hn[pos] = u
                size += 1
                while pos > 0:
                    parent = (pos - 1) // 2
                    if hp[pos] < hp[parent] or (hp[pos] == hp[parent] and hn[pos] < hn[parent]):
                        tp = hp[pos]
                        tn = hn[pos]
                        hp[pos] = hp[parent]
                        hn[pos] = hn[parent]
                        hp[parent] = tp
                        hn[parent] = tn
                        pos = parent
                    else:
                        break
        remaining = n - removed
        if remaining > 0:
            g = f / remaining
            if g > best_g:
                best_g = g
                best_k = removed
    return order, best_k, best_g


_KERNEL: Callable[..., tuple[np.ndarray, int, float]] | None = None


def _kernel() -> Callable[..., tuple[np.ndarray, int, float]]:
    """The peeling kernel, compiled by numba when it is installed.

    The compiled code is cached on disk next to this module; if the cache
    cannot be written or read, the kernel is compiled in memory instead.
    """
    global _KERNEL
    if _KERNEL is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - depends on the environment
            _KERNEL = _peel_kernel
            return _KERNEL
        tiny = (
            np.array([0, 1, 2], dtype=np.int64),
            np.array([1, 0], dtype=np.int64),
            np.array([1.0, 1.0]),
            np.array([1.0, 1.0]),
            1.0,
        )
        try:
            compiled = numba.njit(cache=True, nogil=True)(_peel_kernel)
            compiled(*tiny)
        except Exception:  # pragma: no cover - unusable cache directory
            compiled = numba.njit(cache=False, nogil=True)(_peel_kernel)
            compiled(*tiny)
        _KERNEL = compiled
    return _KERNEL


def _csr_fill(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray, indptr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours and edge weights grouped by ``src`` in edge order (a stable
    counting sort: O(edges), where an argsort is O(edges log edges))."""
    fill = indptr[:-1].copy()
    nbr = np.empty(src.size, dtype=np.int64)
    ew = np.empty(src.size, dtype=np.float64)
    for i in range(src.size):
        k = fill[src[i]]
        nbr[k] = dst[i]
        ew[k] = w[i]
        fill[src[i]] = k + 1
    return nbr, ew


_CSR: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None


def _csr_kernel() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """:func:`_csr_fill`, compiled by numba when it is installed (as :func:`_kernel`)."""
    global _CSR
    if _CSR is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - depends on the environment
            _CSR = _csr_fill
            return _CSR
        tiny = (
            np.array([1, 0], dtype=np.int64),
            np.array([0, 1], dtype=np.int64),
            np.array([1.0, 1.0]),
            np.array([0, 1, 2], dtype=np.int64),
        )
        try:
            compiled = numba.njit(cache=True, nogil=True)(_csr_fill)
            compiled(*tiny)
        except Exception:  # pragma: no cover - unusable cache directory
            compiled = numba.njit(cache=False, nogil=True)(_csr_fill)
            compiled(*tiny)
        _CSR = compiled
    return _CSR


def _compact(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(x, return_inverse=True, return_counts=True)`` for non-negative
    ints, by counting when the values are dense enough (no sort)."""
    if x.size and x.min() >= 0 and x.max() < 4 * x.size + 1024:
        counts = np.bincount(x)
        present = counts > 0
        code = np.cumsum(present) - 1
        return np.flatnonzero(present), code[x].astype(np.int64), counts[present]
    u, inv, cnt = np.unique(x, return_inverse=True, return_counts=True)
    return u, inv.astype(np.int64), cnt


# --------------------------------------------------------------------------- public API


def _check_edges(rows: Any, cols: Any, weights: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.asarray(rows)
    c = np.asarray(cols)
    if r.ndim != 1 or c.ndim != 1 or r.shape != c.shape:
        raise InputError("rows and cols must be one-dimensional arrays of the same length")
    if r.size and (
        not np.issubdtype(r.dtype, np.integer) or not np.issubdtype(c.dtype, np.integer)
    ):
        raise InputError("rows and cols must hold integer indices")
    r = r.astype(np.int64, copy=False)
    c = c.astype(np.int64, copy=False)
    if r.size and (r.min() < 0 or c.min() < 0):
        raise InputError("rows and cols must be non-negative indices")
    if weights is None:
        w = np.ones(r.shape[0], dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != r.shape:
            raise InputError("weights must have one value per edge")
        if w.size and (not np.all(np.isfinite(w)) or w.min() < 0):
            raise InputError("weights must be finite and non-negative")
    return r, c, w


def _dedupe(r: np.ndarray, c: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, ...]:
    """Merge repeated (row, col) edges by summing their weights; drop zero weights."""
    if r.size == 0:
        return r, c, w
    n_cols = int(c.max()) + 1
    key = r * n_cols + c
    uniq, inv = np.unique(key, return_inverse=True)
    ww = np.bincount(inv, weights=w, minlength=uniq.size)
    keep = ww > 0
    uniq = uniq[keep]
    return uniq // n_cols, uniq % n_cols, ww[keep]


def peel(
    rows: Any,
    cols: Any,
    weights: Any = None,
    *,
    column_weighting: ColumnWeighting = "log",
    c: float = 5.0,
) -> Block | None:
    """Find one dense block by greedy peeling (one round of :func:`fraudar`).

    Parameters
    ----------
    rows, cols : array_like of int
        One entry per edge. Repeated (row, col) pairs are merged, summing weights.
    weights : array_like of float, optional
        Non-negative edge weights (default 1).
    column_weighting : {"log", "none"}
        ``"log"`` multiplies each edge's weight by ``1 / log(deg(col) + c)``,
        with ``deg`` the number of distinct rows of the column.
    c : float
        Offset of the log column weighting (must make ``log(1 + c) > 0``).

    Returns
    -------
    Block or None
        The best prefix of the peeling order, or None when there is no edge.
    """
    r, col, w = _check_edges(rows, cols, weights)
    r, col, w = _dedupe(r, col, w)
    return _peel_once(r, col, w, column_weighting=column_weighting, c=c)


def _peel_once(
    r: np.ndarray,
    col: np.ndarray,
    w: np.ndarray,
    *,
    column_weighting: ColumnWeighting,
    c: float,
) -> Block | None:
    if r.size == 0:
        return None
    if column_weighting not in ("log", "none"):
        raise InputError(f"column_weighting must be 'log' or 'none', not {column_weighting!r}")
    if column_weighting == "log" and not math.log(1.0 + c) > 0:
        raise InputError("c must make log(1 + c) positive")
    # compact node ids (in value order): rows first, then columns
    urow, rinv, _ = _compact(r)
    ucol, cinv, cdeg = _compact(col)
    if column_weighting == "log":
        w = w / np.log(cdeg.astype(np.float64) + c)[cinv]
    n_r = urow.size
    n = n_r + ucol.size
    a = rinv
    b = cinv + n_r
    prio0 = np.bincount(a, weights=w, minlength=n) + np.bincount(b, weights=w, minlength=n)
    total = float(w.sum())
    # CSR adjacency, both directions (a stable counting sort by node)
    src = np.concatenate([a, b])
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    nbr, ew = _csr_kernel()(src, np.concatenate([b, a]), np.concatenate([w, w]), indptr)
    order, best_k, best_g = _kernel()(indptr, nbr, ew, prio0, total)
    keep = np.ones(n, dtype=bool)
    keep[order[:best_k]] = False
    in_rows = keep[:n_r]
    in_cols = keep[n_r:]
    inside = in_rows[rinv] & in_cols[cinv]
    return Block(
        rows=tuple(int(x) for x in urow[in_rows]),
        cols=tuple(int(x) for x in ucol[in_cols]),
        score=float(best_g),
        mass=float(w[inside].sum()),
        n_edges=int(inside.sum()),
    )


def fraudar_blocks(
    rows: Any,
    cols: Any,
    weights: Any = None,
    *,
    column_weighting: ColumnWeighting = "log",
    c: float = 5.0,
) -> Any:
    """Yield dense blocks one after another, removing each block's edges before the next.

    The iterator behind :func:`fraudar`: stop consuming it whenever enough
    blocks were found. Column weights are recomputed on the remaining edges
    at each round.

    Yields
    ------
    Block
    """
    r, col, w = _check_edges(rows, cols, weights)
    r, col, w = _dedupe(r, col, w)
    while r.size:
        block = _peel_once(r, col, w, column_weighting=column_weighting, c=c)
        if block is None or not block.rows or not block.cols:
            return
        yield block
        inside = np.isin(r, np.asarray(block.rows, dtype=np.int64)) & np.isin(
            col, np.asarray(block.cols, dtype=np.int64)
        )
        r, col, w = r[~inside], col[~inside], w[~inside]


def fraudar(
    rows: Any,
    cols: Any,
    weights: Any = None,
    *,
    n_blocks: int = 1,
    column_weighting: ColumnWeighting = "log",
    c: float = 5.0,
) -> list[Block]:
    """Dense blocks of a weighted bipartite graph by FRAUDAR greedy peeling.

    Every node (row or column) starts with priority equal to the sum of the
    weights of its edges. The node of least priority is removed, and each of
    its neighbours' priorities decreases by the weight of the shared edge,
    until nothing is left. Of all the prefixes of this order, the node set
    with the highest average suspiciousness ``g(S) = f(S) / |S|`` is the
    block. Further blocks come from repeating on the graph with the found
    blocks' edges removed. The greedy result is within a factor 2 of the
    optimum of ``g`` (Hooi et al., Theorem 2).

    Parameters
    ----------
    rows, cols : array_like of int
        Edge list as two index arrays of equal length (e.g. account and creator
        codes). Repeated (row, col) pairs are merged by summing their weights.
    weights : array_like of float, optional
        Non-negative edge weights; default 1 per edge.
    n_blocks : int
        How many blocks to find at most (fewer when the edges run out).
    column_weighting : {"log", "none"}
        ``"log"`` (default) multiplies each edge's weight by
        ``1 / log(deg(col) + c)``, where ``deg`` is the number of distinct rows
        of the column in the graph being peeled: edges to popular columns
        count less, which defeats camouflage.
    c : float
        Offset of the log column weighting (5 in the paper).

    Returns
    -------
    list of Block
        In the order found (the first is the densest).

    Raises
    ------
    InputError
        If the arrays differ in length, hold negative or non-integer indices,
        or the weights are negative or not finite.

    References
    ----------
    .. [1] B. Hooi, H. A. Song, A. Beutel, N. Shah, K. Shin, C. Faloutsos,
       "FRAUDAR: Bounding Graph Fraud in the Face of Camouflage", KDD 2016.
       https://doi.org/10.1145/2939672.2939747

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noise_r, noise_c = rng.integers(0, 50, 100), rng.integers(0, 40, 100)
    >>> block_r, block_c = np.repeat(np.arange(50, 58), 4), np.tile(np.arange(40, 44), 8)
    >>> blocks = fraudar(np.r_[noise_r, block_r], np.r_[noise_c, block_c])
    >>> blocks[0].rows, blocks[0].cols
    ((50, 51, 52, 53, 54, 55, 56, 57), (40, 41, 42, 43))
    """
    if n_blocks < 1:
        raise InputError(f"n_blocks must be at least 1, not {n_blocks}")
    out: list[Block] = []
    for block in fraudar_blocks(rows, cols, weights, column_weighting=column_weighting, c=c):
        out.append(block)
        if len(out) >= n_blocks:
            break
    return out


# --------------------------------------------------------------------------- detector


def _check_frame(frame: Any, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{name} must be a pandas DataFrame, not {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{name} lacks column(s) {', '.join(missing)}")
    return frame


@dataclass(frozen=True)
class BipartiteGraph:
    """A bipartite weighted graph with the ids behind its integer codes.

    Row and column codes number ``row_ids`` and ``col_ids``, which are in
    sorted order of their ``str`` form; edges are distinct and ordered by
    (row, column).
    """

    row_ids: np.ndarray
    col_ids: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray  # what is peeled
    counts: np.ndarray  # raw interaction counts per edge


def _str_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize(values.astype(str), sort=True)`` for the non-missing
    ``values``, with code -1 where a value is missing: the conversion to
    ``str`` and the sort run on the distinct values only."""
    codes, uniq = pd.factorize(values)
    ustr = pd.Series(uniq).astype(str)
    inner, ids = pd.factorize(ustr, sort=True)
    out = np.full(codes.shape[0], -1, dtype=np.int64)
    present = codes >= 0
    out[present] = inner.astype(np.int64)[codes[present]]
    return out, np.asarray(ids, dtype=object)


def _bipartite(
    left: pd.Series | tuple[np.ndarray, np.ndarray],
    right: pd.Series | tuple[np.ndarray, np.ndarray],
    *,
    count_weighting: str,
) -> BipartiteGraph:
    """The weighted graph of the (left, right) pairs where both are present.

    Each side is a series of ids or its :func:`_str_codes` ``(codes, ids)``.
    Row and column codes number the ids in sorted order of their ``str`` form.
    """
    lcodes, lids = _str_codes(left) if isinstance(left, pd.Series) else left
    rcodes, rids = _str_codes(right) if isinstance(right, pd.Series) else right
    ok = (lcodes >= 0) & (rcodes >= 0)
    # keep only ids that occur in a pair, renumbered in the same (sorted) order
    lids, lcodes = _used(lcodes[ok], lids)
    rids, rcodes = _used(rcodes[ok], rids)
    n_r = max(len(rids), 1)
    key = lcodes * n_r + rcodes
    uniq, counts = np.unique(key, return_counts=True)
    counts = counts.astype(np.float64)
    w = np.log1p(counts) if count_weighting == "log" else counts
    return BipartiteGraph(
        row_ids=lids,
        col_ids=rids,
        rows=uniq // n_r,
        cols=uniq % n_r,
        weights=w,
        counts=counts,
    )


def graph_from_counts(
    left: np.ndarray, right: np.ndarray, counts: np.ndarray, *, count_weighting: str
) -> BipartiteGraph:
    """The graph of distinct (``left``, ``right``) id pairs with their interaction counts.

    The graph :func:`_bipartite` builds from the interactions themselves, when
    they were counted per pair elsewhere (the Spark engine counts them on the
    cluster).
    """
    lids, lcodes = np.unique(np.asarray(left, dtype=object).astype(str), return_inverse=True)
    rids, rcodes = np.unique(np.asarray(right, dtype=object).astype(str), return_inverse=True)
    n_r = max(len(rids), 1)
    key = lcodes.astype(np.int64) * n_r + rcodes.astype(np.int64)
    order = np.argsort(key, kind="stable")
    cnt = np.asarray(counts, dtype=np.float64)[order]
    return BipartiteGraph(
        row_ids=lids.astype(object),
        col_ids=rids.astype(object),
        rows=key[order] // n_r,
        cols=key[order] % n_r,
        weights=np.log1p(cnt) if count_weighting == "log" else cnt,
        counts=cnt,
    )


def _used(codes: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids that ``codes`` use and the codes renumbered into them (order kept)."""
    used = np.bincount(codes, minlength=len(ids)) > 0
    if used.all():
        return ids, codes
    renum = np.cumsum(used) - 1
    return ids[used], renum[codes]


def _graph_average(g: BipartiteGraph, *, column_weighting: ColumnWeighting, c: float) -> float:
    """Average suspiciousness ``f(V) / |V|`` of the whole graph (same column weighting)."""
    w = g.weights
    if column_weighting == "log":
        _, inv, deg = _compact(g.cols)
        w = w / np.log(deg.astype(np.float64) + c)[inv]
    n = _distinct(g.rows) + _distinct(g.cols)
    return float(w.sum() / max(n, 1))


def _distinct(x: np.ndarray) -> int:
    """Number of distinct values of non-negative integer codes."""
    return int(np.count_nonzero(np.bincount(x))) if x.size else 0


def rewired(g: BipartiteGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges of ``g`` rewired at random: every row keeps its degree, every column
    its edges' weights (rows, columns, weights; an account drawn twice for one target
    makes one edge of the summed weights, so that target has one account fewer).

    The null model of a market with the same accounts, the same creators (or sellers)
    with the same audiences, but no coordination: each account's targets drawn at
    random. Seeded, so the same graph always gives the same rewiring.
    """
    rng = np.random.default_rng(0)
    r, col, w = _dedupe(rng.permutation(g.rows), g.cols, g.weights)
    return r, col, w


def null_density(
    null: tuple[np.ndarray, np.ndarray, np.ndarray],
    cols: np.ndarray,
    *,
    column_weighting: ColumnWeighting,
    c: float,
) -> float:
    """The highest average suspiciousness greedy peeling reaches among the columns
    ``cols`` of the rewired graph ``null`` (see :func:`rewired`): how dense the same
    targets, with the same audiences, are when accounts choose them at random.

    One column with all its rows (a popular creator's audience, a fan club, a viral
    stream, a flash sale) is exactly as dense there as in the market, so a block of
    one target never beats it; accounts sharing the same several targets do. Measured
    among the block's own targets rather than over the whole rewired market, a very
    devoted fan club elsewhere neither raises a farm's bar nor, being a little denser
    than the market's best random block, stands alone itself.
    """
    r, col, w = null
    inside = np.isin(col, cols)
    block = _peel_once(r[inside], col[inside], w[inside], column_weighting=column_weighting, c=c)
    return 0.0 if block is None else block.score


def block_findings(
    g: BipartiteGraph,
    *,
    kind: str,
    row_role: str,
    col_role: str,
    what: str,
    evidence_of: Callable[[list[str], list[str], int], list[dict[str, Any]]],
    ages: pd.Series | None,
    info: DetectorInfo,
    p: dict[str, Any],
) -> list[Finding]:
    if g.rows.size == 0:
        return []
    cw: ColumnWeighting = p["column_weighting"]
    avg = _graph_average(g, column_weighting=cw, c=p["c"])
    null = rewired(g)
    # column weights over the whole graph, as the null has them (a block's own score
    # weighs columns by the edges left at its round of peeling)
    col_w = np.ones(g.weights.size)
    if cw == "log":
        _, col_inv, col_deg = _compact(g.cols)
        col_w = 1.0 / np.log(col_deg.astype(np.float64) + p["c"])[col_inv]
    row_total = np.bincount(g.rows, weights=g.counts, minlength=g.row_ids.size)
    out: list[Finding] = []
    for block in fraudar(
        g.rows, g.cols, g.weights, n_blocks=p["n_blocks"], column_weighting=cw, c=p["c"]
    ):
        n_r, n_c = len(block.rows), len(block.cols)
        if n_r < p["min_block"]:
            continue
        ratio = block.score / avg if avg > 0 else 0.0
        if ratio < p["min_density_ratio"]:
            continue
        fill = block.n_edges / (n_r * n_c)
        if fill < p["min_fill"]:
            continue
        rset = np.asarray(block.rows, dtype=np.int64)
        cset = np.asarray(block.cols, dtype=np.int64)
        inside = np.isin(g.rows, rset) & np.isin(g.cols, cset)
        in_w = np.bincount(g.rows[inside], weights=g.counts[inside], minlength=g.row_ids.size)
        in_deg = np.bincount(g.rows[inside], minlength=g.row_ids.size)
        focus_each = in_w[rset] / np.maximum(row_total[rset], 1.0)
        focus = float(in_w[rset].sum() / max(row_total[rset].sum(), 1.0))
        if focus < p["min_focus"]:
            continue
        member_ids = [str(x) for x in g.row_ids[rset]]
        col_ids = [str(x) for x in g.col_ids[cset]]
        strength = min(1.0, ratio / (2.0 * p["min_density_ratio"]))
        parts = [
            ("density_vs_average", ratio, p["min_density_ratio"], 0.4, strength),
            ("focus_on_block", focus, p["min_focus"], 0.3, focus),
            ("block_fill", fill, p["min_fill"], 0.3, fill),
        ]
        young_n = 0
        if ages is not None:
            a = ages.reindex(pd.Index(member_ids)).to_numpy(dtype=np.float64)
            known = ~np.isnan(a)
            if known.any():
                young_n = int((a[known] <= p["young_days"]).sum())
                ys = young_n / int(known.sum())
                parts.append(("young_account_share", ys, 0.0, 0.2, ys))
        score = sum(x[3] * x[4] for x in parts) / sum(x[3] for x in parts)
        signals = [Signal(nm, round(float(v), 6), float(th), wt) for nm, v, th, wt, _ in parts]
        null_g = null_density(null, cset, column_weighting=cw, c=p["c"])
        whole_g = float((g.weights[inside] * col_w[inside]).sum()) / (n_r + n_c)
        # rounded as reported: a block of one target is as dense as its null up to
        # the order of the sums, and must not stand alone by a rounding error
        vs_null = round(whole_g / null_g, 6) if null_g > 0 else 0.0
        signals += [
            Signal("density_vs_shuffled", vs_null, 1.0, 0.0),
            Signal("stands_alone", 1.0 if vs_null > 1.0 else 0.0, 1.0, 0.0),
            Signal("block_rows", float(n_r), float(p["min_block"]), 0.0),
            Signal("block_cols", float(n_c), 0.0, 0.0),
            Signal("block_edges", float(block.n_edges), 0.0, 0.0),
            Signal("interactions", float(in_w[rset].sum()), 0.0, 0.0),
        ]
        mscore = np.sqrt(focus_each * (in_deg[rset] / n_c))
        members = [
            Member(a, row_role, round(float(s), 6)) for a, s in zip(member_ids, mscore, strict=True)
        ]
        young = f" ({young_n} created in the last {p['young_days']:g} days)" if young_n else ""
        shown = ", ".join(col_ids[:3]) + (f" and {n_c - 3} more" if n_c > 3 else "")
        explanation = (
            f"{n_r} accounts{young} put {focus:.0%} of their {what} "
            f"({int(in_w[rset].sum())} in all) on {n_c} {col_role}(s): {shown}; "
            f"the block is {ratio:.1f} times as dense as the graph on average and "
            f"{fill:.0%} of its account-{col_role} pairs interact."
        )
        out.append(
            Finding.build(
                kind=kind,
                score=score,
                members=members,
                beneficiaries=[Beneficiary(x, col_role) for x in col_ids],
                signals=signals,
                explanation=explanation,
                detector=info,
                evidence={
                    "engagements" if kind == "dense_block" else "orders": evidence_of(
                        member_ids, col_ids, p["max_evidence"]
                    )
                },
            )
        )
    return out


def account_ages(accounts: pd.DataFrame, ref: Any) -> pd.Series:
    """Days from each account's ``created_at`` to ``ref``, by account id (first row wins)."""
    ref = pd.Timestamp(ref)
    ref = ref.tz_localize("UTC") if ref.tzinfo is None else ref.tz_convert("UTC")
    created = pd.DatetimeIndex(pd.to_datetime(accounts["created_at"], utc=True))
    ages = pd.Series(
        np.asarray((ref - created) / pd.Timedelta(days=1), dtype=np.float64),
        index=accounts["account_id"].astype(str).to_numpy(),
    )
    return ages[~ages.index.duplicated(keep="first")]


#: How the findings of each graph are described (``block_findings`` keywords).
ENGAGEMENT_GRAPH: dict[str, str] = {
    "kind": "dense_block",
    "row_role": "engager",
    "col_role": "creator",
    "what": "engagement events",
}
ORDER_GRAPH: dict[str, str] = {
    "kind": "dense_orders",
    "row_role": "buyer",
    "col_role": "seller",
    "what": "orders",
}
#: The order columns an order block's evidence shows (with ``ts``).
ORDER_EVIDENCE = ("order_id", "buyer_id", "seller_id", "creator_id", "amount", "status")


def engagement_evidence_rows(agg: pd.DataFrame, cap: int) -> list[dict[str, Any]]:
    """Evidence rows of an engagement block from its (account, creator) counts:
    ``account_id``, ``creator_id``, ``n``, ``min`` and ``max`` (times), in that order."""
    return [
        {
            "account_id": str(r.account_id),
            "creator_id": str(r.creator_id),
            "events": int(cast(Any, r.n)),
            "first_ts": iso(r.min),
            "last_ts": iso(r.max),
        }
        for r in agg.head(cap).itertuples(index=False)
    ]


def order_evidence_rows(orders: pd.DataFrame) -> list[dict[str, Any]]:
    """Evidence rows of an order block from its orders, in the order given."""
    keep = [k for k in ORDER_EVIDENCE if k in orders.columns]
    out: list[dict[str, Any]] = []
    for rec, ts in zip(orders[keep].to_dict("records"), orders["ts"], strict=True):
        row = {str(k): (None if pd.isna(v) else v) for k, v in rec.items()}
        row["ts"] = iso(ts)
        out.append(row)
    return out


def dense_params(
    *,
    n_blocks: int,
    min_block: int,
    min_density_ratio: float,
    min_fill: float,
    min_focus: float,
    column_weighting: ColumnWeighting,
    c: float,
    count_weighting: str,
    young_days: float,
    max_evidence: int,
    seed: Any,
) -> dict[str, Any]:
    """The checked parameters of :func:`detect_dense_blocks`, as its findings record them.

    Raises
    ------
    InputError
        If a parameter is out of range.
    """
    params: dict[str, Any] = {
        "n_blocks": int(n_blocks),
        "min_block": int(min_block),
        "min_density_ratio": float(min_density_ratio),
        "min_fill": float(min_fill),
        "min_focus": float(min_focus),
        "column_weighting": column_weighting,
        "c": float(c),
        "count_weighting": count_weighting,
        "young_days": float(young_days),
        "max_evidence": int(max_evidence),
        "seed": None if seed is None else int(seed) if isinstance(seed, int) else str(seed),
    }
    if n_blocks < 1 or min_block < 1:
        raise InputError("n_blocks and min_block must be at least 1")
    for name, v in (("min_focus", min_focus), ("min_fill", min_fill)):
        if not 0 <= v <= 1:
            raise InputError(f"{name} must lie in [0, 1], not {v}")
    if column_weighting not in ("log", "none"):
        raise InputError(f"column_weighting must be 'log' or 'none', not {column_weighting!r}")
    if count_weighting not in ("log", "linear"):
        raise InputError(f"count_weighting must be 'log' or 'linear', not {count_weighting!r}")
    return params


def detect_dense_blocks(
    engagements: pd.DataFrame | None,
    orders: pd.DataFrame | None,
    *,
    streams: pd.DataFrame | None,
    accounts: pd.DataFrame | None = None,
    n_blocks: int = 5,
    min_block: int = 5,
    min_density_ratio: float = 1.5,
    min_fill: float = 0.5,
    min_focus: float = 0.5,
    column_weighting: ColumnWeighting = "log",
    c: float = 5.0,
    count_weighting: Literal["log", "linear"] = "log",
    young_days: float = 30.0,
    as_of: Any = None,
    max_evidence: int = 500,
    seed: Any = None,
) -> list[Finding]:
    """Dense, unusual blocks in the account x creator and buyer x seller graphs (FRAUDAR).

    Two graphs are peeled with :func:`fraudar`:

    - **engagement**: accounts x creators (a stream's engagements go to its
      creator), edge weight ``log(1 + events)``; blocks become findings of
      kind ``dense_block`` whose beneficiaries are the creators.
    - **orders**: buyers x sellers, edge weight ``log(1 + orders)``; blocks
      become findings of kind ``dense_orders`` whose beneficiaries are the
      sellers.

    A block is reported when it has ``min_block`` rows, its average
    suspiciousness is ``min_density_ratio`` times the graph's, at least
    ``min_fill`` of its (row, column) pairs are edges, and its rows put at
    least ``min_focus`` of their activity inside it. Dense blocks of
    loyal fans exist too, so these findings are a weaker signal than lockstep
    timing: in the queue they join the case of a farm or ring they overlap
    (:mod:`ringscope.algorithms.queue`), and stand on their own (signal
    ``stands_alone`` 1) only when the block is denser than anything greedy peeling
    finds among the same targets in the graph rewired at random, every account
    keeping its degree and every target its audience (signal
    ``density_vs_shuffled`` above 1, see :func:`rewired` and :func:`null_density`):
    the density a popular creator's audience, a fan club, a viral stream or a flash
    sale (one target, many accounts) has in any market of the same degrees is not
    evidence of coordination.

    Parameters
    ----------
    engagements : pandas.DataFrame or None
        Normalised engagements (``account_id``, ``stream_id``, ...); None or empty skips.
    orders : pandas.DataFrame or None
        Normalised orders (``order_id``, ``buyer_id``, ``seller_id``, ...); None or empty skips.
    streams : pandas.DataFrame or None
        Normalised streams (``stream_id``, ``creator_id``), needed for engagements.
    accounts : pandas.DataFrame, optional
        Normalised accounts with ``created_at`` for the young-account signal.
    n_blocks : int
        Blocks peeled from each graph.
    min_block : int
        Least number of accounts (rows) in a reported block.
    min_density_ratio : float
        Least ratio of the block's average suspiciousness ``g`` to the whole
        graph's ``f(V) / |V|``.
    min_fill : float
        Least share of the block's (row, column) pairs that are edges: a block
        spanning most of a sparse graph is not unusual.
    min_focus : float
        Least share of the block accounts' interactions that fall inside the block.
    column_weighting : {"log", "none"}
        FRAUDAR column weighting (see :func:`fraudar`).
    c : float
        Offset of the log column weighting.
    count_weighting : {"log", "linear"}
        Edge weight from the number of interactions: ``log(1 + n)`` (default;
        one very active account cannot make a block alone) or ``n``.
    young_days : float
        Accounts created at most this many days before ``as_of`` count as young.
    as_of : datetime-like, optional
        Reference time for account ages (default: the latest event or order).
    max_evidence : int
        At most this many evidence rows per finding.
    seed : optional
        Recorded for uniformity; the method is deterministic.

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
    .. [1] B. Hooi, H. A. Song, A. Beutel, N. Shah, K. Shin, C. Faloutsos,
       "FRAUDAR: Bounding Graph Fraud in the Face of Camouflage", KDD 2016.
       https://doi.org/10.1145/2939672.2939747

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.Timestamp("2024-05-01", tz="UTC")
    >>> orders = pd.DataFrame({
    ...     "order_id": [f"o{i}" for i in range(60)],
    ...     "buyer_id": [f"b{i % 12}" for i in range(48)] + [f"x{i}" for i in range(12)],
    ...     "seller_id": [f"s{i % 2}" for i in range(48)] + [f"s{2 + i}" for i in range(12)],
    ...     "status": "completed", "amount": 10.0, "ts": t})
    >>> found = detect_dense_blocks(None, orders, streams=None, min_density_ratio=1.5)
    >>> [(f.kind, len(f.members), [b.account_id for b in f.beneficiaries]) for f in found]
    [('dense_orders', 12, ['s0', 's1'])]
    """
    params = dense_params(
        n_blocks=n_blocks,
        min_block=min_block,
        min_density_ratio=min_density_ratio,
        min_fill=min_fill,
        min_focus=min_focus,
        column_weighting=column_weighting,
        c=c,
        count_weighting=count_weighting,
        young_days=young_days,
        max_evidence=max_evidence,
        seed=seed,
    )
    info = DetectorInfo(NAME, VERSION, params)
    have_ev = engagements is not None and not engagements.empty
    have_or = orders is not None and not orders.empty
    if have_ev:
        assert engagements is not None
        _check_frame(engagements, "engagements", ("account_id", "stream_id", "kind", "ts"))
        if streams is None:
            raise InputError("streams are needed to map engagements to creators")
        _check_frame(streams, "streams", ("stream_id", "creator_id"))
    if have_or:
        assert orders is not None
        _check_frame(orders, "orders", ("order_id", "buyer_id", "seller_id", "ts"))
    ages: pd.Series | None = None
    if accounts is not None and not accounts.empty and "created_at" in accounts.columns:
        if as_of is None:
            latest = [f["ts"].max() for f in (engagements, orders) if f is not None and not f.empty]
            ref = pd.Timestamp(max(latest)) if latest else pd.Timestamp.now(tz="UTC")
        else:
            ref = pd.Timestamp(as_of)
        ages = account_ages(accounts, ref)

    findings: list[Finding] = []
    if have_ev:
        assert engagements is not None and streams is not None
        creator = (
            streams.assign(stream_id=streams["stream_id"].astype(str))
            .drop_duplicates("stream_id")
            .set_index("stream_id")["creator_id"]
        )
        ev = engagements[["account_id", "stream_id", "kind", "ts"]]
        # each event's creator through its stream, mapped once per distinct stream
        scodes, sids = pd.factorize(ev["stream_id"], use_na_sentinel=False)
        stream_creator = pd.Series(sids).astype(str).map(creator)
        ccodes_s, cids = _str_codes(stream_creator)
        ccodes = ccodes_s[scodes]
        g = _bipartite(ev["account_id"], (ccodes, cids), count_weighting=count_weighting)
        code_of = {str(x): i for i, x in enumerate(cids)}

        def ev_evidence(rows: list[str], cols: list[str], cap: int) -> list[dict[str, Any]]:
            wanted = np.zeros(len(cids) + 1, dtype=bool)
            wanted[[code_of[x] for x in cols if x in code_of]] = True
            sub = ev[wanted[ccodes]].copy()
            sub["creator_id"] = sub["stream_id"].astype(str).map(creator)
            sub = sub[sub["account_id"].astype(str).isin(rows) & sub["creator_id"].isin(cols)]
            agg = (
                sub.groupby(["account_id", "creator_id"], sort=True)["ts"]
                .agg(["count", "min", "max"])
                .reset_index()
                .rename(columns={"count": "n"})
            )
            return engagement_evidence_rows(agg, cap)

        findings += block_findings(
            g,
            **ENGAGEMENT_GRAPH,
            evidence_of=ev_evidence,
            ages=ages,
            info=info,
            p=params,
        )
    if have_or:
        assert orders is not None
        od = orders
        g = _bipartite(od["buyer_id"], od["seller_id"], count_weighting=count_weighting)

        def or_evidence(rows: list[str], cols: list[str], cap: int) -> list[dict[str, Any]]:
            sub = od[od["buyer_id"].astype(str).isin(rows) & od["seller_id"].astype(str).isin(cols)]
            return order_evidence_rows(sub.sort_values(["ts", "order_id"], kind="stable").head(cap))

        findings += block_findings(
            g,
            **ORDER_GRAPH,
            evidence_of=or_evidence,
            ages=ages,
            info=info,
            p=params,
        )
    return rank(findings)


def detect_dense_blocks_tables(tables: MarketTables, **params: Any) -> list[Finding]:
    """:func:`detect_dense_blocks` on a :class:`MarketTables` (``as_of`` from the tables)."""
    params.setdefault("as_of", tables.reference_time())
    return detect_dense_blocks(
        tables.engagements,
        tables.orders,
        streams=tables.streams,
        accounts=tables.accounts,
        **params,
    )
