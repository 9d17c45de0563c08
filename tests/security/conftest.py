"""Fixtures of the red-team tests: the app they attack (its servers are in ``servers.py``),
the process that runs ``ringscope`` commands on hostile inputs (helpers in ``helpers.py``),
and a store holding a previous, successful load."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser.market import Market, shared_market

from .helpers import PREVIOUS, Ringscope


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    return shared_market(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def ringscope(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ringscope]:
    runner = Ringscope(tmp_path_factory.mktemp("ringscope-runs"))
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="session")
def previous_store(tmp_path_factory: pytest.TempPathFactory, ringscope: Ringscope) -> Path:
    """A store file holding one successful load of :data:`PREVIOUS` (copy it before use)."""
    folder = tmp_path_factory.mktemp("previous")
    export = folder / "export"
    export.mkdir()
    for name, body in PREVIOUS.items():
        (export / name).write_text(body, encoding="utf-8")
    store = folder / "store.duckdb"
    done = ringscope("load", export, "--store", store)
    assert done.code == 0, done.stderr
    return store


@pytest.fixture
def store_copy(previous_store: Path, tmp_path: Path) -> Path:
    """A copy of :func:`previous_store` for one test."""
    target = tmp_path / "store.duckdb"
    shutil.copyfile(previous_store, target)
    return target
