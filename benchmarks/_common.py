"""Helpers shared by the benchmarks: cached marketplaces, tables, stores, peak RSS.

A generated marketplace is cached under ``<cache>/m<events>_s<seed>_g<generator>`` (the
same layout as ``lockstep_quality.py``), a random world (``robustness.py``) under
``<cache>/worlds/w<seed>_b<max_buyers>_g<generator>``, where ``<generator>`` is a hash of
the synthetic generator's source (:func:`generator_key`): a change to the generator makes
new folders instead of reusing worlds it would no longer make. Each is generated into a
folder of its own process and renamed into place when finished, so two benchmarks (or a
crash half-way) never leave or read a half-written world.

Seeds: below :data:`REPORT_FROM` they are for tuning (the default policy, the
baselines' grids), from it on for reporting; no figure reported as held out comes
from a tuning seed.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.evaluate import read_truth
from ringscope.graphs.embedded import EmbeddedStore
from ringscope.loaders.pipeline import LoadReport, load_export, read_export_tables
from ringscope.loaders.synthetic import WorldParams

DEFAULT_CACHE = Path(os.environ.get("RINGSCOPE_BENCH_CACHE", "/tmp/ringscope-bench"))
#: Seeds from this one on are reporting seeds; those below tune.
REPORT_FROM = 1000


def check_report_seeds(seeds: list[int], allow_tuning: bool = False) -> str | None:
    """An error message when a reporting seed list holds tuning seeds (None when fine)."""
    low = sorted(s for s in seeds if s < REPORT_FROM)
    if low and not allow_tuning:
        return (
            f"seeds {low} are tuning seeds (below {REPORT_FROM}): report on seeds >= "
            f"{REPORT_FROM}, or pass --allow-tuning-seeds to look at tuning worlds"
        )
    return None


def check_tune_seeds(seeds: list[int]) -> str | None:
    """An error message when a tuning seed list holds reporting seeds (None when fine)."""
    high = sorted(s for s in seeds if s >= REPORT_FROM)
    if high:
        return f"--tune-seeds {high} are reporting seeds: tune on seeds below {REPORT_FROM}"
    return None


_GENERATOR_KEY: list[str] = []


def generator_key() -> str:
    """A short hash of the synthetic generator's source files (read once per process)."""
    if not _GENERATOR_KEY:
        import ringscope.loaders.synthetic as synthetic

        h = hashlib.sha256()
        for f in sorted(Path(synthetic.__file__).parent.glob("*.py")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        _GENERATOR_KEY.append(h.hexdigest()[:8])
    return _GENERATOR_KEY[0]


def market_dir(cache: Path, events: int, seed: int) -> Path:
    """Folder of the cached marketplace of ``events`` events and ``seed``."""
    return Path(cache) / f"m{events}_s{seed}_g{generator_key()}"


def ensure_market(cache: Path, events: int, seed: int) -> tuple[Path, float]:
    """The cached marketplace's folder, generated when missing; and the seconds spent."""
    from ringscope.loaders.synthetic import generate

    folder = market_dir(cache, events, seed)
    return folder, _generate_once(folder, lambda out: generate(out, events=events, seed=seed))


def _generate_once(folder: Path, make: Callable[[Path], object]) -> float:
    """Unless ``folder`` holds a finished export, run ``make`` on a folder of this process's
    own and rename it to ``folder``; the seconds spent (0 when cached). Another process
    that finished the same world first wins; this one's copy is removed."""
    if (folder / "truth.csv").is_file():
        return 0.0
    work = folder.with_name(f"{folder.name}.part-{os.getpid()}")
    if work.exists():
        shutil.rmtree(work)
    t0 = time.perf_counter()
    make(work)
    seconds = time.perf_counter() - t0
    try:
        work.rename(folder)
    except OSError:  # made meanwhile by another process (or a leftover without truth.csv)
        if (folder / "truth.csv").is_file():
            shutil.rmtree(work)
        else:
            shutil.rmtree(folder)
            work.rename(folder)
    return seconds


def world_dir(cache: Path, seed: int, max_buyers: int) -> Path:
    """Folder of the cached random world of ``seed`` with at most ``max_buyers`` buyers."""
    return Path(cache) / "worlds" / f"w{seed}_b{max_buyers}_g{generator_key()}"


def ensure_world(cache: Path, seed: int, max_buyers: int) -> tuple[Path, float]:
    """The cached random world's folder, generated when missing; and the seconds spent.

    The world is ``WorldParams.random(seed)`` of ``ringscope.loaders.synthetic``, with at
    most ``max_buyers`` buyers (see :func:`world_params`); ``generate`` writes its
    ``world.json`` beside ``truth.csv``."""
    from ringscope.loaders.synthetic import generate

    folder = world_dir(cache, seed, max_buyers)
    world = world_params(seed, max_buyers)
    return folder, _generate_once(folder, lambda out: generate(out, seed=seed, world=world))


def world_params(seed: int, max_buyers: int) -> WorldParams:
    """``WorldParams.random(seed)``, resized to ``max_buyers`` buyers when it has more."""
    world = WorldParams.random(seed)
    return world.resized(max_buyers) if world.buyers > max_buyers else world


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
