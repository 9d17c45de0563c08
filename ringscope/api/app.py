"""The app factory: one store per app, opened at start-up, closed at shutdown.

The routes that read the store are plain ``def`` and run in the server's thread
pool, side by side (as does the case-file export): the embedded store gives each
thread its own DuckDB read cursor and serialises writes, so no DuckDB
connection is ever used by two threads at once; the Neo4j driver is
thread-safe. Caches shared by requests hold a lock.

On the embedded store, each request that may use the store is admitted by
:class:`StepAsideGate`, so that the app can step aside for a job that asks for the
file once the requests under way are done (``ringscope.api.lazy_store``); the
others are answered 503 with ``Retry-After`` meanwhile (:func:`away_answer`).
"""

from __future__ import annotations

import logging
import secrets
import threading
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
from starlette.types import ASGIApp, Receive, Scope, Send

from ringscope import __version__
from ringscope.api.auth import Access
from ringscope.api.deps import (
    AccessDenied,
    AccessGate,
    audit_writer,
    bounded_input,
    refusal_response,
    wants_page,
)
from ringscope.api.lazy_store import ReopeningStore
from ringscope.api.queries import RunCache
from ringscope.api.refusals import RefusalAudit, RefusalLimits
from ringscope.api.render_cache import WALK_CACHE_SIZE, RenderCache
from ringscope.api.security import BodyLimit, SecurityHeaders
from ringscope.errors import (
    ConfigError,
    InputError,
    NotFoundError,
    RingscopeError,
    StoreAway,
    StoreError,
)
from ringscope.graphs.store import GraphStore
from ringscope.model import NodeRef

log = logging.getLogger("ringscope.api")

_STATUS = {NotFoundError: 404, InputError: 422, ConfigError: 400, StoreError: 503}

#: vis-network as bundled by pyvis, served by the app (no CDN).
VIS_DIR = Path(pyvis.__file__).parent / "templates" / "lib" / "vis-9.1.2"


#: Swagger UI as shipped by fastapi-offline, served by the app (no CDN).
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"


#: Seconds the app's shutdown waits for the warm-up to end.
WARM_UP_WAIT_S = 10.0


def warm_up(store: GraphStore, run_cache: RunCache) -> None:
    """Read, in the background at start-up, what the first requests would otherwise wait
    for: the latest run's findings; the embedded store's in-memory graph index (which
    neighbourhoods and cluster graphs walk; without it the first walks run in SQL and the
    next ones wait for its build); one walk and one case's decisions, whose statements
    Neo4j then has planned. A store that fails is left alone: the requests report it.
    Nothing is written (no audit entry)."""
    try:
        run = store.latest_run()
        found = run_cache.findings(store, run) if run is not None else []
        store.warm_up()
        if found and found[0].members:
            # the statements of a walk, prepared by the server (Neo4j plans them once)
            store.neighbourhood([NodeRef("Account", found[0].members[0].account_id)], limit=10)
            store.decisions(found[0].case_id or found[0].id)
    except Exception as e:  # the first request that needs the store reports it
        log.debug("warm-up stopped: %s", e)


def error_page(request: Request, status: int, detail: str) -> Response:
    """An error as a page in the app's frame, with a way back: what was wrong (the
    value and why), a link to the queue and, for a wrong query value, to the same page
    without the query."""
    from ringscope.api.routes.pages import templates

    titles = {404: "Not found", 422: "A value was not understood", 409: "Conflict"}
    back = request.url.path if request.url.query and request.method == "GET" else None
    return templates.TemplateResponse(
        request,
        "error.html",
        {
            "version": __version__,
            "title": titles.get(status, HTTPStatus(status).phrase),
            "detail": detail,
            "back": back,
        },
        status_code=status,
    )


