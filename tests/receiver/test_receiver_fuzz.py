"""Hostile input never crashes the receiver or turns into a 500: property tests on the decoders and on the
HTTP application driven in-process (the same code uvicorn runs)."""

from __future__ import annotations

import asyncio
import gzip
import json

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.otlp.codec import ExtractionOptions, MalformedRequest, RequestCodec
from otlp_gateway.otlp.signals import SIGNAL_SPECS
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.http_app import OtlpHttpApp
from otlp_gateway.receiver.ingest import IngestCore
from otlp_gateway.receiver.settings import AdmissionSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.otlp_payloads import trace_request
from tests.receiver.conftest import RecordingConsumer

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "name", "kind",
                         "attributes", "key", "value", "stringValue", "intValue", "arrayValue", "values",
                         "kvlistValue", "startTimeUnixNano", "links", "status", "code", "resource", "x"]),
        children, max_size=5),
    max_leaves=30)


CODEC = RequestCodec(ExtractionOptions())
DECODER = DecodePool(1, ExtractionOptions())  # one for every example: the app under test borrows it


@FUZZ
@given(json_values)
def test_any_json_document_decodes_or_is_refused_cleanly(doc):
    try:
        body = json.dumps(doc).encode()
    except ValueError:  # NaN and friends are not JSON
        return
    for signal in SIGNAL_SPECS:
        try:
            decoded = CODEC.decode(signal, body, "json")
        except MalformedRequest:
            continue
        assert decoded.accepted + decoded.rejected >= 0 and (decoded.payload or not decoded.accepted)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_decode_exactly_when_upb_parses_them(body):
    for signal, spec in SIGNAL_SPECS.items():
        try:
            spec.request_type.FromString(body)
            parses = True
        except DecodeError:
            parses = False
        try:
            decoded = CODEC.decode(signal, body)
        except MalformedRequest as refused:
            assert not parses, f"{signal}: upb parses what the codec refused ({refused})"
            continue
        assert parses, f"{signal}: the codec accepted what upb refuses"
        assert decoded.accepted == 0 or decoded.payload


def _app() -> OtlpHttpApp:
    metrics = GatewayMetrics()
    admission = AdmissionController(AdmissionSettings(), metrics)
    core = IngestCore("http", RecordingConsumer(), metrics, admission, None, None, DECODER)
    return OtlpHttpApp(core, 64 * 1024, admission)


async def _request(app: OtlpHttpApp, method: str, path: str, headers: list, body: bytes) -> int:
    sent: list[dict] = []
    chunks = [body[:100], body[100:]]

    async def receive():
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message):
        sent.append(message)

    await app({"type": "http", "method": method, "path": path, "headers": headers}, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[-1]["type"] == "http.response.body"
    return sent[0]["status"]


valid_body = trace_request(3).SerializeToString()


@FUZZ
@given(method=st.sampled_from(["POST", "POST", "GET", "PUT"]),
       path=st.sampled_from(["/v1/traces", "/v1/logs", "/v1/metrics", "/v1/other", ""]),
       content_type=st.sampled_from([b"application/x-protobuf", b"application/json", b"text/plain",
                                     b"application/json; charset=utf-8", b""]),
       encoding=st.sampled_from([b"", b"gzip", b"deflate", b"zstd", b"snappy", b"lz4", b"br"]),
       body=st.one_of(st.binary(max_size=400), st.just(valid_body), st.just(gzip.compress(valid_body)),
                      st.just(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "00"}]}]}]}')))
def test_http_app_answers_every_request_without_a_server_error(method, path, content_type, encoding, body):
    headers = [(b"content-type", content_type)] + ([(b"content-encoding", encoding)] if encoding else [])
    status = asyncio.run(_request(_app(), method, path, headers, body))
    assert status in (200, 400, 404, 405, 413, 415)
    if encoding == b"br" and path in ("/v1/traces", "/v1/logs", "/v1/metrics") and method == "POST":
        assert status == 415


def test_valid_request_through_the_app_is_200():
    body = trace_request(2).SerializeToString()
    assert asyncio.run(_request(_app(), "POST", "/v1/traces", [(b"content-type", b"application/x-protobuf")],
                                body)) == 200
    assert ExportTraceServiceRequest.FromString(body).resource_spans
