"""One job at a time per store.

Two locks, both released when the holder dies:

- an ``flock`` on a file: for the embedded store beside the database file
  (``<store>.job.lock``), for a server store in the work folder, named after
  the store URI. The kernel releases it when the holder dies. The file says
  who holds it and what the job is doing (``loading``, ``detecting``), so a
  refused job can say so and a supervisor can watch a job's progress;
- for a store that other machines reach (Neo4j), a lease in the store itself
  (:class:`LeasedStore`), renewed while the job runs. A lease whose holder
  stopped renewing expires after :data:`LEASE_TTL_S`; one held by a process
  of this machine that no longer exists is taken over at once, so the next
  job after a killed one does not wait.

Neither is the step-aside request (``<store>.yield``,
:mod:`ringscope.graphs.sharing`) by which a job that holds the job lock asks the
investigator app for the embedded store's file: the job lock is between jobs and
refuses at once; the request is between a job and the app, and waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ringscope.errors import ConcurrentRunError, StoreError
from ringscope.graphs import check_store_uri
from ringscope.graphs.sharing import SharedFile, lock_path, shared_path

#: Seconds a store lease lasts without renewal.
LEASE_TTL_S = 120.0
#: The name of the job lease in a store.
LEASE_NAME = "job"


def _describe(info: dict[str, Any]) -> str:
    parts = [f"host {info['host']}"] if info.get("host") else []
    parts += [f"pid {info['pid']}", f"since {info['since']}"]
    if info.get("phase"):
        parts.append(str(info["phase"]))
    return f" ({', '.join(parts)})"


def _refused(store_uri: str, who: str) -> ConcurrentRunError:
    return ConcurrentRunError(
        f"another ringscope job is running on store {store_uri}{who}; "
        "wait for it to finish, or stop it"
    )


@dataclass
class HeldLock:
    """The job lock while it is held: :meth:`phase` tells watchers what the job does;
    :meth:`released` lets the investigator app have the store while the job computes."""

    path: Path
    store_uri: str
    fd: int
    stamp: dict[str, Any] = field(default_factory=dict)
    shared: SharedFile | None = None

    def phase(self, name: str) -> None:
        self.stamp["phase"] = name
        data = json.dumps(self.stamp).encode()
        os.pwrite(self.fd, data, 0)
        os.ftruncate(self.fd, len(data))

    def released(self) -> contextlib.AbstractContextManager[None]:
        """While the block runs the job does not use the store: the embedded store's
        file is given back to the app the job asked it from, and taken again after
        (:meth:`ringscope.graphs.sharing.SharedFile.released`); a no-op otherwise."""
        if self.shared is None:
            return contextlib.nullcontext()
        return self.shared.released()


@contextlib.contextmanager
def job_lock(store_uri: str, work_dir: str | Path) -> Iterator[HeldLock]:
    """Hold the store's job lock file, or raise :class:`ConcurrentRunError` at once."""
    path = lock_path(check_store_uri(store_uri), work_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(f"cannot create the job lock {path}: {e.strerror}") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            try:
                who = _describe(json.loads(holder))
            except (ValueError, KeyError, TypeError):
                who = ""
            raise _refused(store_uri, who) from None
        held = HeldLock(
            path,
            store_uri,
            fd,
            {"pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")},
        )
        held.phase("starting")
        try:
            yield held
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- store leases


@runtime_checkable
class LeasedStore(Protocol):
    """A store that keeps job leases itself (one that several machines can reach)."""

    def acquire_lease(
        self, name: str, token: str, holder: dict[str, Any], ttl_s: float, *, take_over: Any
    ) -> dict[str, Any] | None:
        """Take lease ``name`` for ``token`` if it is free, expired, or
        ``take_over(holder_of_it)`` is true; else return its holder."""
        ...

    def renew_lease(self, name: str, token: str, ttl_s: float) -> bool:
        """Extend the lease if ``token`` still holds it."""
        ...

    def release_lease(self, name: str, token: str) -> None:
        """Give the lease up if ``token`` holds it."""
        ...


def _holder_is_gone(holder: dict[str, Any]) -> bool:
    """The holder ran on this machine and its process no longer exists."""
    if holder.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


@contextlib.contextmanager
def store_lease(store: object, store_uri: str, ttl_s: float = LEASE_TTL_S) -> Iterator[None]:
    """Hold the store's job lease while the block runs (nothing for stores without
    leases), renewing it from a background thread; refuse with
    :class:`ConcurrentRunError` when another job holds it."""
    if not isinstance(store, LeasedStore):
        yield
        return
    token = secrets.token_hex(8)
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    other = store.acquire_lease(LEASE_NAME, token, holder, ttl_s, take_over=_holder_is_gone)
    if other is not None:
        raise _refused(store_uri, _describe(other))
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_s / 4):
            with contextlib.suppress(Exception):  # retried at the next beat
                store.renew_lease(LEASE_NAME, token, ttl_s)

    beat = threading.Thread(target=renew, name="ringscope-lease", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=30)
        with contextlib.suppress(Exception):  # an expired lease frees itself
            store.release_lease(LEASE_NAME, token)


@contextlib.contextmanager
def exclusive_store(
    store_uri: str, work_dir: str | Path, settings: Any, *, what: str = "ringscope job"
) -> Iterator[tuple[Any, HeldLock]]:
    """The store at ``store_uri``, opened under the job lock and the store's lease.

    An embedded store's file held by another process (the investigator app) is asked
    for: the holder is asked to step aside and the file opened once it has, within
    ``settings.store_wait_s`` seconds (:mod:`ringscope.graphs.sharing`; ``what`` is
    what the job is, for the app's users)."""
    from ringscope.graphs import open_store

    with job_lock(store_uri, work_dir) as held:
        path = shared_path(store_uri)
        if path is None:
            store = open_store(store_uri, settings=settings)
            try:
                with store_lease(store, store_uri):
                    yield store, held
            finally:
                store.close()
            return
        shared = SharedFile(
            path,
            what=what,
            wait_s=settings.store_wait_s,
            waiting=lambda holder: held.phase(f"waiting for the store: {holder}"),
        )
        try:
            store = shared.open()
            held.shared = shared
            yield store, held
        finally:
            held.shared = None
            shared.close()
