"""OTLP/JSON decoding, checked against the opentelemetry-proto example payloads
(examples/{trace,metrics,logs}.json), rebuilt by hand here."""

from __future__ import annotations

import base64
import json

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.otlp.json_codec import OtlpJsonError, _reference_parse, parse_otlp_json
from tests.fixtures.otlp_payloads import logs_request, metrics_request, trace_request

TRACE_ID_HEX = "5B8EFFF798038103D269B633813FC60C"
SPAN_ID_HEX = "EEE19B7EC3C1B174"
PARENT_ID_HEX = "EEE19B7EC3C1B173"


def _attr(key: str, **value) -> dict:
    return {"key": key, "value": value}


TRACE_EXAMPLE = {
    "resourceSpans": [{
        "resource": {"attributes": [_attr("service.name", stringValue="my.service")]},
        "scopeSpans": [{
            "scope": {"name": "my.library", "version": "1.0.0",
                      "attributes": [_attr("my.scope.attribute", stringValue="some scope attribute")]},
            "spans": [{
                "traceId": TRACE_ID_HEX, "spanId": SPAN_ID_HEX, "parentSpanId": PARENT_ID_HEX,
                "name": "I'm a server span",
                "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
                "kind": 2,
                "attributes": [_attr("my.span.attr", stringValue="some value")],
            }],
        }],
    }],
}

_POINT_BASE = {"startTimeUnixNano": "1544712660300000000", "timeUnixNano": "1544712660300000000"}

METRICS_EXAMPLE = {
    "resourceMetrics": [{
        "resource": {"attributes": [_attr("service.name", stringValue="my.service")]},
        "scopeMetrics": [{
            "scope": {"name": "my.library", "version": "1.0.0",
                      "attributes": [_attr("my.scope.attribute", stringValue="some scope attribute")]},
            "metrics": [
                {"name": "my.counter", "unit": "1", "description": "I am a Counter",
                 "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [
                     {"asDouble": 5, **_POINT_BASE,
                      "attributes": [_attr("my.counter.attr", stringValue="some value")]}
                 ]}},
                {"name": "my.gauge", "unit": "1", "description": "I am a Gauge",
                 "gauge": {"dataPoints": [
                     {"asDouble": 10, "timeUnixNano": "1544712660300000000",
                      "attributes": [_attr("my.gauge.attr", stringValue="some value")]}]}},
                {"name": "my.histogram", "unit": "1", "description": "I am a Histogram",
                 "histogram": {"aggregationTemporality": 1, "dataPoints": [
                     {**_POINT_BASE, "count": 2, "sum": 2, "bucketCounts": [1, 1], "explicitBounds": [1],
                      "min": 0, "max": 2,
                      "attributes": [_attr("my.histogram.attr", stringValue="some value")],
                      "exemplars": [{"asDouble": 2, "timeUnixNano": "1544712660300000000",
                                     "traceId": TRACE_ID_HEX, "spanId": SPAN_ID_HEX}]}]}},
                {"name": "my.exponential.histogram", "unit": "1",
                 "description": "I am an Exponential Histogram",
                 "exponentialHistogram": {"aggregationTemporality": 1, "dataPoints": [
                     {**_POINT_BASE, "count": 3, "sum": 10, "scale": 0, "zeroCount": 1,
                      "positive": {"offset": 1, "bucketCounts": [0, 2]}, "min": 0, "max": 5,
                      "zeroThreshold": 0}]}},
            ],
        }],
    }],
}

LOGS_EXAMPLE = {
    "resourceLogs": [{
        "resource": {"attributes": [_attr("service.name", stringValue="my.service")]},
        "scopeLogs": [{
            "scope": {"name": "my.library", "version": "1.0.0",
                      "attributes": [_attr("my.scope.attribute", stringValue="some scope attribute")]},
            "logRecords": [{
                "timeUnixNano": "1544712660300000000", "observedTimeUnixNano": "1544712660300000000",
                "severityNumber": 10, "severityText": "Information",
                "traceId": TRACE_ID_HEX, "spanId": SPAN_ID_HEX,
                "body": {"stringValue": "Example log record"},
                "attributes": [
                    _attr("string.attribute", stringValue="some string"),
                    _attr("boolean.attribute", boolValue=True),
                    _attr("int.attribute", intValue="10"),
                    _attr("double.attribute", doubleValue=637.704),
                    _attr("array.attribute", arrayValue={"values": [{"stringValue": "many"},
                                                                     {"stringValue": "values"}]}),
                    _attr("map.attribute", kvlistValue={"values": [_attr("some.map.key",
                                                                          stringValue="some value")]}),
                ],
            }],
        }],
    }],
}


def _parse(doc, signal, message_type):
    return parse_otlp_json(json.dumps(doc).encode(), signal, message_type)


def test_trace_example_ids_are_hex_and_fields_decode():
    request = _parse(TRACE_EXAMPLE, "traces", ExportTraceServiceRequest)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == bytes.fromhex(TRACE_ID_HEX) and len(span.trace_id) == 16
    assert span.span_id == bytes.fromhex(SPAN_ID_HEX)
    assert span.parent_span_id == bytes.fromhex(PARENT_ID_HEX)
    assert span.kind == 2 and span.start_time_unix_nano == 1544712660000000000
    assert span.attributes[0].value.string_value == "some value"
    assert request.resource_spans[0].scope_spans[0].scope.version == "1.0.0"


