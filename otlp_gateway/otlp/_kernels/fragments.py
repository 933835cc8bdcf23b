"""Canonical span and log bytes assembled from memoized fragments, over the tables of :mod:`walk`.

A canonical span or log is ``head + (" |" + fragment per attribute in sorted key order, if any)``, where
a span head depends on (name, kind, status, duration bucket), a log head on (body class, severity), and
an attribute's fragment on its key and the *class* of its value: values of one class render to the same
text by the canonical rules (the caller's property tests check this against ``detectors.canonical``):

* string: its bytes; bool: its value; bytes: one class; no value: one class;
* int: its value when ``|v| < 1000`` (kept exactly), else (sign, decimal digits) (bucketed);
* double: (sign, integer digits) for 0 and for ``1e-3 <= |v| < 1e15`` (Python prints those positionally,
  so they mask to ``<F{digits}>``), else its bits;
* anything else (arrays, kvlists, several oneof fields): the AnyValue's raw bytes;
* under an identifier key (``is_identifier_key``): one class whatever the value;
* a log body: as a value, except bytes (rendered as hex, then masked): their raw bytes.

Keys and classes are 64-bit hashes (FNV-1a + a finalizer; domain-tagged so heads, fragments and keys
never share a hash by construction of the inputs). The memo is an open-addressing table (``uint64`` keys,
0 = empty) pointing into a byte arena; the key table records per key hash 1 = identifier, 2 = not.
The assembly kernel renders what it misses itself when the canonical rules have a compiled form for it
(``detectors._kernels.mask``: ASCII keys, names, bodies and strings; integers, booleans, bytes, no value)
and memoizes it on the spot, so a request whose misses are all of that kind is assembled in one call. The
rest (doubles, arrays, kvlists, merged AnyValues, non-ASCII text) it lists: the caller renders those with
the real canonical functions, inserts them (``insert_fragments``) and runs it again. An item's attributes
are sorted by key in O(n log n) (an item may carry up to the detection cap of attributes).
"""

from __future__ import annotations

import struct
from collections import namedtuple

import numpy as np

from detectors._kernels import kernel
from detectors._kernels import mask as canon
from otlp_gateway.otlp._kernels.walk import (
    ITEM_BODY_LEN,
    ITEM_BODY_OFF,
    ITEM_KIND,
    ITEM_KV_COUNT,
    ITEM_KV_FIRST,
    ITEM_NAME_HASH,
    ITEM_NAME_LEN,
    ITEM_NAME_OFF,
    ITEM_SEVERITY,
    ITEM_STATUS,
    KV_KEY_HASH,
    KV_KEY_LEN,
    KV_KEY_OFF,
    KV_VAL_LEN,
    KV_VAL_OFF,
)
from otlp_gateway.otlp._kernels.wire import hash_bytes, mix, read_fixed64, read_varint, skip_scalar

MISS_HEAD = 0
MISS_KEY = 1
"""Key not classified yet: columns hold (kind, kv row, hash if identifier, hash if not, key hash)."""
MISS_FRAGMENT = 2
MISS_COLUMNS = 5
NEED_OUTPUT = -1
"""``assemble`` return: the output buffer is too small (``work.sizes[0]`` holds the size needed)."""
HAS_MISSES = -2
"""``assemble`` return: ``work.sizes[1]`` misses listed; render them, insert, run again."""
NEED_ROOM = -3
"""``assemble`` return: a fragment it rendered (``work.sizes[2]`` bytes) or a key did not fit in the memo
(``work.sizes[3]``: ``ROOM_*``): make room and run again."""
ROOM_FRAGMENTS = 0
ROOM_ARENA = 1
ROOM_KEYS = 2
SIZES = 4

M_FRAGMENTS = 0
M_ARENA_USED = 1
M_KEYS = 2
META = 3

Memo = namedtuple("Memo", ["fragment_hashes", "fragment_offsets", "fragment_lengths", "arena", "key_hashes",
                           "key_flags", "meta"])
"""The memo tables (``otlp_gateway.otlp.memo.FragmentMemo`` owns and grows them).

* ``fragment_hashes``: uint64 [slots], open addressing, 0 = empty; ``fragment_offsets`` /
  ``fragment_lengths``: int64 [slots] — where each fragment's bytes are in ``arena`` (uint8); the memo
  makes the three columns of one [slots, 3] array, so that a slot is one row;
* ``key_hashes``: uint64 [key slots]; ``key_flags``: int8 [key slots] — 1 identifier key, 2 not;
* ``meta``: int64 [META] — fragments stored, arena bytes used, keys stored.
"""

