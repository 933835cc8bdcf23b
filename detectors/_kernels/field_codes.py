"""``detectors.field_codes.read_codes`` as one compiled scan over many canonical events at once.

The reference is the Python reader (its regexes, ``split_attributes``' longest sorted chain of keys,
``zlib.crc32``); this kernel gives the same codes for every event whose bytes are all printable ASCII
(``0x20``-``0x7e``) and that is at most ``MAX_READ`` bytes long. Anything else is marked in ``fallback``
and left to the reader: Unicode decoding with replacement, ``$`` before a final newline and the Unicode
``\\s`` of the attribute split are where the two would need more care than those events are worth.

Events are packed in one buffer, one after the other, event ``v`` ``lens[v]`` bytes long. Written per
event: ``ab[v] = (a, b, fallback)`` (field ``b`` before the test's ``A_CODES`` shift; ``fallback`` 1 where
the event is left to the reader) and the attribute groups' codes ``c[v, :]``. The table sizes are
:mod:`detectors._kernels.field_shift`'s, compiled in (a call passes only arrays: numba's dispatch costs
per argument, and a stream's batch brings a few new events per call).
"""

from __future__ import annotations

import numpy as np

from detectors._kernels import kernel
from detectors._kernels.field_shift import BUCKETS, C_GROUPS, C_VALUES, TEMPLATE_CODES

MAX_READ = 16_384
"""As the reader's ``_MAX_READ`` (longer events go to it)."""
CHAIN_LIMIT = 64
"""As ``detectors.canonical.parse._CHAIN_LIMIT``: past this many key candidates the chain is greedy."""


def _crc_table() -> np.ndarray:
    """The CRC-32 table of ``zlib.crc32`` (reflected polynomial 0xEDB88320)."""
    table = np.zeros(256, np.uint32)
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else c >> 1
        table[n] = c
    return table


def _word_table(words: list[bytes]) -> np.ndarray:
    """``words`` as rows of a zero-padded byte matrix (row lengths in the last column)."""
    width = max(len(w) for w in words)
    out = np.zeros((len(words), width + 1), np.uint8)
    for i, word in enumerate(words):
        out[i, :len(word)] = np.frombuffer(word, np.uint8)
        out[i, width] = len(word)
    return out


SPAN_KINDS = _word_table([b"UNSPECIFIED", b"INTERNAL", b"SERVER", b"CLIENT", b"PRODUCER", b"CONSUMER"])
UNSPECIFIED = 0
"""The row of ``UNSPECIFIED`` in ``SPAN_KINDS``."""
SPAN_STATUSES = _word_table([b"UNSET", b"OK", b"ERROR"])
"""Codes 1, 2, 3 in this order; ``STATUS<n>`` is 4."""
LOG_BANDS = _word_table([b"TRACE", b"DEBUG", b"INFO", b"WARN", b"ERROR", b"FATAL"])
"""Codes 5 to 10 in this order; ``UNSPECIFIED`` is 11, ``SEV<n>`` 12."""
CRC_TABLE = _crc_table()
_SPACE, _EQUALS, _BAR, _LT, _GT, _NINE, _ZERO = 32, 61, 124, 60, 62, 57, 48


@kernel
def _crc(table, crc, data, start, stop):
    """``crc`` (pre-inverted running state) continued over ``data[start:stop]``."""
    for i in range(start, stop):
        crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8)
    return crc


@kernel
def _has_word(data, at, stop, words, row):
    """Whether ``data[at:stop]`` starts with word ``row`` of ``words``."""
    n = words[row, words.shape[1] - 1]
    if at + n > stop:
        return False
    k = 0
    while k < n and data[at + k] == words[row, k]:
        k += 1
    return k == n


@kernel
def _digits(data, at, stop):
    """End of the run of ASCII digits starting at ``at``."""
    while at < stop and _ZERO <= data[at] <= _NINE:
        at += 1
    return at


@kernel
def _signed_number(data, at, stop):
    """End of ``-?\\d+`` at ``at``, or -1."""
    if at < stop and data[at] == 45:  # "-"
        at += 1
    end = _digits(data, at, stop)
    return end if end > at else -1


@kernel
def _kind_end(data, start, stop, space):
    """End of a span kind that is all of ``data[start:space]`` (``KIND-?\\d+`` or a named kind), or -1."""
    for row in range(SPAN_KINDS.shape[0]):
        if SPAN_KINDS[row, SPAN_KINDS.shape[1] - 1] == space - start and _has_word(data, start, space,
                                                                                    SPAN_KINDS, row):
            return space
    if space - start >= 4 and data[start] == 75 and data[start + 1] == 73 and data[start + 2] == 78 \
            and data[start + 3] == 68 and _signed_number(data, start + 4, space) == space:  # "KIND<n>"
        return space
    return -1


