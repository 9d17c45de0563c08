"""Signing in and out, who the caller is, the API's own documentation and the
effective settings."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from ringscope import __version__
from ringscope.api.auth import MAX_KEY_LENGTH
from ringscope.api.deps import DENIED, LOGIN_COOKIE, Admin, Principal, Viewer, deny, get_access
from ringscope.api.routes.pages import templates
from ringscope.settings import get_settings

router = APIRouter(tags=["access"])


class MeOut(BaseModel):
    name: str
    role: str


class UserOut(BaseModel):
    name: str
    role: str


class ClientRefusalsOut(BaseModel):
    client: str
    refused: int
    written: int


class RefusalLimitsOut(BaseModel):
    per_client: int
    per_period: int
    period_s: float


class RefusalsOut(BaseModel):
    """Refused requests (401, 403) since the app started, and how many of them the audit
    log holds in full (see the README's Security section)."""

    refused: int
    by_status: dict[str, int]
    written: int
    dropped: int
    summary_rows: int
    periods: int
    period_start: str | None
    period_clients: int
    period_top_clients: list[ClientRefusalsOut]
    limits: RefusalLimitsOut


class SettingsOut(BaseModel):
    store: str
    work_dir: str
    auth: str
    users_file: str
    proxy_user_header: str
    trusted_proxies: list[str]
    redaction_key_set: bool
    users: list[UserOut]
    refusals: RefusalsOut


def safe_next(target: str) -> str:
    """A local path to go back to after signing in (never another site)."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    ok = ok and target.isprintable()  # no tab or newline: "/\t/x" would be "//x"
    return target if ok and len(target) < 2000 else "/"


def login_page(request: Request, *, status: int = 200, message: str = "", nxt: str = "/") -> Any:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"version": __version__, "message": message, "next": safe_next(nxt)},
        status_code=status,
    )


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, next: str = "/") -> Response:
    """The sign-in form (a login link's key, in the URL fragment, is submitted by script)."""
    return login_page(request, nxt=next)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    """Check the key, keep it in an HttpOnly, SameSite cookie and go back."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = form.get("key", [""])[0].strip()
    nxt = safe_next(form.get("next", ["/"])[0])
    user = get_access(request).current_users().by_key(key) if len(key) <= MAX_KEY_LENGTH else None
    if user is None:
        deny(request, 401, "unknown API key at sign-in")
        return login_page(request, status=401, message="Unknown key.", nxt=nxt)
    out = RedirectResponse(nxt, status_code=303)
    out.set_cookie(
        LOGIN_COOKIE,
        key,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    request.app.state.store.append_audit(user.name, "login", "app", {"role": user.role})
    return out


@router.post("/logout", include_in_schema=False)
async def logout() -> Response:
    out = RedirectResponse("/login", status_code=303)
    out.delete_cookie(LOGIN_COOKIE, path="/")
    return out


@router.get("/api/me", response_model=MeOut, responses=DENIED)
async def me(principal: Annotated[Principal, Viewer]) -> MeOut:
    """The caller's name and role."""
    return MeOut(name=principal.name, role=principal.role)


@router.get("/api/settings", response_model=SettingsOut, responses=DENIED)
async def settings(request: Request, principal: Annotated[Principal, Admin]) -> SettingsOut:
    """The effective settings, secrets left out, the users with their roles, and the
    count of refused requests (admin)."""
    s = get_settings()
    access = get_access(request)
    return SettingsOut(
        store=request.app.state.store.uri,
        work_dir=s.work_dir,
        auth=access.mode,
        users_file=str(s.users_path()),
        proxy_user_header=access.proxy_user_header,
        trusted_proxies=list(access.trusted_proxies),
        redaction_key_set=bool(s.redaction_key.get_secret_value()),
        users=[UserOut(name=u.name, role=u.role) for u in access.current_users()],
        refusals=RefusalsOut.model_validate(request.app.state.refusals.counts()),
    )


@router.get("/openapi.json", include_in_schema=False, dependencies=[Viewer])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs", response_class=HTMLResponse, include_in_schema=False, dependencies=[Viewer])
async def docs(request: Request) -> Response:
    """Swagger UI, served by the app (no CDN, no inline script)."""
    return templates.TemplateResponse(request, "docs.html", {})