Assembly = namedtuple("Assembly", ["order", "merge", "slots", "misses", "out", "out_off", "out_len", "sizes",
                                   "text", "tmp", "write_order"])
"""Scratch and output of ``assemble`` (``otlp_gateway.otlp.events`` sizes them per request).

* ``order`` / ``merge``: int64 [>= the most kept attributes of an item] — sort scratch;
* ``slots``: int64 [kept attributes + items] — memo slot of every head and fragment;
* ``misses``: int64 [kept attributes + items, MISS_COLUMNS] — what to render (``MISS_*``);
* ``out``: uint8 — the canonical bytes of the items in ``write_order`` (int64 [items]), each followed by a
  newline (which canonical bytes never hold: they escape it); ``out_off`` / ``out_len``: int64 [items] —
  item ``s`` is ``out[out_off[s]:out_off[s] + out_len[s]]``;
* ``sizes``: int64 [SIZES] — output bytes needed, misses listed, and what did not fit (``NEED_ROOM``);
* ``text`` / ``tmp``: uint8 [``canon.TEXT_BYTES``] / [``canon.TMP_BYTES``] — scratch of the fragments the
  kernel renders itself.
"""

_TAG_HEAD = np.uint64(0x68656164)
_TAG_LOG_HEAD = np.uint64(0x6C6F67)
_TAG_KEY = np.uint64(0x6B6579)
_TAG_ID = np.uint64(0x4944)
_T_NONE = np.uint64(1)
_T_STR = np.uint64(2)
_T_BOOL = np.uint64(3)
_T_INT = np.uint64(4)
_T_INT_BIG = np.uint64(5)
_T_DOUBLE = np.uint64(6)
_T_DOUBLE_BITS = np.uint64(7)
_T_BYTES = np.uint64(8)
_T_RAW = np.uint64(9)
_SEP = np.frombuffer(b" |", dtype=np.uint8)
_BITS_1E_3 = np.uint64(struct.unpack("<Q", struct.pack("<d", 1e-3))[0])
_BITS_1E15 = np.uint64(struct.unpack("<Q", struct.pack("<d", 1e15))[0])


@kernel
def _digits(v):
    d = 0
    while v > 0:
        d += 1
        v //= np.uint64(10)
    return d


@kernel
def _only_field(buf, off, length):
    """(fields, field number, wire type, position of its value) of the AnyValue at [off, off+length):
    fields -1 when it does not parse, 0 when empty, 2 for several (the rest then undefined)."""
    end = off + length
    pos = off
    fields = 0
    last_field = np.uint64(0)
    last_wire = np.int64(0)
    last_pos = np.int64(0)
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if pos < 0:
            return -1, last_field, last_wire, last_pos
        last_field = tag >> np.uint64(3)
        last_wire = np.int64(tag & np.uint64(7))
        last_pos = pos
        pos = skip_scalar(buf, pos, end, last_wire)
        if pos < 0:
            return -1, last_field, last_wire, last_pos
        fields += 1
        if fields > 1:
            return 2, last_field, last_wire, last_pos
    return fields, last_field, last_wire, last_pos


@kernel
def value_class(buf, off, length, is_body):
    """Class hash of the AnyValue message at [off, off+length) (length -1: no value)."""
    if length < 0:
        return mix(_T_NONE, 0)
    fields, last_field, last_wire, last_pos = _only_field(buf, off, length)
    if fields == 0:
        return mix(_T_NONE, 0)
    if fields != 1:
        return mix(_T_RAW, hash_bytes(buf, off, length))
    end = off + length
    if last_field == 1 and last_wire == 2:
        n, p = read_varint(buf, last_pos, end)
        return mix(_T_STR, hash_bytes(buf, p, np.int64(n)))
    if last_field == 2 and last_wire == 0:
        v, _ = read_varint(buf, last_pos, end)
        return mix(_T_BOOL, np.uint64(1) if v != 0 else np.uint64(0))
    if last_field == 3 and last_wire == 0:
        u, _ = read_varint(buf, last_pos, end)
        v = np.int64(u)
        if -1000 < v < 1000:
            return mix(_T_INT, u)
        mag = np.uint64(0) - u if v < 0 else u
        sign = np.uint64(1) if v < 0 else np.uint64(0)
        return mix(mix(_T_INT_BIG, sign), np.uint64(_digits(mag)))
    if last_field == 4 and last_wire == 1:
        bits = read_fixed64(buf, last_pos)
        sign = bits >> np.uint64(63)
        magnitude = bits & np.uint64(0x7FFFFFFFFFFFFFFF)  # ordered like |v| for non-NaN doubles
        if magnitude == 0:
            return mix(mix(_T_DOUBLE, sign), np.uint64(0))
        if _BITS_1E_3 <= magnitude < _BITS_1E15:
            exponent = np.int64(magnitude >> np.uint64(52)) - 1023
            whole = np.uint64(0)
            if exponent >= 0:  # |v| >= 1: the integer part from the mantissa (exponent < 50 here)
                mantissa = (magnitude & np.uint64((1 << 52) - 1)) | np.uint64(1 << 52)
                whole = mantissa >> np.uint64(52 - exponent)
            return mix(mix(_T_DOUBLE, sign), np.uint64(_digits(whole)))
        return mix(_T_DOUBLE_BITS, bits)
    if last_field == 7 and last_wire == 2 and not is_body:
        return mix(_T_BYTES, 0)
    return mix(_T_RAW, hash_bytes(buf, off, length))