@kernel
def _bar_at(data, at, stop):
    """Whether ``" | "`` starts at ``at``."""
    return at + 3 <= stop and data[at] == _SPACE and data[at + 1] == _BAR and data[at + 2] == _SPACE


@kernel
def _status_tail(data, q, stop, out):
    """At ``q`` (after the name's space): ``STATUS d=D<1-3 digits>`` followed by `` | `` or the end.
    Writes (status code, bucket, end of the digits) to ``out``; False if it does not match there."""
    status = 0
    at = -1
    for row in range(SPAN_STATUSES.shape[0]):
        if _has_word(data, q, stop, SPAN_STATUSES, row):
            status = row + 1
            at = q + SPAN_STATUSES[row, SPAN_STATUSES.shape[1] - 1]
            break
    if status == 0:
        if q + 6 <= stop and data[q] == 83 and data[q + 1] == 84 and data[q + 2] == 65 and data[q + 3] == 84 \
                and data[q + 4] == 85 and data[q + 5] == 83:  # "STATUS"
            at = _signed_number(data, q + 6, stop)
            status = 4
        if at < 0:
            return False
    if not (at + 4 <= stop and data[at] == _SPACE and data[at + 1] == 100 and data[at + 2] == _EQUALS
            and data[at + 3] == 68):  # " d=D"
        return False
    end = _digits(data, at + 4, stop)
    if not 1 <= end - (at + 4) <= 3 or not (end == stop or _bar_at(data, end, stop)):
        return False
    bucket = 0
    for k in range(at + 4, end):
        bucket = bucket * 10 + data[k] - _ZERO
    out[0], out[1], out[2] = status, bucket, end
    return True


@kernel
def _log_head_end(data, start, stop, out):
    """End of a log's severity and its space (``out[0]``: the severity code), or -1."""
    if _has_word(data, start, stop, SPAN_KINDS, UNSPECIFIED):  # a log's severity too
        at = start + SPAN_KINDS[UNSPECIFIED, SPAN_KINDS.shape[1] - 1]
        if at < stop and data[at] == _SPACE:
            out[0] = 11
            return at + 1
    for row in range(LOG_BANDS.shape[0]):
        if _has_word(data, start, stop, LOG_BANDS, row):
            at = start + LOG_BANDS[row, LOG_BANDS.shape[1] - 1]
            if at + 1 < stop and 50 <= data[at] <= 52 and data[at + 1] == _SPACE:  # [234]
                out[0] = 5 + row
                return at + 2
            if at < stop and data[at] == _SPACE:
                out[0] = 5 + row
                return at + 1
            return -1
    if start + 3 <= stop and data[start] == 83 and data[start + 1] == 69 and data[start + 2] == 86:  # "SEV"
        at = _signed_number(data, start + 3, stop)
        if at >= 0 and at < stop and data[at] == _SPACE:
            out[0] = 12
            return at + 1
    return -1


@kernel
def _key_follows(data, at, stop, stop_at_bar):
    """Whether ``[^ =]+=`` (``|`` excluded too when ``stop_at_bar``) starts at ``at``."""
    k = at
    while k < stop and data[k] != _SPACE and data[k] != _EQUALS and not (stop_at_bar and data[k] == _BAR):
        k += 1
    return k > at and k < stop and data[k] == _EQUALS


@kernel
def _key_less(data, a0, a1, b0, b1):
    """``data[a0:a1] < data[b0:b1]`` (bytes order: code point order for ASCII)."""
    n = min(a1 - a0, b1 - b0)
    for k in range(n):
        if data[a0 + k] != data[b0 + k]:
            return data[a0 + k] < data[b0 + k]
    return a1 - a0 < b1 - b0


@kernel
def _masked(data, start, stop):
    """Whether ``data[start:stop]`` holds a placeholder ``<[A-Z]+\\d*>``."""
    for i in range(start, stop):
        if data[i] == _LT:
            k = i + 1
            while k < stop and 65 <= data[k] <= 90:
                k += 1
            if k == i + 1:
                continue
            k = _digits(data, k, stop)
            if k < stop and data[k] == _GT:
                return True
    return False


