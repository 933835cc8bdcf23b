"""``detectors.canonical.mask_text`` as one compiled scan over many ASCII values at once.

The reference is the regex of ``detectors/canonical/_mask.py`` (priorities e-mail > timestamp > UUID > IP >
hex > number, numbers bucketed as ``<N{d}>`` / ``<F{d}>``, text cut at ``MAX_MASKED_CHARS`` + ``<CUT>``);
this kernel gives byte for byte the same output for every **ASCII** text (the caller sends only ASCII:
Python's ``\\b``, ``\\d`` and case folding are Unicode-aware, so a text with any non-ASCII character goes
to the regex). ASCII semantics: a word character is ``[A-Za-z0-9_]``, a digit ``[0-9]``, hex ``[0-9A-Fa-f]``
(the pattern is case-insensitive).

Each alternative is matched the way the regex engine would, backtracking included where the pattern
backtracks (the timestamp's optional parts before its final ``\\b``, the IPv6 group count); where a greedy
run can only succeed whole (``\\d{1,3}`` followed by ``.``, a hex run followed by ``\\b``) the run is taken
whole, which is what backtracking would settle on. Every alternative starts where the regex's can (a word
boundary, or the start of a run of e-mail characters) and scans a run once, so the cost is linear in the
text's length, as the regex's.

Values are packed in one buffer: value ``v`` is ``data[offs[v]:offs[v] + lens[v]]``; its masked text is
written to ``out[out_offs[v]:out_offs[v] + out_lens[v]]``. ``out`` needs ``out_size(lens)`` bytes.
"""

from __future__ import annotations

import numpy as np

from detectors._kernels import kernel

MAX_MASKED_CHARS = 4096
"""As ``detectors.canonical._mask.MAX_MASKED_CHARS`` (a test checks they agree)."""
MAX_DIGITS = 20
GROWTH = 4
"""Output bytes per input byte at most: a one-digit number becomes ``<N1>``."""
CUT_BYTES = 5

_WORD = 1
_DIGIT = 2
_HEX = 4
_LOCAL = 8
"""A character of an e-mail's local part: ``[A-Za-z0-9._%+-]``."""
_DOMAIN = 16
"""A character of an e-mail's domain labels: ``[A-Za-z0-9-]``."""


def _classes() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint8)
    for code in range(128):
        ch = chr(code)
        bits = 0
        if ch.isalnum() or ch == "_":
            bits |= _WORD
        if ch.isdigit():
            bits |= _DIGIT
        if ch in "0123456789abcdefABCDEF":
            bits |= _HEX
        if ch.isalnum() or ch in "._%+-":
            bits |= _LOCAL
        if ch.isalnum() or ch == "-":
            bits |= _DOMAIN
        table[code] = bits
    return table


_CLASS = _classes()
_T_EMAIL = np.frombuffer(b"<EMAIL>", dtype=np.uint8)
_T_TS = np.frombuffer(b"<TS>", dtype=np.uint8)
_T_UUID = np.frombuffer(b"<UUID>", dtype=np.uint8)
_T_IP = np.frombuffer(b"<IP>", dtype=np.uint8)
_T_HEX = np.frombuffer(b"<HEX>", dtype=np.uint8)
_T_CUT = np.frombuffer(b"<CUT>", dtype=np.uint8)


def out_size(lens: np.ndarray) -> int:
    """Bytes of ``out`` that masking values of these lengths may need."""
    return int(np.minimum(lens, MAX_MASKED_CHARS).sum()) * GROWTH + CUT_BYTES * int(lens.size) + 1


@kernel
def _is(d, j, end, cls):
    """Whether position ``j`` (before ``end``) holds a character of class ``cls``."""
    return j < end and (_CLASS[d[j]] & cls) != 0


@kernel
def _is_char(d, j, end, c):
    return j < end and d[j] == c


@kernel
def _ends_word(d, j, end):
    """``\\b`` at ``j`` when the character before ``j`` is a word character: nothing or a non-word after."""
    return j >= end or (_CLASS[d[j]] & _WORD) == 0


