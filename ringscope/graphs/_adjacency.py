"""An in-memory adjacency index of a derived graph, for fast neighbourhood walks.

The embedded store derives every relationship from its tables, so a walk done
in SQL scans those tables at every step: its cost grows with the store, not
with the neighbourhood. :class:`AdjacencyIndex` holds the same graph once, as
numpy arrays: every node gets an integer code in (label, id) order, every
relationship an integer id, and two sorted lists (every edge by either end, and
by its source) find a node's relationships by binary search. A walk then costs
a few array operations per level, whatever the size of the store.

The index is pure: it is built from Arrow tables (:meth:`AdjacencyIndex.build`)
that the store reads with the same SQL expressions as its SQL walk, and it never
changes after that. The walk order, truncation and tie-breaks come from
:func:`ringscope.graphs._graphwalk.bounded_bfs`, as for every store.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ringscope.graphs._graphwalk import bounded_bfs, props
from ringscope.model import Edge, Node, NodeRef, Subgraph

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_EMPTY = np.zeros(0, dtype=np.int64)

#: Per relationship type: (source label, target label, window kind or "", table with
#: ``_s``, ``_t``, ``_w0``, ``_w1`` and the properties).
RelTables = Mapping[str, tuple[str, str, str, pa.Table]]


def epoch_us(t: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact)."""
    return (t - _EPOCH) // _US


