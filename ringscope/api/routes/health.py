from __future__ import annotations

from fastapi import APIRouter

from ringscope import __version__
from ringscope.api.deps import StoreDep
from ringscope.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health(store: StoreDep) -> Health:
    """Liveness: the app answers and its store is open."""
    return Health(status="ok", version=__version__, store=store.uri)
