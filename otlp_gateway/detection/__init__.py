"""The detection stage between the receivers and the exporter: ordering, shard dispatch off the event loop,
anomaly records, annotation within a budget.

``DetectionStage`` is imported lazily: loading the configuration (``detection.settings``) must not pull in
the detectors and the wire kernels.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otlp_gateway.detection.stage import DetectionStage

__all__ = ["DetectionStage"]


def __getattr__(name: str) -> Any:
    if name != "DetectionStage":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return import_module("otlp_gateway.detection.stage").DetectionStage
