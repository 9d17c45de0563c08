"""Every error ringscope raises on purpose, in one hierarchy.

The CLI maps these to exit codes, the API to HTTP responses; nothing else
catches them broadly.
"""

from __future__ import annotations

from dataclasses import dataclass


class RingscopeError(Exception):
    """Base class of every error ringscope raises on purpose."""


class ConfigError(RingscopeError):
    """A setting, a policy file or a store URI is wrong."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in the input, located as precisely as the input allows.

    ``row`` is the 1-based data row number in the file (the header is not
    counted; for JSONL it is the line number), or ``None`` when the problem
    concerns the whole file.
    """

    file: str
    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column {self.column!r}"
        return f"{where}: {self.reason}"


class InputError(RingscopeError):
    """Input that cannot be used: a file that cannot be read, a missing column."""

    def __init__(self, problem: Problem | str) -> None:
        self.problem = problem if isinstance(problem, Problem) else None
        super().__init__(str(problem))


class LoadError(RingscopeError):
    """A load stopped for a reason that is neither its input nor its store (a
    rejects file that cannot be written, an unexpected failure); the table being
    loaded was rolled back first."""


class StoreError(RingscopeError):
    """A store failed (connection, transaction, constraint). Raised ``from`` the cause."""


class StoreLocked(StoreError):
    """The embedded store's file is held by another process (DuckDB lets one process
    open a database file); ``pid`` is that process, when DuckDB says which."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid


class StoreAway(StoreError):
    """The investigator app has stepped aside while a job writes to the embedded store
    (see :mod:`ringscope.graphs.sharing`); ask again in ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFoundError(RingscopeError):
    """A run, finding or entity that the store does not hold."""


class ConcurrentRunError(RingscopeError):
    """Another job holds the store's lock."""
