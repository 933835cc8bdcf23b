"""One live stream: its detector, its recent items, and its snapshot format.

Every method that touches the detector runs on the stream's shard thread (one thread per shard), so a
stream's events are scored strictly in arrival order and the detector needs no lock.

Offsets: a stream keeps ``offset_base`` = events fed to its earlier detectors (a reconfiguration starts a
new detector), so stream offsets (base + detector offset) never repeat and anomaly ids stay unique.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors import EventBatch
from detectors.base import WindowResult
from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.store.base import AnomalyRecord, IncidentAction, ScoreBucket, StreamInfo, StreamState
from otlp_gateway.streams.cumulative import EMPTY_INTERVAL, REFERENCE, RESET, CumulativeDeltas
from otlp_gateway.streams.incidents import (
    IncidentBook,
    IncidentChange,
    change_of,
    detector_action,
    require_tracker,
    split_update,
)
from otlp_gateway.streams.places import LOCAL, DetectorLost, DetectorPlace
from otlp_gateway.streams.ring import EventRing, RingChunk, RingItem
from otlp_gateway.streams.routing import DETECTOR_KIND, StreamKey
from otlp_gateway.streams.scores import ScoreSeries
from otlp_gateway.streams.settings import EMPTY, StreamSettings
from otlp_gateway.streams.windows import WindowRows

log = logging.getLogger(__name__)
_MAGIC = b"DLS1"
SNAPSHOT_VERSION = 2
"""Of the stream's part of a snapshot (``LiveStream.snapshot``); version 1 is still read."""
RING_WINDOWS = 4
"""The ring keeps this many windows' worth of items (at least), enough to map any completed window."""
BLAME_SHARE = 0.25
"""An explained event is blamed (stored as evidence, annotated downstream) only when its excess is at least
this share of the costliest event's: the explanation lists up to three events with *positive* excess, and
once one or two novel events remain in a window the rest are ordinary events with a fraction of a bit of
excess, which must not be marked anomalous downstream."""


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Everything that determines a fresh detector; a snapshot restores only under the same spec."""

    kind: str
    seed: int
    compressor: str
    config: StreamSettings
    """Resolved: every layer applied (``profile`` and ``enabled`` set)."""

    def create_kwargs(self) -> dict[str, Any]:
        c = self.config
        kwargs: dict[str, Any] = {"profile": c.profile_name, "seed": self.seed, "baseline": c.baseline,
                                  "window": c.window, "hop": c.hop,
                                  "false_alarm_target": c.false_alarm_target}
        if self.kind == "cbad":
            kwargs["compressor"] = self.compressor
        return kwargs

    def identity(self) -> dict[str, Any]:
        # the keys and values of snapshots written before: a restart must keep restoring them
        c = self.config
        return {"kind": self.kind, "seed": self.seed, "compressor": self.compressor,
                "profile": c.profile_name, "baseline": c.baseline, "window": c.window, "hop": c.hop,
                "false_alarm_target": c.false_alarm_target}  # not ``enabled``: pausing keeps the detector

    def ring_capacity(self) -> int:
        return RING_WINDOWS * self.config.window_profile().window + 64


@dataclass(slots=True)
class ScoredWindow:
    result: WindowResult
    start_offset: int
    end_offset: int
    """Stream offsets of the window."""
    blamed: list[RingItem]
    start_time_ns: int
    end_time_ns: int
    incident_id: str | None = None
    """The incident the window belongs to (the detector's ``incident_seq``), if one is open."""


@dataclass(slots=True)
class ScoreStep:
    """A batch between ``LiveStream.begin_score`` and ``finish_score``."""

    batch: StreamBatch
    request_seq: int
    outcome: ScoreOutcome
    converted_skips: dict[str, int]
    skipped_before: dict[str, int] = field(default_factory=dict)
    feed: EventBatch | None = None
    """What the detector's ``update`` takes (``None``: nothing to feed it)."""


@dataclass(slots=True)
class ScoreOutcome:
    stream: LiveStream
    scored: int
    windows: list[ScoredWindow] = field(default_factory=list)
    state_changed: bool = False
    ratio_sum: float = 0.0
    ratio_count: int = 0
    """Sum/count of ``windows.RATIO_FIGURE`` over every window scored (not only anomalies)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Points not scored, by reason: NaN or infinite (the detector), or left out by the cumulative-to-delta
    conversion (``streams.cumulative``); forwarded all the same."""
    series_evicted: int = 0
    """Cumulative series the stream forgot to stay within its bound (their next point is a reference)."""
    incidents: list[IncidentChange] = field(default_factory=list)
    """The incident updates of this batch, resolved for the incident sink."""
    scores: list[ScoreBucket] = field(default_factory=list)
    """The score-series buckets this batch touched (their current, cumulative state)."""


class _SkippedPointsLog:
    """At most one log line per signal and reason per ``interval`` seconds, whatever the number of streams
    and requests carrying NaN or infinite points (shard threads share it)."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], float] = {}
        self._pending: dict[tuple[str, str], int] = {}

    def note(self, signal: str, reason: str, count: int, stream_id: str) -> None:
        # a series' first point, a client restart, an interval without values: normal life, not a warning
        level = logging.INFO if reason in (REFERENCE, RESET, EMPTY_INTERVAL) else logging.WARNING
        key = (signal, reason)
        now = time.monotonic()
        with self._lock:
            self._pending[key] = self._pending.get(key, 0) + count
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return
            self._last[key] = now
            total = self._pending.pop(key)
        log.log(level, "detection: %d %s point(s) of %s skipped by the detectors since the last report "
                "(e.g. stream %s); they are forwarded, not scored", total, reason, signal, stream_id)


SKIPPED_POINTS_LOG = _SkippedPointsLog()


class LiveStream:
    def __init__(self, key: StreamKey, spec: DetectorSpec, shard: int, *, detector: Any = None,
                 offset_base: int = 0, ring: EventRing | None = None, place: DetectorPlace = LOCAL):
        self.key = key
        self.spec = spec
        self.shard = shard
        self.place = place
        """Where the stream's detectors are made: this process, or its shard's detector process."""
        if detector is None:
            detector = place.create(spec.kind, spec.create_kwargs())
        self.detector = detector
        self.offset_base = offset_base
        self.ring = ring if ring is not None else EventRing(spec.ring_capacity())
        self.desired_spec: DetectorSpec | None = None
        """Set from the event loop (API change); applied by the next job on the shard thread."""
        self.state: StreamState = "active" if self.detector.warmed_up else "warming"
        self.dirty = False
        """Scored events since the last snapshot."""
        self.api_settings: StreamSettings = EMPTY
        """The layer changed through the API (persisted in ``StreamInfo.settings``)."""
        self.incidents = IncidentBook()
        self.scores = ScoreSeries(key.stream_id)
        self.cumulative = CumulativeDeltas()
        """The previous point of each cumulative metric series (kept across detector changes)."""
        self.last_used = time.monotonic()
        """When events of the stream last arrived (a requested stream is handed over once quiet)."""

    @property
    def events_seen(self) -> int:
        return self.offset_base + self.detector.events_seen

    @property
    def config_hash(self) -> str:
        return self.detector.config_hash

    @property
    def open_incident_id(self) -> str | None:
        return self.incidents.open_id

    # --- shard-thread methods -------------------------------------------------------------------
    def apply_desired_spec(self) -> bool:
        spec = self.desired_spec
        if spec is None:
            return False
        self.desired_spec = None
        if spec.identity() == self.spec.identity():
            self.spec = spec  # only ``enabled`` changed
            return False
        self.spec = spec
        self._new_detector()
        return True

    def _new_detector(self) -> None:
        """A fresh detector for the current spec; the stream's offsets continue past the old one's."""
        self.offset_base = self.events_seen
        self.detector = self.place.create(self.spec.kind, self.spec.create_kwargs())
        self.ring = EventRing(self.spec.ring_capacity())
        self.state = "warming"
        self.dirty = True

    def _detector_ready(self) -> bool:
        """Whether the stream had to start over: its detector, in a detector process, is lost (its snapshot
        did not restore, or the process died). The stream then goes on with a fresh detector, its offsets
        continuing, as after a change of its settings."""
        return self._detector_lost(round_trip=True)

    def _detector_lost(self, round_trip: bool = False) -> bool:
        """``_detector_ready`` without a round trip to the process: only what is known lost already."""
        probe = getattr(self.detector, "ready" if round_trip else "check", None)  # a RemoteDetector's
        if probe is None:
            return False
        try:
            probe()
        except DetectorLost as lost:
            self._start_over(lost)
            return True
        return False

    def _start_over(self, lost: DetectorLost) -> None:
        log.error("detection: the detector of stream %s is lost (%s); the stream starts over after event %d",
                  self.key.stream_id, lost, self.offset_base + lost.events_seen,
                  extra={"stream_id": self.key.stream_id})
        self._new_detector()

    def score(self, batch: StreamBatch, request_seq: int) -> ScoreOutcome:
        step = self.begin_score(batch, request_seq)
        return self.finish_score(step, self.run_feed(step))

    def run_feed(self, step: ScoreStep) -> Any:
        """The detector's ``update`` of ``step.feed`` (``None`` when there is nothing to feed), or the
        ``DetectorLost`` it raised, for ``finish_score``."""
        if step.feed is None:
            return None
        try:
            return self.detector.update(step.feed)
        except DetectorLost as lost:
            return lost

    def begin_score(self, batch: StreamBatch, request_seq: int) -> ScoreStep:
        """A batch's scoring up to its detector's ``update``: the caller runs ``step.feed`` through the
        detector (when not ``None``), then ``finish_score``. Split so that a shard can send the updates of
        several streams to its detector process at once (``detection.detector_processes``)."""
        changed = self._detector_lost()
        changed = self.apply_desired_spec() or changed
        received = len(batch.times)
        # also while scoring is paused, so the first delta after a resume covers one interval only
        batch, converted_skips, evicted = self._deltas(batch)
        outcome = ScoreOutcome(self, 0, state_changed=changed, series_evicted=evicted)
        step = ScoreStep(batch, request_seq, outcome, converted_skips)
        if not self.spec.config.scoring:
            return step
        # every point the stream took counts as fed; the skipped ones are counted by reason as well
        step.outcome.scored = received
        step.skipped_before = dict(self.detector.skipped_points)
        if batch.times:
            step.feed = self._feed(batch, request_seq)
        return step

    def finish_score(self, step: ScoreStep, output: Any) -> ScoreOutcome:
        """The rest of ``begin_score``'s batch, given what the detector's ``update`` returned for
        ``step.feed`` (or the ``DetectorLost`` it raised: the batch then goes to a fresh detector)."""
        outcome = step.outcome
        if not self.spec.config.scoring:
            return outcome
        if isinstance(output, DetectorLost):  # its process died since the last batch
            self._start_over(output)
            outcome.state_changed, step.skipped_before = True, {}
            output = self.detector.update(self._feed(step.batch, step.request_seq))
        windows = _window_rows(output) if step.feed is not None else _NO_WINDOWS
        base = self.offset_base
        self.dirty = True
        skipped = dict(step.converted_skips)
        for reason, total in self.detector.skipped_points.items():
            if total > step.skipped_before.get(reason, 0):
                skipped[reason] = skipped.get(reason, 0) + total - step.skipped_before.get(reason, 0)
        for reason, n in skipped.items():
            SKIPPED_POINTS_LOG.note(self.key.signal, reason, n, self.key.stream_id)
        outcome.skipped = skipped
        # before the windows: a window names the incident its batch opened
        outcome.incidents = [self._change(update) for update in windows.incidents]
        drift = False
        ring, scores = self.ring, self.scores
        for end_offset, end_time_ns, p_value, score, anomalous, is_drift, ratio in windows.rows:
            drift = drift or is_drift
            if ratio is not None:
                outcome.ratio_sum += ratio
                outcome.ratio_count += 1
            # the window's place in the score series: its last event's time (receipt time if it has none)
            scores.add(end_time_ns or ring.time_at(base + end_offset - 1) or time.time_ns(), p_value, score,
                       anomalous)
        for result in windows.anomalies:
            outcome.windows.append(self._scored(result, base))
        outcome.scores = scores.take()
        new_state: StreamState
        if not self.detector.warmed_up:
            new_state = "warming"
        elif drift:
            new_state = "drifted"
        elif windows.rows or self.state == "warming":
            new_state = "active"
        else:
            new_state = self.state
        if new_state != self.state:
            self.state = new_state
            outcome.state_changed = True
        return outcome

    def _feed(self, batch: StreamBatch, request_seq: int) -> EventBatch:
        """The batch as its detector takes it, its items in the ring."""
        times = np.asarray(batch.times, dtype=np.uint64)  # converted once: the ring's column, the stamps
        self.ring.append(RingChunk(self.events_seen, batch.trace_ids, batch.span_ids, times, batch.positions,
                                   request_seq))
        # item times (unix seconds): the incidents' clock (event time, whatever the request boundaries); the
        # numeric detector also learns the sampling period from them
        stamps = times / 1e9 if times.all() else None
        if self.spec.kind == "numeric":
            return EventBatch(np.asarray(batch.events, dtype=np.float64), stamps)
        return EventBatch(batch.events, stamps)

    def _scored(self, result: WindowResult, base: int) -> ScoredWindow:
        start, end = base + result.start_offset, base + result.end_offset
        blamed: list[RingItem] = []
        seen: set[int] = set()
        tops = list(result.explanation.get("top_events", ()))
        bar = BLAME_SHARE * max((float(t.get("excess_bits", 0.0)) for t in tops), default=0.0)
        for top in tops:
            if float(top.get("excess_bits", 0.0)) < bar and not top.get("carrier"):
                continue  # a field shift's carrier is blamed for its value, not for its bits
            offset = base + int(top["offset"])
            if offset in seen:
                continue
            seen.add(offset)
            item = self.ring.get(offset)
            if item is not None:
                blamed.append(item)
        return ScoredWindow(result, start, end, blamed, self._start_time(result, base),
                            self._end_time(result, base),
                            self.incidents.id_of(getattr(result, "incident_seq", None)))

    # A window's times: the detector's (it keeps the times of the events it windows, however long ago the
    # first one arrived, and gives the same times whatever the request boundaries), else the ring's; 0
    # when neither knows (events without times: the caller falls back to receipt time).
    def _start_time(self, result: WindowResult, base: int) -> int:
        return getattr(result, "start_time_ns", None) or self.ring.time_at(base + result.start_offset)

    def _end_time(self, result: WindowResult, base: int) -> int:
        return getattr(result, "end_time_ns", None) or self.ring.time_at(base + result.end_offset - 1)

    def _deltas(self, batch: StreamBatch) -> tuple[StreamBatch, dict[str, int], int]:
        """The batch with cumulative metric points turned into deltas (``streams.cumulative``): points
        left out (references, resets, out of order) get no offset, ring place or score."""
        points = batch.cumulative
        if not points or all(p is None for p in points):
            return batch, {}, 0
        deltas = self.cumulative.convert(batch.events, batch.times, points)
        kept = deltas.kept
        if len(kept) == len(batch.times):
            out = StreamBatch(batch.key, deltas.values, batch.trace_ids, batch.span_ids, batch.times,
                              batch.positions)
        else:
            out = StreamBatch(batch.key, deltas.values, [batch.trace_ids[i] for i in kept],
                              [batch.span_ids[i] for i in kept], [batch.times[i] for i in kept],
                              [batch.positions[i] for i in kept])
        return out, deltas.skipped, deltas.evicted

    def _change(self, update: Any, actor: str | None = None) -> IncidentChange:
        base = self.offset_base
        return change_of(self.key, self.spec.config.profile_name, base, self.incidents, update,
                         (self.ring.get(base + offset) for offset in update.evidence_offsets), actor)

    def incident_action(self, seq: int, action: IncidentAction, actor: str | None = None,
                        expected_id: str | None = None) -> IncidentChange:
        """An operator's closing action on incident ``seq`` of the current detector (shard thread).

        Raises ``IncidentActionsUnsupported`` when the detector tracks no incidents, ``ValueError`` when
        it knows no open incident ``seq`` or ``expected_id`` is not its incident ``seq`` (an incident of an
        earlier detector of the stream, whose numbers the current one reuses)."""
        self._detector_ready()
        require_tracker(self.detector)
        if expected_id is not None and self.incidents.id_of(seq) != expected_id:
            raise ValueError(f"incident {expected_id} is not incident {seq} of the stream's current detector")
        update = detector_action(self.detector, action, seq)
        self.dirty = True
        return self._change(update, actor)

    def snapshot(self) -> bytes:
        """Version 2: the JSON header, the ring's raw arrays (``EventRing.dump``, ``ring_bytes`` long),
        then the detector's snapshot. Version 1 carried the ring as JSON inside the header."""
        self._detector_ready()
        ring = self.ring.dump()
        header = {"v": SNAPSHOT_VERSION,
                  "key": [self.key.stream_id, self.key.signal, self.key.service, self.key.name],
                  "spec": self.spec.identity(), "enabled": self.spec.config.scoring,
                  "offset_base": self.offset_base, "events_seen": self.events_seen, "state": self.state,
                  "ring_bytes": len(ring), "incidents": self.incidents.dump(), "scores": self.scores.dump(),
                  "cumulative": self.cumulative.dump()}
        head = json.dumps(header, separators=(",", ":")).encode()
        self.dirty = False
        return b"".join((_MAGIC, struct.pack(">I", len(head)), head, ring, self.detector.snapshot()))

    @classmethod
    def restore(cls, data: bytes, key: StreamKey, spec: DetectorSpec, shard: int,
                place: DetectorPlace = LOCAL) -> LiveStream:
        """Resume from a snapshot (version 1 or 2); a snapshot taken under another detector spec (the
        configuration changed meanwhile) starts a fresh detector, continuing the stream's offsets."""
        if data[:4] != _MAGIC:
            raise ValueError("not a stream snapshot")
        (length,) = struct.unpack(">I", data[4:8])
        header = json.loads(data[8:8 + length])
        ring_start = 8 + length
        detector_start = ring_start + int(header.get("ring_bytes", 0))  # version 1: no ring bytes
        base = int(header["offset_base"])
        # the series' previous points do not depend on the detector: they survive a detector change too
        cumulative = CumulativeDeltas.load(header.get("cumulative"))
        if header["spec"] != spec.identity():
            fresh = cls(key, spec, shard, offset_base=int(header["events_seen"]), place=place)
            fresh.cumulative = cumulative
            return fresh
        view = memoryview(data)  # the parts are read in place, not sliced out (a copy of ~200 KiB)
        try:
            detector = place.restore(spec.kind, spec.create_kwargs(), view[detector_start:],
                                     events_seen=int(header["events_seen"]) - base,
                                     warmed_up=header.get("state") in ("active", "drifted"))
        except Exception:
            log.exception("detection: detector state of stream %s is unreadable; it warms up again",
                          key.stream_id)
            fresh = cls(key, spec, shard, offset_base=int(header["events_seen"]), place=place)
            fresh.cumulative = cumulative
            return fresh
        if int(header.get("v", 1)) >= 2:
            ring = EventRing.load(spec.ring_capacity(), view[ring_start:detector_start])
        else:
            ring = EventRing.load_v1(spec.ring_capacity(), header["ring"])
        stream = cls(key, spec, shard, detector=detector, offset_base=base, ring=ring, place=place)
        stream.cumulative = cumulative
        stream.incidents = IncidentBook.load(header.get("incidents"))
        stream.scores = ScoreSeries.load(key.stream_id, header.get("scores"))
        if header.get("state") in ("active", "drifted") and detector.warmed_up:
            stream.state = header["state"]
        return stream


_NO_WINDOWS = WindowRows()


def _window_rows(output: Any) -> WindowRows:
    """A detector's ``update`` result as ``WindowRows`` (a detector process sends that form already)."""
    if isinstance(output, WindowRows):
        return output
    results, updates = split_update(output)
    return WindowRows.of(results, updates)


def build_record(stream: LiveStream, window: ScoredWindow, *, engine_version: str, received_at: float
                 ) -> AnomalyRecord:
    """The stored form of one anomalous window (pure)."""
    r = window.result
    fallback = int(received_at * 1e9)
    evidence = [_evidence(item, stream.key.signal) for item in window.blamed]
    return AnomalyRecord(
        stream_id=stream.key.stream_id, signal=stream.key.signal, service=stream.key.service,
        window_start_offset=window.start_offset, window_end_offset=window.end_offset,
        window_start=_ns_to_dt(window.start_time_ns or fallback),
        window_end=_ns_to_dt(window.end_time_ns or fallback),
        score=float(r.score), p_value=float(r.p_value),
        severity=r.severity if r.severity != "none" else "low",
        figures={k: float(v) for k, v in r.figures.items()}, explanation=dict(r.explanation),
        evidence=evidence, detector=stream.spec.kind, config_hash=stream.config_hash, seed=stream.spec.seed,
        engine_version=engine_version, is_drift=bool(r.is_drift), incident_id=window.incident_id)


def _evidence(item: RingItem, signal: str) -> dict[str, str]:
    ev: dict[str, str] = {"offset": str(item.offset)}
    if item.trace_id:
        ev["trace_id"] = item.trace_id.hex()
    if item.span_id:
        ev["span_id"] = item.span_id.hex()
    if item.time_unix_nano:
        ev["time_unix_nano"] = str(item.time_unix_nano)
    return ev


def _ns_to_dt(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)


def detector_spec(signal: str, seed: int, compressor: str, config: StreamSettings) -> DetectorSpec:
    return DetectorSpec(DETECTOR_KIND[signal], seed, compressor, config)


def stream_info(stream: LiveStream, state: StreamState | None = None) -> StreamInfo:
    """The stored row of a live stream: the profile it runs with and the layer set through the API."""
    key = stream.key
    return StreamInfo(stream_id=key.stream_id, signal=key.signal, service=key.service, name=key.name,
                      state=state or stream.state, profile=stream.spec.config.profile_name,
                      settings=stream.api_settings.values(), events_seen=stream.events_seen,
                      updated_at=dt.datetime.now(dt.UTC))
