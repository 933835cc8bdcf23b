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
The assembly kernel reports what it misses instead of rendering: the caller renders those with the real
canonical functions, inserts them (``insert_fragments``) and runs it again.
"""

from __future__ import annotations

import struct

import numpy as np

from detectors._kernels import kernel
from otlp_gateway.otlp._kernels.walk import (
    KV_KEY_LEN,
    KV_KEY_OFF,
    KV_VAL_LEN,
    KV_VAL_OFF,
    LOG_BODY_LEN,
    LOG_BODY_OFF,
    LOG_SEVERITY,
    SPAN_KIND,
    SPAN_KV_COUNT,
    SPAN_KV_FIRST,
    SPAN_NAME_HASH,
    SPAN_STATUS,
    hash_bytes,
    read_fixed64,
    read_varint,
    skip_field,
)

MISS_HEAD = 0
MISS_KEY = 1
"""Key not classified yet: columns hold (kind, kv row, hash if identifier, hash if not, key hash)."""
MISS_FRAGMENT = 2
MISS_COLUMNS = 5
NEED_OUTPUT = -1
"""``assemble_spans`` return: the output buffer is too small (``sizes[0]`` holds the size needed)."""
HAS_MISSES = -2
"""``assemble_spans`` return: ``sizes[1]`` misses listed; render them, insert, run again."""

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
def _finalize(x):
    """The splitmix64 finalizer: a bijection of 64-bit values that spreads every input bit."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@kernel
def mix(h, value):
    """Fold a 64-bit value into a hash; never returns 0 (the empty slot). ``h`` is scrambled before the
    value goes in, so (h, value) pairs with equal ``h ^ value`` do not collide (a plain xor did)."""
    x = _finalize(_finalize(np.uint64(h)) ^ np.uint64(value))
    return x if x != 0 else np.uint64(1)


@kernel
def _digits(v):
    d = 0
    while v > 0:
        d += 1
        v //= np.uint64(10)
    return d


@kernel
def value_class(buf, off, length, is_body):
    """Class hash of the AnyValue message at [off, off+length) (length -1: no value)."""
    if length < 0:
        return mix(_T_NONE, 0)
    end = off + length
    pos = off
    fields = 0
    last_field = np.uint64(0)
    last_wire = 0
    last_pos = 0
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        if pos < 0:
            return mix(_T_RAW, hash_bytes(buf, off, length))
        last_field = tag >> np.uint64(3)
        last_wire = np.int64(tag & np.uint64(7))
        last_pos = pos
        pos = skip_field(buf, pos, end, last_wire)
        if pos < 0:
            return mix(_T_RAW, hash_bytes(buf, off, length))
        fields += 1
    if fields == 0:
        return mix(_T_NONE, 0)
    if fields > 1:
        return mix(_T_RAW, hash_bytes(buf, off, length))
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
def _key_less(buf, a_off, a_len, b_off, b_len):
    n = min(a_len, b_len)
    for i in range(n):
        x = buf[a_off + i]
        y = buf[b_off + i]
        if x != y:
            return x < y
    return a_len < b_len


@kernel
def _key_equal(buf, a_off, a_len, b_off, b_len):
    if a_len != b_len:
        return False
    for i in range(a_len):  # noqa: SIM110 (numba: no generator in all())
        if buf[a_off + i] != buf[b_off + i]:
            return False
    return True


@kernel
def find(keys, h):
    """Slot of hash ``h`` in an open-addressing table, or of the empty slot where it would go."""
    mask = keys.size - 1
    i = np.int64(h & np.uint64(mask))
    while keys[i] != 0 and keys[i] != h:
        i = (i + 1) & mask
    return i


