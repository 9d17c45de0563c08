"""The app factory: one store per app, opened at start-up, closed at shutdown.

Every route is ``async def``: the store is used from the event loop's thread
only, so an embedded store's single DuckDB connection is never shared between
threads.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pyvis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from ringscope import __version__
from ringscope.api.queries import RunCache
from ringscope.errors import ConfigError, InputError, NotFoundError, RingscopeError, StoreError
from ringscope.graphs.store import GraphStore

_STATUS = {NotFoundError: 404, InputError: 422, ConfigError: 400, StoreError: 503}

#: vis-network as bundled by pyvis, served by the app (no CDN).
VIS_DIR = Path(pyvis.__file__).parent / "templates" / "lib" / "vis-9.1.2"


def create_app(*, store_uri: str | None = None, store: GraphStore | None = None) -> FastAPI:
    """Build the investigator app on ``store`` (or the store at ``store_uri``, by
    default the one named by the settings, ``RINGSCOPE_STORE``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = None
        if store is None:
            from ringscope.graphs import open_store

            opened = open_store(store_uri)
        app.state.store = store or opened
        app.state.graph_cache = OrderedDict()
        app.state.run_cache = RunCache()
        try:
            yield
        finally:
            if opened is not None:
                opened.close()

    app = FastAPI(
        title="ringscope",
        version=__version__,
        lifespan=lifespan,
        description="Collusion and abuse networks in live-shopping marketplaces.",
    )

    @app.exception_handler(RingscopeError)
    async def _ringscope_error(request: Request, exc: RingscopeError) -> JSONResponse:
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 500)
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    from ringscope.api.routes import audit, entities, findings, health, pages, runs

    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(findings.router)
    app.include_router(entities.router)
    app.include_router(audit.router)
    app.include_router(pages.router)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"
    )
    app.mount("/vendor/vis", StaticFiles(directory=str(VIS_DIR)), name="vis")
    return app
