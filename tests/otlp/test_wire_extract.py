"""The wire-format fast path must give exactly what the reference path (parse + per-item fields) gives."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from detectors.canonical import canonical_log
from otlp_gateway.otlp.extract import Extraction, Extractor, parse_request
from otlp_gateway.otlp.wire import SpanFragmentMemo, WireSpanExtractor, warm_up
from otlp_gateway.streams.routing import StreamRouter
from tests.otlp.otlp_data import (
    LogSpec,
    SpanSpec,
    logs_request,
    normal_logs,
    normal_spans,
    traces_request,
)

DEFAULT_KEY = ["signal", "service.name", "name"]
KEYS = st.sampled_from(["http.method", "http.route", "user_id", "n", "flag", "note", "requestId", "x.y",
                        "é.clé", "", "service.name", "a\nb", "token"])
SCALARS = st.one_of(
    st.text(max_size=40), st.integers(-(2**63), 2**63 - 1), st.integers(-1100, 1100), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e16, 1e16), st.floats(-2.0, 2.0),
    st.sampled_from([0.0, -0.0, 1e-3, 9.99e-4, 1e15, 999999999999999.9, 5e-324, 0.1, 123.0, -1.5]),
    st.binary(max_size=6), st.none(),
    st.sampled_from(["GET", "line1\nline2", "a\rb", "10.0.0.7", "日本語 42", "user@example.com",
                     "3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab", "x" * 60]),
)


def any_value(value: object) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    if isinstance(value, dict):
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=any_value(v))
                                                          for k, v in value.items()]))
    return AnyValue(string_value=str(value))


VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(KEYS, SCALARS, max_size=3))
ATTRS = st.lists(st.tuples(KEYS, VALUES), max_size=7)  # lists: repeated keys happen (the last one wins)


@st.composite
def spans(draw: st.DrawFn) -> dict:
    return {
        "name": draw(st.sampled_from(["GET /a", "", "SELECT 1", "span 12345", "ünï", "a\nb"])),
        "kind": draw(st.sampled_from([0, 1, 2, 3, 5, 6, 7, -1, 2**31 - 1])),
        "status": draw(st.sampled_from([None, 0, 1, 2, 3, -5])),
        "start": draw(st.sampled_from([0, 1, 10**18, 2**64 - 1])),
        "duration": draw(st.sampled_from([0, 999, 1000, 1_500_000, -5, 10**12, 2**64 - 1])),
        "attrs": draw(ATTRS),
        "ids": draw(st.booleans()),
    }


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        service = draw(st.sampled_from([None, "checkout", "", "cart", 7]))
        if service is not None:
            rs.resource.attributes.append(KeyValue(key="service.name", value=any_value(service)))
        if draw(st.booleans()):
            rs.resource.attributes.append(KeyValue(key="host.name", value=any_value("node-1")))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.sampled_from(["", "lib"]))
            for spec in draw(st.lists(spans(), max_size=5)):
                span = ss.spans.add(name=spec["name"], kind=spec["kind"], start_time_unix_nano=spec["start"],
                                    end_time_unix_nano=(spec["start"] + spec["duration"]) % 2**64,
                                    trace_state="x", parent_span_id=b"\x01" * 8)
                if spec["ids"]:
                    span.trace_id, span.span_id = bytes(range(16)), bytes(range(8))
                if spec["status"] is not None:
                    span.status.code = spec["status"]
                    span.status.message = "m"
                span.events.add(name="ev", time_unix_nano=3)
                for key, value in spec["attrs"]:
                    span.attributes.append(KeyValue(key=key, value=any_value(value)))
    return req


def reference(payload: bytes) -> Extraction:
    return Extractor(StreamRouter(DEFAULT_KEY)).extract("traces", parse_request("traces", payload))


def assert_same(fast: Extraction, ref: Extraction) -> None:
    assert fast.event_count == ref.event_count
    assert list(fast.streams) == list(ref.streams)
    for sid, batch in ref.streams.items():
        got = fast.streams[sid]
        assert got.key == batch.key
        assert got.events == batch.events
        assert (got.trace_ids, got.span_ids, got.times, got.positions) == \
            (batch.trace_ids, batch.span_ids, batch.times, batch.positions)


# Small memo tables on purpose: hits, misses and clears all happen across examples.
WIRE = WireSpanExtractor(StreamRouter(DEFAULT_KEY),
                         SpanFragmentMemo(slots=256, key_slots=64, arena_bytes=4096))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests())
def test_fast_path_matches_the_reference_on_generated_requests(req: ExportTraceServiceRequest) -> None:
    payload = req.SerializeToString()
    found = WIRE.extract(payload)
    assert found is not None, "the walker declined a well-formed request"
    assert_same(Extraction("traces", None, *found), reference(payload))


@settings(max_examples=60, deadline=None)
@given(req=requests(), junk=st.sampled_from([b"\xa2\x06\x05hello", b"\xf8\x07\x2a", b"\xf1\x07" + b"\x00" * 8,
                                             b"\xfd\x07\x01\x02\x03\x04"]))
def test_unknown_fields_everywhere_are_skipped_like_protobuf_does(req: ExportTraceServiceRequest,
                                                                  junk: bytes) -> None:
    # unknown fields (numbers 100, 127, 126, 127 with every wire type) inside each span and at top level
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.MergeFromString(junk)
    payload = req.SerializeToString() + junk
    found = WIRE.extract(payload)
    assert found is not None
    assert_same(Extraction("traces", None, *found), reference(payload))


def test_the_benchmark_shaped_workload_matches_and_memoizes() -> None:
    spans_ = [SpanSpec("svc", f"GET /r{i % 3}", 1_000_000 + 7919 * i, status=i % 3,
                       attrs={"http.status_code": 200, "net.peer.port": 30000 + i, "ratio": i / 7,
                              "http.route": f"/r{i % 5}", "session": f"s{i}", "ok": i % 2 == 0},
                       trace_id=struct.pack(">QQ", i, i), span_id=struct.pack(">Q", i), start_ns=10**18 + i)
              for i in range(400)]
    payload = traces_request(spans_, {"k8s.pod.name": "p"}).SerializeToString()
    wire = WireSpanExtractor(StreamRouter(DEFAULT_KEY))
    for _ in range(2):
        found = wire.extract(payload)
        assert found is not None
        assert_same(Extraction("traces", None, *found), reference(payload))
    # classes, not values: ports, ratios and sessions add a handful of fragments, not one per span
    assert wire.memo.meta[0] < 60


@pytest.mark.parametrize("payload", [b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05\x12\x03\x12\x01", b"\x0b",
                                     b"\x0a\x02\x0a\x00\x0a\x02\x0a\x00"[:5]])
def test_malformed_bytes_are_declined_not_misread(payload: bytes) -> None:
    assert WIRE.extract(payload) is None


def test_merged_messages_and_explicit_stream_ids_take_the_reference_path() -> None:
    req = traces_request([SpanSpec("a", "x", 5)])
    twice = req.SerializeToString()
    # a second Resource inside the same ResourceSpans is merged by protobuf: the walker declines
    inner = req.resource_spans[0].resource.SerializeToString()
    rs = req.resource_spans[0].SerializeToString() + b"\x0a" + bytes([len(inner)]) + inner
    assert WIRE.extract(b"\x0a" + bytes([len(rs)]) + rs) is None
    explicit = traces_request([SpanSpec("a", "x", 5, attrs={"driftlock.stream_id": "s"})]).SerializeToString()
    assert WIRE.extract(explicit) is None
    extractor = Extractor(StreamRouter(DEFAULT_KEY))
    assert list(extractor.extract_payload("traces", explicit).streams) == ["s"]
    assert extractor.extract_payload("traces", twice).message is None  # the fast path does not parse
    custom = Extractor(StreamRouter(["service.name", "http.route"]))
    assert custom.wire_spans.extract(twice) is None


def test_status_messages_merge_and_repeated_scalars_keep_the_last_value() -> None:
    req = traces_request([SpanSpec("a", "first", 5, status=1)])
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.MergeFromString(b"\x2a\x04last" + b"\x7a\x02\x08\x01" + b"\x30\x03")  # name, status w/o code, kind
    payload = req.SerializeToString()
    found = WIRE.extract(payload)
    assert found is not None
    assert_same(Extraction("traces", None, *found), reference(payload))
    assert list(found[0]) == ["traces/a/last"]


def test_tables_grow_for_large_requests() -> None:
    spans_ = [SpanSpec("svc", "op", 10, attrs={f"k{j}": j for j in range(40)}) for _ in range(300)]
    payload = traces_request(spans_).SerializeToString()
    wire = WireSpanExtractor(StreamRouter(DEFAULT_KEY))
    found = wire.extract(payload)
    assert found is not None and found[1] == 300
    assert_same(Extraction("traces", None, *found), reference(payload))
    assert np.all(wire._spans[:300, 10] == 40)


def test_classes_whose_tag_and_value_xor_alike_stay_apart() -> None:
    # 5e-324 (bits 1) and the int 2 once shared a memo slot: the hash folded tag ^ value
    spans_ = [SpanSpec("svc", "op", 10, attrs={"k": v}) for v in (2, 5e-324, 3, 1e-300, True, 0, 1)]
    payload = traces_request(spans_).SerializeToString()
    found = WireSpanExtractor(StreamRouter(DEFAULT_KEY)).extract(payload)
    assert found is not None
    assert_same(Extraction("traces", None, *found), reference(payload))


def test_value_classes_hold_at_every_magnitude_boundary() -> None:
    """Values sharing a memo class must render alike: one request puts every boundary under one key."""
    doubles = [s * m * 10.0**e for e in range(-9, 22) for m in (1.0, 1.234, 9.999999) for s in (1, -1)]
    doubles += [0.0, -0.0, 1e-3, 9.99e-4, 1e-4, 9.9e-5, 1e15, 999999999999999.9, 1e16, 5e-324,
                float("inf"), float("-inf"), float("nan"), 0.1, 2.5]
    ints = [s * v for v in (0, 1, 9, 10, 100, 123, 999, 1000, 1234, 9999, 10**5, 10**18, 2**63 - 1)
            for s in (1, -1)] + [-(2**63)]
    values = doubles + ints + [True, False, "", "0", "1000", "x\ny", b"", b"\x00", None]
    spans_ = [SpanSpec("svc", "op", 10, attrs={"v": v} if v is not None else {}) for v in values]
    req = traces_request(spans_)
    req.resource_spans[0].scope_spans[0].spans[-1].attributes.add(key="v")  # a KeyValue without a value
    payload = req.SerializeToString()
    wire = WireSpanExtractor(StreamRouter(DEFAULT_KEY))
    for _ in range(2):  # the second run is served from the memo
        found = wire.extract(payload)
        assert found is not None
        assert_same(Extraction("traces", None, *found), reference(payload))


# --- log records ---------------------------------------------------------------------------------------
BODY_TEXTS = st.sampled_from(["GET /users/1234 took 35 ms", "disk full on /dev/sda1", "ok", "",
                              "req 3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab from 10.0.0.7"])
BODIES = st.one_of(st.none(), SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(KEYS, SCALARS, max_size=3), BODY_TEXTS)


@st.composite
def log_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rl = req.resource_logs.add()
        service = draw(st.sampled_from([None, "checkout", "", "cart"]))
        if service is not None:
            rl.resource.attributes.append(KeyValue(key="service.name", value=any_value(service)))
        for _ in range(draw(st.integers(0, 2))):
            sl = rl.scope_logs.add()
            scope = draw(st.sampled_from([None, "", "app.db", "ünï"]))
            if scope is not None:
                sl.scope.name = scope
                sl.scope.version = "1"
            for _ in range(draw(st.integers(0, 5))):
                rec = sl.log_records.add(time_unix_nano=draw(st.sampled_from([0, 5, 2**64 - 1])),
                                         observed_time_unix_nano=draw(st.sampled_from([0, 7])),
                                         severity_number=draw(st.sampled_from([0, 9, 17, 24, 25, -3])),
                                         severity_text="INFO", flags=1)
                body = draw(BODIES)
                if body is not None or draw(st.booleans()):
                    rec.body.CopyFrom(any_value(body))
                if draw(st.booleans()):
                    rec.trace_id, rec.span_id = bytes(range(16)), bytes(range(8))
                for key, value in draw(ATTRS):
                    rec.attributes.append(KeyValue(key=key, value=any_value(value)))
    return req


def log_reference(payload: bytes) -> Extraction:
    return Extractor(StreamRouter(DEFAULT_KEY)).extract("logs", parse_request("logs", payload))


WIRE_LOGS = WireSpanExtractor(StreamRouter(DEFAULT_KEY), WIRE.memo, signal="logs")  # memo shared with spans


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=log_requests())
def test_log_fast_path_matches_the_reference_on_generated_requests(req: ExportLogsServiceRequest) -> None:
    payload = req.SerializeToString()
    found = WIRE_LOGS.extract(payload)
    assert found is not None, "the walker declined a well-formed request"
    assert_same(Extraction("logs", None, *found), log_reference(payload))


def test_log_bodies_of_every_kind_render_like_the_reference() -> None:
    bodies = [None, "", "took 35 ms", "took 36 ms", 5, 6, 12345, -12345, 0.5, 1234.5, -0.0, 1e-5,
              float("nan"), True, b"\x00\xff", b"\xde\xad\xbe\xef\x01\x02\x03\x04\x05", [1, "a"],
              {"b": 2, "a": "x"}]
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    sl.scope.name = "s"
    for body in bodies * 2:  # the second half comes from the memo
        rec = sl.log_records.add(severity_number=9, observed_time_unix_nano=3)
        if body is not None:
            rec.body.CopyFrom(any_value(body))
    payload = req.SerializeToString()
    found = WireSpanExtractor(StreamRouter(DEFAULT_KEY), signal="logs").extract(payload)
    assert found is not None
    assert_same(Extraction("logs", None, *found), log_reference(payload))
    assert found[0]["logs/unknown_service/s"].times == [3] * len(bodies) * 2


def test_log_requests_take_the_fast_path_through_the_extractor() -> None:
    req = logs_request([LogSpec("svc", "app", "disk full", attrs={"n": 3}, time_ns=5)])
    extractor = Extractor(StreamRouter(DEFAULT_KEY))
    ex = extractor.extract_payload("logs", req.SerializeToString())
    assert ex.message is None and list(ex.streams) == ["logs/svc/app"]
    assert ex.streams["logs/svc/app"].events == [canonical_log("disk full", 9, {"n": 3})]


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_mutated_requests_are_declined_or_read_exactly_like_protobuf(signal: str) -> None:
    """Random byte flips and truncations: the walker never crashes, and whenever protobuf accepts the
    bytes and the walker does too, both read the same. (Bytes protobuf rejects, for example invalid UTF-8
    inside a field the walker skips, may still be walked: the receiver parses every request first.)"""
    rng = random.Random(11)
    if signal == "traces":
        base, wire, ref = traces_request(normal_spans(12, 1)).SerializeToString(), WIRE, reference
    else:
        base, wire, ref = logs_request(normal_logs(12, 1)).SerializeToString(), WIRE_LOGS, log_reference
    compared = 0
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        payload = bytes(data[:rng.randrange(len(data))] if rng.random() < 0.2 else data)
        found = wire.extract(payload)
        try:
            expected = ref(payload)
        except DecodeError:
            continue
        if found is not None:
            assert_same(Extraction(signal, None, *found), expected)
            compared += 1
    assert compared > 20


def test_warm_up_runs_both_fast_paths() -> None:
    warm_up()  # raises if either walker declined its request
