"""``driftlock_db_connections_total{connection_state}`` follows the real pool (runbook alert inputs)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from pydantic import SecretStr

from otlp_gateway.store import PostgresStore
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.store.support import run, wait_until

pytestmark = pytest.mark.postgres


def test_pool_states_and_exhaustion(pg_dsn: str) -> None:
    metrics = GatewayMetrics()
    settings = StoreSettings(database_url=SecretStr(pg_dsn), max_open_conns=2, max_idle_conns=1,
                             conn_max_lifetime_seconds=600)

    def state(name: str) -> float:
        store.refresh_pool_metrics()
        return metrics.registry.get_sample_value("driftlock_db_connections_total",
                                                 {"connection_state": name}) or 0.0

    store = PostgresStore(settings, metrics, acquire_timeout=10, stats_interval=3600)

    async def body() -> None:
        await store.open()
        try:
            # "open" counts a connection from the moment the pool starts opening it; idle once usable.
            await wait_until(lambda: state("idle") == 1, 10, "the min_size connection opened")
            assert (state("open"), state("in_use"), state("max"), state("failed")) == (1, 0, 0, 0)
            async with contextlib.AsyncExitStack() as held:
                for _ in range(2):  # take every connection the pool may open
                    await held.enter_async_context(store.connector.pool.connection())
                assert (state("open"), state("in_use"), state("idle")) == (2, 2, 0)
                assert state("max") == 0  # full but nobody waits: not exhausted yet
                waiter = asyncio.create_task(store.ping())
                await wait_until(lambda: state("waiting") == 1, 10, "a request waiting")
                assert state("max") == 1
            await asyncio.wait_for(waiter, 10)
            assert (state("waiting"), state("max")) == (0, 0)
        finally:
            await store.close()

    run(body())