@kernel
def _run(d, j, end, cls):
    """Length of the run of class ``cls`` characters from ``j``."""
    k = j
    while k < end and (_CLASS[d[k]] & cls) != 0:
        k += 1
    return k - j


@kernel
def _digits(d, j, end, n):
    """Whether ``n`` digits start at ``j``."""
    for k in range(j, j + n):  # noqa: SIM110 (numba: no generator in all())
        if not _is(d, k, end, _DIGIT):
            return False
    return True


@kernel
def _email(d, i, end):
    """End of ``[A-Za-z0-9._%+-]++@[A-Za-z0-9-]++(?:\\.[A-Za-z0-9-]++)++`` from ``i``, or -1 (the caller
    checked the look-behind)."""
    j = i + _run(d, i, end, _LOCAL)
    if j == i or not _is_char(d, j, end, 64):  # '@'
        return -1
    j += 1
    k = _run(d, j, end, _DOMAIN)
    if k == 0:
        return -1
    j += k
    labels = 0
    while _is_char(d, j, end, 46):  # '.'
        k = _run(d, j + 1, end, _DOMAIN)
        if k == 0:
            break
        j += 1 + k
        labels += 1
    return j if labels > 0 else -1


@kernel
def _zone_then_boundary(d, pos, end):
    """``(?:Z|[+-]\\d{2}:?\\d{2})?\\b`` from ``pos`` (after a digit), in the engine's order of tries: the end
    of the first candidate followed by a word boundary, or -1."""
    if pos < end:
        c = d[pos]
        if c == 90 or c == 122:  # 'Z', 'z'
            if _ends_word(d, pos + 1, end):
                return pos + 1
        elif (c == 43 or c == 45) and _digits(d, pos + 1, end, 2):  # '+', '-'
            if _is_char(d, pos + 3, end, 58) and _digits(d, pos + 4, end, 2) and _ends_word(d, pos + 6, end):
                return pos + 6  # with ':'; then without
            if _digits(d, pos + 3, end, 2) and _ends_word(d, pos + 5, end):
                return pos + 5
    if _ends_word(d, pos, end):
        return pos
    return -1


@kernel
def _fraction_then(d, r, end, zone):
    """``(?:[.,]\\d+)?`` from ``r``, then (``zone``) the time zone and ``\\b`` or (not ``zone``) ``\\b``:
    the first candidate end in the engine's order (longest fraction first, then shorter, then none)."""
    if _is_char(d, r, end, 46) or _is_char(d, r, end, 44):  # '.', ','
        k = _run(d, r + 1, end, _DIGIT)
        for n in range(k, 0, -1):
            pos = r + 1 + n
            e = _zone_then_boundary(d, pos, end) if zone else (pos if _ends_word(d, pos, end) else -1)
            if e >= 0:
                return e
    if zone:
        return _zone_then_boundary(d, r, end)
    return r if _ends_word(d, r, end) else -1


@kernel
def _timestamp(d, i, end):
    """End of the timestamp alternative from ``i`` (``\\b`` before ``i`` checked by the caller), or -1."""
    if (_digits(d, i, end, 4) and _is_char(d, i + 4, end, 45) and _digits(d, i + 5, end, 2)
            and _is_char(d, i + 7, end, 45) and _digits(d, i + 8, end, 2)):
        p = i + 10
        if p < end and (d[p] == 84 or d[p] == 116 or d[p] == 32) and _digits(d, p + 1, end, 2) \
                and _is_char(d, p + 3, end, 58) and _digits(d, p + 4, end, 2):
            q = p + 6
            if _is_char(d, q, end, 58) and _digits(d, q + 1, end, 2):  # seconds
                e = _fraction_then(d, q + 3, end, True)
                if e >= 0:
                    return e
            e = _zone_then_boundary(d, q, end)
            if e >= 0:
                return e
        if _ends_word(d, p, end):
            return p
    if (_digits(d, i, end, 2) and _is_char(d, i + 2, end, 58) and _digits(d, i + 3, end, 2)
            and _is_char(d, i + 5, end, 58) and _digits(d, i + 6, end, 2)):
        return _fraction_then(d, i + 8, end, False)
    return -1


