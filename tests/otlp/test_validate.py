"""Item validation: counts, what is rejected, that rejected items are removed, and the English message."""

from __future__ import annotations

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from otlp_gateway.otlp.validate import validate_logs, validate_metrics, validate_traces
from tests.fixtures.otlp_payloads import logs_request, metrics_request, trace_request


def _spans(request):
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def test_valid_traces_are_counted_and_untouched():
    request = trace_request(7)
    before = request.SerializeToString()
    verdict = validate_traces(request)
    assert (verdict.accepted, verdict.rejected, verdict.message) == (7, 0, "")
    assert request.SerializeToString() == before


def test_each_span_fault_is_rejected_and_removed():
    request = trace_request(8)
    spans = _spans(request)
    spans[0].trace_id = bytes(range(15))            # 15 bytes
    spans[1].trace_id = bytes(16)                    # all zero
    spans[2].span_id = b"\x01" * 7                   # 7 bytes
    spans[3].span_id = bytes(8)                      # all zero
    spans[4].parent_span_id = b"\x01\x02\x03"        # neither empty nor 8
    spans[5].trace_id = b""                          # empty
    spans[6].links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 3)  # links are not items: kept
    spans[7].parent_span_id = b""                    # root span: valid
    kept_names = [spans[6].name, spans[7].name]
    verdict = validate_traces(request)
    assert (verdict.accepted, verdict.rejected) == (2, 6)
    assert [s.name for s in _spans(request)] == kept_names
    assert verdict.message.startswith("rejected 6 of 8 spans: ")
    for phrase in ("trace_id must be 16 bytes (2)", "trace_id must not be all zeroes (1)",
                   "span_id must be 8 bytes (1)", "span_id must not be all zeroes (1)",
                   "parent_span_id must be empty or 8 bytes (1)"):
        assert phrase in verdict.message


def test_log_ids_are_optional_but_must_have_the_right_length_when_present():
    request = logs_request(4)
    records = request.resource_logs[0].scope_logs[0].log_records
    records[0].trace_id = b""
    records[0].span_id = b""
    records[1].trace_id = b"\x01" * 12
    records[2].span_id = b"\x01" * 9
    verdict = validate_logs(request)
    assert (verdict.accepted, verdict.rejected) == (2, 2)
    assert "trace_id must be empty or 16 bytes (1)" in verdict.message
    assert "span_id must be empty or 8 bytes (1)" in verdict.message
    assert len(request.resource_logs[0].scope_logs[0].log_records) == 2


def test_metric_items_are_data_points_of_every_kind():
    request = metrics_request(metrics=4, points=5)
    metrics = request.resource_metrics[0].scope_metrics[0].metrics
    metrics.add(name="h").histogram.data_points.add(count=1)
    metrics.add(name="e").exponential_histogram.data_points.add(count=1)
    metrics.add(name="s").summary.data_points.add(count=1)
    metrics.add(name="no data")
    assert validate_metrics(request).accepted == 4 * 5 + 3


def test_a_point_with_a_malformed_exemplar_is_rejected():
    request = metrics_request(metrics=1, points=3)
    points = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points
    points[0].exemplars.add(trace_id=b"\x01" * 16, span_id=b"\x01" * 8, as_double=1.0)  # fine
    points[1].exemplars.add(trace_id=b"\x01" * 5, as_double=1.0)
    verdict = validate_metrics(request)
    assert (verdict.accepted, verdict.rejected) == (2, 1)
    assert "rejected 1 of 3 data points: an exemplar" in verdict.message
    assert len(points) == 2


def test_empty_requests_have_no_items():
    assert validate_metrics(ExportMetricsServiceRequest()).accepted == 0
    assert validate_traces(trace_request(0)).accepted == 0
