"""Span and log extraction from request bytes: numba walks the wire format, Python touches only groups.

The fast path behind ``Extractor.extract_payload`` for trace and log requests.
``otlp_gateway.otlp._kernels.walk`` walks the serialized request into flat tables; ``fragments``
assembles every item's canonical bytes from memoized fragments (the same bytes as
``detectors.canonical.canonical_span``/``canonical_log``: ``tests/otlp/test_wire_extract.py`` checks
this against the reference path on generated requests). Python work per request: one decode per resource
(service.name) and scope, one render per *new* fragment, and a few list slices per item.

It declines (returns ``None``, the caller takes the reference path) when the request is not something
it models exactly: malformed or unusual wire data, an explicit ``driftlock.stream_id`` anywhere in the
request, or a stream key other than the default ``signal/service.name/name``.

Not thread-safe: one instance per extraction thread (it reuses its tables between requests).
"""

from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from detectors.canonical import canonical_log, canonical_span, is_identifier_key
from otlp_gateway.otlp._kernels import fragments as frag
from otlp_gateway.otlp._kernels import walk as wire
from otlp_gateway.otlp.canonical_cache import render_attribute
from otlp_gateway.otlp.extract import StreamBatch, any_value, render_body
from otlp_gateway.streams.routing import (
    EMPTY_PART,
    EXPLICIT_STREAM_ATTRIBUTE,
    StreamKey,
    StreamRouter,
    service_of,
)

FRAGMENT_SLOTS = 1 << 18
"""Memo table slots; it is cleared when half full (131072 fragments)."""
KEY_SLOTS = 1 << 16
ARENA_BYTES = 1 << 23
MAX_ROUNDS = 4
MEMO_DECODED = 4096
"""Decoded resources (service.name) and scopes (name) remembered by their bytes."""
_EXPLICIT = EXPLICIT_STREAM_ATTRIBUTE.encode()


class SpanFragmentMemo:
    """The memo tables of ``fragments`` (fragments by hash, identifier flags by key hash)."""

    def __init__(self, slots: int = FRAGMENT_SLOTS, key_slots: int = KEY_SLOTS,
                 arena_bytes: int = ARENA_BYTES):
        self.fkeys = np.zeros(slots, dtype=np.uint64)
        self.foff = np.zeros(slots, dtype=np.int64)
        self.flen = np.zeros(slots, dtype=np.int64)
        self.arena = np.zeros(arena_bytes, dtype=np.uint8)
        self.kkeys = np.zeros(key_slots, dtype=np.uint64)
        self.kflag = np.zeros(key_slots, dtype=np.int8)
        self.meta = np.zeros(3, dtype=np.int64)  # fragments, arena bytes used, keys
        self.clears = 0

    def clear(self) -> None:
        self.fkeys[:] = 0
        self.kkeys[:] = 0
        self.meta[:] = 0
        self.clears += 1

    def add_fragments(self, hashes: list[int], fragments: list[bytes]) -> None:
        blob = b"".join(fragments)
        lens = np.fromiter(map(len, fragments), dtype=np.int64, count=len(fragments))
        offs = np.cumsum(lens) - lens
        h = np.array(hashes, dtype=np.int64).view(np.uint64)
        data = np.frombuffer(blob, dtype=np.uint8) if blob else np.zeros(0, dtype=np.uint8)
        if len(blob) > self.arena.size // 2:
            self.arena = np.zeros(2 * len(blob), dtype=np.uint8)
            self.clear()
        args = (h, data, offs, lens)
        if not frag.insert_fragments(self.fkeys, self.foff, self.flen, self.arena, self.meta, *args):
            self.clear()  # full: start over (the caller's next round re-renders what it still misses)
            frag.insert_fragments(self.fkeys, self.foff, self.flen, self.arena, self.meta, *args)

    def add_keys(self, hashes: list[int], identifier: list[bool]) -> None:
        h = np.array(hashes, dtype=np.int64).view(np.uint64)
        flags = np.array([1 if i else 2 for i in identifier], dtype=np.int8)
        if not frag.insert_keys(self.kkeys, self.kflag, self.meta, h, flags):
            self.clear()
            frag.insert_keys(self.kkeys, self.kflag, self.meta, h, flags)


