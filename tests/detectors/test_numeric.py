"""The numeric detector: what it flags, what it explains, what it leaves alone, and its state."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import EventBatch, registry
from detectors.numeric import NumericDetector


def _noise(n: int, seed: int, level: float = 50.0, sd: float = 1.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0.0, sd, n)


def _anomalies(results):
    return [r for r in results if r.is_anomaly]


def test_level_shift_is_flagged_and_explained():
    x = _noise(3000, 1)
    x[2500:] += 15.0
    flagged = _anomalies(NumericDetector(profile="balanced").update(EventBatch(x)))
    assert flagged, "a 15-sigma level shift went unnoticed"
    first = flagged[0]
    assert 2500 < first.end_offset <= 2500 + 60
    lead = first.explanation["top_events"][0]
    assert 2500 <= lead["offset"] < first.end_offset
    assert lead["observed"] > 60 and abs(lead["expected"] - 50) < 5
    assert first.explanation["sentence"].startswith("value ")
    assert first.severity != "none" and first.p_value <= 1e-3


def test_spike_is_pinpointed():
    x = _noise(3000, 2)
    x[2700] = 80.0
    flagged = _anomalies(NumericDetector(profile="balanced").update(EventBatch(x)))
    spike = [r for r in flagged if r.start_offset <= 2700 < r.end_offset]
    assert len(spike) == 5  # every window holding it
    assert {r.explanation["top_events"][0]["offset"] for r in spike} == {2700}
    assert all(r.severity == "critical" and r.explanation["model"] == "range" for r in spike)
    # anything else is a borderline false alarm of the noise (about 0.3 expected over these windows)
    assert all(r.p_value > 1e-4 and r.severity in ("low", "medium") for r in flagged if r not in spike)


def test_stationary_series_raises_no_alarm():
    results = NumericDetector(profile="strict").update(EventBatch(_noise(20_000, 3)))
    assert len(results) > 900
    assert not _anomalies(results)


def test_missing_daily_peak_is_found_by_the_daily_model():
    step = 300.0  # 5-minute samples, 10 days
    t = 1.6e9 + step * np.arange(288 * 10)
    phase = 2 * np.pi * (t % 86400) / 86400
    x = 100 + 40 * np.maximum(np.sin(phase), 0) + np.random.default_rng(4).normal(0, 1.0, t.size)
    day9 = slice(288 * 9, 288 * 10)
    x[day9] = 100 + np.random.default_rng(5).normal(0, 1.0, 288)  # the peak never comes
    det = NumericDetector(profile="sensitive")
    flagged = _anomalies(det.update(EventBatch(x, t)))
    in_day9 = [r for r in flagged if r.end_offset > 288 * 9]
    assert in_day9, "a missing daily peak inside the normal range was not flagged"
    assert in_day9[0].explanation["model"] == "daily"


def _warm_alarms(values: np.ndarray, profile: str) -> tuple[int, int]:
    results = [r for r in NumericDetector(profile=profile).update(EventBatch(values)) if r.figures["warm"]]
    return sum(r.is_anomaly for r in results), len(results)


@pytest.mark.parametrize(("seed", "profile"), [(14, "sensitive"), (12, "balanced")])
def test_sparse_counter_deltas_keep_the_false_alarm_target(seed, profile):
    # a counter fed as per-interval deltas: mostly 0, sometimes 1 or 2. The error scale used to collapse
    # to 0 on such a stream (fewer than 1 / clip non-zero errors) and every 1 then cost MAX_BITS, and the
    # range model judged one step past its range in units of that collapsed scale: 3x (Poisson 0.05,
    # sensitive) and 70x (0/1 with p = 0.02, balanced) the target
    rng = np.random.default_rng(seed)
    if profile == "sensitive":
        x, target = rng.poisson(0.05, 60_000).astype(float), 1e-2
    else:
        x, target = (rng.random(120_000) < 0.02).astype(float), 1e-3
    alarms, windows = _warm_alarms(x, profile)
    assert windows > 5000
    assert alarms <= 2.5 * target * windows, f"{alarms} false alarms in {windows} windows"


def test_snapshot_restore_continues_exactly():
    x = _noise(4000, 6)
    x[3500:3510] -= 12
    t = 1.7e9 + 60.0 * np.arange(x.size)
    whole = NumericDetector(profile="sensitive").update(EventBatch(x, t))
    det = NumericDetector(profile="sensitive")
    first = det.update(EventBatch(x[:1777], t[:1777]))
    data = det.snapshot()
    assert b"pickle" not in data[:200]
    restored = registry.restore("numeric", data)
    assert restored.config_hash == det.config_hash and restored.events_seen == 1777
    assert first + restored.update(EventBatch(x[1777:], t[1777:])) == whole


def test_seasonal_switch_is_chunking_invariant():
    x = _noise(600, 7)
    t = 3600.0 * np.arange(x.size)  # hourly: the daily lag (24) is shorter than the period estimate (65)
    whole = NumericDetector(profile="sensitive").update(EventBatch(x, t))
    det = NumericDetector(profile="sensitive")
    parts = [det.update(EventBatch(x[a:b], t[a:b])) for a, b in ((0, 30), (30, 100), (100, 600))]
    assert [r for p in parts for r in p] == whole


def test_non_finite_values_are_skipped_and_counted_never_raised():
    x = _noise(3000, 8)
    x[2700] = 80.0
    clean = NumericDetector(profile="balanced").update(EventBatch(x))
    dirty = np.insert(x, [100, 1500, 1500, 2800], [np.nan, np.inf, -np.inf, np.nan])
    det = NumericDetector(profile="balanced")
    results = det.update(EventBatch(dirty))
    assert det.skipped_points == {"nan": 2, "inf": 2}
    assert det.events_seen == dirty.size
    # the same windows, p-values and verdicts as without the bad points; offsets count every point fed
    assert [(r.p_value, r.is_anomaly) for r in results] == [(r.p_value, r.is_anomaly) for r in clean]
    inserted = [100, 1500, 1500, 2800]  # np.insert puts the bad points before these indices of x

    def shifted(offset: int) -> int:
        return offset + sum(i <= offset for i in inserted)

    flagged = [(r, c) for r, c in zip(results, clean, strict=True) if r.is_anomaly]
    assert any(r.explanation["top_events"][0]["offset"] == 2703 for r, _ in flagged)
    for r, c in flagged:
        assert r.explanation["top_events"][0]["offset"] == shifted(c.explanation["top_events"][0]["offset"])
        assert (r.start_offset, r.end_offset - 1) == (shifted(c.start_offset), shifted(c.end_offset - 1))
    spanning = next(r for r in results if r.start_offset < 1501 and r.end_offset > 1503)  # inf, -inf inside
    assert spanning.end_offset - spanning.start_offset == det.config["window"] + 2


def test_a_batch_of_only_bad_points_scores_nothing_and_keeps_chunking_invariance():
    x = _noise(1200, 9)
    x[[5, 600, 601, 1100]] = [np.nan, np.inf, np.nan, -np.inf]
    whole = NumericDetector(profile="sensitive").update(EventBatch(x))
    det = NumericDetector(profile="sensitive")
    parts = det.update(EventBatch(x[:600])) + det.update(EventBatch(x[600:602]))
    assert det.skipped_points == {"nan": 2, "inf": 1}
    restored = registry.restore("numeric", det.snapshot())
    assert restored.skipped_points == det.skipped_points and restored.events_seen == 602
    parts += restored.update(EventBatch(x[602:]))
    assert parts == whole


def test_rejects_mismatched_timestamps_and_bad_snapshots():
    with pytest.raises(ValueError, match="one entry per event"):
        NumericDetector().update(EventBatch([1.0, 2.0], [1.0]))
    with pytest.raises(ValueError, match="snapshot"):
        NumericDetector.restore(b"not a snapshot")
    with pytest.raises(ValueError, match="models"):
        NumericDetector(models=["nonsense"])


def _shift_incidents(x: np.ndarray, **config):
    """The last update of every incident a balanced detector raises over ``x`` (one value per second)."""
    det = NumericDetector(profile="balanced", **config)
    out = det.update(EventBatch(x, 1.7e9 + np.arange(x.size, dtype=np.float64)))
    last = {}
    for update in out.incidents:
        last[update.seq] = update
    return list(last.values())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("phase", [0, 3, 7])  # where the fault starts against the windows' hop of 10
@pytest.mark.parametrize("kind", ["gauge", "counter deltas"])
def test_a_sustained_level_shift_opens_one_incident_that_lasts_the_fault(kind, phase, seed):
    """The scenarios `gauge_level_shift` (40 -> 55, noise sd 3, rounded as the SDK client sends it) and
    `cumulative_counter_rate_change` (the gateway's deltas: Poisson 10 -> 30), one value per second, a
    10-minute fault after 40 minutes: one incident, open from the fault's first windows to its end, resolved
    after it (the range takes the first shifted value in; the mean model keeps charging the shift)."""
    rng = np.random.default_rng(seed)
    start, end = 2400 + phase, 3000 + phase
    in_fault = (np.arange(4200) >= start) & (np.arange(4200) < end)
    if kind == "gauge":
        x = np.round(np.where(in_fault, 55.0, 40.0) + rng.normal(0.0, 3.0, in_fault.size), 1)
    else:
        x = rng.poisson(np.where(in_fault, 30.0, 10.0)).astype(float)
    incidents = _shift_incidents(x)
    assert len(incidents) == 1, [(u.seq, u.status, u.opened_offset) for u in incidents]
    (incident,) = incidents
    assert incident.status == "resolved"
    assert start - 50 <= incident.opened_offset <= start + 30  # its first window holds the fault's start
    assert incident.last_anomalous_offset >= end - 1
    closed = (incident.closed_time_ns or 0) / 1e9 - 1.7e9
    assert end <= closed <= end + 300


def test_without_the_mean_model_the_shift_leaves_no_lasting_evidence():
    """The case the mean model is for: with the four other models only, the shift costs bits in the first
    windows and then nothing, and no incident opens (seed and phase where the range alone does not)."""
    rng = np.random.default_rng(1)
    level = np.where((np.arange(4200) >= 2400) & (np.arange(4200) < 3000), 55.0, 40.0)
    x = np.round(level + rng.normal(0.0, 3.0, level.size), 1)
    assert _shift_incidents(x, models=("range", "step", "daily", "weekly")) == []
    assert len(_shift_incidents(x)) == 1


def test_a_resolved_incident_leaves_the_mean_at_the_reference():
    """The mean follows the values while an incident is open (a false positive or an accepted change keeps
    them); on resolution it starts again from the reference's, so the return to normal after the fault is
    not a new incident, even with a mean slow enough to have learnt the fault."""
    rng = np.random.default_rng(3)
    in_fault = (np.arange(4200) >= 2400) & (np.arange(4200) < 3000)
    x = rng.poisson(np.where(in_fault, 60.0, 20.0)).astype(float)
    incidents = _shift_incidents(x, mean_window=128)
    assert [(u.seq, u.status) for u in incidents] == [(0, "resolved")]
