"""Server-rendered pages. Every text from data is escaped by Jinja's autoescape."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ringscope import __version__
from ringscope.api.deps import StoreDep
from ringscope.api.routes.findings import queue

templates = Jinja2Templates(directory=str(Path(__file__).parent.parent / "templates"))
router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def queue_page(
    request: Request, store: StoreDep, run: str | None = None, kind: str | None = None
) -> HTMLResponse:
    run_id, fs = queue(store, run=run, kind=kind)
    kinds = sorted({f.kind for f in fs})
    return templates.TemplateResponse(
        request,
        "queue.html",
        {"run_id": run_id, "findings": fs, "kinds": kinds, "kind": kind, "version": __version__},
    )
