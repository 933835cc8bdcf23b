"""Metric points of a parsed ``ExportMetricsServiceRequest`` as per-stream float values.

Metrics have one extraction path, on the parsed message (metric requests are small next to spans and logs,
and upb parses them anyway to validate exemplar ids). Gauge and sum points give their value; histograms
(explicit and exponential) three sub-streams ``<name>:count``, ``<name>:sum`` and ``<name>:mean``;
summaries ``<name>:count``, ``<name>:sum`` and one ``<name>:q<quantile>`` per quantile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.otlp.values import any_value
from otlp_gateway.streams.routing import EMPTY_PART, StreamKey, StreamRouter, service_of


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def extract_metrics(message: Any, router: StreamRouter) -> tuple[dict[str, StreamBatch], int]:
    """(per-stream batches, values) of a parsed metrics request, streams in order of first appearance."""
    streams: dict[str, StreamBatch] = {}
    route = router.stream_id
    count = 0
    for group in message.resource_metrics:
        res_attrs = attributes(group.resource.attributes)
        service = service_of(res_attrs)
        for sm in group.scope_metrics:
            for metric in sm.metrics:
                for sub_name, value, attrs, ts in _metric_values(metric):
                    stream_id = route("metrics", service, sub_name, attrs, res_attrs)
                    if sub_name != metric.name and not stream_id.endswith(sub_name):
                        # an explicit stream id still keeps the sub-streams apart
                        stream_id = f"{stream_id}{sub_name[len(metric.name):]}"
                    batch = streams.get(stream_id)
                    if batch is None:
                        key = StreamKey(stream_id, "metrics", service, sub_name or EMPTY_PART)
                        batch = streams[stream_id] = StreamBatch(key)
                    batch.add(value, b"", b"", ts, -1)
                    count += 1
    return streams, count


def _number(point: Any) -> float:
    return point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)


def _metric_values(metric: Any) -> list[tuple[str, float, Mapping[str, Any], int]]:
    """(sub-stream name, value, point attributes, time) for every value a metric carries, in order."""
    name = metric.name
    kind = metric.WhichOneof("data")
    out: list[tuple[str, float, Mapping[str, Any], int]] = []
    if kind in ("gauge", "sum"):
        for p in getattr(metric, kind).data_points:
            out.append((name, _number(p), attributes(p.attributes), p.time_unix_nano))
    elif kind in ("histogram", "exponential_histogram"):
        for p in getattr(metric, kind).data_points:
            attrs, ts, n = attributes(p.attributes), p.time_unix_nano, p.count
            out.append((f"{name}:count", float(n), attrs, ts))
            if p.HasField("sum"):
                out.append((f"{name}:sum", p.sum, attrs, ts))
                if n:
                    out.append((f"{name}:mean", p.sum / n, attrs, ts))
    elif kind == "summary":
        for p in metric.summary.data_points:
            attrs, ts = attributes(p.attributes), p.time_unix_nano
            out.append((f"{name}:count", float(p.count), attrs, ts))
            out.append((f"{name}:sum", p.sum, attrs, ts))
            for q in p.quantile_values:
                out.append((f"{name}:q{q.quantile:g}", q.value, attrs, ts))
    return out
