"""Driftlock detectors: streaming, deterministic, explainable anomaly detection (numpy + numba only).

Create detectors through the registry; feed each stream's events in order, as an :class:`EventBatch`::

    from detectors import EventBatch, registry
    det = registry.create("cbad", profile="balanced", seed=42)
    results = det.update(EventBatch(events))   # list[WindowResult], one per completed hop

Canonical events for logs and spans come from :mod:`detectors.canonical`.
"""

from detectors.base import Detector, EventBatch, WindowResult

__all__ = ["Detector", "EventBatch", "WindowResult"]
