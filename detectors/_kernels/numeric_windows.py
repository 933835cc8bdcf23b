"""The numeric detector's windows: statistics, calibrated p-values, the decision.

Per window (every ``hop`` values once ``window`` values are in): each model's statistic
(:func:`detectors._kernels.numeric.window_sums`) gets its p-value against that model's history
(:mod:`detectors._kernels.numeric_calibration`); the active models are combined by a weighted Bonferroni,
``p = min_k p_k * sum(w) / w_k``; the window is anomalous when ``p <= target``. Clear anomalies
(``p <= exclude_factor * target``) stay out of the histories, borderline ones enter them; anomalous
windows for ``drift_windows`` windows in a row are a drift, after which the new regime is learned as normal
until a window falls back under the threshold. A statistic enters its model's history ``delays[k]``
windows after its window (once no later window shares its values; 0: at once). Anomalous windows closer
than ``holdoff`` values form one incident. While ``istate[I_FROZEN]`` (an incident is open) no window is
learnt and none counts towards a drift.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from detectors._kernels import kernel
from detectors._kernels.numeric import (
    I_ACCEPTED,
    I_CAL_N,
    I_CAL_POS,
    I_FROZEN,
    I_LAST_ALARM,
    I_RUN,
    N_MODELS,
    window_sums,
)
from detectors._kernels.numeric_calibration import push, pvalue, robust_z
from detectors._kernels.tail import TailRule

# ``out_i`` columns
O_END, O_FLAGS, O_BEST = 0, 1, 2
OI_SIZE = 3
FLAG_ANOMALY, FLAG_DRIFT, FLAG_INCIDENT, FLAG_WARM = 1, 2, 4, 8
# ``out_f`` columns
OF_P = 0  # combined p-value
OF_PK = 1  # .. 1 + N_MODELS: p-value per model (nan = inactive)
OF_SK = OF_PK + N_MODELS  # .. + N_MODELS: window statistic per model (nan = inactive)
OF_EFFECT = OF_SK + N_MODELS  # robust z-score of the flagging model's statistic (anomalous windows, else 0)
OF_SIZE = OF_EFFECT + 1


class WindowConfig(NamedTuple):
    window: int
    """Values per window."""
    hop: int
    """A window ends every ``hop`` values."""
    hinge: float
    """Bits a predictor's error may cost for free."""
    weights: np.ndarray
    """float64 (N_MODELS,): weighted Bonferroni weights."""
    spans: np.ndarray
    """int64 (N_MODELS,): the values of the window each model sums (the last ``spans[k]``)."""
    min_calibration: int
    """Statistics a model's history needs before the model takes part."""
    target: float
    """False-alarm target per window."""
    exclude_factor: float
    """Anomalies with ``p <= exclude_factor * target`` stay out of the histories."""
    drift_windows: int
    """Anomalous windows in a row that make a drift."""
    holdoff: int
    """Anomalous windows closer than this many values belong to one incident."""
    effect_scale: float
    """Floor of the robust scale of the effect size, in bits."""
    tail: TailRule
    """The tail fit's rule."""
    delays: np.ndarray
    """int64 (N_MODELS,): windows a model's statistic waits before it enters the history (see below)."""


