"""Connection-pool figures exported as ``driftlock_db_connections_total{connection_state=...}``.

States: open (connections held), idle, in_use, waiting (requests queued for a connection), max (1 while
every connection is in use *and* requests wait: pool exhaustion) and failed (connection attempts that
failed during the last ``FAILED_WINDOW_SECONDS``, long enough to survive a Prometheus scrape interval).
The runbook alerts on ``failed > 0`` and ``max > 0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from prometheus_client import Gauge
from psycopg_pool import AsyncConnectionPool

FAILED_WINDOW_SECONDS = 60.0


class PoolMetricsExporter:
    def __init__(self, pool: AsyncConnectionPool, gauge: Gauge, interval: float):
        self._pool = pool
        self._gauge = gauge
        self._interval = interval
        self._failures: deque[tuple[float, int]] = deque()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self.refresh()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="db-pool-metrics")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.refresh()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self.refresh()

    def refresh(self) -> None:
        stats = self._pool.pop_stats()  # counters reset on pop; gauges (sizes) are current values
        now = time.monotonic()
        errors = stats.get("connections_errors", 0)
        if errors:
            self._failures.append((now, errors))
        while self._failures and self._failures[0][0] < now - FAILED_WINDOW_SECONDS:
            self._failures.popleft()
        size = stats.get("pool_size", 0)
        idle = stats.get("pool_available", 0)
        in_use = max(size - idle, 0)
        waiting = stats.get("requests_waiting", 0)
        max_size = stats.get("pool_max", self._pool.max_size)
        g = self._gauge
        g.labels("open").set(size)
        g.labels("idle").set(idle)
        g.labels("in_use").set(in_use)
        g.labels("waiting").set(waiting)
        g.labels("max").set(1 if in_use >= max_size and waiting > 0 else 0)
        g.labels("failed").set(sum(n for _, n in self._failures))
