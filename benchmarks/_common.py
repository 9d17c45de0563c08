"""Helpers shared by the benchmarks: cached marketplaces, tables, stores, peak RSS.

A generated marketplace is cached under ``<cache>/m<events>_s<seed>`` (the same
layout as ``lockstep_quality.py``) and reused while its ``truth.csv`` exists;
``truth.csv`` is written last, so a folder without it is an interrupted run and
is generated again.
"""

from __future__ import annotations

import os
import resource
import shutil
import threading
import time
from pathlib import Path

import pandas as pd

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.evaluate import read_truth
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import LoadReport, load_export, read_export_tables

DEFAULT_CACHE = Path(os.environ.get("RINGSCOPE_BENCH_CACHE", "/tmp/ringscope-bench"))


def market_dir(cache: Path, events: int, seed: int) -> Path:
    """Folder of the cached marketplace of ``events`` events and ``seed``."""
    return Path(cache) / f"m{events}_s{seed}"


def ensure_market(cache: Path, events: int, seed: int) -> tuple[Path, float]:
    """The cached marketplace's folder, generated when missing; and the seconds spent."""
    folder = market_dir(cache, events, seed)
    if (folder / "truth.csv").is_file():
        return folder, 0.0
    from ringscope.loaders.synthetic import generate

    if folder.exists():
        shutil.rmtree(folder)
    t0 = time.perf_counter()
    generate(folder, events=events, seed=seed)
    return folder, time.perf_counter() - t0


def read_market_tables(folder: Path) -> MarketTables:
    """Every contract table of an export, read and checked without a store."""
    return read_export_tables(folder)


def read_market_truth(folder: Path) -> pd.DataFrame:
    """The marketplace's ``truth.csv``."""
    return read_truth(folder / "truth.csv")


def load_store(folder: Path, store_path: Path) -> tuple[EmbeddedStore, LoadReport, float]:
    """A fresh EmbeddedStore at ``store_path`` with the export loaded; and the load's seconds."""
    for p in (store_path, Path(f"{store_path}.wal")):
        if p.exists():
            p.unlink()
    store = EmbeddedStore(store_path)
    t0 = time.perf_counter()
    report = load_export(store, folder, rejects_dir=store_path.parent / "rejects")
    return store, report, time.perf_counter() - t0


def reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux); False when not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM, else getrusage)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the number of CPUs, for the record."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unavailable"
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def current_rss_mb() -> float:
    """Resident memory of this process now, in MB (0 when unknown)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """Highest RSS seen by polling ``/proc/self/status`` in a thread (a context manager).

    For when the high-water mark cannot be reset; ``peak_mb`` after the block.
    """

    def __init__(self, interval_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self.peak_mb = current_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) that process ``pid`` has used so far, from /proc
    (NaN where there is none): beside wall times, it tells the work from the waiting."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")
