"""Record builders and store plumbing shared by the store tests."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from otlp_gateway.store import PostgresStore, SqliteStore, open_store
from otlp_gateway.store.base import AnomalyRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.waiting import eventually

T0 = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
SERVICES = ("checkout", "cart", "frontend")
SEVERITIES = ("low", "medium", "high", "critical")


def make_record(stream: int, offset: int, *, minute: float | None = None, service: str | None = None,
                signal: str = "traces", severity: str | None = None) -> AnomalyRecord:
    at = T0 + dt.timedelta(minutes=minute if minute is not None else offset)
    return AnomalyRecord(
        stream_id=f"stream-{stream}", signal=signal, service=service or SERVICES[stream % len(SERVICES)],
        window_start_offset=offset, window_end_offset=offset + 100,
        window_start=at - dt.timedelta(seconds=30), window_end=at,
        score=3.5 + offset / 1000, p_value=0.001, severity=severity or SEVERITIES[offset % 4],  # type: ignore[arg-type]
        figures={"novelty_bits_per_byte": 1.25, "novelty_bits_per_event": 40.0, "ncd": 0.42,
                 "compression_ratio_baseline": 3.1, "compression_ratio_window": 2.2,
                 "entropy_baseline": 4.5, "entropy_window": 5.25, "delta_bits": 812.0, "template_count": 7.0},
        explanation={"top_tokens": ["status=ERROR", "http.route=/cart"], "offset": offset},
        evidence=[{"trace_id": f"{offset:032x}", "span_id": f"{stream:016x}"}],
        detector="cm3", config_hash="cafe1234", seed=42, engine_version="0.1.0",
        detected_at=at,
    )


@dataclass
class StoreTarget:
    """One backend under test: settings for ``open_store`` plus where its files go."""

    backend: str
    settings: StoreSettings
    data_dir: Path
    metrics: GatewayMetrics

    def new_store(self) -> PostgresStore | SqliteStore:
        return open_store(self.settings, self.data_dir, self.metrics)

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[PostgresStore | SqliteStore]:
        store = self.new_store()
        await store.open()
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()


def target_for(backend: str, tmp_path: Path, pg_dsn: str | None) -> StoreTarget:
    if backend == "postgres":
        assert pg_dsn is not None
        settings = StoreSettings(database_url=SecretStr(pg_dsn), max_open_conns=4, max_idle_conns=1)
    else:
        settings = StoreSettings(sqlite_path=str(tmp_path / "store.db"))
    return StoreTarget(backend, settings, tmp_path, GatewayMetrics())


def run(coro: Awaitable[object], timeout: float = 60.0) -> object:
    async def bounded() -> object:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


wait_until = eventually  # the store tests' name for the shared async poll
