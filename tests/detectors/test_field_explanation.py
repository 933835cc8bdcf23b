"""Field-level incident explanations: each kind of change named in plain words, ranked, bounded, robust."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import detectors.canonical.parse
import detectors.field_explanation
import detectors.plain_words
from detectors import EventBatch
from detectors.canonical import canonical_log, canonical_span
from detectors.canonical.parse import parse_event
from detectors.field_explanation import MAX_FIELDS, explain_band, explain_fields
from detectors.incident_types import FieldChange
from detectors.numeric import NumericDetector
from detectors.plain_words import engine_tokens
from detectors.synthetic import synthetic_logs, synthetic_spans

SERVER, UNSET, ERROR = 2, 0, 2
MS = 1_000_000


def _cart_span(rng: np.random.Generator, duration_ns: int, failing: bool = False,
               extra: dict[str, object] | None = None) -> bytes:
    attributes: dict[str, object] = {
        "http.request.method": "POST", "http.route": "/cart/items", "http.response.status_code": 200,
        "server.address": "cart.internal", "user_id": f"u{int(rng.integers(1_000_000))}",
        "url.path": f"/cart/items/{int(rng.integers(1, 99_999))}",
    }
    if failing:
        attributes.update({"http.response.status_code": 503, "error.type": "RedisTimeout"})
    attributes.update(extra or {})
    return canonical_span("POST /cart/items", SERVER, ERROR if failing else UNSET, duration_ns, attributes)


def _cart_streams(seed: int = 1) -> tuple[list[bytes], list[int], list[bytes], list[int]]:
    """2000 healthy spans (~40 ms), then 500 spans 6x slower of which exactly 31 % fail with a new error."""
    rng = np.random.default_rng(seed)
    ref_ns = [int(40 * MS * rng.uniform(0.9, 1.1)) for _ in range(2000)]
    inc_ns = [int(240 * MS * rng.uniform(0.9, 1.1)) for _ in range(500)]
    reference = [_cart_span(rng, d) for d in ref_ns]
    incident = [_cart_span(rng, d, failing=k % 100 < 31) for k, d in enumerate(inc_ns)]
    return reference, ref_ns, incident, inc_ns


def _by_field(fields: tuple[FieldChange, ...]) -> dict[str, FieldChange]:
    return {f.field: f for f in fields}


# ---------------------------------------------------------------- spans


def test_error_burst_names_status_new_key_new_value_and_duration():
    reference, ref_ns, incident, inc_ns = _cart_streams()
    fields, summary = explain_fields(reference, incident, service="cart", name="POST /cart/items",
                                     reference_durations_ns=ref_ns, incident_durations_ns=inc_ns)
    rows = _by_field(fields)
    assert set(rows) == {"status", "error.type", "http.response.status_code", "duration"}

    status = rows["status"]
    assert (status.change, status.before, status.now) == ("share", "ERROR (0 %), UNSET (100 %)",
                                                          "ERROR (31 %), UNSET (69 %)")
    assert status.unusual.startswith("p < 1e-")
    new_key = rows["error.type"]
    assert (new_key.change, new_key.before, new_key.now, new_key.unusual) == (
        "new_key", "never seen", "RedisTimeout (31 %)", "never seen in 2000 reference events")
    assert new_key.example is not None and "error.type=RedisTimeout" in new_key.example
    new_value = rows["http.response.status_code"]
    assert (new_value.change, new_value.before, new_value.now, new_value.unusual) == (
        "new_value", "200 (100 %)", "503 (31 %)", "never seen in 2000 reference events")
    shift = rows["duration"]
    assert (shift.change, shift.before, shift.now) == ("shift", "40 ms median", "240 ms median (× 6)")
    assert shift.unusual == "500 of 500 spans slower than the reference's 99th percentile (44 ms)"

    assert summary == ("cart POST /cart/items: duration × 6 (median 40 ms → 240 ms); 31 % of spans now ERROR "
                       "(was 0 %) with error.type=RedisTimeout (new) and http.response.status_code=503 (new)")
    assert engine_tokens(summary) == []


def test_duration_from_buckets_alone_is_told_approximately():
    reference, _, incident, _ = _cart_streams()
    fields, summary = explain_fields(reference, incident, service="cart", name="POST /cart/items")
    shift = _by_field(fields)["duration"]
    # every span of 40 ms +/- 10 % lies in bucket D16 = [32.8, 65.5) ms, of 240 ms in D18 = [131, 262) ms;
    # with one bucket per side the interpolated median is the bucket's middle on the log scale
    assert (shift.before, shift.now) == ("~46 ms median", "~190 ms median (× 4)")
    assert "duration × 4 (median ~46 ms → ~190 ms)" in summary
    assert engine_tokens(summary) == [] and "D16" not in summary and "D18" not in summary


def test_a_slow_tail_is_told_by_the_90th_percentile_when_the_median_holds():
    rng = np.random.default_rng(3)
    reference = [_cart_span(rng, int(40 * MS * rng.uniform(0.9, 1.1))) for _ in range(2000)]
    incident = [_cart_span(rng, int((800 if k % 4 == 0 else 40) * MS * rng.uniform(0.9, 1.1)))
                for k in range(500)]
    fields, summary = explain_fields(reference, incident)
    shift = _by_field(fields)["duration"]
    assert shift.before.endswith("90th percentile") and "median" not in shift.before
    assert "(× " in shift.now and "duration × " in summary and "90th percentile" in summary


def test_rare_value_says_how_often_it_was_seen():
    rng = np.random.default_rng(4)
    reference = [_cart_span(rng, 40 * MS, extra={"cache.result": "stale" if k in (10, 900, 1500) else "hit"})
                 for k in range(2000)]
    incident = [_cart_span(rng, 40 * MS, extra={"cache.result": "stale" if k % 5 == 0 else "hit"})
                for k in range(500)]
    fields, summary = explain_fields(reference, incident)
    rare = _by_field(fields)["cache.result"]
    assert (rare.change, rare.before, rare.now, rare.unusual) == (
        "rare_value", "stale (0.15 %), hit (99.85 %)", "stale (20 %), hit (80 %)",
        "seen 3 times in 2000 reference events")
    assert summary == "cache.result=stale in 20 % of events (was 0.15 %)"


def test_share_of_a_known_value():
    rng = np.random.default_rng(5)
    reference = [_cart_span(rng, 40 * MS, extra={"http.route": "/cart/b" if k % 10 == 0 else "/cart/a"})
                 for k in range(2000)]
    incident = [_cart_span(rng, 40 * MS, extra={"http.route": "/cart/b" if k % 10 < 6 else "/cart/a"})
                for k in range(500)]
    fields, summary = explain_fields(reference, incident)
    assert [f.field for f in fields] == ["http.route"]
    share = fields[0]
    assert (share.change, share.before, share.now) == ("share", "/cart/b (10 %), /cart/a (90 %)",
                                                       "/cart/b (60 %), /cart/a (40 %)")
    assert share.unusual.startswith("p < 1e-") and share.bits > 100
    assert summary == "http.route=/cart/b in 60 % of events (was 10 %)"
    # 10 % -> 16 %: significant for independent samples, but not doubled: not reported
    modest = [_cart_span(rng, 40 * MS, extra={"http.route": "/cart/b" if k % 25 < 4 else "/cart/a"})
              for k in range(500)]
    assert explain_fields(reference, modest)[0] == ()


def test_a_burst_of_new_values_is_one_row_and_an_always_new_field_is_no_news():
    rng = np.random.default_rng(6)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 8)) for _ in range(2600)]
    reference = [_cart_span(rng, 40 * MS, extra={"coupon": "none", "trace.note": words[k]})
                 for k in range(2000)]
    incident = [_cart_span(rng, 40 * MS, extra={"coupon": words[2000 + k] if k % 5 == 0 else "none",
                                                "trace.note": words[2100 + k]}) for k in range(500)]
    fields, summary = explain_fields(reference, incident)
    assert [f.field for f in fields] == ["coupon"]  # trace.note is always new: Good-Turing expects it
    row = fields[0]
    assert row.change == "new_value" and row.now.endswith("and 98 more (20 % of events)")
    assert row.before == "none (100 %)" and row.unusual == "never seen in 2000 reference events"
    assert summary.startswith("coupon: 100 new values in 20 % of events (e.g. ")


def test_rows_are_ranked_by_bits_and_bounded():
    rng = np.random.default_rng(7)
    reference = [_cart_span(rng, 40 * MS) for _ in range(2000)]
    # twelve new keys, key_<i> present in 10 * (i + 1) of the 500 incident events: more events, more bits
    incident = [_cart_span(rng, 40 * MS, extra={f"key_{i:02d}": "on" for i in range(12) if k < 10 * (i + 1)})
                for k in range(500)]
    fields, _ = explain_fields(reference, incident)
    assert len(fields) == MAX_FIELDS == 8
    assert [f.field for f in fields] == [f"key_{i:02d}" for i in range(11, 3, -1)]
    bits = [f.bits for f in fields]
    assert bits == sorted(bits, reverse=True) and bits[-1] > 10
    assert len(explain_fields(reference, incident, max_fields=3)[0]) == 3


def test_only_the_most_recent_events_are_examined():
    rng = np.random.default_rng(8)
    # the oldest 1000 of 3000 reference events carried error.type; the examined last 2000 never did
    reference = [_cart_span(rng, 40 * MS, extra={"error.type": "RedisTimeout"} if k < 1000 else None)
                 for k in range(3000)]
    incident = [_cart_span(rng, 40 * MS, extra={"error.type": "RedisTimeout"}) for _ in range(500)]
    row = _by_field(explain_fields(reference, incident)[0])["error.type"]
    assert row.unusual == "never seen in 2000 reference events"
    # of 800 incident events only the last 500 are read: a key in the first 300 alone is not reported
    late = [_cart_span(rng, 40 * MS, extra={"retry": "yes"} if k < 300 else None) for k in range(800)]
    assert "retry" not in _by_field(explain_fields(reference[-2000:], late)[0])


def test_durations_must_match_the_events():
    reference, ref_ns, incident, _ = _cart_streams()
    with pytest.raises(ValueError, match="one entry per event"):
        explain_fields(reference, incident, reference_durations_ns=ref_ns[:-1])


def test_stationary_streams_explain_nothing():
    for make in (synthetic_logs, synthetic_spans):
        events = make(2500, 11)
        fields, summary = explain_fields(events[:2000], events[2000:], service="shop", name="any")
        assert fields == ()
        assert summary == ("shop any: the events differ from the reference, but no single field explains "
                           "the change")


def test_nothing_to_compare():
    reference, _, incident, _ = _cart_streams()
    assert explain_fields([], incident, service="cart") == ((), "cart: no reference events to compare")
    assert explain_fields(reference, [b"not canonical"]) == ((), "no incident events to compare")


# ---------------------------------------------------------------- logs

_NORMAL = ("GET /users/{} took {} ms", "cache refreshed for shard {}", "connected to 10.0.0.{}")


def _log(rng: np.random.Generator, template: int, severity: int = 9) -> bytes:
    body = _NORMAL[template].format(*(int(rng.integers(10, 99)) for _ in range(2)))
    return canonical_log(body, severity, {"code.function": "get_cart", "thread.id": int(rng.integers(99))})


def test_logs_new_template_with_example_and_severity_mix():
    rng = np.random.default_rng(9)
    reference = [_log(rng, k % 3, 17 if k % 50 == 0 else 9) for k in range(2000)]
    incident = []
    for k in range(500):
        if k % 10 < 3:
            body = f"Redis timeout after {int(rng.integers(100, 999))} ms on 10.1.2.{int(rng.integers(9))}"
            incident.append(canonical_log(body, 17, {"code.function": "get_cart"}))
        else:
            incident.append(_log(rng, k % 3, 17 if k % 10 == 3 else 9))
    fields, summary = explain_fields(reference, incident, service="cart", name="logs")
    rows = _by_field(fields)
    severity = rows["severity"]
    assert (severity.change, severity.before, severity.now) == ("share", "ERROR (2 %), INFO (98 %)",
                                                                "ERROR (40 %), INFO (60 %)")
    template = rows["log.template"]
    assert template.change == "new_template" and template.before == "never seen"
    assert template.unusual == "never seen in 2000 reference events"
    assert template.now == '"Redis timeout after <N3> ms on <IP>" (30 % of logs)'
    assert template.example is not None
    assert template.example.startswith("ERROR Redis timeout after <N3> ms on <IP>")
    # the new messages carry no thread.id: in the table, but the sentence names what is new instead
    assert rows["thread.id"].now.startswith("not set (30 %)")
    assert summary == ('cart logs: new log message "Redis timeout after … ms on …" (30 % of logs); '
                       '40 % of logs now ERROR (was 2 %)')
    assert engine_tokens(summary) == []


def test_logs_known_template_share_rises():
    rng = np.random.default_rng(10)
    reference = [_log(rng, 2 if k % 50 == 0 else k % 2) for k in range(2000)]
    incident = [_log(rng, 2 if k % 5 == 0 else k % 2) for k in range(500)]
    fields, summary = explain_fields(reference, incident)
    row = _by_field(fields)["log.template"]
    assert (row.change, row.before, row.now) == ("share", '"connected to <IP>" (2 %)',
                                                 '"connected to <IP>" (20 %)')
    assert summary == 'log message "connected to …" now 20 % of logs (was 2 %)'


# ---------------------------------------------------------------- metrics


def test_band_from_the_numeric_detectors_own_explanation():
    rng = np.random.default_rng(12)
    values = 50.0 + rng.normal(0.0, 1.0, 3000)
    values[2500:] += 15.0
    flagged = [r for r in NumericDetector(profile="balanced").update(EventBatch(values)) if r.is_anomaly]
    assert flagged
    first = flagged[0]
    fields, summary = explain_band(first.explanation, service="billing", name="queue.depth",
                                   p_value=first.p_value, reference_values=values[:2500])
    (row,) = fields
    observed = first.explanation["top_events"][0]["observed"]
    assert row.field == "value" and row.change == "band" and row.now == f"observed {observed:.4g}"
    assert row.before.startswith("expected ") and "(set by the " in row.before
    assert row.unusual == f"window p = {first.p_value:.2g}" and row.bits > 0
    assert summary.startswith(f"billing queue.depth: value {observed:.4g} above the expected range ")
    assert engine_tokens(summary) == []


def test_band_given_explicitly_and_missing_explanation():
    explanation = {"model": "step", "top_events": [{"offset": 9, "observed": 5.0, "expected": 12.0,
                                                    "excess_bits": 21.5}]}
    (row,), summary = explain_band(explanation, band=(10.0, 14.0), p_value=1e-7)
    assert (row.before, row.now, row.unusual, row.bits) == (
        "expected 10 to 14 (set by the previous value)", "observed 5", "window p = 1e-07", 21.5)
    assert summary == "value 5 below the expected range 10 to 14 (set by the previous value)"
    (row,), _ = explain_band({**explanation, "model": "daily"})
    assert row.before == "expected about 12 (set by the same time a day earlier)"
    assert row.unusual == "22 bits above usual"
    assert explain_band({}, name="x")[0] == ()


# ---------------------------------------------------------------- plain words


def test_engine_token_check_catches_what_it_must():
    assert engine_tokens("cart: latency now D19") == ["D19"]
    assert engine_tokens("span d=D19 seen") == ["d=D19"]
    assert engine_tokens("took <N2> ms from <IP>") == ["<N2>", "<IP>"]
    assert engine_tokens("0.15 bits/byte above usual") == ["bits/byte"]
    assert engine_tokens('new log message "took <N2> ms" (3 %)') == []  # quoted data is exempt
    assert engine_tokens("duration × 6 (median 40 ms → 240 ms)") == []


def test_values_that_look_like_engine_tokens_are_quoted_or_worded():
    rng = np.random.default_rng(13)
    reference = [_cart_span(rng, 40 * MS, extra={"build": "A1"}) for _ in range(2000)]
    incident = [_cart_span(rng, 40 * MS, extra={"build": "D19", "D7": "on", "pod": "cart-7f9c"})
                for _ in range(500)]
    fields, summary = explain_fields(reference, incident, service="D1", name="svc")
    assert {f.field for f in fields} == {"build", "D7", "pod"}
    assert engine_tokens(summary) == []
    assert 'build="D<N2>"' not in summary and "pod=cart-…f…c (new)" in summary


def test_parser_reads_back_what_canonicalisation_wrote():
    attributes = {"error.message": "Redis timeout x=1", "http.status_code": 503}  # a value holding k=v
    span = parse_event(canonical_span("GET /a", 2, 2, 1_500_000, attributes))
    assert span is not None and span.signal == "span" and span.duration_bucket == 11
    assert span.head == {"span.kind": "SERVER", "span.name": "GET /a", "status": "ERROR"}
    assert span.attributes == {"error.message": "Redis timeout x=<N1>", "http.status_code": "503"}
    log = parse_event(canonical_log("a | b c", 18, {"k": "v"}))
    assert log is not None and log.head == {"severity": "ERROR", "log.template": "a | b c"}
    assert log.attributes == {"k": "v"}
    assert parse_event(b"\xff\xfe garbage") is None
    assert parse_event(b"SERVER a OK d=D3 trailing") is None  # status and bucket must end the head


def test_only_the_head_of_a_huge_event_is_read():
    keys = " ".join(f"k{i:05d}=v" for i in range(4000))  # ~36 KB of attributes
    event = parse_event(f"SERVER a OK d=D3 | {keys}".encode())
    assert event is not None and 1000 < len(event.attributes) < 4000
    assert event.attributes["k00000"] == "v" and "k03999" not in event.attributes


@pytest.mark.parametrize("module", [detectors.field_explanation, detectors.plain_words,
                                    detectors.canonical.parse])
def test_doc_examples(module):
    assert doctest.testmod(module).failed == 0


# ---------------------------------------------------------------- robustness


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=40), st.lists(st.binary(max_size=120), max_size=40))
def test_arbitrary_bytes_never_crash(reference, incident):
    fields, summary = explain_fields(reference, incident, service="s", name="n")
    assert isinstance(summary, str) and len(fields) <= MAX_FIELDS
    assert all(isinstance(f, FieldChange) for f in fields)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_SPANS = st.builds(canonical_span, _TEXT, st.integers(0, 6), st.integers(0, 3), st.integers(0, 10**12),
                   st.dictionaries(_TEXT, st.one_of(_TEXT, st.integers(-2000, 2000)), max_size=4))
_LOGS = st.builds(canonical_log, _TEXT, st.integers(0, 25),
                  st.dictionaries(_TEXT, st.one_of(_TEXT, st.integers(-2000, 2000)), max_size=4))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_SPANS, _LOGS), min_size=1, max_size=60),
       st.lists(st.one_of(_SPANS, _LOGS), min_size=1, max_size=30), _TEXT, _TEXT)
def test_summaries_of_arbitrary_events_carry_no_engine_tokens(reference, incident, service, name):
    fields, summary = explain_fields(reference, incident, service=service, name=name)
    assert engine_tokens(summary) == []
    bits = [f.bits for f in fields]
    assert bits == sorted(bits, reverse=True) and len(fields) <= MAX_FIELDS
