"""A protobuf wire-format walker for OTLP trace and log requests, over raw request bytes (``uint8``).

It finds, per span or log record, the byte ranges and scalars the canonical form needs, without building
any Python object: Python then touches only what it must (see ``otlp_gateway.otlp.wire``).
Layouts walked (field numbers from ``opentelemetry/proto/*/v1/*.proto``)::

    ExportTraceServiceRequest  1: resource_spans (repeated)
    ResourceSpans              1: resource   2: scope_spans (repeated)
    Resource                   1: attributes (repeated KeyValue)
    ScopeSpans                 2: spans (repeated)
    Span                       1: trace_id  2: span_id  5: name  6: kind  7: start (fixed64)
                               8: end (fixed64)  9: attributes (repeated KeyValue)  15: status
    Status                     3: code
    ExportLogsServiceRequest   1: resource_logs (repeated)
    ResourceLogs               1: resource   2: scope_logs (repeated)
    ScopeLogs                  1: scope (InstrumentationScope)   2: log_records (repeated)
    LogRecord                  1: time (fixed64)  2: severity_number  5: body (AnyValue)
                               6: attributes (repeated KeyValue)  9: trace_id  10: span_id
                               11: observed_time (fixed64)
    KeyValue                   1: key  2: value (AnyValue)

Other fields are skipped by wire type. Protobuf semantics kept: a repeated singular scalar's last
occurrence wins, a repeated ``status`` merges (its last ``code`` wins). Anything the walker does not
model exactly (truncated data, a known field with an unexpected wire type, a second ``resource`` or
KeyValue ``value`` message, which protobuf would merge, or wire type 3/4/6/7) makes it return an error
code, and the caller falls back to a full protobuf parse.

Item tables: spans (``SPAN_*`` columns) or log records (``LOG_*``), sharing the id and KeyValue columns;
KeyValue table columns (``KV_*``); resource (and scope) tables: offset, length of the ``Resource``
(``InstrumentationScope``) message, -1 when absent.
"""

from __future__ import annotations

import numpy as np

from detectors._kernels import kernel

SPAN_RESOURCE = 0
SPAN_NAME_OFF = 1
SPAN_NAME_LEN = 2
SPAN_KIND = 3
SPAN_STATUS = 4
SPAN_TID_OFF = 5
SPAN_TID_LEN = 6
SPAN_SID_OFF = 7
SPAN_SID_LEN = 8
SPAN_KV_FIRST = 9
SPAN_KV_COUNT = 10
SPAN_NAME_HASH = 11
SPAN_COLUMNS = 12
LOG_RESOURCE = 0
LOG_BODY_OFF = 1
LOG_BODY_LEN = 2
"""-1 when the record has no body."""
LOG_SEVERITY = 3
LOG_SCOPE = 4
ITEM_COLUMNS = SPAN_COLUMNS

KV_KEY_OFF = 0
KV_KEY_LEN = 1
KV_VAL_OFF = 2
KV_VAL_LEN = 3
"""-1 when the KeyValue has no value (the attribute value is then ``None``)."""
KV_COLUMNS = 4

