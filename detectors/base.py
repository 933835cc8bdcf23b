"""The detector contract shared by every registered detector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Severity = Literal["none", "low", "medium", "high", "critical"]


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The verdict on one scored window of a stream.

    Offsets count events fed to this detector since it was created (0-based); the window covers
    ``[start_offset, end_offset)``. ``score`` is the calibrated statistic (higher = more anomalous);
    ``p_value`` its calibrated significance against the stream's own recent normal windows.
    """

    start_offset: int
    end_offset: int
    score: float
    p_value: float
    is_anomaly: bool
    severity: Severity
    is_drift: bool = False
    figures: dict[str, float] = field(default_factory=dict)
    """novelty_bits_per_byte, novelty_bits_per_event, ncd, compression_ratio_baseline,
    compression_ratio_window, entropy_baseline, entropy_window, delta_bits, ... (documented per detector)."""
    explanation: dict[str, Any] = field(default_factory=dict)
    """{"sentence": str, "top_events": [{"offset": int, "excess_bits": float, "tokens": [...]}], ...}"""


class Detector(Protocol):
    """A streaming detector for one stream. Feed events in order; get the windows they complete.

    Contract (checked by the conformance suite for every registered detector):
    deterministic for the same input and seed; chunking-invariant (any split of the same events into
    ``update`` calls gives the same results); ``snapshot``/``restore`` mid-stream continues exactly
    as the uninterrupted detector; inputs are never mutated; every figure is finite.
    """

    kind: str

    @property
    def config_hash(self) -> str: ...

    @property
    def events_seen(self) -> int: ...

    @property
    def warmed_up(self) -> bool: ...

    def update(self, events: Any) -> list[WindowResult]: ...

    def snapshot(self) -> bytes: ...
