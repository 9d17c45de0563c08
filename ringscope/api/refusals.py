"""Refused requests (401, 403): every one counted, a bounded number written to the audit log.

Anyone can send requests without a key, and each refusal used to become an audit entry:
2,000 anonymous requests wrote 2,000 entries. :class:`RefusalAudit` keeps the audit log's
growth bounded whatever the traffic, in fixed periods (a minute by default; a period
starts with the first refusal after the last one ended):

- per client address, the first ``per_client`` refusals of a period are written in full
  (``denied`` entries, as before), as long as the period's ``per_period`` full entries (all
  clients together) are not used up;
- at the end of the period, each client with refusals left out gets one ``denied_summary``
  entry saying how many (the ``summaries`` clients with most left out; the others together
  get one ``denied_summary`` entry for "other clients");
- so a period writes at most ``per_period + summaries + 1`` entries, however many
  addresses an attacker rotates through;
- the clients counted in a period are at most ``clients`` (beyond, refusals are counted
  together): the limiter's memory is bounded too.

Counts since start (refused, written, left out; by status) are kept for admins
(``GET /api/settings``, ``refusals``). Pure bookkeeping plus a timer that writes a
period's summaries when it ends; the writing is handed in (``write``).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("ringscope.access")

#: Writes one audit entry: who, action, subject, detail.
Write = Callable[[str, str, str, dict[str, Any]], None]

#: The subject of the summary of the clients without a summary of their own.
OTHER_CLIENTS = "other clients"


@dataclass(frozen=True, slots=True)
class RefusalLimits:
    """How many refused requests the audit log keeps in full, per period."""

    per_client: int = 10
    per_period: int = 100
    period_s: float = 60.0
    summaries: int = 20
    clients: int = 10_000

    def __post_init__(self) -> None:
        for name in ("per_client", "per_period", "summaries", "clients"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.period_s > 0:
            raise ValueError(f"period_s: must be > 0, got {self.period_s}")

    @staticmethod
    def from_settings() -> RefusalLimits:
        from ringscope.settings import get_settings

        s = get_settings()
        return RefusalLimits(
            per_client=s.audit_refusals_per_client,
            per_period=s.audit_refusals_per_period,
            period_s=s.audit_refusal_period_s,
        )

    @property
    def rows_per_period(self) -> int:
        """The most audit entries a period writes."""
        return self.per_period + self.summaries + 1


@dataclass(slots=True)
class _Client:
    """One client's refusals in the current period."""

    who: str
    refused: int = 0
    written: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class RefusalAudit:
    """Counts refused requests and writes a bounded number of them to the audit log.

    Thread-safe: refusals come from the event loop and from the routes' threads, the
    summaries from a timer thread. ``write`` is called outside the lock and must not
    raise (the caller logs a store that fails)."""

    def __init__(
        self,
        write: Write,
        limits: RefusalLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
        timer: bool = True,
    ) -> None:
        self.limits = limits or RefusalLimits()
        self._write = write
        self._clock = clock
        self._use_timer = timer
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        # the current period
        self._start: float | None = None
        self._clients: dict[str, _Client] = {}
        self._written = 0  # full entries this period
        self._left_out = 0  # refusals not written this period
        self._untracked: dict[int, int] = {}  # refusals past ``limits.clients``, by status
        # since start
        self.refused: dict[int, int] = {}
        self.written = 0
        self.dropped = 0
        self.summary_rows = 0
        self.periods = 0

    def record(self, client: str, who: str, subject: str, detail: dict[str, Any]) -> bool:
        """Count one refusal (``detail["status"]``) from ``client`` and write it in full if
        the limits allow; ``True`` if it was written. Writes first the summaries of a
        period that has ended."""
        status = int(detail.get("status", 0))
        with self._lock:
            now = self._clock()
            ended = self._roll(now)
            full = self._count(client, who, status, now)
            if not full and self._use_timer and self._timer is None:
                self._schedule(now)
        for row in ended:
            self._write(*row)
        if full:
            self._write(who, "denied", subject, detail)
        return full

    def tick(self) -> None:
        """Write the summaries of a period that has ended (the timer calls this)."""
        with self._lock:
            self._timer = None
            now = self._clock()
            ended = self._roll(now)
            if self._left_out and self._use_timer:  # woken early: wait for the end
                self._schedule(now)
        for row in ended:
            self._write(*row)

    def close(self) -> None:
        """Write the current period's summaries now (at shutdown)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            ended = self._end(self._clock()) if self._start is not None else []
        for row in ended:
            self._write(*row)

    def counts(self) -> dict[str, Any]:
        """What was refused, written and left out since start, and the current period."""
        with self._lock:
            top = heapq.nlargest(5, self._clients.items(), key=lambda kv: kv[1].refused)
            return {
                "refused": sum(self.refused.values()),
                "by_status": {str(k): v for k, v in sorted(self.refused.items())},
                "written": self.written,
                "dropped": self.dropped,
                "summary_rows": self.summary_rows,
                "periods": self.periods,
                "period_start": _iso(self._start) if self._start is not None else None,
                "period_clients": len(self._clients),
                "period_top_clients": [
                    {"client": c, "refused": s.refused, "written": s.written} for c, s in top
                ],
                "limits": {
                    "per_client": self.limits.per_client,
                    "per_period": self.limits.per_period,
                    "period_s": self.limits.period_s,
                },
            }

    # ------------------------------------------------------------------ under the lock
    def _count(self, client: str, who: str, status: int, now: float) -> bool:
        if self._start is None:
            self._start = now
            self.periods += 1
        self.refused[status] = self.refused.get(status, 0) + 1
        seen = self._clients.get(client)
        if seen is None and len(self._clients) < self.limits.clients:
            seen = self._clients[client] = _Client(who)
        if seen is None:  # too many clients this period: counted together, not written
            self._untracked[status] = self._untracked.get(status, 0) + 1
            self.dropped += 1
            self._left_out += 1
            return False
        seen.refused += 1
        seen.statuses[status] = seen.statuses.get(status, 0) + 1
        if seen.who != who:
            seen.who = "several"
        full = seen.written < self.limits.per_client and self._written < self.limits.per_period
        if full:
            seen.written += 1
            self._written += 1
            self.written += 1
        else:
            self.dropped += 1
            self._left_out += 1
        return full

    def _roll(self, now: float) -> list[tuple[str, str, str, dict[str, Any]]]:
        """End the current period if its time is up; its summary entries."""
        if self._start is None or now < self._start + self.limits.period_s:
            return []
        return self._end(self._start + self.limits.period_s)

    def _end(self, until: float) -> list[tuple[str, str, str, dict[str, Any]]]:
        """The summary entries of the current period, which ends at ``until``."""
        assert self._start is not None
        span = {"from": _iso(self._start), "to": _iso(until), "period_s": self.limits.period_s}
        short = [(c, s) for c, s in self._clients.items() if s.refused > s.written]
        own = heapq.nlargest(
            self.limits.summaries, short, key=lambda cs: cs[1].refused - cs[1].written
        )
        mine = {c for c, _ in own}
        rows: list[tuple[str, str, str, dict[str, Any]]] = []
        for client, s in own:
            detail = {
                "client": client,
                "refused": s.refused,
                "written": s.written,
                "dropped": s.refused - s.written,
                "status": {str(k): v for k, v in sorted(s.statuses.items())},
                **span,
            }
            rows.append((s.who, "denied_summary", client, detail))
        others = [s for c, s in short if c not in mine]
        untracked = sum(self._untracked.values())
        if others or untracked:
            statuses = dict(self._untracked)
            for s in others:
                for k, v in s.statuses.items():
                    statuses[k] = statuses.get(k, 0) + v
            dropped = sum(s.refused - s.written for s in others) + untracked
            detail = {
                "clients": len(others),
                "untracked": untracked,
                "refused": sum(s.refused for s in others) + untracked,
                "dropped": dropped,
                "status": {str(k): v for k, v in sorted(statuses.items())},
                **span,
            }
            rows.append(("several", "denied_summary", OTHER_CLIENTS, detail))
        self.summary_rows += len(rows)
        self._start, self._clients, self._untracked = None, {}, {}
        self._written = self._left_out = 0
        if self._timer is not None:  # the period it waited for is over
            self._timer.cancel()
            self._timer = None
        return rows

    def _schedule(self, now: float) -> None:
        """A timer for the end of the period, which writes its summaries."""
        assert self._start is not None
        delay = max(0.0, self._start + self.limits.period_s - now) + 0.05
        self._timer = threading.Timer(delay, self.tick)
        self._timer.daemon = True
        self._timer.name = "ringscope-refusal-summaries"
        self._timer.start()
