"""The codec's wire path must give exactly what the reference extraction (``tests/otlp/reference.py``:
parse, then per-item fields) gives: every stream-key configuration, explicit stream ids on items and
resources, the detection caps, merged messages, invalid items, small memo tables that clear and grow."""

from __future__ import annotations

import random
import struct

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from detectors.canonical import canonical_log
from otlp_gateway.otlp.codec import DecodedRequest, ExtractionOptions, MalformedRequest, RequestCodec, warm_up
from otlp_gateway.otlp.extract import Extraction, parse_request
from otlp_gateway.otlp.memo import FragmentMemo
from otlp_gateway.otlp.validate import VALIDATORS
from otlp_gateway.streams.routing import StreamRouter
from tests.otlp.otlp_data import LogSpec, SpanSpec, logs_request, normal_logs, normal_spans, traces_request
from tests.otlp.reference import ReferenceExtractor
from tests.otlp.wire_bytes import length_delimited

DEFAULT_KEY = ("signal", "service.name", "name")
STREAM_KEYS = [DEFAULT_KEY, ("service.name", "http.route"),
               ("signal", "name", "service.name", "k8s.pod.name"), ("http.route",),
               ("name", "driftlock.stream_id", "flag")]
"""Stream-key configurations: the default, attribute parts looked up on the item then the resource, a key
naming the explicit attribute itself."""
KEYS = st.sampled_from(["http.method", "http.route", "user_id", "n", "flag", "note", "requestId", "x.y",
                        "é.clé", "", "service.name", "a\nb", "token", "k8s.pod.name", "driftlock.stream_id",
                        "user_id\n", "x.ID", "XID", "aToken", "Session", "k\r"])
"""Keys: identifier or not by the regexes' edge cases (``$`` before a final newline, case), non-ASCII."""
SCALARS = st.one_of(
    st.text(max_size=40), st.integers(-(2**63), 2**63 - 1), st.integers(-1100, 1100), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e16, 1e16), st.floats(-2.0, 2.0),
    st.sampled_from([0.0, -0.0, 1e-3, 9.99e-4, 1e15, 999999999999999.9, 5e-324, 0.1, 123.0, -1.5]),
    st.binary(max_size=6), st.none(),
    st.sampled_from(["GET", "line1\nline2", "a\rb", "10.0.0.7", "日本語 42", "user@example.com",
                     "3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab", "x" * 60, "", "s1", "s2", "x" * 48, "x" * 49,
                     "1 " * 25, "w " * 3000, "id 12 \r\n", "é" * 3]),
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
CAPS = st.sampled_from([(128, 1024), (128, 1024), (0, 1024), (1, 1024), (3, 1024), (128, 0), (128, 2),
                        (2, 4)])


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


def resource_attributes(draw: st.DrawFn, kvs: list[KeyValue]) -> None:
    service = draw(st.sampled_from([None, "checkout", "", "cart", 7]))
    if service is not None:
        kvs.append(KeyValue(key="service.name", value=any_value(service)))
    for key, value in draw(st.lists(st.tuples(st.sampled_from(["host.name", "k8s.pod.name", "http.route",
                                                               "driftlock.stream_id"]),
                                              st.sampled_from(["node-1", "", "r1", 0, 5, None])),
                                    max_size=2)):
        kvs.append(KeyValue(key=key, value=any_value(value)))


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        resource_attributes(draw, rs.resource.attributes)
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            ss.scope.name = draw(st.sampled_from(["", "lib"]))
            for spec in draw(st.lists(spans(), max_size=5)):
                span = ss.spans.add(name=spec["name"], kind=spec["kind"], start_time_unix_nano=spec["start"],
                                    end_time_unix_nano=(spec["start"] + spec["duration"]) % 2**64,
                                    trace_state="x", parent_span_id=b"\x01" * 8)
                if spec["ids"]:
                    span.trace_id, span.span_id = bytes(range(1, 17)), bytes(range(1, 9))
                if spec["status"] is not None:
                    span.status.code = spec["status"]
                    span.status.message = "m"
                span.events.add(name="ev", time_unix_nano=3)
                for key, value in spec["attrs"]:
                    span.attributes.append(KeyValue(key=key, value=any_value(value)))
    return req


BODY_TEXTS = st.sampled_from(["GET /users/1234 took 35 ms", "disk full on /dev/sda1", "ok", "",
                              "req 3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab from 10.0.0.7"])
