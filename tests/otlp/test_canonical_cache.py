"""The memoized canonicalizer must give exactly the bytes of ``detectors.canonical``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.canonical import canonical_log, canonical_span
from otlp_gateway.otlp.canonical_cache import CanonicalCache

KEYS = st.sampled_from(["http.method", "http.route", "user_id", "n", "flag", "note", "requestId", "x.y"])
VALUES = st.one_of(
    st.text(max_size=60), st.integers(-(10**12), 10**12), st.booleans(), st.sampled_from([0, 1, True, False]),
    st.floats(allow_nan=True, allow_infinity=True), st.binary(max_size=8),
    st.lists(st.integers(0, 99), max_size=3),
    st.sampled_from(["GET", "line1\nline2", "a\rb", "10.0.0.7", "é"]),
)
ATTRS = st.one_of(st.none(), st.dictionaries(KEYS, VALUES, max_size=6))
CACHE = CanonicalCache(max_entries=64)  # shared and small on purpose: hits, misses and clears all happen


@settings(max_examples=400, deadline=None)
@given(name=st.text(max_size=30), kind=st.integers(0, 7), status=st.integers(0, 3),
       duration=st.integers(-10, 10**12), attrs=ATTRS)
def test_span_bytes_match_the_canonical_module(name: str, kind: int, status: int, duration: int,
                                               attrs: dict | None) -> None:
    expected = canonical_span(name, kind, status, duration, attrs)
    assert CACHE.span(name, kind, status, duration, attrs) == expected


@settings(max_examples=300, deadline=None)
@given(body=st.text(max_size=80), severity=st.integers(0, 30), attrs=ATTRS)
def test_log_bytes_match_the_canonical_module(body: str, severity: int, attrs: dict | None) -> None:
    assert CACHE.log(body, severity, attrs) == canonical_log(body, severity, attrs)


def test_true_and_one_are_kept_apart() -> None:
    cache = CanonicalCache()
    assert cache.span("a", 1, 0, 5, {"k": 1}) == canonical_span("a", 1, 0, 5, {"k": 1})
    assert cache.span("a", 1, 0, 5, {"k": True}) == canonical_span("a", 1, 0, 5, {"k": True})
    assert cache.span("a", 1, 0, 5, {"k": True}) != cache.span("a", 1, 0, 5, {"k": 1})


def test_integer_buckets_match_at_every_boundary() -> None:
    cache = CanonicalCache()
    for v in (0, 1, 9, 10, 11, 99, 100, -1, -9, -10, -11, -100, 10**19, 10**20, 10**25, -(10**25), 7, 70):
        for attrs in ({"n": v}, {"n": v, "m": -v}):
            assert cache.span("a", 1, 0, 5, attrs) == canonical_span("a", 1, 0, 5, attrs), v
            assert cache.log("b", 9, attrs) == canonical_log("b", 9, attrs), v
