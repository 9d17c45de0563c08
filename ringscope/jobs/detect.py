"""One detection run on a store: read the tables, run every enabled detector,
build the queue, compare it with the previous run, and save it as a run.

The run is the same whatever engine detects (:class:`Engine`): the local one
(:class:`LocalEngine`, the store's tables in memory) or the Spark engine
(``ringscope.engines.spark.detect.SparkEngine``, a Parquet export on a cluster). An
engine only reads the tables and runs the detectors; the labels learnt from
decisions, the comparison with the previous run, the dismissed cases held back,
the confirmed cases raised again and the ecosystem health are this module's, so a
run's summary has the same entries on either.

Decisions are recorded against a finding's ``case_id`` (the id the network had
when it was first found), so they follow the network from run to run.

The run is written atomically (``complete_run``): an interrupted run stays
``running``/``failed`` and the previous succeeded run remains the current one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import statistics
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd

from ringscope import __version__
from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.health import (
    HealthCounts,
    ecosystem_health,
    first_activity,
    flagged_accounts,
    health_counts,
)
from ringscope.algorithms.impact import add_impact
from ringscope.algorithms.queue import build_queue
from ringscope.contract import LOAD_ORDER
from ringscope.graphs.store import GraphStore
from ringscope.jobs.diff import diff_findings, summarise
from ringscope.jobs.feedback import decision_labels, suppressed, with_decision_labels
from ringscope.model import Finding, Run
from ringscope.policy import Policy, default_policy

#: progress(step, done, total): called before each step and after the last one.
Progress = Callable[[str, int, int], None]

#: The timings' key for the wall time of all detectors together.
DETECTORS_WALL = "detectors"


@dataclass(frozen=True)
class DetectionResult:
    run: Run
    findings: list[Finding]
    timings: dict[str, float] = field(default_factory=dict)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"run-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def read_tables(store: GraphStore, window_days: float | None = None) -> MarketTables:
    """Every contract table of the store, as the detectors' input; with
    ``window_days``, only the activity of that many days before the latest
    (see :meth:`MarketTables.window`)."""
    tables = MarketTables.from_frames({name: store.table(name) for name in LOAD_ORDER})
    return tables.window(window_days)


def detect_tables(
    tables: MarketTables,
    policy: Policy,
    *,
    progress: Progress | None = None,
    threads: int | None = None,
) -> tuple[list[Finding], dict[str, float]]:
    """Run the policy's enabled detectors on ``tables`` and build the queue (pure).

    ``tables`` are the detectors' input as they are: a run maps the export's statuses
    and kinds through the policy first (:meth:`MarketTables.mapped`).

    With ``threads`` > 1 (default: :func:`detection_threads`) that many detectors run
    at once, started in registry order (lockstep, the longest, first). Much of the
    detectors' work is compiled or C code that releases the GIL, so the threads overlap
    (at 10M events on two cores: 88 s for all detectors instead of 127 s).
    The findings are the same as with one thread: every detector is a pure, seeded
    function of the tables, and their findings are joined in registry order. The
    timings are each detector's wall time (they overlap when threads run at once),
    ``"detectors"`` (:data:`DETECTORS_WALL`: all of them, start to end) and the queue's.
    """
    from ringscope.algorithms.registry import DETECTORS

    enabled = enabled_detectors(policy)
    n_threads = detection_threads() if threads is None else threads
    if n_threads < 1:
        raise ValueError(f"threads: must be >= 1, got {n_threads}")

    def run_one(name: str) -> tuple[list[Finding], float]:
        params = policy.detectors[name].params if name in policy.detectors else {}
        t0 = time.perf_counter()
        out = DETECTORS[name].run(tables, params, policy.seed)
        return out, time.perf_counter() - t0

    results: dict[str, tuple[list[Finding], float]] = {}
    t_all = time.perf_counter()
    if n_threads == 1 or len(enabled) < 2:
        for i, name in enumerate(enabled):
            if progress:
                progress(name, i, len(enabled))
            results[name] = run_one(name)
    else:
        _run_concurrently(enabled, run_one, results, min(n_threads, len(enabled)), progress)
    found = [f for name in enabled for f in results[name][0]]
    timings = {name: results[name][1] for name in enabled}
    timings[DETECTORS_WALL] = time.perf_counter() - t_all
    if progress:
        progress("queue", len(enabled), len(enabled))
    t0 = time.perf_counter()
    queue = queue_with_impact(found, policy, tables)
    timings["queue and impact"] = time.perf_counter() - t0
    return queue, timings


def _run_concurrently(
    names: list[str],
    run_one: Callable[[str], tuple[list[Finding], float]],
    results: dict[str, tuple[list[Finding], float]],
    threads: int,
    progress: Progress | None,
) -> None:
    """``run_one`` of every name, ``threads`` at a time, into ``results``.

    Progress is reported from the calling thread only (its callers write files and
    terminals), naming the detectors running. A detector that fails stops the others
    from starting; those already running are waited for, then the error is raised.
    """
    waiting = list(names)
    running: dict[Future[tuple[list[Finding], float]], str] = {}
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ringscope-detect")
    try:
        while waiting or running:
            while waiting and len(running) < threads:
                name = waiting.pop(0)
                running[pool.submit(run_one, name)] = name
            if progress:
                progress(", ".join(running.values()), len(results), len(names))
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: names.index(running[f])):
                results[running.pop(fut)] = fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def detection_threads() -> int:
    """Detectors run at once by default: ``RINGSCOPE_DETECT_THREADS``, else two when
    the process may use two cores or more (one otherwise)."""
    from ringscope.settings import get_settings

    chosen = get_settings().detect_threads
    if chosen:
        return chosen
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 2 if (cores or 1) >= 2 else 1


def enabled_detectors(policy: Policy) -> list[str]:
    """The registry's detectors the policy leaves enabled, in registry order."""
    from ringscope.algorithms.registry import DETECTORS

    return [n for n in DETECTORS if policy.detectors.get(n) is None or policy.detectors[n].enabled]


