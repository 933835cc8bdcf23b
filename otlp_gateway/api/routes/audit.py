"""The audit log of changes made through the API and the CLI (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ..auth import AdminPrincipal
from ..errors import cursor_errors, error_responses
from ..schemas import AuditOut, AuditPage, Timestamp

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditPage, responses=error_responses(400),
            summary="Audit entries, newest first; follow next_cursor for more")
async def query_audit(
    request: Request,
    _: AdminPrincipal,
    since: Annotated[Timestamp | None, Query(description="entries at or after (RFC 3339)")] = None,
    actor: Annotated[str | None,
                     Query(max_length=256, description="e.g. key:<key_id>, jwt:<sub>, cli")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AuditPage:
    with cursor_errors():
        entries, next_cursor = await request.app.state.ctx.store.query_audit(since, actor, limit, cursor)
    return AuditPage(items=[AuditOut.from_entry(e) for e in entries], next_cursor=next_cursor)
