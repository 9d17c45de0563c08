"""Fixtures of the security tests (the servers of the proxy tests are in ``servers.py``, the
helpers of the hostile-input catalogue in ``helpers.py``):

- the generated marketplace of ``tests/helpers/market.py`` served by the real app (in
  process, real store, real keys), with a redaction key set, a decision whose note names raw
  identifier values and accounts, and the raw values that must not reach a viewer or a
  redacted case file;
- the process that runs ``ringscope`` commands on hostile inputs, and a store holding a
  previous, successful load."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers.app import access_for
from helpers.market import Market

from ringscope.graphs.embedded import EmbeddedStore
from ringscope.model import Decision, Finding

from .helpers import PREVIOUS, REDACTION_KEY, Ringscope, ServedInProcess


def _note(f: Finding) -> str:
    """A note such as investigators write: it names the case's identifiers and accounts."""
    values = [str(r["value"]) for r in f.evidence.get("identifiers", []) if r.get("value")]
    return f"same card and phone as {', '.join(values[:3])}; see {f.members[0].account_id}."


@pytest.fixture(scope="module")
def served(
    app_market: Market, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedInProcess]:
    from ringscope.api.app import create_app
    from ringscope.settings import get_settings

    root = tmp_path_factory.mktemp("security")
    path, cli_path = root / "served.duckdb", root / "cli.duckdb"
    shutil.copy(app_market.store_path, path)
    store = EmbeddedStore(path)
    runs = [r.id for r in store.runs(status="succeeded")]
    findings = {r: store.findings(r) for r in runs}
    noted = next(f for f in findings[runs[0]] if f.evidence.get("identifiers"))
    store.record_decision(
        Decision(
            noted.case_id or noted.id,
            "escalated",
            "test-investigator",
            datetime(2026, 12, 1, tzinfo=UTC),
            _note(noted),
        )
    )
    store.close()
    shutil.copy(path, cli_path)
    store = EmbeddedStore(path)
    identifiers = store.table("identifiers", columns=["value"])["value"].astype(str)
    accounts = store.table("accounts", columns=["account_id"])["account_id"].astype(str)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RINGSCOPE_REDACTION_KEY", REDACTION_KEY)
        get_settings.cache_clear()
        try:
            app = create_app(store=store, access=access_for())
            with TestClient(app) as client:
                yield ServedInProcess(
                    client=client,
                    store=store,
                    cli_store=cli_path,
                    runs=runs,
                    findings=findings,
                    identifier_values=frozenset(identifiers),
                    account_ids=frozenset(accounts),
                    noted_case=noted.case_id or noted.id,
                )
        finally:
            get_settings.cache_clear()
            store.close()


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
