"""The one severity scale of every detector.

An anomalous window's severity grows with two things: how far its calibrated p-value lies below the
false-alarm target, and its effect size ``z``, the robust z-score ``(s - median) / (1.4826 MAD)`` of the
statistic that triggered, against the stream's own calibration history. Both are needed: a p-value far
below the target on a statistic barely above its usual spread (a very regular stream) is a mild surprise;
a large effect on a noisy stream is only as significant as its p-value says.
"""

from __future__ import annotations

from detectors.base import Severity


def severity(p_value: float, target: float, effect: float, is_anomaly: bool) -> Severity:
    """``none`` unless anomalous; ``critical`` if p <= target/100 and z >= 10; ``high`` if p <= target/10
    and z >= 5; ``medium`` if z >= 3; else ``low``.

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
