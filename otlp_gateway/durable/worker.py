"""Consumers of a ``DurableFifo``: take the oldest entry, deliver it with retries, confirm it.

``deliver(entry)`` either returns (delivered), raises ``RetryableError`` (wait by the ``Backoff`` schedule,
lengthened by the error's ``retry_after`` hint, then try the same entry again) or ``PermanentError``
(never retried). An entry is confirmed (``done``) only after it was delivered or given up for good;
``on_drop(entry, reason, error)`` is told about the latter, with ``reason`` one of ``permanent``,
``retries_exhausted``, ``retry_disabled`` or ``internal`` (an unexpected exception: a defect, so the entry
is not retried blindly). Stopping cancels a delivery in progress: that entry is not confirmed and stays
in the FIFO for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from otlp_gateway.durable.backoff import Backoff, RetrySettings
from otlp_gateway.durable.fifo import DurableFifo, Entry
from otlp_gateway.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)

Deliver = Callable[[Entry], Awaitable[None]]
OnRetry = Callable[[Entry, RetryableError, float], None]
OnDrop = Callable[[Entry, str, BaseException], None]


class RetryWorker:
    """``concurrency`` tasks draining ``fifo`` through ``deliver``, each entry on its own retry schedule."""

    def __init__(self, fifo: DurableFifo, deliver: Deliver, retry: RetrySettings, *, name: str,
                 concurrency: int = 1, on_retry: OnRetry | None = None, on_drop: OnDrop | None = None,
                 rng: random.Random | None = None):
        self._fifo = fifo
        self._deliver = deliver
        self._retry = retry
        self._name = name
        self._concurrency = concurrency
        self._on_retry = on_retry
        self._on_drop = on_drop
        self._rng = rng or random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._pokes = 0
        self._poked = asyncio.Event()

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.get_running_loop().create_task(self._run(), name=f"{self._name}-{i}")
                           for i in range(self._concurrency)]

    async def stop(self) -> None:
        """Cancel the consumers; an entry being delivered is put back (and stays on disk). Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def poke(self) -> None:
        """Cut backoff waits short, current and about to start: the next attempt happens now."""
        self._pokes += 1
        self._poked.set()
        self._poked = asyncio.Event()  # waiters hold the one just set

    async def _run(self) -> None:
        while True:
            entry = await self._fifo.take()
            try:
                await self._attempt_until_final(entry)
            except asyncio.CancelledError:
                self._fifo.requeue(entry)
                raise
            except Exception:  # a defect in the callbacks must not silently stop a consumer
                log.exception("%s: handling entry %d failed; it stays queued", self._name, entry.id)
                self._fifo.requeue(entry)
                await asyncio.sleep(self._retry.initial_interval_seconds)
                continue
            self._fifo.done(entry)

    async def _attempt_until_final(self, entry: Entry) -> None:
        backoff = Backoff(self._retry, self._rng)
        started = time.monotonic()
        while True:
            pokes = self._pokes
            try:
                await self._deliver(entry)
                return
            except PermanentError as err:
                self._drop(entry, "permanent", err)
                return
            except RetryableError as err:
                delay = backoff.next_delay(time.monotonic() - started, err.retry_after)
                if delay is None:
                    self._drop(entry, "retries_exhausted" if self._retry.enabled else "retry_disabled", err)
                    return
                if self._on_retry is not None:
                    self._on_retry(entry, err, delay)
                await self._sleep(delay, pokes)
            except Exception as err:  # a defect, not the peer's answer: never retry it blindly
                log.exception("%s: unexpected error delivering entry %d", self._name, entry.id)
                self._drop(entry, "internal", err)
                return

    def _drop(self, entry: Entry, reason: str, err: BaseException) -> None:
        if self._on_drop is not None:
            self._on_drop(entry, reason, err)

    async def _sleep(self, delay: float, pokes_before_attempt: int) -> None:
        poked = self._poked
        if self._pokes != pokes_before_attempt:  # poked during the attempt: retry at once
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(poked.wait(), delay)
