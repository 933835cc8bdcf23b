"""Scoring for the numeric (metric) detector: predictive code lengths per point, excess bits per window.

Both passes carry all state in caller-owned arrays (so a snapshot is just those arrays, and any split of
the input into chunks gives the same result):

``point_bits`` predicts every value with ``N_MODELS`` simple predictors and returns, per point and
model, the excess code length in bits of the prediction error under an adaptive Laplace code
(``(|err| / scale - 1) / ln 2``: 0 bits for a typical error, +1.44 bits per extra scale unit):

* ``RANGE``  - the value against the range of the last ``range_n`` values (0 bits inside it);
* ``STEP``   - the previous value (random walk): spikes, jumps, sudden noise;
* ``DAILY``  - the value one day earlier, shifted by the change of a slow level since then;
* ``WEEKLY`` - the same one week earlier. Seasonal models need the lag in samples (0 = off);
* ``MEAN``   - a slow mean of the values (exponentially weighted, ``mean_alpha``): a sustained level
  shift. The range takes the first shifted value in and the step model sees the jump once, so after a
  few values neither charges a shift any more; the mean follows it only over ~``1 / mean_alpha``
  values, and until then every shifted value costs bits (long enough for an incident to open).

Scales are exponentially weighted mean absolute errors, kept as the product of the rate of non-zero
errors and their mean size; only the size is clipped (at ``clip`` times itself) so a spike cannot
inflate it (the model protects itself from anomalies). Clipping the whole mean instead collapses it
to 0 on sparse streams (fewer than 1 / ``clip`` non-zero errors, e.g. a counter's deltas: mostly 0,
sometimes 1), where every non-zero error then costs ``MAX_BITS``. On continuous data every error is
non-zero and the two are the same estimator.

``window_sums`` sums, per window and model, the hinge ``max(0, bits - hinge)`` over the last
``spans[k]`` points of the window (no hinge for ``RANGE``, whose bits are already an excess over the
range): the window statistics that :mod:`detectors._kernels.numeric_windows` calibrates and decides on.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from detectors._kernels import kernel

N_MODELS = 5
RANGE, STEP, DAILY, WEEKLY, MEAN = 0, 1, 2, 3, 4
MODEL_NAMES = ("range", "step", "daily", "weekly", "mean")

# istate layout (int64)
I_SEEN = 0          # points seen
I_COUNT = 1         # .. 1 + N_MODELS: errors observed per model (scale warm-up)
I_CAL_N = 6         # .. 6 + N_MODELS: calibration history size per model
I_CAL_POS = 11      # .. 11 + N_MODELS: ring position per model
I_RUN = 16          # consecutive anomalous windows
I_ACCEPTED = 17     # 1 while a drift is being accepted as the new normal
I_LAST_ALARM = 18   # end offset of the last anomalous window (-1 = none)
I_FROZEN = 19       # 1 while an incident is open: the range and the scales are frozen, nothing is learnt
I_SIZE = 20

# fstate layout (float64)
F_SCALE = 0         # .. 0 + N_MODELS: error scale per model
F_LEVEL = 5         # slow level (EWMA) of the values
F_RATE = 6          # .. 6 + N_MODELS: share of non-zero errors per model
F_MAG = 11          # .. 11 + N_MODELS: mean size of the non-zero errors (scale = rate * size)
F_FROZEN_LO = 16    # the range frozen when an incident opened (used while I_FROZEN)
F_FROZEN_HI = 17
F_MEAN = 18         # the mean model's mean of the values so far
F_FROZEN_MEAN = 19  # its mean over the reference frozen when an incident opened (used while I_FROZEN)
F_SIZE = 20

MAX_BITS = 1000.0
LN2 = math.log(2.0)


class PointConfig(NamedTuple):
    """How the predictors learn."""

    range_n: int
    """Values the range model looks back over."""
    scale_alpha: float
    """Weight of a new error in the exponentially weighted error rate and size."""
    clip: float
    """A non-zero error counts for at most ``clip`` times the current mean size."""
    warm: int
    """Errors a model observes before it scores (and the range model waits for the step model's)."""
    level_alpha: float
    """Weight of a new value in the slow level that shifts the seasonal predictions."""
    mean_alpha: float
    """Weight of a new value in the mean model's mean (a plain mean over the first ``1 / mean_alpha``)."""


class PointState(NamedTuple):
    """Everything ``point_bits`` carries from one value to the next (updated in place)."""

    ring: np.ndarray
    """float64 (history,): the last values, at ``offset % history``."""
    level: np.ndarray
    """float64 (history,): the slow level after each of those values."""
    fstate: np.ndarray
    """float64 (F_SIZE,): error scales, rates and sizes per model, and the level (``F_*``)."""
    istate: np.ndarray
    """int64 (I_SIZE,): counters and calibration bookkeeping (``I_*``)."""


@kernel
def point_bits(values, lag_daily, lag_weekly, config, state, bits_out, pred_out):
    """Excess bits and predictions of each model for each value; updates ``state`` in place.

    Parameters
    ----------
    values : float64 array
        The new values, finite.
    lag_daily, lag_weekly : int
        The seasonal lags in values (0: that model is off).
    config : PointConfig
    state : PointState
    bits_out, pred_out : float64 (values.size, N_MODELS)
        Per value and model, the excess bits and the prediction (NaN while a model is not scoring).
    """
    ring, level_ring, fstate, istate = state.ring, state.level, state.fstate, state.istate
    range_n, scale_alpha, clip = config.range_n, config.scale_alpha, config.clip
    warm, level_alpha, mean_alpha = config.warm, config.level_alpha, config.mean_alpha
    size = ring.shape[0]
    for j in range(values.shape[0]):
        x = values[j]
        n = istate[I_SEEN]
        # --- predictions from the past only
        for k in range(N_MODELS):
            bits_out[j, k] = np.nan
            pred_out[j, k] = np.nan
        prev = ring[(n - 1) % size] if n >= 1 else x
        lvl_prev = level_ring[(n - 1) % size] if n >= 1 else x
        # the range's unit is the typical size of a move (the step model's non-zero errors): on a sparse
        # stream the mean error is far below the smallest move, and one step past the range is not rare
        step_size = fstate[F_MAG + STEP]
        # RANGE: distance outside [min, max] of the last range_n values, in step-size units
        m = min(n, range_n)
        frozen = istate[I_FROZEN] != 0
        if m >= 8 and istate[I_COUNT + STEP] >= warm:
            lo = np.inf
            hi = -np.inf
            if frozen:  # an open incident: the range of the reference, not one that took in the fault
                lo = fstate[F_FROZEN_LO]
                hi = fstate[F_FROZEN_HI]
            else:
                for i in range(1, m + 1):
                    v = ring[(n - i) % size]
                    lo = min(lo, v)
                    hi = max(hi, v)
            s = max(step_size, 1e-3 * (hi - lo), 1e-9 * (abs(hi) + abs(lo)) + 1e-12)
            if x > hi:
                bits_out[j, RANGE] = min((x - hi) / (s * LN2), MAX_BITS)
                pred_out[j, RANGE] = hi
            elif x < lo:
                bits_out[j, RANGE] = min((lo - x) / (s * LN2), MAX_BITS)
                pred_out[j, RANGE] = lo
            else:
                bits_out[j, RANGE] = 0.0
                pred_out[j, RANGE] = x
        # STEP / DAILY / WEEKLY / MEAN: Laplace code of the prediction error
        for k in range(STEP, N_MODELS):
            if k == STEP:
                if n < 1:
                    continue
                pred = prev
            elif k == MEAN:
                if n < 1:
                    continue
                # an open incident: the mean of the reference, not one that is following the fault
                pred = fstate[F_FROZEN_MEAN] if frozen else fstate[F_MEAN]
            else:
                lag = lag_daily if k == DAILY else lag_weekly
                if lag <= 0 or lag + 1 >= size or n < lag + 1:
                    continue
                pred = ring[(n - lag) % size] + (lvl_prev - level_ring[(n - 1 - lag) % size])
            err = abs(x - pred)
            cnt = istate[I_COUNT + k]
            s = fstate[F_SCALE + k]
            q = fstate[F_RATE + k]
            mag = fstate[F_MAG + k]
            floor = 1e-9 * abs(pred) + 1e-12
            hit = err > floor
            # the rate is a plain mean until it has 1 / scale_alpha errors (a sparse stream's first few
            # values, often all 0, say little about it), an exponential average after
            q_next = q + max(scale_alpha, 1.0 / (cnt + 1)) * ((1.0 if hit else 0.0) - q)
            if cnt >= warm:
                bits_out[j, k] = min((err / max(s, floor) - 1.0) / LN2, MAX_BITS)
                if frozen and k == STEP and fstate[F_FROZEN_LO] <= x <= fstate[F_FROZEN_HI]:
                    # an open incident: a step back into the reference range is a return to normal
                    bits_out[j, k] = min(bits_out[j, k], 0.0)
                pred_out[j, k] = pred
                if hit:  # a first non-zero error after an all-zero warm-up sets the size unclipped
                    mag += scale_alpha * (min(err, clip * mag) - mag) if mag > 0.0 else err
            elif hit:
                hits = math.floor(q * cnt + 0.5)  # non-zero errors so far (q is their plain mean here)
                mag += (err - mag) / (hits + 1)
            if frozen:  # the scales stay those of the reference
                continue
            q = q_next
            fstate[F_RATE + k] = q
            fstate[F_MAG + k] = mag
            fstate[F_SCALE + k] = q * mag
            istate[I_COUNT + k] = cnt + 1
        # --- learn the value (the value ring and the means learn even while frozen: the step and seasonal
        # predictions need the values, and the mean is current again when an incident closes)
        pos = n % size
        ring[pos] = x
        level_ring[pos] = x if n == 0 else lvl_prev + level_alpha * (x - lvl_prev)
        fstate[F_MEAN] += max(mean_alpha, 1.0 / (n + 1)) * (x - fstate[F_MEAN])
        istate[I_SEEN] = n + 1


@kernel
def freeze_range(ring, istate, range_n, skip, mean_alpha, fstate):
    """Keep the range of the ``range_n`` values before the last ``skip`` (the window that opened an
    incident) as the frozen reference, and the mean model's mean over those values (the same estimator
    run over them, oldest first) as its frozen mean."""
    n = istate[I_SEEN] - min(skip, istate[I_SEEN])
    m = min(n, range_n, ring.shape[0] - skip)
    size = ring.shape[0]
    lo = np.inf
    hi = -np.inf
    mean = 0.0
    for i in range(m, 0, -1):
        v = ring[(n - i) % size]
        lo = min(lo, v)
        hi = max(hi, v)
        mean += max(mean_alpha, 1.0 / (m - i + 1)) * (v - mean)
    fstate[F_FROZEN_LO] = lo
    fstate[F_FROZEN_HI] = hi
    fstate[F_FROZEN_MEAN] = mean if m > 0 else fstate[F_MEAN]


@kernel
def window_sums(bits, r, spans, hinge, sums):
    """Statistic of each model for the window ending before row ``r`` of ``bits``: the sum of
    ``max(0, bits - hinge)`` over its last ``spans[k]`` rows (no hinge for ``RANGE``, whose bits already
    are an excess over the range); NaN when the model did not score one of them."""
    for k in range(N_MODELS):
        acc = 0.0
        for i in range(r - spans[k], r):
            b = bits[i, k]
            if b != b:
                acc = np.nan
                break
            h = 0.0 if k == RANGE else hinge
            if b > h:
                acc += b - h
        sums[k] = acc
