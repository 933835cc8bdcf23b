"""Profiling (admin only; turned off with ``api.profiling_enabled: false``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..auth import AdminPrincipal
from ..errors import ApiError, error_responses
from ..profiling import Diagnostics, DiagnosticsBusyError, ProfileFormat
from ..schemas import MemoryReport

router = APIRouter(prefix="/debug", tags=["debug"])
MAX_PROFILE_SECONDS = 60.0


def _diagnostics(request: Request) -> Diagnostics:
    if not request.app.state.ctx.config.api.profiling_enabled:
        raise ApiError(404, "not_found", "profiling is disabled (api.profiling_enabled: false)")
    return request.app.state.diagnostics


@router.post(
    "/profile", response_class=Response, responses={
        200: {"description": "The profile in the asked format",
              "content": {"text/plain": {"schema": {"type": "string"}},
                          "text/html": {"schema": {"type": "string"}},
                          "application/json": {"schema": {"type": "object"}}}},
        **error_responses(404, 409)},
    summary="Sample the event loop for N seconds and return a CPU profile")
async def cpu_profile(
    request: Request,
    _: AdminPrincipal,
    seconds: Annotated[float, Query(gt=0, le=MAX_PROFILE_SECONDS)] = 10.0,
    format: Annotated[ProfileFormat, Query(description="text, html or speedscope JSON")] = "text",
) -> Response:
    diagnostics = _diagnostics(request)
    try:
        profile = await diagnostics.cpu_profile(seconds, format)
    except DiagnosticsBusyError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return Response(profile.body, media_type=profile.media_type,
                    headers={"X-Profile-Samples": str(profile.samples),
                             "X-Profile-Duration-Seconds": f"{profile.duration_seconds:.3f}"})


@router.get("/memory", response_model=MemoryReport, responses=error_responses(404, 409),
            summary="Top allocations by source line (tracemalloc) and the most numerous objects")
async def memory(
    request: Request,
    _: AdminPrincipal,
    top: Annotated[int, Query(ge=1, le=200)] = 25,
    seconds: Annotated[float, Query(ge=0, le=MAX_PROFILE_SECONDS,
                                    description="when tracing is off: how long to trace first")] = 5.0,
) -> MemoryReport:
    diagnostics = _diagnostics(request)
    try:
        return await diagnostics.memory_report(top, seconds)
    except DiagnosticsBusyError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
