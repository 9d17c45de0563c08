"""The app's store, opened at start-up if it can be and again on use until it is,
and given up for a while to a job that asks for the embedded store's file.

A Neo4j server that is down when the app starts must not keep the app from
starting: the app answers, ``/health`` says the store is unavailable (503), every
route that needs the store answers 503 with the reason, and the first request
after the server is back opens the store, with no restart. Attempts are spaced by
``retry_after`` seconds so that a burst of requests does not become a burst of
connection attempts.

On the embedded store the app also steps aside for jobs (``ringscope job``,
``load``, ``detect``), which DuckDB would otherwise keep out of the file for as long
as the app runs (see :mod:`ringscope.graphs.sharing` for the protocol and why this
design). A thread looks at the job's step-aside request every :data:`WATCH_S`
seconds; once it stands, requests are admitted no more (:meth:`ReopeningStore.admit`
returns the reason, which the app answers with 503 and ``Retry-After``), the
requests already admitted finish, and the file is closed. The app opens it again on
the first request after the job has withdrawn its request, or has died.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ringscope.errors import StoreAway, StoreError, StoreLocked
from ringscope.graphs.sharing import (
    StepAsideRequest,
    describe_away,
    job_holding,
    pending,
    shared_path,
)
from ringscope.graphs.store import GraphStore

log = logging.getLogger("ringscope.api")

#: Seconds between two attempts to open a store that could not be opened.
RETRY_AFTER = 1.0
#: Seconds between two looks at the step-aside request (a ``stat`` each).
WATCH_S = 0.2
#: What the app's 503 answers tell clients to wait, in seconds, while a job has the store.
AWAY_RETRY_AFTER_S = 10


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
        # stepping aside (embedded files only): the request it is for, and the
        # requests admitted and not yet finished
        self._path = shared_path(uri)
        self._gate = threading.Condition(threading.Lock())
        self._request: StepAsideRequest | None = None
        self._in_flight = 0
        self._watcher: threading.Thread | None = None
        self._attempt()
        if self._path is not None:
            self._watcher = threading.Thread(
                target=self._watch, name="ringscope-step-aside", daemon=True
            )
            self._watcher.start()

    def _attempt(self) -> None:
        self._tried_at = time.monotonic()
        try:
            self._store = self._opener(self.uri)
        except StoreLocked as e:
            job = job_holding(self._path) if self._path is not None else None
            if job is None:
                self._error = StoreError(f"store {self.uri} is unavailable: {e}")
                log.warning("%s (retrying on use)", self._error)
            else:  # a job took the file while the app was not holding it
                self._error = self._away_error(job)
        except StoreError as e:
            self._error = StoreError(f"store {self.uri} is unavailable: {e}")
            log.warning("%s (retrying on use)", self._error)
        else:
            if self._error is not None:
                log.warning("store %s is open again", self.uri)
            self._error = None

    def _away_error(self, request: StepAsideRequest) -> StoreAway:
        assert self._path is not None
        return StoreAway(describe_away(self._path, request), AWAY_RETRY_AFTER_S)

    def get(self) -> GraphStore:
        """The open store, opening it now if it is time to try again.

        Raises
        ------
        StoreError
            The store cannot be opened (yet); the message says why.
            :class:`~ringscope.errors.StoreAway` while the app stands aside for a job.
        """
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._closed:
                raise StoreError(f"store {self.uri} is closed")
            request = self._request
            if request is not None and self._store is None:
                raise self._away_error(request)
            if self._store is None and time.monotonic() - self._tried_at >= self._retry_after:
                self._attempt()
            if self._store is None:
                assert self._error is not None
                raise self._error
            return self._store

    def unavailable(self) -> StoreError | None:
        """Why the store cannot be used now (:class:`StoreAway` while the app stands
        aside for a job), or ``None`` when it is open (tries to open it)."""
        away = self.away()
        if away is not None:
            return away
        try:
            self.get()
        except StoreError as e:
            return e
        return None

    # ------------------------------------------------------------------ stepping aside
    def away(self) -> StoreAway | None:
        """The job the app stands aside for (or is about to), as the error to answer."""
        request = self._request
        return None if request is None else self._away_error(request)

    def admit(self) -> StoreAway | None:
        """Admit a request that may use the store (``None``), or say why not: the app
        stands aside for a job. An admitted request must be ended with :meth:`leave`;
        the file is not closed under it."""
        if self._watcher is None:
            return None
        with self._gate:
            request = self._request
            if request is None:
                self._in_flight += 1
                return None
        return self._away_error(request)

    def leave(self) -> None:
        """An admitted request has finished."""
        if self._watcher is None:
            return
        with self._gate:
            self._in_flight -= 1
            if self._in_flight == 0 and self._request is not None:
                self._gate.notify_all()

    def _watch(self) -> None:
        """Look at the step-aside request until the store is closed; step aside while
        one stands, come back when it is gone."""
        assert self._path is not None
        unreadable = ""
        while not self._closed:
            try:
                request = pending(self._path)
                unreadable = ""
            except OSError as e:  # an unreadable request cannot be honoured; said once
                request = None
                if str(e) != unreadable:
                    unreadable = str(e)
                    log.warning("store %s: cannot read the step-aside request: %s", self.uri, e)
            with self._gate:
                was, self._request = self._request, request
                drained = self._in_flight == 0
            if request is not None and was is None:
                log.warning("store %s: stepping aside for %s", self.uri, request.describe())
            elif request is None and was is not None:
                log.warning(
                    "store %s: the job has let go of the store; opening it on the next request",
                    self.uri,
                )
            if request is not None and drained:
                self._step_aside()
            with self._gate:
                # woken early when the last request in flight ends
                self._gate.wait(WATCH_S)

    def _step_aside(self) -> None:
        """Close the file (no request is admitted, none is in flight)."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()
            log.warning("store %s: closed for the job", self.uri)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._store is not None:
                store, self._store = self._store, None
                store.close()
        with self._gate:
            self._gate.notify_all()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        state = "open" if self._store is not None else "not open"
        return f"ReopeningStore({self.uri!r}, {state})"
