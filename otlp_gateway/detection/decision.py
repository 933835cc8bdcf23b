"""The decision on one request, from its streams' scoring outcomes: the anomaly records to store and the
marks to annotate its items with (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from otlp_gateway.otlp.annotate import AnomalyMark
from otlp_gateway.store.base import AnomalyRecord
from otlp_gateway.streams.live import ScoreOutcome, build_record


@dataclass(slots=True)
class Decision:
    records: list[AnomalyRecord] = field(default_factory=list)
    marks: dict[int, AnomalyMark] = field(default_factory=dict)
    """Item position in the request -> the mark of the highest-scoring anomaly blaming it."""
    message: Any = None
    """The parsed request when extraction parsed it (annotation reuses it)."""


def decide(outcomes: Sequence[ScoreOutcome], *, ticket: int, received_at: float, engine_version: str,
           message: Any = None) -> Decision:
    """Records for every anomalous window; marks only for blamed items of this request (``ticket``):
    items of earlier requests have already been forwarded."""
    decision = Decision(message=message)
    for outcome in outcomes:
        for window in outcome.windows:
            record = build_record(outcome.stream, window, engine_version=engine_version,
                                  received_at=received_at)
            decision.records.append(record)
            mark = AnomalyMark(record.id, record.score, record.p_value, record.severity, record.detector,
                               str(record.explanation.get("sentence", "")), record.stream_id,
                               record.incident_id)
            for item in window.blamed:
                if item.request_seq == ticket and item.position >= 0:
                    current = decision.marks.get(item.position)
                    if current is None or mark.score > current.score:
                        decision.marks[item.position] = mark
    return decision
