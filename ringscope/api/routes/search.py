"""Search: accounts, streams, orders, identifier values and findings by the start of
their id, from a box on every page (``/search``) and the API (``/api/search``).

An id typed whole goes straight to its page when it names one thing only. Identifier
values (devices, IPs, payment methods...) are looked up by value, so viewers, who see
them redacted, search everything but them. Every search is in the audit log.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringscope import __version__
from ringscope.api import queries
from ringscope.api.auth import allows
from ringscope.api.deps import DENIED, Caller, CallerDep, Viewer
from ringscope.api.schemas import ErrorOut

#: Results shown per group.
SEARCH_LIMIT = 20
#: Longest query accepted (ids are shorter).
MAX_QUERY = 200
#: The groups in the order they are shown, with the label of their entity pages.
GROUPS: dict[str, str] = {
    "findings": "",
    "accounts": "Account",
    "streams": "Stream",
    "orders": "Order",
    "identifiers": "Identifier",
}

router = APIRouter(
    prefix="/api",
    tags=["search"],
    dependencies=[Viewer],
    responses={422: {"model": ErrorOut}, **DENIED},
)
pages = APIRouter(tags=["pages"], include_in_schema=False, dependencies=[Viewer])

Q = Annotated[str, Query(min_length=1, max_length=MAX_QUERY, description="start of an id")]
Limit = Annotated[int, Query(ge=1, le=100)]


def url_of(group: str, item: dict[str, Any]) -> str:
    """The page of a search result."""
    if group == "findings":
        return f"/findings/{quote(str(item['id']), safe='')}"
    ref = f"{GROUPS[group]}:{item['id']}"
    return f"/entities/{quote(ref, safe=':')}"


def search(caller: Caller, text: str, limit: int) -> dict[str, Any]:
    """The results of ``text`` by group (each item with its ``url``), which of them are
    exact (``exact``: the items whose id, or identifier value, is ``text``), and whether
    identifier values were searched."""
    text = text.strip()
    identifiers = allows(caller.principal.role, "investigator")
    found: dict[str, list[dict[str, Any]]] = {"findings": []}
    if text:
        run = queries.resolve_run(caller.store, None)
        if run is not None:
            for f in caller.cache.findings(caller.store, run):
                if f.id.startswith(text) or (f.case_id or "").startswith(text):
                    found["findings"].append(
                        {"id": f.id, "kind": f.kind, "size": len(f.members), "score": f.score}
                    )
            found["findings"] = sorted(found["findings"], key=lambda i: i["id"])[:limit]
        found |= caller.store.search(text, limit=limit, identifiers=identifiers)
        caller.store.append_audit(caller.user, "search", text[:MAX_QUERY], {"via": "search"})
    groups = {g: found.get(g, []) for g in GROUPS if g in found}
    exact = []
    for group, items in groups.items():
        for item in items:
            item["url"] = url_of(group, item)
            if text in (item["id"], item.get("value")):
                exact.append({"group": group, **item})
    return {"query": text, "groups": groups, "exact": exact, "identifiers": identifiers}


@router.get("/search")
def search_api(caller: CallerDep, q: Q, limit: Limit = SEARCH_LIMIT) -> dict[str, Any]:
    """Accounts, streams, orders, identifier values (investigators and admins) and the
    latest run's findings whose id starts with ``q``, ``limit`` a group, smallest first."""
    return search(caller, q, limit)


@pages.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request, caller: CallerDep, q: Annotated[str, Query(max_length=MAX_QUERY)] = ""
) -> Response:
    """The search page: an id typed whole that names one thing goes to its page."""
    from ringscope.api.routes.pages import templates

    result = search(caller, q, SEARCH_LIMIT)
    if len(result["exact"]) == 1:
        return RedirectResponse(result["exact"][0]["url"], status_code=303)
    return templates.TemplateResponse(
        request,
        "search.html",
        {
            "version": __version__,
            "me": caller.principal,
            "limit": SEARCH_LIMIT,
            "search_query": result["query"],
            **result,
        },
    )
