"""Typed dependencies of the routes: the store, the caller and the caller's role; and
:class:`AccessGate`, which decides who the caller is before anything reads the request.

Every route but ``/health`` and the sign-in pages needs a caller: an API key
(``Authorization: Bearer <key>`` or the HttpOnly cookie set by ``/login``), or, in
reverse-proxy mode, the user named by a trusted proxy's header. A request without one is
refused with 401, a role too low for the route with 403; every refusal is logged (without
the key), counted, and written to the audit log as ``denied`` within the limits of
:mod:`ringscope.api.refusals`.

The client's address is the socket's peer, or, when the peer is a trusted proxy, the
client that proxy names in ``X-Forwarded-For`` (:meth:`TrustedProxies.client`); the server
runs without its own proxy-header rewriting, so the peer is the TCP connection's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import Receive, Scope, Send

from ringscope import __version__
from ringscope.api.auth import MAX_KEY_LENGTH, MAX_NAME_LENGTH, Access, Role, allows
from ringscope.api.queries import RunCache
from ringscope.api.refusals import Write
from ringscope.api.schemas import ErrorOut
from ringscope.api.security import STATIC_PREFIXES, HttpMiddleware
from ringscope.errors import InputError, RingscopeError
from ringscope.graphs.store import GraphStore
from ringscope.model import NodeRef

log = logging.getLogger("ringscope.access")

#: The login cookie (HttpOnly, SameSite=Lax) holding the caller's key.
LOGIN_COOKIE = "ringscope_key"

_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer rsk_...`")
_cookie = APIKeyCookie(name=LOGIN_COOKIE, auto_error=False, description="set by /login")


class AccessDenied(Exception):
    """A request refused for want of a caller (401) or of a role (403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request, with which role, and how they were recognised."""

    name: str
    role: Role
    via: str  # "key", "cookie" or "proxy"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request has no caller (or a caller it may not act for)."""

    status: int
    reason: str
    who: str = "anonymous"
    detail: dict[str, Any] | None = None


#: Query parameters that may be given more than once.
LIST_PARAMETERS = frozenset({"rel"})
#: The longest id or query value read (ids in the data are far shorter).
MAX_INPUT = 1000


async def bounded_input(request: Request) -> None:
    """Refuse, before any lookup, an id or query value over ``MAX_INPUT`` characters and a
    single-valued query parameter given twice (which one would count?). Checked after
    the caller (:class:`AccessGate`): a request without a key gets 401 whatever it holds."""
    for k, v in request.path_params.items():
        if isinstance(v, str) and len(v) > MAX_INPUT:
            raise InputError(f"{k} is {len(v)} characters long, at most {MAX_INPUT}")
    seen: set[str] = set()
    for k, v in request.query_params.multi_items():
        if len(v) > MAX_INPUT or len(k) > MAX_INPUT:
            raise InputError(f"query parameter {k[:50]!r} is over {MAX_INPUT} characters long")
        if k in seen and k not in LIST_PARAMETERS:
            raise InputError(f"query parameter {k!r} given more than once")
        seen.add(k)


# ``async``, as every dependency that does no I/O: FastAPI runs a plain ``def``
# dependency in the thread pool, one thread hop per dependency and request.
async def get_store(request: Request) -> GraphStore:
    store: GraphStore = request.app.state.store
    return store


def get_access(request: Request) -> Access:
    access: Access = request.app.state.access
    return access


def _printable(text: str) -> str:
    """``text`` with control characters escaped: one log line per refusal."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def addresses(request: Request) -> tuple[str, str]:
    """The request's client address and the socket's peer (the same unless the peer is a
    trusted proxy), worked out once per request. ``"-"`` when unknown (a Unix socket)."""
    found: tuple[str, str] | None = getattr(request.state, "addresses", None)
    if found is None:
        peer = request.client.host if request.client else ""
        forwarded = request.headers.getlist("x-forwarded-for")
        client = get_access(request).proxies.client(peer, forwarded) if peer else ""
        found = (client or "-", peer or "-")
        request.state.addresses = found
    return found


def deny(
    request: Request,
    status: int,
    reason: str,
    who: str = "anonymous",
    detail: dict[str, Any] | None = None,
) -> AccessDenied:
    """Log and count a refused request (never its key), audit it within the limits of
    :mod:`ringscope.api.refusals`, and return the exception to raise."""
    client, peer = addresses(request)
    subject = f"{request.method} {request.url.path}"[:500]
    request.state.who = who
    entry: dict[str, Any] = {"status": status, "reason": reason, "client": client}
    if peer != client:
        entry["proxy"] = peer
    entry.update(detail or {})
    refusals = getattr(request.app.state, "refusals", None)
    audited = refusals.record(client, who, subject, entry) if refusals is not None else False
    log.warning(
        "denied %s %s to %s from %s: %s%s",
        status,
        _printable(subject),
        _printable(who),
        client if peer == client else f"{client} via {peer}",
        reason,
        "" if audited else " (not audited: over the audit log's rate for refusals)",
    )
    return AccessDenied(status, reason)


def audit_writer(app: Any) -> Write:
    """The ``write`` of the app's :class:`~ringscope.api.refusals.RefusalAudit`: appends to
    the app's store; a store that is down must not hide the refusal (it is logged)."""

    def write(who: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        store = getattr(app.state, "store", None)
        if store is None:
            return
        try:
            store.append_audit(who, action, subject, detail)
        except RingscopeError as e:
            log.error("could not audit a denied request: %s", e)

    return write


def identify(request: Request, access: Access) -> Principal | Refusal:
    """The caller of ``request``, or why there is none. Writes nothing."""
    if access.mode == "proxy":
        peer = addresses(request)[1]
        name = request.headers.get(access.proxy_user_header, "").strip()
        if not access.proxies.trusts(peer):
            # the headers of a request that does not come from the proxy are ignored
            claimed = {"claimed_user": name[:MAX_NAME_LENGTH]} if name else None
            return Refusal(401, f"proxy header not accepted from {peer}", detail=claimed)
        if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
            return Refusal(401, f"no user in {access.proxy_user_header}")
        user = access.current_users().by_name(name)
        if user is None:
            return Refusal(401, "unknown user", who=name)
        return Principal(user.name, user.role, "proxy")
    bearer = request.headers.get("authorization", "")
    scheme, _, credentials = bearer.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        key, via = credentials.strip(), "key"
    else:
        key, via = request.cookies.get(LOGIN_COOKIE, ""), "cookie"
    if not key:
        return Refusal(401, "no API key")
    user = access.current_users().by_key(key) if len(key) <= MAX_KEY_LENGTH else None
    if user is None:
        return Refusal(401, "unknown API key")
    if via == "cookie" and request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return Refusal(403, "cross-origin request with the login cookie", user.name)
    return Principal(user.name, user.role, via)


async def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """The caller :class:`AccessGate` identified, or 401. (``bearer`` and ``cookie`` name
    the two ways of sending a key in the API's documentation.)"""
    found: Principal | Refusal | None = getattr(request.state, "identified", None)
    if found is None:  # an app without the gate: identify here
        found = identify(request, get_access(request))
    if isinstance(found, Refusal):
        raise deny(request, found.status, found.reason, found.who, found.detail)
    return found


def wants_page(request: Request) -> bool:
    """Whether a person's browser asked for a page (answered with HTML in the app's
    frame) rather than a program for JSON: not under ``/api/`` and accepting HTML."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def refusal_response(request: Request, exc: AccessDenied) -> Response:
    """The answer to a refused request: JSON for the API, the sign-in form (401) or the
    "denied" page (403) for a browser asking for a page."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    page = wants_page(request)
    if page and exc.status == 401:
        from ringscope.api.routes.access import login_page

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        out: Response = login_page(request, status=401, nxt=target)
        out.headers.update(headers)
        return out
    if page:
        from ringscope.api.routes.pages import templates

        who = getattr(request.state, "who", "")
        denied: Response = templates.TemplateResponse(
            request,
            "denied.html",
            {"version": __version__, "reason": exc.reason, "who": who},
            status_code=exc.status,
        )
        return denied
    error = "Unauthorized" if exc.status == 401 else "Forbidden"
    return JSONResponse(
        {"error": error, "detail": exc.reason}, status_code=exc.status, headers=headers
    )


#: What answers without a key: liveness, signing in and out, the static assets.
PUBLIC_PATHS = frozenset({"/health", "/login", "/logout"})
PUBLIC_PREFIXES = STATIC_PREFIXES


def is_public(path: str) -> bool:
    """Whether ``path`` answers without a caller (every other path needs one)."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class AccessGate(HttpMiddleware):
    """ASGI middleware: the caller is decided before anything of the request is read.

    Every path but the public ones (:data:`PUBLIC_PATHS`, :data:`PUBLIC_PREFIXES`) needs a
    caller, whether a route serves it or not: a request without one is refused (401, and
    403 for the login cookie sent cross-origin) before its body is read and before its
    ids, query values and body are checked, so an anonymous caller learns nothing from a
    413, a 422 or a 404. The caller found is left on the request for the routes' role
    checks (:func:`require`). A route that does not admit every caller must depend on one
    of :data:`Viewer`, :data:`Investigator` or :data:`Admin`: the gate checks who, not
    which role."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        addresses(request)
        path, root = scope["path"], scope.get("root_path", "")
        if not is_public(path[len(root) :] if root and path.startswith(root) else path):
            found = identify(request, get_access(request))
            request.state.identified = found
            if isinstance(found, Refusal):
                exc = deny(request, found.status, found.reason, found.who, found.detail)
                await refusal_response(request, exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(role: Role) -> Any:
    """A dependency that admits callers with ``role`` or a higher one (and leaves the
    admitted caller on the request for :func:`get_caller`)."""

    async def check(request: Request, principal: PrincipalDep) -> Principal:
        if not allows(principal.role, role):
            raise deny(request, 403, f"needs the {role} role", principal.name)
        request.state.principal = principal
        return principal

    return Depends(check)


#: The answers every route behind a key may give besides its own.
DENIED: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "malformed request"},
    401: {"model": ErrorOut, "description": "no or unknown key"},
    403: {"model": ErrorOut, "description": "role too low"},
    413: {"model": ErrorOut, "description": "request body too large"},
    422: {"model": ErrorOut, "description": "invalid request"},
    503: {"model": ErrorOut, "description": "the store failed"},
}

Viewer = require("viewer")
Investigator = require("investigator")
Admin = require("admin")


def check_identifier_access(request: Request, principal: Principal, *refs: NodeRef) -> None:
    """Identifiers (devices, IPs, payment methods, ...) are looked up by value, so a
    viewer, who sees them redacted, may not look them up."""
    if not allows(principal.role, "investigator") and any(r.label == "Identifier" for r in refs):
        raise deny(request, 403, "identifier lookups need the investigator role", principal.name)


def redaction_key(request: Request, principal: Principal) -> str | None:
    """The key of the keyed hashes that hide identifier values from a viewer (the
    export key, else one made per app), or ``None``: the caller sees them."""
    if allows(principal.role, "investigator"):
        return None
    from ringscope.settings import get_settings

    key: str = get_settings().redaction_key.get_secret_value() or request.app.state.view_key
    return key


@dataclass(frozen=True, slots=True)
class Caller:
    """What a route needs of its request, read once: the store, the findings kept per
    run, who is asking, and the key of the keyed hashes that hide identifiers from
    them (``None``: they see identifier values)."""

    store: GraphStore
    cache: RunCache
    principal: Principal
    redaction: str | None

    @property
    def user(self) -> str:
        return self.principal.name


async def get_caller(request: Request) -> Caller:
    """The request's :class:`Caller`, for routes behind a role dependency
    (:data:`Viewer` and up, on the route or its router), which admitted the caller.

    A lookup, with no dependencies of its own: FastAPI walks every dependency of a
    route, with its own dependencies, on every request (cached or not), and routes
    that named the store, the cache, the user, the principal and the redaction key
    apart walked 18 of them per view."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # a route without a role dependency: a bug, not a 401
        raise RuntimeError(f"{request.url.path}: no role dependency admitted a caller")
    state = request.app.state
    return Caller(state.store, state.run_cache, principal, redaction_key(request, principal))


StoreDep = Annotated[GraphStore, Depends(get_store)]
CallerDep = Annotated[Caller, Depends(get_caller)]
