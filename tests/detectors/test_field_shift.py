"""The per-field distribution test: exact tails, power on a known shift, a calibrated null, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import EventBatch, registry
from detectors._kernels import field_shift as K
from detectors._kernels.field_shift import upper_tail
from detectors.canonical import canonical_log, canonical_span
from detectors.field_shift import (
    FieldShift,
    attribute_codes,
    combine,
    event_codes,
    for_profile,
)
from detectors.synthetic import synthetic_logs, synthetic_spans


def _hypergeometric_sf(k: int, successes: int, population: int, draws: int) -> float:
    total = math.comb(population, draws)
    return sum(math.comb(successes, x) * math.comb(population - successes, draws - x)
               for x in range(k, min(successes, draws) + 1)) / total


@pytest.mark.parametrize(("k", "successes", "population", "draws"),
                         [(5, 9, 450, 50), (1, 1, 10, 3), (20, 40, 2200, 200), (3, 60, 300, 40),
                          (0, 5, 50, 10), (40, 40, 2200, 200)])
def test_the_tail_is_the_exact_hypergeometric_one(k, successes, population, draws):
    assert upper_tail(k, successes, population, draws) == pytest.approx(
        _hypergeometric_sf(k, successes, population, draws), rel=1e-9, abs=1e-300)


def test_codes_read_the_typed_fields_of_spans_and_logs():
    slow = canonical_span("GET /cart", 2, 0, 200_000_000, {"http.route": "/cart"})
    fast = canonical_span("GET /cart", 2, 0, 20_000_000, {"http.route": "/cart"})
    failed = canonical_span("GET /cart", 2, 2, 20_000_000, {"http.route": "/cart"})
    assert event_codes(slow)[1] > event_codes(fast)[1] and event_codes(slow)[0] == event_codes(fast)[0]
    assert event_codes(failed)[0] != event_codes(fast)[0] and event_codes(failed)[1] == event_codes(fast)[1]
    paid = canonical_log("payment authorized for order 4123456 in 35 ms", 9, {"code.function": "handle"})
    paid2 = canonical_log("payment authorized for order 4999999 in 12 ms", 10, {"code.function": "x"})
    declined = canonical_log("payment declined for order 4123456: insufficient funds", 17)
    assert event_codes(paid) == event_codes(paid2)  # same band (INFO2 is INFO) and masked template
    assert event_codes(declined)[0] != event_codes(paid)[0]
    assert event_codes(declined)[1] != event_codes(paid)[1]
    assert event_codes(b"not a canonical event") == (0, 0)


def _logs(rng: np.random.Generator, n: int, error_share: float) -> list[bytes]:
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < error_share:
            out.append(canonical_log(f"payment declined for order {rng.integers(10**6)}", 17))
        elif roll < error_share + 0.03:
            out.append(canonical_log(f"inventory low for sku {rng.integers(10**6)}", 13))
        else:
            out.append(canonical_log(f"cart {rng.integers(10**8)} updated", 9))
    return out


def _p_values(test: FieldShift, events: list[bytes], hop: int = 10) -> list[float]:
    test.extend(events)
    return [test.window_p(end, frozen=False) for end in range(hop, len(events) + 1, hop)]


def test_power_on_a_share_change_of_known_templates():
    rng = np.random.default_rng(1)
    test = FieldShift(window=200, reference=2000)
    normal = _p_values(test, _logs(rng, 3000, 0.01))
    assert min(normal[220:]) > 1e-3  # the reference full: nothing stands out
    test.freeze()  # judged against the normal reference, as while an incident is open
    test.extend(_logs(rng, 400, 0.10))
    shifted = [test.window_p(end, frozen=True) for end in range(3010, 3401, 10)]
    # ERROR 1 % -> 10 %: about 20 of 200 where 2 are expected (binomial spread: 14 to 26)
    assert np.median(shifted[-20:]) < 1e-4 and max(shifted[-20:]) < 1e-3


def test_power_on_a_latency_shift():
    rng = np.random.default_rng(2)

    def spans(n: int, factor: float) -> list[bytes]:
        return [canonical_span("GET /product/{id}", 2, 0, int(30e6 * factor * rng.lognormal(0.0, 0.4)))
                for _ in range(n)]

    test = FieldShift(window=200, reference=2000)
    _p_values(test, spans(2500, 1.0))
    test.freeze()
    test.extend(spans(200, 5.0))
    assert test.window_p(2700, frozen=True) < 1e-30


@pytest.mark.parametrize("kind", ["logs", "spans"])
def test_the_null_is_calibrated_on_stationary_streams(kind):
    """Windows of a stationary stream: P(p <= a) <= a for every level (the test is conservative: Bonferroni
    over cells and the discrete exact test), on disjoint windows so they are independent."""
    events = (synthetic_logs if kind == "logs" else synthetic_spans)(60_000, seed=11)
    # the exact test itself (no effect floor), and as the detector runs it (the floor only raises p)
    for test in (FieldShift(window=200, reference=2000, share_factor=1.0, min_rise=0.0),
                 FieldShift(window=200, reference=2000)):
        p = np.array(_p_values(test, events, hop=200)[12:])  # disjoint windows once the reference is full
        assert p.size > 250
        for level in (0.01, 0.05, 0.1, 0.25, 0.5):
            # the binomial noise of the empirical rate: at most 3 standard errors above the level
            assert np.mean(p <= level) <= level + 3 * math.sqrt(level * (1 - level) / p.size), level
        if test.share_factor == 1.0:
            assert np.mean(p <= 0.5) > 0.05  # not degenerate: the p-values do spread below 1


def test_a_small_reference_is_conservative():
    rng = np.random.default_rng(3)
    small, large = FieldShift(window=200, reference=200), FieldShift(window=200, reference=4000)
    normal = _logs(rng, 4000, 0.01)
    for test in (small, large):
        test.extend(normal)
        for end in range(10, 4001, 10):
            test.window_p(end, frozen=False)
        test.freeze()
    shifted = _logs(rng, 200, 0.10)
    small.extend(shifted)
    large.extend(shifted)
    assert large.window_p(4200, frozen=True) < small.window_p(4200, frozen=True)


def test_combination_is_weighted_bonferroni():
    assert combine(1.0, 1.0) == 1.0
    assert combine(8e-4, 1.0) == pytest.approx(1e-3)
    assert combine(0.5, 2e-10) == pytest.approx(1e-9)
    assert for_profile(1) is None and for_profile(50).window == 200


def _spans_with_latency_fault() -> list[bytes]:
    rng = np.random.default_rng(4)
    out = []
    for i in range(5000):
        factor = 5.0 if 3000 <= i < 4000 else 1.0
        out.append(canonical_span("GET /product/{id}", 2, 0, int(30e6 * factor * rng.lognormal(0.0, 0.4)),
                                  {"http.route": "/product/{id}", "enduser.id": f"u-{rng.integers(10**6)}"}))
    return out


def test_the_detector_finds_a_latency_shift_deterministically_whatever_the_batches():
    events = _spans_with_latency_fault()
    times = [1.7e9 + 0.1 * i for i in range(len(events))]
    whole = registry.create("cbad", profile="balanced", seed=1).update(EventBatch(events, times))
    closed = [u for u in whole.incidents if u.status != "open"]
    assert [u.status for u in closed] == ["resolved"]
    assert 2950 <= closed[0].opened_offset <= 3100 and closed[0].closed_time_ns / 1e9 >= times[4000]
    assert any(f.field == "duration" for f in closed[0].fields)
    # the same events in uneven batches, and through a snapshot midway, give the same windows and incidents
    det = registry.create("cbad", profile="balanced", seed=1)
    parts, i, sizes = [], 0, [1, 7, 333, 64, 1000]
    while i < len(events):
        size = sizes[len(parts) % len(sizes)]
        if i >= 3500 and i - size < 3500:
            det = registry.restore("cbad", det.snapshot())
        parts.append(det.update(EventBatch(events[i:i + size], times[i:i + size])))
        i += size
    assert [w for part in parts for w in part] == list(whole)
    assert [u for part in parts for u in part.incidents] == whole.incidents
    without = registry.create("cbad", profile="balanced", seed=1, field_test=False)
    assert not without.update(EventBatch(events, times)).incidents  # compression alone misses it


def test_a_lone_never_seen_value_is_not_blamed_for_a_burst_of_new_ones():
    rng = np.random.default_rng(5)
    test = FieldShift(window=200, reference=2000)
    _p_values(test, _logs(rng, 3000, 0.0))
    test.freeze()
    burst = [canonical_log(f"gateway timeout after {rng.integers(3, 6)} retries", 17) for _ in range(15)]
    odd = canonical_log("cache warmed in region ap", 9)  # never seen either, once
    window = _logs(rng, 100, 0.0) + burst + [odd] + _logs(rng, 84, 0.0)
    test.extend(window)
    assert test.window_p(3200, frozen=True) < 1e-6
    blamed = test.carriers(window, 3200, 1e-3)
    assert blamed == list(range(100, 115))  # the burst, not the odd line beside it


def test_a_window_after_a_burst_holding_none_of_it_is_not_flagged_by_the_field_test():
    """The field test reads four cbad windows: the windows that follow a burst see it in their test window
    but hold none of its events, so they are not anomalous and blame nothing."""
    rng = np.random.default_rng(6)
    events = _logs(rng, 3000, 0.0)
    burst = range(len(events), len(events) + 12)
    events += [canonical_log(f"payment provider rejected card after {rng.integers(3, 6)} retries", 17)
               for _ in burst]
    events += _logs(rng, 600, 0.0)
    times = [1.7e9 + 0.1 * i for i in range(len(events))]
    result = registry.create("cbad", profile="balanced", seed=1).update(EventBatch(events, times))
    flagged = [w for w in result if w.is_anomaly]
    assert flagged, "the burst of a new ERROR template is found"
    for w in flagged:
        assert w.start_offset < burst[-1] + 1 and w.end_offset > burst[0], (w.start_offset, w.end_offset)
        blamed = [t["offset"] for t in w.explanation["top_events"]]
        assert blamed and blamed[0] in burst, (w.start_offset, blamed)
        if w.figures["cbad_p_value"] > 1e-3:  # flagged by the field test alone: only its carriers
            assert set(blamed) <= set(burst), (w.start_offset, blamed)


# --- field c: attribute values --------------------------------------------------------------------------

_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64) Firefox", "okhttp", "shop-ios")


def _checkout(rng: np.random.Generator, provider: str, extra: dict[str, object] | None = None) -> bytes:
    """A POST /checkout span as the scenarios send it: a few low-cardinality values, ids and paths that the
    canonical form masks, and ``payment.provider``."""
    attrs: dict[str, object] = {
        "http.request.method": "POST", "http.route": "/checkout", "http.response.status_code": 200,
        "network.protocol.version": str(rng.choice(["1.1", "2"])),
        "user_agent.original": str(rng.choice(_AGENTS)),
        "enduser.id": f"u-{rng.integers(10**6):06d}", "client.address": f"10.0.{rng.integers(256)}.7",
        "app.checkout.items": int(1 + rng.poisson(1.5)), "payment.provider": provider, **(extra or {})}
    return canonical_span("POST /checkout", 2, 0, int(180e6 * rng.lognormal(0.0, 0.4)), attrs)


def test_attribute_codes_keep_verbatim_values_only():
    rng = np.random.default_rng(7)
    a, b = _checkout(rng, "card-processor-a"), _checkout(rng, "card-processor-b")
    assert event_codes(a)[0] == event_codes(b)[0]  # fields a and b do not see the provider
    assert attribute_codes(a) != attribute_codes(b)
    # ids, addresses and paths are masked by the canonical form: they never enter the code
    one = canonical_span("GET /cart", 2, 0, 20_000_000, {
        "enduser.id": "u-000001", "client.address": "10.0.0.1", "url.path": "/product/123",
        "http.route": "/cart"})
    two = canonical_span("GET /cart", 2, 0, 20_000_000, {
        "enduser.id": "u-999999", "client.address": "10.9.9.9", "url.path": "/product/98765",
        "http.route": "/cart"})
    assert attribute_codes(one) == attribute_codes(two) and sum(v > 0 for v in attribute_codes(one)) == 1
    assert attribute_codes(b"not a canonical event") == bytes(len(attribute_codes(one)))


def test_a_new_attribute_value_is_flagged_and_its_events_blamed():
    rng = np.random.default_rng(8)
    with_c, without_c = FieldShift(window=200, reference=2000), FieldShift(200, 2000, attributes=False)
    normal = [_checkout(rng, "card-processor-a") for _ in range(2500)]
    window = ([_checkout(rng, "card-processor-a") for _ in range(120)]
              + [_checkout(rng, "card-processor-b") for _ in range(80)])
    for test in (with_c, without_c):
        assert min(_p_values(test, normal)[220:]) > 1e-3  # the reference full: nothing stands out
        test.freeze()
        test.extend(window)
    assert without_c.window_p(2700, frozen=True) > 1e-3  # status and duration did not change
    assert with_c.window_p(2700, frozen=True) < 1e-20
    assert with_c.carriers(window, 2700, 1e-3) == list(range(120, 200))  # the spans with the new value
    # one code rose: the new value of the attribute group that holds payment.provider
    old, new = (attribute_codes(_checkout(np.random.default_rng(0), provider))
                for provider in ("card-processor-a", "card-processor-b"))
    changed = [g for g in range(len(new)) if old[g] != new[g]]
    assert len(changed) == 1
    g = changed[0]
    assert with_c.risen(2700, 1e-3) == {K.C_START + g * K.C_VALUES + new[g] - 1}


def test_a_high_cardinality_attribute_is_not_flagged():
    """Unique values per event: masked ids give one code, and a verbatim free-text value is new in the
    reference as in every window, so its group's pooled cell does not rise."""
    rng = np.random.default_rng(9)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

    def ref() -> str:  # letters only: the canonical form keeps it verbatim, and it never repeats
        return "ord-" + "".join(rng.choice(letters, 10))

    test = FieldShift(window=200, reference=2000)
    events = [_checkout(rng, "card-processor-a", {"request.id": f"{rng.integers(2**62):x}",
                                                  "order.ref": ref()}) for _ in range(8000)]
    # the free text does enter field c (its group spreads over the group's 255 values)
    assert len({attribute_codes(e) for e in events}) > 200
    p = np.array(_p_values(test, events, hop=50)[44:])
    assert p.size > 100 and p.min() > 1e-3


