"""One walk over a serialized OTLP trace or log request: validate like upb, count, check ids, record.

The walk is driven by a schema table built from the protobuf descriptors (``otlp_gateway.otlp.schema``):
per message type and field number, the field's *kind* (how to read and check it), its child type (for
messages) and an *action* (what to record); per type, a *role* (what opening or closing it means). Types
are specialised by path, so a ``KeyValue`` under ``Span.attributes`` (role ``R_ITEM_ATTRIBUTE``) is not the
``KeyValue`` inside an ``AnyValue`` (no role). One pass does all of this:

* **validity**: the request decodes exactly when upb would decode it (see ``wire``: tags, lengths, wire
  types, groups, UTF-8 in ``string`` fields, nesting depth); a known field with an unexpected wire type is
  an unknown field, as in upb;
* **counting and ids**: items (spans or log records) are counted; an item is invalid when its ids break
  the OTLP rules (spans: ``trace_id`` 16 bytes and ``span_id`` 8 bytes, neither all zeroes,
  ``parent_span_id`` empty or 8 bytes; log records: ids empty or of those lengths);
* **recording** (only with ``options.extract``): per item the byte ranges and scalars the canonical form
  and the stream key need, its kept attributes (capped per item and by distinct keys per request), the
  values of the looked-up attribute keys on the item and on its resource, and a group hash (items with
  equal group hashes belong to the same stream).

Protobuf semantics kept: the last occurrence of a scalar field wins, also across repeated occurrences of
a message field (which protobuf merges): a second ``resource``, ``scope`` or ``status`` just continues.
A second ``value`` of an attribute or a second log ``body`` (AnyValue merging) is not modelled: the walk
says ``NEEDS_NORMALIZING`` and the caller walks upb's re-serialization of the request instead.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from detectors._kernels import kernel
from otlp_gateway.otlp._kernels.wire import (
    MAX_DEPTH,
    all_zero,
    bytes_equal,
    hash_bytes,
    int32_of,
    mix,
    read_fixed64,
    read_varint,
    read_varint32,
    skip_group,
    skip_scalar,
    utf8_valid,
)

# --- field kinds (schema.kinds); the wire type each expects is WIRE_OF_KIND[kind]
K_UNKNOWN = 0
K_VARINT = 1
K_FIXED64 = 2
K_FIXED32 = 3
K_BYTES = 4
K_STRING = 5
K_MESSAGE = 6
WIRE_OF_KIND = np.array([-1, 0, 1, 5, 2, 2, 2], dtype=np.int64)

# --- roles of message types (schema.roles)
R_NONE = 0
R_RESOURCE_GROUP = 1
"""ResourceSpans / ResourceLogs: opening one starts a new resource index."""
R_SCOPE_GROUP = 2
"""ScopeSpans / ScopeLogs: opening one starts a new scope index."""
R_ITEM = 3
"""Span / LogRecord."""
R_ITEM_ATTRIBUTE = 4
R_RESOURCE_ATTRIBUTE = 5

# --- actions on fields (schema.actions)
A_NONE = 0
A_TRACE_ID = 1
A_SPAN_ID = 2
A_PARENT_ID = 3
A_NAME = 4
A_KIND = 5
A_STATUS_CODE = 6
A_TIME_0 = 7
"""Span start time; log record time."""
A_TIME_1 = 8
"""Span end time; log record observed time."""
A_SEVERITY = 9
A_BODY = 10
A_KEY = 11
A_VALUE = 12
A_SCOPE_NAME = 13

# --- item table columns (tables.items)
ITEM_RESOURCE = 0
ITEM_SCOPE = 1
ITEM_NAME_OFF = 2
ITEM_NAME_LEN = 3
ITEM_BODY_OFF = 4
ITEM_BODY_LEN = 5
"""-1 when the log record has no body."""
ITEM_KIND = 6
ITEM_STATUS = 7
ITEM_SEVERITY = 8
ITEM_TID_OFF = 9
ITEM_TID_LEN = 10
ITEM_SID_OFF = 11
ITEM_SID_LEN = 12
ITEM_KV_FIRST = 13
ITEM_KV_COUNT = 14
ITEM_NAME_HASH = 15
ITEM_GROUP = 16
ITEM_COLUMNS = 17

# --- kept-attribute table columns (tables.kvs)
KV_KEY_OFF = 0
KV_KEY_LEN = 1
KV_VAL_OFF = 2
KV_VAL_LEN = 3
"""-1 when the KeyValue has no value (the attribute value is then ``None``)."""
KV_KEY_HASH = 4
"""``hash_bytes`` of the key (the assembly needs it too)."""
KV_COLUMNS = 5

# --- looked-up values (tables.item_values[item, key], tables.resource_values[resource, key]):
# (offset, length) of the AnyValue; offset -1: key absent; length -1: present without a value
VALUE_OFF = 0
VALUE_LEN = 1

# --- tables.counts
C_ITEMS = 0
C_KVS = 1
C_RESOURCES = 2
C_SCOPES = 3
C_INVALID = 4
"""Items whose ids break the rules."""
C_CAPPED_ITEM = 5
"""Attributes left out of detection: beyond the per-item cap."""
C_CAPPED_KEYS = 6
"""Attributes left out of detection: their key came after the request's distinct-key cap."""
C_ERROR_AT = 7
"""Byte position of the first error."""
COUNTS = 8

