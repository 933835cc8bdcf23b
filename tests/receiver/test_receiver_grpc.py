"""The OTLP/gRPC receiver on a real port: SDK exporters, the answers table, RetryInfo, health, auth, TLS."""

from __future__ import annotations

import gzip
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from otlp_gateway.errors import OverloadedError, PermanentError, RetryableError
from otlp_gateway.health import Phase
from otlp_gateway.receiver import OtlpGrpcReceiver, OtlpHttpReceiver
from otlp_gateway.receiver.settings import ReceiverSettings
from tests.fixtures.otlp_payloads import logs_request, metrics_request, trace_request
from tests.receiver.conftest import wait_until
from tests.receiver.grpc_client import METHODS, assert_retry_info, call, expect_refusal, trailers_of
from tests.receiver.sdk_clients import encoded_spans, exporters, make_spans, send_logs, send_metrics


# ----------------------------------------------------------------------------------------- delivery
def test_sdk_grpc_exporters_deliver_and_bytes_arrive_unchanged(start_receivers):
    rx = start_receivers()
    span_exporter, metric_exporter, log_exporter = exporters("grpc", rx.grpc_target)
    spans = make_spans(4)
    assert span_exporter.export(spans) is SpanExportResult.SUCCESS
    send_metrics(metric_exporter)
    records, last_log_bytes = send_logs(log_exporter, ["payment declined", "retrying payment"])
    span_exporter.shutdown()
    log_exporter.shutdown()

    by_signal = {s: [b for b in rx.consumer.snapshot() if b.signal == s] for s in METHODS}
    (trace_batch,) = by_signal["traces"]
    assert trace_batch.payload == encoded_spans(spans)  # the client's own bytes, not a re-serialization
    assert trace_batch.item_count == 4
    assert trace_batch.message is None  # valid protobuf is never parsed into messages on the way through
    forwarded = ExportTraceServiceRequest.FromString(trace_batch.payload)
    received = {s.name: s for s in forwarded.resource_spans[0].scope_spans[0].spans}
    for span in spans:
        got = received[span.name]
        assert got.trace_id == span.context.trace_id.to_bytes(16, "big")
        assert got.span_id == span.context.span_id.to_bytes(8, "big")
    assert {s.name for s in spans} == set(received)
    assert received["query 1"].events[0].name == "fetched" and len(received["query 1"].links) == 1

    metric_batch = by_signal["metrics"][0]
    metrics = {m.name: m for m in metric_batch.message.resource_metrics[0].scope_metrics[0].metrics}
    assert metrics["orders.placed"].sum.data_points[0].as_int == 7
    histogram = metrics["order.value"].histogram.data_points[0]
    assert (histogram.count, histogram.sum) == (3, 60.5)
    assert metric_batch.item_count == 2

    log_batches = by_signal["logs"]
    logs = [ExportLogsServiceRequest.FromString(b.payload).resource_logs[0].scope_logs[0].log_records[0]
            for b in log_batches]
    assert [record.body.string_value for record in logs] == ["payment declined", "retrying payment"]
    assert log_batches[-1].payload == last_log_bytes
    assert logs[0].trace_id == records[0].log_record.trace_id.to_bytes(16, "big")
    assert rx.sample("otelcol_receiver_accepted_spans_total", {"transport": "grpc"}) == 4
    assert rx.sample("otelcol_receiver_accepted_log_records_total", {"transport": "grpc"}) == 2


def test_gzip_from_the_sdk_exporter_is_accepted(start_receivers):
    rx = start_receivers()
    span_exporter, _, _ = exporters("grpc", rx.grpc_target, compression=grpc.Compression.Gzip)
    spans = make_spans(3)
    assert span_exporter.export(spans) is SpanExportResult.SUCCESS
    span_exporter.shutdown()
    assert rx.consumer.snapshot()[0].payload == encoded_spans(spans)


def test_original_bytes_are_forwarded_even_when_not_canonical(start_receivers):
    rx = start_receivers()
    # an unknown field placed *before* the known ones: any re-serialization would move it to the end
    unknown_first = b"\xa2\x06\x03abc"  # field 100, length-delimited "abc"
    body = unknown_first + trace_request(5).SerializeToString()
    assert ExportTraceServiceRequest.FromString(body).SerializeToString() != body
    ExportTraceServiceResponse.FromString(call(rx.grpc_target, body))
    assert rx.consumer.snapshot()[0].payload == body


# ----------------------------------------------------------------------------------------- answers table
def test_all_valid_is_ok_without_partial_success(start_receivers):
    rx = start_receivers()
    body = trace_request(3).SerializeToString()
    response = ExportTraceServiceResponse.FromString(call(rx.grpc_target, body))
    assert not response.HasField("partial_success")


@pytest.mark.parametrize("signal, empty", [("traces", ExportTraceServiceRequest()),
                                           ("metrics", ExportMetricsServiceRequest()),
                                           ("logs", ExportLogsServiceRequest())])
