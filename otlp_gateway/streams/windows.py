"""What a stream reads of the windows a detector's ``update`` completed, in a compact form.

Every scored window adds to the stream's score series and figures, but only an anomalous one is read whole
(its explanation, its blamed events). ``WindowRows`` keeps one plain tuple per window (``window_row``) and
the anomalous windows whole: a detector process (``detection.detector_processes``) sends it instead of
every ``WindowResult``, whose pickling and unpickling (a slotted dataclass: ``dataclasses.fields`` on every
window) cost the gateway more than the rest of the round trip. In-process scoring goes through the same
form, so both ways give the same outcome.

Imported by the detector processes: the detectors library only, nothing else of the gateway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.base import WindowResult

RATIO_FIGURE = "compression_ratio_conditional"
"""The per-window ratio behind ``driftlock_cbad_compression_ratio``: raw bits of the window over its code
length given the baseline; cbad reports it for every window (``compression_ratio_window`` only for
anomalous ones)."""

WindowRow = tuple[int, int, float, float, bool, bool, float | None]
"""(end offset, end time in unix ns (0: none), p-value, score, anomalous, drift, ``RATIO_FIGURE`` or
``None``) of one window; offsets are the detector's."""


def window_row(w: WindowResult) -> WindowRow:
    ratio = w.figures.get(RATIO_FIGURE)
    return (w.end_offset, getattr(w, "end_time_ns", None) or 0, float(w.p_value), float(w.score),
            bool(w.is_anomaly), bool(w.is_drift), None if ratio is None else float(ratio))


@dataclass(slots=True)
class WindowRows:
    """The windows of one ``update``, in stream order, and the incident updates they caused."""

    rows: list[WindowRow] = field(default_factory=list)
    anomalies: list[WindowResult] = field(default_factory=list)
    """The anomalous windows whole, in stream order (those whose row says anomalous)."""
    incidents: Sequence[Any] = ()

    @classmethod
    def of(cls, windows: Sequence[WindowResult], incidents: Sequence[Any] = ()) -> WindowRows:
        return cls([window_row(w) for w in windows], [w for w in windows if w.is_anomaly], incidents)
