"""Running a real DetectionStage (real detectors, SQLite store and AnomalyWriter) over a list of requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otlp_gateway.batch import ReservingConsumer, TelemetryBatch, Unreserved
from otlp_gateway.detection import DetectionStage
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.streams.control import StreamControl
from otlp_gateway.streams.table import LiveStreamTable
from otlp_gateway.telemetry.metrics import GatewayMetrics

ENGINE = "test-engine"


class RecordingConsumer:
    """The next stage: keeps every batch it is handed (payload bytes as forwarded)."""

    def __init__(self) -> None:
        self.batches: list[TelemetryBatch] = []

    async def consume(self, batch: TelemetryBatch) -> None:
        self.batches.append(batch)

    def reserve(self, batch: TelemetryBatch) -> Unreserved:
        return Unreserved(self)


@dataclass
class Run:
    stage: DetectionStage
    consumer: RecordingConsumer
    writer: AnomalyWriter
    store: SqliteStore
    metrics: GatewayMetrics
    control: StreamControl

    @property
    def streams(self) -> LiveStreamTable:
        return self.stage.streams

    async def feed(self, signal: str, messages: Sequence[Any], *,
                   concurrent: bool = False) -> list[TelemetryBatch]:
        batches = [TelemetryBatch(signal, m.SerializeToString(), _count(signal, m)) for m in messages]
        if concurrent:
            await asyncio.gather(*(self.stage.consume(b) for b in batches))
        else:
            for b in batches:
                await self.stage.consume(b)
        return batches

    async def stored(self) -> list[AnomalyRecord]:
        await self.stage.drain()
        assert await self.writer.flush(10.0), "anomaly rows not written within 10 s"
        page = await self.store.query_anomalies(AnomalyFilter(), 1000, None)
        return sorted(page.items, key=lambda r: (r.stream_id, r.window_start_offset))

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    async def close(self, grace: float = 10.0) -> None:
        await self.stage.shutdown(grace)
        await self.writer.shutdown(grace)
        await self.store.close()


async def open_run(db: Path, next_stage: Callable[[GatewayMetrics], ReservingConsumer] | None = None,
                   **settings: Any) -> Run:
    """A started stage; it forwards to a ``RecordingConsumer`` unless ``next_stage(metrics)`` gives one."""
    store = SqliteStore(db)
    await store.open()
    await store.migrate()
    metrics = GatewayMetrics()
    consumer = RecordingConsumer()
    writer = AnomalyWriter(store, db.parent / f"{db.stem}-spool", StoreSettings(flush_interval_seconds=0.05),
                           metrics)
    await writer.start()
    # scoring results must not depend on how loaded the machine is: the budget has tests of its own
    detection = DetectionSettings(**{"budget_ms": 60_000, **settings})
    stage = DetectionStage.create(detection, next_stage(metrics) if next_stage else consumer, writer, store,
                                  metrics, ENGINE)
    await stage.start()
    return Run(stage, consumer, writer, store, metrics,
               StreamControl(detection.stream_settings(), store, stage.streams))


def _count(signal: str, message: Any) -> int:
    if signal == "traces":
        return sum(len(ss.spans) for rs in message.resource_spans for ss in rs.scope_spans)
    if signal == "logs":
        return sum(len(sl.log_records) for rl in message.resource_logs for sl in rl.scope_logs)
    return sum(len(getattr(m, m.WhichOneof("data")).data_points) for rm in message.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics)


def chunks(items: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    """Split ``items`` into consecutive chunks, cycling through ``sizes``."""
    out, i, k = [], 0, 0
    while i < len(items):
        n = sizes[k % len(sizes)]
        out.append(list(items[i:i + n]))
        i += n
        k += 1
    return out


def summary(records: Sequence[AnomalyRecord]) -> list[tuple]:
    """What must be identical across runs and request splits."""
    return [(r.id, r.stream_id, r.window_start_offset, r.window_end_offset, round(r.score, 9),
             round(r.p_value, 12), r.severity, tuple(e.get("span_id", "") for e in r.evidence), r.config_hash)
            for r in records]