def test_empty_request_is_ok_and_not_handed_on(start_receivers, signal, empty):
    rx = start_receivers()
    assert call(rx.grpc_target, empty.SerializeToString(), METHODS[signal]) == b""
    assert rx.consumer.snapshot() == []


def test_invalid_items_give_partial_success_and_the_rest_is_reserialized(start_receivers):
    rx = start_receivers()
    request = trace_request(5)
    spans = request.resource_spans[0].scope_spans[0].spans
    spans[1].trace_id = b"\x01" * 15
    spans[3].span_id = b"\x01" * 4
    response = ExportTraceServiceResponse.FromString(call(rx.grpc_target, request.SerializeToString()))
    assert response.partial_success.rejected_spans == 2
    assert "rejected 2 of 5 spans" in response.partial_success.error_message
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    (batch,) = rx.consumer.snapshot()
    forwarded = ExportTraceServiceRequest.FromString(batch.payload)
    assert batch.item_count == 3 and len(forwarded.resource_spans[0].scope_spans[0].spans) == 3
    assert rx.sample("otelcol_receiver_refused_spans_total", {"transport": "grpc", "reason": "invalid"}) == 2


def test_invalid_log_and_metric_items_are_reported(start_receivers):
    rx = start_receivers()
    logs = logs_request(3)
    logs.resource_logs[0].scope_logs[0].log_records[0].trace_id = b"\x01" * 3
    response = call(rx.grpc_target, logs.SerializeToString(), METHODS["logs"])
    assert ExportLogsServiceResponse.FromString(response).partial_success.rejected_log_records == 1
    metrics = metrics_request(1, 2)
    metrics.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars.add(span_id=b"\x01")
    response = call(rx.grpc_target, metrics.SerializeToString(), METHODS["metrics"])
    assert ExportMetricsServiceResponse.FromString(response).partial_success.rejected_data_points == 1


