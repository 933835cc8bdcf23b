"""OTLP/gRPC transport: unary Export with the request bytes passed through as they are.

Large requests under gzip go through grpc's blocking API on a thread instead of grpc.aio: grpc.aio
compresses a message on the event loop with the GIL held (a 20 MB request stops every other client and
thread for 0.3-0.7 s on a loaded 2-core machine, and several large requests forwarded back to back stack
up), while the blocking API compresses with the GIL released.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from otlp_gateway.batch import SIGNALS, Signal
from otlp_gateway.errors import PermanentError, RetryableError
from otlp_gateway.exporter.endpoint import Endpoint
from otlp_gateway.exporter.settings import ExporterSettings
from otlp_gateway.exporter.transport import read_optional
from otlp_gateway.otlp.signals import SIGNAL_SPECS, ExportOutcome, outcome_from_response

_ALWAYS_RETRYABLE = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
})
_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
LARGE_REQUEST_BYTES = 1 << 20
"""Under gzip, requests from this size are sent by the blocking API on a thread (see above); smaller ones
compress in well under a millisecond on the event loop."""


class GrpcTransport:
    def __init__(self, endpoint: Endpoint, settings: ExporterSettings):
        initial_ms = max(100, int(settings.retry.initial_interval_seconds * 1000))
        max_ms = max(100, int(settings.retry.max_interval_seconds * 1000))
        options = [("grpc.max_receive_message_length", _MAX_RESPONSE_BYTES),
                   ("grpc.max_send_message_length", -1),
                   # grpc's own reconnect backoff grows to 120 s; after a long outage that would delay
                   # recovery well past our retry schedule, so cap it at the retry interval.
                   ("grpc.initial_reconnect_backoff_ms", initial_ms),
                   ("grpc.max_reconnect_backoff_ms", max_ms)]
        gzip = settings.compression == "gzip"
        compression = grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression
        credentials = None
        if endpoint.tls:
            tls = settings.tls
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read_optional(tls.ca_file),
                private_key=read_optional(tls.key_file),
                certificate_chain=read_optional(tls.cert_file))
            self._channel = grpc.aio.secure_channel(endpoint.grpc_target, credentials, options, compression)
        else:
            self._channel = grpc.aio.insecure_channel(endpoint.grpc_target, options, compression)
        self._blocking_channel: grpc.Channel | None = None
        self._blocking_calls: dict[Signal, Any] = {}
        self._blocking_args = (endpoint.grpc_target, credentials, options, compression) if gzip else None
        """How to open the blocking channel for large gzip requests (opened on the first one)."""
        # gRPC metadata keys must be lowercase; values stay secret (never logged).
        self._metadata = tuple((k.lower(), v.get_secret_value()) for k, v in settings.headers.items())
        self._timeout = settings.timeout_seconds
        # request_serializer=None sends the bytes untouched: no parse/re-serialize of the payload.
        self._calls = {
            signal: self._channel.unary_unary(SIGNAL_SPECS[signal].grpc_method, request_serializer=None,
                                              response_deserializer=SIGNAL_SPECS[signal].response_type.FromString)
            for signal in SIGNALS
        }

    async def send(self, signal: Signal, payload: bytes) -> ExportOutcome:
        if self._blocking_args is not None and len(payload) >= LARGE_REQUEST_BYTES:
            return await self._send_blocking(signal, payload)
        try:
            response = await self._calls[signal](payload, timeout=self._timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as err:
            raise classify_rpc_error(err) from None
        return outcome_from_response(signal, response)

    async def _send_blocking(self, signal: Signal, payload: bytes) -> ExportOutcome:
        call = self._blocking_calls.get(signal)
        if call is None:
            if self._blocking_channel is None:
                assert self._blocking_args is not None
                target, credentials, options, compression = self._blocking_args
                self._blocking_channel = grpc.insecure_channel(target, options, compression) \
                    if credentials is None else grpc.secure_channel(target, credentials, options, compression)
            call = self._blocking_calls[signal] = self._blocking_channel.unary_unary(
                SIGNAL_SPECS[signal].grpc_method, request_serializer=None,
                response_deserializer=SIGNAL_SPECS[signal].response_type.FromString)
        try:
            response = await asyncio.to_thread(call, payload, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise classify_rpc_error(err) from None
        return outcome_from_response(signal, response)

    async def close(self) -> None:
        await self._channel.close(grace=None)
        if self._blocking_channel is not None:
            self._blocking_channel.close()


def classify_rpc_error(err: grpc.aio.AioRpcError | grpc.Call) -> PermanentError | RetryableError:
    code = err.code()
    hint = retry_info_delay(err.trailing_metadata())
    message = f"downstream answered {code.name}: {err.details() or ''}".rstrip(": ")
    if code in _ALWAYS_RETRYABLE or (code == grpc.StatusCode.RESOURCE_EXHAUSTED and hint is not None):
        return RetryableError(message, retry_after=hint)
    return PermanentError(message)


def retry_info_delay(metadata: object) -> float | None:
    """Seconds from a RetryInfo trailer: the standard status details, else the Python SDK's own key."""
    if not metadata:
        return None
    try:
        return _retry_info_delay(metadata)
    except DecodeError:
        return None  # a malformed trailer is no hint; the code alone decides


def _retry_info_delay(metadata: object) -> float | None:
    for key, value in metadata:  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                    info = error_details_pb2.RetryInfo()
                    detail.Unpack(info)
                    return info.retry_delay.ToTimedelta().total_seconds()
    for key, value in metadata:  # type: ignore[attr-defined]
        if key == "google.rpc.retryinfo-bin" and isinstance(value, bytes):
            info = error_details_pb2.RetryInfo.FromString(value)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None
