"""Metric points of a parsed ``ExportMetricsServiceRequest`` as per-stream float values.

Metrics have one extraction path, on the parsed message (metric requests are small next to spans and logs,
and upb parses them anyway to validate exemplar ids). Gauge and sum points give their value; histograms
(explicit and exponential) three sub-streams ``<name>:count``, ``<name>:sum`` and ``<name>:mean``;
summaries ``<name>:count``, ``<name>:sum`` and one ``<name>:q<quantile>`` per quantile.

A value of cumulative temporality (sums, histograms so declared, every summary's count and sum) also
carries its running totals and series identity (``CumulativePoint``): the stream, which remembers the
series' previous point across requests, turns it into a per-interval delta (``streams.cumulative``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE

from otlp_gateway.otlp.extract import CumulativePoint, StreamBatch
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
        resource_id = _canonical(res_attrs)
        for sm in group.scope_metrics:
            scope_id = _digest(_canonical([resource_id, sm.scope.name, sm.scope.version]))
            for metric in sm.metrics:
                for sub_name, value, attrs, ts, cumulative in _metric_values(metric, scope_id):
                    stream_id = route("metrics", service, sub_name, attrs, res_attrs)
                    if sub_name != metric.name and not stream_id.endswith(sub_name):
                        # an explicit stream id still keeps the sub-streams apart
                        stream_id = f"{stream_id}{sub_name[len(metric.name):]}"
                    batch = streams.get(stream_id)
                    if batch is None:
                        key = StreamKey(stream_id, "metrics", service, sub_name or EMPTY_PART)
                        batch = streams[stream_id] = StreamBatch(key, cumulative=[])
                    batch.add(value, b"", b"", ts, -1)
                    assert batch.cumulative is not None
                    batch.cumulative.append(cumulative)
                    count += 1
    return streams, count


def _number(point: Any) -> float:
    # an int stays an int: a large cumulative counter's deltas stay exact
    return point.as_double if point.WhichOneof("value") == "as_double" else point.as_int


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _series(scope_id: str, metric: Any, sub_name: str, attrs: Mapping[str, Any]) -> str:
    """The identity of a cumulative series: resource, scope, metric (name, unit), sub-stream, point
    attributes; hashed, since it is kept per series in the stream's state and snapshot."""
    return _digest(_canonical([scope_id, sub_name, metric.unit, attrs]))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "backslashreplace"), digest_size=12).hexdigest()


Value = tuple[str, float, Mapping[str, Any], int, CumulativePoint | None]


def _metric_values(metric: Any, scope_id: str) -> list[Value]:
    """(sub-stream name, value, point attributes, time, running totals if cumulative) for every value a
    metric carries, in order."""
    name = metric.name
    kind = metric.WhichOneof("data")
    out: list[Value] = []
    if kind == "gauge":
        for p in metric.gauge.data_points:
            out.append((name, _number(p), attributes(p.attributes), p.time_unix_nano, None))
    elif kind == "sum":
        cumulative = metric.sum.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
        monotonic = metric.sum.is_monotonic
        for p in metric.sum.data_points:
            attrs, value = attributes(p.attributes), _number(p)
            running = CumulativePoint(_series(scope_id, metric, name, attrs), p.start_time_unix_nano,
                                      monotonic, value) if cumulative else None
            out.append((name, value, attrs, p.time_unix_nano, running))
    elif kind in ("histogram", "exponential_histogram"):
        data = getattr(metric, kind)
        cumulative = data.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
        for p in data.data_points:
            has_sum = p.HasField("sum")
            out.extend(_count_sum_mean(scope_id, metric, p, p.sum if has_sum else None, cumulative, True))
    elif kind == "summary":
        # summaries are cumulative by definition (the proto has no temporality for them)
        for p in metric.summary.data_points:
            out.extend(_count_sum_mean(scope_id, metric, p, p.sum, True, False))
            attrs, ts = attributes(p.attributes), p.time_unix_nano
            for q in p.quantile_values:
                out.append((f"{name}:q{q.quantile:g}", q.value, attrs, ts, None))
    return out


def _count_sum_mean(scope_id: str, metric: Any, p: Any, total: float | None, cumulative: bool,
                    with_mean: bool) -> list[Value]:
    """``:count``, ``:sum`` (when given) and ``:mean`` (histograms) of one point."""
    name, attrs, ts, n = metric.name, attributes(p.attributes), p.time_unix_nano, p.count
    parts = [("count", float(n))]
    if total is not None:
        parts.append(("sum", total))
        if with_mean and (n or cumulative):  # cumulative: the mean is of the interval's values
            parts.append(("mean", total / n if n else 0.0))
    out: list[Value] = []
    for part, value in parts:
        sub_name = f"{name}:{part}"
        running = CumulativePoint(_series(scope_id, metric, sub_name, attrs), p.start_time_unix_nano, True,
                                  total if total is not None else 0.0, n, part) if cumulative else None
        out.append((sub_name, value, attrs, ts, running))
    return out
