"""The one tail fit of every detector: peaks over threshold with a generalized Pareto distribution.

Calibrated p-values are conformal ranks among a stream's recent normal statistics; the smallest rank
p-value is ``1/(n+1)``, so targets below it need a model of the upper tail. Of ``n`` sorted scores, the
threshold ``u`` is the ``(k+1)``-th largest, ``k = max(min_tail, floor(fraction * n))``; the ``kx`` scores
strictly above ``u`` are the exceedances (scores tied at ``u``, e.g. a history that is mostly zeros, are
not: counting them would make a value beyond a rarely-left range look up to ``k / kx`` times less rare).
A generalized Pareto distribution is fitted to the excesses by probability-weighted moments (Hosking &
Wallis, 1987), the shape clamped to ``[shape_min, shape_max]``, and the tail of a score ``s > u`` is

    p = (kx + 1) / (n + 1) * (1 + shape * (s - u) / scale) ** (-1 / shape)      (exp(-(s-u)/scale) at 0)

A scale that cannot be trusted (at or below ``resolution``, fewer than ``min_tail`` exceedances, or fewer
than ``min_history`` scores) is raised to ``prior_scale``. Each detector states its rule (``TailRule``);
the numbers and why they were chosen are in docs/detectors.md (section 4).

Sums are numpy's pairwise summation, written out, so a mean here is bit-for-bit the ``np.mean`` of the
same numbers (the test oracles compute the fit with numpy).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from detectors._kernels import kernel

_UNROLL = 8
_BLOCK = 128  # numpy's PW_BLOCKSIZE
EXPONENTIAL = 1e-9
"""A shape this close to 0 is the exponential tail."""
P_FLOOR = 1e-300
SHAPE_MIN = -0.08
SHAPE_MAX = 0.5
"""The shape range of every detector's tail (why: docs/detectors.md, section 4)."""


class TailRule(NamedTuple):
    """How a detector fits its tail (every field is described in the module docstring)."""

    fraction: float
    min_tail: int
    shape_min: float
    shape_max: float
    resolution: float
    prior_scale: float
    min_history: int


class Tail(NamedTuple):
    """A fitted tail: scores above ``threshold`` hold ``share`` of the history."""

    threshold: float
    share: float
    scale: float
    shape: float


@kernel
def _block_sum(a, lo, n):
    """numpy's sum of at most ``_BLOCK`` numbers: eight running sums, combined pairwise."""
    if n < _UNROLL:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = _UNROLL
    stop = n - n % _UNROLL
    while i < stop:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += _UNROLL
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@kernel
def pairwise_sum(a, lo, n):
    """Sum of ``a[lo:lo + n]`` in numpy's pairwise order (``np.sum`` of a contiguous float64 array).

    numpy halves a range (at a multiple of 8) until it holds at most ``_BLOCK`` numbers and adds the two
    halves' sums; the halving is walked here with an explicit stack (numba's cache cannot hold a
    recursive kernel).
    """
    if n <= _BLOCK:
        return _block_sum(a, lo, n)
    starts = np.empty(64, np.int64)  # depth <= log2(n) + 1
    sizes = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)  # 0: left half next, 1: right half next, 2: both summed
    left = np.empty(64, np.float64)
    right = np.empty(64, np.float64)
    starts[0], sizes[0], stage[0] = lo, n, 0
    depth = 1
    total = 0.0
    while depth > 0:
        top = depth - 1
        size = sizes[top]
        if size <= _BLOCK or stage[top] == 2:
            value = _block_sum(a, starts[top], size) if size <= _BLOCK else left[top] + right[top]
            depth -= 1
            if depth == 0:
                total = value
            elif stage[depth - 1] == 1:
                left[depth - 1] = value
            else:
                right[depth - 1] = value
            continue
        half = size // 2
        half -= half % _UNROLL
        if stage[top] == 0:
            stage[top] = 1
            starts[depth], sizes[depth] = starts[top], half
        else:
            stage[top] = 2
            starts[depth], sizes[depth] = starts[top] + half, size - half
        stage[depth] = 0
        depth += 1
    return total


@kernel
def tail_size(n, rule):
    """``k``: how many of ``n`` scores lie above the threshold (``n`` or more: no tail can be fitted)."""
    return max(rule.min_tail, int(rule.fraction * n))


@kernel
def fit_sorted(ascending, n, rule, scratch):
    """The tail of the ``n`` scores ``ascending[:n]`` (sorted); ``scratch`` holds at least ``n`` floats.

    Needs ``tail_size(n, rule) < n``.
    """
    k = tail_size(n, rule)
    threshold = ascending[n - 1 - k]
    first = n - k
    while first < n and ascending[first] <= threshold:
        first += 1
    kx = n - first
    shape = 0.0
    scale = 0.0
    if kx > 0:
        for i in range(kx):
            scratch[i] = ascending[first + i] - threshold
        a0 = pairwise_sum(scratch, 0, kx) / kx
        for i in range(kx):
            scratch[i] = (1.0 - ((i + 1) - 0.35) / kx) * scratch[i]
        a1 = pairwise_sum(scratch, 0, kx) / kx
        if a0 - 2.0 * a1 > 0.0:
            shape = 2.0 - a0 / (a0 - 2.0 * a1)
            scale = 2.0 * a0 * a1 / (a0 - 2.0 * a1)
        else:  # degenerate excesses: the exponential with their mean
            scale = a0
    # the free fit's scale is kept when the shape is clamped: a light tail's floor then stays as wide near
    # the threshold as the data say, its end point no closer than the clamped shape allows
    shape = min(max(shape, rule.shape_min), rule.shape_max)
    if kx < rule.min_tail or n < rule.min_history or scale <= rule.resolution:
        scale = max(scale, rule.prior_scale)
    return Tail(threshold, (kx + 1.0) / (n + 1.0), scale, shape)


@kernel
def tail_pvalue(tail, score):
    """The fitted tail's p-value of ``score`` (0 excess below the threshold), at least ``P_FLOOR``."""
    y = max(score - tail.threshold, 0.0)
    if abs(tail.shape) < EXPONENTIAL:
        survival = math.exp(-y / tail.scale)
    else:
        z = 1.0 + tail.shape * y / tail.scale
        survival = z ** (-1.0 / tail.shape) if z > 0.0 else 0.0  # beyond a light tail's end point
    return max(tail.share * survival, P_FLOOR)


@kernel
def tail_quantile(tail, alpha):
    """The score whose tail p-value is ``alpha`` (the threshold when ``alpha`` is above the tail's share)."""
    q = min(alpha / tail.share, 1.0)
    if abs(tail.shape) < EXPONENTIAL:
        return tail.threshold - tail.scale * math.log(q)
    return tail.threshold + tail.scale / tail.shape * (q ** -tail.shape - 1.0)


@kernel
def fit_unsorted(history, n, rule, scratch):
    """:func:`fit_sorted` of ``history[:n]`` in any order; ``scratch`` holds at least ``2 n`` floats."""
    ascending = np.sort(history[:n])
    return fit_sorted(ascending, n, rule, scratch)
