"""The numeric detector: what it flags, what it explains, what it leaves alone, and its state."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import registry
from detectors._kernels import numeric as K
from detectors.numeric import NumericDetector


def _noise(n: int, seed: int, level: float = 50.0, sd: float = 1.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0.0, sd, n)


def _anomalies(results):
    return [r for r in results if r.is_anomaly]


def test_level_shift_is_flagged_and_explained():
    x = _noise(3000, 1)
    x[2500:] += 15.0
    flagged = _anomalies(NumericDetector(profile="balanced").update(x))
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
    flagged = _anomalies(NumericDetector(profile="balanced").update(x))
    assert flagged
    assert all(r.start_offset <= 2700 < r.end_offset for r in flagged)
    assert {r.explanation["top_events"][0]["offset"] for r in flagged} == {2700}


def test_stationary_series_raises_no_alarm():
    results = NumericDetector(profile="strict").update(_noise(20_000, 3))
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
    flagged = _anomalies(det.update(x, timestamps=t))
    in_day9 = [r for r in flagged if r.end_offset > 288 * 9]
    assert in_day9, "a missing daily peak inside the normal range was not flagged"
    assert in_day9[0].explanation["model"] == "daily"


def test_tail_p_value_counts_only_the_values_above_a_tied_threshold():
    # a history that is mostly zeros (the range model judging one row at a time): only the 10 positive
    # values exceed the tail threshold, so a score among them is about as rare as its rank says, not
    # diluted by the 5 % tail share made of zeros (the old fit gave ~9x the rank p-value here)
    hist = np.sort(np.concatenate([np.zeros(2990), np.linspace(1.0, 3.0, 10)]))
    rank = (1 + int((hist >= 2.0).sum())) / (hist.size + 1)
    p = K._tail_p(hist, hist.size, 2.0, 0.05, 10, 0.1, 0.0)
    assert p <= 11 / (hist.size + 1)
    assert rank / 3 < p < 3 * rank
    assert K._tail_p(hist, hist.size, 8.0, 0.05, 10, 0.1, 0.0) < 1 / (hist.size + 1)


def _warm_alarms(values: np.ndarray, profile: str) -> tuple[int, int]:
    results = [r for r in NumericDetector(profile=profile).update(values) if r.figures["warm"]]
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


def test_tail_does_not_extrapolate_a_cluster_of_near_ties():
    # a count stream's range statistic: mostly 0, a cluster at "one step past the range" (~1.26 bits,
    # smeared by the drifting scale). Fitting the cluster's spread as a tail gave it a scale of 0.1 bit
    # and made the next step (2.52 bits) look 1e-7 rare; an unresolved tail falls back to 2^-bits
    cluster = 1.26 + np.linspace(0.0, 0.05, 60)
    hist = np.sort(np.concatenate([np.zeros(940), cluster]))
    n = hist.size
    assert K._tail_p(hist, n, 2.52, 0.05, 10, 0.1, 0.0) > 1 / (n + 1)
    # a tail spread over bits is still fitted, and extrapolates below the rank
    spread = np.sort(np.concatenate([np.zeros(940), 1.26 + np.linspace(0.0, 3.0, 60)]))
    assert K._tail_p(spread, n, 12.0, 0.05, 10, 0.1, 0.0) < 0.1 / (n + 1)


def test_snapshot_restore_continues_exactly():
    x = _noise(4000, 6)
    x[3500:3510] -= 12
    t = 1.7e9 + 60.0 * np.arange(x.size)
    whole = NumericDetector(profile="sensitive").update(x, timestamps=t)
    det = NumericDetector(profile="sensitive")
    first = det.update(x[:1777], timestamps=t[:1777])
    data = det.snapshot()
    assert b"pickle" not in data[:200]
    restored = registry.restore("numeric", data)
    assert restored.config_hash == det.config_hash and restored.events_seen == 1777
    assert first + restored.update(x[1777:], timestamps=t[1777:]) == whole


def test_seasonal_switch_is_chunking_invariant():
    x = _noise(600, 7)
    t = 3600.0 * np.arange(x.size)  # hourly: the daily lag (24) is shorter than the period estimate (65)
    whole = NumericDetector(profile="sensitive").update(x, timestamps=t)
    det = NumericDetector(profile="sensitive")
    parts = [det.update(x[a:b], timestamps=t[a:b]) for a, b in ((0, 30), (30, 100), (100, 600))]
    assert [r for p in parts for r in p] == whole


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [float("inf")]])
def test_rejects_non_finite_values(bad):
    with pytest.raises(ValueError, match="finite"):
        NumericDetector().update(bad)


def test_rejects_mismatched_timestamps_and_bad_snapshots():
    with pytest.raises(ValueError, match="one entry per value"):
        NumericDetector().update([1.0, 2.0], timestamps=[1.0])
    with pytest.raises(ValueError, match="snapshot"):
        NumericDetector.restore(b"not a snapshot")
    with pytest.raises(ValueError, match="models"):
        NumericDetector(models=["nonsense"])
