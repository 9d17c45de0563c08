from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ringscope import __version__
from ringscope.api.deps import StoreDep
from ringscope.api.lazy_store import ReopeningStore
from ringscope.api.schemas import Health
from ringscope.errors import StoreAway

router = APIRouter(tags=["health"])

_UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The store cannot be opened (for instance Neo4j is down), `status` "
        "`unhealthy`; or the app has stepped aside while a job writes to the embedded store, "
        "`status` `away`, with `Retry-After`. `detail` says why. The app recovers by itself.",
        "content": {
            "application/json": {
                "example": {
                    "status": "unhealthy",
                    "version": __version__,
                    "store": "neo4j://localhost:7687",
                    "detail": "store neo4j://localhost:7687 is unavailable: ...",
                }
            }
        },
    }
}


@router.get("/health", response_model=Health, responses=_UNHEALTHY)
async def health(store: StoreDep) -> Health | JSONResponse:
    """Liveness: the app answers and its store is open (503 with the reason if not)."""
    why = store.unavailable() if isinstance(store, ReopeningStore) else None
    if isinstance(why, StoreAway):
        return JSONResponse(
            {"status": "away", "version": __version__, "store": store.uri, "detail": str(why)},
            status_code=503,
            headers={"Retry-After": str(why.retry_after)},
        )
    if why is not None:
        return JSONResponse(
            {"status": "unhealthy", "version": __version__, "store": store.uri, "detail": str(why)},
            status_code=503,
        )
    return Health(status="ok", version=__version__, store=store.uri)
