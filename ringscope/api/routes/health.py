from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ringscope import __version__
from ringscope.api.deps import StoreDep
from ringscope.api.schemas import Health

router = APIRouter(tags=["health"])

_UNHEALTHY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The store cannot be opened (for instance Neo4j is down); "
        "`detail` says why. The app keeps trying and recovers by itself.",
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
    problem = getattr(store, "problem", None)
    why = problem() if callable(problem) else None
    if why is not None:
        return JSONResponse(
            {"status": "unhealthy", "version": __version__, "store": store.uri, "detail": why},
            status_code=503,
        )
    return Health(status="ok", version=__version__, store=store.uri)