def test_the_detector_opens_an_incident_that_names_the_new_value():
    rng = np.random.default_rng(10)
    events = ([_checkout(rng, "card-processor-a") for _ in range(3000)]
              + [_checkout(rng, "card-processor-b") for _ in range(1000)]
              + [_checkout(rng, "card-processor-a") for _ in range(1500)])
    times = [1.7e9 + 0.3 * i for i in range(len(events))]
    result = registry.create("cbad", profile="balanced", seed=1).update(EventBatch(events, times))
    opened = [u for u in result.incidents if u.status == "open" and u.opened_offset is not None]
    assert opened and 2950 <= opened[0].opened_offset <= 3100, [u.opened_offset for u in opened]
    last = {u.seq: u for u in result.incidents}
    assert len(last) == 1 and last[0].status == "resolved"
    rows = [f for f in last[0].fields if f.field == "payment.provider"]
    assert rows and rows[0].change == "new_value" and "card-processor-b" in rows[0].now, last[0].fields
    without = registry.create("cbad", profile="balanced", seed=1, field_attributes=False)
    assert not without.update(EventBatch(events, times)).incidents  # fields a and b and compression miss it


def test_snapshots_without_the_attribute_field_restore_with_it_off():
    rng = np.random.default_rng(11)
    events = [_checkout(rng, "card-processor-a") for _ in range(600)]
    det = registry.create("cbad", profile="balanced", seed=1)
    det.update(EventBatch(events))
    assert det.config["field_attributes"] is True
    restored = registry.restore("cbad", det.snapshot())
    assert restored.config == det.config
    old = registry.create("cbad", profile="balanced", seed=1, field_attributes=False)
    old.update(EventBatch(events))
    assert "field_attributes" not in old.config
    assert "field_attributes" not in registry.restore("cbad", old.snapshot()).config


