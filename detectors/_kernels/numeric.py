"""Kernels of the numeric (metric) detector: predictive code lengths per point, calibrated windows.

Two passes, both sequential over the stream and carrying all state in caller-owned arrays (so a
snapshot is just those arrays, and any split of the input into chunks gives the same result):

``point_bits`` predicts every value with ``N_MODELS`` simple predictors and returns, per point and
model, the excess code length in bits of the prediction error under an adaptive Laplace code
(``(|err| / scale - 1) / ln 2``: 0 bits for a typical error, +1.44 bits per extra scale unit):

* ``RANGE``  - the value against the range of the last ``range_n`` values (0 bits inside it);
* ``STEP``   - the previous value (random walk): spikes, jumps, sudden noise;
* ``DAILY``  - the value one day earlier, shifted by the change of a slow level since then;
* ``WEEKLY`` - the same one week earlier. Seasonal models need the lag in samples (0 = off).

Scales are exponentially weighted mean absolute errors, kept as the product of the rate of non-zero
errors and their mean size; only the size is clipped (at ``clip`` times itself) so a spike cannot
inflate it (the model protects itself from anomalies). Clipping the whole mean instead collapses it
to 0 on sparse streams (fewer than 1 / ``clip`` non-zero errors, e.g. a counter's deltas: mostly 0,
sometimes 1), where every non-zero error then costs ``MAX_BITS``. On continuous data every error is
non-zero and the two are the same estimator.

``window_scores`` sums, per window and model, the hinge ``max(0, bits - hinge)`` over the last
``spans[k]`` points of the window (no hinge for ``RANGE``, whose bits are already an excess over the
range), turns each sum into a p-value against that model's history of normal window sums (conformal
rank below the tail threshold, generalized-Pareto tail above it), combines the models with a weighted
Bonferroni, and keeps clear anomalies out of the history unless they persist (drift).
"""

from __future__ import annotations

import math

import numpy as np

from detectors._kernels import kernel

N_MODELS = 4
RANGE, STEP, DAILY, WEEKLY = 0, 1, 2, 3
MODEL_NAMES = ("range", "step", "daily", "weekly")

# istate layout (int64)
I_SEEN = 0          # points seen
I_COUNT = 1         # .. 1 + N_MODELS: errors observed per model (scale warm-up)
I_CAL_N = 5         # .. 5 + N_MODELS: calibration history size per model
I_CAL_POS = 9       # .. 9 + N_MODELS: ring position per model
I_RUN = 13          # consecutive anomalous windows
I_ACCEPTED = 14     # 1 while a drift is being accepted as the new normal
I_LAST_ALARM = 15   # end offset of the last anomalous window (-1 = none)
I_SIZE = 16

# fstate layout (float64)
F_SCALE = 0         # .. 0 + N_MODELS: error scale per model
F_LEVEL = 4         # slow level (EWMA) of the values
F_RATE = 5          # .. 5 + N_MODELS: share of non-zero errors per model
F_MAG = 9           # .. 9 + N_MODELS: mean size of the non-zero errors (scale = rate * size)
F_SIZE = 13

# window output layout
O_END, O_FLAGS, O_BEST = 0, 1, 2
OI_SIZE = 3
FLAG_ANOMALY, FLAG_DRIFT, FLAG_INCIDENT, FLAG_WARM = 1, 2, 4, 8
OF_P = 0            # combined p-value
OF_PK = 1           # .. 1 + N_MODELS: p-value per model (nan = inactive)
OF_SK = 5           # .. 5 + N_MODELS: window sum of hinge bits per model (nan = inactive)
OF_SIZE = 9

MAX_BITS = 1000.0
TAIL_FIT_MIN = 200  # history size below which the tail keeps the 2^-bits prior
LN2 = math.log(2.0)