BODIES = st.one_of(st.none(), SCALARS, st.lists(SCALARS, max_size=3),
                   st.dictionaries(KEYS, SCALARS, max_size=3), BODY_TEXTS)


@st.composite
def log_requests(draw: st.DrawFn) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rl = req.resource_logs.add()
        resource_attributes(draw, rl.resource.attributes)
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


# --- the comparison -----------------------------------------------------------------------------------
_CODECS: dict[tuple, RequestCodec] = {}


def codec_for(stream_key: tuple[str, ...] = DEFAULT_KEY, caps: tuple[int, int] = (128, 1024)) -> RequestCodec:
    """One codec per configuration, with small memo tables on purpose: hits, misses, clears and growth
    all happen across examples."""
    key = (stream_key, caps)
    if key not in _CODECS:
        _CODECS[key] = RequestCodec(ExtractionOptions(stream_key, *caps),
                                    FragmentMemo(slots=256, key_slots=64, arena_bytes=4096))
    return _CODECS[key]


def reference(signal: str, payload: bytes, stream_key: tuple[str, ...] = DEFAULT_KEY,
              caps: tuple[int, int] = (128, 1024)) -> tuple[Extraction, dict[str, int]]:
    ref = ReferenceExtractor(StreamRouter(list(stream_key)), *caps)
    extraction = ref.extract(signal, parse_request(signal, payload))
    capped = {"item_attributes": ref.capped_item_attributes, "request_keys": ref.capped_request_keys}
    return extraction, {reason: n for reason, n in capped.items() if n}


def assert_same(fast: Extraction | None, ref: Extraction) -> None:
    assert fast is not None
    assert fast.event_count == ref.event_count
    assert list(fast.streams) == list(ref.streams)
    for sid, batch in ref.streams.items():
        got = fast.streams[sid]
        assert got.key == batch.key
        assert got.events == batch.events
        assert (got.trace_ids, got.span_ids, got.times, got.positions) == \
            (batch.trace_ids, batch.span_ids, batch.times, batch.positions)


def decode_and_compare(signal: str, payload: bytes, stream_key: tuple[str, ...] = DEFAULT_KEY,
                       caps: tuple[int, int] = (128, 1024)) -> DecodedRequest:
    """Decode with the codec; check the verdict against the validator and the events against the
    reference on the bytes the codec forwards."""
    decoded = codec_for(stream_key, caps).decode(signal, payload)  # type: ignore[arg-type]
    message = parse_request(signal, payload)
    verdict = VALIDATORS[signal](message)
    assert (decoded.accepted, decoded.rejected, decoded.rejection) == \
        (verdict.accepted, verdict.rejected, verdict.message)
    if verdict.accepted == 0:
        assert decoded.payload == b"" and decoded.extraction is None
        return decoded
    assert decoded.payload == (message.SerializeToString() if verdict.rejected else payload)
    expected, capped = reference(signal, decoded.payload, stream_key, caps)
    assert_same(decoded.extraction, expected)
    assert decoded.capped == capped
    return decoded


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests(), stream_key=st.sampled_from(STREAM_KEYS), caps=CAPS)
def test_fast_path_matches_the_reference_on_generated_requests(req: ExportTraceServiceRequest,
                                                               stream_key: tuple[str, ...],
                                                               caps: tuple[int, int]) -> None:
    decode_and_compare("traces", req.SerializeToString(), stream_key, caps)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=log_requests(), stream_key=st.sampled_from(STREAM_KEYS), caps=CAPS)
def test_log_fast_path_matches_the_reference_on_generated_requests(req: ExportLogsServiceRequest,
                                                                   stream_key: tuple[str, ...],
                                                                   caps: tuple[int, int]) -> None:
    decode_and_compare("logs", req.SerializeToString(), stream_key, caps)


@settings(max_examples=60, deadline=None)
@given(req=requests(), junk=st.sampled_from([b"\xa2\x06\x05hello", b"\xf8\x07\x2a", b"\xf1\x07" + b"\x00" * 8,
                                             b"\xfd\x07\x01\x02\x03\x04", b"\xa3\x06\x08\x01\xa4\x06",
                                             b"\x28\x07", b"\x48\x01"]))
def test_unknown_fields_and_mistyped_known_fields_are_skipped_like_protobuf_does(
        req: ExportTraceServiceRequest, junk: bytes) -> None:
    # unknown fields (numbers 100, 127, 126, 127 with every wire type, a group) and known fields with
    # another wire type (name and attributes as varints: upb keeps them as unknown fields) in every span
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.MergeFromString(junk)
    decode_and_compare("traces", req.SerializeToString() + junk)




