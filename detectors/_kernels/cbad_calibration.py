"""The cbad calibration ring: the window statistics of the stream's last ``capacity`` normal windows.

p-value of a statistic ``s`` (conformal, +1 corrected) among the ``n`` scores of the ring:
``(1 + #{h >= s}) / (n + 1)``. When ``s`` exceeds every score and ``n >= 2 * min_tail``, the fitted tail
(:mod:`detectors._kernels.tail`) may give less: ``min(1/(n+1), tail p-value)``. The effect size of an
anomalous statistic is its robust z-score against the ring, and an anomalous window enters the ring
clipped at the tail's quantile of the clip level (see :func:`add_clipped`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from detectors._kernels import kernel
from detectors._kernels.tail import fit_unsorted, tail_pvalue, tail_quantile

MAD_TO_SD = 1.4826


class Ring(NamedTuple):
    """The ring of statistics and its running sums (mutated in place)."""

    values: np.ndarray
    """float64 (n_stats, capacity): column ``position`` is written next; the first ``count`` are valid."""
    sums: np.ndarray
    """float64 (n_stats,): sum of each statistic's valid values (the mean without a pass over them)."""


@kernel
def add(ring, count, position, stats):
    """Append ``stats`` (one per statistic), dropping the oldest column when full; returns the new
    ``(count, position)``."""
    capacity = ring.values.shape[1]
    for i in range(stats.size):
        old = ring.values[i, position] if count == capacity else 0.0
        ring.sums[i] = ring.sums[i] - old + stats[i]
        ring.values[i, position] = stats[i]
    return min(count + 1, capacity), (position + 1) % capacity


@kernel
def pvalue(ring, count, stat, score, greater, rule):
    """p-value of ``score`` for statistic ``stat``, given ``greater`` = how many ring scores are >= it."""
    p = (1.0 + greater) / (count + 1.0)
    if greater > 0 or count < 2 * rule.min_tail:
        return p
    scratch = np.empty(count, np.float64)
    t = tail_pvalue(fit_unsorted(ring.values[stat], count, rule, scratch), score)
    return t if t < p else p


@kernel
def clip_level(ring, count, stat, alpha, rule):
    """The score whose tail p-value is ``alpha``; +inf while the ring is too short for a tail."""
    if count < 2 * rule.min_tail:
        return math.inf
    scratch = np.empty(count, np.float64)
    return tail_quantile(fit_unsorted(ring.values[stat], count, rule, scratch), alpha)


@kernel
def add_clipped(ring, count, position, stats, alpha, rule):
    """Record an anomalous window, each statistic at most its ``alpha`` clip level.

    Skipping flagged windows would thin the upper tail, clipping them at the recent maximum shrinks the
    fitted tail, recording them as they are lets one incident blunt the detector for a whole history; the
    tail's own ``alpha`` quantile keeps the count of exceedances right without stretching the tail
    (docs/detectors.md, "History hygiene").
    """
    clipped = np.empty(stats.size, np.float64)
    for i in range(stats.size):
        q = clip_level(ring, count, i, alpha, rule)
        clipped[i] = q if q < stats[i] else stats[i]
    return add(ring, count, position, clipped)


@kernel
def median_sorted(ascending, n):
    """The median of ``ascending[:n]`` as ``np.median`` computes it."""
    half = n // 2
    if n % 2 == 1:
        return ascending[half]
    return (ascending[half - 1] + ascending[half]) / 2.0


@kernel
def robust_z(history, n, score, min_scale):
    """``(score - median) / max(1.4826 MAD, min_scale)`` against ``history[:n]`` (any order)."""
    if n == 0:
        return score / min_scale
    ascending = np.sort(history[:n])
    center = median_sorted(ascending, n)
    deviation = np.empty(n, np.float64)
    for i in range(n):
        deviation[i] = abs(ascending[i] - center)
    deviation.sort()
    scale = MAD_TO_SD * median_sorted(deviation, n)
    return (score - center) / (scale if scale > min_scale else min_scale)
