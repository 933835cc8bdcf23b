"""RetryWorker: delivers each entry with the backoff schedule, honours hints, confirms only final outcomes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from otlp_gateway.durable import DurableFifo, Entry, RetrySettings, RetryWorker
from otlp_gateway.errors import PermanentError, RetryableError
from tests.durable.support import contents, run
from tests.fixtures.waiting import eventually

FAST = RetrySettings(initial_interval_seconds=0.01, max_interval_seconds=0.02)


async def _fifo_with(path: Path | None, *payloads: bytes) -> DurableFifo:
    fifo = DurableFifo(path, name="q")
    await fifo.open()
    for p in payloads:
        await fifo.append("logs", p, 1)
    return fifo


def test_retries_until_delivered_and_a_server_hint_lengthens_the_wait(tmp_path: Path) -> None:
    async def scenario() -> None:
        fifo = await _fifo_with(tmp_path / "q.sqlite3", b"a", b"b")
        attempts: list[tuple[bytes, float]] = []
        retries: list[float] = []

        async def deliver(entry: Entry) -> None:
            attempts.append((entry.payload or b"", time.monotonic()))
            if entry.payload == b"a" and len(attempts) <= 2:
                raise RetryableError("busy", retry_after=0.2)

        worker = RetryWorker(fifo, deliver, FAST, name="w", on_retry=lambda e, err, d: retries.append(d))
        worker.start()
        await asyncio.wait_for(fifo.wait_idle(), 10)
        await worker.stop()
        assert [p for p, _ in attempts] == [b"a", b"a", b"a", b"b"]
        assert all(d >= 0.2 for d in retries) and len(retries) == 2  # the hint wins over 10 ms
        assert attempts[2][1] - attempts[0][1] >= 0.4
        await fifo.close()
        assert await contents(tmp_path / "q.sqlite3") == []

    run(scenario())


def test_permanent_errors_defects_and_exhausted_retries_are_dropped_once_and_confirmed() -> None:
    async def scenario() -> None:
        fifo = await _fifo_with(None, b"permanent", b"defect", b"flaky")
        dropped: dict[bytes, str] = {}

        async def deliver(entry: Entry) -> None:
            if entry.payload == b"permanent":
                raise PermanentError("bad data")
            if entry.payload == b"defect":
                raise KeyError("bug")
            raise RetryableError("down")

        limited = FAST.model_copy(update={"max_elapsed_seconds": 0.1})
        worker = RetryWorker(fifo, deliver, limited, name="w",
                             on_drop=lambda e, reason, err: dropped.setdefault(e.payload or b"", reason))
        worker.start()
        await asyncio.wait_for(fifo.wait_idle(), 10)
        await worker.stop()
        assert dropped == {b"permanent": "permanent", b"defect": "internal", b"flaky": "retries_exhausted"}

    run(scenario())


def test_retry_disabled_drops_after_the_first_failure() -> None:
    async def scenario() -> None:
        fifo = await _fifo_with(None, b"x")
        dropped: list[str] = []

        async def deliver(entry: Entry) -> None:
            raise RetryableError("down")

        worker = RetryWorker(fifo, deliver, RetrySettings(enabled=False), name="w",
                             on_drop=lambda e, reason, err: dropped.append(reason))
        worker.start()
        await asyncio.wait_for(fifo.wait_idle(), 10)
        await worker.stop()
        assert dropped == ["retry_disabled"]

    run(scenario())


def test_poke_cuts_a_long_backoff_short() -> None:
    async def scenario() -> None:
        fifo = await _fifo_with(None, b"x")
        attempts = 0

        async def deliver(entry: Entry) -> None:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                raise RetryableError("down")

        slow = RetrySettings(initial_interval_seconds=60, randomization_factor=0)
        worker = RetryWorker(fifo, deliver, slow, name="w")
        worker.start()
        await eventually(lambda: attempts == 1, what="the first attempt")
        worker.poke()
        await asyncio.wait_for(fifo.wait_idle(), 5)  # not 60 s
        await worker.stop()
        assert attempts == 2

    run(scenario())


def test_stop_mid_delivery_leaves_the_entry_unconfirmed_on_disk(tmp_path: Path) -> None:
    async def scenario() -> None:
        fifo = await _fifo_with(tmp_path / "q.sqlite3", b"first", b"second")
        started = asyncio.Event()

        async def deliver(entry: Entry) -> None:
            started.set()
            await asyncio.Event().wait()  # a send that never finishes

        worker = RetryWorker(fifo, deliver, FAST, name="w", concurrency=2)
        worker.start()
        await asyncio.wait_for(started.wait(), 5)
        await worker.stop()
        assert fifo.pending_entries == 2 and [e.payload for e in fifo.unfinished()] == [b"first", b"second"]
        await fifo.close()
        assert [p for *_, p in await contents(tmp_path / "q.sqlite3")] == [b"first", b"second"]

    run(scenario())
