"""Protobuf wire-format primitives over raw request bytes (``uint8`` arrays), with upb's acceptance rules.

The walker (``walk``) decides whether a request decodes exactly as the ``upb`` parser of the protobuf
package would; these readers carry the rules it measured (``tests/otlp/test_walk_validity.py`` fuzzes
them against upb):

* a value varint has at most 10 bytes (any bits in the 10th);
* a tag or a length varint has at most 5 bytes and fits in 32 bits; field number 0 is invalid;
* a length never runs past the enclosing message;
* wire types 6 and 7 are invalid; an end-group tag (4) is valid only to close an open group of the same
  field number; groups (3) are skipped as unknown fields and count against the nesting limit;
* a ``string`` field holds valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).

Positions are ``int64``; a negative position means "malformed".
"""

from __future__ import annotations

import numpy as np

from detectors._kernels import kernel

MAX_DEPTH = 100
"""upb's nesting limit: sub-messages and groups below the root, together."""

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_U32 = np.uint64(0xFFFFFFFF)


@kernel
def read_varint(buf, pos, end):
    """(value as uint64, next position) of a value varint; next position -1 when truncated or longer
    than 10 bytes."""
    if pos < end and buf[pos] < 0x80:  # one byte: most tags, lengths and small values (twice as fast)
        return np.uint64(buf[pos]), np.int64(pos + 1)
    result = np.uint64(0)
    shift = np.uint64(0)
    for _ in range(10):
        if pos >= end:
            return np.uint64(0), np.int64(-1)
        b = buf[pos]
        pos += 1
        result |= np.uint64(b & 0x7F) << shift
        if b < 0x80:
            return result, np.int64(pos)
        shift += np.uint64(7)
    return np.uint64(0), np.int64(-1)


@kernel
def read_varint32(buf, pos, end):
    """(value, next position) of a tag or length varint: at most 5 bytes and below 2**32, else -1."""
    if pos < end and buf[pos] < 0x80:
        return np.uint64(buf[pos]), np.int64(pos + 1)
    value, after = read_varint(buf, pos, end)
    if after < 0 or after - pos > 5 or value > _U32:
        return np.uint64(0), np.int64(-1)
    return value, after


@kernel
def read_fixed64(buf, pos):
    value = np.uint64(0)
    for i in range(8):
        value |= np.uint64(buf[pos + i]) << np.uint64(8 * i)
    return value


@kernel
def int32_of(value):
    """A varint's low 32 bits as a signed int32 (how protobuf reads an ``int32``/enum field)."""
    v = np.int64(value & _U32)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@kernel
def hash_bytes(buf, start, length):
    """64-bit hash of a byte range: eight bytes per multiply (an xxHash64-style round on one lane, then the
    remaining bytes one by one), finished by the splitmix64 finalizer. Not for adversaries: a memo and
    grouping key, where byte-at-a-time FNV-1a cost a multiply's latency per byte."""
    h = _FNV_OFFSET ^ (np.uint64(length) * _P1)
    i = start
    end = start + length
    while i + 8 <= end:
        word = (np.uint64(buf[i]) | (np.uint64(buf[i + 1]) << np.uint64(8))
                | (np.uint64(buf[i + 2]) << np.uint64(16)) | (np.uint64(buf[i + 3]) << np.uint64(24))
                | (np.uint64(buf[i + 4]) << np.uint64(32)) | (np.uint64(buf[i + 5]) << np.uint64(40))
                | (np.uint64(buf[i + 6]) << np.uint64(48)) | (np.uint64(buf[i + 7]) << np.uint64(56)))
        h = h + word * _P2
        h = ((h << np.uint64(31)) | (h >> np.uint64(33))) * _P1
        i += 8
    while i < end:
        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
        i += 1
    return _finalize(h)