@kernel
def _uuid(d, i, end):
    """``[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\b`` (a run shorter or longer than its
    count leaves a hex character where '-' or the boundary must be)."""
    if (_run(d, i, end, _HEX) == 8 and _is_char(d, i + 8, end, 45) and _run(d, i + 9, end, _HEX) == 4
            and _is_char(d, i + 13, end, 45) and _run(d, i + 14, end, _HEX) == 4
            and _is_char(d, i + 18, end, 45) and _run(d, i + 19, end, _HEX) == 4
            and _is_char(d, i + 23, end, 45) and _run(d, i + 24, end, _HEX) == 12
            and _ends_word(d, i + 36, end)):
        return i + 36
    return -1


@kernel
def _ipv4(d, i, end):
    j = i
    for g in range(4):
        if g > 0:
            if not _is_char(d, j, end, 46):
                return -1
            j += 1
        k = _run(d, j, end, _DIGIT)
        if k < 1 or k > 3:  # a shorter take leaves a digit where '.' or \b must be
            return -1
        j += k
    return j if _ends_word(d, j, end) else -1


@kernel
def _ipv6(d, i, end):
    """``(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}\\b``: groups taken greedily; when the part after them does
    not end at a word boundary the engine gives back one group, whose part always does (a ':' follows)."""
    groups = 0
    j = i
    while groups < 7:
        k = _run(d, j, end, _HEX)
        if k < 1 or k > 4 or not _is_char(d, j + k, end, 58):
            break
        j += k + 1
        groups += 1
    if groups < 2:
        return -1
    k = _run(d, j, end, _HEX)
    if 1 <= k <= 4 and _ends_word(d, j + k, end):
        return j + k
    # one group fewer: the last group's hex run is then the final part, and the ':' after it a boundary
    return j - 1 if groups > 2 else -1


@kernel
def _hex(d, i, end):
    if d[i] == 48 and (_is_char(d, i + 1, end, 120) or _is_char(d, i + 1, end, 88)):  # 0x, 0X
        k = _run(d, i + 2, end, _HEX)
        if k > 0 and _ends_word(d, i + 2 + k, end):
            return i + 2 + k
    k = _run(d, i, end, _HEX)
    if k >= 8 and _ends_word(d, i + k, end):
        digit = False
        letter = False
        for j in range(i, i + k):
            if (_CLASS[d[j]] & _DIGIT) != 0:
                digit = True
            else:
                letter = True
        if digit and letter:
            return i + k
    return -1


@kernel
def _put(out, w, token):
    for k in range(token.size):
        out[w + k] = token[k]
    return w + token.size


@kernel
def _put_number(out, w, is_float, digits):
    out[w] = 60  # '<'
    out[w + 1] = 70 if is_float else 78  # 'F', 'N'
    w += 2
    if digits >= 10:
        out[w] = 48 + digits // 10
        w += 1
    out[w] = 48 + digits % 10
    out[w + 1] = 62  # '>'
    return w + 2


