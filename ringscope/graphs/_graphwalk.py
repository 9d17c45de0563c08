"""Pure helpers shared by the stores: walk order, tie-breaks, property values, records.

Nothing here touches a database. The stores call these helpers so that the
choices the :class:`~ringscope.graphs.store.GraphStore` contract fixes (level
order, truncation, which relationship joins two path nodes, how properties and
records look) are made by one piece of code whatever the store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from ringscope.model import (
    NODE_LABELS,
    REL_TYPES,
    Decision,
    Edge,
    LoadReport,
    NodeRef,
    Run,
    TableReport,
)

# --------------------------------------------------------------------------- checks


def check_rel_types(rel_types: Sequence[str] | None) -> tuple[str, ...]:
    """The relationship types to walk: all of them when ``rel_types`` is ``None``.

    Raises
    ------
    ValueError
        When a type is not one of :data:`ringscope.model.REL_TYPES`.
    """
    if rel_types is None:
        return REL_TYPES
    if isinstance(rel_types, str):
        rel_types = [rel_types]
    unknown = sorted(set(rel_types) - set(REL_TYPES))
    if unknown:
        raise ValueError(f"rel_types: unknown relationship types {unknown}; use {list(REL_TYPES)}")
    return tuple(t for t in REL_TYPES if t in set(rel_types))


def check_node_refs(refs: Iterable[NodeRef], argument: str) -> list[NodeRef]:
    """Distinct node references, sorted; ``ValueError`` for an unknown label."""
    out = sorted(set(refs))
    for ref in out:
        if ref.label not in NODE_LABELS:
            raise ValueError(f"{argument}: unknown node label {ref.label!r}; use {NODE_LABELS}")
    return out


def check_window(
    start: datetime | None, end: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """The window ``[start, end)`` as aware UTC datetimes (naive means UTC)."""
    s, e = as_utc(start), as_utc(end)
    if s is not None and e is not None and s > e:
        raise ValueError(f"start {s.isoformat()} is after end {e.isoformat()}")
    return s, e


# --------------------------------------------------------------------------- values


def as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def json_value(value: Any) -> Any:
    """A property value as JSON-able Python: ISO strings for times, ``None`` for missing."""
    if value is None:
        return None
    if isinstance(value, datetime):
        stamp = as_utc(value)
        assert stamp is not None
        return stamp.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_value(value.item())
    return value


def roles_text(roles: str | None) -> str | None:
    """The ``|``-joined, sorted, distinct role list."""
    if roles is None:
        return None
    return "|".join(sorted({r.strip() for r in roles.split("|") if r.strip()}))


def props(pairs: Mapping[str, Any]) -> dict[str, Any]:
    """Node or relationship properties: JSON-able values, missing ones left out.

    A store that cannot hold a missing property (Neo4j drops ``null``) and one
    that can must show the same thing, so ``None``/NaN/NaT values are omitted.
    """
    out: dict[str, Any] = {}
    for key, value in pairs.items():
        v = json_value(value)
        if v is None:
            continue
        out[key] = roles_text(v) if key == "roles" else v
    return out


def identifier_node_id(kind: str, value: str) -> str:
    """The node id of an identifier: ``"<kind>:<value>"``."""
    return f"{kind}:{value}"


def split_identifier_node_id(node_id: str) -> tuple[str, str]:
    """``(kind, value)`` of an identifier node id (the value may contain ``:``)."""
    kind, _, value = node_id.partition(":")
    return kind, value


# --------------------------------------------------------------------------- walks


def ref_key(ref: NodeRef) -> tuple[str, str]:
    """The order of nodes in levels, results and tie-breaks: (label, id), by code point."""
    return (ref.label, ref.id)


def edge_key(edge: Edge) -> tuple[str, str, str, str, str]:
    """The order of edges in a :class:`~ringscope.model.Subgraph`: (source, type, target)."""
    return (edge.source.label, edge.source.id, edge.type, edge.target.label, edge.target.id)


def pick_edge(edges: Iterable[Edge], u: NodeRef, v: NodeRef) -> Edge | None:
    """The relationship a path uses between ``u`` and ``v`` when several join them.

    Among the relationships between the two nodes (either direction), the one
    smallest by (type, source, target).
    """
    pair = {u, v}
    best: Edge | None = None
    best_key: tuple[str, ...] | None = None
    for edge in edges:
        if {edge.source, edge.target} != pair:
            continue
        key = (edge.type, *ref_key(edge.source), *ref_key(edge.target))
        if best_key is None or key < best_key:
            best, best_key = edge, key
    return best


Expand = Callable[[Sequence[NodeRef], int], Sequence[NodeRef]]


def bounded_bfs(
    seeds: Sequence[NodeRef],
    *,
    hops: int,
    limit: int,
    expand: Expand,
) -> tuple[list[NodeRef], bool]:
    """Level-by-level walk with the node limit of ``GraphStore.neighbourhood``.

    Parameters
    ----------
    seeds
        Level 0: the seeds that exist.
    hops
        Number of levels after the seeds.
    limit
        Most nodes held; a level is added in (label, id) order while fewer
        than ``limit`` nodes are held.
    expand
        ``expand(frontier, want)`` returns the neighbours of ``frontier`` that
        are not held yet, over the allowed relationships. It may return only
        the ``want`` smallest by (label, id) (in any order, with repeats), but
        never fewer than ``want`` when that many exist.

    Returns
    -------
    nodes, truncated
        The held nodes in the order they were added, and whether a level did
        not fit.
    """
    held: list[NodeRef] = []
    seen: set[NodeRef] = set()
    level = sorted(set(seeds), key=ref_key)
    for depth in range(hops + 1):
        if depth > 0:
            if not level:
                break
            room = limit - len(held)
            found = expand(level, room + 1)
            level = sorted({r for r in found if r not in seen}, key=ref_key)
            if not level:
                break
        room = limit - len(held)
        added = level[: max(room, 0)]
        held.extend(added)
        seen.update(added)
        if len(added) < len(level):
            return held, True
        level = added
    return held, False


# --------------------------------------------------------------------------- records


def combine_fingerprints(fingerprints: Iterable[str]) -> str:
    """SHA-256 (hex) over load fingerprints in order: each one's UTF-8 bytes then ``\\n``."""
    h = hashlib.sha256()
    for fp in fingerprints:
        h.update(fp.encode())
        h.update(b"\n")
    return h.hexdigest()


