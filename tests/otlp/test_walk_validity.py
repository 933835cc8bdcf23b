"""The walk accepts exactly what upb (the protobuf parser the receivers used before) accepts.

A wrong "valid" would forward bytes the downstream cannot parse; a wrong "invalid" would refuse a client's
data. Structured fuzzing: tags with every wire type, unknown and mistyped fields, groups (matched and not),
nesting around the depth limit, strings with every kind of UTF-8 mistake.
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otlp_gateway.otlp._kernels.wire import MAX_DEPTH, utf8_valid
from otlp_gateway.otlp.extract import REQUEST_TYPES
from otlp_gateway.otlp.walker import MalformedRequest, RequestWalker
from tests.otlp.wire_bytes import length_delimited, tag, varint

WALKERS = {signal: RequestWalker(signal) for signal in ("traces", "logs")}  # type: ignore[arg-type]


UTF8_PIECES = [b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80",  # valid
               b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",  # overlong
               b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xee\x80\x80",  # a surrogate and its two neighbours
               b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",  # around U+10FFFF
               b"\xff", b"\x80", b"\xe0\xa0\x80", b"\xf0\x90\x80\x80",
               b"\xc2", b"\xe2\x82", b"\xf0\x9f\x98"]  # truncated
texts = st.lists(st.sampled_from(UTF8_PIECES), max_size=4).map(b"".join)
FIELDS = st.sampled_from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 100, 2**29 - 1])


def messages(depth: int = 0) -> st.SearchStrategy[bytes]:
    """Byte strings shaped like protobuf messages: plausible fields, sometimes wrong."""
    inner = messages(depth + 1) if depth < 5 else st.just(b"")
    field = st.one_of(
        st.tuples(FIELDS, st.sampled_from([0, 2**63, 2**64 - 1, 300, 1])).map(
            lambda f: tag(f[0], 0) + varint(f[1])),
        FIELDS.map(lambda f: tag(f, 1) + bytes(8)),
        FIELDS.map(lambda f: tag(f, 5) + bytes(4)),
        st.tuples(FIELDS, texts).map(lambda f: length_delimited(*f)),
        st.tuples(FIELDS, inner).map(lambda f: length_delimited(*f)),
        st.tuples(FIELDS, inner, st.booleans()).map(
            lambda f: tag(f[0], 3) + f[1] + tag(f[0] if f[2] else f[0] + 1, 4)),
        st.tuples(FIELDS, st.sampled_from([4, 6, 7])).map(lambda f: tag(*f)),
    )
    return st.lists(field, max_size=4).map(b"".join)


def upb_parses(signal: str, payload: bytes) -> bool:
    try:
        REQUEST_TYPES[signal].FromString(payload)
    except DecodeError:
        return False
    return True


def assert_same_verdict(payload: bytes) -> None:
    for signal, walker in WALKERS.items():
        expected = upb_parses(signal, payload)
        for extract in (False, True):
            try:
                walker.walk(payload, extract)
                walked = True
            except MalformedRequest:
                walked = False
            assert walked == expected, f"{signal} extract={extract}: upb {expected}, walk {walked}: " \
                f"{payload!r}"


@pytest.mark.slow  # 1500 generated payloads through the walker and upb
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(messages(), st.binary(max_size=60)))
def test_the_walk_accepts_what_upb_accepts(payload: bytes) -> None:
    assert_same_verdict(payload)


def _nested_values(levels: int, inner: bytes = length_delimited(1, b"x")) -> bytes:
    value = inner
    for _ in range(levels):  # AnyValue.array_value -> ArrayValue.values -> AnyValue
        value = length_delimited(5, length_delimited(1, value))
    return value


def _request_with_span(span: bytes) -> bytes:
    return length_delimited(1, length_delimited(2, length_delimited(2, span)))


def test_nesting_at_the_depth_limit() -> None:
    """A span attribute's value nested around upb's limit of 100 messages below the request."""
    verdicts = set()
    for levels in range(44, 50):
        attribute = length_delimited(1, b"k") + length_delimited(2, _nested_values(levels))
        payload = _request_with_span(length_delimited(9, attribute))
        assert_same_verdict(payload)
        verdicts.add(upb_parses("traces", payload))
    assert verdicts == {True, False}  # the range straddles the limit


def test_groups_count_against_the_depth_limit() -> None:
    verdicts = set()
    for groups in range(MAX_DEPTH - 6, MAX_DEPTH):
        nested = b""
        for _ in range(groups):
            nested = tag(100, 3) + nested + tag(100, 4)
        payload = _request_with_span(length_delimited(5, b"name") + nested)
        assert_same_verdict(payload)
        verdicts.add(upb_parses("traces", payload))
    assert verdicts == {True, False}


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(texts, st.binary(max_size=12), st.text(max_size=8).map(str.encode)))
def test_utf8_check_agrees_with_python(text: bytes) -> None:
    try:
        text.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    padded = np.frombuffer(b"\xff" + text + b"\xe2", dtype=np.uint8)  # bytes around must not be read
    assert utf8_valid(padded, 1, 1 + len(text)) == valid