def ranked_queue(found: list[Finding], policy: Policy) -> list[Finding]:
    """Every detector's findings merged and ranked by the policy's queue rules."""
    q = policy.queue
    return build_queue(
        found,
        merge_overlap=q.merge_overlap,
        merge_containment=q.merge_containment,
        min_score=q.min_score,
    )


def queue_with_impact(found: list[Finding], policy: Policy, tables: MarketTables) -> list[Finding]:
    """Every detector's findings merged and ranked by the policy's queue rules, with
    their impact on ``tables``."""
    return add_impact(ranked_queue(found, policy), tables)


def _health(detected: Detected, findings: list[Finding], previous: Run | None) -> dict[str, Any]:
    """The run's ecosystem health (``ringscope.algorithms.health``), with the hours
    from each new finding's first activity to the latest activity the run saw."""
    before = (previous.summary.get("health") or None) if previous else None
    counts = detected.health_counts(flagged_accounts(findings))
    health = ecosystem_health(counts, findings, before)
    first = first_activity(counts, [f for f in findings if f.status == "new"])
    ref = detected.reference_time
    hours = sorted(max(0.0, (ref - t).total_seconds() / 3600) for t in first.values())
    health["hours_to_detection"] = {
        "new_findings": len(hours),
        "median": round(statistics.median(hours), 2) if hours else None,
        "p90": round(hours[min(len(hours) - 1, int(0.9 * len(hours)))], 2) if hours else None,
    }
    return health


def _raised_again(store: GraphStore, findings: list[Finding]) -> list[str]:
    """Findings whose case an investigator confirmed and that have grown since."""
    out = []
    for f in findings:
        if f.status != "grown":
            continue
        decisions = store.decisions(f.case_id)
        if decisions and decisions[-1].decision == "confirmed":
            out.append(f.id)
    return out


@dataclass(frozen=True)
class Detected:
    """What an engine's detection gives a run: the ranked queue with impact, timings
    (seconds by step), the values the policy's mapping left as they were
    (``MarketTables.unmapped``), the reference time (the latest activity seen), the
    health sums for a set of flagged accounts, and summary entries of the engine's own."""

    findings: list[Finding]
    timings: dict[str, float]
    unmapped: dict[str, dict[str, int]]
    reference_time: pd.Timestamp
    health_counts: Callable[[set[str]], HealthCounts]
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HowToDetect:
    """A run's options for its engine: ``progress``, ``threads`` (detectors at once)
    and ``release`` (see :func:`run_detection`); an engine may ignore what it cannot use."""

    progress: Progress | None = None
    threads: int | None = None
    release: Callable[[], AbstractContextManager[None]] | None = None


class Engine(Protocol):
    """Where a run reads its tables and runs its detectors."""

    def fingerprint(self, store: GraphStore) -> str:
        """The input data's fingerprint, saved with the run."""
        ...

    def summary(self) -> dict[str, Any]:
        """Summary entries known before detection (the engine, where it ran)."""
        ...

    def detect(
        self, store: GraphStore, policy: Policy, learned: pd.DataFrame, how: HowToDetect
    ) -> Detected:
        """The policy's detectors over the input, mapped through the policy, with
        ``learned`` (labels from decisions) added to the labels table."""
        ...