def away_answer(request: Request, exc: StoreAway) -> Response:
    """503 with ``Retry-After`` while the app stands aside for a job: a page that tries
    again by itself for a page, JSON for the API. Nothing of the request was done."""
    headers = {"Retry-After": str(exc.retry_after)}
    if wants_page(request):
        from ringscope.api.routes.pages import templates

        reload = request.method in ("GET", "HEAD")
        return templates.TemplateResponse(
            request,
            "away.html",
            {
                "version": __version__,
                "detail": str(exc),
                "refresh": exc.retry_after if reload else None,
            },
            status_code=503,
            headers=headers,
        )
    return JSONResponse(
        {"error": "StoreAway", "detail": f"{exc}; nothing was recorded, send it again then"}
        if request.method not in ("GET", "HEAD")
        else {"error": "StoreAway", "detail": str(exc)},
        status_code=503,
        headers=headers,
    )


#: Paths that never use the store (``/health`` says itself why the store is away).
_STORELESS = ("/health",)
_STORELESS_PREFIXES = ("/static/", "/vendor/")


class StepAsideGate:
    """Admits each HTTP request that may use the store (:meth:`ReopeningStore.admit`),
    so that the app closes the embedded store's file for a job only once the requests
    in flight are done, and answers the others 503 meanwhile (:func:`away_answer`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        store = getattr(scope["app"].state, "store", None) if scope["type"] == "http" else None
        if (
            not isinstance(store, ReopeningStore)
            or path in _STORELESS
            or path.startswith(_STORELESS_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        away = store.admit()
        if away is not None:
            await away_answer(Request(scope), away)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            store.leave()


def create_app(
    *,
    store_uri: str | None = None,
    store: GraphStore | None = None,
    access: Access | None = None,
    refusals: RefusalLimits | None = None,
) -> FastAPI:
    """Build the investigator app on ``store`` (or the store at ``store_uri``, by
    default the one named by the settings, ``RINGSCOPE_STORE``). ``access`` says who
    may use it (default: the settings' users file and mode; see ``ringscope.api.auth``);
    ``refusals`` how many refused requests the audit log keeps (default: the settings';
    see ``ringscope.api.refusals``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = None
        if store is None:
            # A store that cannot be opened yet (Neo4j down) does not stop the app:
            # /health answers 503 and the store is opened on use once it is back.
            opened = ReopeningStore(store_uri)
        app.state.store = store or opened
        app.state.graph_cache = RenderCache()
        app.state.page_cache = RenderCache()
        app.state.walk_cache = RenderCache(WALK_CACHE_SIZE)
        app.state.run_cache = RunCache()
        warming = threading.Thread(
            target=warm_up,
            args=(app.state.store, app.state.run_cache),
            name="ringscope-warm-up",
            daemon=True,
        )
        warming.start()
        try:
            yield
        finally:
            # the store is not closed under the warm-up's feet (nor, for a store handed
            # in, before the app is done with it), nor before the refusals' summaries
            warming.join(WARM_UP_WAIT_S)
            app.state.refusals.close()
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
    app.state.refusals = RefusalAudit(audit_writer(app), refusals or RefusalLimits.from_settings())
    # outermost last: headers on every answer; a request is admitted to the store (or told
    # the app stands aside for a job) before the gate may audit a refusal in the store; the
    # caller is decided before the body is read
    app.add_middleware(BodyLimit)
    app.add_middleware(AccessGate)
    app.add_middleware(StepAsideGate)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # every error answer has the same shape, ``ErrorOut``: {"error", "detail"}; a
        # page in the app's frame for a browser
        if wants_page(request):
            return error_page(request, exc.status_code, str(exc.detail))
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
        if wants_page(request):
            return error_page(request, 422, "; ".join(problems) or "invalid request")
        return JSONResponse(
            {"error": "ValidationError", "detail": "; ".join(problems) or "invalid request"},
            status_code=422,
        )

    @app.exception_handler(AccessDenied)
    async def _access_denied(request: Request, exc: AccessDenied) -> Response:
        return refusal_response(request, exc)

    @app.exception_handler(StoreAway)
    async def _store_away(request: Request, exc: StoreAway) -> Response:
        return away_answer(request, exc)

    @app.exception_handler(RingscopeError)
    async def _ringscope_error(request: Request, exc: RingscopeError) -> Response:
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 500)
        if wants_page(request):
            return error_page(request, status, str(exc))
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