@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests(), data=st.data())
def test_merged_messages_are_read_as_protobuf_merges_them(req: ExportTraceServiceRequest,
                                                          data: st.DataObject) -> None:
    """A second resource, scope, status or attribute value (protobuf merges them): the bytes forwarded are
    still the client's, and the events are those of the merged request."""
    for rs in req.resource_spans:
        if data.draw(st.booleans()):  # a second Resource: its attributes are appended to the first's
            extra = KeyValue(key=data.draw(st.sampled_from(["service.name", "k8s.pod.name", "x"])),
                             value=any_value(data.draw(st.sampled_from(["merged", 3, ""]))))
            rs.MergeFromString(length_delimited(1, length_delimited(1, extra.SerializeToString())))
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.trace_id, span.span_id = b"\x01" * 16, b"\x01" * 8  # all valid: nothing dropped
                if data.draw(st.booleans()):  # a second status
                    span.MergeFromString(length_delimited(15, b"\x18\x02"))
                if data.draw(st.booleans()):  # an attribute whose value comes twice (AnyValues merge)
                    first = any_value(data.draw(SCALARS)).SerializeToString()
                    second = any_value(data.draw(VALUES)).SerializeToString()
                    kv = b"".join((length_delimited(1, b"http.route"), length_delimited(2, first),
                                   length_delimited(2, second)))
                    span.MergeFromString(length_delimited(9, kv))
    payload = req.SerializeToString()
    decoded = decode_and_compare("traces", payload, data.draw(st.sampled_from(STREAM_KEYS)))
    assert decoded.rejected == 0 and (decoded.accepted == 0 or decoded.payload == payload)


def test_a_log_body_that_comes_twice_is_merged_like_protobuf() -> None:
    req = logs_request([LogSpec("svc", "app", "first body", attrs={"n": 3}, time_ns=5)])
    record = req.resource_logs[0].scope_logs[0].log_records[0]
    record.MergeFromString(length_delimited(5, any_value([1, "x"]).SerializeToString()))
    record.MergeFromString(length_delimited(5, any_value(["y"]).SerializeToString()))
    payload = req.SerializeToString()
    decoded = decode_and_compare("logs", payload)
    assert decoded.payload == payload


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests(), data=st.data())
def test_invalid_items_are_dropped_and_the_rest_extracted(req: ExportTraceServiceRequest,
                                                          data: st.DataObject) -> None:
    bad_ids = st.sampled_from([(b"", b"\x01" * 8), (b"\x01" * 15, b"\x01" * 8), (bytes(16), b"\x01" * 8),
                               (b"\x01" * 16, bytes(8)), (b"\x01" * 16, b"\x01" * 9), None])
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                ids = data.draw(bad_ids)
                if ids is None:
                    span.parent_span_id = data.draw(st.sampled_from([b"", b"\x01" * 8, b"\x01" * 3]))
                    span.trace_id, span.span_id = b"\x02" * 16, b"\x02" * 8
                else:
                    span.trace_id, span.span_id = ids
    decode_and_compare("traces", req.SerializeToString(), data.draw(st.sampled_from(STREAM_KEYS)))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=log_requests(), data=st.data())
def test_invalid_log_records_are_dropped_and_the_rest_extracted(req: ExportLogsServiceRequest,
                                                                data: st.DataObject) -> None:
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                record.trace_id, record.span_id = data.draw(st.sampled_from(
                    [(b"", b""), (b"\x01" * 16, b"\x01" * 8), (b"\x01" * 3, b""), (b"", b"\x01" * 7)]))
    decode_and_compare("logs", req.SerializeToString())