def test_metrics_example_decodes_every_kind_and_exemplar_ids():
    request = _parse(METRICS_EXAMPLE, "metrics", ExportMetricsServiceRequest)
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    assert [m.WhichOneof("data") for m in metrics] == ["sum", "gauge", "histogram", "exponential_histogram"]
    assert metrics[0].sum.is_monotonic and metrics[0].sum.data_points[0].as_double == 5
    histogram_point = metrics[2].histogram.data_points[0]
    assert list(histogram_point.bucket_counts) == [1, 1] and histogram_point.max == 2
    assert histogram_point.exemplars[0].trace_id == bytes.fromhex(TRACE_ID_HEX)
    assert metrics[3].exponential_histogram.data_points[0].positive.bucket_counts[1] == 2


def test_logs_example_decodes_ids_and_every_attribute_type():
    request = _parse(LOGS_EXAMPLE, "logs", ExportLogsServiceRequest)
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    assert record.trace_id == bytes.fromhex(TRACE_ID_HEX) and record.span_id == bytes.fromhex(SPAN_ID_HEX)
    assert record.severity_number == 10 and record.body.string_value == "Example log record"
    values = {a.key: a.value for a in record.attributes}
    assert values["int.attribute"].int_value == 10 and values["boolean.attribute"].bool_value
    assert values["array.attribute"].array_value.values[1].string_value == "values"
    assert values["map.attribute"].kvlist_value.values[0].key == "some.map.key"


def test_lower_case_hex_int64_as_number_snake_case_and_unknown_fields():
    doc = json.loads(json.dumps(TRACE_EXAMPLE))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["traceId"] = TRACE_ID_HEX.lower()
    span["startTimeUnixNano"] = 1544712660000000000
    span["end_time_unix_nano"] = span.pop("endTimeUnixNano")
    span["someFutureField"] = {"nested": [1, 2]}
    doc["unknownTopLevel"] = True
    parsed = _parse(doc, "traces", ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans[0]
    assert parsed.trace_id == bytes.fromhex(TRACE_ID_HEX)
    assert parsed.start_time_unix_nano == 1544712660000000000
    assert parsed.end_time_unix_nano == 1544712661000000000


def test_wrong_length_hex_decodes_so_validation_can_reject_the_item():
    doc = json.loads(json.dumps(TRACE_EXAMPLE))
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "ab" * 15
    span = _parse(doc, "traces", ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans[0]
    assert len(span.trace_id) == 15


@pytest.mark.parametrize("body, expected", [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b"\xff\xfe\x00", "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "not hex!"}]}]}]}', "must be a hex string"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "a b"}]}]}]}', "must be a hex string"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
     "ExportTraceServiceRequest"),
    (b'{"resourceSpans": {"oops": 1}}', "ExportTraceServiceRequest"),
])
def test_bad_json_is_refused_with_a_reason(body, expected):
    with pytest.raises(OtlpJsonError, match=expected):
        parse_otlp_json(body, "traces", ExportTraceServiceRequest)


def _otlp_json_of(message) -> dict:
    """What an OTLP/JSON client sends for ``message``: camelCase, integer enums, hex ids."""
    doc = json_format.MessageToDict(message, use_integers_for_enums=True)

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId"):
                    node[key] = base64.b64decode(value).hex().upper()
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return doc


@pytest.mark.parametrize("signal, message_type, doc", [
    ("traces", ExportTraceServiceRequest, TRACE_EXAMPLE),
    ("metrics", ExportMetricsServiceRequest, METRICS_EXAMPLE),
    ("logs", ExportLogsServiceRequest, LOGS_EXAMPLE),
    ("traces", ExportTraceServiceRequest, _otlp_json_of(trace_request(20))),
    ("logs", ExportLogsServiceRequest, _otlp_json_of(logs_request(20))),
    ("metrics", ExportMetricsServiceRequest, _otlp_json_of(metrics_request(4, 5))),
])
def test_fast_decoder_equals_the_json_format_reference(signal, message_type, doc):
    fast = parse_otlp_json(json.dumps(doc).encode(), signal, message_type)
    reference = _reference_parse(json.loads(json.dumps(doc)), signal, message_type)
    assert fast == reference
    assert fast.SerializeToString() == reference.SerializeToString()


def test_round_trip_through_otlp_json_is_lossless():
    for request, signal in ((trace_request(5), "traces"), (logs_request(5), "logs"),
                            (metrics_request(2, 3), "metrics")):
        body = json.dumps(_otlp_json_of(request)).encode()
        assert parse_otlp_json(body, signal, type(request)) == request


def test_what_the_fast_decoder_is_unsure_of_goes_to_the_reference():
    doc = json.loads(json.dumps(TRACE_EXAMPLE))
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    span["kind"] = "SPAN_KIND_CLIENT"            # enum by name: fast path knows it
    span["status"] = {"code": "STATUS_CODE_NOT_A_CODE"}  # unknown enum name: ignored by the reference
    span["droppedAttributesCount"] = 3.0         # integral float
    parsed = _parse(doc, "traces", ExportTraceServiceRequest).resource_spans[0].scope_spans[0].spans[0]
    assert parsed.kind == 3 and parsed.dropped_attributes_count == 3 and parsed.status.code == 0
    assert parsed.trace_id == bytes.fromhex(TRACE_ID_HEX)
