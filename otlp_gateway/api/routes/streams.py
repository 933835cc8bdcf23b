"""Streams: their state, and per-stream profile and threshold changes that apply without a restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from otlp_gateway.store.base import StreamInfo
from otlp_gateway.streams.control import (
    InvalidCursorError,
    InvalidStreamChange,
    StreamControl,
    UnknownStreamError,
)

from ..audit import record_change, stream_view
from ..auth import CurrentPrincipal
from ..errors import ApiError, error_responses
from ..schemas import StreamList, StreamOut, StreamPatch, StreamState

router = APIRouter(prefix="/streams", tags=["streams"])
StreamId = Annotated[str, Path(min_length=1, max_length=512, description="The stream id")]


def _control(request: Request) -> StreamControl:
    return request.app.state.ctx.streams


def _out(control: StreamControl, info: StreamInfo) -> StreamOut:
    return StreamOut.from_info(info, control.effective(info))


@router.get("", response_model=StreamList, responses=error_responses(400),
            summary="Streams in id order with their state and effective profile; follow next_cursor for more")
async def list_streams(request: Request, _: CurrentPrincipal,
                       state: Annotated[StreamState | None, Query()] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       cursor: Annotated[str | None, Query(max_length=2048)] = None) -> StreamList:
    control = _control(request)
    try:
        page = await control.list_streams(limit=limit, cursor=cursor, state=state)
    except InvalidCursorError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    return StreamList(items=[_out(control, i) for i in page.items], next_cursor=page.next_cursor)


@router.get("/{stream_id:path}", response_model=StreamOut, responses=error_responses(404),
            summary="One stream")
async def get_stream(request: Request, _: CurrentPrincipal, stream_id: StreamId) -> StreamOut:
    control = _control(request)
    info = await control.get_stream(stream_id)
    if info is None:
        raise ApiError(404, "not_found", f"no stream with id {stream_id!r}")
    return _out(control, info)


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
    return _out(control, after)
