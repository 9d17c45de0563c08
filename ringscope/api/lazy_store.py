"""The app's store, opened at start-up if it can be and again on use until it is.

A Neo4j server that is down when the app starts must not keep the app from
starting: the app answers, ``/health`` says the store is unavailable (503), every
route that needs the store answers 503 with the reason, and the first request
after the server is back opens the store, with no restart. Attempts are spaced by
``retry_after`` seconds so that a burst of requests does not become a burst of
connection attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ringscope.errors import StoreError
from ringscope.graphs.store import GraphStore

log = logging.getLogger("ringscope.api")

#: Seconds between two attempts to open a store that could not be opened.
RETRY_AFTER = 1.0


class ReopeningStore:
    """A :class:`~ringscope.graphs.store.GraphStore` stand-in that opens the real
    store lazily and passes every call on to it.

    Parameters
    ----------
    uri
        The store URI, as for :func:`ringscope.graphs.open_store` (``None``: the
        settings' store).
    opener
        Opens the store (default :func:`ringscope.graphs.open_store`).
    retry_after
        Seconds between attempts after a failed one.

    Raises
    ------
    ConfigError
        From the first attempt, when the URI or the settings are wrong: that does
        not mend itself, so the app does not start. A :class:`StoreError` (server
        down, file locked) does not raise here; it is kept and raised on use.
    """

    def __init__(
        self,
        uri: str | None = None,
        *,
        opener: Callable[[str | None], GraphStore] | None = None,
        retry_after: float = RETRY_AFTER,
    ) -> None:
        if opener is None:
            from ringscope.graphs import open_store

            opener = open_store
        if uri is None:
            from ringscope.settings import get_settings

            uri = get_settings().store
        self.uri: str = uri
        self._opener = opener
        self._retry_after = retry_after
        self._store: GraphStore | None = None
        self._error: StoreError | None = None
        self._tried_at = float("-inf")
        self._lock = threading.Lock()
        self._closed = False
        self._attempt()

    def _attempt(self) -> None:
        self._tried_at = time.monotonic()
        try:
            self._store = self._opener(self.uri)
        except StoreError as e:
            self._error = StoreError(f"store {self.uri} is unavailable: {e}")
            log.warning("%s (retrying on use)", self._error)
        else:
            if self._error is not None:
                log.warning("store %s is open again", self.uri)
            self._error = None

    def get(self) -> GraphStore:
        """The open store, opening it now if it is time to try again.

        Raises
        ------
        StoreError
            The store cannot be opened (yet); the message says why.
        """
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.uri} is closed")
            if self._store is None and time.monotonic() - self._tried_at >= self._retry_after:
                self._attempt()
            if self._store is None:
                assert self._error is not None
                raise self._error
            return self._store

    def problem(self) -> str | None:
        """Why the store is unavailable, or ``None`` when it is open (tries to open it)."""
        try:
            self.get()
        except StoreError as e:
            return str(e)
        return None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._store is not None:
                store, self._store = self._store, None
                store.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        state = "open" if self._store is not None else "not open"
        return f"ReopeningStore({self.uri!r}, {state})"
