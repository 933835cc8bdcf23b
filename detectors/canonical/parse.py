"""Read a canonical event back into named fields (the inverse of :mod:`detectors.canonical`, where it can).

Canonical events are built for the byte model, not for parsing, so reading them is best effort and never
raises: a span is ``KIND name STATUS d=D<b>[ | k=v ...]``, a log ``SEVERITY body[ | k=v ...]``; anything
else is ``None``. Two ambiguities are resolved by rule:

- Where the attributes start: the first `` | `` followed by a ``key=`` (a body or span name containing
  `` | k=`` itself is cut there).
- Where one attribute ends: a value may contain spaces, so the text is split before each `` key=`` and a
  piece whose key does not sort after the previous key (keys are written sorted) is glued back onto the
  previous value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPAN = re.compile(r"(UNSPECIFIED|INTERNAL|SERVER|CLIENT|PRODUCER|CONSUMER|KIND-?\d+) (.*?) "
                   r"(UNSET|OK|ERROR|STATUS-?\d+) d=D(\d{1,3})(?= \| |$)", re.DOTALL)
_LOG = re.compile(r"(UNSPECIFIED|(?:TRACE|DEBUG|INFO|WARN|ERROR|FATAL)[234]?|SEV-?\d+) ", re.DOTALL)
_ATTRS_START = re.compile(r" \| (?=[^\s=|]+=)")
_KEY_START = re.compile(r" (?=[^\s=]+=)")
_SEVERITY_STEP = re.compile(r"(?<=[A-Z])[234]$")


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """The fields of one canonical event (texts as canonicalised: masked, placeholders kept)."""

    signal: str
    """``"span"`` or ``"log"``."""
    head: dict[str, str]
    """span: ``span.kind``, ``span.name``, ``status``; log: ``severity`` (band: INFO2 -> INFO),
    ``log.template`` (the masked body)."""
    attributes: dict[str, str]
    duration_bucket: int | None = None
    """The span's log2 duration bucket ``b`` of ``d=D<b>`` (spans only)."""


def split_attributes(text: str) -> dict[str, str]:
    """``k=v k2=v 2`` (the part after `` | ``) to a dict, values with spaces kept whole.

    >>> split_attributes("error.type=Redis timeout http.status_code=503")
    {'error.type': 'Redis timeout', 'http.status_code': '503'}
    """
    pieces = _KEY_START.split(" " + text)[1:]
    attributes: dict[str, str] = {}
    last_key: str | None = None
    for piece in pieces:
        key, _, value = piece.partition("=")
        if last_key is not None and key <= last_key:  # out of order: part of the previous value
            attributes[last_key] += " " + piece
            continue
        attributes[key] = value
        last_key = key
    return attributes


def _body_and_attributes(rest: str) -> tuple[str, dict[str, str]]:
    match = _ATTRS_START.search(rest)
    if match is None:
        return rest, {}
    return rest[:match.start()], split_attributes(rest[match.end():])


def parse_event(event: bytes | bytearray | memoryview) -> ParsedEvent | None:
    """The fields of a canonical span or log event, or ``None`` when it is neither.

    >>> parse_event(b"SERVER GET /cart OK d=D16 | http.status_code=200").head["status"]
    'OK'
    >>> parse_event(b"ERROR2 Redis timeout after <N2> ms").head
    {'severity': 'ERROR', 'log.template': 'Redis timeout after <N2> ms'}
    """
    text = bytes(event).decode("utf-8", "replace")
    span = _SPAN.match(text)
    if span is not None:
        body, attributes = _body_and_attributes(text[span.end():])
        if body:  # the status/duration match was inside the name: not a canonical span
            return None
        head = {"span.kind": span.group(1), "span.name": span.group(2), "status": span.group(3)}
        return ParsedEvent("span", head, attributes, int(span.group(4)))
    log = _LOG.match(text)
    if log is None:
        return None
    body, attributes = _body_and_attributes(text[log.end():])
    severity = _SEVERITY_STEP.sub("", log.group(1))
    return ParsedEvent("log", {"severity": severity, "log.template": body}, attributes)


__all__ = ["ParsedEvent", "parse_event", "split_attributes"]