def _int_column(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """An integer column as (values with nulls as 0, null mask)."""
    col = table.column(name)
    nulls = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = np.asarray(col.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, nulls


def _ranges(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in ``keys`` (sorted) of every element equal to one of ``wanted`` (sorted)."""
    lo = np.searchsorted(keys, wanted, side="left")
    hi = np.searchsorted(keys, wanted, side="right")
    lens = hi - lo
    keep = lens > 0
    lo, lens = lo[keep], lens[keep]
    if lens.size == 0:
        return _EMPTY
    starts = np.repeat(lo - np.cumsum(lens) + lens, lens)
    return starts + np.arange(int(lens.sum()), dtype=np.int64)


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``sorted_set`` (a sorted array)."""
    if sorted_set.size == 0:
        return np.zeros(values.shape, dtype=bool)
    at = np.searchsorted(sorted_set, values).clip(max=sorted_set.size - 1)
    return np.asarray(sorted_set[at] == values)


@dataclass(frozen=True, slots=True)
class _Rel:
    """One relationship type: its edges are ids ``offset .. offset + size - 1``."""

    type: str
    offset: int
    size: int
    window: str  # "" | "point" | "interval" | "since"
    w0: np.ndarray
    w0_null: np.ndarray
    w1: np.ndarray
    w1_null: np.ndarray
    props: pa.Table

    def in_window(self, start: int | None, end: int | None) -> np.ndarray:
        """Which of the edges lie in ``[start, end)`` (microseconds).

        The same tests as the SQL walk: a missing time fails a bound on it,
        except a missing interval end, which means "still open".
        """
        ok = np.ones(self.size, dtype=bool)
        if self.window == "point":
            if start is not None:
                ok &= ~self.w0_null & (self.w0 >= start)
            if end is not None:
                ok &= ~self.w0_null & (self.w0 < end)
        elif self.window == "interval":
            if end is not None:
                ok &= ~self.w0_null & (self.w0 < end)
            if start is not None:
                ok &= self.w1_null | (self.w1 >= start)
        elif self.window == "since" and end is not None:
            ok &= ~self.w0_null & (self.w0 < end)
        return ok


class AdjacencyIndex:
    """The whole derived graph in arrays; see the module docstring.

    Build it with :meth:`build`; walk it with :meth:`neighbourhood`, which
    returns what :meth:`GraphStore.neighbourhood` specifies.
    """

    def __init__(
        self,
        labels: list[tuple[str, list[str], pa.Table, np.ndarray]],
        rels: list[_Rel],
        src: np.ndarray,
        dst: np.ndarray,
    ) -> None:
        # nodes: labels in name order, ids in code-point order inside a label
        self._names = [name for name, ids, _t, _r in labels]
        self._starts = []
        self._ids: list[str] = []
        self._code: dict[str, dict[str, int]] = {}
        self._props: list[pa.Table] = []
        rows = []
        for name, ids, table, prop_row in labels:
            self._starts.append(len(self._ids))
            self._code[name] = {i: len(self._ids) + k for k, i in enumerate(ids)}
            self._ids.extend(ids)
            self._props.append(table)
            rows.append(prop_row)
        self._prop_row = np.concatenate(rows) if rows else _EMPTY
        # relationships: ids in type order, then as read
        self._rels = rels
        self._rel_no = {r.type: k for k, r in enumerate(rels)}
        self._rel_of = np.repeat(np.arange(len(rels), dtype=np.int8), [r.size for r in rels])
        self._type_rank = np.argsort(np.argsort([r.type for r in rels]))
        self._src, self._dst = src, dst
        both = np.concatenate([src, dst])
        order = np.argsort(both, kind="stable")
        self._u_keys = both[order]
        self._u_other = np.concatenate([dst, src])[order]
        self._u_edge = (order % max(len(src), 1)).astype(np.int64)
        out = np.argsort(src, kind="stable")
        self._o_keys, self._o_edge = src[out], out.astype(np.int64)
        self.nodes = len(self._ids)
        self.edges = len(src)

    @classmethod
    def build(cls, node_tables: Mapping[str, pa.Table], rel_tables: RelTables) -> AdjacencyIndex:
        """The index of a graph given as tables.

        Parameters
        ----------
        node_tables
            Per label, one row per stored node: column ``_id`` (distinct) and
            its properties.
        rel_tables
            Per relationship type: (source label, target label, window kind:
            ``""``, ``"point"``, ``"interval"`` or ``"since"``, table). The table
            has ``_s`` and ``_t`` (end ids, never null), ``_w0`` and ``_w1``
            (window times in microseconds, may be null; a point or "since"
            window uses ``_w0``, an interval both) and the relationship's
            properties.
        """
        seen: dict[str, set[str]] = {label: set() for label in node_tables}
        for src_label, dst_label, _w, t in rel_tables.values():
            seen.setdefault(src_label, set()).update(t.column("_s").unique().to_pylist())
            seen.setdefault(dst_label, set()).update(t.column("_t").unique().to_pylist())
        for label, t in node_tables.items():
            seen[label].update(t.column("_id").to_pylist())
        labels = []
        lookup: dict[str, tuple[int, pd.Index]] = {}
        start = 0
        for label in sorted(seen):
            ids = sorted(seen[label])  # Python orders str by code point, as ref_key does
            index = pd.Index(ids, dtype=object)
            table = node_tables.get(label)
            prop_row = np.full(len(ids), -1, dtype=np.int64)
            if table is not None:
                at = index.get_indexer(pd.Index(table.column("_id").to_pylist(), dtype=object))
                prop_row[at] = np.arange(table.num_rows, dtype=np.int64)
                table = table.drop_columns(["_id"]).combine_chunks()
            else:
                table = pa.table({})
            labels.append((label, ids, table, prop_row))
            lookup[label] = (start, index)
            start += len(ids)

        def codes(label: str, column: pa.ChunkedArray) -> np.ndarray:
            offset, index = lookup[label]
            at = index.get_indexer(pd.Index(column.to_pylist(), dtype=object))
            return np.asarray(at, dtype=np.int64) + offset

        rels, srcs, dsts = [], [], []
        offset = 0
        for rel_type in sorted(rel_tables):
            src_label, dst_label, window, t = rel_tables[rel_type]
            w0, w0_null = _int_column(t, "_w0")
            w1, w1_null = _int_column(t, "_w1")
            props_table = t.drop_columns(["_s", "_t", "_w0", "_w1"]).combine_chunks()
            rels.append(
                _Rel(rel_type, offset, t.num_rows, window, w0, w0_null, w1, w1_null, props_table)
            )
            srcs.append(codes(src_label, t.column("_s")))
            dsts.append(codes(dst_label, t.column("_t")))
            offset += t.num_rows
        src = np.concatenate(srcs) if srcs else _EMPTY
        dst = np.concatenate(dsts) if dsts else _EMPTY
        return cls(labels, rels, src, dst)

    # ------------------------------------------------------------------ nodes
    def _codes(self, refs: Sequence[NodeRef]) -> np.ndarray:
        """Sorted codes of the refs the graph holds (others are left out)."""
        out = []
        for r in refs:
            code = self._code.get(r.label, {}).get(r.id)
            if code is not None:
                out.append(code)
        return np.unique(np.array(out, dtype=np.int64))

    def _ref(self, code: int) -> NodeRef:
        label = self._names[bisect.bisect_right(self._starts, code) - 1]
        return NodeRef(label, self._ids[code])

    def _node_props(self, codes: np.ndarray) -> dict[int, dict[str, Any]]:
        """Stored properties of the nodes among ``codes`` (sorted) that have a row."""
        out: dict[int, dict[str, Any]] = {}
        rows = self._prop_row[codes]
        for k, start in enumerate(self._starts):
            end = self._starts[k + 1] if k + 1 < len(self._starts) else self.nodes
            pick = (codes >= start) & (codes < end) & (rows >= 0)
            if not pick.any():
                continue
            values = self._props[k].take(pa.array(rows[pick])).to_pylist()
            for code, row in zip(codes[pick].tolist(), values, strict=True):
                out[code] = props(row)
        return out

    def stored(self, refs: Sequence[NodeRef]) -> list[NodeRef]:
        """The refs that name a stored node (one with a row in its table), in order."""
        out = []
        for r in refs:
            code = self._code.get(r.label, {}).get(r.id)
            if code is not None and self._prop_row[code] >= 0:
                out.append(r)
        return out

    # ------------------------------------------------------------------ walking
    def neighbourhood(
        self,
        seeds: Sequence[NodeRef],
        *,
        hops: int,
        rels: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        limit: int,
    ) -> tuple[list[NodeRef], Subgraph]:
        """The seeds that exist and the subgraph, as ``GraphStore.neighbourhood`` says.

        ``seeds`` are distinct and checked, ``rels`` known, the window in UTC.
        An empty first element means that no seed exists.
        """
        existing = self.stored(seeds)
        if not existing:
            return [], Subgraph(nodes=(), edges=())
        allowed = np.zeros(len(self._rels), dtype=bool)
        allowed[[self._rel_no[t] for t in rels if t in self._rel_no]] = True
        ok: np.ndarray | None = None
        if start is not None or end is not None:
            s_us = None if start is None else epoch_us(start)
            e_us = None if end is None else epoch_us(end)
            ok = np.concatenate([r.in_window(s_us, e_us) for r in self._rels] or [_EMPTY])

        def usable(edges: np.ndarray) -> np.ndarray:
            keep = allowed[self._rel_of[edges]]
            return keep if ok is None else keep & ok[edges]

        held = self._codes(existing)

        def expand(frontier: Sequence[NodeRef], want: int) -> list[NodeRef]:
            nonlocal held
            pos = _ranges(self._u_keys, self._codes(frontier))
            pos = pos[usable(self._u_edge[pos])]
            found = np.unique(self._u_other[pos])
            found = found[~_member(found, held)][: max(want, 0)]
            held = np.union1d(held, found)
            return [self._ref(c) for c in found.tolist()]

        walked, truncated = bounded_bfs(existing, hops=hops, limit=limit, expand=expand)
        codes = self._codes(walked)
        refs = {c: self._ref(c) for c in codes.tolist()}
        node_props = self._node_props(codes)
        nodes = tuple(Node(refs[c], node_props.get(c, {})) for c in codes.tolist())

        edges = self._o_edge[_ranges(self._o_keys, codes)]
        edges = edges[usable(edges) & _member(self._dst[edges], codes)]
        # (source, type, target) order, as edge_key; codes follow (label, id) order
        rel_of = self._rel_of[edges]
        edges = edges[
            np.lexsort((edges, self._dst[edges], self._type_rank[rel_of], self._src[edges]))
        ]
        values: dict[int, dict[str, Any]] = {}
        for k in np.unique(rel_of).tolist():
            rel = self._rels[k]
            if rel.props.num_columns == 0:
                continue
            mine = edges[self._rel_of[edges] == k]
            rows = rel.props.take(pa.array(mine - rel.offset)).to_pylist()
            values.update(zip(mine.tolist(), (props(r) for r in rows), strict=True))
        out = tuple(
            Edge(refs[s], refs[d], self._rels[k].type, values.get(e, {}))
            for e, s, d, k in zip(
                edges.tolist(),
                self._src[edges].tolist(),
                self._dst[edges].tolist(),
                self._rel_of[edges].tolist(),
                strict=True,
            )
        )
        return existing, Subgraph(nodes=nodes, edges=out, truncated=truncated)
