"""Detectors run at once on several threads: the same queue as one at a time,
progress from the calling thread only, and a failing detector's error raised."""

from __future__ import annotations

import threading

import pytest

from ringscope.algorithms.base import MarketTables
from ringscope.algorithms.registry import DETECTORS, DetectorSpec
from ringscope.jobs import detect as detect_mod
from ringscope.jobs.detect import DETECTORS_WALL, detect_tables, detection_threads
from ringscope.policy import default_policy
from ringscope.settings import get_settings


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> MarketTables:
    from ringscope.algorithms.base import empty_table
    from ringscope.contract import LOAD_ORDER
    from ringscope.loaders.pipeline import read_table
    from ringscope.loaders.synthetic import generate

    folder = tmp_path_factory.mktemp("threads") / "market"
    generate(folder, events=20_000, seed=21, fmt="csv")
    return MarketTables.from_frames(
        {
            name: read_table(folder / f"{name}.csv").frame
            if (folder / f"{name}.csv").is_file()
            else empty_table(name)
            for name in LOAD_ORDER
        }
    )


def _digest(queue: list) -> list[tuple]:  # type: ignore[type-arg]
    return [(f.id, f.kind, round(f.score, 12), tuple(f.member_ids), f.explanation) for f in queue]


def test_threads_give_the_same_queue_as_one_at_a_time(tables: MarketTables) -> None:
    policy = default_policy()
    one, t1 = detect_tables(tables, policy, threads=1)
    two, t2 = detect_tables(tables, policy, threads=2)
    four, _ = detect_tables(tables, policy, threads=4)
    assert one, "the generated marketplace has planted rings: the queue is not empty"
    assert _digest(two) == _digest(one)
    assert _digest(four) == _digest(one)
    enabled = detect_mod.enabled_detectors(policy)
    for timings in (t1, t2):
        assert list(timings) == [*enabled, DETECTORS_WALL, "queue and impact"]
        assert timings[DETECTORS_WALL] >= max(timings[n] for n in enabled) * 0.999


def test_progress_comes_from_the_calling_thread_and_names_running_detectors(
    tables: MarketTables,
) -> None:
    calls: list[tuple[str, int, int, threading.Thread]] = []

    def progress(step: str, done: int, total: int) -> None:
        calls.append((step, done, total, threading.current_thread()))

    enabled = detect_mod.enabled_detectors(default_policy())
    detect_tables(tables, default_policy(), threads=2, progress=progress)
    assert {c[3] for c in calls} == {threading.current_thread()}
    assert calls[0][0] == ", ".join(enabled[:2]) and calls[0][1] == 0
    assert calls[-1][:3] == ("queue", len(enabled), len(enabled))
    done = [c[1] for c in calls]
    assert done == sorted(done), "the count of finished detectors never goes back"
    for step, _, _, _ in calls[:-1]:
        assert 1 <= len(step.split(", ")) <= 2
        assert set(step.split(", ")) <= set(enabled)


def test_a_failing_detector_stops_the_run_with_its_error(
    tables: MarketTables, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def boom(t: MarketTables, p: dict, seed: int) -> list:  # type: ignore[type-arg]
        raise RuntimeError("the second detector failed")

    def record(name: str) -> DetectorSpec:
        spec = DETECTORS[name]

        def run(t: MarketTables, p: dict, seed: int) -> list:  # type: ignore[type-arg]
            ran.append(name)
            return spec.call(t, p, seed)

        return DetectorSpec(spec.name, spec.version, spec.function, run)

    names = list(DETECTORS)
    patched = {n: record(n) for n in names}
    second = names[1]
    patched[second] = DetectorSpec(second, "0", DETECTORS[second].function, boom)
    monkeypatch.setattr("ringscope.algorithms.registry.DETECTORS", patched)
    with pytest.raises(RuntimeError, match="the second detector failed"):
        detect_tables(tables, default_policy(), threads=2)
    # the failure is seen as soon as it happens: at most the detector that was
    # running beside it, and none of those waiting, ran
    assert ran == names[:1]


def test_threads_setting_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGSCOPE_DETECT_THREADS", "3")
    get_settings.cache_clear()
    try:
        assert detection_threads() == 3
        monkeypatch.setenv("RINGSCOPE_DETECT_THREADS", "0")
        get_settings.cache_clear()
        assert detection_threads() in (1, 2)
    finally:
        get_settings.cache_clear()
    with pytest.raises(ValueError, match="threads: must be >= 1"):
        detect_tables(MarketTables.from_frames({}), default_policy(), threads=0)
