"""Annotation: add ``driftlock.anomaly.*`` attributes to the spans and log records an anomaly blames, and
``driftlock.incident.id`` when the anomalous window belongs to an incident.

No I/O. Add, never replace: an attribute key the client already sent on an item is left as it was, and
nothing else in the request changes. Requests without anomalies are never passed through here (the
pipeline forwards their original bytes).

Limit: only items still in the request being processed can be annotated. Detection windows span
requests, so an anomaly may blame items of a request that was already forwarded; those anomalies are
stored (with the items' trace/span ids as evidence) but the forwarded items carry no annotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

PREFIX = "driftlock.anomaly."
INCIDENT_ID = "driftlock.incident.id"


@dataclass(frozen=True, slots=True)
class AnomalyMark:
    """What an annotated item says about the anomaly that blamed it."""

    anomaly_id: str
    score: float
    p_value: float
    severity: str
    detector: str
    explanation: str
    stream_id: str
    incident_id: str | None = None
    """The incident the anomalous window belongs to, if any."""

    def attributes(self) -> list[tuple[str, AnyValue]]:
        attributes = [
            (PREFIX + "id", AnyValue(string_value=self.anomaly_id)),
            (PREFIX + "score", AnyValue(double_value=self.score)),
            (PREFIX + "p_value", AnyValue(double_value=self.p_value)),
            (PREFIX + "severity", AnyValue(string_value=self.severity)),
            (PREFIX + "detector", AnyValue(string_value=self.detector)),
            (PREFIX + "explanation", AnyValue(string_value=self.explanation)),
            (PREFIX + "stream_id", AnyValue(string_value=self.stream_id)),
        ]
        if self.incident_id is not None:
            attributes.append((INCIDENT_ID, AnyValue(string_value=self.incident_id)))
        return attributes


def add_attributes(kvs: Any, mark: AnomalyMark) -> int:
    """Append the mark's attributes to a repeated ``KeyValue`` field, skipping keys already present."""
    present = {kv.key for kv in kvs}
    added = 0
    for key, value in mark.attributes():
        if key not in present:
            kvs.append(KeyValue(key=key, value=value))
            added += 1
    return added


def annotate(signal: str, message: Any, marks: Mapping[int, AnomalyMark]) -> int:
    """Annotate the items at the given positions (extraction order) of a parsed request, in place.

    Returns how many items were annotated. Metric requests are never annotated (their anomalies are
    stored and counted only), so they return 0.
    """
    if not marks or signal == "metrics":
        return 0
    annotated = 0
    position = 0
    first, last = min(marks), max(marks)
    for resource, scope_field, item_field in _LAYOUT[signal]:
        for rx in getattr(message, resource):
            for sx in getattr(rx, scope_field):
                items = getattr(sx, item_field)
                n = len(items)
                if position + n > first:
                    for i in range(n):
                        mark = marks.get(position + i)
                        if mark is not None:
                            add_attributes(items[i].attributes, mark)
                            annotated += 1
                position += n
                if position > last:
                    return annotated
    return annotated


_LAYOUT = {
    "traces": (("resource_spans", "scope_spans", "spans"),),
    "logs": (("resource_logs", "scope_logs", "log_records"),),
}
