"""Calibration: conformal p-values, the fitted tail, and the false-alarm rate on a stationary stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from detectors import registry
from detectors.calibration import (
    SHAPE_MIN,
    Calibrator,
    calibration_capacity,
    conformal_pvalue,
    fit_tail,
    severity,
    tail_quantile,
)
from detectors.testing import synthetic_logs


def test_conformal_pvalue_is_plus_one_corrected():
    history = np.arange(1.0, 11.0)
    assert conformal_pvalue(history, 0.0) == 1.0
    assert conformal_pvalue(history, 10.0) == 2 / 11
    assert conformal_pvalue(np.zeros(0), 5.0) == 1.0
    assert conformal_pvalue(history, 10.5) <= 1 / 11


def test_tail_reaches_below_one_over_n_plus_one_and_is_monotone():
    rng = np.random.default_rng(0)
    history = rng.exponential(1.0, 200)
    scores = np.linspace(history.max() + 0.01, history.max() + 20, 30)
    ps = [conformal_pvalue(history, s) for s in scores]
    assert ps[0] <= 1 / 201
    assert all(a >= b for a, b in itertools.pairwise(ps))
    assert ps[-1] < 1e-6


def test_tail_quantile_inverts_the_tail():
    rng = np.random.default_rng(1)
    history = rng.normal(0, 1, 200)
    for alpha in (1e-3, 1e-4):
        q = tail_quantile(history, alpha)
        assert q > history.max()
        assert conformal_pvalue(history, q) == pytest.approx(alpha, rel=1e-9)


def test_uniform_pvalues_on_exchangeable_scores():
    rng = np.random.default_rng(2)
    cal = Calibrator(n_stats=1, capacity=200)
    hits = 0
    trials = 3000
    for _ in range(trials):
        s = rng.normal()
        if cal.count >= 40 and cal.pvalue((s,)) <= 0.05:
            hits += 1
        cal.add((s,))
    assert 0.03 < hits / trials < 0.07


def test_severity_orders_by_pvalue_and_effect():
    assert severity(0.5, 1e-3, 0.0, False) == "none"
    assert severity(9e-4, 1e-3, 1.0, True) == "low"
    assert severity(9e-4, 1e-3, 3.5, True) == "medium"
    assert severity(5e-5, 1e-3, 6.0, True) == "high"
    assert severity(5e-6, 1e-3, 20.0, True) == "critical"


def test_false_alarm_rate_near_target_on_stationary_logs():
    """Quick version (the evaluation engineer measures it fully): sensitive profile, target 1e-2."""
    events = synthetic_logs(16000, seed=21)
    det = registry.create("cbad", profile="sensitive", seed=3)
    results = [r for r in det.update(events) if r.figures["calibration_windows"] >= 100]
    assert len(results) > 1000
    rate = sum(r.is_anomaly for r in results) / len(results)
    assert rate < 2.5e-2  # measured 0.9-1.2 % on 28k events (correlated overlapping windows); target 1e-2
    assert not any(r.is_drift for r in results)


def test_deterministic_for_a_seed():
    events = synthetic_logs(1500, seed=8)
    a = registry.create("cbad", profile="sensitive", seed=5).update(events)
    b = registry.create("cbad", profile="sensitive", seed=5).update(events)
    assert a == b


def test_tail_fit_recovers_the_shape_and_clamps_light_tails():
    """Probability-weighted moments on known tails: exponential (shape 0), a heavy Pareto (shape 0.3),
    and a uniform (shape -1, clamped at SHAPE_MIN so noise cannot put the end point just above the sample)."""
    rng = np.random.default_rng(4)
    n = 20000
    exponential = fit_tail(rng.exponential(2.0, n))
    assert abs(exponential.shape) < 0.05
    assert exponential.scale == pytest.approx(2.0, rel=0.1)
    xi = 0.3
    pareto = fit_tail((rng.random(n) ** -xi - 1.0) / xi)  # GPD(shape 0.3, scale 1) by inversion
    assert pareto.shape == pytest.approx(xi, abs=0.06)
    assert fit_tail(rng.random(n)).shape == SHAPE_MIN


def test_calibration_history_is_long_enough_for_the_target():
    assert calibration_capacity(1e-2) == calibration_capacity(1e-3) == 500
    assert calibration_capacity(1e-4) == 2500
