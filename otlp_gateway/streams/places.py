"""Where a stream's detector lives: in the gateway's process (``LOCAL``), or in a detector process of the
stream's shard (``otlp_gateway.detection.detector_processes``). A live stream asks its place for detectors
and never needs to know which one it has: the detector is touched on the stream's shard thread either way.
"""

from __future__ import annotations

from typing import Any, Protocol

from detectors import registry


class DetectorLost(RuntimeError):
    """The detector is gone: its snapshot did not restore, or its process died. ``events_seen`` is how
    many events it had taken, so the stream's offsets continue past them (anomaly ids never repeat)."""

    def __init__(self, reason: str, events_seen: int):
        super().__init__(reason)
        self.events_seen = events_seen


class DetectorPlace(Protocol):
    def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        """A fresh detector."""
        ...

    def restore(self, kind: str, kwargs: dict[str, Any], data: bytes | memoryview, *, events_seen: int,
                warmed_up: bool) -> Any:
        """The detector ``data`` (its snapshot) holds. ``events_seen`` and ``warmed_up`` are what the
        stream's snapshot header says of it: a place that restores later reports them until then, and
        raises ``DetectorLost`` on first use when the snapshot does not restore. Raises when it restores
        at once and cannot."""
        ...


class LocalPlace:
    """Detectors in the gateway's own process (the shard threads run their kernels without the GIL)."""

    def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        return registry.create(kind, **kwargs)

    def restore(self, kind: str, kwargs: dict[str, Any], data: bytes | memoryview, *, events_seen: int,
                warmed_up: bool) -> Any:
        return registry.restore(kind, data)


LOCAL = LocalPlace()
