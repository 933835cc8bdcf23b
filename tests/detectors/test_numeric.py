"""The numeric detector: what it flags, what it explains, what it leaves alone, and its state."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import registry
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
