"""The data dir's size budget: measured periodically, published as metrics, and a clear refusal of new
ingest while it is exhausted.

Everything the gateway keeps on local disk lives under ``data_dir`` (export spool, anomaly spool, the
embedded SQLite store). The budget is checked where ingest is admitted (the exporter's capacity check),
so a full disk answers clients with UNAVAILABLE / 503 and a retry hint naming the budget instead of
crashing or dropping silently; data already accepted still lands (the budget leaves headroom below the
volume's size for that). Measuring is a directory walk of allocated blocks (what ``du`` and the kubelet's
``emptyDir.sizeLimit`` count), done off the event loop every ``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from otlp_gateway.component import cancel_task
from otlp_gateway.errors import OverloadedError
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
REFUSAL_RETRY_AFTER_SECONDS = 30.0
"""Hint to refused clients: space comes back when the spool drains or streams are pruned, not at once."""


class DataDirFullError(OverloadedError):
    """The data dir is at its size budget; new ingest is refused until space is freed."""


def allocated_bytes(directory: Path) -> int:
    """Bytes allocated on disk by every file under ``directory`` (files vanishing meanwhile are skipped)."""
    total = 0
    stack = [directory]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for item in it:
                    try:
                        if item.is_dir(follow_symlinks=False):
                            stack.append(Path(item.path))
                        elif item.is_file(follow_symlinks=False):
                            total += item.stat(follow_symlinks=False).st_blocks * 512
                    except FileNotFoundError:
                        continue
        except (FileNotFoundError, NotADirectoryError):
            continue
    return total


class DataDirBudget:
    """``budget_bytes`` for everything under ``directory`` (0: unlimited, still measured).

    Lifecycle: ``start()`` measures once, then every ``interval`` seconds; ``shutdown()`` stops (idempotent,
    safe without ``start``). ``check()`` raises ``DataDirFullError`` while exhausted. Listeners added with
    ``on_change(listener)`` are called with the new ``exhausted`` value whenever it flips (readiness).
    """

    def __init__(self, directory: Path, budget_bytes: int, metrics: GatewayMetrics | None = None, *,
                 interval: float = DEFAULT_INTERVAL_SECONDS):
        self.directory = Path(directory)
        self.budget_bytes = budget_bytes
        self._metrics = metrics
        self._interval = interval
        self._listeners: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.used_bytes = 0
        self.exhausted = False
        if metrics is not None:
            metrics.data_dir_budget_bytes.set(budget_bytes)

    def on_change(self, listener: Callable[[bool], None]) -> None:
        self._listeners.append(listener)

    async def start(self) -> None:
        if self._task is None:
            await self.measure()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="data-dir-budget")

    async def shutdown(self, grace: float = 0.0) -> None:
        task, self._task = self._task, None
        await cancel_task(task)

    async def measure(self) -> int:
        """Measure now (also after freeing space, so ingest resumes without waiting for the timer)."""
        used = await asyncio.to_thread(allocated_bytes, self.directory)
        self._update(used)
        return used

    def check(self) -> None:
        """Raise ``DataDirFullError`` (UNAVAILABLE / 503 with a retry hint) while the budget is exhausted."""
        if self.exhausted:
            raise DataDirFullError(
                f"data_dir {self.directory} holds {self.used_bytes} bytes, at its budget of "
                f"{self.budget_bytes} bytes (data_dir_budget_bytes): ingest is refused until the export "
                "spool drains or old streams are pruned", retry_after=REFUSAL_RETRY_AFTER_SECONDS)

    def _update(self, used: int) -> None:
        self.used_bytes = used
        if self._metrics is not None:
            self._metrics.data_dir_bytes.set(used)
        exhausted = bool(self.budget_bytes) and used >= self.budget_bytes
        if exhausted == self.exhausted:
            return
        self.exhausted = exhausted
        if exhausted:
            log.error("data_dir %s holds %d bytes, at its budget of %d bytes (data_dir_budget_bytes): "
                      "refusing new ingest until space is freed", self.directory, used, self.budget_bytes)
        else:
            log.warning("data_dir %s is back under its budget (%d of %d bytes): accepting ingest again",
                        self.directory, used, self.budget_bytes)
        for listener in list(self._listeners):
            try:
                listener(exhausted)
            except Exception:
                log.exception("data dir budget listener failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.measure()
            except Exception:  # a transient walk failure must not stop measuring
                log.exception("measuring data_dir %s failed", self.directory)
