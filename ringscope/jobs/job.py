"""The periodic job: load the latest export, detect, compare, write back, under one lock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringscope.errors import InputError
from ringscope.jobs.detect import DetectionResult, Progress, run_detection
from ringscope.jobs.lock import exclusive_store
from ringscope.model import LoadReport
from ringscope.policy import Policy
from ringscope.settings import Settings, get_settings


class LoadFailed(InputError):
    """A table of the export could not be read; ``report`` says which."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class JobResult:
    load: LoadReport | None
    detection: DetectionResult

    def summary(self) -> dict[str, Any]:
        """The one-line JSON summary schedulers read."""
        run = self.detection.run
        out: dict[str, Any] = {
            "run_id": run.id,
            "status": run.status,
            "findings": len(self.detection.findings),
            "changes": run.summary.get("changes", {}),
            "raised_again": len(run.summary.get("raised_again", [])),
            "data_fingerprint": run.data_fingerprint,
        }
        if self.load is not None:
            out["rows_loaded"] = sum(t.loaded for t in self.load.tables.values())
            out["rows_updated"] = sum(t.updated for t in self.load.tables.values())
            out["rows_rejected"] = self.load.rejected
        return out


def run_load(
    data_dir: str | Path,
    *,
    store_uri: str | None = None,
    settings: Settings | None = None,
    progress: Any = None,
    what: str = "ringscope load",
) -> LoadReport:
    """Lock the store and load ``data_dir`` into it (``ringscope load``): the load report,
    whether or not some table failed (:attr:`LoadReport.failed` says).

    Raises :class:`~ringscope.errors.ConcurrentRunError` when another job holds the
    store; an investigator app that holds an embedded store steps aside meanwhile
    (``what`` tells its users what is writing)."""
    from ringscope.loaders.pipeline import load_export

    settings = settings or get_settings()
    uri = store_uri or settings.store
    with exclusive_store(uri, settings.work_dir, settings, what=what) as (store, held):
        held.phase("loading")
        return load_export(store, data_dir, progress=progress)


def run_job(
    data_dir: str | Path | None,
    *,
    store_uri: str | None = None,
    policy: Policy | None = None,
    settings: Settings | None = None,
    load_progress: Any = None,
    detect_progress: Progress | None = None,
    what: str = "ringscope job",
) -> JobResult:
    """Lock the store, load ``data_dir`` (if given), run detection and save it.

    Raises :class:`~ringscope.errors.ConcurrentRunError` when another job holds
    the store, and :class:`LoadFailed` (an :class:`~ringscope.errors.InputError`)
    when a table of the export could not be read (nothing is detected then).

    On the embedded store, an investigator app that holds the file is asked to step
    aside (``what`` tells its users what is writing), and has it back while the
    detectors run (:mod:`ringscope.graphs.sharing`).
    """
    settings = settings or get_settings()
    uri = store_uri or settings.store
    with exclusive_store(uri, settings.work_dir, settings, what=what) as (store, held):
        report = None
        if data_dir is not None:
            from ringscope.loaders.pipeline import load_export

            held.phase("loading")
            report = load_export(store, data_dir, progress=load_progress)
            if report.failed:
                bad = ", ".join(f"{t.table}: {t.error}" for t in report.tables.values() if t.error)
                raise LoadFailed(
                    f"the export could not be loaded whole ({bad}); nothing detected", report
                )
        held.phase("detecting")

        def progress(step: str, done: int, total: int) -> None:
            held.phase(f"detecting: {step}")  # the run has begun: watchers see each step
            if detect_progress is not None:
                detect_progress(step, done, total)

        detection = run_detection(store, policy, progress=progress, release=held.released)
    return JobResult(load=report, detection=detection)
