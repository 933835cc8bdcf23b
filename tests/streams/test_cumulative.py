"""Cumulative metric points become per-interval deltas per series (``streams.cumulative``), from the OTLP
points (``otlp.metric_points``) through a live stream, its snapshot and any request boundaries."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
)

from otlp_gateway.otlp.extract import CumulativePoint, StreamBatch
from otlp_gateway.otlp.metric_points import extract_metrics
from otlp_gateway.streams.cumulative import (
    EMPTY_INTERVAL,
    OUT_OF_ORDER,
    REFERENCE,
    RESET,
    CumulativeDeltas,
)
from otlp_gateway.streams.live import DetectorSpec, LiveStream, detector_spec
from otlp_gateway.streams.routing import StreamKey, StreamRouter
from otlp_gateway.streams.settings import StreamSettings
from tests.otlp.otlp_data import kv

S = 1_000_000_000
T0 = 1_700_000_000 * S
ROUTER = StreamRouter(("signal", "service.name", "name"))


def counter(total: float, series: str = "a", start: int = T0, monotonic: bool = True) -> CumulativePoint:
    return CumulativePoint(series, start, monotonic, total)


def run(state: CumulativeDeltas, points: Sequence[tuple[int, CumulativePoint | None, float]]
        ) -> tuple[list[float], dict[str, int]]:
    """Convert (time, point, raw value) triples; returns (values kept, skipped by reason)."""
    out = state.convert([v for _, _, v in points], [t for t, _, _ in points], [p for _, p, _ in points])
    return out.values, out.skipped


# --- the converter on its own ---------------------------------------------------------------------------

def test_first_point_is_a_reference_and_later_points_give_differences() -> None:
    values, skipped = run(CumulativeDeltas(), [(T0 + i * S, counter(t), t) for i, t in
                                               enumerate([100, 103, 110, 110, 125])])
    assert values == [3.0, 7.0, 0.0, 15.0]
    assert skipped == {REFERENCE: 1}


def test_a_drop_of_a_monotonic_total_is_a_reset_not_a_negative_delta() -> None:
    # the client restarted but kept its start time (some SDKs do not send one): the drop alone tells
    values, skipped = run(CumulativeDeltas(), [(T0 + i * S, counter(t), t) for i, t in
                                               enumerate([500, 520, 3, 9, 20])])
    assert values == [20.0, 6.0, 11.0]
    assert skipped == {REFERENCE: 1, RESET: 1}


def test_a_new_start_time_is_a_reset_even_when_the_total_grew() -> None:
    points = [(T0 + S, counter(10), 10), (T0 + 2 * S, counter(12), 12),
              # restarted: counted 40 since its new start, more than before: still not a delta of 28
              (T0 + 3 * S, counter(40, start=T0 + 2 * S + 5), 40),
              (T0 + 4 * S, counter(41, start=T0 + 2 * S + 5), 41)]
    values, skipped = run(CumulativeDeltas(), points)
    assert values == [2.0, 1.0]
    assert skipped == {REFERENCE: 1, RESET: 1}


def test_out_of_order_and_repeated_points_are_skipped_and_leave_the_state_alone() -> None:
    points = [(T0 + 1 * S, counter(10), 10), (T0 + 3 * S, counter(30), 30),
              (T0 + 2 * S, counter(20), 20),  # late: older than the last point of its series
              (T0 + 3 * S, counter(30), 30),  # the same point again (a retried request)
              (T0 + 4 * S, counter(34), 34)]
    values, skipped = run(CumulativeDeltas(), points)
    assert values == [20.0, 4.0]  # 34 - 30: the late point did not become the reference
    assert skipped == {REFERENCE: 1, OUT_OF_ORDER: 2}


def test_a_non_monotonic_cumulative_sum_gives_negative_deltas_and_resets_only_on_a_new_start() -> None:
    points = [(T0 + i * S, counter(t, monotonic=False), t) for i, t in enumerate([5, 8, 2, -4])]
    points.append((T0 + 9 * S, counter(1, start=T0 + 8 * S, monotonic=False), 1))
    values, skipped = run(CumulativeDeltas(), points)
    assert values == [3.0, -6.0, -6.0]
    assert skipped == {REFERENCE: 1, RESET: 1}


def test_delta_and_gauge_points_pass_through_unchanged_beside_cumulative_ones() -> None:
    points = [(T0, None, 7.5), (T0 + S, counter(100), 100), (T0 + S, None, -2.0),
              (T0 + 2 * S, counter(101), 101),
              (T0 + 3 * S, None, math.inf)]
    state = CumulativeDeltas()
    out = state.convert([v for _, _, v in points], [t for t, _, _ in points], [p for _, p, _ in points])
    assert out.kept == [0, 2, 3, 4]
    assert out.values == [7.5, -2.0, 1.0, math.inf]


def test_histogram_parts_share_the_reset_and_the_mean_is_of_the_interval() -> None:
    def hist(part: str, count: int, total: float, start: int = T0) -> CumulativePoint:
        return CumulativePoint("h:" + part, start, True, total, count, part)

    rows = [(10, 100.0), (14, 180.0), (14, 180.0 + 0.0), (20, 240.0), (2, 500.0)]  # the last: restarted
    got: dict[str, tuple[list[float], dict[str, int]]] = {}
    for part in ("count", "sum", "mean"):
        state = CumulativeDeltas()
        got[part] = run(state, [(T0 + i * S, hist(part, n, s), 0.0) for i, (n, s) in enumerate(rows)])
    assert got["count"] == ([4.0, 0.0, 6.0], {REFERENCE: 1, RESET: 1})
    # the sum grew at the restart (500 > 240): the count's drop still makes it a reset, not a delta of 260
    assert got["sum"] == ([80.0, 0.0, 60.0], {REFERENCE: 1, RESET: 1})
    # 80 / 4, then an interval without values (skipped, not 0/0), then 60 / 6; not the running 240 / 20
    assert got["mean"] == ([20.0, 10.0], {REFERENCE: 1, EMPTY_INTERVAL: 1, RESET: 1})


def test_non_finite_totals_reach_the_detector_and_do_not_become_references() -> None:
    values, skipped = run(CumulativeDeltas(), [(T0, counter(10), 10), (T0 + S, counter(math.nan), math.nan),
                                               (T0 + 2 * S, counter(15), 15)])
    assert math.isnan(values[0]) and values[1:] == [5.0]
    assert skipped == {REFERENCE: 1}


def test_state_is_bounded_least_recently_seen_series_first_out() -> None:
    state = CumulativeDeltas(max_series=3)
    out = state.convert([1, 1, 1], [T0, T0, T0], [counter(1, s) for s in "abc"])
    assert out.evicted == 0 and len(state) == 3
    # touching "a" makes "b" the least recently seen; a new series "d" then pushes "b" out
    out = state.convert([2, 1], [T0 + S, T0 + S], [counter(2, "a"), counter(1, "d")])
    assert out.values == [1.0] and out.evicted == 1 and len(state) == 3
    # now c, a, d: touching c and a leaves d the least recently seen; "b" was forgotten, so it is a reference
    # again and pushes d out, and d in turn comes back as a reference and pushes c out
    out = state.convert([3, 4, 5, 7], [T0 + 2 * S] * 4,
                        [counter(3, "c"), counter(4, "a"), counter(5, "b"), counter(7, "d")])
    assert out.values == [2.0, 2.0] and out.skipped == {REFERENCE: 2} and out.evicted == 2
    assert [row[0] for row in state.dump()] == ["a", "b", "d"]


def test_state_round_trips_through_its_dump_including_lru_order_and_exact_integers() -> None:
    state = CumulativeDeltas(max_series=2)
    big = 2**60  # past float precision: int totals stay exact
    state.convert([big, 7.25], [T0, T0], [counter(big, "x"), CumulativePoint("h", T0, True, 7.25, 3, "mean")])
    copy = CumulativeDeltas.load(json.loads(json.dumps(state.dump())), max_series=2)
    assert copy.dump() == state.dump()
    for s in (state, copy):
        out = s.convert([big + 3, 9.25, 1], [T0 + S] * 3,
                        [counter(big + 3, "x"), CumulativePoint("h", T0, True, 9.25, 4, "mean"),
                         counter(1, "new")])
        assert out.values == [3.0, 2.0] and out.evicted == 1


# --- from OTLP points, through a live stream ------------------------------------------------------------

def sum_request(totals: Sequence[tuple[int, float]], *, start_ns: int = T0, instance: str = "i-1",
                temporality: int = AGGREGATION_TEMPORALITY_CUMULATIVE,
                attrs: Sequence[dict[str, str]] = ({},)) -> ExportMetricsServiceRequest:
    """A request with one cumulative monotonic counter ``orders``: (time, total) per point, each point once
    per attribute set of ``attrs``."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", "shop"), kv("service.instance.id", instance)])
    metric = rm.scope_metrics.add().metrics.add(name="orders")
    metric.sum.aggregation_temporality = temporality
    metric.sum.is_monotonic = True
    for time_ns, total in totals:
        for a in attrs:
            p = metric.sum.data_points.add(as_int=int(total), start_time_unix_nano=start_ns,
                                           time_unix_nano=time_ns)
            p.attributes.extend([kv(k, v) for k, v in a.items()])
    return req


