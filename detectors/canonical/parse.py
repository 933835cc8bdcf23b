"""Read a canonical event back into named fields (the inverse of :mod:`detectors.canonical`, where it can).

Canonical events are built for the byte model, not for parsing, so reading them is best effort and never
raises: a span is ``KIND name STATUS d=D<b>[ | k=v ...]``, a log ``SEVERITY body[ | k=v ...]``; anything
else is ``None``. Two ambiguities are resolved by rule:

- Where the attributes start: the first `` | `` followed by a ``key=`` (a body or span name containing
  `` | k=`` itself is cut there).
- Where one attribute ends: a value may contain spaces and ``x=y`` text, so of the `` key=`` candidates the
  longest chain of sorted keys is taken (keys are written sorted); the rest belongs to the values.
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
_CHAIN_LIMIT = 64
MAX_PARSED_BYTES = 16_384
"""Bytes of an event that are read (a masked body is at most ~4 KiB; the rest holds 150+ attributes): a
hostile event with thousands of attributes costs no more than an ordinary large one."""


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


def _key_chain(keys: list[str]) -> list[int]:
    """Indices of the longest strictly increasing chain of ``keys`` that starts at 0, each step taking the
    farthest next key (a value holding ``k=v`` text is more likely than a run of keys); greedy past
    ``_CHAIN_LIMIT`` candidates so a hostile event stays linear."""
    m = len(keys)
    if m > _CHAIN_LIMIT:
        chain = [0]
        for j in range(1, m):
            if keys[j] > keys[chain[-1]]:
                chain.append(j)
        return chain
    longest = [1] * m  # longest chain starting at i
    for i in range(m - 2, -1, -1):
        longest[i] = 1 + max((longest[j] for j in range(i + 1, m) if keys[j] > keys[i]), default=0)
    chain = [0]
    while longest[chain[-1]] > 1:
        i = chain[-1]
        chain.append(max(j for j in range(i + 1, m) if keys[j] > keys[i] and longest[j] == longest[i] - 1))
    return chain


def split_attributes(text: str) -> dict[str, str]:
    """``k=v k2=v 2`` (the part after `` | ``) to a dict, values with spaces kept whole.

    Keys are written sorted, so the split is the longest sorted chain of ``key=`` candidates.

    >>> split_attributes("error.type=Redis timeout http.status_code=503")
    {'error.type': 'Redis timeout', 'http.status_code': '503'}
    >>> split_attributes("error.message=took x=1 ms http.status_code=503")
    {'error.message': 'took x=1 ms', 'http.status_code': '503'}
    """
    spaced = " " + text
    starts = [m.end() for m in _KEY_START.finditer(spaced)]
    if not starts:
        return {}
    equals = [spaced.find("=", a) for a in starts]  # the lookahead guarantees one, before the next space
    keys = [spaced[a:e] for a, e in zip(starts, equals, strict=True)]
    chain = _key_chain(keys)
    ends = [starts[j] - 1 for j in chain[1:]] + [len(spaced)]
    return {keys[j]: spaced[equals[j] + 1:end] for j, end in zip(chain, ends, strict=True)}


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
    text = bytes(event[:MAX_PARSED_BYTES]).decode("utf-8", "replace")
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


__all__ = ["MAX_PARSED_BYTES", "ParsedEvent", "parse_event", "split_attributes"]