@kernel
def mask_one(d, start, n, out, w):
    """Mask ``d[start:start + n]`` into ``out`` from ``w``; returns the new end of ``out``.

    The per-character path and the tests made at every word start are written out here (a helper call
    passes ``d`` as ~7 scalars and touches its reference count: more than the test costs); the helpers
    that match a whole alternative run only where its first characters fit."""
    end = start + min(n, MAX_MASKED_CHARS)
    i = start
    while i < end:
        c = d[i]
        cls = _CLASS[c]
        if (cls & _LOCAL) == 0:  # no alternative starts here
            out[w] = c
            w += 1
            i += 1
            continue
        before = _CLASS[d[i - 1]] if i > start else np.uint8(0)
        if (before & _LOCAL) == 0:  # the e-mail: only at the start of a run of its local part's characters
            j = i + 1
            while j < end and (_CLASS[d[j]] & _LOCAL) != 0:
                j += 1
            if j < end and d[j] == 64:  # '@'
                e = _email(d, i, end)
                if e >= 0:
                    w = _put(out, w, _T_EMAIL)
                    i = e
                    continue
        if (cls & _WORD) != 0 and (before & _WORD) == 0 and (cls & _HEX) != 0:  # \b before a hex character
            h = i + 1  # end of the hex run
            while h < end and (_CLASS[d[h]] & _HEX) != 0:
                h += 1
            g = i  # end of the digit run
            while g < h and (_CLASS[d[g]] & _DIGIT) != 0:
                g += 1
            after_g = d[g] if g < end else 0
            after_h = d[h] if h < end else 0
            e = -1
            if (g - i == 4 and after_g == 45) or (g - i == 2 and after_g == 58):  # '-', ':'
                e = _timestamp(d, i, end)
                if e >= 0:
                    w = _put(out, w, _T_TS)
                    i = e
                    continue
            if h - i == 8 and after_h == 45:
                e = _uuid(d, i, end)
                if e >= 0:
                    w = _put(out, w, _T_UUID)
                    i = e
                    continue
            if 1 <= g - i <= 3 and after_g == 46:  # '.'
                e = _ipv4(d, i, end)
            if e < 0 and h - i <= 4 and after_h == 58:
                e = _ipv6(d, i, end)
            if e >= 0:
                w = _put(out, w, _T_IP)
                i = e
                continue
            if (c == 48 and (after_h == 120 or after_h == 88) and h == i + 1) or h - i >= 8:  # 0x, 0X
                e = _hex(d, i, end)
                if e >= 0:
                    w = _put(out, w, _T_HEX)
                    i = e
                    continue
        if (cls & _DIGIT) != 0:
            j = i
            while j < end and d[j] == 48:
                j += 1
            zeros = j - i
            while j < end and (_CLASS[d[j]] & _DIGIT) != 0:
                j += 1
            digits = j - i - zeros
            is_float = j + 1 < end and d[j] == 46 and (_CLASS[d[j + 1]] & _DIGIT) != 0
            if is_float:
                j += 2
                while j < end and (_CLASS[d[j]] & _DIGIT) != 0:
                    j += 1
            w = _put_number(out, w, is_float, min(digits, MAX_DIGITS))
            i = j
            continue
        out[w] = c
        w += 1
        i += 1
    if n > MAX_MASKED_CHARS:
        w = _put(out, w, _T_CUT)
    return w


@kernel
def mask_batch(data, offs, lens, out, out_offs, out_lens):
    """Mask every value of ``data`` (see the module doc); returns the bytes written to ``out``."""
    w = 0
    for v in range(offs.size):
        out_offs[v] = w
        w = mask_one(data, offs[v], lens[v], out, w)
        out_lens[v] = w - out_offs[v]
    return w


# --- canonical texts of attributes and heads, for ASCII inputs ------------------------------------------
# The rules of ``detectors.canonical`` (``attribute_texts``, ``span_heads``, ``log_heads``, then the line
# escaping), for the extraction's kernels: they render a fragment the memo misses without a round trip to
# Python. Inputs with any non-ASCII character stay with the Python functions (the regexes are Unicode-aware).

MAX_VALUE_CHARS = 48
"""As ``detectors.canonical._values.MAX_VALUE_CHARS`` (a test checks they agree)."""
EXACT_INT_LIMIT = 1000
"""As ``detectors.canonical._values.EXACT_INT_LIMIT``."""
MAX_KEY_BYTES = 4096
"""Longer keys (and their fragments) are left to the Python functions (the output bounds below)."""
TEXT_BYTES = 1 << 16
"""``out`` bytes an ``attribute_fragment``/``span_head``/``log_head`` call may write (escaped, worst case)."""
TMP_BYTES = 1 << 15
"""Scratch bytes those calls need (a masked text, and a number's digits at the end)."""
_NUMBER_AT = TMP_BYTES - 32

V_TEXT = 0
"""Attribute value kinds: a string (masked); ``V_NULL`` no value; ``V_TRUE``/``V_FALSE``; ``V_BYTES``; an
integer (``V_INT``: exact below ``EXACT_INT_LIMIT``, else its decimal text masked)."""
V_NULL = 1
V_TRUE = 2
V_FALSE = 3
V_BYTES = 4
V_INT = 5