def histogram_request(rows: Sequence[tuple[int, int, float]]) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(kv("service.name", "shop"))
    metric = rm.scope_metrics.add().metrics.add(name="lat")
    metric.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
    for time_ns, count, total in rows:
        metric.histogram.data_points.add(count=count, sum=total, start_time_unix_nano=T0,
                                         time_unix_nano=time_ns)
    return req


def only(message: ExportMetricsServiceRequest) -> dict[str, StreamBatch]:
    return extract_metrics(message, ROUTER)[0]


def spec(profile: str = "balanced", enabled: bool = True) -> DetectorSpec:
    return detector_spec("metrics", 1, "zstd", StreamSettings(profile=profile, enabled=enabled))


def new_stream(stream_id: str = "metrics/shop/orders") -> LiveStream:
    return LiveStream(StreamKey(stream_id, "metrics", "shop", stream_id.rsplit("/", 1)[1]), spec(), 0)


def fed_values(stream: LiveStream, batch: StreamBatch) -> list[float]:
    """What the stream hands its detector for ``batch`` (the stream's conversion, nothing else)."""
    converted, _, _ = stream._deltas(batch)
    return [float(v) for v in converted.events]


def test_extraction_marks_cumulative_points_and_only_them() -> None:
    cumulative = only(sum_request([(T0 + S, 5)]))["metrics/shop/orders"]
    delta = only(sum_request([(T0 + S, 5)], temporality=AGGREGATION_TEMPORALITY_DELTA))["metrics/shop/orders"]
    assert cumulative.events == [5] and delta.events == [5]
    point = cumulative.cumulative[0] if cumulative.cumulative else None
    assert point is not None and point.monotonic and point.start_ns == T0 and point.part == "value"
    assert delta.cumulative == [None]
    # the series identity: point attributes and the resource (a restarted client has a new instance id)
    ids = {b.cumulative[0].series for b in (  # type: ignore[index,union-attr]
        only(sum_request([(T0, 1)], attrs=({"route": "a"},)))["metrics/shop/orders"],
        only(sum_request([(T0, 1)], attrs=({"route": "b"},)))["metrics/shop/orders"],
        only(sum_request([(T0, 1)], instance="i-2"))["metrics/shop/orders"],
        cumulative)}
    assert len(ids) == 4


