"""Spans and log records of a walked request as canonical events, grouped per stream.

From the walk's tables (``walker.Walk``): ``_kernels.fragments.assemble`` builds every item's canonical
bytes from memoized fragments (the same bytes as ``detectors.canonical.canonical_span``/``canonical_log``
on the item's kept attributes), rendering the fragments it has not seen itself when they are ASCII text,
integers, booleans, bytes or nothing; Python renders only the others (doubles, arrays, kvlists, non-ASCII
text), routes each *group* of items once (items with equal group hashes share resource, name or scope
and looked-up attribute values, hence their stream; routes are memoized by those raw bytes), and slices
the per-stream lists: the events come out of the kernel in group order, newline-separated, and are split
into bytes objects in one call; the ids are made by numpy in one call each. Every stream-key
configuration takes this path: the walk records the values of the explicit ``driftlock.stream_id`` and of
every attribute part, on the item and on its resource, and ``StreamRouter.stream_id`` decides from those.

Not thread-safe: one extractor per thread (it reuses its buffers and its memo).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from detectors._kernels import mask as canon
from detectors.canonical import is_identifier_key, log_heads, span_heads
from otlp_gateway.otlp._kernels import fragments as frag
from otlp_gateway.otlp._kernels import walk as w
from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.otlp.memo import FragmentMemo
from otlp_gateway.otlp.values import any_value, render_attributes, render_body
from otlp_gateway.otlp.walker import Lookups, Walk, WalkedSignal
from otlp_gateway.streams.routing import EMPTY_PART, StreamKey, StreamRouter, service_of

MAX_ROUNDS = 6
"""assemble -> render misses -> assemble ...: the memo makes room for a whole request, so three rounds
(four with an output buffer to grow) always suffice; more means a bug."""
MAX_ROOM_ROUNDS = 64
"""Calls of ``assemble`` in all, those stopped for room in the memo included: each of those either clears
what earlier requests left (once a request) or grows a table (the fragment and key tables at most once
each, to fit the whole request; the arena at least doubling)."""
OUTPUT_BYTES = 1 << 16
KEEP_OUTPUT_BYTES = 1 << 24
"""A larger output buffer (grown for one big request) is given back after that request."""
RESOURCE_MEMO = 4096
ROUTE_MEMO = 4096
"""Stream keys memoized by the raw bytes they are computed from (resource values, name, item values)."""


class EventExtractor:
    """Per-stream canonical events of trace (``signal="traces"``) or log (``"logs"``) requests."""

    def __init__(self, signal: WalkedSignal, router: StreamRouter, lookups: Lookups, memo: FragmentMemo):
        self.signal = signal
        self.router = router
        self.memo = memo
        self._logs = signal == "logs"
        self._item_keys = lookups.item_keys
        self._resource_keys = lookups.resource_keys
        self._out = np.zeros(OUTPUT_BYTES, dtype=np.uint8)
        self._text = np.zeros(canon.TEXT_BYTES, dtype=np.uint8)
        self._tmp = np.zeros(canon.TMP_BYTES, dtype=np.uint8)
        self._resources: dict[tuple[bytes | None, ...], tuple[str, dict[str, Any]]] = {}
        self._routes: dict[tuple[Any, ...], StreamKey] = {}

    # --- canonical bytes ------------------------------------------------------------------------------
    def canonical(self, walk: Walk, order: np.ndarray | None = None) -> list[bytes]:
        """Every item's canonical bytes, items in ``order`` (int64 [items]; default: arrival order)."""
        t = walk.tables
        assert t is not None, "canonical events need a walk in extract mode"
        n_items, n_kvs = t.items.shape[0], t.kvs.shape[0]
        longest = int(t.items[:, w.ITEM_KV_COUNT].max()) if n_items else 0
        rows = n_kvs + n_items + 1
        sort_rows = max(1, longest)
        work = frag.Assembly(
            order=np.empty(sort_rows, dtype=np.int64), merge=np.empty(sort_rows, dtype=np.int64),
            slots=np.empty(rows, dtype=np.int64), misses=np.empty((rows, frag.MISS_COLUMNS), dtype=np.int64),
            out=self._out, out_off=np.empty(n_items, dtype=np.int64),
            out_len=np.empty(n_items, dtype=np.int64), sizes=np.zeros(frag.SIZES, dtype=np.int64),
            text=self._text, tmp=self._tmp,
            write_order=order if order is not None else np.arange(n_items, dtype=np.int64))
        self.memo.begin_request()
        rounds = 0
        for _ in range(MAX_ROOM_ROUNDS):
            written = frag.assemble(walk.buf, t.items, t.times, t.kvs, self._logs, self.memo.tables, work)
            if written == frag.NEED_ROOM:  # not a round: the memo grows at most a few times
                self.memo.make_room(rows, int(work.sizes[2]), rows, int(work.sizes[3]) == frag.ROOM_ARENA)
                continue
            rounds += 1
            if rounds > MAX_ROUNDS:
                break
            if written == frag.NEED_OUTPUT:
                self._out = np.zeros(2 * int(work.sizes[0]), dtype=np.uint8)
                work = work._replace(out=self._out)
                continue
            if written == frag.HAS_MISSES:
                self._render(walk, work.misses[:int(work.sizes[1])].tolist())
                continue
            blob = self._out[:written].tobytes()
            if self._out.size > KEEP_OUTPUT_BYTES:
                self._out = np.zeros(OUTPUT_BYTES, dtype=np.uint8)
            events = blob.split(b"\n")  # one bytes object per event in one call: no slice per event
            events.pop()  # what follows the last newline
            if len(events) != n_items:  # unreachable: canonical bytes escape newlines
                raise RuntimeError("a canonical event holds a newline")
            return events
        raise RuntimeError(f"canonical assembly did not finish in {MAX_ROUNDS} rounds")

    def _render(self, walk: Walk, misses: list[list[int]]) -> None:
        """Render what the assembly kernel left to Python with the canonical functions, and memoize it:
        every text to mask of the round (span names or log bodies, attribute values) is masked in one
        kernel call."""
        payload, t = walk.payload, walk.tables
        assert t is not None
        hashes: set[int] = set()
        head_hashes: list[int] = []
        head_rows: list[int] = []
        pair_hashes: list[int] = []
        pairs: list[tuple[str, Any]] = []
        keys: dict[int, bool] = {}
        kv_misses = [m for m in misses if m[0] != frag.MISS_HEAD]
        kv_rows = t.kvs[[m[1] for m in kv_misses], :w.KV_KEY_HASH].tolist() if kv_misses else []
        for kind, row, h1, _, _ in misses:
            if kind == frag.MISS_HEAD and h1 not in hashes:
                hashes.add(h1)
                head_hashes.append(h1)
                head_rows.append(row)
        for (kind, _, h1, h2, key_hash), (key_off, key_len, val_off, val_len) in zip(kv_misses, kv_rows,
                                                                                    strict=True):
            key = payload[key_off:key_off + key_len].decode("utf-8")
            h = h1
            if kind == frag.MISS_KEY:
                is_id = keys.get(key_hash)
                if is_id is None:
                    is_id = keys[key_hash] = is_identifier_key(key)
                h = h1 if is_id else h2
            if h not in hashes:
                hashes.add(h)
                pair_hashes.append(h)
                pairs.append((key, _value(payload, val_off, val_len)))
        if keys:
            self.memo.add_keys(list(keys), list(keys.values()))
        fragments = [*self._heads(payload, t, head_rows), *render_attributes(pairs)]
        if fragments:
            self.memo.add_fragments(head_hashes + pair_hashes, fragments)

    def _heads(self, payload: bytes, t: w.WalkTables, rows: list[int]) -> list[bytes]:
        if not rows:
            return []
        items = t.items[rows].tolist()
        if self._logs:
            bodies = [_body(payload, item[w.ITEM_BODY_OFF], item[w.ITEM_BODY_LEN]) for item in items]
            return log_heads(bodies, [item[w.ITEM_SEVERITY] for item in items])
        names = [payload[item[w.ITEM_NAME_OFF]:item[w.ITEM_NAME_OFF] + item[w.ITEM_NAME_LEN]].decode("utf-8")
                 for item in items]
        durations = [end - start for start, end in t.times[rows].tolist()]  # Python ints: no uint64 wrap
        return span_heads(names, [item[w.ITEM_KIND] for item in items],
                          [item[w.ITEM_STATUS] for item in items], durations)

    # --- grouping -------------------------------------------------------------------------------------
    def extract(self, walk: Walk) -> dict[str, StreamBatch]:
        """Per-stream batches of the walked request, streams in order of first appearance."""
        t = walk.tables
        assert t is not None, "extraction needs a walk in extract mode"
        n = walk.items
        if n == 0:
            return {}
        items = t.items
        order = np.empty(n, dtype=np.int64)
        bounds_a = np.empty(n + 1, dtype=np.int64)
        groups = frag.group_items(items[:, w.ITEM_GROUP], order, bounds_a)
        bounds = bounds_a[:groups + 1].tolist()
        events = self.canonical(walk, order)
        payload = walk.payload
        ordered = items[order]
        trace_ids = _ids(walk, ordered[:, w.ITEM_TID_OFF], ordered[:, w.ITEM_TID_LEN], 16)
        span_ids = _ids(walk, ordered[:, w.ITEM_SID_OFF], ordered[:, w.ITEM_SID_LEN], 8)
        if self._logs:  # a record's time, or its observed time when it has none
            times = np.where(t.times[:, 0] != 0, t.times[:, 0], t.times[:, 1])[order].tolist()
        else:
            times = t.times[order, 0].tolist()
        positions = order.tolist()
        firsts = [positions[lo] for lo in bounds[:-1]]
        heads = items[firsts][:, [w.ITEM_RESOURCE, w.ITEM_SCOPE, w.ITEM_NAME_OFF, w.ITEM_NAME_LEN]].tolist()
        looked_up = t.item_values[firsts].tolist()
        resources: dict[int, tuple[bytes | None, ...]] = {}
        streams: dict[str, StreamBatch] = {}
        for g in range(groups):
            lo, hi = bounds[g], bounds[g + 1]
            resource, scope, name_off, name_len = heads[g]
            raw_resource = resources.get(resource)
            if raw_resource is None:
                raw_resource = resources[resource] = _raw(payload, t.resource_values[resource].tolist())
            if self._logs:
                scope_off, scope_len = t.scopes[scope].tolist()
                raw_name = payload[scope_off:scope_off + scope_len] if scope_off >= 0 else None
            else:
                raw_name = payload[name_off:name_off + name_len]
            route = (raw_resource, raw_name, tuple(payload[off:off + length] if off >= 0 and length >= 0
                                                   else off >= 0 for off, length in looked_up[g]))
            key = self._routes.get(route)
            if key is None:
                if len(self._routes) >= ROUTE_MEMO:
                    self._routes.clear()
                key = self._routes[route] = self._route(payload, raw_resource, raw_name, looked_up[g])
            batch = streams.get(key.stream_id)
            if batch is None:
                batch = streams[key.stream_id] = StreamBatch(key)
            batch.events.extend(events[lo:hi])
            batch.trace_ids.extend(trace_ids[lo:hi])
            batch.span_ids.extend(span_ids[lo:hi])
            batch.times.extend(times[lo:hi])
            batch.positions.extend(positions[lo:hi])
        if len(streams) < groups:  # groups sharing a stream id: back to arrival order
            for batch in streams.values():
                _sort_by_position(batch)
        return streams

    def _route(self, payload: bytes, raw_resource: tuple[bytes | None, ...], raw_name: bytes | None,
               looked_up: list[list[int]]) -> StreamKey:
        """The stream of a group of items: its resource's looked-up values, its span name (or its log
        scope's name: ``None`` when the scope has none) and its items' looked-up values."""
        service, resource_attrs = self._resource(raw_resource)
        name = raw_name.decode("utf-8") if raw_name is not None else ""
        item_attrs = {key: _value(payload, off, length)
                      for key, (off, length) in zip(self._item_keys, looked_up, strict=True) if off >= 0}
        stream_id = self.router.stream_id(self.signal, service, name, item_attrs, resource_attrs)
        return StreamKey(stream_id, self.signal, service, name or EMPTY_PART)

    def _resource(self, raw: tuple[bytes | None, ...]) -> tuple[str, dict[str, Any]]:
        """(service, looked-up attributes) of a resource, memoized by the raw values (resources repeat)."""
        found = self._resources.get(raw)
        if found is None:
            attrs = {key: any_value(AnyValue.FromString(value))
                     for key, value in zip(self._resource_keys, raw, strict=True) if value is not None}
            if len(self._resources) >= RESOURCE_MEMO:
                self._resources.clear()
            found = self._resources[raw] = (service_of(attrs), attrs)
        return found



