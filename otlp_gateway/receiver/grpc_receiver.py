"""OTLP/gRPC receiver (:4317): Trace, Metrics and Logs ``Export`` plus ``grpc.health.v1.Health``.

Requests are taken as raw bytes (generic handlers without a deserializer) so that a fully valid request is
forwarded as the client's own bytes; the codec decodes them once, on a decode thread, to validate, count
and (with detection on) extract. grpc core enforces the size limit on the decompressed message
(``grpc.max_receive_message_length``) and answers RESOURCE_EXHAUSTED without RetryInfo, as the OTLP rules
ask.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2

from otlp_gateway.batch import BatchConsumer
from otlp_gateway.health import HealthState
from otlp_gateway.otlp.signals import SIGNAL_SPECS, SignalSpec
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver.address import grpc_address
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.health_service import GrpcHealthBridge
from otlp_gateway.receiver.ingest import IngestCore, Refusal, RefusalKind
from otlp_gateway.receiver.memory_limiter import MemoryLimiter
from otlp_gateway.receiver.refusals import IngestRefusals
from otlp_gateway.receiver.settings import ReceiverSettings
from otlp_gateway.receiver.tls import grpc_server_credentials
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

GRPC_CODES: dict[RefusalKind, grpc.StatusCode] = {
    RefusalKind.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    RefusalKind.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RefusalKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    RefusalKind.OVERLOADED: grpc.StatusCode.UNAVAILABLE,
    RefusalKind.RATE_LIMITED: grpc.StatusCode.UNAVAILABLE,
    # retryable only with RetryInfo (the OTLP spec): _abort always sends it with this kind
    RefusalKind.MEMORY_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RefusalKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    RefusalKind.INTERNAL: grpc.StatusCode.INTERNAL,
}


def retry_trailers(code: grpc.StatusCode, message: str, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    """RetryInfo for both client families: ``grpc-status-details-bin`` (a ``google.rpc.Status`` carrying
    it, read by Go clients) and ``google.rpc.retryinfo-bin`` (the bare RetryInfo, read by Python)."""
    delay = Duration()
    delay.FromNanoseconds(max(1, round(retry_after * 1e9)))
    info = error_details_pb2.RetryInfo(retry_delay=delay)
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return (("grpc-status-details-bin", status.SerializeToString()),
            ("google.rpc.retryinfo-bin", info.SerializeToString()))


def _metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == key:
            return item.value if isinstance(item.value, str) else None
    return None


class OtlpGrpcReceiver:
    """``decoder``: the gateway's decode pool (shared with the HTTP receiver); without one, the receiver
    runs its own (``settings.decode_workers`` threads, no extraction)."""

    def __init__(self, settings: ReceiverSettings, consumer: BatchConsumer, metrics: GatewayMetrics,
                 health: HealthState, admission: AdmissionController,
                 rate_limiter: TokenBucket | None = None, refusals: IngestRefusals | None = None,
                 decoder: DecodePool | None = None, memory_limiter: MemoryLimiter | None = None):
        self._settings = settings
        self._own_decoder = decoder is None
        decoder = decoder if decoder is not None else DecodePool(settings.decode_workers)
        self._core = IngestCore("grpc", consumer, metrics, admission, rate_limiter, settings.bearer_token,
                                decoder, refusals, memory_limiter)
        self._health = GrpcHealthBridge(health, [s.grpc_service for s in SIGNAL_SPECS.values()])
        self._server: grpc.aio.Server | None = None
        self._shut_down = False
        self.port: int | None = None
        """The bound port once started (useful with ``:0``)."""

    async def start(self) -> None:
        self._core.watch_loop()
        options = [("grpc.max_receive_message_length", self._settings.max_request_bytes),
                   ("grpc.so_reuseport", 0)]
        server = grpc.aio.server(options=options)
        # no request_deserializer: the handler gets the client's bytes, to forward them unchanged
        server.add_generic_rpc_handlers([
            grpc.method_handlers_generic_handler(
                spec.grpc_service,
                {"Export": grpc.unary_unary_rpc_method_handler(self._export_handler(spec))})
            for spec in SIGNAL_SPECS.values()
        ])
        await self._health.attach(server)
        address = grpc_address(self._settings.grpc_listen)
        try:
            if self._settings.tls.enabled:
                self.port = server.add_secure_port(address, grpc_server_credentials(self._settings.tls))
            else:
                self.port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise RuntimeError(f"OTLP gRPC receiver cannot listen on {address}: {exc}") from None
        await server.start()
        self._server = server
        if self._own_decoder:
            self._core.decoder.warm_up()
        log.info("OTLP gRPC receiver listening on %s (port %d, tls=%s)", address, self.port,
                 self._settings.tls.enabled)

    async def stop_accepting(self) -> None:
        """Drain phase: new requests get UNAVAILABLE with a retry hint; in-flight requests finish."""
        self._core.draining = True

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop the server, letting in-flight requests finish within ``grace``; idempotent."""
        try:
            if self._server is None or self._shut_down:
                return
            self._shut_down = True
            self._core.draining = True
            await self._health.close()
            await self._server.stop(grace)
        finally:
            self._core.stop_watching_loop()
            if self._own_decoder:
                self._core.decoder.close()

    def _export_handler(self, spec: SignalSpec):
        core = self._core

        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                core.authenticate(_metadata_value(context, "authorization"))
                core.gate()
                response = await core.ingest(spec, request)
                return response.SerializeToString()
            except Refusal as refusal:
                failure = refusal
            except Exception:  # never let a handler fall through to UNKNOWN
                log.exception("OTLP gRPC %s export failed unexpectedly", spec.signal)
                failure = Refusal(RefusalKind.INTERNAL, "internal error while accepting the request")
            await _abort(context, failure)
            raise AssertionError("unreachable: abort raises")

        return export


async def _abort(context: grpc.aio.ServicerContext, refusal: Refusal) -> None:
    code = GRPC_CODES[refusal.kind]
    trailers: tuple = ()
    # TOO_LARGE (RESOURCE_EXHAUSTED too) has no retry hint: without RetryInfo clients do not retry it
    if refusal.retry_after is not None:
        trailers = retry_trailers(code, refusal.message, refusal.retry_after)
    await context.abort(code, refusal.message, trailing_metadata=trailers)