# --- walk results
OK = 0
NEEDS_ROOM = 1
"""Tables too small (extract mode): ``counts`` holds the rows needed; walk again with larger tables."""
NEEDS_NORMALIZING = 2
"""Valid, but holds a merged AnyValue the tables do not model: walk upb's re-serialization instead."""
ERR_TAG = -1
ERR_TRUNCATED = -2
ERR_WIRE_TYPE = -3
ERR_GROUP = -4
ERR_UTF8 = -5
ERR_DEPTH = -6

Schema = namedtuple("Schema", ["kinds", "children", "actions", "roles"])
"""The walk's program (``otlp_gateway.otlp.schema`` builds it). Type 0 is the request.

* ``kinds``: int8 [types, field numbers] — ``K_*`` (field numbers past the table: unknown);
* ``children``: int32 [types, field numbers] — the type of a message field;
* ``actions``: int8 [types, field numbers] — ``A_*``;
* ``roles``: int8 [types] — ``R_*``.
"""

Lookups = namedtuple("Lookups", ["keys", "item_keys", "item_hashes", "resource_keys", "resource_hashes"])
"""Attribute keys whose values the walk records (the explicit stream id, stream-key attribute parts).

* ``keys``: uint8 — the key bytes, concatenated;
* ``item_keys`` / ``resource_keys``: int64 [n, 2] — (offset, length) in ``keys`` of each key looked up on
  items / on resources (``tables.item_values`` / ``resource_values`` follow this order);
* ``item_hashes`` / ``resource_hashes``: uint64 [n] — ``hash_bytes`` of each key.
"""

WalkOptions = namedtuple("WalkOptions", ["logs", "extract", "max_item_attributes", "max_request_keys"])
"""int64 scalars: ``logs`` 1 for a log request (the id rules differ), 0 for traces; ``extract`` 1 to
record the tables, 0 to validate and count only; the detection caps on kept attributes."""

WalkTables = namedtuple("WalkTables", ["items", "times", "item_values", "kvs", "resource_values", "scopes",
                                       "key_set", "counts"])
"""What the walk fills (rows beyond a table's size are counted, not written: ``NEEDS_ROOM``).

* ``items``: int64 [items, ITEM_COLUMNS]; ``times``: uint64 [items, 2] (``A_TIME_0``, ``A_TIME_1``);
* ``item_values``: int64 [items, lookups.item_keys, 2]; ``resource_values``: int64 [resources,
  lookups.resource_keys, 2] (``VALUE_*``);
* ``kvs``: int64 [kept attributes, KV_COLUMNS], each item's rows contiguous (``ITEM_KV_FIRST``, ``_COUNT``);
* ``scopes``: int64 [scopes, 2] — (offset, length) of the scope name, -1 when unset;
* ``key_set``: uint64, a power of two >= 2 * max_request_keys (scratch: the request's distinct keys);
* ``counts``: int64 [COUNTS].
"""

_TAG_GROUP = np.uint64(0x67726F7570)
_TAG_KEY_SET = np.uint64(0x6B657973)


@kernel
def _fail(counts, at, code):
    counts[C_ERROR_AT] = at
    return code


@kernel
def _slot(table, h):
    """Slot of hash ``h`` in an open-addressing table (0 = empty), or of the empty slot where it goes."""
    mask = table.size - 1
    i = np.int64(h & np.uint64(mask))
    while table[i] != 0 and table[i] != h:
        i = (i + 1) & mask
    return i


