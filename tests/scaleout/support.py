"""Scale-out test plumbing: gateway child processes sharing one Postgres, their metrics, the traffic the
ring client sends, and the single-gateway reference run the scaled-out results must equal."""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from otlp_gateway.store import open_store
from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord, StreamInfo, all_streams
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.detection.support import open_run, summary
from tests.fixtures.gateway import GatewayProcess, gateway_config_dict
from tests.otlp.otlp_data import LogSpec, normal_logs
from tests.scaleout.ring import sdk_log_records

SCOPE = "app.orders"
WARM_UP = 1000
"""Normal records per service before the first move (the balanced profile warms up within them)."""
TAIL = 120
"""Records per service after each move; a burst of a new error template at ``BURST`` within them."""
BURST = range(20, 28)
CHUNK = 200
"""Records per export request."""
OWNERSHIP = {"heartbeat_interval_seconds": 0.2, "lease_ttl_seconds": 2.0, "handoff_quiet_seconds": 0.4,
             "handoff_timeout_seconds": 3.0}
DETECTION = {
    # no periodic snapshot during the test: a stream that moves can only resume from its handoff snapshot
    "snapshot_interval_seconds": 3600,
    # scoring never depends on the budget; a generous one keeps annotation out of the comparison's way
    "budget_ms": 250,
}
NEW_ERROR = ('java.lang.NullPointerException: Cannot invoke "Cart.total()" at '
             "com.shop.CheckoutService.pay(CheckoutService.java:{line})")


def start_gateway(tmp_path: Path, name: str, dsn: str, forward_to: str, **ownership: float) -> GatewayProcess:
    """A gateway child process named ``name`` (its instance id in the leases) on the shared Postgres."""
    workdir = tmp_path / name
    workdir.mkdir()
    config = gateway_config_dict(
        workdir / "data", forward_to=forward_to,
        store={"database_url": dsn, "flush_interval_seconds": 0.1},
        detection={**DETECTION, "ownership": {**OWNERSHIP, **ownership, "instance_id": name}})
    return GatewayProcess(config, workdir).start()


def seed_of(service: str) -> int:
    return zlib.crc32(service.encode())


def phase_records(service: str, phase: int, burst: bool = False) -> list[LogSpec]:
    """Phase 0: warm-up; phases 1 and 2: ``TAIL`` normal records, with a burst of a new error template at
    ``BURST`` when ``burst`` (once per stream: right after an anomaly the stream's calibration is wider)."""
    t0 = 1_700_000_000 * 10**9
    if phase == 0:
        return normal_logs(WARM_UP, seed_of(service), service=service, scope=SCOPE, t0=t0)
    start = t0 + (WARM_UP + (phase - 1) * TAIL) * 1_000_000
    tail = normal_logs(TAIL, seed_of(service) + phase, service=service, scope=SCOPE, t0=start)
    for i in BURST if burst else ():
        tail[i] = dataclasses.replace(tail[i], body=NEW_ERROR.format(line=400 + i), severity=17,
                                      attrs={"thread": "worker-1", "exception.type": "NullPointerException"})
    return tail


def chunks(records: Sequence[LogSpec]) -> list[list[LogSpec]]:
    return [list(records[i:i + CHUNK]) for i in range(0, len(records), CHUNK)]


def metrics_of(gateway: GatewayProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(gateway.api_url + "/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def metric(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def _stored(dsn: str, tmp_path: Path) -> tuple[list[AnomalyRecord], list[StreamInfo]]:
    store = open_store(StoreSettings(database_url=SecretStr(dsn), migrate_on_start=False), tmp_path,
                       GatewayMetrics())
    await store.open()
    try:
        records: list[AnomalyRecord] = []
        cursor = None
        while True:
            page = await store.query_anomalies(AnomalyFilter(), 1000, cursor)
            records.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        streams = await all_streams(store)
    finally:
        await store.close()
    return sorted(records, key=lambda r: (r.stream_id, r.window_start_offset)), streams


def stored(dsn: str, tmp_path: Path) -> tuple[list[AnomalyRecord], list[StreamInfo]]:
    """Every anomaly row (ordered by stream and window) and every stream row in the shared Postgres."""
    return asyncio.run(_stored(dsn, tmp_path))


def reference_anomalies(requests: Sequence[list[LogSpec]], db: Path) -> list[AnomalyRecord]:
    """The same requests, in the same order, through one in-process detection stage (SQLite)."""

    async def scenario() -> list[AnomalyRecord]:
        run = await open_run(db)
        try:
            messages: list[Any] = [encode_logs(sdk_log_records(r)) for r in requests]
            await run.feed("logs", messages)
            return await run.stored()
        finally:
            await run.close()

    return asyncio.run(scenario())


__all__ = ["summary"]
