"""The pruning job: stream records and detector snapshots of streams unseen for
``store.stream_retention_seconds`` are deleted every ``store.prune_interval_seconds``.

Without it, every stream ever seen keeps ~12 KB (record + snapshot) for good: 300 k distinct service
names filled 3.6 GB. A pruned stream that comes back starts fresh and warms up again; a stream whose
settings were changed through the API keeps its record. Counted in ``driftlock_store_pruned_rows_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from otlp_gateway.store.base import AnomalyStore, PruneResult
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class StreamPruner:
    """Lifecycle: ``start()`` runs a first pass in the background, then one per interval; ``shutdown()``
    stops (idempotent, safe without ``start``). ``after_prune`` is awaited after a pass that deleted
    something (the data dir budget re-measures, so ingest refused for lack of room resumes at once)."""

    def __init__(self, store: AnomalyStore, settings: StoreSettings, metrics: GatewayMetrics, *,
                 after_prune: Callable[[], Awaitable[object]] | None = None):
        self._store = store
        self._retention = settings.stream_retention_seconds
        self._interval = settings.prune_interval_seconds
        self._metrics = metrics
        self._after_prune = after_prune
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._retention > 0

    async def start(self) -> None:
        if self._task is None and self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-pruner")

    async def shutdown(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def prune_once(self, now: dt.datetime | None = None) -> PruneResult:
        """One pass: delete what was last seen more than the retention before ``now``."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=self._retention)
        result = await self._store.prune_unseen(cutoff)
        self._metrics.store_pruned.labels("streams").inc(result.streams)
        self._metrics.store_pruned.labels("detector_state").inc(result.snapshots)
        if result.streams or result.snapshots:
            log.info("pruned %d stream records and %d detector snapshots unseen since %s", result.streams,
                     result.snapshots, cutoff.isoformat(timespec="seconds"))
            if self._after_prune is not None:
                await self._after_prune()
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
            await asyncio.sleep(self._interval)