@kernel
def point_bits(values, lag_daily, lag_weekly, ring, level_ring, fstate, istate, range_n, scale_alpha,
               clip, warm, level_alpha, bits_out, pred_out):
    """Excess bits and predictions of each model for each value; updates ring/state in place."""
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
        if m >= 8 and istate[I_COUNT + STEP] >= warm:
            lo = np.inf
            hi = -np.inf
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
        # STEP / DAILY / WEEKLY: Laplace code of the prediction error
        for k in range(STEP, N_MODELS):
            if k == STEP:
                if n < 1:
                    continue
                pred = prev
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
                pred_out[j, k] = pred
                if hit:  # a first non-zero error after an all-zero warm-up sets the size unclipped
                    mag += scale_alpha * (min(err, clip * mag) - mag) if mag > 0.0 else err
            elif hit:
                hits = math.floor(q * cnt + 0.5)  # non-zero errors so far (q is their plain mean here)
                mag += (err - mag) / (hits + 1)
            q = q_next
            fstate[F_RATE + k] = q
            fstate[F_MAG + k] = mag
            fstate[F_SCALE + k] = q * mag
            istate[I_COUNT + k] = cnt + 1
        # --- learn the value
        pos = n % size
        ring[pos] = x
        level_ring[pos] = x if n == 0 else lvl_prev + level_alpha * (x - lvl_prev)
        istate[I_SEEN] = n + 1


@kernel
def _tail_p(sorted_k, n, s, tail_frac, tail_min, sigma_min, xi_min):
    """p-value of score ``s`` against the ``n`` sorted history scores (conformal, GPD tail)."""
    # conformal rank: (1 + #{h >= s}) / (n + 1)
    lo = np.searchsorted(sorted_k[:n], s)
    p_rank = (1.0 + (n - lo)) / (n + 1.0)
    kt = max(tail_min, int(tail_frac * n))
    if kt >= n:
        return p_rank
    u = sorted_k[n - 1 - kt]
    if s <= u:
        return p_rank
    # the tail is what lies strictly above u: when the kt largest include ties at u (a point mass, e.g.
    # a history that is mostly zeros) only the kx values above it exceed u; counting the ties as
    # exceedances overstates P(S > u) and makes rare events look up to kt / kx times less rare
    first = n - kt
    while first < n and sorted_k[first] <= u:
        first += 1
    kx = n - first
    # peaks over threshold: fit a generalized Pareto to the kx excesses (method of moments),
    # shape clamped to [xi_min, 0.5]; a scale at or below sigma_min is not resolved (below)
    mean = 0.0
    for i in range(first, n):
        mean += sorted_k[i] - u
    mean /= max(kx, 1)
    var = 0.0
    for i in range(first, n):
        d = sorted_k[i] - u - mean
        var += d * d
    var /= max(kx - 1, 1)
    xi = 0.0
    if var > 0.0 and mean > 0.0:
        xi = 0.5 * (1.0 - mean * mean / var)
    xi = min(max(xi, xi_min), 0.5)
    sigma = mean * (1.0 - xi)
    # a short history, too few values above u, or a tail no wider than its resolution (near-ties: a
    # count stream's "one step past the range", smeared by a drifting scale, fitted a scale of a few
    # hundredths of a bit and made the next step look 1e-7 rare): nothing to extrapolate from; fall back
    # to the code-length prior, each bit beyond the threshold at least halves the probability
    if kx < tail_min or n < TAIL_FIT_MIN or sigma <= sigma_min:
        sigma = max(sigma, 1.0 / LN2)
    y = s - u
    if abs(xi) < 1e-6:
        sf = math.exp(-y / sigma)
    else:
        z = 1.0 + xi * y / sigma
        sf = z ** (-1.0 / xi) if z > 0.0 else 0.0  # beyond the end point of a light (xi < 0) tail
    p = (kx + 1.0) / (n + 1.0) * sf
    return max(p, 1e-300)


@kernel
def _calib_push(ring_k, sorted_k, n, pos, value):
    """Insert ``value`` into the history (dropping the oldest when full); returns the new size."""
    cap = ring_k.shape[0]
    if n == cap:
        lo = np.searchsorted(sorted_k[:n], ring_k[pos])
        for i in range(lo, n - 1):
            sorted_k[i] = sorted_k[i + 1]
        n -= 1
    ring_k[pos] = value
    lo = np.searchsorted(sorted_k[:n], value, side="right")
    for i in range(n, lo, -1):
        sorted_k[i] = sorted_k[i - 1]
    sorted_k[lo] = value
    return n + 1


