"""The incident series: open incidents per (signal, service, severity), incidents opened, and the declared
and measured false-incident rates per profile."""

from __future__ import annotations

from detectors.profiles import PROFILES, resolve_profile
from otlp_gateway.store.base import IncidentRecord
from otlp_gateway.telemetry.metrics import GatewayMetrics

DECLARED_PER_MILLION: dict[str, float] = {"sensitive": 10.0, "balanced": 1.0, "strict": 0.1}
"""False incidents per stream per million normal events each profile promises (docs/incidents design);
a profile that states its own (``Profile.false_incidents_per_million``) wins."""


def declared_rate(profile: str) -> float | None:
    stated = getattr(resolve_profile(profile), "false_incidents_per_million", None)
    return float(stated) if stated is not None else DECLARED_PER_MILLION.get(profile)


class IncidentMetrics:
    """Event-loop only. Each open incident is counted once, under the labels it has now."""

    def __init__(self, metrics: GatewayMetrics):
        self._m = metrics
        self._counted: dict[str, tuple[str, str, str]] = {}
        for profile in PROFILES:
            rate = declared_rate(profile)
            if rate is not None:
                metrics.false_incident_rate_declared.labels(profile).set(rate)

    def _labels(self, rec: IncidentRecord) -> tuple[str, str, str]:
        return rec.signal, self._m.service_label(rec.service), rec.severity

    def opened(self, rec: IncidentRecord) -> None:
        self._m.incidents_total.labels(*self._labels(rec)).inc()
        self.is_open(rec)

    def is_open(self, rec: IncidentRecord) -> None:
        """Count ``rec`` as open under its current labels (its severity may have risen)."""
        labels = self._labels(rec)
        before = self._counted.get(rec.id)
        if before == labels:
            return
        if before is not None:
            self._m.incidents_open.labels(*before).dec()
        self._m.incidents_open.labels(*labels).inc()
        self._counted[rec.id] = labels

    def closed(self, incident_id: str) -> None:
        labels = self._counted.pop(incident_id, None)
        if labels is not None:
            self._m.incidents_open.labels(*labels).dec()

    def measured(self, counts: dict[str, tuple[int, int]]) -> None:
        """``profile -> (false positives, events scored)`` from the store."""
        for profile, (false_positives, events) in counts.items():
            if events > 0:
                self._m.false_incident_rate_measured.labels(profile).set(false_positives / events * 1e6)
