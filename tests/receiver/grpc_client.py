"""A plain gRPC client for the receiver tests: raw bytes in, RpcError out, trailers decoded."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METHODS = {
    "traces": TRACE_EXPORT,
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}


def call(target: str, body: bytes, method: str = TRACE_EXPORT, credentials=None, **kw) -> bytes:
    channel = (grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target))
    with channel:
        return channel.unary_unary(method)(body, timeout=10, **kw)


def expect_refusal(target: str, body: bytes, **kw) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(target, body, **kw)
    return info.value


def trailers_of(error: grpc.RpcError) -> dict[str, bytes]:
    return dict(error.trailing_metadata() or ())


def assert_retry_info(error: grpc.RpcError, seconds: float) -> None:
    trailers = trailers_of(error)
    info = error_details_pb2.RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert info.retry_delay.ToNanoseconds() == round(seconds * 1e9)
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0] and status.message == error.details()
    (detail,) = status.details
    unpacked = error_details_pb2.RetryInfo()
    assert detail.Unpack(unpacked) and unpacked == info
