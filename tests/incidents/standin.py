"""A minimal incident tracker over a real detector's windows, standing in for the engine's (detectors/,
built on the incident interface once the detectors rework lands) so the gateway's side of incidents can be
tested end to end now. Not a model of the engine's statistics: an anomalous window opens an incident (or
extends the open one), ``resolve_after`` normal windows in a row close it. It speaks the interface exactly:
``update`` returns ``windows`` (with ``incident_seq``) and ``incidents`` (``IncidentUpdate``s), and the
operator actions ``accept``/``resolve``/``mark_false_positive`` return the update they cause.

Event times: the test streams send one event per millisecond from ``t0``, so offset ``i`` is at
``t0 + i ms`` (cbad itself ignores times)."""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import dataclass
from typing import Any

from detectors import registry
from detectors.base import WindowResult
from detectors.incident_types import FieldChange, IncidentUpdate

MAGIC = b"TRKR"


@dataclass(frozen=True, slots=True)
class TrackedWindow(WindowResult):
    incident_seq: int | None = None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    windows: list[WindowResult]
    incidents: list[IncidentUpdate]


class WindowTracker:
    def __init__(self, inner: Any, *, t0: int, resolve_after: int = 3):
        self.inner = inner
        self.t0 = t0
        self.resolve_after = resolve_after
        self.next_seq = 0
        self.open: dict[str, Any] | None = None
        self.normal_run = 0

    def __getattr__(self, name: str) -> Any:  # kind, config_hash, events_seen, warmed_up...
        return getattr(self.inner, name)

    def _time(self, offset: int) -> int:
        return self.t0 + offset * 1_000_000

    def _update(self, status: str = "open", closed: int | None = None) -> IncidentUpdate:
        o = self.open
        assert o is not None
        return IncidentUpdate(
            seq=o["seq"], status=status, opened_offset=o["opened"],  # type: ignore[arg-type]
            opened_time_ns=self._time(o["opened"]), last_anomalous_offset=o["last"],
            last_anomalous_time_ns=self._time(o["last"]), closed_time_ns=closed,
            anomalous_windows=o["windows"], min_p_value=o["min_p"], severity=o["severity"],
            fields=(FieldChange("log.template", "new_template", "never seen", o["sentence"][:60],
                                "never seen in the reference events", o["bits"], "an example line"),),
            summary=o["sentence"], evidence_offsets=tuple(o["evidence"][:20]))

    def update(self, events: Any, **kwargs: Any) -> UpdateResult:
        windows: list[WindowResult] = []
        updates: list[IncidentUpdate] = []
        for w in self.inner.update(events, **kwargs):
            if w.is_anomaly:
                self.normal_run = 0
                tops = [int(t["offset"]) for t in w.explanation.get("top_events", ())]
                if self.open is None:
                    self.open = {"seq": self.next_seq, "opened": w.start_offset, "last": w.end_offset - 1,
                                 "windows": 0, "min_p": 1.0, "severity": "low", "evidence": [],
                                 "sentence": str(w.explanation.get("sentence", "")), "bits": 0.0}
                    self.next_seq += 1
                o = self.open
                o["last"], o["windows"] = w.end_offset - 1, o["windows"] + 1
                o["min_p"] = min(o["min_p"], float(w.p_value))
                ranks = ("low", "medium", "high", "critical")
                if w.severity in ranks and ranks.index(w.severity) > ranks.index(o["severity"]):
                    o["severity"] = w.severity
                o["evidence"] += [t for t in tops if t not in o["evidence"]]
                o["bits"] += float(w.figures.get("delta_bits", 0.0))
                updates.append(self._update())
                windows.append(TrackedWindow(**{f.name: getattr(w, f.name) for f in dataclasses.fields(w)},
                                             incident_seq=o["seq"]))
                continue
            windows.append(w)
            if self.open is not None:
                self.normal_run += 1
                if self.normal_run >= self.resolve_after:
                    updates.append(self._update("resolved", self._time(w.end_offset - 1)))
                    self.open = None
        return UpdateResult(windows, updates)

    def _close(self, seq: int, status: str) -> IncidentUpdate:
        if self.open is None or self.open["seq"] != seq:
            raise ValueError(f"no open incident {seq}")
        update = self._update(status, self._time(self.inner.events_seen - 1))
        self.open = None
        return update

    def accept(self, seq: int) -> IncidentUpdate:
        return self._close(seq, "accepted")

    def resolve(self, seq: int) -> IncidentUpdate:
        return self._close(seq, "resolved")

    def mark_false_positive(self, seq: int) -> IncidentUpdate:
        return self._close(seq, "false_positive")

    # --- snapshots: the tracker's state in front of the inner detector's
    def snapshot(self) -> bytes:
        state = {"t0": self.t0, "resolve_after": self.resolve_after, "next_seq": self.next_seq,
                 "open": self.open, "normal_run": self.normal_run, "kind": self.inner.kind}
        head = json.dumps(state).encode()
        return MAGIC + struct.pack(">I", len(head)) + head + self.inner.snapshot()

    @classmethod
    def restore(cls, data: bytes) -> WindowTracker:
        (length,) = struct.unpack(">I", data[4:8])
        state = json.loads(data[8:8 + length])
        tracker = cls(registry.restore(state["kind"], data[8 + length:]), t0=state["t0"],
                      resolve_after=state["resolve_after"])
        tracker.next_seq, tracker.open = state["next_seq"], state["open"]
        tracker.normal_run = state["normal_run"]
        return tracker


def install(monkeypatch: Any, *, t0: int, resolve_after: int = 3) -> None:
    """Every detector the gateway creates or restores is wrapped in a tracker (the engine's place)."""
    create, restore = registry.create, registry.restore

    def create_tracked(kind: str, **config: Any) -> Any:
        if "profile" not in config:  # the JIT warm-up's detectors, not a stream's
            return create(kind, **config)
        return WindowTracker(create(kind, **config), t0=t0, resolve_after=resolve_after)

    def restore_tracked(kind: str, data: bytes) -> Any:
        return WindowTracker.restore(data) if data[:4] == MAGIC else restore(kind, data)

    monkeypatch.setattr(registry, "create", create_tracked)
    monkeypatch.setattr(registry, "restore", restore_tracked)