@kernel
def _record_lookups(buf, lookups_keys, key_ranges, key_hashes, key_off, key_len, kh, val_off, val_len, row):
    """An attribute just closed: if its key is looked up, remember where its value is.

    ``buf[key_off:+key_len]``: the key, ``kh`` its ``hash_bytes``; ``lookups_keys``/``key_ranges``/
    ``key_hashes``: the looked-up keys (``Lookups``, item or resource side); ``val_off``/``val_len``: the
    value (``VALUE_*`` conventions); ``row``: int64 [looked-up keys, 2], the item's or resource's values,
    where the last occurrence of a key wins (as in a dict)."""
    for j in range(key_ranges.shape[0]):
        if key_hashes[j] == kh and bytes_equal(buf, key_off, key_len, lookups_keys, key_ranges[j, 0],
                                                 key_ranges[j, 1]):
            row[j, VALUE_OFF] = val_off
            row[j, VALUE_LEN] = val_len


@kernel
def _ids_invalid(buf, logs, tid_off, tid_len, sid_off, sid_len, parent_len):
    if logs:
        return (tid_len != 0 and tid_len != 16) or (sid_len != 0 and sid_len != 8)
    return (tid_len != 16 or all_zero(buf, tid_off, tid_len) or sid_len != 8
            or all_zero(buf, sid_off, sid_len)
            or (parent_len != 0 and parent_len != 8))


