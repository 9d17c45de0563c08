"""Fixtures of the red-team tests (their servers are in ``servers.py``)."""

from __future__ import annotations

import pytest
from browser.market import Market, shared_market


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Market:
    return shared_market(tmp_path_factory.getbasetemp())