@kernel
def window_scores(bits, first_offset, config, histories, istate, out_i, out_f):
    """Score every window that ends inside ``bits``; returns how many were written to ``out_i``/``out_f``.

    Parameters
    ----------
    bits : float64 (rows, N_MODELS)
        Excess bits per value and model; row ``r`` is value ``first_offset + r``. The first ``window - 1``
        rows are context carried from the previous call (windows ending there were scored then).
    first_offset : int
        The offset (in values scored) of row 0.
    config : WindowConfig
    histories : numeric_calibration.Histories
        Updated in place, with the ``I_CAL_*`` entries of ``istate``.
    istate : int64 (I_SIZE,)
        Calibration sizes and positions, the anomaly run, drift acceptance and the last alarm.
    out_i : int64 (max windows, OI_SIZE)
        End offset, ``FLAG_*`` bits and the flagging model (-1: none) per window.
    out_f : float64 (max windows, OF_SIZE)
        Combined and per-model p-values, per-model statistics, effect size per window.
    """
    window, hop, target = config.window, config.hop, config.target
    capacity = histories.ring.shape[1]
    n_out = 0
    sums = np.empty(N_MODELS)
    pks = np.empty(N_MODELS)
    scratch = np.empty(capacity)
    for r in range(window, bits.shape[0] + 1):
        end = first_offset + r
        if (end - window) % hop != 0:
            continue
        window_sums(bits, r, config.spans, config.hinge, sums)
        # weighted Bonferroni over the active models: p = min_k p_k / w_k, weights renormalised
        active = 0
        w_sum = 0.0
        for k in range(N_MODELS):
            pks[k] = np.nan
            if sums[k] == sums[k] and istate[I_CAL_N + k] >= config.min_calibration:
                pks[k] = pvalue(histories.ascending[k], istate[I_CAL_N + k], sums[k], config.tail, scratch)
                active += 1
                w_sum += config.weights[k]
        best = -1
        p = 1.0
        for k in range(N_MODELS):
            if pks[k] == pks[k]:
                pw = pks[k] * w_sum / config.weights[k]
                if best < 0 or pw < p:
                    p = pw
                    best = k
        p = min(1.0, p)
        flags = 0
        if active > 0:
            flags |= FLAG_WARM
        effect = 0.0
        learn = True
        frozen = istate[I_FROZEN] != 0
        if active > 0 and p <= target and frozen:
            # an open incident: flagged against the frozen reference; nothing learnt, no drift
            flags |= FLAG_ANOMALY
            effect = robust_z(histories.ascending[best], istate[I_CAL_N + best], sums[best],
                              config.effect_scale, scratch)
            learn = False
        elif frozen:
            learn = False
        elif active > 0 and p <= target:
            if istate[I_ACCEPTED] == 1:
                pass  # drift accepted: learn it as the new normal, do not flag it
            else:
                flags |= FLAG_ANOMALY
                effect = robust_z(histories.ascending[best], istate[I_CAL_N + best], sums[best],
                                  config.effect_scale, scratch)
                # only clear anomalies stay out of the history: dropping every alarm would cut the null
                # distribution at the threshold and drag the threshold down (a feedback loop)
                learn = p > target * config.exclude_factor
                istate[I_RUN] += 1
                if istate[I_RUN] >= config.drift_windows:
                    flags |= FLAG_DRIFT
                    istate[I_ACCEPTED] = 1
                last = istate[I_LAST_ALARM]
                if last < 0 or end - last > config.holdoff:
                    flags |= FLAG_INCIDENT
                istate[I_LAST_ALARM] = end
        else:
            istate[I_RUN] = 0
            istate[I_ACCEPTED] = 0
        # A statistic enters its model's history only once no later window shares its values (``delays``):
        # the windows overlapping it are judged without it. Else the first, borderline window of a lasting
        # change teaches the history that change before the next windows, which hold more of it, are judged.
        index = (end - window) // hop
        slots = histories.pending.shape[1]
        for k in range(N_MODELS):
            value = sums[k] if learn and sums[k] == sums[k] else np.nan
            if config.delays[k] > 0:
                slot = index % slots
                due = histories.pending[k, (index - config.delays[k]) % slots]
                histories.pending[k, slot] = value
                value = due
            if value == value:
                position = istate[I_CAL_POS + k]
                istate[I_CAL_N + k] = push(histories.ring[k], histories.ascending[k], istate[I_CAL_N + k],
                                           position, value)
                istate[I_CAL_POS + k] = (position + 1) % capacity
        out_i[n_out, O_END] = end
        out_i[n_out, O_FLAGS] = flags
        out_i[n_out, O_BEST] = best
        out_f[n_out, OF_P] = p
        for k in range(N_MODELS):
            out_f[n_out, OF_PK + k] = pks[k]
            out_f[n_out, OF_SK + k] = sums[k]
        out_f[n_out, OF_EFFECT] = effect
        n_out += 1
    return n_out
