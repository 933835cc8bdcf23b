"""Driftlock detectors: streaming, deterministic, explainable anomaly detection (numpy + numba only).

Create detectors through the registry; feed each stream's events in order::

    from detectors import registry
    det = registry.create("cbad", profile="balanced", seed=42)
    results = det.update(events)        # list[WindowResult], one per completed hop

Canonical events for logs and spans come from :mod:`detectors.canonical`.
"""

from detectors.base import Detector, WindowResult

__all__ = ["Detector", "WindowResult"]
