"""The stage reserves a place in the exporter's queue before scoring: a request the exporter would refuse
is refused unscored (the client's retry must not be scored twice), and two concurrent requests cannot both
count on the last place."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from otlp_gateway.batch import TelemetryBatch
from otlp_gateway.errors import OverloadedError
from otlp_gateway.exporter import Exporter
from otlp_gateway.exporter.settings import ExporterSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.detection.support import open_run
from tests.fixtures.waiting import eventually, free_port
from tests.otlp.otlp_data import logs_request, normal_logs


def _one_place_exporter(tmp_path: Path, made: list[Exporter]):
    def make(metrics: GatewayMetrics) -> Exporter:
        # nothing listens on the port: the first request stays in the queue, which holds one
        settings = ExporterSettings(endpoint=f"grpc://127.0.0.1:{free_port()}",
                                    queue={"capacity_requests": 1, "persistent": False})
        made.append(Exporter(settings, tmp_path / "export", metrics))
        return made[-1]

    return make


def test_two_concurrent_requests_cannot_both_take_the_last_place(tmp_path: Path) -> None:
    async def scenario() -> None:
        made: list[Exporter] = []
        run = await open_run(tmp_path / "r.db", _one_place_exporter(tmp_path, made))
        [exporter] = made
        await exporter.start()
        first = logs_request(normal_logs(50, 1))
        second = logs_request(normal_logs(60, 2, t0=2_000_000_000 * 10**9))
        # concurrent: both are admitted by the stage before either reaches the queue
        results = await asyncio.gather(run.feed("logs", [first]), run.feed("logs", [second]),
                                       return_exceptions=True)
        assert not isinstance(results[0], BaseException), results[0]
        assert isinstance(results[1], OverloadedError), results[1]
        await run.stage.drain()
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 50
        assert run.metric("otelcol_exporter_enqueue_failed_log_records_total") == 60
        assert run.metric("otelcol_exporter_queue_size") == 1
        # the refused request left nothing held: once the queue has room again it is taken
        await exporter.shutdown(0.0)
        await run.close()

    asyncio.run(scenario())


def test_a_held_place_is_given_back_when_the_client_goes_away(tmp_path: Path) -> None:
    """The caller is cancelled (client disconnect) while its request waits for detection: the place it
    held is released, its detection still completes."""

    async def scenario() -> None:
        made: list[Exporter] = []
        run = await open_run(tmp_path / "c.db", _one_place_exporter(tmp_path, made))
        [exporter] = made
        await exporter.start()
        probe = TelemetryBatch("logs", b"probe", 1)

        def queue_full() -> bool:
            try:
                exporter.reserve(probe).release()
            except OverloadedError:
                return True
            return False

        gate = threading.Event()
        run.stage._extraction.submit(gate.wait)  # the extraction thread busy, as while kernels compile
        batch = TelemetryBatch("logs", logs_request(normal_logs(40, 1)).SerializeToString(), 40)
        waiting = asyncio.create_task(run.stage.consume(batch))
        await eventually(queue_full, 10, "the request to hold the queue's one place")
        waiting.cancel()
        await asyncio.wait([waiting])
        assert not queue_full(), "the cancelled request's place was not given back"
        gate.set()
        await run.stage.drain()
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 40
        assert run.metric("otelcol_exporter_queue_size") == 0  # never forwarded: the client retries it
        await exporter.shutdown(0.0)
        await run.close()

    asyncio.run(scenario())


def test_a_request_the_exporter_would_refuse_is_not_scored(tmp_path: Path) -> None:
    """The client retries a refused request: scoring it first would score its events twice."""

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
