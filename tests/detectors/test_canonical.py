"""Canonicalization: the single-pass implementation against a slow, obvious position-by-position reference."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.canonical import canonical_log, canonical_span, is_identifier_key, mask_text

# ---------------------------------------------------------------- reference (deliberately naive)

_REFERENCE_PATTERNS = [  # priority order; each tried at every position
    # an e-mail starts only where a run of its local-part characters starts (linear-time masking)
    ("<EMAIL>", re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")),
    ("<TS>", re.compile(r"\b\d{4}-\d{2}-\d{2}"
                        r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b", re.I)),
    ("<TS>", re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b")),
    ("<UUID>", re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)),
    ("<IP>", re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")),
    ("<IP>", re.compile(r"\b(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}\b", re.I)),
    ("<HEX>", re.compile(r"\b0x[0-9a-f]+\b", re.I)),
]
_HEX_CHARS = set("0123456789abcdefABCDEF")


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _hex_word_at(text: str, pos: int) -> int:
    """End of a bare hex identifier (>= 8 hex chars, a digit and a letter, whole word) at pos, or -1."""
    if pos > 0 and _word(text[pos - 1]):
        return -1
    end = pos
    while end < len(text) and text[end] in _HEX_CHARS:
        end += 1
    run = text[pos:end]
    # the regex backtracks to the longest run that still ends on a word boundary
    while len(run) >= 8:
        boundary = end == len(text) or not _word(text[end])
        if boundary and any(c.isdigit() for c in run) and any(c.isalpha() for c in run):
            return end
        end -= 1
        run = text[pos:end]
    return -1


def reference_mask(text: str) -> str:
    out = []
    pos = 0
    while pos < len(text):
        for placeholder, pattern in _REFERENCE_PATTERNS:
            m = pattern.match(text, pos)
            if m and m.end() > pos:
                out.append(placeholder)
                pos = m.end()
                break
        else:
            end = _hex_word_at(text, pos)
            if end > 0:
                out.append("<HEX>")
                pos = end
            elif text[pos] in "0123456789":
                end = pos
                while end < len(text) and text[end] in "0123456789":
                    end += 1
                value = int(text[pos:end])
                digits = min(len(str(value)) if value else 0, 20)
                if end + 1 < len(text) and text[end] == "." and text[end + 1] in "0123456789":
                    end += 1
                    while end < len(text) and text[end] in "0123456789":
                        end += 1
                    out.append(f"<F{digits}>")
                else:
                    out.append(f"<N{digits}>")
                pos = end
            else:
                out.append(text[pos])
                pos += 1
    return "".join(out)


_ID_WORDS = {"id", "uuid", "guid", "token", "session", "email", "user", "username", "hash", "digest"}


def reference_is_identifier(key: str) -> bool:
    last = re.split(r"[._\-]", key)[-1]
    if last.lower() in _ID_WORDS:
        return True
    return any(key.endswith(s) and len(key) > len(s) and key[-len(s) - 1].islower()
               for s in ("Id", "ID", "Uuid", "Token"))


def reference_value(value: object) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return str(value).lower()
    if isinstance(value, int):
        return str(value) if abs(value) < 1000 else reference_mask(str(value))
    if isinstance(value, float):
        return reference_mask(repr(value)) if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, str):
        return reference_mask(value)
    if isinstance(value, list):
        return "[" + ",".join(reference_value(v) for v in value[:8]) + "]"
    raise AssertionError(type(value))


def reference_attributes(attributes: dict) -> str:
    text = ""
    for key in sorted(attributes):
        if reference_is_identifier(key):
            shown = "<ID>"
        else:
            shown = reference_value(attributes[key])
            if len(shown) > 48:
                shown = "<LONG>"
        text += f" {key}={shown}"
    return " |" + text if attributes else ""


# ---------------------------------------------------------------- strategies

_PIECES = st.sampled_from([
    "GET", "/api/users/", "user", " ", " ", "=", ":", ".", "-", "@", "ms", "took", "at", "0x1f", "deadbeef",
    "3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab", "10.0.0.7", "fe80:0:0:0:1:2:3:4", "2024-05-01T10:00:00Z",
    "2024-05-01", "12:34:56.789", "a@b.io", "007", "0", "12.5", "1234567890", "abc123def456", "T", "Z", "é",
])
_TEXT = st.one_of(
    st.lists(_PIECES, max_size=12).map("".join),
    st.text(alphabet="0123456789abcdefxyzABCDEF.:-_@ TZ/=x", max_size=50),
)
_KEYS = st.sampled_from(["http.method", "user_id", "requestId", "db.system", "valid", "session", "a", "route",
                         "http.request.id", "userID", "count"])
_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), _TEXT,
                    st.lists(st.one_of(st.integers(0, 999), _TEXT), max_size=10))


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_mask_matches_reference(text):
    assert mask_text(text) == reference_mask(text)


@settings(max_examples=150, deadline=None)
@given(_TEXT, st.integers(0, 30), st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_canonical_log_matches_reference(body, severity, attributes):
    bands = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
    names = ["UNSPECIFIED"] + [b + (str(i + 1) if i else "") for b in bands for i in range(4)]
    sev = names[severity] if severity < len(names) else f"SEV{severity}"
    expected = f"{sev} {reference_mask(body)}{reference_attributes(attributes)}"
    expected = expected.replace("\r", "\\r").replace("\n", "\\n").encode("utf-8", "backslashreplace")
    assert canonical_log(body, severity, attributes) == expected


@settings(max_examples=100, deadline=None)
@given(_TEXT, st.integers(0, 7), st.integers(0, 3), st.integers(-10, 10**12), st.dictionaries(_KEYS, _VALUES))
def test_canonical_span_matches_reference(name, kind, status, duration, attributes):
    kinds = ["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
    kind_text = kinds[kind] if kind < len(kinds) else f"KIND{kind}"
    status_text = ["UNSET", "OK", "ERROR"][status] if status < 3 else f"STATUS{status}"
    micros = max(duration, 0) // 1000
    bucket = 0
    while (1 << bucket) <= micros:
        bucket += 1
    expected = (f"{kind_text} {reference_mask(name)} {status_text} d=D{bucket}"
                f"{reference_attributes(attributes)}")
    expected_bytes = expected.encode("utf-8", "backslashreplace")
    assert canonical_span(name, kind, status, duration, attributes) == expected_bytes


@given(_KEYS)
def test_identifier_rule_matches_reference(key):
    assert is_identifier_key(key) == reference_is_identifier(key)


def test_volatile_details_share_one_canonical_form():
    a = canonical_log("user 42 from 10.0.0.7 req 3f2a9c1e-0b7d-4c1a-9e2f-1234567890ab took 31 ms", 9,
                      {"user_id": "u1", "http.status_code": 200})
    b = canonical_log("user 97 from 10.9.3.1 req 0b7d3f2a-0b7d-4c1a-9e2f-abcdef123456 took 58 ms", 9,
                      {"http.status_code": 204, "user_id": "u2"})
    assert a == b.replace(b"=204", b"=200")  # exact small ints (status codes) are kept
    assert canonical_log("took 31 ms", 9, None) != canonical_log("took 31000 ms", 9, None)  # magnitude kept


def test_multiline_body_is_one_line_and_unicode_is_safe():
    event = canonical_log("boom\n  at Foo.bar(Foo.java:12)\ud800", 17, None)
    assert b"\n" not in event
    assert event.startswith(b"ERROR boom\\n")


def test_long_text_is_cut_before_masking_and_marked():
    from detectors.canonical._mask import CUT_MARK, MAX_MASKED_CHARS

    body = "x " * MAX_MASKED_CHARS + "user 42"
    assert mask_text(body) == reference_mask(body[:MAX_MASKED_CHARS]) + CUT_MARK
    assert mask_text("y" * MAX_MASKED_CHARS) == "y" * MAX_MASKED_CHARS  # at the bound: nothing cut


@pytest.mark.timeout(60)
@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["A", "a", "1", "a@", "-", ".", "a.", "x@y.", "1.", "f0", "a:", "Z_"]),
       st.integers(1, 4))
def test_masking_a_long_run_scans_each_character_a_bounded_number_of_times(unit, scale):
    """The regex (not the cut) is linear: all examples together (up to 200 k characters of one repeated
    token each) take about 3 s; one quadratic scan of 200 k characters took over 100 s before."""
    from detectors.canonical._mask import _PATTERN, _replace

    text = unit * (50_000 * scale // len(unit))
    assert len(_PATTERN.sub(_replace, text)) <= len(text) + 5