@pytest.mark.parametrize("body", [b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05\x12\x03", b"\xff" * 8])
def test_bad_protobuf_is_invalid_argument(start_receivers, body):
    rx = start_receivers()
    error = expect_refusal(rx.grpc_target, body)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid ExportTraceServiceRequest" in error.details()


def test_oversize_and_gzip_bomb_are_resource_exhausted_without_retry_info(start_receivers):
    rx = start_receivers(max_request_bytes=256 * 1024)
    oversize = expect_refusal(rx.grpc_target, trace_request(2000).SerializeToString())
    assert oversize.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    bomb = bytes(32 * 1024 * 1024)
    assert len(gzip.compress(bomb)) < 256 * 1024  # small on the wire: only the inflated size is too big
    bombed = expect_refusal(rx.grpc_target, bomb, compression=grpc.Compression.Gzip)
    assert bombed.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    for error in (oversize, bombed):
        assert "google.rpc.retryinfo-bin" not in trailers_of(error)
        assert "grpc-status-details-bin" not in trailers_of(error)
    assert rx.consumer.snapshot() == []


def test_next_stage_errors_map_to_codes_with_retry_info_in_both_trailers(start_receivers):
    """The collector's mapping: a server stage's permanent failure is INTERNAL (never INVALID_ARGUMENT:
    the client's data is fine), an unclassified error is retryable UNAVAILABLE."""
    rx = start_receivers()
    body = trace_request(2).SerializeToString()
    rx.consumer.fail_next(RetryableError("exporter queue busy", retry_after=2.5),
                          OverloadedError("queue full"),
                          PermanentError("downstream said INVALID_ARGUMENT"), ZeroDivisionError("bug"))
    retryable = expect_refusal(rx.grpc_target, body)
    assert retryable.code() is grpc.StatusCode.UNAVAILABLE and "exporter queue busy" in retryable.details()
    assert_retry_info(retryable, 2.5)
    overloaded = expect_refusal(rx.grpc_target, body)
    assert_retry_info(overloaded, rx.settings.admission.retry_after_seconds)  # no hint: the default
    permanent = expect_refusal(rx.grpc_target, body)
    assert permanent.code() is grpc.StatusCode.INTERNAL and "google.rpc.retryinfo-bin" not in \
        trailers_of(permanent)
    assert "INVALID_ARGUMENT" not in permanent.details() and "server stage" in permanent.details()
    unclassified = expect_refusal(rx.grpc_target, body)
    assert unclassified.code() is grpc.StatusCode.UNAVAILABLE and "bug" not in unclassified.details()
    assert_retry_info(unclassified, rx.settings.admission.retry_after_seconds)
    call(rx.grpc_target, body)  # and then it works again
    assert rx.consumer.items() == 2
    refused = {r: rx.sample("otelcol_receiver_refused_spans_total", {"transport": "grpc", "reason": r})
               for r in ("retryable", "overloaded", "permanent", "internal")}
    assert refused == {"retryable": 2, "overloaded": 2, "permanent": 2, "internal": 2}


def test_unknown_method_is_unimplemented_not_unknown(start_receivers):
    rx = start_receivers()
    error = expect_refusal(rx.grpc_target, b"",
                           method="/opentelemetry.proto.collector.trace.v1.TraceService/Nope")
    assert error.code() is grpc.StatusCode.UNIMPLEMENTED


# ----------------------------------------------------------------------------------------- auth and TLS
def test_bearer_token_is_required_when_configured(start_receivers, caplog):
    secret = "s3cr3t-token-value"
    rx = start_receivers(bearer_token=secret)
    body = trace_request(1).SerializeToString()
    for metadata in (None, (("authorization", "Bearer wrong"),), (("authorization", f"Basic {secret}"),)):
        error = expect_refusal(rx.grpc_target, body, metadata=metadata)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert secret not in error.details()
    call(rx.grpc_target, body, metadata=(("authorization", f"Bearer {secret}"),))
    span_exporter, _, _ = exporters("grpc", rx.grpc_target, headers={"authorization": f"Bearer {secret}"})
    assert span_exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    span_exporter.shutdown()
    assert rx.consumer.items() == 3
    assert secret not in caplog.text


def test_tls_and_mutual_tls(start_receivers, tls_files):
    ca = tls_files.ca.read_bytes()
    rx = start_receivers(tls={"cert_file": str(tls_files.server_cert),
                              "key_file": str(tls_files.server_key)})
    body = trace_request(1).SerializeToString()
    call(rx.grpc_target, body, credentials=grpc.ssl_channel_credentials(ca))
    plaintext = expect_refusal(rx.grpc_target, body)  # plaintext to a TLS port
    assert plaintext.code() is grpc.StatusCode.UNAVAILABLE

    tls = {"cert_file": str(tls_files.server_cert), "key_file": str(tls_files.server_key)}
    mtls = start_receivers(tls={**tls, "client_ca_file": str(tls_files.ca)})
    with pytest.raises(grpc.RpcError):
        call(mtls.grpc_target, body, credentials=grpc.ssl_channel_credentials(ca))  # no client certificate
    client = grpc.ssl_channel_credentials(ca, tls_files.client_key.read_bytes(),
                                          tls_files.client_cert.read_bytes())
    call(mtls.grpc_target, body, credentials=client)
    span_exporter, _, _ = exporters("grpc", mtls.grpc_target, credentials=client)
    assert span_exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    span_exporter.shutdown()
    assert (rx.consumer.items(), mtls.consumer.items()) == (1, 3)


# ----------------------------------------------------------------------------------------- health, drain
def _health(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_health_follows_the_phase(start_receivers):
    rx = start_receivers(phase=Phase.STARTING)
    serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
    assert _health(rx.grpc_target) == not_serving
    rx.health.set_phase(Phase.SERVING)
    wait_until(lambda: _health(rx.grpc_target) == serving, what="SERVING")
    assert _health(rx.grpc_target, "opentelemetry.proto.collector.trace.v1.TraceService") == serving
    rx.health.set_phase(Phase.DRAINING)
    wait_until(lambda: _health(rx.grpc_target) == not_serving, what="NOT_SERVING")
    assert _health(rx.grpc_target, "opentelemetry.proto.collector.logs.v1.LogsService") == not_serving


def test_drain_refuses_new_requests_with_a_hint_and_finishes_in_flight(start_receivers):
    rx = start_receivers()
    body = trace_request(3).SerializeToString()
    rx.consumer.hold()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(call, rx.grpc_target, body)
        wait_until(lambda: rx.consumer.waiting == 1, what="request held by the next stage")
        rx.run(rx.grpc.stop_accepting())
        refused = expect_refusal(rx.grpc_target, body)
        assert refused.code() is grpc.StatusCode.UNAVAILABLE and "shutting down" in refused.details()
        assert_retry_info(refused, rx.settings.admission.retry_after_seconds)
        rx.release()
        assert in_flight.result(10) == b""
    rx.run(rx.grpc.shutdown(1.0))
    rx.run(rx.grpc.shutdown(1.0))  # idempotent
    assert rx.consumer.items() == 3


def test_a_busy_port_fails_the_start_naming_the_address(start_receivers):
    rx = start_receivers()
    taken = ReceiverSettings(grpc_listen=rx.grpc_target, http_listen=f"127.0.0.1:{rx.http.port}")
    for kind in (OtlpGrpcReceiver, OtlpHttpReceiver):
        receiver = kind(taken, rx.consumer, rx.metrics, rx.health, rx.admission)
        with pytest.raises(RuntimeError, match=r"cannot listen on 127\.0\.0\.1:"):
            rx.run(receiver.start())
        rx.run(receiver.shutdown(0.1))  # safe after a failed start
