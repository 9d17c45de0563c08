"""One embedded store, two users: the investigator app steps aside while a job writes.

DuckDB lets one process at a time open a database file: while one holds it, another
can open it neither read-write nor read-only. The investigator app (``ringscope
serve``) keeps the file open as long as it runs, since it writes decisions, views and
audit entries; a nightly ``ringscope job`` would find it held and fail. Of the two
ways to share the file, "the app reads while a job writes" cannot be had from DuckDB
(the app could at best read a copy of the file made before the job, and would still
have nowhere to write decisions), so a job asks the app to step aside:

- **The request.** A writer (``ringscope job``, ``load``, ``detect``) that finds the
  file held writes a step-aside request beside it, ``<store>.yield``: one line of JSON
  saying which process asks and for what (:class:`StepAsideRequest`), under an
  exclusive ``flock`` that the writer keeps for as long as it uses the file. It then
  tries to open the file again every :data:`RETRY_S` seconds for at most
  ``RINGSCOPE_STORE_WAIT_S`` seconds (default 60), and fails with a message naming
  the holder (pid and command) if the holder did not let go: another command of the
  command line, a notebook, any process that is not the app, does not step aside.
- **The app** (:class:`ringscope.api.lazy_store.ReopeningStore`) looks at the request
  file a few times a second from a thread (one ``stat``; :func:`pending`), refuses new
  requests from then on (503 with ``Retry-After``), lets the requests in flight
  finish, and closes the file. It opens it again on the first request after the
  request is withdrawn.
- **A request stands only while its lock is held.** The kernel releases a ``flock``
  when its holder ends, however it ends: a job killed with SIGKILL leaves a file that
  says something but is not locked, which the app takes for what it is (stale), empties
  and comes back from. The file is never removed (removing a lock file races with the
  next writer that opens it); an empty file means no request.
- **The job gives the file back while it detects** (:meth:`SharedFile.released`): once
  it has read the tables into memory, the detectors need no store, so a job that had
  to ask the app closes the file and withdraws its request, then asks again to save
  the run. The app is away while the job loads and while it saves, not while it detects.

The job lock (``<store>.job.lock``, :mod:`ringscope.jobs.lock`) is another matter:
it lets one job at a time run and refuses a second at once. A job takes it first,
then asks for the file; the app never takes it, and only reads it to say what the
job is doing. Neo4j stores do not come here: the server shares itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ringscope.errors import StoreError, StoreLocked
from ringscope.graphs import NEO4J_SCHEMES

if TYPE_CHECKING:
    from ringscope.graphs.embedded import EmbeddedStore

log = logging.getLogger("ringscope.graphs")

#: The step-aside request beside a store's file: ``<store><REQUEST_SUFFIX>``.
REQUEST_SUFFIX = ".yield"
#: Seconds between a waiting writer's attempts to open the file.
RETRY_S = 0.1

T = TypeVar("T")


def request_path(store_path: str | os.PathLike[str]) -> Path:
    """Where writers ask the holder of the store's file to step aside."""
    return Path(f"{os.fspath(store_path)}{REQUEST_SUFFIX}")


def shared_path(store_uri: str) -> str | None:
    """The file of an embedded store that processes share, or ``None`` (a Neo4j
    store, an in-memory one)."""
    if store_uri.startswith(NEO4J_SCHEMES):
        return None
    path = store_uri.removeprefix("duckdb://")
    return None if path == ":memory:" else path


@dataclass(frozen=True, slots=True)
class StepAsideRequest:
    """Who asks the holder of the file to step aside, and for what."""

    pid: int | None
    what: str
    since: str
    host: str = ""

    @classmethod
    def parse(cls, text: str) -> StepAsideRequest:
        """The request in ``text`` (JSON); one being written reads as an unnamed one."""
        try:
            doc = json.loads(text)
            return cls(int(doc["pid"]), str(doc["what"]), str(doc["since"]), str(doc["host"]))
        except (ValueError, KeyError, TypeError):
            return cls(None, "a ringscope job", "")

    def describe(self) -> str:
        """``ringscope job (pid 123, since 2026-05-01T02:30:00+00:00)``."""
        parts = self.facts()
        return f"{self.what} ({', '.join(parts)})" if parts else self.what

    def facts(self) -> list[str]:
        """``["pid 123", "since 2026-05-01T02:30:00+00:00"]``, as far as they are known."""
        parts = [f"pid {self.pid}"] if self.pid is not None else []
        if self.since:
            parts.append(f"since {self.since}")
        return parts


def pending(store_path: str | os.PathLike[str]) -> StepAsideRequest | None:
    """The request standing beside the store's file, or ``None``.

    One ``stat`` when there is none (no file, or an empty one). A file that holds a
    request whose writer no longer holds its lock (it ended, or was killed) is stale:
    it is emptied (when this process may write it) and ``None`` is returned.
    """
    path = request_path(store_path)
    try:
        if path.stat().st_size == 0:
            return None
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    except OSError:  # another user's, or a read-only folder: it can be read and locked
        fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its writer holds it: the request stands
            return StepAsideRequest.parse(os.pread(fd, 4096, 0).decode("utf-8", "replace"))
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def lock_path(store_uri: str, work_dir: str | os.PathLike[str]) -> Path:
    """Where the job lock of ``store_uri`` lives (taken by :mod:`ringscope.jobs.lock`;
    named here, where the app reads what the job holding it says)."""
    if store_uri.startswith(NEO4J_SCHEMES):
        digest = hashlib.sha256(store_uri.encode()).hexdigest()[:16]
        return Path(work_dir) / "locks" / f"neo4j-{digest}.job.lock"
    path = store_uri.removeprefix("duckdb://")
    if path == ":memory:":
        return Path(work_dir) / "locks" / f"memory-{os.getpid()}.job.lock"
    return Path(f"{path}.job.lock")