@kernel
def walk(buf, schema, lookups, options, tables):
    """Walk the request in ``buf`` (see the module docstring); returns ``OK``, ``NEEDS_ROOM``,
    ``NEEDS_NORMALIZING`` or an ``ERR_*`` code (``tables.counts[C_ERROR_AT]`` says where).

    ``buf``: uint8, the serialized request; ``schema``: a ``Schema``; ``lookups``: a ``Lookups``;
    ``options``: a ``WalkOptions``; ``tables``: ``WalkTables`` (with ``options.extract`` 0 only ``counts``
    is written, the other tables may be empty).

    One long function on purpose: the open item's and attribute's fields live in local variables (CPU
    registers). Keeping them in a state array that helper kernels update made the walk 2-3x slower (numba
    arrays carry no aliasing information, so every store forced the loop to reload its tables)."""
    kinds, children, actions, roles = schema.kinds, schema.children, schema.actions, schema.roles
    items, times, item_values, kvs = tables.items, tables.times, tables.item_values, tables.kvs
    resource_values, scopes, key_set, counts = tables.resource_values, tables.scopes, tables.key_set, \
        tables.counts
    logs = options.logs != 0
    extract = options.extract != 0
    max_attributes = options.max_item_attributes
    max_keys = options.max_request_keys
    item_cap = items.shape[0] if extract else 0
    kv_cap = kvs.shape[0] if extract else 0
    resource_cap = resource_values.shape[0] if extract else 0
    scope_cap = scopes.shape[0] if extract else 0
    n_item_keys = lookups.item_keys.shape[0]
    n_fields = kinds.shape[1]
    if extract:
        key_set[:] = 0
    stack_type = np.empty(MAX_DEPTH + 1, dtype=np.int64)
    stack_end = np.empty(MAX_DEPTH + 1, dtype=np.int64)
    group_fields = np.empty(MAX_DEPTH + 1, dtype=np.int64)
    values = np.full((max(n_item_keys, 1), 2), -1, dtype=np.int64)  # the current item's looked-up values
    counts[:] = 0
    n_items = 0
    n_kvs = 0
    n_resources = 0
    n_scopes = 0
    invalid = 0
    capped_item = 0
    capped_keys = 0
    distinct_keys = 0
    normalize = False
    resource = -1
    scope = -1
    # the open item (items never nest)
    tid_off = tid_len = sid_off = sid_len = parent_len = np.int64(0)
    name_off = name_len = body_off = np.int64(0)
    body_len = np.int64(-1)
    kind = status = severity = np.int64(0)
    time_0 = time_1 = np.uint64(0)
    kv_first = kept = np.int64(0)
    # the open attribute (attributes of items and resources never nest in one another)
    key_off = key_len = val_off = np.int64(0)
    val_len = np.int64(-1)

    depth = 0
    typ = 0
    end = np.int64(buf.size)
    pos = np.int64(0)
    while True:
        if pos >= end:  # close the open message
            role = roles[typ]
            if role == R_ITEM:
                if _ids_invalid(buf, logs, tid_off, tid_len, sid_off, sid_len, parent_len):
                    invalid += 1
                s = n_items
                n_items += 1
                if s < item_cap:
                    name_hash = hash_bytes(buf, name_off, name_len)
                    group = mix(mix(_TAG_GROUP, np.uint64(resource)),
                                np.uint64(scope) if logs else name_hash)
                    for j in range(n_item_keys):
                        v_off, v_len = values[j, VALUE_OFF], values[j, VALUE_LEN]
                        group = mix(group, np.uint64(0) if v_off < 0 or v_len < 0 else
                                    mix(hash_bytes(buf, v_off, v_len), np.uint64(1)))
                        item_values[s, j, VALUE_OFF] = v_off
                        item_values[s, j, VALUE_LEN] = v_len
                    row = items[s]
                    row[ITEM_RESOURCE] = resource
                    row[ITEM_SCOPE] = scope
                    row[ITEM_NAME_OFF] = name_off
                    row[ITEM_NAME_LEN] = name_len
                    row[ITEM_BODY_OFF] = body_off
                    row[ITEM_BODY_LEN] = body_len
                    row[ITEM_KIND] = kind
                    row[ITEM_STATUS] = status
                    row[ITEM_SEVERITY] = severity
                    row[ITEM_TID_OFF] = tid_off
                    row[ITEM_TID_LEN] = tid_len
                    row[ITEM_SID_OFF] = sid_off
                    row[ITEM_SID_LEN] = sid_len
                    row[ITEM_KV_FIRST] = kv_first
                    row[ITEM_KV_COUNT] = kept
                    row[ITEM_NAME_HASH] = np.int64(name_hash)
                    row[ITEM_GROUP] = np.int64(group)
                    times[s, 0] = time_0
                    times[s, 1] = time_1
            elif role == R_ITEM_ATTRIBUTE and extract:
                kh = hash_bytes(buf, key_off, key_len)
                _record_lookups(buf, lookups.keys, lookups.item_keys, lookups.item_hashes, key_off, key_len,
                                kh, val_off, val_len, values)
                keep = True
                if kept >= max_attributes:
                    capped_item += 1
                    keep = False
                else:
                    h = mix(kh, _TAG_KEY_SET)  # scrambled: crafted keys cannot crowd one probe chain
                    slot = _slot(key_set, h)
                    if key_set[slot] == 0:
                        if distinct_keys >= max_keys:
                            capped_keys += 1
                            keep = False
                        else:
                            key_set[slot] = h
                            distinct_keys += 1
                if keep:
                    if n_kvs < kv_cap:
                        kvs[n_kvs, KV_KEY_OFF] = key_off
                        kvs[n_kvs, KV_KEY_LEN] = key_len
                        kvs[n_kvs, KV_VAL_OFF] = val_off
                        kvs[n_kvs, KV_VAL_LEN] = val_len
                        kvs[n_kvs, KV_KEY_HASH] = np.int64(kh)
                    n_kvs += 1
                    kept += 1
            elif role == R_RESOURCE_ATTRIBUTE and resource < resource_cap:
                _record_lookups(buf, lookups.keys, lookups.resource_keys, lookups.resource_hashes, key_off,
                                key_len, hash_bytes(buf, key_off, key_len), val_off, val_len,
                                resource_values[resource])
            if depth == 0:
                break
            depth -= 1
            typ = stack_type[depth]
            end = stack_end[depth]
            continue

        at = pos
        first = buf[pos]
        if first < 0x80:  # one-byte tags (fields 1-15) inline: the loop's hottest line
            tag = np.uint64(first)
            pos += 1
        else:
            tag, pos = read_varint32(buf, pos, end)
            if pos < 0:
                return _fail(counts, at, ERR_TAG)
        field = np.int64(tag >> np.uint64(3))
        wire = np.int64(tag & np.uint64(7))
        if field == 0:
            return _fail(counts, at, ERR_TAG)
        field_kind = kinds[typ, field] if field < n_fields else K_UNKNOWN
        if field_kind != K_UNKNOWN and wire != WIRE_OF_KIND[field_kind]:
            field_kind = K_UNKNOWN  # upb keeps it as an unknown field
        if field_kind == K_UNKNOWN:
            if wire == 3:
                pos = skip_group(buf, pos, end, field, MAX_DEPTH - depth, group_fields)
                if pos == -2:
                    return _fail(counts, at, ERR_DEPTH)
                if pos < 0:
                    return _fail(counts, at, ERR_GROUP)
            elif wire == 4 or wire == 6 or wire == 7:
                return _fail(counts, at, ERR_WIRE_TYPE)
            else:
                pos = skip_scalar(buf, pos, end, wire)
                if pos < 0:
                    return _fail(counts, at, ERR_TRUNCATED)
            continue
        action = actions[typ, field]
        if field_kind == K_VARINT:
            value, pos = read_varint(buf, pos, end)
            if pos < 0:
                return _fail(counts, at, ERR_TRUNCATED)
            if action == A_KIND:
                kind = int32_of(value)
            elif action == A_STATUS_CODE:
                status = int32_of(value)
            elif action == A_SEVERITY:
                severity = int32_of(value)
            continue
        if field_kind == K_FIXED64:
            if pos + 8 > end:
                return _fail(counts, at, ERR_TRUNCATED)
            if action == A_TIME_0:
                time_0 = read_fixed64(buf, pos)
            elif action == A_TIME_1:
                time_1 = read_fixed64(buf, pos)
            pos += 8
            continue
        if field_kind == K_FIXED32:
            if pos + 4 > end:
                return _fail(counts, at, ERR_TRUNCATED)
            pos += 4
            continue
        if pos < end and buf[pos] < 0x80:
            length = np.uint64(buf[pos])
            pos += 1
        else:
            length, pos = read_varint32(buf, pos, end)
            if pos < 0:
                return _fail(counts, at, ERR_TRUNCATED)
        if length > np.uint64(end - pos):
            return _fail(counts, at, ERR_TRUNCATED)
        start = pos
        stop = pos + np.int64(length)
        if field_kind == K_MESSAGE:
            if depth + 1 > MAX_DEPTH:
                return _fail(counts, at, ERR_DEPTH)
            if action == A_VALUE:
                if val_len >= 0:
                    normalize = True  # a second value message: protobuf would merge the two
                val_off = start
                val_len = stop - start
            elif action == A_BODY:
                if body_len >= 0:
                    normalize = True
                body_off = start
                body_len = stop - start
            stack_type[depth] = typ
            stack_end[depth] = end
            depth += 1
            typ = children[typ, field]
            end = stop
            role = roles[typ]
            if role == R_RESOURCE_GROUP:
                resource = n_resources
                n_resources += 1
                if resource < resource_cap:
                    resource_values[resource, :, :] = -1
            elif role == R_SCOPE_GROUP:
                scope = n_scopes
                n_scopes += 1
                if scope < scope_cap:
                    scopes[scope, 0] = -1
                    scopes[scope, 1] = 0
            elif role == R_ITEM:
                tid_off = tid_len = sid_off = sid_len = parent_len = np.int64(0)
                name_off = name_len = body_off = np.int64(0)
                body_len = np.int64(-1)
                kind = status = severity = np.int64(0)
                time_0 = time_1 = np.uint64(0)
                kv_first = np.int64(n_kvs)
                kept = np.int64(0)
                values[:, :] = -1
            elif role == R_ITEM_ATTRIBUTE or role == R_RESOURCE_ATTRIBUTE:  # noqa: SIM109 (numba)
                key_off = start
                key_len = np.int64(0)
                val_off = start
                val_len = np.int64(-1)
            continue  # pos stays at the child's first field
        if field_kind == K_STRING and not utf8_valid(buf, start, stop):
            return _fail(counts, start, ERR_UTF8)
        if action == A_TRACE_ID:
            tid_off = start
            tid_len = stop - start
        elif action == A_SPAN_ID:
            sid_off = start
            sid_len = stop - start
        elif action == A_PARENT_ID:
            parent_len = stop - start
        elif action == A_NAME:
            name_off = start
            name_len = stop - start
        elif action == A_KEY:
            key_off = start
            key_len = stop - start
        elif action == A_SCOPE_NAME and 0 <= scope < scope_cap:
            scopes[scope, 0] = start
            scopes[scope, 1] = stop - start
        pos = stop

    counts[C_ITEMS] = n_items
    counts[C_KVS] = n_kvs
    counts[C_RESOURCES] = n_resources
    counts[C_SCOPES] = n_scopes
    counts[C_INVALID] = invalid
    counts[C_CAPPED_ITEM] = capped_item
    counts[C_CAPPED_KEYS] = capped_keys
    if extract and (n_items > item_cap or n_kvs > kv_cap or n_resources > resource_cap
                    or n_scopes > scope_cap):
        return NEEDS_ROOM
    if extract and normalize:
        return NEEDS_NORMALIZING
    return OK
