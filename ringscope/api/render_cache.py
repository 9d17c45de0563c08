"""What the app draws and renders once and serves many times: a finding's graph, the
parts of its page and of its JSON detail that do not change between requests, the
neighbourhoods of entities.

A succeeded run's findings never change, and a finding's graph changes only with the
data (a new load), so these are kept per (run, finding, data fingerprint, view) and,
for what a viewer sees, per redaction key; a neighbourhood per (entity, walk, data
fingerprint, redaction key). The parts that do change (the case's
decisions, its history across runs, who is asking, the audit entry of the view) are
made for every request, outside this cache.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")

#: Entries kept per cache (a cluster page's rendered part is up to ~0.5 MB).
CACHE_SIZE = 64
#: Neighbourhoods kept (most are walks of one entity within 100 nodes).
WALK_CACHE_SIZE = 512


class _Making:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class RenderCache(Generic[V]):
    """A least-recently-used map from key to value, shared by the server's threads,
    in which each value is made once however many requests ask for it at the same time
    (the others wait for it)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        if size < 1:
            raise ValueError(f"size: must be >= 1, got {size}")
        self._size = size
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._making: dict[Hashable, _Making] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _cached(self, key: Hashable) -> tuple[bool, Any]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return True, self._items[key]
        return False, None

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value of ``key``, made by ``make()`` when it is not kept (an error of
        ``make`` is raised and nothing is kept)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            making = self._making.get(key)
            if making is None:
                making = self._making[key] = _Making()
            making.users += 1
        try:
            with making.lock:
                found, value = self._cached(key)
                if found:
                    cached: V = value
                    return cached
                made = make()
                with self._lock:
                    self._items[key] = made
                    while len(self._items) > self._size:
                        self._items.popitem(last=False)
                return made
        finally:
            with self._lock:
                making.users -= 1
                if making.users == 0:
                    self._making.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def key_digest(secret: str | None) -> str:
    """A stand-in for a redaction key in cache keys (never the key itself); "" for none."""
    if secret is None:
        return ""
    return hashlib.sha256(b"ringscope-render-cache\0" + secret.encode()).hexdigest()
