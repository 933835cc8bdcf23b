"""Streams: their state, and per-stream profile and threshold changes that apply without a restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from otlp_gateway.streams.changes import InvalidStreamChange, StreamControl, UnknownStreamError

from ..audit import record_change, stream_view
from ..auth import CurrentPrincipal
from ..errors import ApiError, error_responses
from ..schemas import StreamList, StreamOut, StreamPatch, StreamState

router = APIRouter(prefix="/streams", tags=["streams"])
StreamId = Annotated[str, Path(min_length=1, max_length=512, description="The stream id")]


def _control(request: Request) -> StreamControl:
    return request.app.state.ctx.streams


@router.get("", response_model=StreamList, summary="Streams with their state and effective profile")
async def list_streams(request: Request, _: CurrentPrincipal,
                       state: Annotated[StreamState | None, Query()] = None) -> StreamList:
    infos = await _control(request).list_streams()
    return StreamList(items=[StreamOut.from_info(i) for i in infos if state is None or i.state == state])


@router.get("/{stream_id:path}", response_model=StreamOut, responses=error_responses(404),
            summary="One stream")
async def get_stream(request: Request, _: CurrentPrincipal, stream_id: StreamId) -> StreamOut:
    info = await _control(request).get_stream(stream_id)
    if info is None:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}")
    return StreamOut.from_info(info)


@router.patch("/{stream_id:path}", response_model=StreamOut, responses=error_responses(404, 409),
              summary="Change a stream's profile, window sizes, false-alarm target or enabled flag (admin)")
async def update_stream(request: Request, who: CurrentPrincipal, stream_id: StreamId,
                        body: StreamPatch) -> StreamOut:
    control = _control(request)
    before = await control.get_stream(stream_id)
    if before is None:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}")
    try:
        after = await control.update_stream(stream_id, body.changes())
    except UnknownStreamError:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}") from None
    except InvalidStreamChange as exc:  # valid alone, impossible with the stream's current settings
        raise ApiError(409, "conflict", f"body: {exc}") from None
    await record_change(request.app.state.ctx.store, who, "stream.update", f"stream:{stream_id}",
                        stream_view(before), stream_view(after))
    return StreamOut.from_info(after)
