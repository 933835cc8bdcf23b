"""The incident tracker shared by every detector: windows become incidents a person can act on.

An **incident** opens on accumulated evidence over consecutive windows: a one-sided CUSUM on the
windows' calibrated p-values, ``S = max(0, S + (-ln p) - k)``, opens when ``S >= h`` (per profile:
:class:`IncidentPolicy`). ``k`` is ``ln(1 / target)``: only a window significant at the profile's own
per-window target adds evidence, so on normal data the statistic stays at 0 almost always and the
overlapping windows of one rare-but-normal event (a run of about ``W / H`` windows with similar p-values)
must together carry ``h`` nats beyond the target; one window with ``-ln p >= k + h`` opens alone.

While an incident is open the detector judges the stream against the reference frozen at the opening
(the detector's ``_incident_freeze``: no event enters its baseline, its calibration history is not fed,
no drift is adopted), so a sustained fault stays open. It closes as

* ``resolved`` after ``resolve_after_windows`` consecutive *normal* windows (``p > normal_p``); the
  events held during the incident are dropped, so the same burst later opens a new incident;
* ``accepted`` once it has been open for ``accept_after_ns`` of event time (or by an operator): the
  detector rebuilds its baseline from the recent events (the new behaviour is the new normal);
* ``false_positive`` by an operator: the held events join the baseline, so the pattern does not raise
  again; ``resolve`` by an operator is the same as the automatic resolution.

Everything is driven by the windows' order and the events' own times (``EventBatch.times``), never by
how events were split into ``update`` calls, so the same events give the same ``IncidentUpdate``s. An
update is emitted when an incident opens, when its peak severity rises, when its smallest p-value falls
tenfold, when its count of abnormal windows reaches a power of two, and when it closes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from detectors.base import Severity, WindowResult
from detectors.field_explanation import explain_band, explain_fields
from detectors.incident_types import FieldChange, IncidentStatus, IncidentUpdate

HOUR_NS = 3600 * 10**9
MAX_EVIDENCE = 20
MAX_FIELDS = 8
MAX_SAMPLE = 200
"""The first this many events of an incident's abnormal windows: the explanation reads the fields' shares
off them (see ``_describe``); kept while the incident is open (~50 KB of span events)."""
_NATS_CAP = 700.0  # -ln(1e-300): p-values are floored there
_RANKS: tuple[Severity, ...] = ("none", "low", "medium", "high", "critical")


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """How a profile turns windows into incidents (see the module docstring)."""

    drift_k: float
    """Nats of ``-ln p`` a window must exceed to add evidence (``ln(1 / target)``)."""
    threshold_h: float
    """Accumulated evidence (nats beyond ``drift_k``) that opens an incident."""
    normal_p: float
    """A window with ``p > normal_p`` is normal (counts towards resolution)."""
    resolve_after_windows: int
    """Consecutive normal windows that resolve an open incident."""
    accept_after_ns: int = HOUR_NS
    """Event time after which an incident still open is accepted as the new normal."""


class IncidentHost(Protocol):
    """What a detector offers its tracker."""

    def _incident_freeze(self) -> None:
        """From the next window on, judge against the current reference and learn nothing."""

    def _incident_thaw(self, keep_events: bool) -> None:
        """Learn again; the events held while frozen join the baseline if ``keep_events``, else go."""

    def _incident_adopt(self) -> None:
        """Thaw, and make the recent events the new reference (calibration starts over)."""

    def _incident_reference(self) -> Sequence[bytes] | None:
        """The frozen reference events (cbad's baseline); None for a detector of values."""

    def _incident_event(self, offset: int) -> bytes | None:
        """The event at ``offset`` while the detector still holds it (cbad); None for values."""

    def _incident_band(self) -> tuple[float, float] | None:
        """The range of the values frozen as the reference (a detector of values, while frozen); else None."""


def _severity_max(a: str, b: str) -> Severity:
    return _RANKS[max(_RANKS.index(a), _RANKS.index(b))]


class IncidentActions:
    """The incident face of a detector that keeps an ``IncidentTracker`` in ``self._tracker`` and is its
    ``IncidentHost``: the open incident's number and the operators' closing actions (deterministic,
    snapshotted with the tracker). Unknown or closed ``seq``: ``ValueError``."""

    _tracker: IncidentTracker

    @property
    def open_incident_seq(self) -> int | None:
        """The number of the stream's open incident, if one is open."""
        return None if self._tracker.open is None else int(self._tracker.open["seq"])

    def accept(self, seq: int) -> IncidentUpdate:
        """Close open incident ``seq`` as accepted: the detector adopts the recent behaviour as normal."""
        return self._tracker.act(cast(IncidentHost, self), seq, "accepted")

    def resolve(self, seq: int) -> IncidentUpdate:
        """Close open incident ``seq`` as resolved (as on automatic resolution)."""
        return self._tracker.act(cast(IncidentHost, self), seq, "resolved")

    def mark_false_positive(self, seq: int) -> IncidentUpdate:
        """Close open incident ``seq`` as a false positive: what it held joins the baseline."""
        return self._tracker.act(cast(IncidentHost, self), seq, "false_positive")


class IncidentTracker:
    """Per-stream incident state; the detector calls :meth:`observe` once per window, in stream order."""

    def __init__(self, policy: IncidentPolicy) -> None:
        self.policy = policy
        self.next_seq = 0
        self.evidence = 0.0  # the CUSUM statistic S (nats)
        self.last_time_ns: int | None = None
        self.last_end = 0  # end offset of the last window observed
        self.quiet_until = 0  # windows starting before this offset add no evidence (see _close)
        self.open: dict[str, Any] | None = None
        self._pending: list[IncidentUpdate] = []

    # ------------------------------------------------------------------ windows

    def observe(self, host: IncidentHost, window: WindowResult, time_ns: int | None,
                start_time_ns: int | None = None) -> WindowResult:
        """Account for one window (its last and first events' times, if known); returns it with
        ``incident_seq`` set when it belongs to an open incident. May freeze/thaw/adopt on ``host``."""
        if time_ns is not None:
            self.last_time_ns = time_ns
        now = self.last_time_ns
        pol = self.policy
        p = float(window.p_value)
        self.last_end = int(window.end_offset)
        if p >= 1.0 and self.open is None:  # warming up (or no evidence at all): nothing changes
            return window
        nats = min(-math.log(max(p, 1e-300)), _NATS_CAP)
        o = self.open
        if o is None:
            if window.start_offset < self.quiet_until:
                return window
            self.evidence = max(0.0, self.evidence + nats - pol.drift_k)
            if self.evidence < pol.threshold_h:
                return window
            o = self._open(window, start_time_ns if start_time_ns is not None else now)
            host._incident_freeze()
            self._note_abnormal(host, o, window, now)
            self._emit(host, "open", None)
            return dataclasses.replace(window, incident_seq=o["seq"])
        seq = o["seq"]
        o["normal_run"] = 0 if p <= pol.normal_p else o["normal_run"] + 1
        if window.is_anomaly and self._note_abnormal(host, o, window, now):
            self._emit(host, "open", None)
        if o["normal_run"] >= pol.resolve_after_windows:
            self._close(host, "resolved", now)
        elif now is not None and now - o["opened_time_ns"] >= pol.accept_after_ns:
            self._close(host, "accepted", now)
            window = dataclasses.replace(window, is_drift=True)
        return dataclasses.replace(window, incident_seq=seq)

    def opens_at(self, windows: Sequence[WindowResult]) -> int | None:
        """Index of the first of these windows (in order) that would open an incident, if the tracker has
        none open; nothing changes (the detector uses it to stop exactly there)."""
        if self.open is not None:
            return 0 if windows else None
        s, k, h = self.evidence, self.policy.drift_k, self.policy.threshold_h
        for i, w in enumerate(windows):
            p = float(w.p_value)
            if p >= 1.0 or w.start_offset < self.quiet_until:
                continue
            s = max(0.0, s + min(-math.log(max(p, 1e-300)), _NATS_CAP) - k)
            if s >= h:
                return i
        return None

    def take_updates(self) -> list[IncidentUpdate]:
        out, self._pending = self._pending, []
        return out

    # ------------------------------------------------------------------ operator actions

    def act(self, host: IncidentHost, seq: int, status: IncidentStatus) -> IncidentUpdate:
        """Close open incident ``seq`` as ``status`` (an operator's action); ValueError if it is not open."""
        if self.open is None or self.open["seq"] != seq:
            state = "closed" if 0 <= seq < self.next_seq else "unknown"
            raise ValueError(f"incident {seq} is {state}; only the open incident can be closed"
                             + ("" if self.open is None else f" (incident {self.open['seq']} is open)"))
        self._close(host, status, self.last_time_ns)
        return self._pending.pop()

    # ------------------------------------------------------------------ internals

    def _open(self, window: WindowResult, opened: int | None) -> dict[str, Any]:
        o: dict[str, Any] = {
            "seq": self.next_seq, "opened_offset": int(window.start_offset),
            "opened_time_ns": int(opened or 0), "last_offset": int(window.end_offset) - 1,
            "last_time_ns": int(self.last_time_ns or 0), "windows": 0, "min_p": 1.0, "severity": "low",
            "evidence": [], "blamed": [], "normal_run": 0, "reported": None, "sample": [], "sampled_to": 0,
        }
        self.next_seq += 1
        self.open = o
        self.evidence = 0.0
        return o

    @staticmethod
    def _blame(o: dict[str, Any], host: IncidentHost, top: dict[str, Any]) -> None:
        """Keep what the explanation needs of a blamed event (JSON-able: it is snapshotted)."""
        event = host._incident_event(int(top["offset"]))
        o["blamed"].append({
            "offset": int(top["offset"]), "bits": float(top.get("bits", 0.0)),
            "event": None if event is None else event.decode("utf-8", "replace"),
            "observed": top.get("observed"), "expected": top.get("expected"),
            "model": str(top["tokens"][0]) if top.get("tokens") and "observed" in top else None})

    def _note_abnormal(self, host: IncidentHost, o: dict[str, Any], window: WindowResult,
                       now: int | None) -> bool:
        """Fold an abnormal window into the open incident; True if the change is worth an update."""
        o["windows"] += 1
        o["last_offset"] = int(window.end_offset) - 1
        o["last_time_ns"] = int(now if now is not None else o["last_time_ns"])
        o["min_p"] = min(o["min_p"], float(window.p_value))
        o["severity"] = _severity_max(o["severity"], window.severity)
        self._sample(host, o, window)
        for top in window.explanation.get("top_events", ()):
            if float(top.get("excess_bits", 1.0)) <= 0 and not top.get("carrier"):
                continue  # a listed event that cost nothing extra (a field shift's carrier may: it counts)
            off = int(top["offset"])
            if len(o["evidence"]) < MAX_EVIDENCE and off not in o["evidence"]:
                o["evidence"].append(off)
                self._blame(o, host, top)
        last = o["reported"]
        if last is None:
            return True
        windows, min_p, sev = last
        return (o["windows"] & (o["windows"] - 1) == 0 or o["min_p"] < min_p / 10
                or _RANKS.index(o["severity"]) > _RANKS.index(sev)) and o["windows"] != windows

    @staticmethod
    def _sample(host: IncidentHost, o: dict[str, Any], window: WindowResult) -> None:
        """Add the window's events not sampled yet, up to MAX_SAMPLE (by stream offset, so the sample does
        not depend on how events were batched; windows overlap, each offset counts once)."""
        sample: list[str] = o["sample"]
        start = max(int(window.start_offset), o["sampled_to"])
        for offset in range(start, min(int(window.end_offset), start + MAX_SAMPLE - len(sample))):
            event = host._incident_event(offset)
            if event is not None:
                sample.append(event.decode("utf-8", "replace"))
        o["sampled_to"] = max(o["sampled_to"], int(window.end_offset))

    def _close(self, host: IncidentHost, status: IncidentStatus, now: int | None) -> None:
        assert self.open is not None
        self._emit(host, status, int(now if now is not None else self.open["last_time_ns"]))
        self.open = None
        self.evidence = 0.0
        # The events in the window when it closed were judged against the frozen reference; they are
        # judged again only inside later windows, so no window holding them re-opens (an operator's
        # action mid-fault, a false positive's pattern still in the window).
        self.quiet_until = self.last_end
        if status == "accepted":
            host._incident_adopt()
        else:
            host._incident_thaw(keep_events=status == "false_positive")

    def _emit(self, host: IncidentHost, status: IncidentStatus, closed_time_ns: int | None) -> None:
        o = self.open
        assert o is not None
        fields, summary = _describe(host._incident_reference(), o, host._incident_band())
        o["reported"] = (o["windows"], o["min_p"], o["severity"])
        self._pending.append(IncidentUpdate(
            seq=o["seq"], status=status, opened_offset=o["opened_offset"], opened_time_ns=o["opened_time_ns"],
            last_anomalous_offset=o["last_offset"], last_anomalous_time_ns=o["last_time_ns"],
            closed_time_ns=closed_time_ns, anomalous_windows=o["windows"], min_p_value=o["min_p"],
            severity=o["severity"], fields=fields, summary=summary, evidence_offsets=tuple(o["evidence"])))

    # ------------------------------------------------------------------ state

    def dump(self) -> dict[str, Any]:
        """JSON-able state (part of the detector's snapshot)."""
        o = None if self.open is None else {**self.open, "reported": (None if self.open["reported"] is None
                                                                       else list(self.open["reported"]))}
        return {"next_seq": self.next_seq, "evidence": self.evidence, "last_time_ns": self.last_time_ns,
                "last_end": self.last_end, "quiet_until": self.quiet_until, "open": o}

    def load(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`dump`'s state (None: a snapshot written before incidents, a fresh tracker)."""
        if not state:
            return
        self.next_seq = int(state["next_seq"])
        self.evidence = float(state["evidence"])
        self.last_time_ns = None if state["last_time_ns"] is None else int(state["last_time_ns"])
        self.last_end, self.quiet_until = int(state["last_end"]), int(state["quiet_until"])
        o = state["open"]
        if o is not None:
            o = dict(o)
            o["evidence"] = [int(x) for x in o["evidence"]]
            o["reported"] = None if o["reported"] is None else tuple(o["reported"])
            o.setdefault("sample", [])  # written before incidents kept a sample of their events
            o["sampled_to"] = int(o.get("sampled_to", 0))
        self.open = o


def to_ns(seconds: float) -> int:
    """Unix seconds (``EventBatch.times``) to integer nanoseconds, the incidents' time unit."""
    return round(seconds * 1e9)


# ---------------------------------------------------------------------- the explanation (one call site)

_SPAN_KINDS = frozenset((b"INTERNAL", b"SERVER", b"CLIENT", b"PRODUCER", b"CONSUMER"))


def _describe(reference: Sequence[bytes] | None, incident: dict[str, Any],
              band: tuple[float, float] | None = None) -> tuple[tuple[FieldChange, ...], str]:
    """Fields and a plain summary for an incident against the frozen reference.

    Byte events are explained field by field (``explain_fields``), first on the first events of the
    abnormal windows (``MAX_SAMPLE``): the blamed events are the costliest ones, so shares read off them
    overstate the change ("95 % of spans now ERROR" for a 30 % error rate) and over-represent rare values
    of unrelated fields. When no field stands out there (a change too rare or too slight for that many
    events), the blamed events are explained and the summary says its shares are theirs; when no field
    stands out there either, whole events are compared.
    """
    blamed = incident["blamed"]
    if reference is None:
        return _describe_values(blamed, incident, band)
    sample = [event.encode() for event in incident["sample"]]
    if sample:
        explained, summary = explain_fields(reference, sample)
        if explained:
            return explained, summary
    events = [b["event"].encode() for b in blamed if b["event"] is not None]
    distinct = list(dict.fromkeys(events))  # first seen first
    if not distinct:
        return (), f"{incident['windows']} unusual window(s) in this stream"
    explained, summary = explain_fields(reference, events)
    if explained:
        return explained, f"in its {len(events)} most unusual events, {summary}"
    counts: dict[bytes, int] = dict.fromkeys(distinct, 0)
    for event in reference:
        if event in counts:
            counts[event] += 1
    bits: dict[bytes, float] = {}
    for b in blamed:
        if b["event"] is not None:
            bits[b["event"].encode()] = max(bits.get(b["event"].encode(), 0.0), b["bits"])
    is_span = distinct[0].split(b" ", 1)[0] in _SPAN_KINDS
    field, noun = ("span.name", "span") if is_span else ("log.template", "log record")
    n_ref = len(reference)
    fields = []
    for event in distinct[:MAX_FIELDS]:
        seen = counts[event]
        fields.append(FieldChange(
            field=field, change="new_template" if seen == 0 else "rare_value",
            before="never seen" if seen == 0 else f"seen {seen} times",
            now=f"{events.count(event)} of the {len(events)} blamed events",
            unusual=(f"never seen in {n_ref} reference events" if seen == 0
                     else f"seen {seen} times in {n_ref}"),
            bits=bits[event], example=event.decode("utf-8", "replace")[:300]))
    new = sum(1 for e in distinct if counts[e] == 0)
    kinds = f"{len(distinct)} kind(s) of {noun}"
    summary = (f"{kinds} unusual for this stream, {new} of them never seen in the {n_ref} reference events"
               if new else f"{kinds} rare in the {n_ref} reference events became frequent")
    return tuple(fields), summary


def _describe_values(blamed: Sequence[dict[str, Any]], incident: dict[str, Any],
                     band: tuple[float, float] | None) -> tuple[tuple[FieldChange, ...], str]:
    """The costliest blamed value against the range frozen when the incident opened (``explain_band``)."""
    points = [b for b in blamed if b["observed"] is not None]
    if not points:
        return (), f"{incident['windows']} unusual window(s) of values in this stream"
    explanation = {"model": points[0]["model"], "top_events": [
        {"observed": pt["observed"], "expected": pt["expected"], "excess_bits": pt.get("bits", 0.0)}
        for pt in points]}
    return explain_band(explanation, p_value=float(incident["min_p"]), band=band,
                        band_by=None if band is None else "its range before the incident")


__all__ = ["IncidentActions", "IncidentHost", "IncidentPolicy", "IncidentTracker", "to_ns"]
