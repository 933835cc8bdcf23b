"""A real detection stage with the incident sink behind it (real cbad detectors with their incident
tracker, SQLite store, anomaly writer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otlp_gateway.batch import TelemetryBatch
from otlp_gateway.detection import DetectionStage
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.incidents.notify import Notifier
from otlp_gateway.incidents.records import IncidentLinks
from otlp_gateway.incidents.settings import IncidentSettings
from otlp_gateway.incidents.sink import IncidentSink
from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord, IncidentFilter, IncidentRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.streams.control import StreamControl
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.detection.support import RecordingConsumer, _count
from tests.otlp.otlp_data import LogSpec, logs_request, normal_logs

UI = "http://driftlock.example"
T0 = 1_700_000_000 * 10**9
STREAM = "logs/checkout/app.orders"
NEW_ERROR = "java.lang.IllegalStateException: Redis pool exhausted after {ms} ms (host cache-{n})"


@dataclass
class IncidentRun:
    stage: DetectionStage
    sink: IncidentSink
    writer: AnomalyWriter
    store: SqliteStore
    metrics: GatewayMetrics
    consumer: RecordingConsumer
    control: StreamControl

    async def feed(self, records: Sequence[LogSpec], chunk: int = 100) -> None:
        for start in range(0, len(records), chunk):
            message = logs_request(records[start:start + chunk])
            payload = message.SerializeToString()
            await self.stage.consume(TelemetryBatch("logs", payload, _count("logs", message)))

    async def settle(self) -> None:
        """Everything decided so far is in the store."""
        await self.stage.drain()
        self.sink.flush_scores()
        assert await self.writer.flush(20.0), "rows not written within 20 s"

    async def incidents(self) -> list[IncidentRecord]:
        await self.settle()
        return (await self.store.query_incidents(IncidentFilter(), 100, None)).items

    async def anomalies(self) -> list[AnomalyRecord]:
        await self.settle()
        return (await self.store.query_anomalies(AnomalyFilter(), 1000, None)).items

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def close(self) -> None:
        await self.stage.shutdown(10)
        await self.sink.shutdown(5)
        await self.writer.shutdown(5)
        await self.store.close()


async def open_incident_run(db: Path, notifier: Notifier | None = None, **settings: Any) -> IncidentRun:
    store = SqliteStore(db)
    await store.open()
    await store.migrate()
    metrics = GatewayMetrics()
    writer = AnomalyWriter(store, db.parent / f"{db.stem}-spool", StoreSettings(flush_interval_seconds=0.05),
                           metrics)
    await writer.start()
    sink = IncidentSink(writer, store, metrics, IncidentSettings(score_flush_interval_seconds=0.05),
                        IncidentLinks(lambda: UI), notifier)
    await sink.start()
    detection = DetectionSettings(**{"budget_ms": 60_000, **settings})
    consumer = RecordingConsumer()
    stage = DetectionStage.create(detection, consumer, writer, store, metrics, "test-engine", incidents=sink)
    await stage.start()
    return IncidentRun(stage, sink, writer, store, metrics, consumer,
                       StreamControl(detection.stream_settings(), store, stage.streams))


def fault_phase(seed: int = 7) -> tuple[list[LogSpec], list[LogSpec], list[LogSpec], set[str]]:
    """1000 normal records (the warm-up), 60 with a burst of 8 records of a new error template, then 200
    normal ones again; one record per millisecond from ``T0``."""
    records = normal_logs(1260, seed)
    injected = set()
    for i in range(1020, 1028):
        records[i] = dataclasses.replace(
            records[i], body=NEW_ERROR.format(ms=900 + i, n=i % 3), severity=17,
            attrs={"thread": "worker-9", "exception.type": "IllegalStateException"})
        injected.add(records[i].span_id.hex())
    return records[:1000], records[1000:1060], records[1060:], injected
