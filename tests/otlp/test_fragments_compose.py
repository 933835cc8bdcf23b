"""The property the fragment memo rests on: a canonical event is its head (the event without attributes)
followed by `` |`` and one rendered fragment per attribute in key order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.canonical import canonical_log, canonical_span
from otlp_gateway.otlp.values import render_attribute

KEYS = st.sampled_from(["http.method", "http.route", "user_id", "n", "flag", "note", "requestId", "x.y", "é",
                        "a\nb", ""])
VALUES = st.one_of(
    st.text(max_size=60), st.integers(-(10**12), 10**12), st.booleans(), st.sampled_from([0, 1, True, False]),
    st.floats(allow_nan=True, allow_infinity=True), st.binary(max_size=8), st.none(),
    st.lists(st.integers(0, 99), max_size=3), st.dictionaries(KEYS, st.integers(), max_size=2),
    st.sampled_from(["GET", "line1\nline2", "a\rb", "10.0.0.7", "é", "x" * 5000]),
)
ATTRS = st.one_of(st.none(), st.dictionaries(KEYS, VALUES, max_size=6))


def composed(head: bytes, attrs: dict | None) -> bytes:
    if not attrs:
        return head
    return head + b" |" + b"".join(render_attribute(key, attrs[key]) for key in sorted(attrs))


@settings(max_examples=400, deadline=None)
@given(name=st.text(max_size=30), kind=st.integers(-1, 7), status=st.integers(-1, 3),
       duration=st.integers(-10, 10**12), attrs=ATTRS)
def test_spans_compose_from_head_and_fragments(name: str, kind: int, status: int, duration: int,
                                               attrs: dict | None) -> None:
    head = canonical_span(name, kind, status, duration, None)
    assert composed(head, attrs) == canonical_span(name, kind, status, duration, attrs)


@settings(max_examples=300, deadline=None)
@given(body=st.text(max_size=80), severity=st.integers(-3, 30), attrs=ATTRS)
def test_logs_compose_from_head_and_fragments(body: str, severity: int, attrs: dict | None) -> None:
    assert composed(canonical_log(body, severity, None), attrs) == canonical_log(body, severity, attrs)
