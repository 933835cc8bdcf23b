"""OTLP receivers: gRPC (:4317) and HTTP (:4318) with admission control, TLS and bearer auth.

Public API: ``OtlpGrpcReceiver``, ``OtlpHttpReceiver`` and the ``AdmissionController`` they share. The
classes are imported lazily so that loading the configuration (``receiver.settings``) does not pull in
grpc and uvicorn.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otlp_gateway.receiver.admission import AdmissionController
    from otlp_gateway.receiver.grpc_receiver import OtlpGrpcReceiver
    from otlp_gateway.receiver.http_receiver import OtlpHttpReceiver

_EXPORTS = {
    "AdmissionController": "otlp_gateway.receiver.admission",
    "OtlpGrpcReceiver": "otlp_gateway.receiver.grpc_receiver",
    "OtlpHttpReceiver": "otlp_gateway.receiver.http_receiver",
}

__all__ = ["AdmissionController", "OtlpGrpcReceiver", "OtlpHttpReceiver"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
