"""The OTLP/HTTP ASGI application: ``POST /v1/{traces,metrics,logs}``, protobuf or JSON, optionally
compressed (gzip, zstd, deflate/zlib, snappy, lz4: see ``http_body``).

A raw ASGI app rather than a framework: the body must be read as a stream under a limit and the answers
are few. Checks run cheapest first: path (404), method (405), bearer token (401), content type and
encoding (415), draining / memory limiter / rate limit / admission (503 / 429 + Retry-After), declared
length (413); then the body is read and decompressed under the limit (413) while its bytes count against
admission control's in-transit budget (503 + Retry-After when full), decoded (400) and ingested. Error
bodies are a ``google.rpc.Status`` in the request's encoding; responses use the request's content type.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from otlp_gateway.otlp.json_codec import to_otlp_json
from otlp_gateway.otlp.signals import BY_HTTP_PATH
from otlp_gateway.receiver.admission import AdmissionController, Transit
from otlp_gateway.receiver.grpc_receiver import GRPC_CODES
from otlp_gateway.receiver.http_body import (
    ACCEPTED_ENCODINGS,
    DECODERS,
    BadCompression,
    BodyTooLarge,
    ClientDisconnected,
    NoRoom,
    Receive,
    read_body,
)
from otlp_gateway.receiver.ingest import IngestCore, Refusal, RefusalKind

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"

HTTP_STATUS: dict[RefusalKind, int] = {
    RefusalKind.MALFORMED: 400,
    RefusalKind.TOO_LARGE: 413,
    RefusalKind.UNAUTHENTICATED: 401,
    RefusalKind.OVERLOADED: 503,
    RefusalKind.UNAVAILABLE: 503,
    RefusalKind.RATE_LIMITED: 429,
    RefusalKind.MEMORY_LIMITED: 503,
    RefusalKind.INTERNAL: 500,
}
_INVALID_ARGUMENT = 3  # google.rpc.Code of the 415 for an unsupported Content-Encoding


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    wanted = (b"content-type", b"content-encoding", b"content-length", b"authorization")
    return {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in wanted}


class OtlpHttpApp:
    def __init__(self, core: IngestCore, max_request_bytes: int, admission: AdmissionController):
        self._core = core
        self._limit = max_request_bytes
        self._admission = admission

    async def __call__(self, scope: dict[str, Any], receive: Receive, send) -> None:
        if scope["type"] != "http":  # lifespan is off; websockets are not served
            return
        responder = _Responder(send)
        try:
            await self._handle(scope, receive, responder)
        except ClientDisconnected:
            return
        except Exception:  # the process never crashes on input; a fault is a 500, logged once
            log.exception("OTLP HTTP %s %s failed unexpectedly", scope.get("method"), scope.get("path"))
            if not responder.started:
                await responder.text(500, "internal error while accepting the request")

    async def _handle(self, scope: dict[str, Any], receive: Receive, responder: _Responder) -> None:
        spec = BY_HTTP_PATH.get(scope["path"])
        if spec is None:
            paths = ", ".join(sorted(BY_HTTP_PATH))
            return await responder.text(404, f"unknown path {scope['path']!r}; OTLP/HTTP paths are {paths}")
        if scope["method"] != "POST":
            return await responder.text(
                405, f"{scope['method']} is not allowed on {spec.http_path}; use POST",
                extra=[(b"allow", b"POST")])
        headers = _headers(scope)
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        encoding = media_type if media_type in (PROTOBUF, JSON) else None
        try:
            self._core.authenticate(headers.get("authorization"))
            if encoding is None:
                return await responder.text(
                    415, f"unsupported Content-Type {media_type or '(none)'!r}; use {PROTOBUF} or {JSON}")
            content_encoding = headers.get("content-encoding", "").strip().lower()
            if content_encoding not in DECODERS:
                return await responder.status(415, _INVALID_ARGUMENT, encoding, message=(
                    f"unsupported Content-Encoding {content_encoding!r}; accepted: {ACCEPTED_ENCODINGS} "
                    "(or none)"))
            self._core.gate()
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._limit:
                raise Refusal(RefusalKind.TOO_LARGE, f"body of {declared} bytes exceeds the limit of "
                                                     f"{self._limit} bytes")
            with self._admission.open_transit() as transit:
                body = await self._read(receive, content_encoding, transit)
                response = await self._core.ingest(spec, body, "protobuf" if encoding == PROTOBUF else "json",
                                                   transit)
        except Refusal as refusal:
            # uvicorn discards an unread body and keeps the connection; close it when the body may be huge
            # (413), was cut short for want of room, or when draining (clients should move elsewhere)
            close = refusal.kind is RefusalKind.TOO_LARGE or self._core.draining or refusal.cut_short
            return await responder.refusal(refusal, encoding, close)
        await responder.message(200, response, encoding)

    async def _read(self, receive: Receive, content_encoding: str, transit: Transit) -> bytes:
        try:
            return await read_body(receive, content_encoding, self._limit, transit.hold)
        except BodyTooLarge as exc:
            raise Refusal(RefusalKind.TOO_LARGE, str(exc)) from None
        except BadCompression as exc:
            raise Refusal(RefusalKind.MALFORMED, str(exc)) from None
        except NoRoom:
            # no local name for the refusal: its traceback holds this frame, a cycle only the GC frees
            raise self._core.refuse_transit() from None



class _Responder:
    """Writes the one response of a request."""

    def __init__(self, send):
        self._send = send
        self.started = False

    async def raw(self, status: int, body: bytes, content_type: str, extra=(), close: bool = False) -> None:
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
                   *extra]
        if close:
            headers.append((b"connection", b"close"))
        self.started = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})

    async def text(self, status: int, message: str, extra=()) -> None:
        await self.raw(status, message.encode(), TEXT, extra)

    async def message(self, status: int, message: Message, encoding: str | None, extra=(),
                      close: bool = False) -> None:
        if encoding == JSON:
            await self.raw(status, to_otlp_json(message), JSON, extra, close)
        else:
            await self.raw(status, message.SerializeToString(), PROTOBUF, extra, close)

    async def status(self, http_status: int, code: int, encoding: str | None, *, message: str,
                     retry_after: float | None = None, extra=(), close: bool = False) -> None:
        status = status_pb2.Status(code=code, message=message)
        extra = list(extra)
        if retry_after is not None:
            delay = error_details_pb2.RetryInfo()
            delay.retry_delay.FromNanoseconds(max(1, round(retry_after * 1e9)))
            status.details.add().Pack(delay)
            extra.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))
        if encoding is None:
            await self.raw(http_status, message.encode(), TEXT, extra, close)
        else:
            await self.message(http_status, status, encoding, extra, close)

    async def refusal(self, refusal: Refusal, encoding: str | None, close: bool) -> None:
        extra = [(b"www-authenticate", b"Bearer")] if refusal.kind is RefusalKind.UNAUTHENTICATED else []
        retryable = refusal.kind in (RefusalKind.OVERLOADED, RefusalKind.RATE_LIMITED,
                                     RefusalKind.UNAVAILABLE, RefusalKind.MEMORY_LIMITED)
        await self.status(HTTP_STATUS[refusal.kind], GRPC_CODES[refusal.kind].value[0], encoding,
                          message=refusal.message, retry_after=refusal.retry_after if retryable else None,
                          extra=extra, close=close)
