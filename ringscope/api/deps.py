"""Typed dependencies of the routes: the store, the caller and the caller's role.

Every route but ``/health`` and the login page needs a caller: an API key
(``Authorization: Bearer <key>`` or the HttpOnly cookie set by ``/login``), or, in
reverse-proxy mode, the user named by the proxy's header. A request without one is
refused with 401, a role too low for the route with 403; both are logged (without the
key) and appended to the audit log as ``denied``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from ringscope.api.auth import MAX_KEY_LENGTH, MAX_NAME_LENGTH, Access, Role, allows
from ringscope.api.queries import RunCache
from ringscope.api.schemas import ErrorOut
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


#: Query parameters that may be given more than once.
LIST_PARAMETERS = frozenset({"rel"})
#: The longest id or query value read (ids in the data are far shorter).
MAX_INPUT = 1000


async def bounded_input(request: Request) -> None:
    """Refuse, before any lookup, an id or query value over ``MAX_INPUT`` characters and a
    single-valued query parameter given twice (which one would count?)."""
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


def deny(request: Request, status: int, reason: str, who: str = "anonymous") -> AccessDenied:
    """Log a refused request (never its key) and return the exception to raise."""
    client = request.client.host if request.client else "-"
    subject = f"{request.method} {request.url.path}"[:500]
    request.state.who = who
    log.warning(
        "denied %s %s to %s from %s: %s",
        status,
        _printable(subject),
        _printable(who),
        client,
        reason,
    )
    store = getattr(request.app.state, "store", None)
    if store is not None:
        try:
            store.append_audit(
                who, "denied", subject, {"status": status, "reason": reason, "client": client}
            )
        except RingscopeError as e:  # a store that is down must not hide the refusal
            log.error("could not audit a denied request: %s", e)
    return AccessDenied(status, reason)


async def get_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Principal:
    """The caller, or 401. ``async``: the audit log is written from the event loop."""
    access = get_access(request)
    if access.mode == "proxy":
        host = request.client.host if request.client else ""
        name = request.headers.get(access.proxy_user_header, "").strip()
        if host not in access.trusted_proxies:
            raise deny(request, 401, f"proxy header not accepted from {host or 'unknown'}")
        if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
            raise deny(request, 401, f"no user in {access.proxy_user_header}")
        user = access.users.by_name(name)
        if user is None:
            raise deny(request, 401, "unknown user", who=name)
        return Principal(user.name, user.role, "proxy")
    key, via = (bearer.credentials, "key") if bearer else (cookie or "", "cookie")
    if not key:
        raise deny(request, 401, "no API key")
    user = access.users.by_key(key) if len(key) <= MAX_KEY_LENGTH else None
    if user is None:
        raise deny(request, 401, "unknown API key")
    if via == "cookie" and request.method not in ("GET", "HEAD", "OPTIONS"):
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise deny(request, 403, "cross-origin request with the login cookie", user.name)
    return Principal(user.name, user.role, via)


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