@kernel
def _attribute_codes(data, start, stop, table, groups, values, keys, equals, longest, chain, crcs, out):
    """Field ``c`` of the attribute text ``data[start:stop]`` into ``out`` (one code per group)."""
    out[:] = 0
    m = 0  # key candidates: a space (the text's start counts as one) followed by [^ =]+=
    for i in range(start - 1, stop):
        if (i == start - 1 or data[i] == _SPACE) and _key_follows(data, i + 1, stop, False):
            keys[m] = i + 1
            k = i + 1
            while data[k] != _EQUALS:
                k += 1
            equals[m] = k
            m += 1
    if m == 0:
        return
    n_chain = 1
    chain[0] = 0
    if m > CHAIN_LIMIT:
        for j in range(1, m):
            last = chain[n_chain - 1]
            if _key_less(data, keys[last], equals[last], keys[j], equals[j]):
                chain[n_chain] = j
                n_chain += 1
    else:
        for i in range(m - 1, -1, -1):
            best = 0
            for j in range(i + 1, m):
                if longest[j] > best and _key_less(data, keys[i], equals[i], keys[j], equals[j]):
                    best = longest[j]
            longest[i] = 1 + best
        while longest[chain[n_chain - 1]] > 1:
            i = chain[n_chain - 1]
            for j in range(m - 1, i, -1):  # the farthest next key
                if longest[j] == longest[i] - 1 and _key_less(data, keys[i], equals[i], keys[j], equals[j]):
                    chain[n_chain] = j
                    n_chain += 1
                    break
    crcs[:] = 0xFFFFFFFF
    for n in range(n_chain):
        j = chain[n]
        end = keys[chain[n + 1]] - 1 if n + 1 < n_chain else stop
        if _masked(data, equals[j] + 1, end):
            continue
        g = (_crc(table, np.uint32(0xFFFFFFFF), data, keys[j], equals[j]) ^ np.uint32(0xFFFFFFFF)) % groups
        crc = crcs[g]
        if out[g]:  # the pairs of a group joined by 0x1f
            crc = table[(crc ^ 0x1F) & 0xFF] ^ (crc >> 8)
        crcs[g] = _crc(table, crc, data, keys[j], end)
        out[g] = 1
    for g in range(groups):
        if out[g]:
            out[g] = 1 + (crcs[g] ^ np.uint32(0xFFFFFFFF)) % values


@kernel
def read_codes(data, lens, ab, c):
    """Codes of the packed events (see the module's docstring); returns how many were left to the reader."""
    table = CRC_TABLE
    groups, buckets, templates, values = C_GROUPS, BUCKETS, TEMPLATE_CODES, C_VALUES
    most = 1
    for v in range(lens.size):
        most = max(most, lens[v] + 1)
    keys = np.empty(most, np.int64)
    equals = np.empty(most, np.int64)
    longest = np.empty(most, np.int64)
    chain = np.empty(most, np.int64)
    crcs = np.empty(groups, np.uint32)
    codes = np.empty(groups, np.int64)
    found = np.empty(3, np.int64)
    left = 0
    stop = 0
    for v in range(lens.size):
        start, stop = stop, stop + lens[v]
        ab[v, 0], ab[v, 1], ab[v, 2] = 0, 0, 0
        c[v, :] = 0
        if lens[v] > MAX_READ:
            ab[v, 2] = 1
            left += 1
            continue
        printable = True
        for i in range(start, stop):
            if data[i] < _SPACE or data[i] > 126:
                printable = False
                break
        if not printable:
            ab[v, 2] = 1
            left += 1
            continue
        space = start
        while space < stop and data[space] != _SPACE:
            space += 1
        if space == stop:  # no space: neither a span nor a log
            continue
        attrs = -1
        if _kind_end(data, start, stop, space) == space:
            q = space + 1
            while q < stop:
                if data[q] == _SPACE and _status_tail(data, q + 1, stop, found):
                    ab[v, 0] = found[0]
                    ab[v, 1] = 1 + min(found[1], buckets - 1)
                    attrs = found[2] + 3 if found[2] < stop else stop
                    break
                q += 1
        if attrs < 0:
            head = _log_head_end(data, start, stop, found)
            if head < 0:
                continue
            body_end = stop
            attrs = stop
            for s in range(head, stop - 2):
                if _bar_at(data, s, stop) and _key_follows(data, s + 3, stop, True):
                    body_end, attrs = s, s + 3
                    break
            ab[v, 0] = found[0]
            body = _crc(table, np.uint32(0xFFFFFFFF), data, head, body_end) ^ np.uint32(0xFFFFFFFF)
            ab[v, 1] = 1 + buckets + body % templates
        if attrs < stop:
            _attribute_codes(data, attrs, stop, table, groups, values, keys, equals, longest, chain, crcs,
                             codes)
            for g in range(groups):
                c[v, g] = codes[g]
    return left
