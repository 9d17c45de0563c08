"""ringscope.algorithms works on tables and graphs only: no store, web framework or renderer."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import ringscope.algorithms

FORBIDDEN = ("neo4j", "fastapi", "pyvis", "duckdb", "starlette", "uvicorn")


def test_algorithms_import_no_store_web_or_renderer() -> None:
    modules = sorted(
        m.name
        for m in pkgutil.walk_packages(ringscope.algorithms.__path__, "ringscope.algorithms.")
    )
    assert "ringscope.algorithms.lockstep" in modules
    assert "ringscope.algorithms.dense" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