def _versioned(rng: np.random.Generator, n: int, every: int) -> list[bytes]:
    """Checkout spans whose ``build`` value changes every ``every`` events: ever new code rows."""
    def word(k: int) -> str:  # letters only: the canonical form keeps the value verbatim
        return "".join(chr(97 + k // 26 ** j % 26) for j in range(3))

    return [_checkout(rng, str(rng.choice(["card-processor-a", "card-processor-b"])),
                      {"build": word(i // every), "shard": word(i % 7)}) for i in range(n)]


def _reference_counts(test: FieldShift) -> np.ndarray:
    """The reference's per-code counts recounted from what a snapshot holds of it."""
    _, arrays = test.dump()
    codes = [arrays["field_ref_a"], arrays["field_ref_b"].astype(np.int64) + K.A_CODES]
    c = arrays["field_ref_c"].astype(np.int64).reshape(len(arrays["field_ref_a"]), -1)
    codes.append((K.C_START + np.arange(c.shape[1]) * K.C_VALUES + c - 1)[c > 0])
    return np.bincount(np.concatenate([x.ravel() for x in codes]), minlength=K.CODES)


def test_rows_are_compacted_and_widened_without_changing_a_p_value(monkeypatch):
    """Each distinct code row is kept once and events as row indices: forgetting rows no event holds any
    more, and widening the indices past 8 (here) or 16 bits, change no p-value."""
    events = _versioned(np.random.default_rng(12), 6000, 2)

    def run(test: FieldShift) -> list[float]:
        out = []
        for lo in range(0, len(events), 37):
            test.extend(events[lo:lo + 37])
            for end in range(max(10, lo - lo % 10), min(lo + 37, len(events)) + 1, 10):
                if end > lo:
                    out.append(test.window_p(end, frozen=False))
            test.trim(min(lo + 37, len(events)) // 10 * 10 + 10)
            if lo == 37 * 100:
                assert test._dense is None and 0 < test._ref_codes.size < K.CODES // 10  # at rest
                counts = _reference_counts(test)
                assert test.reference_events == 2000 and np.array_equal(counts, test._ref)
        return out

    compacted = FieldShift(window=200, reference=2000)
    expected = run(compacted)
    monkeypatch.setattr(FieldShift, "_compact", lambda self: None)
    kept = FieldShift(window=200, reference=2000)
    assert run(kept) == expected and kept._n_rows > 1.5 * compacted._n_rows  # rows no event holds: forgotten
    monkeypatch.setattr("detectors.field_shift._ROW", np.uint8)
    widened = FieldShift(window=200, reference=2000)
    assert widened._ring.dtype == np.uint8
    assert run(widened) == expected and widened._ring.dtype == np.uint32


def test_the_detector_keeps_only_the_codes_a_restart_or_thaw_may_read(monkeypatch):
    """cbad tells the field test which events a later restart (a drift, an accepted incident) or thaw may
    still name; keeping every code of the last reference's worth instead changes no result."""
    rng = np.random.default_rng(13)
    events = ([_checkout(rng, "card-processor-a") for _ in range(3000)]
              + [_checkout(rng, "card-processor-b") for _ in range(800)]
              + _versioned(rng, 2500, 50) + synthetic_spans(2500, seed=3))

    def run() -> tuple[list[tuple[float, bool]], int]:
        det = registry.create("cbad", profile="sensitive", seed=1)
        out, actions, held = [], 0, 0
        for lo in range(0, len(events), 45):
            result = det.update(EventBatch(events[lo:lo + 45]))
            out += [(r.p_value, r.is_anomaly) for r in result]
            held = max(held, det._fields._ids.size)
            seq = det.open_incident_seq
            if seq is not None and lo % 4 == 0:
                (det.accept, det.mark_false_positive, det.resolve)[actions % 3](seq)
                actions += 1
        assert actions >= 3
        return out, held

    trimmed, held = run()
    trim = FieldShift.trim
    monkeypatch.setattr(FieldShift, "trim", lambda self, next_end, keep_from=None: trim(self, next_end))
    everything, held_before = run()
    assert trimmed == everything and held < held_before / 3
