"""Running a real Pipeline (real detectors, real SQLite store and AnomalyWriter) over a list of requests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otlp_gateway.batch import TelemetryBatch
from otlp_gateway.detection import Pipeline
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.telemetry.metrics import GatewayMetrics

ENGINE = "test-engine"


class RecordingConsumer:
    """The next stage: keeps every batch it is handed (payload bytes as forwarded)."""

    def __init__(self) -> None:
        self.batches: list[TelemetryBatch] = []

    async def consume(self, batch: TelemetryBatch) -> None:
        self.batches.append(batch)


@dataclass
class Run:
    pipeline: Pipeline
    consumer: RecordingConsumer
    writer: AnomalyWriter
    store: SqliteStore
    metrics: GatewayMetrics

    async def feed(self, signal: str, messages: Sequence[Any], *,
                   concurrent: bool = False) -> list[TelemetryBatch]:
        batches = [TelemetryBatch(signal, m.SerializeToString(), _count(signal, m)) for m in messages]
        if concurrent:
            await asyncio.gather(*(self.pipeline.consume(b) for b in batches))
        else:
            for b in batches:
                await self.pipeline.consume(b)
        return batches

    async def stored(self) -> list[AnomalyRecord]:
        await self.pipeline.drain()
        assert await self.writer.flush(10.0), "anomaly rows not written within 10 s"
        page = await self.store.query_anomalies(AnomalyFilter(), 1000, None)
        return sorted(page.items, key=lambda r: (r.stream_id, r.window_start_offset))

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    async def close(self, grace: float = 10.0) -> None:
        await self.pipeline.shutdown(grace)
        await self.writer.shutdown(grace)
        await self.store.close()


async def open_run(db: Path, **settings: Any) -> Run:
    store = SqliteStore(db)
    await store.open()
    await store.migrate()
    metrics = GatewayMetrics()
    consumer = RecordingConsumer()
    writer = AnomalyWriter(store, db.parent / f"{db.stem}-spool", StoreSettings(flush_interval_seconds=0.05),
                           metrics)
    await writer.start()
    pipeline = Pipeline(DetectionSettings(**settings), consumer, writer, store, metrics, ENGINE)
    await pipeline.start()
    return Run(pipeline, consumer, writer, store, metrics)


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