def test_series_of_one_stream_are_kept_apart_by_their_attributes() -> None:
    stream = new_stream()
    attrs = ({"route": "a"}, {"route": "b"})
    first = only(sum_request([(T0 + S, 100), (T0 + 2 * S, 110)], attrs=attrs))["metrics/shop/orders"]
    # a: 100 -> 110 and b: 100 -> 110 interleaved; one state per series gives 10 and 10, not 0, 10, -110...
    assert fed_values(stream, first) == [10.0, 10.0]


def test_a_client_restart_gives_a_reference_for_the_new_series_not_a_cliff() -> None:
    stream = new_stream()
    before = only(sum_request([(T0 + i * S, 1000 + 10 * i) for i in range(1, 4)]))["metrics/shop/orders"]
    after = only(sum_request([(T0 + i * S, 10 * (i - 3)) for i in range(4, 7)], start_ns=T0 + 3 * S,
                             instance="i-2"))["metrics/shop/orders"]
    assert fed_values(stream, before) == [10.0, 10.0]
    assert fed_values(stream, after) == [10.0, 10.0]


def test_histogram_sub_streams_become_interval_count_sum_and_mean() -> None:
    rows = [(T0 + S, 10, 100.0), (T0 + 2 * S, 14, 180.0), (T0 + 3 * S, 20, 240.0)]
    batches = only(histogram_request(rows))
    got = {}
    for stream_id, batch in batches.items():
        got[stream_id] = fed_values(new_stream(stream_id), batch)
    assert got == {"metrics/shop/lat:count": [4.0, 6.0], "metrics/shop/lat:sum": [80.0, 60.0],
                   "metrics/shop/lat:mean": [20.0, 10.0]}