def _job_stamp(store_path: str | os.PathLike[str]) -> dict[str, object]:
    """What the store's job lock says of the job holding it (``{}``: nothing).
    Read only: the job lock is never taken here (a second job would be refused for it)."""
    try:
        doc = json.loads(lock_path(os.fspath(store_path), ".").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def job_phase(store_path: str | os.PathLike[str], pid: int | None) -> str:
    """What the job of process ``pid`` says it is doing in the store's job lock
    (``loading``, ``detecting: lockstep``, ...), or ``""``."""
    stamp = _job_stamp(store_path)
    if pid is None or stamp.get("pid") != pid:
        return ""
    return str(stamp.get("phase") or "")


def job_holding(store_path: str | os.PathLike[str]) -> StepAsideRequest | None:
    """The job that the store's job lock names, if its process is alive (it may hold
    the file without having asked anyone, when the file was free as it started)."""
    stamp = _job_stamp(store_path)
    try:
        pid = int(str(stamp["pid"]))
    except (KeyError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # another user's process: alive
    return StepAsideRequest(pid, "a ringscope job", str(stamp.get("since", "")))


class _Asking:
    """A writer's request, posted and withdrawn (the writer's side of :func:`pending`)."""

    def __init__(self, store_path: str, what: str) -> None:
        self.path = request_path(store_path)
        self.what = what
        self._fd: int | None = None

    @property
    def posted(self) -> bool:
        return self._fd is not None

    def post(self, deadline: float) -> None:
        """Write the request under its lock (waiting until ``deadline`` for the lock
        when another writer holds it)."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(
                f"cannot ask for the store: cannot write {self.path}: {e.strerror}"
            ) from e
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        other = StepAsideRequest.parse(
                            os.pread(fd, 4096, 0).decode("utf-8", "replace")
                        )
                        raise StoreError(
                            f"cannot ask for the store: {other.describe()} is asking for it"
                        ) from None
                    time.sleep(RETRY_S)
            stamp = {
                "pid": os.getpid(),
                "what": self.what,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "host": socket.gethostname(),
            }
            data = (json.dumps(stamp) + "\n").encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def withdraw(self) -> None:
        """Empty the request and let go of its lock (the holder may come back)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # releases the lock


class SharedFile:
    """A writer's hold on an embedded store's file, got by asking its holder to step
    aside when needed.

    Parameters
    ----------
    path
        The store's file.
    what
        What the writer is, for the holder's users (``ringscope job``).
    wait_s
        Seconds to wait for the holder, each time the file is asked for; 0 fails at once.
    waiting
        Called with the holder's description when the writer starts to wait.
    """

    def __init__(
        self,
        path: str,
        *,
        what: str,
        wait_s: float,
        waiting: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self.what = what
        self.wait_s = wait_s
        self._waiting = waiting
        self._asking = _Asking(path, what)
        self._store: EmbeddedStore | None = None
        #: The writer had to ask another process for the file.
        self.asked = False

    def open(self) -> EmbeddedStore:
        """Open the store, asking its holder to step aside if another process holds it."""
        from ringscope.graphs.embedded import EmbeddedStore

        self._store = self._take(lambda: EmbeddedStore(self.path))
        return self._store

    def _take(self, attempt: Callable[[], T]) -> T:
        try:
            return attempt()
        except StoreLocked as first:
            if self.wait_s <= 0:
                raise
            last = first
        deadline = time.monotonic() + self.wait_s
        self._asking.post(deadline)
        self.asked = True
        log.warning("%s; asked it to step aside, waiting up to %g s", _held_by(last), self.wait_s)
        if self._waiting is not None:
            self._waiting(_held_by(last))
        while True:
            time.sleep(min(RETRY_S, max(0.0, deadline - time.monotonic())))
            try:
                return attempt()
            except StoreLocked as e:
                last = e
            if time.monotonic() >= deadline:
                self._asking.withdraw()
                raise StoreError(
                    f"{_held_by(last)} and did not step aside within {self.wait_s:g} s "
                    "(the investigator app steps aside for jobs; another process does not): "
                    "stop it and run again, or wait longer with RINGSCOPE_STORE_WAIT_S"
                ) from last

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Give the file back while the block runs (it must not use the store), then
        take it again; when the writer did not have to ask for it, keep it."""
        store = self._store
        if store is None or not self.asked:
            yield
            return
        store.close()
        self._asking.withdraw()
        try:
            yield
        finally:
            self._take(store.reopen)

    def close(self) -> None:
        """Close the store, then withdraw the request (in that order: the holder comes
        back to a file that is free)."""
        store, self._store = self._store, None
        try:
            if store is not None:
                store.close()
        finally:
            self._asking.withdraw()


def _held_by(error: StoreLocked) -> str:
    """``store X is in use by another process (pid N: ...)`` without DuckDB's advice."""
    text = str(error)
    return text.split(" (DuckDB allows", 1)[0]


def describe_away(store_path: str, request: StepAsideRequest) -> str:
    """What the app's users are told while it stands aside for ``request``."""
    phase = job_phase(store_path, request.pid)
    facts = [request.what, *request.facts()]
    if phase and not phase.startswith(("waiting", "starting")):
        facts.append(phase)
    return (
        f"the nightly job is writing to the store ({', '.join(facts)}); "
        "the app is back when it finishes"
    )
