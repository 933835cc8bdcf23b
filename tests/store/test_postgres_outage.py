"""The Postgres server is SIGKILLed mid-ingest and restarted: every anomaly ends up stored exactly once.

Also checks what the runbook's alerts read during the outage: ``connection_state="failed"`` rises while
the server is down, and the writer's spool gauge holds the rows meanwhile.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from otlp_gateway.store import AnomalyWriter, PostgresStore
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.postgres import PgCluster
from tests.store.support import make_record, run, wait_until

pytestmark = pytest.mark.postgres

TOTAL = 3000
CHUNK = 25


def _gauge(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_postmaster_killed_mid_ingest_loses_and_duplicates_nothing(pg_cluster: PgCluster, pg_dsn: str,
                                                                    tmp_path: Path) -> None:
    settings = StoreSettings(database_url=SecretStr(pg_dsn), max_open_conns=3, max_idle_conns=1,
                             batch_max_rows=100, flush_interval_seconds=0.02,
                             retry={"initial_interval_seconds": 0.05, "max_interval_seconds": 0.5})
    metrics = GatewayMetrics()
    rows = [make_record(s, o) for s in range(6) for o in range(TOTAL // 6)]

    async def body() -> None:
        store = PostgresStore(settings, metrics, acquire_timeout=1.0, stats_interval=0.1)
        await store.open()
        try:
            await outage(store)
        finally:
            await store.close()

    async def outage(store: PostgresStore) -> None:
        writer = AnomalyWriter(store, tmp_path / "spool", settings, metrics)
        await writer.start()
        submitted = 0

        async def ingest(upto: int) -> None:
            nonlocal submitted
            while submitted < upto:
                writer.submit(rows[submitted:submitted + CHUNK])
                submitted += CHUNK
                await asyncio.sleep(0.002)  # ingest pacing: the loop must keep running throughout

        await ingest(TOTAL // 3)
        await asyncio.to_thread(pg_cluster.kill)  # crash: no shutdown checkpoint, clients cut off
        await ingest(2 * TOTAL // 3)  # ingest goes on while the database is gone
        await wait_until(lambda: _gauge(metrics, "driftlock_store_spool_rows") > 0, 30, "rows spooled")
        await wait_until(lambda: _gauge(metrics, "driftlock_db_connections_total",
                                        connection_state="failed") > 0, 30, "failed connections reported")
        await asyncio.to_thread(pg_cluster.restart)  # crash recovery replays the WAL
        await ingest(TOTAL)
        assert await writer.flush(60), f"{writer.pending_rows} rows still pending"
        await writer.shutdown(5)

    run(body(), timeout=120)
    with psycopg.connect(pg_dsn) as conn:
        stored = [r[0] for r in conn.execute("SELECT id FROM anomalies").fetchall()]
    assert len(stored) == TOTAL
    assert sorted(stored) == sorted(r.id for r in rows)
    assert _gauge(metrics, "driftlock_store_spool_rows") == 0
    assert _gauge(metrics, "driftlock_store_write_failures_total") > 0
    assert _gauge(metrics, "driftlock_store_anomalies_written_total", backend="postgres") == TOTAL