@kernel
def _finalize(x):
    """The splitmix64 finalizer: a bijection of 64-bit values that spreads every input bit."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@kernel
def mix(h, value):
    """Fold a 64-bit value into a hash; never returns 0 (the empty slot of the hash tables). ``h`` is
    scrambled before the value goes in, so (h, value) pairs with equal ``h ^ value`` do not collide."""
    x = _finalize(_finalize(np.uint64(h)) ^ np.uint64(value))
    return x if x != 0 else np.uint64(1)


@kernel
def bytes_equal(a, a_off, a_len, b, b_off, b_len):
    if a_len != b_len:
        return False
    for i in range(a_len):  # noqa: SIM110 (numba: no generator in all())
        if a[a_off + i] != b[b_off + i]:
            return False
    return True


@kernel
def all_zero(buf, start, length):
    for i in range(start, start + length):  # noqa: SIM110
        if buf[i] != 0:
            return False
    return True


@kernel
def utf8_valid(buf, start, end):
    """Whether ``buf[start:end]`` is well-formed UTF-8 (what upb requires of ``string`` fields)."""
    seen = np.uint8(0)
    for k in range(start, end):  # no early exit: vectorized; most strings are ASCII
        seen |= buf[k]
    if seen < 0x80:
        return True
    i = start
    while i < end:
        b = buf[i]
        if b < 0x80:
            i += 1
            continue
        if b < 0xC2 or b > 0xF4:  # continuation byte, overlong 2-byte lead, or beyond U+10FFFF
            return False
        if b < 0xE0:
            n = 1
            low, high = 0x80, 0xBF
        elif b < 0xF0:
            n = 2
            low = 0xA0 if b == 0xE0 else 0x80  # E0: no overlong 3-byte forms
            high = 0x9F if b == 0xED else 0xBF  # ED: no surrogates
        else:
            n = 3
            low = 0x90 if b == 0xF0 else 0x80  # F0: no overlong 4-byte forms
            high = 0x8F if b == 0xF4 else 0xBF  # F4: nothing above U+10FFFF
        if i + n >= end:  # truncated sequence
            return False
        c = buf[i + 1]
        if c < low or c > high:
            return False
        for j in range(2, n + 1):
            c = buf[i + j]
            if c < 0x80 or c > 0xBF:
                return False
        i += n + 1
    return True


@kernel
def skip_scalar(buf, pos, end, wire):
    """Position after the payload of a field of wire type 0, 1, 2 or 5; -1 when malformed or another
    wire type."""
    if wire == 0:
        _, pos = read_varint(buf, pos, end)
        return pos
    if wire == 1:
        return pos + 8 if pos + 8 <= end else np.int64(-1)
    if wire == 5:
        return pos + 4 if pos + 4 <= end else np.int64(-1)
    if wire == 2:
        n, after = read_varint32(buf, pos, end)
        if after < 0 or n > np.uint64(end - after):
            return np.int64(-1)
        return after + np.int64(n)
    return np.int64(-1)


@kernel
def skip_group(buf, pos, end, number, budget, fields):
    """Position after the group of field ``number`` whose start tag ends at ``pos``; -1 when malformed,
    -2 when the groups nest deeper than ``budget`` (this group counts one). ``fields``: scratch, at least
    ``budget`` long (the field numbers of the open groups)."""
    if budget < 1:
        return np.int64(-2)
    fields[0] = number
    open_groups = 1
    while pos < end:
        tag, pos = read_varint32(buf, pos, end)
        if pos < 0:
            return np.int64(-1)
        field = np.int64(tag >> np.uint64(3))
        wire = np.int64(tag & np.uint64(7))
        if field == 0:
            return np.int64(-1)
        if wire == 4:
            if field != fields[open_groups - 1]:
                return np.int64(-1)
            open_groups -= 1
            if open_groups == 0:
                return pos
        elif wire == 3:
            if open_groups + 1 > budget:
                return np.int64(-2)
            fields[open_groups] = field
            open_groups += 1
        else:
            pos = skip_scalar(buf, pos, end, wire)
            if pos < 0:
                return np.int64(-1)
    return np.int64(-1)  # the message ended inside the group
