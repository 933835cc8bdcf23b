"""Item-level validation of decoded OTLP requests: count the items, drop the invalid ones in place.

Pure functions over the opentelemetry-proto messages (no I/O). The common case (every item valid) takes a
fast path that reads only the id fields; the slow path that names the faults and deletes items runs only
when the fast path finds something wrong.

Rules (OTLP spec): a span's ``trace_id`` is 16 bytes and its ``span_id`` 8 bytes, neither all zeroes;
``parent_span_id`` is empty or 8 bytes. Log records and exemplars may omit their ids, but an id that is
present must have the right length. Metric items are data points: a point whose exemplar carries a
malformed id is rejected. Span links are not items and their ids are not checked (as in the collector):
reading every span's ``links`` from Python would cost about as much as all the other checks together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from google.protobuf.message import Message

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
_ZERO_TRACE_ID = bytes(TRACE_ID_BYTES)
_ZERO_SPAN_ID = bytes(SPAN_ID_BYTES)

# one C-level getter per item reading several fields: each span wrapper is created once
_span_ids = attrgetter("trace_id", "span_id", "parent_span_id")
_record_ids = attrgetter("trace_id", "span_id")
_exemplars = attrgetter("exemplars")

METRIC_DATA_KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


@dataclass(frozen=True, slots=True)
class Validation:
    """Outcome of validating one request: ``accepted`` items remain in the message."""

    accepted: int
    rejected: int = 0
    message: str = ""
    """English description of what was rejected (empty when nothing was)."""


def _describe(noun: str, total: int, reasons: Counter[str]) -> str:
    rejected = sum(reasons.values())
    parts = ", ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
    return f"rejected {rejected} of {total} {noun}: {parts}"


# ----------------------------------------------------------------------------------------------- traces
def _span_fault(span: Message) -> str | None:
    trace_id, span_id = span.trace_id, span.span_id  # type: ignore[attr-defined]
    if len(trace_id) != TRACE_ID_BYTES:
        return f"trace_id must be {TRACE_ID_BYTES} bytes"
    if trace_id == _ZERO_TRACE_ID:
        return "trace_id must not be all zeroes"
    if len(span_id) != SPAN_ID_BYTES:
        return f"span_id must be {SPAN_ID_BYTES} bytes"
    if span_id == _ZERO_SPAN_ID:
        return "span_id must not be all zeroes"
    if len(span.parent_span_id) not in (0, SPAN_ID_BYTES):  # type: ignore[attr-defined]
        return f"parent_span_id must be empty or {SPAN_ID_BYTES} bytes"
    return None


def _spans_look_valid(spans) -> bool:
    """Bulk check through C-level ``map`` (no Python frame per span); False means 'look closer'."""
    if not spans:
        return True
    trace_ids, span_ids, parent_ids = zip(*map(_span_ids, spans), strict=True)
    return (set(map(len, trace_ids)) == {TRACE_ID_BYTES} and _ZERO_TRACE_ID not in trace_ids
            and set(map(len, span_ids)) == {SPAN_ID_BYTES} and _ZERO_SPAN_ID not in span_ids
            and set(map(len, parent_ids)) <= {0, SPAN_ID_BYTES})


def _validate_groups(groups: Iterable[Any], looks_valid: Callable[[Any], bool],
                     fault: Callable[[Message], str | None], noun: str) -> Validation:
    """Check each scope's repeated items: a cheap whole-group test first, the per-item drop only when it
    fails (the common all-valid request never walks items one by one)."""
    total = 0
    reasons: Counter[str] = Counter()
    for items in groups:
        total += len(items)
        if not looks_valid(items):
            reasons.update(_drop_invalid(items, fault))
    return _result(noun, total, reasons)


def validate_traces(request: Message) -> Validation:
    groups = (ss.spans for rs in request.resource_spans for ss in rs.scope_spans)  # type: ignore[attr-defined]
    return _validate_groups(groups, _spans_look_valid, _span_fault, "spans")


# ----------------------------------------------------------------------------------------------- logs
def _log_fault(record: Message) -> str | None:
    if len(record.trace_id) not in (0, TRACE_ID_BYTES):  # type: ignore[attr-defined]
        return f"trace_id must be empty or {TRACE_ID_BYTES} bytes"
    if len(record.span_id) not in (0, SPAN_ID_BYTES):  # type: ignore[attr-defined]
        return f"span_id must be empty or {SPAN_ID_BYTES} bytes"
    return None


def _optional_ids_look_valid(items) -> bool:
    if not items:
        return True
    trace_ids, span_ids = zip(*map(_record_ids, items), strict=True)
    return (set(map(len, trace_ids)) <= {0, TRACE_ID_BYTES}
            and set(map(len, span_ids)) <= {0, SPAN_ID_BYTES})


def validate_logs(request: Message) -> Validation:
    groups = (sl.log_records for rl in request.resource_logs  # type: ignore[attr-defined]
              for sl in rl.scope_logs)
    return _validate_groups(groups, _optional_ids_look_valid, _log_fault, "log records")


# ----------------------------------------------------------------------------------------------- metrics
def _point_fault(point: Message) -> str | None:
    for exemplar in point.exemplars:  # type: ignore[attr-defined]
        if _log_fault(exemplar) is not None:
            return "an exemplar's trace_id/span_id has the wrong length"
    return None


def metric_points(metric: Message):
    """The repeated ``data_points`` of a metric, or None when its data is unset."""
    kind = metric.WhichOneof("data")
    return None if kind is None else getattr(metric, kind).data_points


def validate_metrics(request: Message) -> Validation:
    total = 0
    reasons: Counter[str] = Counter()
    for resource_metrics in request.resource_metrics:  # type: ignore[attr-defined]
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = metric_points(metric)
                if not points:
                    continue
                total += len(points)
                # summaries have no exemplars; the others rarely carry any, so check before walking
                if metric.WhichOneof("data") == "summary" or not any(map(len, map(_exemplars, points))):
                    continue
                reasons.update(_drop_invalid(points, _point_fault))
    return _result("data points", total, reasons)


# ----------------------------------------------------------------------------------------------- shared
def _drop_invalid(items, fault: Callable[[Message], str | None]) -> Counter[str]:
    """Delete the items ``fault`` objects to, in place; return the count per reason."""
    reasons: Counter[str] = Counter()
    bad: list[int] = []
    for index, item in enumerate(items):
        reason = fault(item)
        if reason is not None:
            reasons[reason] += 1
            bad.append(index)
    for index in reversed(bad):
        del items[index]
    return reasons


def _result(noun: str, total: int, reasons: Counter[str]) -> Validation:
    if not reasons:
        return Validation(accepted=total)
    rejected = sum(reasons.values())
    return Validation(accepted=total - rejected, rejected=rejected, message=_describe(noun, total, reasons))


VALIDATORS: dict[str, Callable[[Message], Validation]] = {
    "traces": validate_traces,
    "metrics": validate_metrics,
    "logs": validate_logs,
}
