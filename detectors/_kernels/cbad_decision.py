"""The cbad decision on one summarised window: p-value, anomaly, calibration update, drift.

Each statistic gets its calibrated p-value (:mod:`detectors._kernels.cbad_calibration`); the two are
combined by Bonferroni, ``min(1, 2 min(p0, p1))``, except for one-event windows where both statistics are
the same number. Anomaly means warmed up (a full baseline and ``min_calibration`` windows in the ring) and
``p <= target``. A normal window enters the ring once the baseline is full; an anomalous one enters it
clipped (``add_clipped``), and anomalous windows in a row long enough to cover ``drift_windows`` hops
are a drift (the caller adopts the new normal). While ``state[FROZEN]`` (an open incident) no window
enters the ring and no run of anomalies counts towards a drift.
"""

from __future__ import annotations

from typing import NamedTuple

from detectors._kernels import kernel
from detectors._kernels.cbad_calibration import add, add_clipped, pvalue, robust_z
from detectors._kernels.tail import TailRule

# ``state`` entries the decision reads and writes (the hop kernel owns the layout; see cbad_hops).
BASELINE_LEN = 4
CAL_COUNT = 5
CAL_POSITION = 6
ANOMALY_RUN = 7
FROZEN = 13  # 1 while an incident is open: judge against the frozen reference, learn nothing

ANOMALY = 1
DRIFT = 2


class DecisionConfig(NamedTuple):
    """The profile's numbers the decision needs."""

    baseline: int
    """B: events in a full baseline."""
    min_calibration: int
    """Windows in the ring before any window can be anomalous."""
    drift_windows: int
    """Anomalous windows in a row that make a drift."""
    target: float
    """The false-alarm target: anomalous when the combined p-value is at or below it."""
    clip_alpha: float
    """Tail p-value at which an anomalous window's statistics enter the ring."""
    min_scale: float
    """Floor of the robust scale of the effect size (bits per byte)."""
    single: bool
    """One event per window: statistic 1 equals statistic 0 and is not combined."""
    tail: TailRule
    """The tail fit's rule."""


class Decision(NamedTuple):
    p_value: float
    flags: int
    """``ANOMALY`` and ``DRIFT`` bits."""
    effect: float
    """Largest robust z-score of the statistics (anomalous windows only, else 0)."""


@kernel
def decide(ring, stats, greater, config, state):
    """Decide on a window with statistics ``stats`` (``greater``: their conformal counts in the ring).

    Updates the ring and ``state`` (calibration count and position, the run of anomalous windows).
    """
    count = state[CAL_COUNT]
    full = state[BASELINE_LEN] >= config.baseline
    p = 1.0
    if full and count >= config.min_calibration:
        p = pvalue(ring, count, 0, stats[0], greater[0], config.tail)
        if not config.single:
            p1 = pvalue(ring, count, 1, stats[1], greater[1], config.tail)
            p = min(1.0, 2 * (p1 if p1 < p else p))
        if p <= config.target:
            effect = 0.0
            for i in range(stats.size):
                z = robust_z(ring.values[i], count, stats[i], config.min_scale)
                if z > effect:
                    effect = z
            if state[FROZEN]:
                return Decision(p, ANOMALY, effect)
            state[CAL_COUNT], state[CAL_POSITION] = add_clipped(ring, count, state[CAL_POSITION], stats,
                                                                config.clip_alpha, config.tail)
            state[ANOMALY_RUN] += 1
            flags = ANOMALY
            if state[ANOMALY_RUN] >= config.drift_windows:
                flags |= DRIFT
            return Decision(p, flags, effect)
    state[ANOMALY_RUN] = 0
    if full and not state[FROZEN]:
        state[CAL_COUNT], state[CAL_POSITION] = add(ring, count, state[CAL_POSITION], stats)
    return Decision(p, 0, 0.0)