def _raw(payload: bytes, values: list[list[int]]) -> tuple[bytes | None, ...]:
    """Looked-up values as their raw AnyValue bytes (``None``: the attribute is absent or has no value)."""
    return tuple(payload[off:off + length] if off >= 0 and length >= 0 else None for off, length in values)


def _ids(walk: Walk, offsets: np.ndarray, lengths: np.ndarray, width: int) -> list[bytes]:
    """The ids at ``offsets`` as bytes objects, made by numpy in one call when they are ``width`` bytes
    long (as valid ids are unless empty); the others sliced one by one."""
    full = lengths == width
    if walk.buf.size < width:
        full[:] = False
    starts = np.where(full, offsets, 0)
    ids: list[bytes] = walk.buf[starts[:, None] + np.arange(width)].view(f"V{width}").ravel().tolist()
    if not full.all():
        payload = walk.payload
        for i in np.flatnonzero(~full).tolist():
            off = int(offsets[i])
            ids[i] = payload[off:off + int(lengths[i])] if off >= 0 else b""
    return ids


def _value(payload: bytes, off: int, length: int) -> Any:
    """The attribute value stored at [off, off+length) (length -1: a KeyValue without a value: None)."""
    if length < 0:
        return None
    text = string_value(payload, off, length)
    if text is not None:
        return text
    return any_value(AnyValue.FromString(payload[off:off + length]))


