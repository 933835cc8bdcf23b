"""Calibration: conformal p-values, the one tail fit (against its numpy oracle), false alarms, severity."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import EventBatch, registry
from detectors._kernels.tail import SHAPE_MIN as PACKAGE_SHAPE_MIN
from detectors._kernels.tail import TailRule, pairwise_sum, tail_pvalue
from detectors.calibration import (
    CBAD_TAIL,
    SHAPE_MIN,
    Calibrator,
    calibration_capacity,
    conformal_pvalue,
    fit_tail,
    tail_quantile,
)
from detectors.numeric import NumericDetector
from detectors.severity import severity
from detectors.synthetic import synthetic_logs
from tests.detectors import oracles


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
    assert tail_quantile(history[:9], 1e-3) == math.inf  # too short for a tail


def test_uniform_pvalues_on_exchangeable_scores():
    rng = np.random.default_rng(2)
    cal = Calibrator(n_stats=1, capacity=200)
    hits = 0
    trials = 3000
    for _ in range(trials):
        s = rng.normal()
        if cal.count >= 40 and conformal_pvalue(cal.history(0), s) <= 0.05:
            hits += 1
        cal.add((s,))
    assert 0.03 < hits / trials < 0.07


def test_calibrator_ring_keeps_the_last_scores_and_their_sum():
    cal = Calibrator(n_stats=2, capacity=5)
    for i in range(12):
        cal.add((float(i), 2.0 * i))
    assert cal.count == 5 and cal.position == 2
    assert sorted(cal.history(0).tolist()) == [7.0, 8.0, 9.0, 10.0, 11.0]
    assert cal.ring.sums.tolist() == [45.0, 90.0] and cal.mean(0) == 9.0
    cal.reset()
    assert cal.count == 0 and math.isnan(cal.mean(0))


def test_severity_orders_by_pvalue_and_effect():
    assert severity(0.5, 1e-3, 0.0, False) == "none"
    assert severity(9e-4, 1e-3, 1.0, True) == "low"
    assert severity(9e-4, 1e-3, 3.5, True) == "medium"
    assert severity(5e-5, 1e-3, 6.0, True) == "high"
    assert severity(5e-6, 1e-3, 20.0, True) == "critical"


def test_false_alarm_rate_near_target_on_stationary_logs():
    """Quick version (the evaluation measures it fully): sensitive profile, target 1e-2."""
    events = synthetic_logs(16000, seed=21)
    det = registry.create("cbad", profile="sensitive", seed=3)
    results = [r for r in det.update(EventBatch(events)) if r.figures["calibration_windows"] >= 100]
    assert len(results) > 1000
    rate = sum(r.is_anomaly for r in results) / len(results)
    assert rate < 2.5e-2  # measured 0.9-1.2 % on 28k events (correlated overlapping windows); target 1e-2
    assert not any(r.is_drift for r in results)


def test_deterministic_for_a_seed():
    events = EventBatch(synthetic_logs(1500, seed=8))
    a = registry.create("cbad", profile="sensitive", seed=5).update(events)
    b = registry.create("cbad", profile="sensitive", seed=5).update(events)
    assert a == b


def test_tail_fit_recovers_the_shape_and_clamps_light_tails():
    """Known tails: exponential (shape 0), a heavy Pareto (shape 0.3), and a uniform (shape -1, clamped at
    the package's shape floor so noise cannot put the end point just above the sample). cbad's own rule
    keeps its tails at least as heavy as SHAPE_MIN (0.05): an exponential tail is fitted at that floor."""
    rng = np.random.default_rng(4)
    n = 20000
    package = CBAD_TAIL._replace(shape_min=PACKAGE_SHAPE_MIN)
    sample = rng.exponential(2.0, n)
    exponential = fit_tail(sample, package)
    assert abs(exponential.shape) < 0.05
    assert exponential.scale == pytest.approx(2.0, rel=0.1)
    assert fit_tail(sample).shape == SHAPE_MIN > exponential.shape
    xi = 0.3
    pareto = fit_tail((rng.random(n) ** -xi - 1.0) / xi, package)  # GPD(shape 0.3, scale 1) by inversion
    assert pareto.shape == pytest.approx(xi, abs=0.06)
    assert fit_tail(rng.random(n), package).shape == PACKAGE_SHAPE_MIN


def test_tail_counts_only_the_values_above_a_tied_threshold():
    # a history that is mostly zeros (the numeric range model judging one row at a time): only the 10
    # positive values exceed the tail threshold, so a score among them is about as rare as its rank says,
    # not diluted by the tail share made of zeros (counting the ties gave ~9x the rank p-value)
    history = np.concatenate([np.zeros(2990), np.linspace(1.0, 3.0, 10)])
    rule = NumericDetector.tail_rule(NumericDetector().config)
    tail = fit_tail(history, rule)
    assert tail.threshold == 0.0 and tail.share == 11 / 3001
    rank = (1 + int((history >= 2.0).sum())) / (history.size + 1)
    assert rank / 3 < tail_pvalue(tail, 2.0) < 3 * rank


def test_an_unresolved_tail_keeps_the_code_length_prior():
    # a count stream's range statistic: mostly 0, a cluster at "one step past the range" (~1.26 bits,
    # smeared by the drifting scale). Fitting the cluster's spread as a tail gave it a scale of 0.1 bit
    # and made the next step (2.52 bits) look 1e-7 rare; an unresolved tail falls back to 2^-bits
    rule = NumericDetector.tail_rule(NumericDetector().config)
    cluster = np.concatenate([np.zeros(940), 1.26 + np.linspace(0.0, 0.05, 60)])
    assert tail_pvalue(fit_tail(cluster, rule), 2.52) > 1 / (cluster.size + 1)
    # a tail spread over bits is still fitted, and extrapolates below the rank's resolution
    spread = np.concatenate([np.zeros(940), 1.26 + np.linspace(0.0, 3.0, 60)])
    fitted = fit_tail(spread, rule)
    assert fitted.scale > rule.resolution and tail_pvalue(fitted, 12.0) < 0.5 / (spread.size + 1)


def test_calibration_history_is_long_enough_for_the_target():
    assert calibration_capacity(1e-2) == calibration_capacity(1e-3) == 500
    assert calibration_capacity(1e-4) == 2500


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=600), st.integers(0, 5))
def test_pairwise_sum_is_numpys_sum_bit_for_bit(values, offset):
    a = np.array([0.5] * offset + values)
    assert pairwise_sum(a, offset, len(values)) == np.sum(a[offset:])


_HISTORIES = st.lists(st.one_of(st.floats(0.0, 50.0), st.sampled_from([0.0, 1.0, 2.5])), min_size=12,
                      max_size=400)


@settings(max_examples=150, deadline=None)
@given(_HISTORIES, st.sampled_from([CBAD_TAIL, TailRule(0.05, 10, 0.0, 0.5, 0.1, 1 / math.log(2), 200)]),
       st.floats(0.0, 80.0))
def test_the_tail_kernel_equals_its_numpy_oracle(history, rule, score):
    h = np.array(history)
    if max(rule.min_tail, int(rule.fraction * h.size)) >= h.size:
        return
    fast, slow = fit_tail(h, rule), oracles.fit_tail(h, rule)
    assert fast == pytest.approx(slow, rel=1e-12, abs=1e-15)
    assert tail_pvalue(fast, score) == pytest.approx(oracles.tail_pvalue(slow, score), rel=1e-9, abs=1e-300)
