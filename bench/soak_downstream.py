"""The soak's downstream: a real OTLP/gRPC server (trace, metrics, logs) that records the identity of every
item it receives and can be switched to answer UNAVAILABLE (an outage).

Identities are those the traffic gives its items (soak_traffic): a span's or log record's ``span_id``, a
metric point's ``time_unix_nano``.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc

from otlp_gateway.batch import Signal
from otlp_gateway.otlp.signals import SIGNAL_SPECS


def item_ids(signal: Signal, request) -> list[int]:
    if signal == "traces":
        return [int.from_bytes(span.span_id, "big") for rs in request.resource_spans
                for ss in rs.scope_spans for span in ss.spans]
    if signal == "logs":
        return [int.from_bytes(record.span_id, "big") for rl in request.resource_logs
                for sl in rl.scope_logs for record in sl.log_records]
    ids = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    ids += [point.time_unix_nano for point in getattr(metric, kind).data_points]
    return ids


class RecordingDownstream:
    """``received[signal]``: the set of item identities received; ``deliveries``: items counted with
    repeats (at-least-once delivery re-sends after a crash)."""

    def __init__(self) -> None:
        self.received: dict[Signal, set[int]] = {s: set() for s in SIGNAL_SPECS}
        self.deliveries: dict[Signal, int] = dict.fromkeys(SIGNAL_SPECS, 0)
        self.refused_calls = 0
        self.failing = False
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                   options=[("grpc.max_receive_message_length", 256 * 1024 * 1024),
                                            ("grpc.so_reuseport", 0)])
        for signal, spec in SIGNAL_SPECS.items():
            handler = grpc.unary_unary_rpc_method_handler(
                self._export(signal), request_deserializer=spec.request_type.FromString,
                response_serializer=lambda response: response.SerializeToString())
            self._server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(spec.grpc_service, {"Export": handler})])
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> RecordingDownstream:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=2).wait()

    def _export(self, signal: Signal):
        spec = SIGNAL_SPECS[signal]

        def export(request, context: grpc.ServicerContext):
            if self.failing:
                with self._lock:
                    self.refused_calls += 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "soak: downstream outage")
            ids = item_ids(signal, request)
            with self._lock:
                self.received[signal].update(ids)
                self.deliveries[signal] += len(ids)
            return spec.response_type()

        return export
