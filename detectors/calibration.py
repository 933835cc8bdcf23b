"""Calibration of window statistics against the stream's own recent normal windows.

p-value (conformal, +1 corrected): with ``n`` recent normal scores ``h``, ``p = (1 + #{h >= s}) / (n + 1)``.
Its smallest value is ``1/(n+1)``; false-alarm targets below that are reached with a fitted tail (peaks
over threshold): when ``s`` exceeds every recent score, a generalized Pareto distribution is fitted to the
excesses of the ``k = max(5, n/5)`` largest scores over the threshold ``u`` (the (k+1)-th largest) by
probability-weighted moments (Hosking & Wallis, 1987), and
``p = min(1/(n+1), (k+1)/(n+1) · (1 + ξ(s-u)/σ)^(-1/ξ))`` (``exp(-(s-u)/σ)`` at ``ξ = 0``), ``σ`` floored at
``min_scale``. Window statistics are averages, whose tails are lighter than exponential (``ξ < 0``); an
exponential tail (``ξ = 0``) extrapolated to 1e-4 from 500 windows flagged 0.1-0.15x the target. The shape
is kept within ``[-0.08, 0.5]``: its standard error from ~100 excesses is about 0.1, and a free negative
estimate puts the tail's end point just above the sample whenever the noise makes it too negative
(measured: 2-7x the target on stationary streams). The floor and the history length
(:func:`calibration_capacity`) were chosen by replaying the statistics of the stationary evaluation's
log and span streams through candidate fits (floors 0, -0.05, -0.08, -0.1, -0.2; 500 to 5,000 windows;
method of moments and probability-weighted moments); ``python -m detectors.evaluate stationary``
measures the result. Several statistics are combined with a Bonferroni
bound, ``p = min(1, m · min_i p_i)``. Everything is deterministic: no randomness is used.

Severity (``none`` unless anomalous) combines how far p is below the target with the effect size
``z = (s - median) / (1.4826 · MAD)`` of the statistic that triggered (scale floored at ``min_scale``):
critical when p ≤ target/100 and z ≥ 10; high when p ≤ target/10 and z ≥ 5; medium when z ≥ 3; else low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.base import Severity

CALIBRATION_CAPACITY = 500
MIN_CALIBRATION = 40
MIN_SCALE = 0.01
_MIN_TAIL = 5
SHAPE_MIN = -0.08
SHAPE_MAX = 0.5


def calibration_capacity(false_alarm_target: float) -> int:
    """Windows of history kept for a target: at least ``CALIBRATION_CAPACITY``, and enough that the
    fitted tail extrapolates no more than ~8x below the resolution 1/(n+1) for two statistics at the
    target (strict, 1e-4: 2,500 windows, 40 KB; balanced and sensitive: 500)."""
    return max(CALIBRATION_CAPACITY, math.ceil(0.25 / false_alarm_target))


def conformal_pvalue(history: np.ndarray, score: float, min_scale: float = MIN_SCALE) -> float:
    """+1-corrected conformal p-value of ``score`` among ``history``, extended by a fitted tail.

    >>> h = np.arange(1.0, 100.0)            # 99 normal scores
    >>> conformal_pvalue(h, 50.0)             # 50 of 99 are >= 50
    0.51
    >>> round(conformal_pvalue(h, 99.5), 4)   # above every score: 1/(n+1), or the tail if smaller
    0.01
    >>> conformal_pvalue(h, 200.0) < 1e-4
    True
    """
    n = history.size
    if n == 0:
        return 1.0
    greater = int(np.count_nonzero(history >= score))
    p = (1.0 + greater) / (n + 1.0)
    if greater > 0 or n < 2 * _MIN_TAIL:
        return p
    tail = fit_tail(history, min_scale)
    return min(p, tail.pvalue(score))


@dataclass(frozen=True, slots=True)
class Tail:
    """A generalized Pareto tail above ``threshold``, holding ``share`` = (k+1)/(n+1) of the history."""

    threshold: float
    share: float
    scale: float
    shape: float

    def pvalue(self, score: float) -> float:
        y = max(score - self.threshold, 0.0)
        if abs(self.shape) < 1e-9:
            survival = math.exp(-y / self.scale)
        else:
            z = 1.0 + self.shape * y / self.scale
            survival = z ** (-1.0 / self.shape) if z > 0.0 else 0.0  # beyond a light tail's end point
        return max(self.share * survival, 1e-300)

    def quantile(self, alpha: float) -> float:
        """The score whose tail p-value is ``alpha``."""
        q = min(alpha / self.share, 1.0)
        if abs(self.shape) < 1e-9:
            return self.threshold - self.scale * math.log(q)
        return self.threshold + self.scale / self.shape * (q ** -self.shape - 1.0)


def fit_tail(history: np.ndarray, min_scale: float = MIN_SCALE) -> Tail:
    """Peaks over threshold: a generalized Pareto fitted to the ``k`` largest excesses by
    probability-weighted moments, shape clamped to ``[SHAPE_MIN, SHAPE_MAX]`` (see the module docstring)."""
    n = history.size
    k = min(max(_MIN_TAIL, n // 5), n - 1)
    part = np.partition(history, n - k - 1)
    threshold = float(part[n - k - 1])
    excess = np.sort(part[n - k:]) - threshold
    a0 = float(np.mean(excess))
    a1 = float(np.mean((1.0 - (np.arange(1, k + 1) - 0.35) / k) * excess))
    if a0 - 2.0 * a1 > 0.0:
        shape = 2.0 - a0 / (a0 - 2.0 * a1)
        scale = 2.0 * a0 * a1 / (a0 - 2.0 * a1)
    else:  # degenerate excesses (ties): the exponential with their mean
        shape, scale = 0.0, a0
    shape = min(max(shape, SHAPE_MIN), SHAPE_MAX)
    return Tail(threshold, (k + 1.0) / (n + 1.0), max(scale, min_scale), shape)


def tail_quantile(history: np.ndarray, alpha: float, min_scale: float = MIN_SCALE) -> float:
    """The score whose tail p-value is ``alpha`` (the inverse of the fitted tail); +inf when the history
    is too short to fit one."""
    if history.size < 2 * _MIN_TAIL:
        return math.inf
    return fit_tail(history, min_scale).quantile(alpha)


def robust_center_scale(history: np.ndarray, min_scale: float = MIN_SCALE) -> tuple[float, float]:
    """Median and 1.4826·MAD (floored at ``min_scale``) of the history; (0, min_scale) when empty."""
    if history.size == 0:
        return 0.0, min_scale
    center = float(np.median(history))
    return center, max(1.4826 * float(np.median(np.abs(history - center))), min_scale)


def severity(p_value: float, target: float, effect: float, is_anomaly: bool) -> Severity:
    """Severity from the calibrated p-value and the effect size (see the module docstring).

    >>> severity(1e-7, 1e-3, 12.0, True), severity(5e-4, 1e-3, 4.0, True), severity(0.5, 1e-3, 0.1, False)
    ('critical', 'medium', 'none')
    """
    if not is_anomaly:
        return "none"
    if p_value <= target / 100 and effect >= 10:
        return "critical"
    if p_value <= target / 10 and effect >= 5:
        return "high"
    if effect >= 3:
        return "medium"
    return "low"


class Calibrator:
    """A ring of the last ``capacity`` normal windows' statistics (one column per statistic).

    >>> cal = Calibrator(n_stats=2, capacity=50)
    >>> for i in range(50):
    ...     cal.add((1.0 + 0.01 * (i % 7), 2.0 + 0.02 * (i % 5)))
    >>> cal.count, cal.pvalue((1.03, 2.04)) > 0.1, cal.pvalue((3.0, 2.0)) < 1e-6
    (50, True, True)
    """

    def __init__(self, n_stats: int, capacity: int = CALIBRATION_CAPACITY,
                 min_scale: float = MIN_SCALE) -> None:
        self.capacity = capacity
        self.min_scale = min_scale
        self.ring = np.zeros((n_stats, capacity), dtype=np.float64)
        self.count = 0
        self.position = 0
        self.sums = [0.0] * n_stats  # running sums of the ring, for the mean without a pass over it

    def history(self, stat: int) -> np.ndarray:
        return self.ring[stat, : self.count]

    def add(self, stats: tuple[float, ...]) -> None:
        column = self.ring[:, self.position]
        leaving = column.tolist() if self.count == self.capacity else [0.0] * len(stats)
        self.sums = [t - old + s for t, old, s in zip(self.sums, leaving, stats, strict=True)]
        column[:] = stats
        self.position = (self.position + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)

    def add_clipped(self, stats: tuple[float, ...], alpha: float) -> None:
        """Record an anomalous window at no more than the decision threshold of each statistic.

        Skipping flagged windows would thin the upper tail (measured: 8x the false-alarm target), clipping
        them at the recent maximum shrinks the fitted tail (5x), and recording them as they are lets one
        incident blunt the detector for a whole history; the tail model's ``alpha`` quantile keeps the count
        of exceedances right without stretching the tail."""
        self.add(tuple(min(s, tail_quantile(self.history(i), alpha, self.min_scale))
                       for i, s in enumerate(stats)))

    def reset(self) -> None:
        self.ring[:] = 0.0
        self.count = 0
        self.position = 0
        self.sums = [0.0] * len(self.sums)

    def pvalues(self, stats: tuple[float, ...], greater: tuple[int, ...] | None = None) -> list[float]:
        """Per-statistic p-values; ``greater`` (how many recent scores are >= each statistic) may be given
        when already counted (the hop kernel counts them)."""
        n = self.count
        out = []
        for i, s in enumerate(stats):
            history = self.ring[i, :n]
            g = int(np.count_nonzero(history >= s)) if greater is None else greater[i]
            # The tail is consulted only for a statistic above every recent score (as in conformal_pvalue).
            out.append((1.0 + g) / (n + 1.0) if g else conformal_pvalue(history, s, self.min_scale))
        return out

    def pvalue(self, stats: tuple[float, ...], greater: tuple[int, ...] | None = None) -> float:
        """Bonferroni-combined p-value of several statistics."""
        return min(1.0, len(stats) * min(self.pvalues(stats, greater)))

    def effect(self, stats: tuple[float, ...]) -> float:
        """Largest robust z-score among the statistics."""
        best = 0.0
        for i, s in enumerate(stats):
            center, scale = robust_center_scale(self.history(i), self.min_scale)
            best = max(best, (s - center) / scale)
        return best

    def mean(self, stat: int, default: float) -> float:
        return self.sums[stat] / self.count if self.count else default
