"""The app factory: one store per app, opened at start-up, closed at shutdown.

The routes that read the store are plain ``def`` and run in the server's thread
pool, side by side (as does the case-file export): the embedded store gives each
thread its own DuckDB read cursor and serialises writes, so no DuckDB
connection is ever used by two threads at once; the Neo4j driver is
thread-safe. Caches shared by requests hold a lock.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path

import fastapi_offline
import pyvis
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ringscope import __version__
from ringscope.api.auth import Access
from ringscope.api.deps import AccessDenied, bounded_input
from ringscope.api.queries import RunCache
from ringscope.api.security import SecurityMiddleware
from ringscope.errors import ConfigError, InputError, NotFoundError, RingscopeError, StoreError
from ringscope.graphs.store import GraphStore

_STATUS = {NotFoundError: 404, InputError: 422, ConfigError: 400, StoreError: 503}

#: vis-network as bundled by pyvis, served by the app (no CDN).
VIS_DIR = Path(pyvis.__file__).parent / "templates" / "lib" / "vis-9.1.2"


#: Swagger UI as shipped by fastapi-offline, served by the app (no CDN).
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"


def create_app(
    *,
    store_uri: str | None = None,
    store: GraphStore | None = None,
    access: Access | None = None,
) -> FastAPI:
    """Build the investigator app on ``store`` (or the store at ``store_uri``, by
    default the one named by the settings, ``RINGSCOPE_STORE``). ``access`` says who
    may use it (default: the settings' users file and mode; see ``ringscope.api.auth``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = None
        if store is None:
            from ringscope.api.lazy_store import ReopeningStore

            # A store that cannot be opened yet (Neo4j down) does not stop the app:
            # /health answers 503 and the store is opened on use once it is back.
            opened = ReopeningStore(store_uri)
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
        docs_url=None,  # served by routes/access.py behind a key, without a CDN
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(bounded_input)],
    )
    app.state.access = access if access is not None else Access.from_settings()
    #: Key of the hashes that hide identifiers from viewers when no redaction key is set.
    app.state.view_key = secrets.token_hex(32)
    app.add_middleware(SecurityMiddleware)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # every error answer has the same shape, ``ErrorOut``: {"error", "detail"}
        error = HTTPStatus(exc.status_code).phrase.replace(" ", "")
        return JSONResponse(
            {"error": error, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()[:10]
        ]
        return JSONResponse(
            {"error": "ValidationError", "detail": "; ".join(problems) or "invalid request"},
            status_code=422,
        )

    @app.exception_handler(AccessDenied)
    async def _access_denied(request: Request, exc: AccessDenied) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        page = not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
            "accept", ""
        )
        if page and exc.status == 401:
            from ringscope.api.routes.access import login_page

            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            out: Response = login_page(request, status=401, nxt=target)
            out.headers.update(headers)
            return out
        if page:
            from ringscope.api.routes.pages import templates

            who = getattr(request.state, "who", "")
            return templates.TemplateResponse(
                request,
                "denied.html",
                {"version": __version__, "reason": exc.reason, "who": who},
                status_code=exc.status,
            )
        error = "Unauthorized" if exc.status == 401 else "Forbidden"
        return JSONResponse(
            {"error": error, "detail": exc.reason}, status_code=exc.status, headers=headers
        )

    @app.exception_handler(RingscopeError)
    async def _ringscope_error(request: Request, exc: RingscopeError) -> JSONResponse:
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 500)
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

    from ringscope.api.routes import access as access_routes
    from ringscope.api.routes import audit, ecosystem, entities, findings, health, pages, runs

    app.include_router(health.router)
    app.include_router(access_routes.router)
    app.include_router(runs.router)
    app.include_router(findings.router)
    app.include_router(entities.router)
    app.include_router(audit.router)
    app.include_router(pages.router)
    app.include_router(ecosystem.router)
    app.mount(
        "/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static"
    )
    app.mount("/vendor/vis", StaticFiles(directory=str(VIS_DIR)), name="vis")
    app.mount("/vendor/swagger", StaticFiles(directory=str(SWAGGER_DIR)), name="swagger")
    return app