@kernel
def _key_less(buf, kvs, a, b):
    """Whether the key of KeyValue row ``a`` sorts before that of row ``b`` (bytewise, as Python's str
    order for UTF-8)."""
    a_off, a_len = kvs[a, KV_KEY_OFF], kvs[a, KV_KEY_LEN]
    b_off, b_len = kvs[b, KV_KEY_OFF], kvs[b, KV_KEY_LEN]
    for i in range(min(a_len, b_len)):
        x = buf[a_off + i]
        y = buf[b_off + i]
        if x != y:
            return x < y
    return a_len < b_len


@kernel
def _keys_equal(buf, kvs, a, b):
    a_len = kvs[a, KV_KEY_LEN]
    if a_len != kvs[b, KV_KEY_LEN]:
        return False
    a_off, b_off = kvs[a, KV_KEY_OFF], kvs[b, KV_KEY_OFF]
    for i in range(a_len):  # noqa: SIM110 (numba: no generator in all())
        if buf[a_off + i] != buf[b_off + i]:
            return False
    return True


@kernel
def sort_by_key(buf, kvs, order, merge, count):
    """Stable sort of ``order[:count]`` (KeyValue rows) by key bytes: insertion sort for short runs, a
    bottom-up merge sort above (O(n log n) comparisons however many attributes an item has)."""
    run = 16
    for lo in range(0, count, run):
        hi = min(lo + run, count)
        for i in range(lo + 1, hi):
            cur = order[i]
            j = i - 1
            while j >= lo and _key_less(buf, kvs, cur, order[j]):
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = cur
    width = run
    src, dst = order, merge
    result_in_order = True
    while width < count:
        for lo in range(0, count, 2 * width):
            mid = min(lo + width, count)
            hi = min(lo + 2 * width, count)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if _key_less(buf, kvs, src[j], src[i]):  # strictly less: equal keys keep their order
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        result_in_order = not result_in_order
        width *= 2
    if not result_in_order:
        order[:count] = merge[:count]


@kernel
def find(keys, h):
    """Slot of hash ``h`` in an open-addressing table, or of the empty slot where it would go."""
    mask = keys.size - 1
    i = np.int64(h & np.uint64(mask))
    while keys[i] != 0 and keys[i] != h:
        i = (i + 1) & mask
    return i


@kernel
def _digits_bits(v):
    n = 0
    while v > 0:
        n += 1
        v >>= np.uint64(1)
    return n