class FingerprintCache:
    """A store's data fingerprint, kept in memory until a load is recorded.

    The app asks for it on every page (it keys the page caches). A store's DuckDB file
    (the embedded store, the Neo4j store's side file) is locked by the one process that
    opens it, so only that process records loads, and it calls :meth:`forget` when it
    does.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: str | None = None
        self._changes = 0

    def get(self, read: Callable[[], str]) -> str:
        """The kept fingerprint, or ``read()`` kept unless a load was recorded meanwhile."""
        with self._lock:
            if self._value is not None:
                return self._value
            changes = self._changes
        value = read()
        with self._lock:
            if changes == self._changes:
                self._value = value
        return value

    def forget(self) -> None:
        """A load is being recorded (call before and after writing it)."""
        with self._lock:
            self._value = None
            self._changes += 1


def load_report_from_dict(d: Mapping[str, Any]) -> LoadReport:
    """The inverse of :meth:`LoadReport.to_dict`."""
    return LoadReport(
        load_id=d["load_id"],
        data_dir=d.get("data_dir", ""),
        fingerprint=d.get("fingerprint", ""),
        tables={k: TableReport(**v) for k, v in (d.get("tables") or {}).items()},
    )


def run_with(run: Run, **changes: Any) -> Run:
    """A copy of ``run`` with some fields changed (times kept aware UTC)."""
    started = as_utc(run.started_at)
    assert started is not None
    fields: dict[str, Any] = {"started_at": started, "finished_at": as_utc(run.finished_at)}
    fields.update(changes)
    return dataclasses.replace(run, **fields)


def decision_with_utc(decision: Decision) -> Decision:
    """``decision`` with ``decided_at`` as an aware UTC datetime."""
    stamp = as_utc(decision.decided_at)
    assert stamp is not None
    return Decision(
        finding_id=decision.finding_id,
        decision=decision.decision,
        decided_by=decision.decided_by,
        decided_at=stamp,
        note=decision.note,
    )