OK = 0
ERR_MALFORMED = -1
ERR_CAPACITY = -2
"""Tables too small: the caller retries with the bounds in ``counts``."""

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@kernel
def read_varint(buf, pos, end):
    """(value as uint64, next position); next position -1 when truncated or longer than 10 bytes."""
    result = np.uint64(0)
    shift = np.uint64(0)
    for _ in range(10):
        if pos >= end:
            return np.uint64(0), -1
        b = buf[pos]
        pos += 1
        result |= np.uint64(b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += np.uint64(7)
    return np.uint64(0), -1


@kernel
def read_fixed64(buf, pos):
    value = np.uint64(0)
    for i in range(8):
        value |= np.uint64(buf[pos + i]) << np.uint64(8 * i)
    return value


@kernel
def skip_field(buf, pos, end, wire):
    """Position after a field's payload of the given wire type, or -1."""
    if wire == 0:
        _, pos = read_varint(buf, pos, end)
        return pos
    if wire == 1:
        return pos + 8 if pos + 8 <= end else -1
    if wire == 5:
        return pos + 4 if pos + 4 <= end else -1
    if wire == 2:
        n, pos = read_varint(buf, pos, end)
        if pos < 0 or n > np.uint64(end - pos):
            return -1
        return pos + np.int64(n)
    return -1


@kernel
def hash_bytes(buf, start, length):
    """64-bit FNV-1a of a byte range."""
    h = _FNV_OFFSET
    for i in range(start, start + length):
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
    return h


@kernel
def _int32(value):
    v = np.int64(value & np.uint64(0xFFFFFFFF))
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@kernel
def _keyvalue(buf, pos, end, kvs, k):
    """Fill KeyValue row ``k`` from the message at [pos, end); False when malformed."""
    kvs[k, KV_KEY_OFF] = pos
    kvs[k, KV_KEY_LEN] = 0
    kvs[k, KV_VAL_OFF] = 0
    kvs[k, KV_VAL_LEN] = -1
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if pos < 0:
            return False
        field = tag >> np.uint64(3)
        wire = np.int64(tag & np.uint64(7))
        if field == 1 or field == 2:
            if wire != 2:
                return False
            n, pos = read_varint(buf, pos, end)
            if pos < 0 or n > np.uint64(end - pos):
                return False
            if field == 1:
                kvs[k, KV_KEY_OFF] = pos
                kvs[k, KV_KEY_LEN] = np.int64(n)
            else:
                if kvs[k, KV_VAL_LEN] >= 0:
                    return False  # a second value message would be merged by protobuf
                kvs[k, KV_VAL_OFF] = pos
                kvs[k, KV_VAL_LEN] = np.int64(n)
            pos += np.int64(n)
        else:
            pos = skip_field(buf, pos, end, wire)
            if pos < 0:
                return False
    return True


@kernel
def _status_code(buf, pos, end, code):
    """The code of a Status message (``code`` when it sets none); -(2**40) when malformed."""
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if pos < 0:
            return -(np.int64(1) << 40)
        field = tag >> np.uint64(3)
        wire = np.int64(tag & np.uint64(7))
        if field == 3:
            if wire != 0:
                return -(np.int64(1) << 40)
            v, pos = read_varint(buf, pos, end)
            if pos < 0:
                return -(np.int64(1) << 40)
            code = _int32(v)
        else:
            pos = skip_field(buf, pos, end, wire)
            if pos < 0:
                return -(np.int64(1) << 40)
    return code


@kernel
def _length_delimited(buf, pos, end, wire):
    """(start, end) of the length-delimited value whose length prefix is at ``pos``; end -1 when the wire
    type is not 2 or the length runs past ``end``."""
    if wire != 2:
        return pos, np.int64(-1)
    n, pos = read_varint(buf, pos, end)
    if pos < 0 or n > np.uint64(end - pos):
        return pos, np.int64(-1)
    return pos, pos + np.int64(n)


@kernel
def _varint_field(buf, pos, end, wire):
    """(value, next position) of a varint field; next position -1 when malformed."""
    if wire != 0:
        return np.uint64(0), np.int64(-1)
    return read_varint(buf, pos, end)


@kernel
def _fixed64_field(buf, pos, end, wire):
    """(value, next position) of a fixed64 field; next position -1 when malformed."""
    if wire != 1 or pos + 8 > end:
        return np.uint64(0), np.int64(-1)
    return read_fixed64(buf, pos), pos + 8


@kernel
def _span(buf, pos, end, res, spans, s, times, kvs, k, kv_cap):
    """Fill span row ``s`` (KeyValues from row ``k`` on); returns the next KeyValue row, or -1 malformed,
    or -2 when the KeyValue table is full (the walk continues counting)."""
    spans[s, SPAN_RESOURCE] = res
    spans[s, SPAN_NAME_OFF] = pos
    spans[s, SPAN_NAME_LEN] = 0
    spans[s, SPAN_KIND] = 0
    spans[s, SPAN_STATUS] = 0
    spans[s, SPAN_TID_OFF] = pos
    spans[s, SPAN_TID_LEN] = 0
    spans[s, SPAN_SID_OFF] = pos
    spans[s, SPAN_SID_LEN] = 0
    spans[s, SPAN_KV_FIRST] = k
    times[s, 0] = 0
    times[s, 1] = 0
    count = 0
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if pos < 0:
            return -1
        field = tag >> np.uint64(3)
        wire = np.int64(tag & np.uint64(7))
        if field == 1 or field == 2 or field == 5 or field == 9 or field == 15:
            pos, stop = _length_delimited(buf, pos, end, wire)
            if stop < 0:
                return -1
            if field == 1:
                spans[s, SPAN_TID_OFF] = pos
                spans[s, SPAN_TID_LEN] = stop - pos
            elif field == 2:
                spans[s, SPAN_SID_OFF] = pos
                spans[s, SPAN_SID_LEN] = stop - pos
            elif field == 5:
                spans[s, SPAN_NAME_OFF] = pos
                spans[s, SPAN_NAME_LEN] = stop - pos
            elif field == 9:
                if k + count < kv_cap and not _keyvalue(buf, pos, stop, kvs, k + count):
                    return -1
                count += 1
            else:
                code = _status_code(buf, pos, stop, spans[s, SPAN_STATUS])
                if code == -(np.int64(1) << 40):
                    return -1
                spans[s, SPAN_STATUS] = code
            pos = stop
        elif field == 6:
            v, pos = _varint_field(buf, pos, end, wire)
            if pos < 0:
                return -1
            spans[s, SPAN_KIND] = _int32(v)
        elif field == 7 or field == 8:
            v, pos = _fixed64_field(buf, pos, end, wire)
            if pos < 0:
                return -1
            times[s, 0 if field == 7 else 1] = v
        else:
            pos = skip_field(buf, pos, end, wire)
            if pos < 0:
                return -1
    spans[s, SPAN_KV_COUNT] = count
    spans[s, SPAN_NAME_HASH] = np.int64(hash_bytes(buf, spans[s, SPAN_NAME_OFF], spans[s, SPAN_NAME_LEN]))
    return k + count


@kernel
def next_message_field(buf, pos, end, first, second):
    """Read the field at ``pos`` of a message body ending at ``end``.

    Fields numbered ``first`` or ``second`` (0: no second) must be length-delimited: the answer is
    ``(field, body_start, body_end)``. Any other field is skipped and answered ``(0, after, after)``.
    ``(-1, 0, 0)``: malformed. One place for the walk every nesting level repeats."""
    tag, pos = read_varint(buf, pos, end)
    if pos < 0:
        return -1, 0, 0
    field = np.int64(tag >> np.uint64(3))
    wire = np.int64(tag & np.uint64(7))
    if field != first and (second == 0 or field != second):
        pos = skip_field(buf, pos, end, wire)
        if pos < 0:
            return -1, 0, 0
        return 0, pos, pos
    if wire != 2:
        return -1, 0, 0
    n, pos = read_varint(buf, pos, end)
    if pos < 0 or n > np.uint64(end - pos):
        return -1, 0, 0
    return field, pos, pos + np.int64(n)


@kernel
def walk_traces(buf, spans, times, kvs, resources, counts):
    """Walk an ``ExportTraceServiceRequest``: fill the tables (spans in resource -> scope -> span order,
    ``times[s] = (start, end)`` as uint64) and ``counts = (spans, kvs, resources)``.

    Returns ``OK``, ``ERR_MALFORMED`` or ``ERR_CAPACITY`` (``counts`` then holds the sizes needed).
    """
    end = buf.size
    pos = 0
    s = 0
    k = 0
    r = 0
    span_cap = spans.shape[0]
    kv_cap = kvs.shape[0]
    res_cap = resources.shape[0]
    full = False
    while pos < end:
        field, start, rs_end = next_message_field(buf, pos, end, 1, 0)
        if field < 0:
            return ERR_MALFORMED
        pos = rs_end
        if field == 0:
            continue
        pos = start
        if r < res_cap:
            resources[r, 0] = -1
            resources[r, 1] = -1
        else:
            full = True
        while pos < rs_end:  # ResourceSpans
            field, start, stop = next_message_field(buf, pos, rs_end, 1, 2)
            if field < 0:
                return ERR_MALFORMED
            pos = stop
            if field == 0:
                continue
            if field == 1:
                if r < res_cap:
                    if resources[r, 0] >= 0:
                        return ERR_MALFORMED  # a second resource message would be merged by protobuf
                    resources[r, 0] = start
                    resources[r, 1] = stop - start
                continue
            pos = start
            while pos < stop:  # ScopeSpans
                field, start, span_end = next_message_field(buf, pos, stop, 2, 0)
                if field < 0:
                    return ERR_MALFORMED
                pos = span_end
                if field == 0:
                    continue
                if s < span_cap and not full:
                    nk = _span(buf, start, span_end, r, spans, s, times, kvs, k, kv_cap)
                    if nk == -1:
                        return ERR_MALFORMED
                    k = nk
                    if k > kv_cap:
                        full = True
                else:
                    full = True
                    k += _count_fields(buf, start, span_end, 9)
                s += 1
        r += 1
    counts[0] = s
    counts[1] = k
    counts[2] = r
    if full or k > kv_cap:
        return ERR_CAPACITY
    return OK


@kernel
def _count_fields(buf, pos, end, number):
    """Occurrences of field ``number`` in a message (capacity estimate only: malformed data counts what
    it can)."""
    count = 0
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if pos < 0:
            return count
        if (tag >> np.uint64(3)) == number:
            count += 1
        pos = skip_field(buf, pos, end, np.int64(tag & np.uint64(7)))
        if pos < 0:
            return count
    return count


@kernel
def _log_record(buf, pos, end, res, scope, items, s, times, kvs, k, kv_cap):
    """Fill log row ``s`` (KeyValues from row ``k`` on); returns the next KeyValue row, or -1 malformed."""
    items[s, LOG_RESOURCE] = res
    items[s, LOG_BODY_OFF] = pos
    items[s, LOG_BODY_LEN] = -1
    items[s, LOG_SEVERITY] = 0
    items[s, LOG_SCOPE] = scope
    items[s, SPAN_TID_OFF] = pos
    items[s, SPAN_TID_LEN] = 0
    items[s, SPAN_SID_OFF] = pos
    items[s, SPAN_SID_LEN] = 0
    items[s, SPAN_KV_FIRST] = k
    items[s, SPAN_NAME_HASH] = 0
    times[s, 0] = 0
    times[s, 1] = 0
    count = 0
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if pos < 0:
            return -1
        field = tag >> np.uint64(3)
        wire = np.int64(tag & np.uint64(7))
        if field == 5 or field == 6 or field == 9 or field == 10:
            pos, stop = _length_delimited(buf, pos, end, wire)
            if stop < 0:
                return -1
            if field == 5:
                if items[s, LOG_BODY_LEN] >= 0:
                    return -1  # a second body message would be merged by protobuf
                items[s, LOG_BODY_OFF] = pos
                items[s, LOG_BODY_LEN] = stop - pos
            elif field == 9:
                items[s, SPAN_TID_OFF] = pos
                items[s, SPAN_TID_LEN] = stop - pos
            elif field == 10:
                items[s, SPAN_SID_OFF] = pos
                items[s, SPAN_SID_LEN] = stop - pos
            else:
                if k + count < kv_cap and not _keyvalue(buf, pos, stop, kvs, k + count):
                    return -1
                count += 1
            pos = stop
        elif field == 2:
            v, pos = _varint_field(buf, pos, end, wire)
            if pos < 0:
                return -1
            items[s, LOG_SEVERITY] = _int32(v)
        elif field == 1 or field == 11:
            v, pos = _fixed64_field(buf, pos, end, wire)
            if pos < 0:
                return -1
            times[s, 0 if field == 1 else 1] = v
        else:
            pos = skip_field(buf, pos, end, wire)
            if pos < 0:
                return -1
    items[s, SPAN_KV_COUNT] = count
    return k + count


@kernel
def walk_logs(buf, items, times, kvs, resources, scopes, counts):
    """Walk an ``ExportLogsServiceRequest`` like ``walk_traces`` (``times[s] = (time, observed time)``;
    ``counts = (records, kvs, resources, scopes)``); each record's ``LOG_SCOPE`` indexes ``scopes``."""
    end = buf.size
    pos = 0
    s = 0
    k = 0
    r = 0
    sc = 0
    item_cap = items.shape[0]
    kv_cap = kvs.shape[0]
    full = False
    while pos < end:
        field, start, rl_end = next_message_field(buf, pos, end, 1, 0)
        if field < 0:
            return ERR_MALFORMED
        pos = rl_end
        if field == 0:
            continue
        pos = start
        if r < resources.shape[0]:
            resources[r, 0] = -1
            resources[r, 1] = -1
        else:
            full = True
        while pos < rl_end:  # ResourceLogs
            field, start, stop = next_message_field(buf, pos, rl_end, 1, 2)
            if field < 0:
                return ERR_MALFORMED
            pos = stop
            if field == 0:
                continue
            if field == 1:
                if r < resources.shape[0]:
                    if resources[r, 0] >= 0:
                        return ERR_MALFORMED
                    resources[r, 0] = start
                    resources[r, 1] = stop - start
                continue
            pos = start
            if sc < scopes.shape[0]:
                scopes[sc, 0] = -1
                scopes[sc, 1] = -1
            else:
                full = True
            while pos < stop:  # ScopeLogs
                field, start, item_end = next_message_field(buf, pos, stop, 1, 2)
                if field < 0:
                    return ERR_MALFORMED
                pos = item_end
                if field == 0:
                    continue
                if field == 1:
                    if sc < scopes.shape[0]:
                        if scopes[sc, 0] >= 0:
                            return ERR_MALFORMED  # a second scope message would be merged
                        scopes[sc, 0] = start
                        scopes[sc, 1] = item_end - start
                elif s < item_cap and not full:
                    nk = _log_record(buf, start, item_end, r, sc, items, s, times, kvs, k, kv_cap)
                    if nk == -1:
                        return ERR_MALFORMED
                    k = nk
                    if k > kv_cap:
                        full = True
                    s += 1
                else:
                    full = True
                    k += _count_fields(buf, start, item_end, 6)
                    s += 1
            sc += 1
        r += 1
    counts[0] = s
    counts[1] = k
    counts[2] = r
    counts[3] = sc
    if full or k > kv_cap:
        return ERR_CAPACITY
    return OK
