"""Prometheus exposition of the gateway's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client.exposition import choose_encoder

from ..runtime_metrics import refresh_process_metrics

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (text exposition)",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}},
                                         "application/openmetrics-text": {"schema": {"type": "string"}}},
                             "description": "Prometheus text (or OpenMetrics when asked for)"}})
async def metrics(request: Request) -> Response:
    ctx = request.app.state.ctx
    refresh_process_metrics(ctx.metrics)
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(ctx.metrics.registry), media_type=content_type)
