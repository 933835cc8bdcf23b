"""The pruning job: stream records and detector snapshots of streams unseen for
``store.stream_retention_seconds``, and score-series buckets older than it, are deleted every
``store.prune_interval_seconds``.

Without it, every stream ever seen keeps ~12 KB (record + snapshot) for good: 300 k distinct service
names filled 3.6 GB. A pruned stream that comes back starts fresh and warms up again; a stream whose
settings were changed through the API keeps its record. Counted in ``driftlock_store_pruned_rows_total``.

Under pressure: while the data dir is at its size budget and the store lives in it (SQLite), streams
unseen for ``store.pressure_retention_seconds`` are pruned too, at once and then every
``PRESSURE_INTERVAL_SECONDS``, so a flood of one-off streams cannot keep ingest refused for the whole
retention. Streams that are being fed are re-saved at every snapshot interval and are not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from otlp_gateway.component import cancel_task
from otlp_gateway.durable import DataDirBudget
from otlp_gateway.store.base import AnomalyStore, PruneResult
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

PRESSURE_INTERVAL_SECONDS = 60.0


class StreamPruner:
    """Lifecycle: ``start()`` runs a first pass in the background, then one per interval; ``shutdown()``
    stops (idempotent, safe without ``start``). With a ``budget``, a pass that deleted something makes it
    re-measure (ingest refused for lack of room resumes at once), and its exhaustion triggers pressure
    passes (see the module docstring)."""

    def __init__(self, store: AnomalyStore, settings: StoreSettings, metrics: GatewayMetrics, *,
                 budget: DataDirBudget | None = None):
        self._store = store
        self._retention = settings.stream_retention_seconds
        self._pressure_retention = settings.pressure_retention_seconds
        self._interval = settings.prune_interval_seconds
        self._metrics = metrics
        self._budget = budget
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        if budget is not None and self._prunes_under_pressure:
            budget.on_change(lambda exhausted: self._wake.set() if exhausted else None)

    @property
    def enabled(self) -> bool:
        return self._retention > 0 or self._prunes_under_pressure

    @property
    def _prunes_under_pressure(self) -> bool:
        # Pruning Postgres frees nothing in the data dir.
        return self._budget is not None and self._pressure_retention > 0 and self._store.backend == "sqlite"

    @property
    def _under_pressure(self) -> bool:
        return self._prunes_under_pressure and self._budget is not None and self._budget.exhausted

    async def start(self) -> None:
        if self._task is None and self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-pruner")

    async def shutdown(self, grace: float = 0.0) -> None:
        task, self._task = self._task, None
        await cancel_task(task)

    async def prune_once(self, now: dt.datetime | None = None) -> PruneResult:
        """One pass: delete what was last seen more than the retention before ``now`` (the pressure
        retention while the data dir is at its budget)."""
        pressure = self._under_pressure
        retention = (min(self._pressure_retention, self._retention or self._pressure_retention) if pressure
                     else self._retention)
        if retention <= 0:
            return PruneResult(0, 0)
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=retention)
        result = await self._store.prune_unseen(cutoff)
        self._metrics.store_pruned.labels("streams").inc(result.streams)
        self._metrics.store_pruned.labels("detector_state").inc(result.snapshots)
        self._metrics.store_pruned.labels("stream_scores").inc(result.score_buckets)
        if result.streams or result.snapshots or result.score_buckets:
            log.info("pruned %d stream records, %d detector snapshots and %d score buckets older than %s%s",
                     result.streams, result.snapshots, result.score_buckets,
                     cutoff.isoformat(timespec="seconds"),
                     " (the data dir is at its budget)" if pressure else "")
            if self._budget is not None:
                await self._budget.measure()
        return result

    async def _run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store down or a defect: try again next interval
                log.warning("pruning unseen streams failed (%s: %s); next try in %.0f s", type(exc).__name__,
                            exc, self._interval)
            self._wake.clear()
            wait = min(self._interval, PRESSURE_INTERVAL_SECONDS) if self._under_pressure else self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
