"""Group commit: appends from many threads written together, each caller returning only
once its own item is committed.

The audit log gets one entry per view of a finding or an entity, so with many
investigators at once its appends are the app's most frequent write. One transaction
per entry makes every request wait for its own commit in turn (one writer at a time);
here the appends that arrive while a transaction is being written are collected and
written by the next one, in one transaction. Nothing is acknowledged before it is
committed: a caller returns when the transaction that holds its item has committed,
and raises that transaction's error when it failed (then none of its items is written).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

#: The most items written in one transaction.
MAX_GROUP: int = 500


class _Group(Generic[T]):
    __slots__ = ("done", "error", "items")

    def __init__(self) -> None:
        self.items: list[T] = []
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Write items through ``write`` (one call is one transaction), grouping the items
    that callers hand in while a transaction is under way.

    Parameters
    ----------
    write
        Writes a sequence of items, in order, in one transaction; raises when nothing
        was written.
    max_group
        The most items passed to one ``write``.
    """

    def __init__(self, write: Callable[[Sequence[T]], None], *, max_group: int = MAX_GROUP) -> None:
        if max_group < 1:
            raise ValueError(f"max_group: must be >= 1, got {max_group}")
        self._write = write
        self._max = max_group
        self._cond = threading.Condition()
        self._open: _Group[T] = _Group()
        self._writing = False

    def append(self, item: T) -> None:
        """Write ``item``; return once it is committed, raise the write's error if not.

        The first caller with no transaction under way writes its group (its item and
        those that came with it); the callers that arrive meanwhile wait, and one of
        them writes the next group as soon as the transaction before it has ended.
        """
        with self._cond:
            if len(self._open.items) >= self._max:
                self._cond.wait_for(lambda: len(self._open.items) < self._max)
            group = self._open
            group.items.append(item)
            while not group.done:
                if not self._writing:
                    # this caller writes its group; later callers fill a new one
                    self._writing = True
                    self._open = _Group()
                    break
                self._cond.wait()
            else:
                if group.error is not None:
                    raise _again(group.error)
                return
        try:
            self._write(group.items)
        except BaseException as e:
            group.error = e
            raise
        finally:
            with self._cond:
                group.done = True
                self._writing = False
                self._cond.notify_all()


def _again(error: BaseException) -> BaseException:
    """A copy of the error of a group's write for one more of its callers (one exception
    object is not raised in several threads at once), caused by the original."""
    try:
        again = copy.copy(error)
    except Exception:
        return error
    again.__cause__ = error
    again.__traceback__ = None
    return again
