"""Typed dependencies of the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from ringscope.api.queries import RunCache
from ringscope.graphs.store import GraphStore

#: The header naming who makes a request (roles come later).
USER_HEADER = "X-Ringscope-User"


def get_store(request: Request) -> GraphStore:
    store: GraphStore = request.app.state.store
    return store


def get_run_cache(request: Request) -> RunCache:
    cache: RunCache = request.app.state.run_cache
    return cache


def get_user(
    user: Annotated[str | None, Header(alias=USER_HEADER, max_length=200)] = None,
) -> str:
    return (user or "").strip() or "anonymous"


StoreDep = Annotated[GraphStore, Depends(get_store)]
UserDep = Annotated[str, Depends(get_user)]
RunCacheDep = Annotated[RunCache, Depends(get_run_cache)]
