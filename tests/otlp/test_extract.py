"""What extraction gives, by example: per-stream canonical events of spans and logs (through the codec's
wire path) and per-stream values of metric points (on the parsed message)."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValueList

from detectors.canonical import canonical_log, canonical_span
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec
from otlp_gateway.otlp.events import string_value
from otlp_gateway.otlp.values import any_value, render_body
from tests.otlp.otlp_data import LogSpec, SpanSpec, kv, logs_request, traces_request

CODEC = RequestCodec(ExtractionOptions())


def test_spans_grouped_per_stream_in_order_with_canonical_events_and_ids() -> None:
    spans = [SpanSpec("a", "GET /x", 5_000_000, attrs={"k": "v"}, trace_id=b"\x01" * 16, span_id=b"\x02" * 8,
                      start_ns=100),
             SpanSpec("a", "GET /y", 7, status=2, trace_id=b"\x03" * 16, span_id=b"\x04" * 8, start_ns=200),
             SpanSpec("b", "GET /x", 9, trace_id=b"\x05" * 16, span_id=b"\x06" * 8, start_ns=300),
             SpanSpec("a", "GET /x", 11, attrs={"driftlock.stream_id": "custom"}, trace_id=b"\x07" * 16,
                      span_id=b"\x08" * 8, start_ns=400)]
    ex = CODEC.decode("traces", traces_request(spans).SerializeToString()).extraction
    assert ex is not None
    assert list(ex.streams) == ["traces/a/GET /x", "traces/a/GET /y", "traces/b/GET /x", "custom"]
    first = ex.streams["traces/a/GET /x"]
    assert first.events == [canonical_span("GET /x", 2, 0, 5_000_000, {"k": "v"})]
    assert (first.trace_ids, first.span_ids, first.times, first.positions) == \
        ([b"\x01" * 16], [b"\x02" * 8], [100], [0])
    assert ex.streams["traces/a/GET /y"].events == [canonical_span("GET /y", 2, 2, 7, {})]
    assert ex.streams["custom"].positions == [3]
    assert ex.event_count == 4
    assert ex.streams["traces/b/GET /x"].key.service == "b"


def test_logs_use_scope_name_and_render_non_string_bodies_stably() -> None:
    req = logs_request([LogSpec("svc", "app.db", "disk full", severity=17, attrs={"n": 3}, time_ns=5)])
    rec = req.resource_logs[0].scope_logs[0].log_records.add(severity_number=9, observed_time_unix_nano=7)
    rec.body.kvlist_value.CopyFrom(KeyValueList(values=[kv("b", 2), kv("a", "x")]))
    ex = CODEC.decode("logs", req.SerializeToString()).extraction
    assert ex is not None
    batch = ex.streams["logs/svc/app.db"]
    assert batch.events[0] == canonical_log("disk full", 17, {"n": 3})
    assert batch.events[1] == canonical_log('{"a":"x","b":2}', 9, {})
    assert batch.times == [5, 7]
    assert render_body(AnyValue(bytes_value=b"\x00\xff")) == '"00ff"'
    assert render_body(AnyValue()) == ""


def test_a_custom_stream_key_reads_item_then_resource_attributes() -> None:
    codec = RequestCodec(ExtractionOptions(("service.name", "http.route", "k8s.pod.name")))
    ids = {"trace_id": b"\x01" * 16, "span_id": b"\x02" * 8}
    spans = [SpanSpec("a", "GET /x", 5, attrs={"http.route": "/x"}, **ids),
             SpanSpec("a", "GET /x", 5, attrs={"http.route": "/y", "k8s.pod.name": "own"}, **ids),
             SpanSpec("a", "GET /z", 5, **ids)]
    payload = traces_request(spans, {"k8s.pod.name": "pod-1"}).SerializeToString()
    ex = codec.decode("traces", payload).extraction
    assert ex is not None
    assert list(ex.streams) == ["a//x/pod-1", "a//y/own", "a/-/pod-1"]
    assert [b.positions for b in ex.streams.values()] == [[0], [1], [2]]


def test_metric_points_become_values_with_histogram_and_summary_sub_streams() -> None:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", "svc"))
    metrics = rm.scope_metrics.add().metrics
    g = metrics.add(name="cpu")
    g.gauge.data_points.add(as_double=0.5, time_unix_nano=1)
    g.gauge.data_points.add(as_int=3, time_unix_nano=2)
    h = metrics.add(name="lat")
    h.histogram.data_points.add(count=4, sum=10.0, time_unix_nano=3)
    s = metrics.add(name="q")
    p = s.summary.data_points.add(count=2, sum=5.0, time_unix_nano=4)
    p.quantile_values.add(quantile=0.99, value=4.5)
    decoded = CODEC.decode("metrics", req.SerializeToString())
    assert decoded.accepted == 4 and decoded.extraction is not None
    values = {sid: b.events for sid, b in decoded.extraction.streams.items()}
    assert values == {"metrics/svc/cpu": [0.5, 3.0], "metrics/svc/lat:count": [4.0],
                      "metrics/svc/lat:sum": [10.0],
                      "metrics/svc/lat:mean": [2.5], "metrics/svc/q:count": [2.0], "metrics/svc/q:sum": [5.0],
                      "metrics/svc/q:q0.99": [4.5]}
    assert all(pos == -1 for b in decoded.extraction.streams.values() for pos in b.positions)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 16383, 16384, 20000])
def test_a_string_value_read_off_the_payload_is_the_parsed_one(size: int) -> None:
    text = ("é" * size)[:size // 2] + "x" * (size - size // 2)
    others = [AnyValue(int_value=size), AnyValue(bytes_value=b"\x0a\x01x"),
              AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=text)]))]
    for value in [AnyValue(string_value=text), *others]:
        raw = b"pad" + value.SerializeToString() + b"pad"
        read = string_value(raw, 3, len(raw) - 6)
        assert read is None or read == any_value(value)
        simple = value.WhichOneof("value") == "string_value" and len(text.encode()) < 16384
        assert (read is not None) == simple
    twice = AnyValue(string_value="a").SerializeToString() + AnyValue(string_value="b").SerializeToString()
    assert string_value(twice, 0, len(twice)) is None  # two fields: parsed (the last one wins)
