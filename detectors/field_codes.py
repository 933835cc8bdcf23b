"""The field test's codes of a canonical event (fields ``a``, ``b``, ``c`` of :mod:`detectors.field_shift`).

A pure function of the event's bytes, read two ways that agree code for code: :func:`read_codes`, the
reference (regexes and :func:`detectors.canonical.parse.split_attributes`), and the kernel of
:mod:`detectors._kernels.field_codes`, which reads a batch of printable-ASCII events in one call and hands
the rest back to the reference. :func:`codes_of` reads a batch through a memo (canonical events repeat: ids
are masked), sending what it has not seen to the kernel in one call.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

from detectors._kernels import field_codes as FK
from detectors._kernels import field_shift as K
from detectors.canonical.parse import split_attributes

Codes = tuple[int, int, bytes]
"""``(a, b, c)``: field ``a``, field ``b`` (before the test's ``A_CODES`` shift), field ``c`` (one byte per
attribute group: 0, or ``1 + value``)."""

_SPAN_STATUS = {b"UNSET": 1, b"OK": 2, b"ERROR": 3}
_OTHER_STATUS = 4
_SEVERITY = {b"TRACE": 5, b"DEBUG": 6, b"INFO": 7, b"WARN": 8, b"ERROR": 9, b"FATAL": 10, b"UNSPECIFIED": 11}
_OTHER_SEVERITY = 12
_MAX_READ = FK.MAX_READ  # bytes of an event read (as detectors.canonical.parse)
_SPAN = re.compile(rb"(?:UNSPECIFIED|INTERNAL|SERVER|CLIENT|PRODUCER|CONSUMER|KIND-?\d+) .*? "
                   rb"(UNSET|OK|ERROR|STATUS-?\d+) d=D(\d{1,3})(?= \| |$)", re.DOTALL)
_LOG = re.compile(rb"(UNSPECIFIED|(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)[234]?|SEV-?\d+) ")
_ATTRS_START = re.compile(rb" \| (?=[^\s=|]+=)")
_MASKED = re.compile(r"<[A-Z]+\d*>")
"""A placeholder of the canonical form (``<ID>``, ``<N4>``, ``<IP>``, ``<LONG>``, ...): the raw value
varied."""
_SPAN_KINDS = frozenset((b"UNSPECIFIED", b"INTERNAL", b"SERVER", b"CLIENT", b"PRODUCER", b"CONSUMER"))
_NO_ATTRIBUTES = bytes(K.C_GROUPS)
_CACHE: dict[bytes, Codes] = {}
_CACHE_SIZE = 8192


def event_codes(event: bytes) -> tuple[int, int]:
    """The codes ``(a, b)`` of one canonical event (``(0, 0)`` if it reads as neither span nor log).

    >>> event_codes(b"SERVER GET /cart ERROR d=D15 | http.route=/cart")
    (3, 16)
    >>> a, b = event_codes(b"WARN2 disk <N2> % full | host.name=web-1")
    >>> a, b > 128
    (8, True)
    """
    a, b, _ = codes_of([event])[0]
    return a, b


def attribute_codes(event: bytes) -> bytes:
    """Field ``c`` of one canonical event: per attribute group, 0 (no kept attribute) or ``1 + value``.

    Kept are the attributes whose canonical value holds no placeholder: a value the canonical form wrote
    as it came (``payment.provider=card-processor-a``, ``http.response.status_code=503``), not one it masked
    (``enduser.id=<ID>``, ``url.path=/product/<N5>``, ``client.address=<IP>``), whose raw value varied.

    >>> codes = attribute_codes(b"SERVER GET /cart OK d=D15 | enduser.id=<ID> http.route=/cart")
    >>> sum(1 for v in codes if v), codes == attribute_codes(b"SERVER GET /cart OK d=D9 | http.route=/cart")
    (1, True)
    """
    return codes_of([event])[0][2]


def codes_of(events: Sequence[bytes]) -> list[Codes]:
    """The codes of each event, in order: from the memo, else from one kernel call for all the new ones."""
    cache = _CACHE
    found = [cache.get(e) for e in events]
    if None in found:
        new = list(dict.fromkeys(e for e, f in zip(events, found, strict=True) if f is None))
        read = dict(zip(new, read_many(new), strict=True))
        if len(cache) + len(read) > _CACHE_SIZE:  # a pure function of the bytes: forgetting changes nothing
            cache.clear()
        cache.update(read)
        found = [f if f is not None else read[e] for e, f in zip(events, found, strict=True)]
    return found  # type: ignore[return-value]  # no None left


def read_many(events: Sequence[bytes]) -> list[Codes]:
    """The codes of each event, read by the kernel in one call (those it leaves go to :func:`read_codes`)."""
    if not events:
        return []
    lens = np.fromiter(map(len, events), np.int64, len(events))
    ab = np.empty((len(events), 3), np.int64)
    c = np.empty((len(events), K.C_GROUPS), np.uint8)
    left = FK.read_codes(np.frombuffer(b"".join(events), np.uint8), lens, ab, c)
    rows, width = c.tobytes(), K.C_GROUPS
    out: list[Codes] = [(x, y, rows[i * width:(i + 1) * width]) for i, (x, y, _) in enumerate(ab.tolist())]
    if left:
        for i in np.flatnonzero(ab[:, 2]).tolist():
            out[i] = read_codes(events[i])
    return out


def read_codes(event: bytes) -> Codes:
    """The codes of one event, read by the reference (regexes and the longest sorted chain of keys)."""
    text = event[:_MAX_READ]
    first = text[:text.find(b" ")]
    if first in _SPAN_KINDS or first.startswith(b"KIND"):
        span = _SPAN.match(text)
        if span is not None:
            rest = text[span.end():]
            attrs = rest[3:] if rest.startswith(b" | ") else b""
            status = _SPAN_STATUS.get(span.group(1), _OTHER_STATUS)
            return status, 1 + min(int(span.group(2)), K.BUCKETS - 1), _attribute_values(attrs)
    log = _LOG.match(text)
    if log is None:
        return 0, 0, _NO_ATTRIBUTES
    band = log.group(2)
    severity = _SEVERITY.get(band if band is not None else log.group(1), _OTHER_SEVERITY)
    found = _ATTRS_START.search(text, log.end())
    body = text[log.end():found.start() if found is not None else len(text)]
    attrs = text[found.end():] if found is not None else b""
    return severity, 1 + K.BUCKETS + zlib.crc32(body) % K.TEMPLATE_CODES, _attribute_values(attrs)


def _attribute_values(attrs: bytes) -> bytes:
    """Field ``c`` from the text after `` | ``: the kept ``key=value`` pairs (in the canonical form's key
    order) of each group hashed together into one of its ``C_VALUES`` values."""
    if not attrs:
        return _NO_ATTRIBUTES
    groups: list[list[bytes]] = [[] for _ in range(K.C_GROUPS)]
    for key, value in split_attributes(attrs.decode("utf-8", "replace")).items():
        if _MASKED.search(value) is None:
            pair = f"{key}={value}".encode("utf-8", "backslashreplace")
            groups[zlib.crc32(key.encode("utf-8", "backslashreplace")) % K.C_GROUPS].append(pair)
    return bytes(1 + zlib.crc32(b"\x1f".join(pairs)) % K.C_VALUES if pairs else 0 for pairs in groups)
