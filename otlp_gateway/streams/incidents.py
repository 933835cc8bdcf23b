"""A live stream's incidents as the gateway sees them, resolved on the stream's shard thread.

The detector reports ``IncidentUpdate``s in its own offsets. Here they become ``IncidentChange``s: stream
offsets (the stream's ``offset_base`` added, so a new detector of the stream, whose incident numbers start
again at 0, never reuses an id), the incident's deterministic id, and the blamed events looked up in the
stream's ring (their trace/span ids and times) — on the shard thread, the only one that touches the ring.

``IncidentBook`` remembers the ids of a stream's recent incidents, so a window that belongs to incident
``seq`` (``WindowResult.incident_seq``) names its incident, also after a restart (it is part of the
stream's snapshot).

Operator actions reach the detector through one protocol, ``IncidentDetector``: the engine's
``accept(seq)``, ``resolve(seq)`` and ``mark_false_positive(seq)``, each returning the ``IncidentUpdate``
it causes (``ValueError`` for an unknown or closed incident).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from detectors.base import WindowResult
from detectors.incident_types import IncidentUpdate
from otlp_gateway.store.base import IncidentAction, incident_id
from otlp_gateway.streams.ring import RingItem
from otlp_gateway.streams.routing import StreamKey

KEPT_INCIDENTS = 32
"""Incident ids remembered per stream (windows name their incident by number)."""
DETECTOR_ACTIONS: dict[str, str] = {"resolve": "resolve", "accept": "accept",
                                    "false_positive": "mark_false_positive"}
"""Closing operator action -> the detector's method."""


@runtime_checkable
class IncidentDetector(Protocol):
    """What a detector with an incident tracker offers operators (deterministic, snapshotted)."""

    def accept(self, seq: int) -> IncidentUpdate: ...

    def resolve(self, seq: int) -> IncidentUpdate: ...

    def mark_false_positive(self, seq: int) -> IncidentUpdate: ...


class IncidentActionsUnsupported(RuntimeError):
    """The stream's detector has no incident tracker (the action is recorded and taken when it has)."""


@dataclass(frozen=True, slots=True)
class IncidentChange:
    """One incident update of a live stream, in stream terms (see the module docstring)."""

    key: StreamKey
    profile: str
    incident_id: str
    update: IncidentUpdate
    opened_offset: int
    """Stream offset of the first event of the opening window."""
    last_anomalous_offset: int
    evidence: tuple[RingItem, ...]
    """The blamed events still in the ring (a bounded sample)."""
    actor: str | None = None
    """The operator whose action caused it; None when the detector decided."""


class IncidentBook:
    """``seq -> incident id`` of a stream's recent incidents, and which one is open."""

    def __init__(self) -> None:
        self._ids: OrderedDict[int, str] = OrderedDict()
        self.open_id: str | None = None

    def record(self, stream_id: str, offset_base: int, update: IncidentUpdate) -> str:
        known = self._ids.get(update.seq)
        if known is None:
            known = incident_id(stream_id, update.seq, offset_base + update.opened_offset)
            self._ids[update.seq] = known
            while len(self._ids) > KEPT_INCIDENTS:
                self._ids.popitem(last=False)
        if update.status == "open":
            self.open_id = known
        elif self.open_id == known:
            self.open_id = None
        return known

    def id_of(self, seq: int | None) -> str | None:
        return None if seq is None else self._ids.get(seq)

    def dump(self) -> dict[str, Any]:
        return {"ids": [[seq, iid] for seq, iid in self._ids.items()], "open": self.open_id}

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> IncidentBook:
        book = cls()
        if data:
            for seq, iid in data.get("ids", ()):
                book._ids[int(seq)] = str(iid)
            book.open_id = data.get("open")
        return book


def split_update(output: Any) -> tuple[Sequence[WindowResult], Sequence[IncidentUpdate]]:
    """A detector's ``update`` result as (window results, incident updates): the detectors'
    ``UpdateResult`` (a list of windows with ``incidents``), an object with ``windows`` and ``incidents``,
    or a plain list of windows (a detector without incidents)."""
    incidents = tuple(getattr(output, "incidents", ()))
    if isinstance(output, list | tuple):
        return output, incidents
    return output.windows, incidents


def change_of(key: StreamKey, profile: str, offset_base: int, book: IncidentBook, update: IncidentUpdate,
              blamed: Iterable[RingItem | None], actor: str | None = None) -> IncidentChange:
    iid = book.record(key.stream_id, offset_base, update)
    return IncidentChange(key, profile, iid, update, offset_base + update.opened_offset,
                          offset_base + update.last_anomalous_offset,
                          tuple(item for item in blamed if item is not None), actor)


def require_tracker(detector: Any) -> IncidentDetector:
    """``detector`` if it tracks incidents, else ``IncidentActionsUnsupported``."""
    if not isinstance(detector, IncidentDetector):
        raise IncidentActionsUnsupported(f"the {getattr(detector, 'kind', '?')} detector tracks no incidents")
    return detector


def detector_action(detector: Any, action: IncidentAction, seq: int) -> IncidentUpdate:
    """Have the detector take a closing action (raises ``IncidentActionsUnsupported``, ``ValueError``)."""
    require_tracker(detector)
    method = getattr(detector, DETECTOR_ACTIONS[action])
    update = method(seq)
    if not isinstance(update, IncidentUpdate):
        raise TypeError(f"{DETECTOR_ACTIONS[action]}({seq}) returned {type(update).__name__}, "
                        "not an IncidentUpdate")
    return update