def test_the_benchmark_shaped_workload_matches_and_memoizes() -> None:
    spans_ = [SpanSpec("svc", f"GET /r{i % 3}", 1_000_000 + 7919 * i, status=i % 3,
                       attrs={"http.status_code": 200, "net.peer.port": 30000 + i, "ratio": i / 7,
                              "http.route": f"/r{i % 5}", "session": f"s{i}", "ok": i % 2 == 0},
                       trace_id=struct.pack(">QQ", i + 1, i), span_id=struct.pack(">Q", i + 1),
                       start_ns=10**18 + i)
              for i in range(400)]
    payload = traces_request(spans_, {"k8s.pod.name": "p"}).SerializeToString()
    codec = RequestCodec(ExtractionOptions())
    for _ in range(2):
        decode_and_compare("traces", payload)
        assert_same(codec.decode("traces", payload).extraction, reference("traces", payload)[0])
    # classes, not values: ports, ratios and sessions add a handful of fragments, not one per span
    assert codec._events["traces"].memo.fragments < 60


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_realistic_traffic_gives_the_same_events_whatever_the_memo_and_the_request_boundaries(
        signal: str) -> None:
    """The benchmarks' never-repeated traffic: every request matches the reference with a default memo and
    with a tiny one (cleared and grown within every request), and its items give the same events when they
    come in two requests instead of one."""
    from bench.traffic import TrafficGenerator  # a namespace package: the repository root is on sys.path

    big = RequestCodec(ExtractionOptions())
    tiny = RequestCodec(ExtractionOptions(), FragmentMemo(slots=64, key_slots=16, arena_bytes=512))
    for payload in TrafficGenerator(seed=3).requests(signal, 3, 200):
        expected = reference(signal, payload)[0]
        for codec in (big, tiny):
            assert_same(codec.decode(signal, payload).extraction, expected)  # type: ignore[arg-type]
        message = parse_request(signal, payload)
        groups = list(message.resource_spans if signal == "traces" else message.resource_logs)
        split: list[bytes] = []
        for part in (groups[:len(groups) // 2], groups[len(groups) // 2:]):
            half = type(message)()
            (half.resource_spans if signal == "traces" else half.resource_logs).extend(part)
            extraction = tiny.decode(signal, half.SerializeToString()).extraction  # type: ignore[arg-type]
            assert extraction is not None
            split.extend(event for batch in extraction.streams.values() for event in batch.events)
        assert sorted(split) == sorted(event for batch in expected.streams.values() for event in batch.events)


@pytest.mark.parametrize("payload", [b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x05\x12\x03\x12\x01", b"\x0b",
                                     b"\x0a\x02\x0a\x00\x0a\x02\x0a\x00"[:5]])
def test_malformed_bytes_are_refused_with_a_reason(payload: bytes) -> None:
    with pytest.raises(MalformedRequest, match=r"not a valid ExportTraceServiceRequest: .* \(at byte \d+\)"):
        codec_for().decode("traces", payload)


def test_explicit_stream_ids_on_items_and_resources() -> None:
    req = traces_request([SpanSpec("a", "x", 5, attrs={"driftlock.stream_id": "s"}),
                          SpanSpec("a", "x", 5, attrs={"driftlock.stream_id": ""}),  # falsy: the default key
                          SpanSpec("b", "y", 5)], {"driftlock.stream_id": "from-resource"})
    for span in (s for rs in req.resource_spans for s in rs.scope_spans[0].spans):
        span.trace_id, span.span_id = b"\x01" * 16, b"\x01" * 8
    payload = req.SerializeToString()
    decoded = decode_and_compare("traces", payload)
    assert decoded.extraction is not None and list(decoded.extraction.streams) == ["s", "from-resource"]
    assert decoded.message is None  # the fast path does not parse
    custom = decode_and_compare("traces", payload, ("service.name", "http.route"))
    assert custom.extraction is not None and list(custom.extraction.streams) == ["s", "from-resource"]


def test_status_messages_merge_and_repeated_scalars_keep_the_last_value() -> None:
    req = traces_request([SpanSpec("a", "first", 5, status=1, trace_id=b"\x01" * 16, span_id=b"\x01" * 8)])
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.MergeFromString(b"\x2a\x04last" + b"\x7a\x02\x08\x01" + b"\x30\x03")  # name, status w/o code, kind
    decoded = decode_and_compare("traces", req.SerializeToString())
    assert decoded.extraction is not None and list(decoded.extraction.streams) == ["traces/a/last"]


def test_tables_grow_for_large_requests() -> None:
    spans_ = [SpanSpec("svc", "op", 10, attrs={f"k{j}": j for j in range(40)}, trace_id=b"\x01" * 16,
                       span_id=b"\x01" * 8) for _ in range(3000)]
    decoded = decode_and_compare("traces", traces_request(spans_).SerializeToString())
    assert decoded.accepted == 3000


def test_classes_whose_tag_and_value_xor_alike_stay_apart() -> None:
    # 5e-324 (bits 1) and the int 2 once shared a memo slot: the hash folded tag ^ value
    spans_ = [SpanSpec("svc", "op", 10, attrs={"k": v}, trace_id=b"\x01" * 16, span_id=b"\x01" * 8)
              for v in (2, 5e-324, 3, 1e-300, True, 0, 1)]
    decode_and_compare("traces", traces_request(spans_).SerializeToString())


def test_value_classes_hold_at_every_magnitude_boundary() -> None:
    """Values sharing a memo class must render alike: one request puts every boundary under one key."""
    doubles = [s * m * 10.0**e for e in range(-9, 22) for m in (1.0, 1.234, 9.999999) for s in (1, -1)]
    doubles += [0.0, -0.0, 1e-3, 9.99e-4, 1e-4, 9.9e-5, 1e15, 999999999999999.9, 1e16, 5e-324,
                float("inf"), float("-inf"), float("nan"), 0.1, 2.5]
    ints = [s * v for v in (0, 1, 9, 10, 100, 123, 999, 1000, 1234, 9999, 10**5, 10**18, 2**63 - 1)
            for s in (1, -1)] + [-(2**63)]
    values = doubles + ints + [True, False, "", "0", "1000", "x\ny", b"", b"\x00", None]
    spans_ = [SpanSpec("svc", "op", 10, attrs={"v": v} if v is not None else {}, trace_id=b"\x01" * 16,
                       span_id=b"\x01" * 8) for v in values]
    req = traces_request(spans_)
    req.resource_spans[0].scope_spans[0].spans[-1].attributes.add(key="v")  # a KeyValue without a value
    payload = req.SerializeToString()
    for _ in range(2):  # the second run is served from the memo
        decode_and_compare("traces", payload)


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
    decoded = decode_and_compare("logs", req.SerializeToString())
    assert decoded.extraction is not None
    assert decoded.extraction.streams["logs/unknown_service/s"].times == [3] * len(bodies) * 2


def test_log_requests_extract_canonical_events() -> None:
    req = logs_request([LogSpec("svc", "app", "disk full", attrs={"n": 3}, time_ns=5)])
    decoded = RequestCodec(ExtractionOptions()).decode("logs", req.SerializeToString())
    assert decoded.message is None and decoded.extraction is not None
    assert list(decoded.extraction.streams) == ["logs/svc/app"]
    assert decoded.extraction.streams["logs/svc/app"].events == [canonical_log("disk full", 9, {"n": 3})]


def test_caps_leave_attributes_out_of_detection_only() -> None:
    many = {f"attr.{i:04d}": i % 7 for i in range(300)}
    req = traces_request([SpanSpec("svc", "op", 10, attrs=many, trace_id=b"\x01" * 16, span_id=b"\x01" * 8),
                          SpanSpec("svc", "op", 10, attrs={"late.key": 1}, trace_id=b"\x01" * 16,
                                   span_id=b"\x01" * 8)])
    payload = req.SerializeToString()
    decoded = decode_and_compare("traces", payload, caps=(128, 128))
    assert decoded.payload == payload  # forwarding keeps every attribute
    assert decoded.capped == {"item_attributes": 300 - 128, "request_keys": 1}


@pytest.mark.parametrize("signal", ["traces", "logs"])
def test_mutated_requests_are_refused_or_read_exactly_like_protobuf(signal: str) -> None:
    """Random byte flips and truncations: the codec refuses exactly what upb refuses, and whatever decodes
    is read as the reference reads it."""
    rng = random.Random(11)
    if signal == "traces":
        base = traces_request(normal_spans(12, 1)).SerializeToString()
    else:
        base = logs_request(normal_logs(12, 1)).SerializeToString()
    compared = 0
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        payload = bytes(data[:rng.randrange(len(data))] if rng.random() < 0.2 else data)
        try:
            parse_request(signal, payload)
        except DecodeError:
            with pytest.raises(MalformedRequest):
                codec_for().decode(signal, payload)  # type: ignore[arg-type]
            continue
        decode_and_compare(signal, payload)
        compared += 1
    assert compared > 20


def test_warm_up_runs_both_signals() -> None:
    warm_up()  # raises if either signal was not extracted


def test_tables_grown_for_a_huge_request_are_given_back() -> None:
    codec = RequestCodec(ExtractionOptions())
    ids = {"trace_id": b"\x01" * 16, "span_id": b"\x01" * 8}
    huge = traces_request([SpanSpec("svc", "op", 10, **ids) for _ in range(200_000)]).SerializeToString()
    small = traces_request([SpanSpec("svc", "op", 10, **ids)]).SerializeToString()
    walker = codec._walkers["traces"]
    assert codec.decode("traces", huge).accepted == 200_000
    assert walker._tables.items.shape[0] >= 200_000
    assert codec.decode("traces", small).accepted == 1
    assert walker._tables.items.shape[0] < 100_000
