"""Backend selection, pool sizing from the runbook knobs, and a database that is down at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from otlp_gateway.config import load_config
from otlp_gateway.store import PostgresStore, SqliteStore, StoreUnavailableError, open_store
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.waiting import free_port
from tests.store.support import make_record, run


def test_sqlite_is_the_default_in_data_dir(tmp_path: Path) -> None:
    store = open_store(load_config(env={}).store, tmp_path, GatewayMetrics())
    assert isinstance(store, SqliteStore) and store.backend == "sqlite"
    assert store.path == tmp_path / "driftlock.db"


def test_runbook_pool_knobs_size_the_pool(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://u@127.0.0.1:1/db", "DB_MAX_OPEN_CONNS": "7",
           "DB_MAX_IDLE_CONNS": "3", "DB_CONN_MAX_LIFETIME": "15m"}
    store = open_store(load_config(env=env).store, tmp_path, GatewayMetrics())
    assert isinstance(store, PostgresStore) and store.backend == "postgres"
    pool = store.connector.pool
    assert (pool.max_size, pool.min_size, pool.max_lifetime) == (7, 3, 900.0)


def test_postgres_down_at_start_opens_and_reports_unavailable(tmp_path: Path) -> None:
    """The gateway must start (and spool) while the database is down: open() does not wait for it."""
    config = load_config(env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"})
    metrics = GatewayMetrics()

    async def body() -> None:
        store = PostgresStore(config.store, metrics, acquire_timeout=0.3, stats_interval=0.05)
        await store.open()
        try:
            with pytest.raises(StoreUnavailableError):
                await store.ping()
            with pytest.raises(StoreUnavailableError):
                await store.write_anomalies([make_record(1, 1)])
            store.refresh_pool_metrics()
            failed = metrics.registry.get_sample_value("driftlock_db_connections_total",
                                                       {"connection_state": "failed"})
            assert failed and failed > 0
        finally:
            await store.close()

    run(body())