def string_value(payload: bytes, off: int, length: int) -> str | None:
    """The text of the AnyValue at [off, off+length) when it is one ``string_value`` field of under 16 KiB
    (the usual attribute value or log body; its UTF-8 was checked by the walk), read without parsing the
    AnyValue; ``None`` for anything else."""
    if length < 2 or payload[off] != 0x0A:
        return None
    size = payload[off + 1]
    if size < 0x80:
        return payload[off + 2:off + length].decode("utf-8") if size + 2 == length else None
    if length >= 3 and payload[off + 2] < 0x80 and (size & 0x7F | payload[off + 2] << 7) + 3 == length:
        return payload[off + 3:off + length].decode("utf-8")
    return None


def _body(payload: bytes, off: int, length: int) -> str:
    """A log body as ``render_body`` renders it (length -1: no body)."""
    if length < 0:
        return ""
    text = string_value(payload, off, length)
    return text if text is not None else render_body(AnyValue.FromString(payload[off:off + length]))


def _sort_by_position(batch: StreamBatch) -> None:
    order = sorted(range(len(batch.positions)), key=batch.positions.__getitem__)
    if order == list(range(len(order))):
        return
    batch.events = [batch.events[i] for i in order]
    batch.trace_ids = [batch.trace_ids[i] for i in order]
    batch.span_ids = [batch.span_ids[i] for i in order]
    batch.times = [batch.times[i] for i in order]
    batch.positions = [batch.positions[i] for i in order]
