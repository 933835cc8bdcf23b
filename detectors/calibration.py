"""Calibration of cbad window statistics against the stream's own recent normal windows.

The statistics of the last ``capacity`` normal windows live in a ring (:class:`Calibrator`); a window's
p-value is its conformal rank among them, extended beyond the largest by the one tail fit of the package
(:mod:`detectors._kernels.tail`) with cbad's rule :data:`CBAD_TAIL`. The kernels of
:mod:`detectors._kernels.cbad_calibration` do the work; the functions here call them on plain arrays.
"""

from __future__ import annotations

import math

import numpy as np

from detectors._kernels import cbad_calibration as K
from detectors._kernels import tail as T

CALIBRATION_CAPACITY = 500
MIN_CALIBRATION = 40
MIN_SCALE = 0.01
"""Bits per byte: the smallest tail scale, and the smallest robust scale of the effect size."""
SHAPE_MIN = 0.05
"""cbad's tails are at least this heavy (the package's bound, -0.08, is the numeric detector's): a window's
bits per byte rise with clusters of rare-but-known events (4 lines of a 0.5 % template in 50), rarer than
the 500 windows of history show, and a lighter fitted tail priced them at p 1e-5 to 1e-8: about 3 false
incidents per million events on balanced logs (docs/detectors.md, section 4)."""
SHAPE_MAX = T.SHAPE_MAX
CBAD_TAIL = T.TailRule(fraction=0.2, min_tail=5, shape_min=SHAPE_MIN, shape_max=SHAPE_MAX,
                       resolution=MIN_SCALE, prior_scale=MIN_SCALE, min_history=0)
"""The top fifth of the ring (at least 5 scores) is the tail; its shape is kept in [0.05, 0.5] and its
scale at least 0.01 bits/byte (why: docs/detectors.md, section 4)."""


def calibration_capacity(false_alarm_target: float) -> int:
    """Windows of history kept for a target: at least ``CALIBRATION_CAPACITY``, and enough that the
    fitted tail extrapolates no more than ~8x below the resolution 1/(n+1) for two statistics at the
    target (strict, 1e-4: 2,500 windows, 40 KB; balanced and sensitive: 500)."""
    return max(CALIBRATION_CAPACITY, math.ceil(0.25 / false_alarm_target))


def fit_tail(history: np.ndarray, rule: T.TailRule = CBAD_TAIL) -> T.Tail:
    """The tail fitted to ``history`` (any order; more than ``tail_size`` scores)."""
    history = np.ascontiguousarray(history, dtype=np.float64)
    return T.fit_unsorted(history, history.size, rule, np.empty(history.size))


def conformal_pvalue(history: np.ndarray, score: float, rule: T.TailRule = CBAD_TAIL) -> float:
    """+1-corrected conformal p-value of ``score`` among ``history``, extended by the fitted tail.

    >>> h = np.arange(1.0, 100.0)            # 99 normal scores
    >>> conformal_pvalue(h, 50.0)             # 50 of 99 are >= 50
    0.51
    >>> round(conformal_pvalue(h, 99.5), 4)   # above every score: 1/(n+1), or the tail if smaller
    0.01
    >>> conformal_pvalue(h, 400.0) < 1e-4
    True
    """
    history = np.ascontiguousarray(history, dtype=np.float64)
    if history.size == 0:
        return 1.0
    ring = K.Ring(history.reshape(1, -1), np.zeros(1))
    return K.pvalue(ring, history.size, 0, score, int(np.count_nonzero(history >= score)), rule)


def tail_quantile(history: np.ndarray, alpha: float, rule: T.TailRule = CBAD_TAIL) -> float:
    """The score whose tail p-value is ``alpha``; +inf when the history is too short to fit a tail."""
    history = np.ascontiguousarray(history, dtype=np.float64)
    return K.clip_level(K.Ring(history.reshape(1, -1), np.zeros(1)), history.size, 0, alpha, rule)


class Calibrator:
    """The ring of the last ``capacity`` normal windows' statistics (one row per statistic).

    The ring's array reaches as far as its history does (``GROW`` windows at a time) up to ``capacity``:
    a young stream's ring holds its few windows. Before a kernel adds up to ``n`` windows to ``ring``, call
    :meth:`reserve` (``n``); :meth:`add` does.

    >>> cal = Calibrator(n_stats=2, capacity=50)
    >>> for i in range(60):
    ...     cal.add((1.0 + 0.01 * (i % 7), 2.0 + 0.02 * (i % 5)))
    >>> cal.count, cal.position, round(cal.mean(0), 4)
    (50, 10, 1.03)
    """

    GROW = 16
    """Windows the ring's array grows by (2 x 8 bytes each): a young or restored stream holds at most this
    many unused (was 64: 1 KiB of slack per stream; a reallocation every 16 windows copies at most 8 KiB)."""

    def __init__(self, n_stats: int, capacity: int = CALIBRATION_CAPACITY) -> None:
        self._capacity = int(capacity)
        self.ring = K.Ring(np.zeros((n_stats, min(self._capacity, self.GROW)), dtype=np.float64),
                           np.zeros(n_stats))
        self.count = 0
        self.position = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def reserve(self, windows: int) -> None:
        """Room for ``windows`` more windows: until the ring is full, ``position == count`` and the kernels
        wrap at the array's length, so the array must be longer than ``count + windows`` (or full size)."""
        allocated = self.ring.values.shape[1]
        if allocated < self._capacity and self.count + windows >= allocated:
            size = min(self._capacity, max(self.count + windows + 1, allocated + self.GROW))
            values = np.zeros((self.ring.values.shape[0], size), dtype=np.float64)
            values[:, :allocated] = self.ring.values
            self.ring = K.Ring(values, self.ring.sums)

    def load(self, values: np.ndarray, count: int, position: int, sums: list[float]) -> None:
        """The state a snapshot holds: ``values`` at least the first ``count`` windows of the ring."""
        self.count, self.position = int(count), int(position)
        self.ring.sums[:] = sums
        size = self._capacity if self.count == self._capacity else min(self._capacity, self.count + self.GROW)
        ring = np.zeros((self.ring.values.shape[0], size), dtype=np.float64)
        ring[:, :self.count] = values[:, :self.count]
        self.ring = K.Ring(ring, self.ring.sums)

    def history(self, stat: int) -> np.ndarray:
        return self.ring.values[stat, : self.count]

    def add(self, stats: tuple[float, ...]) -> None:
        self.reserve(1)
        self.count, self.position = K.add(self.ring, self.count, self.position,
                                          np.asarray(stats, dtype=np.float64))

    def reset(self) -> None:
        self.ring = K.Ring(np.zeros((self.ring.values.shape[0], min(self._capacity, self.GROW))),
                           np.zeros(self.ring.sums.shape[0]))
        self.count = 0
        self.position = 0

    def mean(self, stat: int) -> float:
        """The mean of a statistic over the ring (NaN when empty)."""
        return float(self.ring.sums[stat] / self.count) if self.count else math.nan