@kernel
def head_hash(name_hash, kind, status, times_row):
    start = times_row[0]
    stop = times_row[1]
    bucket = 0
    if stop > start:
        bucket = _digits_bits((stop - start) // np.uint64(1000))
    h = mix(_TAG_HEAD, np.uint64(name_hash))
    h = mix(h, np.uint64(kind))
    h = mix(h, np.uint64(status))
    return mix(h, np.uint64(bucket))


@kernel
def _digits_bits(v):
    n = 0
    while v > 0:
        n += 1
        v >>= np.uint64(1)
    return n


@kernel
def _miss(misses, n_miss, kind, row, h, extra):
    """Record a cache miss (what, which span or KeyValue row, its hash, an extra hash); the new count."""
    misses[n_miss, 0] = kind
    misses[n_miss, 1] = row
    misses[n_miss, 2] = np.int64(h)
    misses[n_miss, 3] = np.int64(extra)
    return n_miss + 1


@kernel
def assemble(buf, spans, times, n_spans, is_logs, kvs, fkeys, foff, flen, arena, kkeys, kflag,
             order, slots, misses, out, out_off, out_len, sizes):
    """Canonical bytes of every span (or log record: ``is_logs``) into ``out`` (item ``s`` at
    ``out[out_off[s]:+out_len[s]]``).

    ``order``/``slots`` are scratch rows (one per KeyValue plus one per span). Returns the bytes written,
    ``HAS_MISSES`` (``misses[:sizes[1]]`` lists what to render; nothing written) or ``NEED_OUTPUT``.
    """
    n_miss = 0
    total = 0
    cursor = 0  # next free row of ``slots``
    for s in range(n_spans):
        first = spans[s, SPAN_KV_FIRST]
        count = spans[s, SPAN_KV_COUNT]
        if is_logs:
            body = value_class(buf, spans[s, LOG_BODY_OFF], spans[s, LOG_BODY_LEN], True)
            hh = mix(mix(_TAG_LOG_HEAD, body), np.uint64(spans[s, LOG_SEVERITY]))
        else:
            hh = head_hash(spans[s, SPAN_NAME_HASH], spans[s, SPAN_KIND], spans[s, SPAN_STATUS], times[s])
        hslot = find(fkeys, hh)
        if fkeys[hslot] == 0:
            n_miss = _miss(misses, n_miss, MISS_HEAD, s, hh, np.uint64(0))
        else:
            total += flen[hslot]
        slots[cursor] = hslot
        cursor += 1
        # stable insertion sort of the span's KeyValues by key bytes
        for i in range(count):
            order[i] = first + i
        for i in range(1, count):
            cur = order[i]
            j = i - 1
            while j >= 0 and _key_less(buf, kvs[cur, KV_KEY_OFF], kvs[cur, KV_KEY_LEN],
                                       kvs[order[j], KV_KEY_OFF], kvs[order[j], KV_KEY_LEN]):
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = cur
        kept = 0
        for i in range(count):
            row = order[i]
            if i + 1 < count:
                nxt = order[i + 1]
                if _key_equal(buf, kvs[row, KV_KEY_OFF], kvs[row, KV_KEY_LEN], kvs[nxt, KV_KEY_OFF],
                              kvs[nxt, KV_KEY_LEN]):
                    continue  # a repeated key: the last one wins, as in a dict
            kh = mix(_TAG_KEY, hash_bytes(buf, kvs[row, KV_KEY_OFF], kvs[row, KV_KEY_LEN]))
            kslot = find(kkeys, kh)
            id_hash = mix(kh, _TAG_ID)
            if kkeys[kslot] == 0:
                misses[n_miss, 4] = np.int64(kh)
                n_miss = _miss(misses, n_miss, MISS_KEY, row, id_hash,
                               mix(kh, value_class(buf, kvs[row, KV_VAL_OFF], kvs[row, KV_VAL_LEN], False)))
                slots[cursor + kept] = -1
                kept += 1
                continue
            if kflag[kslot] == 1:
                fh = id_hash
            else:
                fh = mix(kh, value_class(buf, kvs[row, KV_VAL_OFF], kvs[row, KV_VAL_LEN], False))
            fslot = find(fkeys, fh)
            if fkeys[fslot] == 0:
                n_miss = _miss(misses, n_miss, MISS_FRAGMENT, row, fh, np.uint64(0))
            else:
                total += flen[fslot]
            slots[cursor + kept] = fslot
            kept += 1
        if kept > 0:
            total += 2
        out_len[s] = kept  # fragments of this span, until the write pass
        cursor += kept
    sizes[0] = total
    sizes[1] = n_miss
    if n_miss > 0:
        return HAS_MISSES
    if total > out.size:
        return NEED_OUTPUT
    cursor = 0
    written = 0
    for s in range(n_spans):
        kept = out_len[s]
        out_off[s] = written
        for i in range(kept + 1):
            if i == 1:
                out[written] = _SEP[0]
                out[written + 1] = _SEP[1]
                written += 2
            slot = slots[cursor + i]
            a = foff[slot]
            for j in range(flen[slot]):
                out[written + j] = arena[a + j]
            written += flen[slot]
        cursor += kept + 1
        out_len[s] = written - out_off[s]
    return written


@kernel
def insert_fragments(fkeys, foff, flen, arena, meta, hashes, blob, blob_offs, blob_lens):
    """Memoize fragments ``blob[blob_offs[i]:+blob_lens[i]]`` under ``hashes[i]``; ``meta`` = (entries,
    arena bytes used). Returns False (nothing more inserted) when the table would pass half full or the
    arena is full: the caller clears and retries."""
    limit = fkeys.size // 2
    for i in range(hashes.size):
        h = hashes[i]
        slot = find(fkeys, h)
        if fkeys[slot] == h:
            continue
        n = blob_lens[i]
        if meta[0] + 1 > limit or meta[1] + n > arena.size:
            return False
        a = meta[1]
        for j in range(n):
            arena[a + j] = blob[blob_offs[i] + j]
        fkeys[slot] = h
        foff[slot] = a
        flen[slot] = n
        meta[0] += 1
        meta[1] += n
    return True


@kernel
def insert_keys(kkeys, kflag, meta, hashes, flags):
    """Record key hashes as identifier (1) or not (2); False when the table would pass half full."""
    limit = kkeys.size // 2
    for i in range(hashes.size):
        slot = find(kkeys, hashes[i])
        if kkeys[slot] == hashes[i]:
            continue
        if meta[2] + 1 > limit:
            return False
        kkeys[slot] = hashes[i]
        kflag[slot] = flags[i]
        meta[2] += 1
    return True