@kernel
def window_scores(bits, first_offset, window, hop, hinge, weights, spans, cal_ring, cal_sorted, istate,
                  min_calib, target, exclude_factor, drift_windows, holdoff, tail_frac, tail_min, sigma_min,
                  xi_min, out_i, out_f):
    """Score every window that ends inside ``bits`` (rows = points from ``first_offset``).

    Model ``k`` sums only the last ``spans[k]`` (<= window) points of each window. Only windows ending
    after the first ``window - 1`` rows are new (earlier rows are carried context). Returns the number
    of windows written to ``out_i``/``out_f``.
    """
    n_rows = bits.shape[0]
    n_out = 0
    sums = np.empty(N_MODELS)
    pks = np.empty(N_MODELS)
    for r in range(window, n_rows + 1):
        end = first_offset + r
        if end < window or (end - window) % hop != 0:
            continue
        if r < window:
            continue
        # window sums of hinge bits per model (nan when a model is inactive in the window)
        for k in range(N_MODELS):
            acc = 0.0
            for i in range(r - spans[k], r):
                b = bits[i, k]
                if b != b:
                    acc = np.nan
                    break
                h = 0.0 if k == RANGE else hinge  # range bits are already an excess over the range
                if b > h:
                    acc += b - h
            sums[k] = acc
        # weighted Bonferroni over the active models: p = min_k p_k / w_k, weights renormalised
        active = 0
        w_sum = 0.0
        for k in range(N_MODELS):
            pks[k] = np.nan
            if sums[k] == sums[k] and istate[I_CAL_N + k] >= min_calib:
                pks[k] = _tail_p(cal_sorted[k], istate[I_CAL_N + k], sums[k], tail_frac, tail_min, sigma_min,
                                 xi_min)
                active += 1
                w_sum += weights[k]
        best = -1
        p = 1.0
        for k in range(N_MODELS):
            if pks[k] == pks[k]:
                pw = pks[k] * w_sum / weights[k]
                if best < 0 or pw < p:
                    p = pw
                    best = k
        p = min(1.0, p)
        flags = 0
        if active > 0:
            flags |= FLAG_WARM
        raw_anomaly = active > 0 and p <= target
        learn = True
        if raw_anomaly:
            if istate[I_ACCEPTED] == 1:
                pass  # drift accepted: learn it as the new normal, do not flag it
            else:
                flags |= FLAG_ANOMALY
                # only clear anomalies stay out of the history: dropping every alarm would cut the null
                # distribution at the threshold and drag the threshold down (a feedback loop)
                learn = p > target * exclude_factor
                istate[I_RUN] += 1
                if istate[I_RUN] >= drift_windows:
                    flags |= FLAG_DRIFT
                    istate[I_ACCEPTED] = 1
                last = istate[I_LAST_ALARM]
                if last < 0 or end - last > holdoff:
                    flags |= FLAG_INCIDENT
                istate[I_LAST_ALARM] = end
        else:
            istate[I_RUN] = 0
            istate[I_ACCEPTED] = 0
        if learn:
            for k in range(N_MODELS):
                if sums[k] == sums[k]:
                    cap = cal_ring.shape[1]
                    pos = istate[I_CAL_POS + k]
                    istate[I_CAL_N + k] = _calib_push(cal_ring[k], cal_sorted[k], istate[I_CAL_N + k],
                                                      pos, sums[k])
                    istate[I_CAL_POS + k] = (pos + 1) % cap
        out_i[n_out, O_END] = end
        out_i[n_out, O_FLAGS] = flags
        out_i[n_out, O_BEST] = best
        out_f[n_out, OF_P] = p
        for k in range(N_MODELS):
            out_f[n_out, OF_PK + k] = pks[k]
            out_f[n_out, OF_SK + k] = sums[k]
        n_out += 1
    return n_out
