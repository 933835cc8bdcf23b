"""The value types of incidents: what a detector's incident tracker reports (no logic here).

An incident belongs to one stream: it opens when accumulated evidence over consecutive windows passes the
profile's bar, stays open while the fault lasts (judged against the reference frozen at its opening) and
closes as ``resolved``, ``accepted`` or ``false_positive``. Offsets count the events fed to the detector
(as ``WindowResult`` offsets do); times are event times in unix nanoseconds, so results do not depend on
how events were split into requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from detectors.base import Severity

IncidentStatus = Literal["open", "resolved", "accepted", "false_positive"]
FieldChangeKind = Literal["new_key", "new_value", "rare_value", "share", "shift", "new_template", "band"]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One row of an incident's field explanation, in plain words."""

    field: str
    """``http.response.status_code``, ``status``, ``duration``, ``log.template``, ``severity``, ``value``."""
    change: str
    """One of ``FieldChangeKind``: new_key, new_value, rare_value, share, shift, new_template, band."""
    before: str
    """``200 (100 %)``, ``40 ms median``, ``never seen``, ``expected 10-14``."""
    now: str
    """``503 (31 %)``, ``240 ms median (x 6)``, ``RedisTimeout``, ``observed 55``."""
    unusual: str
    """``never seen in 400 reference events``, ``seen 2 times in 400``, ``p < 1e-6``."""
    bits: float
    """What this field cost against the reference (the engine's detail)."""
    example: str | None = None
    """One real masked example (a log line, a span) where meaningful."""


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """Emitted whenever an incident opens, changes or closes (also by the operator actions
    ``accept``/``resolve``/``mark_false_positive``)."""

    seq: int
    """The stream's incident number: 0, 1, 2, ... (deterministic)."""
    status: IncidentStatus
    opened_offset: int
    """Offset of the first event of the window that opened it."""
    opened_time_ns: int
    last_anomalous_offset: int
    last_anomalous_time_ns: int
    closed_time_ns: int | None
    anomalous_windows: int
    min_p_value: float
    severity: Severity
    """The peak, on the one severity scale."""
    fields: tuple[FieldChange, ...]
    """Ranked, at most 8."""
    summary: str
    """One plain sentence without engine tokens (no ``D19``, no ``bits/byte``)."""
    evidence_offsets: tuple[int, ...]
    """A bounded sample (at most 20) of the offsets of blamed events."""


__all__ = ["FieldChange", "FieldChangeKind", "IncidentStatus", "IncidentUpdate"]
