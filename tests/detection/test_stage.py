"""The detection stage end to end: real detectors, a real SQLite store, a recording next stage."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otlp_gateway.errors import RetryableError
from otlp_gateway.otlp.annotate import PREFIX
from otlp_gateway.store.base import all_streams
from otlp_gateway.streams.control import InvalidStreamChange, UnknownStreamError
from tests.detection.support import (
    ENGINE,
    annotated_logs,
    chunks,
    log_phase,
    open_run,
    span_phase,
    summary,
)
from tests.otlp.otlp_data import (
    gauge_request,
    logs_request,
    normal_logs,
    normal_spans,
    traces_request,
)


def test_new_error_template_is_detected_stored_andannotated_logs(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "a.db")
        normal, tail, injected = log_phase(7)
        normal_batches = await run.feed("logs", [logs_request(c) for c in chunks(normal, [100])])
        assert await run.stored() == [], "no anomalies in the normal phase at the balanced profile"
        assert [b.payload for b in run.consumer.batches] == [b.payload for b in normal_batches]
        assert all(b.payload is run.consumer.batches[i].payload for i, b in enumerate(normal_batches))
        [tail_batch] = await run.feed("logs", [logs_request(tail)])
        records = await run.stored()
        assert records, "the new error template must be reported"
        blamed = {e["span_id"] for r in records for e in r.evidence}
        assert blamed and blamed <= injected, (blamed, injected)
        r = records[0]
        assert (r.signal, r.service, r.stream_id, r.detector, r.engine_version) == \
            ("logs", "checkout", "logs/checkout/app.orders", "cbad", ENGINE)
        assert r.window_start <= r.window_end and r.seed == 42 and r.config_hash
        assert r.explanation.get("sentence")
        annotated = annotated_logs(run.consumer.batches[-1].payload)
        assert annotated and {a["span_id"] for a in annotated} <= injected
        ids = {r.id for r in records}
        assert all(a[PREFIX + "id"].string_value in ids for a in annotated)
        assert all(a[PREFIX + "stream_id"].string_value == "logs/checkout/app.orders" for a in annotated)
        # add, never replace: the forwarded request still holds everything that was sent
        sent = ExportLogsServiceRequest.FromString(tail_batch.payload)
        got = ExportLogsServiceRequest.FromString(run.consumer.batches[-1].payload)
        for a, b in zip(sent.resource_logs[0].scope_logs[0].log_records,
                        got.resource_logs[0].scope_logs[0].log_records, strict=True):
            assert list(b.attributes)[: len(a.attributes)] == list(a.attributes)
            assert (a.body, a.trace_id, a.span_id, a.time_unix_nano) == (b.body, b.trace_id, b.span_id,
                                                                         b.time_unix_nano)
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 1120
        assert run.metric("driftlock_cbad_compression_ratio", {"stream_type": "logs"}) > 1.0
        assert sum(run.metric("driftlock_anomalies_detected_total",
                              {"stream_type": "logs", "severity": s, "service": "checkout"})
                   for s in ("low", "medium", "high", "critical")) == len(records)
        assert run.metric("driftlock_anomaly_processing_duration_seconds_count") == 11
        info = await run.control.get_stream("logs/checkout/app.orders")
        assert info is not None and info.events_seen == 1120 and info.state in ("active", "drifted")
        await run.close()

    asyncio.run(scenario())


def test_span_latency_regression_with_new_status_is_detected_identically_across_splits(
        tmp_path: Path) -> None:
    normal, tail, injected = span_phase(11)
    everything = normal + tail

    async def scenario(db: str, sizes: list[int], concurrent: bool) -> tuple[list, list[bytes]]:
        run = await open_run(tmp_path / db)
        requests = [traces_request(c) for c in chunks(everything, sizes)]
        await run.feed("traces", requests, concurrent=concurrent)
        records = await run.stored()
        normal_records = [r for r in records if r.window_end_offset <= 1000]
        assert normal_records == [], "no anomalies in the normal phase"
        payloads = [b.payload for b in run.consumer.batches]
        await run.close()
        return records, payloads

    first, payloads = asyncio.run(scenario("one.db", [240], False))
    assert first, "the regression must be reported"
    assert {r.stream_id for r in first} == {"traces/checkout/POST /pay"}
    # windows holding injected spans blame only injected spans (later windows may blame their own outliers)
    holding = [r for r in first if r.window_start_offset < 1030 and r.window_end_offset > 1020]
    assert holding and all({e["span_id"] for e in r.evidence} <= injected for r in holding)
    assert all(e.get("trace_id") and e.get("span_id") for r in first for e in r.evidence)
    annotated = []
    for payload in payloads:
        for rs in ExportTraceServiceRequest.FromString(payload).resource_spans:
            for ss in rs.scope_spans:
                annotated += [s.span_id.hex() for s in ss.spans
                              if any(a.key == PREFIX + "id" for a in s.attributes)]
    assert set(annotated) & injected
    assert set(annotated) <= {e["span_id"] for r in first for e in r.evidence}  # annotated = blamed
    again, _ = asyncio.run(scenario("two.db", [240], False))
    assert summary(again) == summary(first)
    split, _ = asyncio.run(scenario("three.db", [37, 512, 3, 101], True))
    assert summary(split) == summary(first)


def test_lru_eviction_and_restore_give_the_same_results_as_unbounded(tmp_path: Path) -> None:
    names = ("GET /a", "GET /b", "GET /c")
    normal = normal_spans(3000, 3, names=names)
    tail = normal_spans(300, 4, names=names, t0=normal[-1].start_ns + 10**6)
    for i in range(60, 90, 3):
        tail[i] = dataclasses.replace(tail[i], duration_ns=700_000_000, status=2)
    # 50 events per stream per request: streams are evicted and restored from the first request on
    requests = [traces_request(c) for c in chunks(normal + tail, [150])]

    async def scenario(db: str, max_live: int) -> tuple[list, float, float]:
        run = await open_run(tmp_path / db, max_live_streams=max_live)
        for request in requests:  # each request touches every stream, so a small bound forces evictions
            await run.feed("traces", [request])
            assert len(run.streams.streams()) <= max_live
        records = await run.stored()
        evicted, live = run.metric("driftlock_streams_evicted_total"), run.metric("driftlock_streams_live")
        await run.close()
        return records, evicted, live

    unbounded, evicted, live = asyncio.run(scenario("big.db", 100))
    assert evicted == 0 and live == 3
    bounded, evicted, live = asyncio.run(scenario("small.db", 2))
    assert evicted > 10 and live == 2
    assert unbounded and summary(bounded) == summary(unbounded)


def test_restart_resumes_streams_without_a_new_warm_up(tmp_path: Path) -> None:
    normal, tail, _ = log_phase(21)
    first_part = [logs_request(c) for c in chunks(normal, [100])]
    second_part = [logs_request(c) for c in chunks(tail, [60])]

    async def uninterrupted() -> list:
        run = await open_run(tmp_path / "u.db")
        await run.feed("logs", first_part + second_part)
        records = await run.stored()
        await run.close()
        return records

    async def restarted() -> list:
        run = await open_run(tmp_path / "r.db")
        await run.feed("logs", first_part)
        await run.close()  # shutdown snapshots every live stream
        run = await open_run(tmp_path / "r.db")
        assert run.streams.streams() == []  # nothing restored eagerly
        await run.feed("logs", second_part[:1])
        [stream] = run.streams.streams()
        assert stream.detector.warmed_up and stream.events_seen == 1060 and stream.state != "warming"
        await run.feed("logs", second_part[1:])
        records = await run.stored()
        await run.close()
        return records

    expected = asyncio.run(uninterrupted())
    assert expected
    assert summary(asyncio.run(restarted())) == summary(expected)


def test_full_detection_queue_forwards_unscored_and_counts(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "q.db", queue_max_events=100)
        batches = await run.feed("logs", [logs_request(normal_logs(150, 1))])
        assert run.consumer.batches[0].payload is batches[0].payload
        assert run.metric("driftlock_detector_dropped_events_total", {"stream_type": "logs"}) == 150
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 0
        await run.feed("logs", [logs_request(normal_logs(80, 2))])
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 80
        await run.close()
        with pytest.raises(RetryableError):
            await run.stage.consume(batches[0])
        await run.stage.shutdown(1.0)  # idempotent

    asyncio.run(scenario())


def test_metric_points_are_scored_stored_and_forwarded_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    values = 50 + rng.normal(0, 1, 1400)
    values[1300:1310] = 400.0

    async def scenario() -> None:
        run = await open_run(tmp_path / "m.db")
        requests = [gauge_request("svc", "queue.depth", values[i:i + 100], start_ns=10**18 + i * 10**9)
                    for i in range(0, 1400, 100)]
        batches = await run.feed("metrics", requests)
        records = await run.stored()
        assert [b.payload for b in run.consumer.batches] == [b.payload for b in batches]
        assert records and {r.stream_id for r in records} == {"metrics/svc/queue.depth"}
        assert all(r.detector == "numeric" for r in records)
        assert min(r.window_start_offset for r in records) >= 1200
        assert run.metric("driftlock_detector_events_total", {"stream_type": "metrics"}) == 1400
        await run.close()

    asyncio.run(scenario())


def test_stream_control_changes_apply_without_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "c.db")
        control = run.control
        await run.feed("logs", [logs_request(normal_logs(450, 1))])
        sid = "logs/checkout/app.orders"
        [info] = (await control.list_streams()).items
        assert info.stream_id == sid and info.events_seen == 450 and info.profile == "balanced"
        with pytest.raises(UnknownStreamError):
            await control.update_stream("nope", {"enabled": False})
        with pytest.raises(InvalidStreamChange):
            await control.update_stream(sid, {"hop": 500})
        updated = await control.update_stream(sid, {"profile": "sensitive", "window": 40})
        assert updated.profile == "sensitive" and updated.settings["window"] == 40
        assert updated.state == "warming"
        await run.feed("logs", [logs_request(normal_logs(20, 2))])
        stream = run.streams.get(sid)
        assert stream is not None and stream.detector.events_seen == 20 and stream.events_seen == 470
        assert stream.spec.config.window == 40 and stream.state == "warming"
        await control.update_stream(sid, {"enabled": False})
        await run.feed("logs", [logs_request(normal_logs(30, 3))])
        assert stream.events_seen == 470 and stream.detector.events_seen == 20  # paused, detector kept
        stored = await run.store.get_stream(sid)
        assert stored is not None and stored.settings["enabled"] is False and stored.profile == "sensitive"
        await run.close()
        # the API's settings survive a restart
        run = await open_run(tmp_path / "c.db")
        await run.feed("logs", [logs_request(normal_logs(5, 4))])
        stream = run.streams.get(sid)
        assert stream is not None and stream.spec.config.profile == "sensitive"
        assert not stream.spec.config.enabled
        await run.close()

    asyncio.run(scenario())


def test_detection_runs_off_the_event_loop(tmp_path: Path) -> None:
    """While a large batch is being scored the loop keeps serving other coroutines."""

    async def scenario() -> None:
        run = await open_run(tmp_path / "l.db")
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        rng = random.Random(1)
        await run.feed("logs", [logs_request(normal_logs(50, rng.randint(0, 99)))])
        (stream,) = run.streams.streams()
        scoring_threads: set[int] = set()
        update = stream.detector.update

        def recording_update(events):  # the real detector, noting which thread runs it
            scoring_threads.add(threading.get_ident())
            return update(events)

        stream.detector.update = recording_update
        task = asyncio.create_task(ticker())
        await run.feed("logs", [logs_request(normal_logs(3000, rng.randint(0, 99)))])
        stop.set()
        await task
        assert scoring_threads and threading.get_ident() not in scoring_threads
        assert ticks > 10
        await run.close()

    asyncio.run(scenario())


def test_a_flood_of_distinct_stream_keys_stays_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "f.db", max_live_streams=5)
        spans = normal_spans(400, 9, names=[f"op-{i}" for i in range(200)])
        batches = await run.feed("traces", [traces_request(c) for c in chunks(spans, [100])])
        assert len(run.streams.streams()) == 5
        assert run.metric("driftlock_streams_live") == 5
        # 200 names seen twice each: 200 - 5 evicted after the first pass, 200 - 5 + 5 after the second
        assert run.metric("driftlock_streams_evicted_total") == 395
        assert [b.payload for b in run.consumer.batches] == [b.payload for b in batches]
        await run.stage.drain()
        stored = await all_streams(run.store)
        assert len(stored) == 200
        assert sum(1 for s in stored if s.state == "evicted") == 195
        evicted = next(s.stream_id for s in stored if s.state == "evicted")
        assert await run.store.load_state(evicted) is not None
        await run.close()

    asyncio.run(scenario())


def test_streams_are_snapshotted_periodically(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "p.db", snapshot_interval_seconds=0.05)
        await run.feed("logs", [logs_request(normal_logs(120, 1))])
        sid = "logs/checkout/app.orders"
        deadline = asyncio.get_running_loop().time() + 10
        while await run.store.load_state(sid) is None:
            assert asyncio.get_running_loop().time() < deadline, "no periodic snapshot within 10 s"
            await asyncio.sleep(0.02)
        info = await run.store.get_stream(sid)
        assert info is not None and info.events_seen == 120
        await run.close()

    asyncio.run(scenario())


def test_an_unparseable_request_is_forwarded_as_received_and_counted(tmp_path: Path) -> None:
    from otlp_gateway.batch import TelemetryBatch

    async def scenario() -> None:
        run = await open_run(tmp_path / "bad.db")
        bad = TelemetryBatch("traces", b"\x0a\xff\xff\xff\xff\x0f", 3)
        await run.stage.consume(bad)
        assert run.consumer.batches == [bad] and bad.payload == b"\x0a\xff\xff\xff\xff\x0f"
        assert run.metric("driftlock_detector_dropped_events_total", {"stream_type": "traces"}) == 3
        await run.close()

    asyncio.run(scenario())


def test_a_request_the_exporter_would_refuse_is_not_scored(tmp_path: Path) -> None:
    """The client retries a refused request: scoring it first would score its events twice."""
    from otlp_gateway.errors import OverloadedError
    from otlp_gateway.exporter import Exporter
    from otlp_gateway.exporter.settings import ExporterSettings

    async def scenario() -> None:
        # an exporter not started refuses everything
        run = await open_run(tmp_path / "x.db", lambda metrics: Exporter(
            ExporterSettings(endpoint="grpc://127.0.0.1:9"), tmp_path / "export", metrics))
        with pytest.raises(OverloadedError):
            await run.feed("logs", [logs_request(normal_logs(50, 1))])
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 0
        assert run.metric("otelcol_exporter_enqueue_failed_log_records_total") == 50
        await run.close()

    asyncio.run(scenario())