def test_same_points_split_into_requests_differently_give_the_same_scores() -> None:
    """Determinism: a restart, a late point and two series, fed in one request or point by point."""
    totals = [(T0 + i * S, 3 * i + (i * i) % 7) for i in range(1, 700)]
    totals[400:] = [(t, v - totals[399][1]) for t, v in totals[400:]]  # a reset without a new start time
    totals.insert(300, (T0 + 250 * S, 1))  # a late point
    attrs = ({"route": "a"}, {"route": "b"})

    def outcome(sizes: Sequence[int]) -> tuple[list[float], dict[str, int], list[tuple[float, ...]]]:
        stream = new_stream()
        fed: list[float] = []
        skipped: dict[str, int] = {}
        windows: list[tuple[float, ...]] = []
        i = 0
        for n in sizes:
            batch = only(sum_request(totals[i:i + n], attrs=attrs))["metrics/shop/orders"]
            i += n
            fed.extend(fed_values(LiveStream.restore(stream.snapshot(), stream.key, stream.spec, 0), batch))
            result = stream.score(batch, 0)
            for reason, k in result.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + k
            windows.extend((w.start_offset, w.end_offset, w.start_time_ns, float(w.result.p_value))
                           for w in result.windows)
        assert i == len(totals)
        return fed, skipped, windows

    whole = outcome([len(totals)])
    pieces = outcome([1, 2, 3, 50, 1, 97, 146, 1, 399])
    assert whole == pieces
    assert whole[1] == {REFERENCE: 2, RESET: 2, OUT_OF_ORDER: 2}
    assert len(whole[0]) == 2 * len(totals) - 6 and min(whole[0]) >= 0


def test_the_series_state_survives_the_stream_snapshot() -> None:
    stream = new_stream()
    stream.score(only(sum_request([(T0 + S, 100), (T0 + 2 * S, 104)]))["metrics/shop/orders"], 0)
    restored = LiveStream.restore(stream.snapshot(), stream.key, stream.spec, 0)
    next_batch = only(sum_request([(T0 + 3 * S, 111)]))["metrics/shop/orders"]
    assert fed_values(restored, next_batch) == [7.0]
    # a snapshot taken under another detector configuration keeps the series too (they are not its state)
    other = spec("strict")
    assert fed_values(LiveStream.restore(stream.snapshot(), stream.key, other, 0), next_batch) == [7.0]


def test_a_paused_stream_keeps_its_series_current() -> None:
    stream = new_stream()
    stream.score(only(sum_request([(T0 + S, 100)]))["metrics/shop/orders"], 0)
    stream.spec = spec(enabled=False)
    for i in range(3):
        paused = only(sum_request([(T0 + (2 + i) * S, 200 + i)]))["metrics/shop/orders"]
        assert stream.score(paused, 0).scored == 0
    assert fed_values(stream, only(sum_request([(T0 + 9 * S, 210)]))["metrics/shop/orders"]) == [8.0]
