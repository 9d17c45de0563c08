"""One job at a time per store: an exclusive lock file, released when the process ends.

The lock is an ``flock`` on a file: for the embedded store beside the
database file (``<store>.job.lock``), for a server store in the work folder,
named after the store URI. The kernel releases it when the holder dies, so
a killed job never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from ringscope.errors import ConcurrentRunError, StoreError
from ringscope.graphs import NEO4J_SCHEMES


def lock_path(store_uri: str, work_dir: str | Path) -> Path:
    """Where the job lock of ``store_uri`` lives."""
    if store_uri.startswith(NEO4J_SCHEMES):
        digest = hashlib.sha256(store_uri.encode()).hexdigest()[:16]
        return Path(work_dir) / "locks" / f"neo4j-{digest}.job.lock"
    path = store_uri.removeprefix("duckdb://")
    if path == ":memory:":
        return Path(work_dir) / "locks" / f"memory-{os.getpid()}.job.lock"
    return Path(f"{path}.job.lock")


@contextmanager
def job_lock(store_uri: str, work_dir: str | Path) -> Iterator[Path]:
    """Hold the store's job lock, or raise :class:`ConcurrentRunError` at once."""
    path = lock_path(store_uri, work_dir)
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
                info = json.loads(holder)
                who = f" (pid {info['pid']}, since {info['since']})"
            except (ValueError, KeyError, TypeError):
                who = ""
            raise ConcurrentRunError(
                f"another ringscope job is running on store {store_uri}{who}; "
                "wait for it to finish, or stop it"
            ) from None
        os.ftruncate(fd, 0)
        stamp = {"pid": os.getpid(), "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.pwrite(fd, json.dumps(stamp).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
