"""The detector contract shared by every registered detector: one input type, one result type."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from detectors.incident_types import IncidentUpdate

Severity = Literal["none", "low", "medium", "high", "critical"]


@dataclass(frozen=True, slots=True, eq=False)
class EventBatch:
    """Consecutive events of one stream, in arrival order: what every detector's ``update`` takes.

    ``events`` are canonical byte events (``cbad``; see :mod:`detectors.canonical`) or float values
    (``numeric``); ``times`` optionally gives each event's time in unix seconds (the numeric detector learns
    its sampling period from them; cbad ignores them). Slicing gives the batch of a sub-range.
    """

    events: Sequence[bytes] | Sequence[float] | np.ndarray
    times: Sequence[float] | np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.times is not None and len(self.times) != len(self.events):
            raise ValueError(f"times must have one entry per event ({len(self.times)} times, "
                             f"{len(self.events)} events)")

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, part: slice) -> EventBatch:
        if not isinstance(part, slice):
            raise TypeError("an EventBatch is sliced, not indexed")
        return EventBatch(self.events[part], None if self.times is None else self.times[part])


@dataclass(frozen=True, slots=True)
class WindowResult:
    """The verdict on one scored window of a stream.

    Offsets count events fed to this detector since it was created (0-based); the window covers
    ``[start_offset, end_offset)``. ``score`` is ``-log10(p_value)`` (higher = more anomalous); ``p_value``
    the window's calibrated significance against the stream's own recent normal windows.
    """

    start_offset: int
    end_offset: int
    score: float
    p_value: float
    is_anomaly: bool
    severity: Severity
    is_drift: bool = False
    figures: dict[str, float] = field(default_factory=dict)
    """Named numbers about the window, documented per detector in docs/detectors.md."""
    explanation: dict[str, Any] = field(default_factory=dict)
    """{"sentence": str, "top_events": [{"offset": int, "excess_bits": float, ...}], ...}"""
    incident_seq: int | None = None
    """The open incident this window belongs to (``IncidentUpdate.seq``), if any."""
    start_time_ns: int | None = None
    end_time_ns: int | None = None
    """Event times (unix ns) of the window's first and last events, when the events carried times: the
    window's place in time, however long ago its first event arrived."""


class UpdateResult(list[WindowResult]):
    """What ``update`` returns: the windows the events completed (this list, in stream order) and the
    incident updates they caused (``incidents``: opened, changed, closed; see :mod:`detectors.incidents`).

    It is the list of windows so that code written for a plain list keeps working.
    """

    __slots__ = ("incidents",)

    def __init__(self, windows: Iterable[WindowResult] = (),
                 incidents: Iterable[IncidentUpdate] = ()) -> None:
        super().__init__(windows)
        self.incidents: list[IncidentUpdate] = list(incidents)

    @property
    def windows(self) -> list[WindowResult]:
        return self


class Detector(Protocol):
    """A streaming detector for one stream. Feed events in order; get the windows they complete.

    Contract (checked by ``tests/detectors/test_conformance.py`` for every registered kind):
    deterministic for the same input and seed; chunking-invariant (any split of the same events into
    ``update`` calls gives the same results); ``snapshot``/``restore`` mid-stream continues exactly
    as the uninterrupted detector; inputs are never mutated; every figure is finite; an input it cannot
    score (a non-finite value) is skipped and counted in ``skipped_points``, never raised.
    """

    kind: str

    @property
    def config_hash(self) -> str: ...

    @property
    def events_seen(self) -> int:
        """Events fed so far, skipped ones included (offsets count them)."""
        ...

    @property
    def warmed_up(self) -> bool: ...

    @property
    def skipped_points(self) -> Mapping[str, int]:
        """Events fed but not scored, by reason (``"nan"``, ``"inf"``), since the detector was created."""
        ...

    def update(self, batch: EventBatch) -> UpdateResult: ...

    def accept(self, seq: int) -> IncidentUpdate:
        """Close open incident ``seq`` as accepted (the baseline adopts the new behaviour)."""
        ...

    def resolve(self, seq: int) -> IncidentUpdate: ...

    def mark_false_positive(self, seq: int) -> IncidentUpdate:
        """Close open incident ``seq`` as a false positive (its events join the baseline)."""
        ...

    def snapshot(self) -> bytes: ...


def require_batch(batch: object) -> EventBatch:
    """``batch`` itself, or a TypeError that says what ``update`` takes."""
    if not isinstance(batch, EventBatch):
        raise TypeError(f"update() takes an EventBatch, not {type(batch).__name__}: "
                        "wrap the events as EventBatch(events) or EventBatch(values, times)")
    return batch
