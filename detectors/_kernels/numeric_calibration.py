"""Calibration of the numeric detector's window statistics: one sorted history per model.

A model's p-value for a window statistic ``s`` is its conformal rank among the model's last ``n`` normal
window statistics, ``(1 + #{h >= s}) / (n + 1)``, until ``s`` passes the tail threshold; above it the one
tail fit of the package (:mod:`detectors._kernels.tail`) gives it. Histories are kept sorted (insertion
into a sorted copy of the ring), so the rank, the threshold and the median are reads.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from detectors._kernels import kernel
from detectors._kernels.cbad_calibration import MAD_TO_SD, median_sorted
from detectors._kernels.tail import fit_sorted, tail_pvalue, tail_size


class Histories(NamedTuple):
    """Per model, its last ``capacity`` normal window statistics (updated in place)."""

    ring: np.ndarray
    """float64 (N_MODELS, capacity): in arrival order, column ``I_CAL_POS + k`` is written next."""
    ascending: np.ndarray
    """float64 (N_MODELS, capacity): the same values sorted, the first ``I_CAL_N + k`` valid."""
    pending: np.ndarray
    """float64 (N_MODELS, slots): statistics of the last windows waiting to enter the history, at the
    window's index modulo ``slots`` (NaN: nothing to learn; see ``WindowConfig.delays``)."""


@kernel
def push(ring_k, sorted_k, n, position, value):
    """Insert ``value`` into one model's history (dropping the oldest when full); returns the new size."""
    capacity = ring_k.shape[0]
    if n == capacity:
        lo = np.searchsorted(sorted_k[:n], ring_k[position])
        for i in range(lo, n - 1):
            sorted_k[i] = sorted_k[i + 1]
        n -= 1
    ring_k[position] = value
    lo = np.searchsorted(sorted_k[:n], value, side="right")
    for i in range(n, lo, -1):
        sorted_k[i] = sorted_k[i - 1]
    sorted_k[lo] = value
    return n + 1


@kernel
def pvalue(sorted_k, n, score, rule, scratch):
    """p-value of ``score`` against the ``n`` sorted statistics ``sorted_k[:n]`` (``scratch``: n floats)."""
    lo = np.searchsorted(sorted_k[:n], score)
    p_rank = (1.0 + (n - lo)) / (n + 1.0)
    k = tail_size(n, rule)
    if k >= n or score <= sorted_k[n - 1 - k]:
        return p_rank
    return tail_pvalue(fit_sorted(sorted_k, n, rule, scratch), score)


@kernel
def robust_z(sorted_k, n, score, min_scale, scratch):
    """``(score - median) / max(1.4826 MAD, min_scale)`` against ``sorted_k[:n]`` (``scratch``: n floats)."""
    if n == 0:
        return score / min_scale
    center = median_sorted(sorted_k, n)
    for i in range(n):
        scratch[i] = abs(sorted_k[i] - center)
    deviation = np.sort(scratch[:n])
    scale = MAD_TO_SD * median_sorted(deviation, n)
    return (score - center) / (scale if scale > min_scale else min_scale)
