"""API fuzzing: schemathesis makes requests from the app's own OpenAPI schema (valid and
invalid ones) and checks every answer: never a server error, and status code, content
type, headers and body all as the schema documents them.

In-process (ASGI) on an embedded store holding a small generated marketplace after one
detection run; bounded (a few dozen examples per operation, derandomised) to stay well
under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from helpers.app import access_for, auth
from helpers.stores import fill_store
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ringscope.api.app import create_app

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _operations() -> list[tuple[str, str, str]]:
    """(method, path, generation mode) of every documented operation, read from the schema
    alone: valid requests for all, invalid ones for those that take any input."""
    spec = create_app(store_uri="unused.duckdb", access=access_for()).openapi()
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            out.append((method.upper(), path, "positive"))
            if op.get("parameters") or op.get("requestBody"):
                out.append((method.upper(), path, "negative"))
    return sorted(out)


OPERATIONS = _operations()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from ringscope.graphs.embedded import EmbeddedStore

    root = tmp_path_factory.mktemp("fuzz")
    store = EmbeddedStore(root / "fuzz.duckdb")
    try:
        fill_store(store, root)
        assert store.findings(), "the fuzzed store should hold findings"
        yield create_app(store=store, access=access_for())
    finally:
        store.close()


@pytest.fixture(scope="module")
def schema(app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth("test-admin"))


def test_every_operation_is_fuzzed() -> None:
    paths = {p for _, p, _ in OPERATIONS}
    assert {"/api/findings", "/api/findings/{finding_id}/decisions", "/api/path"} <= paths
    assert ("POST", "/api/findings/{finding_id}/decisions", "negative") in OPERATIONS


@pytest.mark.parametrize(
    ("method", "path", "mode"), OPERATIONS, ids=[f"{x} {m} {p}" for m, p, x in OPERATIONS]
)
def test_fuzz(schema: Any, method: str, path: str, mode: str) -> None:
    operation = schema[path][method]
    calls: list[int] = []

    @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(headers=auth("test-admin"))
        calls.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    check()
    assert calls, f"no request made for {method} {path}"
    assert all(c < 500 for c in calls)
