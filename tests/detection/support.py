"""Running a real DetectionStage (real detectors, SQLite store and AnomalyWriter) over a list of requests."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp_gateway.batch import ReservingConsumer, TelemetryBatch, Unreserved
from otlp_gateway.detection import DetectionStage
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.otlp.annotate import PREFIX
from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.streams.control import StreamControl
from otlp_gateway.streams.table import LiveStreamTable
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.otlp.otlp_data import LogSpec, normal_logs, normal_spans

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


NEW_ERROR = ("java.lang.NullPointerException: Cannot invoke \"Cart.total()\" at "
             "com.shop.CheckoutService.pay(CheckoutService.java:{line})")


def log_phase(seed: int) -> tuple[list[LogSpec], list[LogSpec], set[str]]:
    """1000 normal log records (warm-up at the balanced profile is B + 40 hops), then 120 more with 8
    injected records of a new error template."""
    normal = normal_logs(1000, seed)
    tail = normal_logs(120, seed + 1, t0=normal[-1].time_ns + 1_000_000)
    injected = set()
    for i in range(20, 28):
        tail[i] = dataclasses.replace(tail[i], body=NEW_ERROR.format(line=400 + i), severity=17,
                                      attrs={"thread": "worker-1", "exception.type": "NullPointerException"})
        injected.add(tail[i].span_id.hex())
    return normal, tail, injected


def annotated_logs(batch_payload: bytes) -> list[dict]:
    """Log records of a forwarded request that carry ``driftlock.anomaly.*`` (span id, body, marks)."""
    req = ExportLogsServiceRequest.FromString(batch_payload)
    out = []
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                attrs = {a.key: a.value for a in rec.attributes}
                if PREFIX + "id" in attrs:
                    out.append({"span_id": rec.span_id.hex(), "body": rec.body.string_value, **attrs})
    return out


def span_phase(seed: int) -> tuple[list, list, set[str]]:
    """Two span names; then a latency regression with a new ERROR status on one of them."""
    normal = normal_spans(2000, seed, names=("GET /cart", "POST /pay"))
    tail = normal_spans(200, seed + 1, names=("GET /cart", "POST /pay"), t0=normal[-1].start_ns + 10**6)
    injected = set()
    for i in range(41, 61, 2):  # POST /pay spans (odd positions)
        tail[i] = dataclasses.replace(tail[i], duration_ns=900_000_000, status=2)
        injected.add(tail[i].span_id.hex())
    return normal, tail, injected