class LocalEngine:
    """Detection in this process over the store's tables, read into memory."""

    def fingerprint(self, store: GraphStore) -> str:
        return store.fingerprint()

    def summary(self) -> dict[str, Any]:
        return {}

    def detect(
        self, store: GraphStore, policy: Policy, learned: pd.DataFrame, how: HowToDetect
    ) -> Detected:
        if how.progress:
            how.progress("read tables", 0, 1)
        t0 = time.perf_counter()
        # the one place the export's statuses and kinds become the detectors' (the policy's
        # mapping); every detector, the impact figures and the health see the mapped tables
        tables = read_tables(store, policy.window_days).mapped(policy.mapping.value_map())
        tables = dataclasses.replace(tables, labels=with_decision_labels(tables.labels, learned))
        read_s = time.perf_counter() - t0
        with how.release() if how.release is not None else contextlib.nullcontext():
            findings, timings = detect_tables(
                tables, policy, progress=how.progress, threads=how.threads
            )
        return Detected(
            findings,
            {"read tables": read_s, **timings},
            tables.unmapped,
            tables.reference_time(),
            lambda flagged: health_counts(tables, flagged),
        )


def run_detection(
    store: GraphStore,
    policy: Policy | None = None,
    *,
    progress: Progress | None = None,
    threads: int | None = None,
    release: Callable[[], AbstractContextManager[None]] | None = None,
    engine: Engine | None = None,
) -> DetectionResult:
    """One run on ``store``: begin, detect, complete (or fail and re-raise).

    ``engine``: where the detectors run (default :class:`LocalEngine`). ``threads``:
    detectors run at once (see :func:`detect_tables`). ``release``: the local
    detectors work on tables read into memory and do not use the store, which the
    block ``with release():`` around them may close and open again (a job gives the
    embedded store's file back to the investigator app meanwhile, see
    :mod:`ringscope.graphs.sharing`)."""
    policy = policy or default_policy()
    engine = engine or LocalEngine()
    started = datetime.now(UTC)
    run = Run(
        id=new_run_id(started),
        started_at=started,
        status="running",
        policy=policy.model_dump(),
        data_fingerprint=engine.fingerprint(store),
        summary={
            "ringscope_version": __version__,
            "policy_digest": policy.digest(),
            **engine.summary(),
        },
    )
    for stale in store.runs(status="running"):  # a run whose process was killed
        store.fail_run(stale.id, "abandoned: the run's process stopped before it finished")
    previous = store.latest_run()
    previous_findings = store.findings(previous.id) if previous else []
    store.begin_run(run)
    try:
        decisions = store.decisions()
        learned = decision_labels(decisions, previous_findings)
        detected = engine.detect(store, policy, learned, HowToDetect(progress, threads, release))
        timings = detected.timings
        findings, changes = diff_findings(previous_findings, detected.findings)
        raised = _raised_again(store, findings)
        held_back = suppressed(
            findings,
            decisions,
            previous_findings,
            (previous.summary.get("suppressed") or {}) if previous else {},
            regrowth=policy.queue.dismissed_regrowth,
            rescore=policy.queue.dismissed_rescore,
        )
        by_kind: dict[str, int] = {}
        for f in findings:
            by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
        summary: dict[str, Any] = {
            **run.summary,
            "findings": len(findings),
            "by_kind": dict(sorted(by_kind.items())),
            "accounts_flagged": len({a for f in findings for a in f.member_ids}),
            "seconds": {k: round(v, 3) for k, v in timings.items()},
            **detected.summary,
            "previous_run": previous.id if previous else None,
            "changes": summarise(changes),
            "dissolved": [c.previous_id for c in changes if c.status == "dissolved"],
            "raised_again": raised,
            "suppressed": {fid: b.to_dict() for fid, b in sorted(held_back.items())},
            "labels_from_decisions": int(learned["subject_id"].nunique()),
            # values of the detected tables the policy's mapping left as they are
            "unmapped": detected.unmapped,
            "health": _health(detected, findings, previous),
        }
        store.complete_run(run.id, findings, summary)
    except BaseException as e:
        try:
            store.fail_run(run.id, f"{type(e).__name__}: {e}")
        except Exception as status_error:  # keep the original error, note the second
            e.add_note(f"marking run {run.id} as failed also failed: {status_error}")
        raise
    return DetectionResult(run=store.get_run(run.id), findings=findings, timings=timings)
