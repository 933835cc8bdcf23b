"""The OTLP/HTTP receiver on a real port: SDK exporters, protobuf and JSON, gzip, the answers table, TLS."""

from __future__ import annotations

import gzip
import json
import ssl

import httpx
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export import SpanExportResult

from otlp_gateway.errors import OverloadedError, PermanentError, RateLimitedError
from tests.fixtures.otlp_payloads import gzip_bomb, trace_request
from tests.otlp.test_json_codec import TRACE_EXAMPLE, TRACE_ID_HEX
from tests.receiver.sdk_clients import encoded_spans, exporters, make_spans, send_logs, send_metrics

PB = {"content-type": "application/x-protobuf"}
JS = {"content-type": "application/json"}


def _post(rx, body: bytes, headers: dict, path: str = "/v1/traces", **kw) -> httpx.Response:
    return httpx.post(rx.http_url + path, content=body, headers=headers, timeout=10, **kw)


def _status(response: httpx.Response) -> status_pb2.Status:
    """The google.rpc.Status body, decoded per the response's content type."""
    if response.headers["content-type"] == "application/json":
        doc = response.json()
        return status_pb2.Status(code=doc.get("code", 0), message=doc.get("message", ""))
    assert response.headers["content-type"] == "application/x-protobuf"
    return status_pb2.Status.FromString(response.content)


# ----------------------------------------------------------------------------------------- delivery
@pytest.mark.parametrize("compression", [None, Compression.Gzip])
def test_sdk_http_exporters_deliver_and_bytes_arrive_unchanged(start_receivers, compression):
    rx = start_receivers()
    span_exporter, metric_exporter, log_exporter = exporters("http", rx.http_url, compression=compression)
    spans = make_spans(3)
    assert span_exporter.export(spans) is SpanExportResult.SUCCESS
    send_metrics(metric_exporter)
    _, last_log_bytes = send_logs(log_exporter, ["cart emptied"])
    span_exporter.shutdown()
    log_exporter.shutdown()
    batches = {b.signal: b for b in reversed(rx.consumer.snapshot())}  # the first batch of each signal
    assert batches["traces"].payload == encoded_spans(spans)
    assert batches["traces"].item_count == 3
    assert batches["logs"].payload == last_log_bytes
    metrics = {m.name: m for m in batches["metrics"].message.resource_metrics[0].scope_metrics[0].metrics}
    assert metrics["orders.placed"].sum.data_points[0].as_int == 7
    assert rx.sample("otelcol_receiver_accepted_spans_total", {"transport": "http"}) == 3


def test_protobuf_gzip_request_forwards_the_inflated_bytes(start_receivers):
    rx = start_receivers()
    body = trace_request(4).SerializeToString()
    response = _post(rx, gzip.compress(body), {**PB, "content-encoding": "gzip"})
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert rx.consumer.snapshot()[0].payload == body


