"""The OTLP codec's one entry point: an export request's bytes in; its verdict, the bytes to forward and
(with detection on) its per-stream events out.

``RequestCodec.decode`` validates, counts and extracts trace and log requests in one walk of their bytes
(``walker``: numba, the GIL released; it accepts exactly what upb accepts and checks every item's ids).
The rare requests it cannot take as they are go through upb once: those with invalid items (dropped with
the validator's message, then re-serialized) and those holding merged AnyValues (walked again in upb's
re-serialization; the client's bytes are still what is forwarded). OTLP/JSON bodies are converted to
protobuf first and take the same path. Metric requests are parsed by upb, validated and extracted on the
message (their one path). The bytes to forward are the client's own whenever nothing was dropped.

Pure and not thread-safe: one codec per thread (the walkers and the fragment memo are reused).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from google.protobuf.message import DecodeError, Message

from otlp_gateway.batch import Signal
from otlp_gateway.otlp.events import EventExtractor
from otlp_gateway.otlp.extract import REQUEST_TYPES, Extraction
from otlp_gateway.otlp.json_codec import OtlpJsonError, parse_otlp_json
from otlp_gateway.otlp.memo import FragmentMemo
from otlp_gateway.otlp.metric_points import extract_metrics
from otlp_gateway.otlp.validate import VALIDATORS, validate_metrics
from otlp_gateway.otlp.walker import Lookups, MalformedRequest, RequestWalker, Walk, WalkedSignal, lookups_for
from otlp_gateway.streams.routing import EXPLICIT_STREAM_ATTRIBUTE, StreamRouter

if TYPE_CHECKING:
    from otlp_gateway.detection.settings import DetectionSettings

Encoding = Literal["protobuf", "json"]
DEFAULT_STREAM_KEY = ("signal", "service.name", "name")
CAPPED_ITEM_ATTRIBUTES = "item_attributes"
CAPPED_REQUEST_KEYS = "request_keys"
"""Reasons an attribute is left out of detection (never out of forwarding)."""

__all__ = ["DecodedRequest", "Encoding", "ExtractionOptions", "MalformedRequest", "RequestCodec", "warm_up"]


@dataclass(frozen=True, slots=True)
class ExtractionOptions:
    """What extraction for detection needs: the stream key and the detection caps on attributes."""

    stream_key: tuple[str, ...] = DEFAULT_STREAM_KEY
    max_item_attributes: int = 128
    """Attributes of one span or log record that enter its canonical event (the first ones on the wire)."""
    max_request_keys: int = 1024
    """Distinct attribute keys of one request that enter canonical events (the first ones on the wire)."""

    @classmethod
    def of(cls, detection: DetectionSettings) -> ExtractionOptions:
        return cls(tuple(detection.stream_key), detection.max_item_attributes, detection.max_request_keys)


@dataclass(slots=True)
class DecodedRequest:
    """What the receiver needs to answer and hand over one request."""

    signal: Signal
    payload: bytes
    """The bytes to forward: the client's (decompressed) bytes unless items were dropped or the body was
    OTLP/JSON; empty when nothing was accepted."""
    accepted: int
    rejected: int = 0
    rejection: str = ""
    """English partial-success message (empty when nothing was rejected)."""
    message: Message | None = None
    """The parsed request matching ``payload`` when decoding had to parse it (JSON, metrics, rare paths)."""
    extraction: Extraction | None = None
    """Per-stream events (only with extraction options)."""
    capped: dict[str, int] = field(default_factory=dict)
    """Attributes left out of detection per reason (``CAPPED_*``), when there were any."""


class RequestCodec:
    """Decodes export requests of every signal; extracts events when given ``ExtractionOptions``."""

    def __init__(self, extraction: ExtractionOptions | None = None, memo: FragmentMemo | None = None):
        """``memo``: the fragment memo to use (tests pass tiny ones); by default a new one."""
        self.extraction = extraction
        self._router = StreamRouter(list(extraction.stream_key)) if extraction is not None else None
        lookups = lookups_for(extraction.stream_key, EXPLICIT_STREAM_ATTRIBUTE) if extraction else Lookups()
        caps = (extraction.max_item_attributes, extraction.max_request_keys) if extraction else (0, 0)
        self._walkers: dict[WalkedSignal, RequestWalker] = {
            signal: RequestWalker(signal, lookups, *caps) for signal in ("traces", "logs")}
        self._events: dict[WalkedSignal, EventExtractor] = {}
        if self._router is not None:
            shared = memo if memo is not None else FragmentMemo()  # head hashes are tagged per signal
            self._events = {signal: EventExtractor(signal, self._router, lookups, shared)
                            for signal in ("traces", "logs")}

    def decode(self, signal: Signal, body: bytes, encoding: Encoding = "protobuf") -> DecodedRequest:
        """Decode one request body (decompressed); raise ``MalformedRequest`` when it does not decode."""
        message: Message | None = None
        payload = body
        if encoding == "json":
            try:
                message = parse_otlp_json(body, signal, REQUEST_TYPES[signal])
            except OtlpJsonError as exc:
                raise MalformedRequest(str(exc)) from None
            payload = message.SerializeToString()
        if signal == "metrics":
            return self._decode_metrics(payload, message)
        return self._decode_items(signal, payload, message)

    def decode_without_kernels(self, signal: Signal, body: bytes, encoding: Encoding = "protobuf"
                               ) -> DecodedRequest:
        """``decode`` by upb and the validators alone, without extraction: what the receivers use while the
        walker's kernels are still compiling on a cold JIT cache (tens of seconds), so that no client waits
        for a compiler. Detection extracts such requests afterwards (``extract``)."""
        if signal == "metrics":  # no kernels on the metrics path
            return self.decode(signal, body, encoding)
        if encoding == "json":
            try:
                message = parse_otlp_json(body, signal, REQUEST_TYPES[signal])
            except OtlpJsonError as exc:
                raise MalformedRequest(str(exc)) from None
            payload = message.SerializeToString()
        else:
            message, payload = _parse(signal, body), body
        verdict = VALIDATORS[signal](message)
        if verdict.accepted == 0:
            return DecodedRequest(signal, b"", 0, verdict.rejected, verdict.message, message)
        forward = message.SerializeToString() if verdict.rejected else payload
        return DecodedRequest(signal, forward, verdict.accepted, verdict.rejected, verdict.message, message)

    def extract(self, signal: Signal, payload: bytes) -> Extraction:
        """The events of a request already accepted (its items all valid, so positions match ``payload``)."""
        decoded = self.decode(signal, payload)
        if decoded.extraction is None:
            if self.extraction is None:
                raise ValueError("this codec was made without extraction options")
            return Extraction(signal, decoded.message, {}, 0)
        return decoded.extraction

    # --- spans and log records: the walk ------------------------------------------------------------
    def _decode_items(self, signal: WalkedSignal, payload: bytes, message: Message | None) -> DecodedRequest:
        extract = self._router is not None
        walker = self._walkers[signal]
        walk = walker.walk(payload, extract)
        forward = payload
        accepted, rejected, rejection = walk.items, 0, ""
        if walk.invalid or walk.needs_normalizing:  # rare: upb once, then one more walk
            if message is None:
                message = _parse(signal, payload)
            if walk.invalid:
                verdict = VALIDATORS[signal](message)  # drops them in place; words the reasons
                accepted, rejected, rejection = verdict.accepted, verdict.rejected, verdict.message
                if accepted == 0:
                    return DecodedRequest(signal, b"", 0, rejected, rejection, message)
                forward = message.SerializeToString()
            if extract:
                walk = self._walk_normalized(walker, forward if rejected else message.SerializeToString())
        if accepted == 0:
            return DecodedRequest(signal, b"", 0, message=message)
        decoded = DecodedRequest(signal, forward, accepted, rejected, rejection, message)
        if extract:
            streams = self._events[signal].extract(walk)
            capped = {CAPPED_ITEM_ATTRIBUTES: walk.capped_item_attributes,
                      CAPPED_REQUEST_KEYS: walk.capped_request_keys}
            decoded.capped = {reason: n for reason, n in capped.items() if n}
            decoded.extraction = Extraction(signal, message, streams, walk.items, decoded.capped)
        return decoded

    @staticmethod
    def _walk_normalized(walker: RequestWalker, serialized: bytes) -> Walk:
        walk = walker.walk(serialized, True)
        if walk.invalid or walk.needs_normalizing:  # upb's own output: singular fields once, items valid
            raise RuntimeError("the walk does not accept upb's re-serialization of a request")
        return walk

    # --- metric points: the parsed message -----------------------------------------------------------
    def _decode_metrics(self, payload: bytes, message: Message | None) -> DecodedRequest:
        parsed = message if message is not None else _parse("metrics", payload)
        verdict = validate_metrics(parsed)
        if verdict.accepted == 0:
            return DecodedRequest("metrics", b"", 0, verdict.rejected, verdict.message, parsed)
        forward = parsed.SerializeToString() if verdict.rejected else payload
        decoded = DecodedRequest("metrics", forward, verdict.accepted, verdict.rejected, verdict.message,
                                 parsed)
        if self._router is not None:
            streams, count = extract_metrics(parsed, self._router)
            decoded.extraction = Extraction("metrics", parsed, streams, count)
        return decoded


def _parse(signal: Signal, payload: bytes) -> Message:
    request_type = REQUEST_TYPES[signal]
    try:
        return request_type.FromString(payload)
    except (DecodeError, RecursionError) as exc:
        raise MalformedRequest(f"body is not a valid {request_type.DESCRIPTOR.name}: {exc}") from None


def warm_up() -> None:
    """Compile (or load from numba's cache) the codec's kernels by decoding a tiny trace and log request
    with extraction, so that the first real request does not pay for it."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    traces = ExportTraceServiceRequest()
    span = traces.resource_spans.add().scope_spans.add().spans.add(
        name="warm-up", kind=1, trace_id=b"\x01" * 16, span_id=b"\x01" * 8)
    span.attributes.add(key="k").value.double_value = 1.5
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add(severity_number=9)
    record.body.string_value = "warm-up"
    codec = RequestCodec(ExtractionOptions())
    for signal, request in (("traces", traces), ("logs", logs)):
        decoded = codec.decode(signal, request.SerializeToString())  # type: ignore[arg-type]
        if decoded.extraction is None or decoded.extraction.event_count != 1:
            raise RuntimeError(f"the codec did not extract its {signal} warm-up request")