class WireSpanExtractor:
    """Trace requests (``signal="traces"``) or log requests (``signal="logs"``) from their bytes."""

    def __init__(self, router: StreamRouter, memo: SpanFragmentMemo | None = None, signal: str = "traces"):
        if signal not in ("traces", "logs"):
            raise ValueError(f"no wire fast path for {signal!r}")
        self.router = router
        self.signal = signal
        self._logs = signal == "logs"
        self.memo = memo if memo is not None else SpanFragmentMemo()
        self._spans = np.zeros((0, wire.ITEM_COLUMNS), dtype=np.int64)
        self._times = np.zeros((0, 2), dtype=np.uint64)
        self._kvs = np.zeros((0, wire.KV_COLUMNS), dtype=np.int64)
        self._resources = np.zeros((0, 2), dtype=np.int64)
        self._scopes = np.zeros((0, 2), dtype=np.int64)
        self._out = np.zeros(1 << 16, dtype=np.uint8)
        self._services: dict[bytes, str] = {}
        self._scope_names: dict[bytes, str] = {}

    def applies(self, payload: bytes) -> bool:
        return self.router.is_default and _EXPLICIT not in payload

    # --- walking ------------------------------------------------------------------------------------
    def _ensure(self, n_spans: int, n_kvs: int, n_res: int, n_scopes: int) -> None:
        if self._spans.shape[0] < n_spans:
            self._spans = np.zeros((n_spans, wire.ITEM_COLUMNS), dtype=np.int64)
            self._times = np.zeros((n_spans, 2), dtype=np.uint64)
        if self._kvs.shape[0] < n_kvs:
            self._kvs = np.zeros((n_kvs, wire.KV_COLUMNS), dtype=np.int64)
        if self._resources.shape[0] < n_res:
            self._resources = np.zeros((n_res, 2), dtype=np.int64)
        if self._scopes.shape[0] < n_scopes:
            self._scopes = np.zeros((n_scopes, 2), dtype=np.int64)

    def _walk_once(self, buf: np.ndarray, counts: np.ndarray) -> int:
        if self._logs:
            return wire.walk_logs(buf, self._spans, self._times, self._kvs, self._resources, self._scopes,
                                  counts)
        return wire.walk_traces(buf, self._spans, self._times, self._kvs, self._resources, counts)

    def _walk(self, buf: np.ndarray) -> tuple[int, int, int, int] | None:
        size = buf.size
        self._ensure(size // 64 + 8, size // 16 + 16, size // 256 + 4, size // 256 + 4)
        counts = np.zeros(4, dtype=np.int64)
        rc = self._walk_once(buf, counts)
        if rc == wire.ERR_CAPACITY:
            self._ensure(int(counts[0]), int(counts[1]), int(counts[2]), int(counts[3]))
            rc = self._walk_once(buf, counts)
        if rc != wire.OK:
            return None
        return int(counts[0]), int(counts[1]), int(counts[2]), int(counts[3])

    # --- canonical bytes ------------------------------------------------------------------------------
    def canonical(self, payload: bytes, buf: np.ndarray, n_spans: int, n_kvs: int
                  ) -> tuple[bytes, np.ndarray, np.ndarray] | None:
        """(blob, offsets, lengths): span ``s``'s canonical bytes are ``blob[off[s]:off[s]+len[s]]``."""
        memo = self.memo
        order = np.empty(max(1, n_kvs), dtype=np.int64)
        slots = np.empty(n_kvs + n_spans + 1, dtype=np.int64)
        misses = np.empty((n_kvs + n_spans + 1, frag.MISS_COLUMNS), dtype=np.int64)
        out_off = np.empty(n_spans, dtype=np.int64)
        out_len = np.empty(n_spans, dtype=np.int64)
        sizes = np.zeros(2, dtype=np.int64)
        for _ in range(MAX_ROUNDS):
            written = frag.assemble(buf, self._spans, self._times, n_spans, self._logs, self._kvs, memo.fkeys,
                                          memo.foff, memo.flen, memo.arena, memo.kkeys, memo.kflag, order,
                                          slots, misses, self._out, out_off, out_len, sizes)
            if written == frag.NEED_OUTPUT:
                self._out = np.zeros(2 * int(sizes[0]), dtype=np.uint8)
                continue
            if written == frag.HAS_MISSES:
                self._render_misses(payload, misses[:int(sizes[1])].tolist())
                continue
            return self._out[:written].tobytes(), out_off, out_len
        return None

    def _render_misses(self, payload: bytes, misses: list[list[int]]) -> None:
        spans, kvs = self._spans, self._kvs
        fragments: dict[int, bytes] = {}
        keys: dict[int, bool] = {}
        for kind, row, h1, h2, key_hash in misses:
            if kind == frag.MISS_HEAD:
                if h1 in fragments:
                    continue
                if self._logs:
                    body = _value_message(payload, int(spans[row, wire.LOG_BODY_OFF]),
                                          int(spans[row, wire.LOG_BODY_LEN]))
                    fragments[h1] = canonical_log(render_body(body), int(spans[row, wire.LOG_SEVERITY]), None)
                    continue
                off, length = int(spans[row, wire.SPAN_NAME_OFF]), int(spans[row, wire.SPAN_NAME_LEN])
                start, end = (int(t) for t in self._times[row])
                fragments[h1] = canonical_span(payload[off:off + length].decode("utf-8"),
                                               int(spans[row, wire.SPAN_KIND]),
                                               int(spans[row, wire.SPAN_STATUS]), end - start, None)
                continue
            key_off, key_len, val_off, val_len = (int(x) for x in kvs[row])
            key = payload[key_off:key_off + key_len].decode("utf-8")
            if kind == frag.MISS_KEY:
                is_id = keys.get(key_hash)
                if is_id is None:
                    is_id = keys[key_hash] = is_identifier_key(key)
                h = h1 if is_id else h2
            else:
                h = h1
            if h not in fragments:
                fragments[h] = render_attribute(key, _value(payload, val_off, val_len))
        if keys:
            self.memo.add_keys(list(keys), list(keys.values()))
        if fragments:
            self.memo.add_fragments(list(fragments), list(fragments.values()))

    # --- grouping -------------------------------------------------------------------------------------
    def extract(self, payload: bytes) -> tuple[dict[str, StreamBatch], int] | None:
        """Per-stream batches of a request, or ``None`` when the reference path must decide."""
        if not self.applies(payload):
            return None
        try:
            return self._extract(payload)
        except (UnicodeDecodeError, DecodeError):  # invalid text or nested message: protobuf decides
            return None

    def _extract(self, payload: bytes) -> tuple[dict[str, StreamBatch], int] | None:
        buf = np.frombuffer(payload, dtype=np.uint8)
        walked = self._walk(buf)
        if walked is None:
            return None
        n_spans, n_kvs, n_res, n_scopes = walked
        if n_spans == 0:
            return {}, 0
        made = self.canonical(payload, buf, n_spans, n_kvs)
        if made is None:
            return None
        blob, out_off, out_len = made
        spans = self._spans[:n_spans]
        services = [self._service(payload, o, n) for o, n in self._resources[:n_res].tolist()]
        if self._logs:
            scopes = [self._scope_name(payload, o, n) for o, n in self._scopes[:n_scopes].tolist()]
            group_key = spans[:, wire.LOG_SCOPE].astype(np.uint64)
            start, observed = self._times[:n_spans, 0], self._times[:n_spans, 1]
            times_all = np.where(start != 0, start, observed).tolist()
        else:
            group_key = spans[:, wire.SPAN_NAME_HASH].view(np.uint64) ^ \
                (spans[:, wire.SPAN_RESOURCE].astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
            times_all = self._times[:n_spans, 0].tolist()
        _, first, inverse = np.unique(group_key, return_index=True, return_inverse=True)
        order = np.argsort(inverse, kind="stable").tolist()
        bounds = [0, *np.cumsum(np.bincount(inverse, minlength=first.size)).tolist()]
        offs_all = out_off.tolist()
        ends_all = (out_off + out_len).tolist()
        tid_all = spans[:, wire.SPAN_TID_OFF].tolist()
        tid_end_all = (spans[:, wire.SPAN_TID_OFF] + spans[:, wire.SPAN_TID_LEN]).tolist()
        sid_all = spans[:, wire.SPAN_SID_OFF].tolist()
        sid_end_all = (spans[:, wire.SPAN_SID_OFF] + spans[:, wire.SPAN_SID_LEN]).tolist()
        heads = spans[first][:, [wire.SPAN_RESOURCE, wire.SPAN_NAME_OFF, wire.SPAN_NAME_LEN, wire.LOG_SCOPE]
                             ].tolist()
        streams: dict[str, StreamBatch] = {}
        signal = self.signal
        for g in np.argsort(first, kind="stable").tolist():  # streams in order of first appearance
            idx = order[bounds[g]:bounds[g + 1]]
            resource, name_off, name_len, scope = heads[g]
            name = scopes[scope] if self._logs else payload[name_off:name_off + name_len].decode("utf-8")
            service = services[resource]
            stream_id = self.router.stream_id(signal, service, name, None, {})
            batch = streams.get(stream_id)
            if batch is None:
                batch = streams[stream_id] = StreamBatch(StreamKey(stream_id, signal, service,
                                                                   name or EMPTY_PART))
            batch.events.extend([blob[offs_all[i]:ends_all[i]] for i in idx])
            batch.trace_ids.extend([payload[tid_all[i]:tid_end_all[i]] for i in idx])
            batch.span_ids.extend([payload[sid_all[i]:sid_end_all[i]] for i in idx])
            batch.times.extend([times_all[i] for i in idx])
            batch.positions.extend(idx)
        if len(streams) < first.size:  # groups sharing a stream id (resources of one service, scopes of one
            for batch in streams.values():  # name, span names "" and "-"): back to arrival order
                _sort_by_position(batch)
        return streams, n_spans

    def _scope_name(self, payload: bytes, off: int, length: int) -> str:
        if off < 0:
            return ""
        raw = payload[off:off + length]
        name = self._scope_names.get(raw)
        if name is None:
            if len(self._scope_names) >= MEMO_DECODED:
                self._scope_names.clear()
            name = self._scope_names[raw] = InstrumentationScope.FromString(raw).name
        return name

    def _service(self, payload: bytes, off: int, length: int) -> str:
        """``service.name`` of a Resource message (memoized by its bytes: resources repeat)."""
        if off < 0:
            return service_of({})
        raw = payload[off:off + length]
        service = self._services.get(raw)
        if service is None:
            resource = Resource.FromString(raw)
            value = next((kv.value for kv in reversed(resource.attributes) if kv.key == "service.name"), None)
            if len(self._services) >= MEMO_DECODED:
                self._services.clear()
            service = self._services[raw] = service_of({"service.name": _any(value)} if value is not None
                                                       else {})
        return service


def _value_message(payload: bytes, off: int, length: int) -> AnyValue:
    return AnyValue.FromString(payload[off:off + length]) if length >= 0 else AnyValue()


def _value(payload: bytes, off: int, length: int) -> object:
    if length < 0:
        return None
    return _any(_value_message(payload, off, length))


def _any(value: AnyValue) -> object:
    return any_value(value)


def _sort_by_position(batch: StreamBatch) -> None:
    order = sorted(range(len(batch.positions)), key=batch.positions.__getitem__)
    if order == list(range(len(order))):
        return
    batch.events = [batch.events[i] for i in order]
    batch.trace_ids = [batch.trace_ids[i] for i in order]
    batch.span_ids = [batch.span_ids[i] for i in order]
    batch.times = [batch.times[i] for i in order]
    batch.positions = [batch.positions[i] for i in order]


def warm_up(extractor: WireSpanExtractor | None = None) -> None:
    """Compile (or load from numba's cache) the wire kernels on a tiny trace and log request, so the first
    real request does not pay for it. Uses its own extractor unless one is given (not thread-safe)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    router = extractor.router if extractor is not None else StreamRouter(["signal", "service.name", "name"])
    traces = ExportTraceServiceRequest()
    span = traces.resource_spans.add().scope_spans.add().spans.add(name="warm-up", kind=1)
    span.attributes.add(key="k").value.double_value = 1.5
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add(severity_number=9)
    record.body.string_value = "warm-up"
    memo = SpanFragmentMemo(slots=1024, key_slots=256, arena_bytes=4096)
    for signal, request in (("traces", traces), ("logs", logs)):
        wire_extractor = extractor if extractor is not None and extractor.signal == signal else \
            WireSpanExtractor(router, memo, signal=signal)
        if wire_extractor.extract(request.SerializeToString()) is None:
            raise RuntimeError(f"the {signal} wire fast path declined its warm-up request")
