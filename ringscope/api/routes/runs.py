from __future__ import annotations

from fastapi import APIRouter

from ringscope.api.deps import DENIED, StoreDep, Viewer
from ringscope.api.schemas import ErrorOut, RunOut

router = APIRouter(
    prefix="/api/runs",
    tags=["runs"],
    dependencies=[Viewer],
    responses={404: {"model": ErrorOut}, **DENIED},
)


@router.get("", response_model=list[RunOut])
async def list_runs(store: StoreDep) -> list[RunOut]:
    """Every detection run, newest first."""
    return [RunOut.of(r) for r in store.runs()]


@router.get("/{run_id}", response_model=RunOut)
async def get_run(run_id: str, store: StoreDep) -> RunOut:
    return RunOut.of(store.get_run(run_id))
