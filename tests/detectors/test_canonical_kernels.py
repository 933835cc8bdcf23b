"""The compiled canonical texts (``detectors._kernels.mask``: identifier keys, attribute fragments, span and
log heads, for ASCII inputs) against the Python rules of ``detectors.canonical``, the reference: the same
bytes for every input."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import detectors.canonical as canonical
from detectors._kernels import mask as kernel
from detectors.canonical import _values, canonical_log, canonical_span, is_identifier_key

ASCII = st.characters(min_codepoint=0, max_codepoint=127)
KEY_PARTS = st.sampled_from(["id", "ID", "Id", "iD", "uuid", "UUID", "Uuid", "guid", "token", "Token",
                             "TOKEN", "session", "Session", "email", "user", "User", "username", "hash",
                             "digest", "request", "a", "z", "A", "Z", ".", "_", "-", "\n", "\r", " ", "x",
                             "http", "0", "ids", "valid", "tokens"])
KEYS = st.one_of(st.lists(KEY_PARTS, max_size=5).map("".join), st.text(ASCII, max_size=12))
TEXTS = st.one_of(
    st.text(ASCII, max_size=70),
    st.lists(st.sampled_from(["GET", "/users/", "1234", "took", " ", "ms", "\n", "\r", "10.0.0.7", "a@b.io",
                              "3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab", "deadbeef01", "x" * 30, "2024-05-01",
                              "12:00:00", "0x1f", "-", "3.5", "."]), max_size=8).map("".join),
    st.sampled_from(["", "x" * 48, "x" * 49, "1 " * 25, "w " * 3000, "a\nb" * 20]),
)
INTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-1001, 1001),
                 st.sampled_from([-(2**63), 2**63 - 1, -1000, -999, 999, 1000, 0, -1]))


def _array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8) if text else np.zeros(1, dtype=np.uint8)


def _scratch() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(kernel.TMP_BYTES, dtype=np.uint8), np.zeros(kernel.TEXT_BYTES, dtype=np.uint8)


def _fragment(key: str, kind: int, text: str = "", number: int = 0) -> bytes:
    tmp, out = _scratch()
    k, v = _array(key), _array(text)
    identifier = kernel.identifier_key(k, 0, len(key))
    n = kernel.attribute_fragment(k, 0, len(key), identifier, kind, v, 0, len(text), number, tmp, out, 0)
    return out[:n].tobytes()


def _reference_fragment(key: str, value: object) -> bytes:
    """The attribute's part of a canonical event: what follows the head and its `` |``."""
    return canonical_log("", 0, {key: value})[len(b"UNSPECIFIED ") + 2:]


@settings(max_examples=2000, deadline=None)
@given(key=KEYS)
def test_identifier_keys_as_the_regexes(key: str) -> None:
    assert kernel.identifier_key(_array(key), 0, len(key)) == is_identifier_key(key)


def test_identifier_keys_examples() -> None:
    for key, expected in [("user_id", True), ("user_id\n", True), ("user_id\n\n", False), ("ID", True),
                          ("xID", True), ("XID", False), ("x.ID", True), ("valid", False),
                          ("requestId", True), ("request_Token", True), ("1Id", False), ("Token", True),
                          ("aUuid", True), ("", False), ("\n", False), ("session\n", True),
                          ("my-hash", True), ("myhash", False)]:
        assert is_identifier_key(key) == expected, key
        assert kernel.identifier_key(_array(key), 0, len(key)) == expected, key


@settings(max_examples=800, deadline=None)
@given(key=KEYS, text=TEXTS)
def test_string_fragments_as_the_reference(key: str, text: str) -> None:
    assert _fragment(key, kernel.V_TEXT, text) == _reference_fragment(key, text)


@settings(max_examples=500, deadline=None)
@given(key=KEYS, number=INTS)
def test_integer_fragments_as_the_reference(key: str, number: int) -> None:
    assert _fragment(key, kernel.V_INT, number=number) == _reference_fragment(key, number)


@given(key=KEYS)
def test_constant_fragments_as_the_reference(key: str) -> None:
    for kind, value in [(kernel.V_NULL, None), (kernel.V_TRUE, True), (kernel.V_FALSE, False),
                        (kernel.V_BYTES, b"\x01")]:
        assert _fragment(key, kind) == _reference_fragment(key, value)


@settings(max_examples=800, deadline=None)
@given(name=TEXTS, kind=st.integers(-1, 7), status=st.integers(-1, 3),
       duration=st.one_of(st.integers(-10, 10**13), st.sampled_from([0, 999, 1000, 2**64 - 1])))
def test_span_heads_as_the_reference(name: str, kind: int, status: int, duration: int) -> None:
    tmp, out = _scratch()
    bucket = (max(duration, 0) // 1000).bit_length()
    n = kernel.span_head(_array(name), 0, len(name), kind, status, bucket, tmp, out, 0)
    if not (0 <= kind < 6 and 0 <= status < 3):
        assert n == -1  # left to Python
        return
    assert out[:n].tobytes() == canonical_span(name, kind, status, duration, None)


@settings(max_examples=800, deadline=None)
@given(body=TEXTS, severity=st.integers(-3, 30))
def test_log_heads_as_the_reference(body: str, severity: int) -> None:
    tmp, out = _scratch()
    n = kernel.log_head(_array(body), 0, len(body), severity, tmp, out, 0)
    if not 0 <= severity <= 24:
        assert n == -1
        return
    assert out[:n].tobytes() == canonical_log(body, severity, None)


def test_the_tables_and_limits_agree_with_the_python_rules() -> None:
    assert kernel.SPAN_KINDS == canonical._SPAN_KINDS
    assert kernel.STATUS_CODES == canonical._STATUS_CODES
    assert list(kernel.SEVERITY_NAMES) == canonical._SEVERITY_NAMES
    assert kernel.MAX_VALUE_CHARS == _values.MAX_VALUE_CHARS
    assert kernel.EXACT_INT_LIMIT == _values.EXACT_INT_LIMIT
    words = "|".join(kernel.ID_KEY_WORDS)
    assert _values._ID_KEY.pattern == rf"(?:^|[._\-])(?:{words})$"
    assert _values._CAMEL_ID_KEY.pattern == rf"[a-z](?:{'|'.join(kernel.CAMEL_ID_KEY_WORDS)})$"


def test_the_worst_case_fits_the_scratch() -> None:
    key = "\n" * kernel.MAX_KEY_BYTES
    text = "\n" * 5000
    tmp, out = _scratch()
    k, v = _array(key), _array(text)
    n = kernel.attribute_fragment(k, 0, len(key), False, kernel.V_TEXT, v, 0, len(text), 0, tmp, out, 0)
    assert out[:n].tobytes() == _reference_fragment(key, text)
    name = "1\n" * 3000
    n = kernel.span_head(_array(name), 0, len(name), 0, 0, ((2**64 - 1) // 1000).bit_length(), tmp, out, 0)
    assert n < kernel.TEXT_BYTES
    assert out[:n].tobytes() == canonical_span(name, 0, 0, 2**64 - 1, None)
