"""The app factory: one store per app, opened at start-up, closed at shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from ringscope import __version__
from ringscope.errors import ConfigError, InputError, NotFoundError, RingscopeError, StoreError
from ringscope.graphs.store import GraphStore

_STATUS = {NotFoundError: 404, InputError: 422, ConfigError: 400, StoreError: 503}


def create_app(*, store_uri: str | None = None, store: GraphStore | None = None) -> FastAPI:
    """Build the investigator app on ``store`` (or the store at ``store_uri``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = None
        if store is None:
            from ringscope.graphs import open_store

            opened = open_store(store_uri)
        app.state.store = store or opened
        try:
            yield
        finally:
            if opened is not None:
                opened.close()

    app = FastAPI(title="ringscope", version=__version__, lifespan=lifespan)

    @app.exception_handler(RingscopeError)
    async def _ringscope_error(request: Request, exc: RingscopeError) -> JSONResponse:
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 500)
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    from ringscope.api.routes import findings, health, pages, runs

    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(findings.router)
    app.include_router(pages.router)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"
    )
    return app