@pytest.mark.parametrize("gzipped", [False, True])
def test_json_request_gets_a_json_response(start_receivers, gzipped):
    rx = start_receivers()
    body = json.dumps(TRACE_EXAMPLE).encode()
    headers = {"content-type": "application/json; charset=utf-8"}
    if gzipped:
        body, headers = gzip.compress(body), {**headers, "content-encoding": "gzip"}
    response = _post(rx, body, headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == {}
    (batch,) = rx.consumer.snapshot()
    span = ExportTraceServiceRequest.FromString(batch.payload).resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex(TRACE_ID_HEX)


def test_partial_success_in_json_and_protobuf(start_receivers):
    rx = start_receivers()
    doc = json.loads(json.dumps(TRACE_EXAMPLE))
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({**spans[0], "spanId": "abcd"})  # 2 bytes
    response = _post(rx, json.dumps(doc).encode(), JS)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 1 and "span_id must be 8 bytes" in partial["errorMessage"]
    request = trace_request(3)
    request.resource_spans[0].scope_spans[0].spans[0].trace_id = b""
    response = _post(rx, request.SerializeToString(), PB)
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 1
    assert rx.consumer.items() == 1 + 2


def test_empty_request_is_200(start_receivers):
    rx = start_receivers()
    assert _post(rx, b"", PB).status_code == 200
    assert _post(rx, b"{}", JS).json() == {}
    assert rx.consumer.snapshot() == []


# ----------------------------------------------------------------------------------------- answers table
@pytest.mark.parametrize("body, headers, expected", [
    (b"\x0a\xff\xff\xff\xff\x0f", PB, "not a valid ExportTraceServiceRequest"),
    (b"{nope", JS, "not valid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"spanId": "xyz!"}]}]}]}', JS, "must be a hex string"),
    (b"not gzip", {**PB, "content-encoding": "gzip"}, "not valid gzip"),
])
def test_undecodable_body_is_400_with_a_status_in_the_request_encoding(start_receivers, body, headers,
                                                                        expected):
    rx = start_receivers()
    response = _post(rx, body, headers)
    assert response.status_code == 400
    status = _status(response)
    assert status.code == 3 and expected in status.message
    assert response.headers["content-type"] == headers["content-type"]


def test_wrong_content_type_encoding_method_and_path(start_receivers):
    rx = start_receivers()
    body = trace_request(1).SerializeToString()
    assert _post(rx, body, {"content-type": "text/plain"}).status_code == 415
    assert _post(rx, body, {}).status_code == 415
    unsupported = _post(rx, body, {**PB, "content-encoding": "br"})
    assert unsupported.status_code == 415 and "br" in _status(unsupported).message
    get = httpx.get(rx.http_url + "/v1/traces")
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    assert _post(rx, body, PB, path="/v1/spans").status_code == 404
    assert _post(rx, body, PB, path="/").status_code == 404
    assert rx.consumer.snapshot() == []


def test_oversize_is_413_by_length_by_stream_and_by_gzip_bomb(start_receivers):
    limit = 256 * 1024
    rx = start_receivers(max_request_bytes=limit)
    big = trace_request(2000).SerializeToString()
    assert len(big) > limit
    by_length = _post(rx, big, PB)
    assert by_length.status_code == 413 and by_length.headers["connection"] == "close"

    def chunks():  # no Content-Length: the limit must hold while reading
        for i in range(0, len(big), 16 * 1024):
            yield big[i:i + 16 * 1024]

    assert _post(rx, chunks(), PB).status_code == 413
    bomb = gzip_bomb(64 * 1024 * 1024)
    assert len(bomb) < limit
    bombed = _post(rx, bomb, {**PB, "content-encoding": "gzip"})
    assert bombed.status_code == 413 and "decompressed body exceeds" in _status(bombed).message
    assert "retry-after" not in bombed.headers
    assert rx.consumer.snapshot() == []


def test_next_stage_errors_map_to_http_statuses(start_receivers):
    rx = start_receivers()
    body = trace_request(2).SerializeToString()
    rx.consumer.fail_next(OverloadedError("queue full", retry_after=2.2), RateLimitedError("slow down"),
                          PermanentError("never"), KeyError("bug"))
    overloaded = _post(rx, body, PB)
    assert overloaded.status_code == 503 and overloaded.headers["retry-after"] == "3"
    assert _status(overloaded).code == 14
    limited = _post(rx, body, JS.copy() | {"content-type": "application/x-protobuf"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    permanent = _post(rx, body, PB)  # a server stage failed: 500, never a 400 that blames the client's data
    assert permanent.status_code == 500 and _status(permanent).code == 13 and "retry-after" not in \
        permanent.headers
    unclassified = _post(rx, body, PB)  # no class: retryable, as the collector answers
    assert unclassified.status_code == 503 and "bug" not in _status(unclassified).message
    assert unclassified.headers["retry-after"] == "1"
    assert _post(rx, body, PB).status_code == 200


def test_bearer_token(start_receivers, caplog):
    secret = "another-s3cret-value"
    rx = start_receivers(bearer_token=secret)
    body = trace_request(1).SerializeToString()
    for auth in (None, "Bearer nope", secret):
        headers = PB if auth is None else {**PB, "authorization": auth}
        response = _post(rx, body, headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert secret not in response.text
    assert _post(rx, body, {**PB, "authorization": f"bearer {secret}"}).status_code == 200
    span_exporter, _, _ = exporters("http", rx.http_url, headers={"authorization": f"Bearer {secret}"})
    assert span_exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    span_exporter.shutdown()
    assert rx.consumer.items() == 3
    assert secret not in caplog.text


def test_tls_and_mutual_tls(start_receivers, tls_files, monkeypatch):
    # requests (inside the SDK's HTTP exporter) lets these variables override the exporter's CA file
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    ca = str(tls_files.ca)
    tls = {"cert_file": str(tls_files.server_cert), "key_file": str(tls_files.server_key)}
    rx = start_receivers(tls=tls)
    body = trace_request(1).SerializeToString()
    trusting = ssl.create_default_context(cafile=ca)
    assert _post(rx, body, PB, verify=trusting).status_code == 200
    with pytest.raises(httpx.ConnectError):
        _post(rx, body, PB)  # the throw-away CA is not trusted by default
    mtls = start_receivers(tls={**tls, "client_ca_file": ca})
    with pytest.raises(httpx.HTTPError):
        _post(mtls, body, PB, verify=trusting)  # no client certificate
    with_client_cert = ssl.create_default_context(cafile=ca)
    with_client_cert.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    assert _post(mtls, body, PB, verify=with_client_cert).status_code == 200
    span_exporter, _, _ = exporters("http", mtls.http_url, certificate_file=ca,
                                    client_certificate_file=str(tls_files.client_cert),
                                    client_key_file=str(tls_files.client_key))
    assert span_exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
    span_exporter.shutdown()
    assert (rx.consumer.items(), mtls.consumer.items()) == (1, 3)


def test_drain_answers_503_with_retry_after(start_receivers):
    rx = start_receivers()
    rx.run(rx.http.stop_accepting())
    response = _post(rx, trace_request(1).SerializeToString(), PB)
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.headers["connection"] == "close"
    rx.run(rx.http.shutdown(1.0))
    rx.run(rx.http.shutdown(1.0))  # idempotent
    with pytest.raises(httpx.ConnectError):
        _post(rx, b"", PB)
