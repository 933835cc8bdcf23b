from __future__ import annotations

import dataclasses

from otlp_gateway.otlp.annotate import INCIDENT_ID, PREFIX, AnomalyMark, annotate
from tests.otlp.otlp_data import LogSpec, SpanSpec, kv, logs_request, traces_request

MARK = AnomalyMark("abc123", 7.5, 0.0004, "high", "cbad", "3 events cost 40 bits more", "traces/a/GET /x")


def _attrs(item) -> dict:
    return {a.key: a.value for a in item.attributes}


def test_blamed_spans_get_attributes_and_everything_else_is_unchanged() -> None:
    spans = [SpanSpec("a", "GET /x", 5, attrs={"k": "v"}), SpanSpec("a", "GET /x", 6),
             SpanSpec("b", "GET /y", 7, attrs={f"{PREFIX}severity": "client-set"})]
    req = traces_request(spans)
    original = traces_request(spans)
    assert annotate("traces", req, {0: MARK, 2: MARK}) == 2
    first, second = req.resource_spans[0].scope_spans[0].spans
    third = req.resource_spans[1].scope_spans[0].spans[0]
    added = _attrs(first)
    assert added["k"].string_value == "v"
    assert added[PREFIX + "id"].string_value == "abc123"
    assert added[PREFIX + "score"].double_value == 7.5
    assert added[PREFIX + "p_value"].double_value == 0.0004
    assert added[PREFIX + "severity"].string_value == "high"
    assert added[PREFIX + "detector"].string_value == "cbad"
    assert added[PREFIX + "explanation"].string_value == MARK.explanation
    assert added[PREFIX + "stream_id"].string_value == "traces/a/GET /x"
    assert second == original.resource_spans[0].scope_spans[0].spans[1]
    # the client's own value is kept, never replaced; the other keys are added
    assert [a.value.string_value for a in third.attributes if a.key == PREFIX + "severity"] == ["client-set"]
    assert _attrs(third)[PREFIX + "id"].string_value == "abc123"
    # original attributes come first, unchanged and in order
    orig_first = original.resource_spans[0].scope_spans[0].spans[0]
    assert list(first.attributes)[: len(orig_first.attributes)] == list(orig_first.attributes)
    assert first.name == orig_first.name and first.trace_id == orig_first.trace_id


def test_logs_are_annotated_and_metrics_never() -> None:
    req = logs_request([LogSpec("a", "s", "one"), LogSpec("a", "s", "two", attrs={"x": 1})])
    assert annotate("logs", req, {1: MARK}) == 1
    records = req.resource_logs[0].scope_logs[0].log_records
    assert PREFIX + "id" not in _attrs(records[0])
    assert _attrs(records[1])[PREFIX + "id"].string_value == "abc123"
    assert annotate("metrics", object(), {0: MARK}) == 0


def test_no_marks_leaves_the_request_bytes_identical() -> None:
    req = traces_request([SpanSpec("a", "GET /x", 5, attrs={"k": kv("k", 1).key})])
    before = req.SerializeToString()
    assert annotate("traces", req, {}) == 0
    assert req.SerializeToString() == before


def test_items_blamed_within_an_incident_also_carry_its_id() -> None:
    in_incident = dataclasses.replace(MARK, incident_id="inc_0123456789abcdef")
    req = logs_request([LogSpec("a", "s", "one"), LogSpec("a", "s", "two"),
                        LogSpec("a", "s", "three", attrs={INCIDENT_ID: "client-set"})])
    assert annotate("logs", req, {0: in_incident, 1: MARK, 2: in_incident}) == 3
    first, second, third = req.resource_logs[0].scope_logs[0].log_records
    assert _attrs(first)[INCIDENT_ID].string_value == "inc_0123456789abcdef"
    assert INCIDENT_ID not in _attrs(second)  # a window outside any incident names none
    assert [a.value.string_value for a in third.attributes if a.key == INCIDENT_ID] == ["client-set"]