ID_KEY_WORDS = ("id", "uuid", "guid", "token", "session", "email", "user", "username", "hash", "digest")
"""``_values._ID_KEY``'s words (after ``^`` or one of ``._-``, any case, at the end)."""
CAMEL_ID_KEY_WORDS = ("Id", "ID", "Uuid", "Token")
"""``_values._CAMEL_ID_KEY``'s words (after a lowercase ASCII letter, this case, at the end)."""
SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
SEVERITY_NAMES = ("UNSPECIFIED", *(band + (str(step + 1) if step else "")
                                   for band in ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
                                   for step in range(4)))
"""As in ``detectors.canonical`` (a test checks they agree); values outside these tables go to Python."""


def _table(words: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    encoded = [w.encode("ascii") for w in words]
    lens = np.array([len(e) for e in encoded], dtype=np.int64)
    return (np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), np.cumsum(lens) - lens, lens)


_ID_BLOB, _ID_OFFS, _ID_LENS = _table(ID_KEY_WORDS)
_CAMEL_BLOB, _CAMEL_OFFS, _CAMEL_LENS = _table(CAMEL_ID_KEY_WORDS)
_KIND_BLOB, _KIND_OFFS, _KIND_LENS = _table(SPAN_KINDS)
_STATUS_BLOB, _STATUS_OFFS, _STATUS_LENS = _table(STATUS_CODES)
_SEV_BLOB, _SEV_OFFS, _SEV_LENS = _table(SEVERITY_NAMES)
_T_ID = np.frombuffer(b"<ID>", dtype=np.uint8)
_T_LONG = np.frombuffer(b"<LONG>", dtype=np.uint8)
_T_NULL = np.frombuffer(b"null", dtype=np.uint8)
_T_TRUE = np.frombuffer(b"true", dtype=np.uint8)
_T_FALSE = np.frombuffer(b"false", dtype=np.uint8)
_T_BYTES = np.frombuffer(b"<BYTES>", dtype=np.uint8)


@kernel
def is_ascii(d, start, n):
    for k in range(start, start + n):  # noqa: SIM110 (numba: no generator in all())
        if d[k] >= 0x80:
            return False
    return True


@kernel
def _ends_with(d, start, end, blob, off, n, fold):
    """Whether ``d[start:end]`` ends with ``blob[off:off+n]`` (ASCII case folded when ``fold``)."""
    if end - start < n:
        return False
    for k in range(n):
        c = d[end - n + k]
        if fold and 65 <= c <= 90:
            c += 32
        if c != blob[off + k]:
            return False
    return True


@kernel
def _identifier_ending_at(d, start, end):
    for i in range(_ID_LENS.size):
        n = _ID_LENS[i]
        if _ends_with(d, start, end, _ID_BLOB, _ID_OFFS[i], n, True):
            b = end - n
            if b == start or d[b - 1] == 46 or d[b - 1] == 95 or d[b - 1] == 45:  # '.', '_', '-'
                return True
    for i in range(_CAMEL_LENS.size):
        n = _CAMEL_LENS[i]
        if _ends_with(d, start, end, _CAMEL_BLOB, _CAMEL_OFFS[i], n, False):
            b = end - n
            if b > start and 97 <= d[b - 1] <= 122:
                return True
    return False


@kernel
def identifier_key(d, start, n):
    """``is_identifier_key`` of the ASCII key ``d[start:start+n]`` (``$`` also matches before a final
    newline, as in Python's ``re``)."""
    end = start + n
    if _identifier_ending_at(d, start, end):
        return True
    return n > 0 and d[end - 1] == 10 and _identifier_ending_at(d, start, end - 1)


@kernel
def _put_escaped(src, a, n, out, w):
    """``src[a:a+n]`` with CR and LF written as ``\\r`` and ``\\n`` (``_escape_lines``)."""
    for k in range(a, a + n):
        c = src[k]
        if c == 10 or c == 13:
            out[w] = 92  # '\\'
            out[w + 1] = 110 if c == 10 else 114  # 'n', 'r'
            w += 2
        else:
            out[w] = c
            w += 1
    return w


