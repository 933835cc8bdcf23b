"""Canonical events: one byte string per log record or span, stable across volatile details.

The detector models bytes, so everything that varies per event without carrying meaning (ids, timestamps,
addresses, exact numbers) is masked first, and what carries meaning (the message template, severity, span
name, kind, status, a log-scale duration bucket, attribute keys and their low-cardinality values) is kept in
a fixed order. Newlines inside an event are escaped, so one event is one line.

>>> canonical_log("GET /users/1234 took 35 ms", 9, {"http.status_code": 200, "user_id": "u-77"})
b'INFO GET /users/<N4> took <N2> ms | http.status_code=200 user_id=<ID>'
>>> canonical_span("SELECT orders", 3, 2, 1_500_000, {"db.system": "postgresql"})
b'CLIENT SELECT orders ERROR d=D11 | db.system=postgresql'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from detectors.canonical._mask import mask_text, mask_texts
from detectors.canonical._values import (
    MAX_VALUE_CHARS,
    attribute_texts,
    attributes_text,
    is_identifier_key,
    value_text,
    value_texts,
)

__all__ = ["MAX_VALUE_CHARS", "attribute_texts", "canonical_log", "canonical_span", "duration_bucket",
           "is_identifier_key", "log_heads", "mask_text", "mask_texts", "severity_name", "span_heads",
           "value_text", "value_texts"]

_SEVERITY_BANDS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_SEVERITY_NAMES = ["UNSPECIFIED"] + [
    band + (str(step + 1) if step else "") for band in _SEVERITY_BANDS for step in range(4)
]
_SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
_STATUS_CODES = ("UNSET", "OK", "ERROR")


def severity_name(severity_number: int) -> str:
    """OTLP severity number (1-24) to its short name: 9 -> INFO, 10 -> INFO2, 17 -> ERROR.

    >>> severity_name(9), severity_name(18), severity_name(0), severity_name(99)
    ('INFO', 'ERROR2', 'UNSPECIFIED', 'SEV99')
    """
    if 0 <= severity_number < len(_SEVERITY_NAMES):
        return _SEVERITY_NAMES[severity_number]
    return f"SEV{severity_number}"


def duration_bucket(duration_ns: int) -> str:
    """Log2 bucket of a duration in microseconds: ``D{b}`` covers [2^(b-1), 2^b) us; D0 is under 1 us.

    >>> duration_bucket(999), duration_bucket(1_000), duration_bucket(1_500_000), duration_bucket(-5)
    ('D0', 'D1', 'D11', 'D0')
    """
    return f"D{(max(int(duration_ns), 0) // 1000).bit_length()}"


def _escape_lines(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n") if ("\n" in text or "\r" in text) else text


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


def canonical_log(body: str, severity_number: int, attributes: Mapping[str, object] | None = None) -> bytes:
    """``SEVERITY masked-body | key=value ...`` as UTF-8 bytes (keys sorted; see the low-cardinality rule)."""
    body_text = mask_text(body) if isinstance(body, str) else value_text(body)
    text = f"{severity_name(severity_number)} {body_text}{attributes_text(attributes)}"
    return _encode(_escape_lines(text))


def canonical_span(name: str, kind: int, status_code: int, duration_ns: int,
                   attributes: Mapping[str, object] | None = None) -> bytes:
    """``KIND masked-name STATUS d=D<log2 us> | key=value ...`` as UTF-8 bytes."""
    return _span_text(mask_text(name), kind, status_code, duration_ns, attributes_text(attributes))


def _span_text(name_text: str, kind: int, status_code: int, duration_ns: int, attributes_part: str) -> bytes:
    kind_text = _SPAN_KINDS[kind] if 0 <= kind < len(_SPAN_KINDS) else f"KIND{kind}"
    known = 0 <= status_code < len(_STATUS_CODES)
    status_text = _STATUS_CODES[status_code] if known else f"STATUS{status_code}"
    text = f"{kind_text} {name_text} {status_text} d={duration_bucket(duration_ns)}{attributes_part}"
    return _encode(_escape_lines(text))


def log_heads(bodies: Sequence[str], severity_numbers: Sequence[int]) -> list[bytes]:
    """``[canonical_log(b, s, None) for b, s in zip(bodies, severity_numbers)]``, the bodies masked together
    (``mask_texts``).

    >>> log_heads(["took 35 ms", "user a@b.io"], [9, 17])
    [b'INFO took <N2> ms', b'ERROR user <EMAIL>']
    """
    return [_encode(_escape_lines(f"{severity_name(s)} {text}"))
            for text, s in zip(mask_texts(bodies), severity_numbers, strict=True)]


def span_heads(names: Sequence[str], kinds: Sequence[int], status_codes: Sequence[int],
               durations_ns: Sequence[int]) -> list[bytes]:
    """``[canonical_span(n, k, s, d, None) ...]`` over the aligned sequences, the names masked together."""
    return [_span_text(text, kind, status, duration, "")
            for text, kind, status, duration in zip(mask_texts(names), kinds, status_codes, durations_ns,
                                                    strict=True)]
