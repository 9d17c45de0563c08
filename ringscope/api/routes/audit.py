"""The append-only audit log: decisions, views of findings and entities, exports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ringscope.api.deps import DENIED, Admin, StoreDep
from ringscope.api.schemas import AuditEntryOut, ErrorOut

router = APIRouter(
    prefix="/api/audit",
    tags=["audit"],
    dependencies=[Admin],
    responses={422: {"model": ErrorOut}, **DENIED},
)


@router.get("", response_model=list[AuditEntryOut])
async def audit_log(
    store: StoreDep,
    who: str | None = None,
    action: str | None = None,
    subject: str | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditEntryOut]:
    """Audit entries, newest first: who did what to which subject, and when."""
    rows = store.audit_log(who=who, action=action, subject=subject, limit=limit, offset=offset)
    return [AuditEntryOut.model_validate(r) for r in rows]