@kernel
def _put_word(blob, offs, lens, i, out, w):
    a = offs[i]
    for k in range(lens[i]):
        out[w + k] = blob[a + k]
    return w + lens[i]


@kernel
def _put_decimal(out, w, v):
    """The decimal text of the uint64 ``v``."""
    n = 1
    t = v
    while t >= np.uint64(10):
        t //= np.uint64(10)
        n += 1
    for k in range(n - 1, -1, -1):
        out[w + k] = 48 + np.uint8(v % np.uint64(10))
        v //= np.uint64(10)
    return w + n


@kernel
def attribute_fragment(key_buf, key_off, key_len, identifier, kind, src, s_off, s_len, number, tmp, out, w):
    """`` key=text`` of one attribute with an ASCII key, escaped, into ``out`` from ``w`` (returns the new
    end): ``<ID>`` under an identifier key, else the value's text (``kind``: ``V_TEXT`` the ASCII string
    ``src[s_off:s_off+s_len]`` masked, ``V_INT`` the integer ``number``, or a constant), ``<LONG>`` when
    that text is longer than ``MAX_VALUE_CHARS``. ``tmp``: ``TMP_BYTES`` of scratch."""
    out[w] = 32  # ' '
    w = _put_escaped(key_buf, key_off, key_len, out, w + 1)
    out[w] = 61  # '='
    w += 1
    if identifier:
        return _put(out, w, _T_ID)
    if kind == V_NULL:
        return _put(out, w, _T_NULL)
    if kind == V_TRUE:
        return _put(out, w, _T_TRUE)
    if kind == V_FALSE:
        return _put(out, w, _T_FALSE)
    if kind == V_BYTES:
        return _put(out, w, _T_BYTES)
    if kind == V_INT:
        p = _NUMBER_AT
        if number < 0:
            tmp[p] = 45  # '-'
            p += 1
        p = _put_decimal(tmp, p, np.uint64(0) - np.uint64(number) if number < 0 else np.uint64(number))
        if -EXACT_INT_LIMIT < number < EXACT_INT_LIMIT:
            return _put_escaped(tmp, _NUMBER_AT, p - _NUMBER_AT, out, w)
        m = mask_one(tmp, _NUMBER_AT, p - _NUMBER_AT, tmp, 0)
    else:
        m = mask_one(src, s_off, s_len, tmp, 0)
    if m > MAX_VALUE_CHARS:
        return _put(out, w, _T_LONG)
    return _put_escaped(tmp, 0, m, out, w)


@kernel
def span_head(name_buf, off, n, kind, status, bucket, tmp, out, w):
    """``canonical_span(name, kind, status, duration)`` without attributes for an ASCII name, into ``out``
    from ``w`` (returns the new end; -1 when the kind or the status has no name in the tables: Python's
    part). ``bucket``: the duration's log2 bucket in microseconds."""
    if not (0 <= kind < _KIND_LENS.size and 0 <= status < _STATUS_LENS.size):
        return -1
    w = _put_word(_KIND_BLOB, _KIND_OFFS, _KIND_LENS, kind, out, w)
    out[w] = 32
    m = mask_one(name_buf, off, n, tmp, 0)
    w = _put_escaped(tmp, 0, m, out, w + 1)
    out[w] = 32
    w = _put_word(_STATUS_BLOB, _STATUS_OFFS, _STATUS_LENS, status, out, w + 1)
    out[w] = 32  # ' d=D'
    out[w + 1] = 100
    out[w + 2] = 61
    out[w + 3] = 68
    return _put_decimal(out, w + 4, np.uint64(bucket))


@kernel
def log_head(body_buf, off, n, severity, tmp, out, w):
    """``canonical_log(body, severity)`` without attributes for an ASCII body string, into ``out`` from
    ``w`` (returns the new end; -1 when the severity has no name in the table)."""
    if not 0 <= severity < _SEV_LENS.size:
        return -1
    w = _put_word(_SEV_BLOB, _SEV_OFFS, _SEV_LENS, severity, out, w)
    out[w] = 32
    m = mask_one(body_buf, off, n, tmp, 0)
    return _put_escaped(tmp, 0, m, out, w + 1)