@kernel
def _bucket(times_row):
    """``duration_bucket`` of a span's (start, end) times."""
    start = times_row[0]
    stop = times_row[1]
    if stop > start:
        return _digits_bits((stop - start) // np.uint64(1000))
    return 0


@kernel
def head_hash(name_hash, kind, status, times_row):
    bucket = _bucket(times_row)
    h = mix(_TAG_HEAD, np.uint64(name_hash))
    h = mix(h, np.uint64(kind))
    h = mix(h, np.uint64(status))
    return mix(h, np.uint64(bucket))


@kernel
def _miss(misses, n_miss, kind, row, h, extra):
    """Record a cache miss (what, which item or KeyValue row, its hash, an extra hash); the new count."""
    misses[n_miss, 0] = kind
    misses[n_miss, 1] = row
    misses[n_miss, 2] = np.int64(h)
    misses[n_miss, 3] = np.int64(extra)
    return n_miss + 1


@kernel
def _store(memo, slot, h, text, n, sizes):
    """Memoize ``text[:n]`` under ``h`` at its empty ``slot``; False when it does not fit (``sizes[2:4]``
    say how much and where)."""
    meta = memo.meta
    if meta[M_FRAGMENTS] + 1 > memo.fragment_hashes.size // 2 or meta[M_ARENA_USED] + n > memo.arena.size:
        sizes[2] = n
        sizes[3] = ROOM_FRAGMENTS if meta[M_FRAGMENTS] + 1 > memo.fragment_hashes.size // 2 else ROOM_ARENA
        return False
    a = meta[M_ARENA_USED]
    arena = memo.arena
    for j in range(n):
        arena[a + j] = text[j]
    memo.fragment_hashes[slot] = h
    memo.fragment_offsets[slot] = a
    memo.fragment_lengths[slot] = n
    meta[M_FRAGMENTS] += 1
    meta[M_ARENA_USED] += n
    return True


@kernel
def _string_field(buf, pos, end):
    """(start, length) of the string whose length varint is at ``pos``; length -1 when not all ASCII (the
    walk checked it is UTF-8)."""
    n, p = read_varint(buf, pos, end)
    length = np.int64(n)
    return p, length if canon.is_ascii(buf, p, length) else np.int64(-1)


@kernel
def _render_fragment(buf, kvs, row, identifier, work):
    """The fragment of KeyValue ``row`` (an ASCII key) written to ``work.text``: its length, or -1 when it is
    left to Python (a double, an array, a kvlist, a merged AnyValue, non-ASCII text)."""
    off, length = kvs[row, KV_VAL_OFF], kvs[row, KV_VAL_LEN]
    kind = canon.V_NULL
    s_off = np.int64(0)
    s_len = np.int64(0)
    number = np.int64(0)
    if not identifier and length >= 0:
        fields, field, wire, pos = _only_field(buf, off, length)
        if fields == 1:
            if field == 1 and wire == 2:
                s_off, s_len = _string_field(buf, pos, off + length)
                if s_len < 0:
                    return -1
                kind = canon.V_TEXT
            elif field == 2 and wire == 0:
                v, _ = read_varint(buf, pos, off + length)
                kind = canon.V_TRUE if v != 0 else canon.V_FALSE
            elif field == 3 and wire == 0:
                u, _ = read_varint(buf, pos, off + length)
                number = np.int64(u)
                kind = canon.V_INT
            elif field == 7 and wire == 2:
                kind = canon.V_BYTES
            else:
                return -1
        elif fields != 0:
            return -1
    return canon.attribute_fragment(buf, kvs[row, KV_KEY_OFF], kvs[row, KV_KEY_LEN], identifier, kind, buf,
                                    s_off, s_len, number, work.tmp, work.text, 0)


@kernel
def _render_head(buf, items, times, s, logs, work):
    """Item ``s``'s head written to ``work.text``: its length, or -1 when it is left to Python (non-ASCII
    text, a body that is not one string, a kind, status or severity without a name)."""
    if logs:
        off, length = items[s, ITEM_BODY_OFF], items[s, ITEM_BODY_LEN]
        t_off = np.int64(0)
        t_len = np.int64(0)
        if length >= 0:
            fields, field, wire, pos = _only_field(buf, off, length)
            if fields == 1 and field == 1 and wire == 2:
                t_off, t_len = _string_field(buf, pos, off + length)
                if t_len < 0:
                    return -1
            elif fields != 0:
                return -1
        return canon.log_head(buf, t_off, t_len, items[s, ITEM_SEVERITY], work.tmp, work.text, 0)
    off, n = items[s, ITEM_NAME_OFF], items[s, ITEM_NAME_LEN]
    if not canon.is_ascii(buf, off, n):
        return -1
    return canon.span_head(buf, off, n, items[s, ITEM_KIND], items[s, ITEM_STATUS], _bucket(times[s]),
                           work.tmp, work.text, 0)


@kernel
def assemble(buf, items, times, kvs, logs, memo, work):
    """Canonical bytes of every item (span, or log record when ``logs``) of the walk's tables.

    ``buf``: the request; ``items``/``times``/``kvs``: the walk's tables (exactly the request's items);
    ``memo``: a ``Memo``; ``work``: an ``Assembly``. A head or fragment the memo misses is rendered here
    and memoized (``detectors._kernels.mask``: ASCII text, strings, integers, booleans, bytes, no value);
    the rest is listed for Python. Returns the bytes written to ``work.out``, ``HAS_MISSES``
    (``work.misses[:work.sizes[1]]`` lists what to render; nothing written), ``NEED_ROOM`` or
    ``NEED_OUTPUT``.
    """
    fkeys, flen, foff, arena = memo.fragment_hashes, memo.fragment_lengths, memo.fragment_offsets, memo.arena
    kkeys, kflag = memo.key_hashes, memo.key_flags
    order, slots, misses, out = work.order, work.slots, work.misses, work.out
    out_off, out_len, sizes, text = work.out_off, work.out_len, work.sizes, work.text
    n_items = items.shape[0]
    n_miss = 0
    total = 0
    cursor = 0  # next free row of ``slots``
    for s in range(n_items):
        first = items[s, ITEM_KV_FIRST]
        count = items[s, ITEM_KV_COUNT]
        if logs:
            body = value_class(buf, items[s, ITEM_BODY_OFF], items[s, ITEM_BODY_LEN], True)
            hh = mix(mix(_TAG_LOG_HEAD, body), np.uint64(items[s, ITEM_SEVERITY]))
        else:
            hh = head_hash(items[s, ITEM_NAME_HASH], items[s, ITEM_KIND], items[s, ITEM_STATUS], times[s])
        hslot = find(fkeys, hh)
        if fkeys[hslot] == 0:
            n = _render_head(buf, items, times, s, logs, work)
            if n < 0:
                n_miss = _miss(misses, n_miss, MISS_HEAD, s, hh, np.uint64(0))
            elif not _store(memo, hslot, hh, text, n, sizes):
                return NEED_ROOM
            else:
                total += n
        else:
            total += flen[hslot]
        slots[cursor] = hslot
        cursor += 1
        for i in range(count):
            order[i] = first + i
        sort_by_key(buf, kvs, order, work.merge, count)
        kept = 0
        for i in range(count):
            row = order[i]
            if i + 1 < count and _keys_equal(buf, kvs, row, order[i + 1]):
                continue  # a repeated key: the last one wins, as in a dict
            kh = mix(_TAG_KEY, np.uint64(kvs[row, KV_KEY_HASH]))
            kslot = find(kkeys, kh)
            id_hash = mix(kh, _TAG_ID)
            if kkeys[kslot] == 0:
                key_off, key_len = kvs[row, KV_KEY_OFF], kvs[row, KV_KEY_LEN]
                if key_len > canon.MAX_KEY_BYTES or not canon.is_ascii(buf, key_off, key_len):
                    misses[n_miss, 4] = np.int64(kh)
                    vh = mix(kh, value_class(buf, kvs[row, KV_VAL_OFF], kvs[row, KV_VAL_LEN], False))
                    n_miss = _miss(misses, n_miss, MISS_KEY, row, id_hash, vh)
                    slots[cursor + kept] = -1
                    kept += 1
                    continue
                if memo.meta[M_KEYS] + 1 > kkeys.size // 2:
                    sizes[3] = ROOM_KEYS
                    return NEED_ROOM
                kkeys[kslot] = kh
                kflag[kslot] = 1 if canon.identifier_key(buf, key_off, key_len) else 2
                memo.meta[M_KEYS] += 1
            identifier = kflag[kslot] == 1
            if identifier:
                fh = id_hash
            else:
                fh = mix(kh, value_class(buf, kvs[row, KV_VAL_OFF], kvs[row, KV_VAL_LEN], False))
            fslot = find(fkeys, fh)
            if fkeys[fslot] == 0:
                n = _render_fragment(buf, kvs, row, identifier, work)
                if n < 0:
                    n_miss = _miss(misses, n_miss, MISS_FRAGMENT, row, fh, np.uint64(0))
                elif not _store(memo, fslot, fh, text, n, sizes):
                    return NEED_ROOM
                else:
                    total += n
            else:
                total += flen[fslot]
            slots[cursor + kept] = fslot
            kept += 1
        if kept > 0:
            total += 2
        out_off[s] = cursor - 1  # its head's row of ``slots``, and its fragments' count, until the write pass
        out_len[s] = kept
        cursor += kept
    total += n_items  # the newlines
    sizes[0] = total
    sizes[1] = n_miss
    if n_miss > 0:
        return HAS_MISSES
    if total > out.size:
        return NEED_OUTPUT
    written = 0
    for k in range(n_items):
        s = work.write_order[k]
        kept = out_len[s]
        cursor = out_off[s]
        out_off[s] = written
        for i in range(kept + 1):
            if i == 1:
                out[written] = _SEP[0]
                out[written + 1] = _SEP[1]
                written += 2
            slot = slots[cursor + i]
            a = foff[slot]
            n = flen[slot]
            for j in range(n):  # a loop: numba's slice assignment costs more for a few bytes
                out[written + j] = arena[a + j]
            written += n
        out_len[s] = written - out_off[s]
        out[written] = 10
        written += 1
    return written


@kernel
def group_items(hashes, order, bounds):
    """Items grouped by hash: groups in order of first appearance, items in arrival order within a group.
    Writes ``order`` (int64 [items]: the items group by group) and ``bounds`` (int64 [items + 1]: group
    ``g`` is ``order[bounds[g]:bounds[g + 1]]``); returns the number of groups."""
    n = hashes.size
    size = 8
    while size < 2 * n:
        size *= 2
    mask = size - 1
    keys = np.zeros(size, dtype=np.int64)
    used = np.zeros(size, dtype=np.bool_)
    ids = np.zeros(size, dtype=np.int64)
    group = np.empty(n, dtype=np.int64)
    counts = np.zeros(n + 1, dtype=np.int64)
    groups = 0
    for s in range(n):
        h = hashes[s]
        i = np.int64(np.uint64(h) & np.uint64(mask))
        while used[i] and keys[i] != h:
            i = (i + 1) & mask
        if not used[i]:
            used[i] = True
            keys[i] = h
            ids[i] = groups
            groups += 1
        group[s] = ids[i]
        counts[ids[i] + 1] += 1
    bounds[0] = 0
    for g in range(groups):
        bounds[g + 1] = bounds[g] + counts[g + 1]
        counts[g + 1] = bounds[g]  # now the next free place of group g
    for s in range(n):
        g = group[s]
        order[counts[g + 1]] = s
        counts[g + 1] += 1
    return groups


@kernel
def insert_fragments(memo, hashes, blob, blob_offs, blob_lens):
    """Memoize fragments ``blob[blob_offs[i]:+blob_lens[i]]`` under ``hashes[i]``. Returns False (the rest
    not inserted) when the table would pass half full or the arena is full: the caller makes room."""
    fkeys, foff, flen, arena, meta = memo.fragment_hashes, memo.fragment_offsets, memo.fragment_lengths, \
        memo.arena, memo.meta
    limit = fkeys.size // 2
    for i in range(hashes.size):
        h = hashes[i]
        slot = find(fkeys, h)
        if fkeys[slot] == h:
            continue
        n = blob_lens[i]
        if meta[M_FRAGMENTS] + 1 > limit or meta[M_ARENA_USED] + n > arena.size:
            return False
        a = meta[M_ARENA_USED]
        b = blob_offs[i]
        for j in range(n):
            arena[a + j] = blob[b + j]
        fkeys[slot] = h
        foff[slot] = a
        flen[slot] = n
        meta[M_FRAGMENTS] += 1
        meta[M_ARENA_USED] += n
    return True


@kernel
def insert_keys(memo, hashes, flags):
    """Record key hashes as identifier (1) or not (2); False when the table would pass half full."""
    kkeys, kflag, meta = memo.key_hashes, memo.key_flags, memo.meta
    limit = kkeys.size // 2
    for i in range(hashes.size):
        slot = find(kkeys, hashes[i])
        if kkeys[slot] == hashes[i]:
            continue
        if meta[M_KEYS] + 1 > limit:
            return False
        kkeys[slot] = hashes[i]
        kflag[slot] = flags[i]
        meta[M_KEYS] += 1
    return True


@kernel
def rehash(old, new):
    """Copy every entry of the memo ``old`` into the larger, empty memo ``new`` (same arena contents)."""
    new.arena[:old.meta[M_ARENA_USED]] = old.arena[:old.meta[M_ARENA_USED]]
    for i in range(old.fragment_hashes.size):
        h = old.fragment_hashes[i]
        if h != 0:
            slot = find(new.fragment_hashes, h)
            new.fragment_hashes[slot] = h
            new.fragment_offsets[slot] = old.fragment_offsets[i]
            new.fragment_lengths[slot] = old.fragment_lengths[i]
    for i in range(old.key_hashes.size):
        h = old.key_hashes[i]
        if h != 0:
            slot = find(new.key_hashes, h)
            new.key_hashes[slot] = h
            new.key_flags[slot] = old.key_flags[i]
    new.meta[:] = old.meta
