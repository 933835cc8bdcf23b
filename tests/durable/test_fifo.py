"""DurableFifo: durable before append returns, group commit, ordered hand-out, delete on confirm, replay."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from otlp_gateway.durable import DurableFifo, FifoError
from tests.durable.support import contents, run

REPO = Path(__file__).resolve().parents[2]


def test_entries_are_handed_out_oldest_first_with_their_payloads(tmp_path: Path) -> None:
    async def scenario() -> None:
        fifo = DurableFifo(tmp_path / "q.sqlite3", name="q")
        await fifo.open()
        appended = [await fifo.append("logs", f"payload-{i}".encode() * (i + 1), i + 1) for i in range(20)]
        assert (fifo.pending_entries, fifo.pending_items) == (20, sum(range(1, 21)))
        taken = [await fifo.take() for _ in range(20)]
        assert [e.id for e in taken] == [e.id for e in appended] == sorted(e.id for e in appended)
        assert [e.payload for e in taken] == [f"payload-{i}".encode() * (i + 1) for i in range(20)]
        for entry in taken:
            fifo.done(entry)
        await asyncio.wait_for(fifo.wait_idle(), 1)
        assert (fifo.pending_entries, fifo.pending_items, fifo.pending_bytes) == (0, 0, 0)
        await fifo.close()
        assert await contents(tmp_path / "q.sqlite3") == []  # confirmed entries are deleted

    run(scenario())


def test_concurrent_appends_share_one_fsync(tmp_path: Path) -> None:
    async def scenario() -> None:
        fifo = DurableFifo(tmp_path / "q.sqlite3", name="q")
        await fifo.open()
        await asyncio.gather(*(fifo.append("traces", f"e{i}".encode(), 1) for i in range(300)))
        assert 1 <= fifo.commits <= 30, f"{fifo.commits} commits for 300 concurrent appends"
        await fifo.close()
        found = await contents(tmp_path / "q.sqlite3")
        assert sorted(p for *_, p in found) == sorted(f"e{i}".encode() for i in range(300))

    run(scenario())


def test_what_was_not_confirmed_is_replayed_in_order_on_every_open(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"

    async def first_run() -> None:
        fifo = DurableFifo(path, name="q")
        await fifo.open()
        for i in range(10):
            await fifo.append("metrics", f"m{i}".encode(), i)
        a, b, c = [await fifo.take() for _ in range(3)]
        fifo.done(a)
        fifo.done(c)
        fifo.requeue(b)  # its consumer stopped: back at the front
        assert (await fifo.take()).id == b.id  # and still in flight when the process stops
        await fifo.close()

    run(first_run())
    expected = [(f"m{i}".encode(), i) for i in range(10) if i not in (0, 2)]
    replay = run(contents(path))
    assert [(p, n) for _, _, n, p in replay] == expected
    assert [i for i, *_ in replay] == sorted(i for i, *_ in replay)
    assert run(contents(path)) == replay  # replaying is idempotent: the same entries, ids and order


def test_payloads_beyond_the_memory_budget_are_read_back_from_disk(tmp_path: Path) -> None:
    async def scenario() -> None:
        fifo = DurableFifo(tmp_path / "q.sqlite3", name="q", memory_bytes=250)
        await fifo.open()
        payloads = [bytes([i]) * 100 for i in range(6)]
        for p in payloads:
            await fifo.append("logs", p, 1)
        held = [e.payload is not None for e in fifo.unfinished()]
        assert held == [True, True, False, False, False, False]
        taken = [await fifo.take() for _ in range(6)]
        assert [e.payload for e in taken] == payloads
        await fifo.close()

    run(scenario())


def test_entries_of_unknown_kinds_stay_on_disk_untouched(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"

    async def write() -> None:
        fifo = DurableFifo(path, name="q")
        await fifo.open()
        await fifo.append("traces", b"known", 1)
        await fifo.append("profiles", b"from a newer version", 1)
        await fifo.close()

    run(write())
    assert [p for *_, p in run(contents(path, tags={"traces"}))] == [b"known"]
    assert [p for *_, p in run(contents(path))] == [b"known", b"from a newer version"]


def test_memory_only_fifo_keeps_the_same_order_and_accounting(tmp_path: Path) -> None:
    async def scenario() -> None:
        fifo = DurableFifo(None, name="q")
        await fifo.open()
        for i in range(3):
            await fifo.append("logs", f"x{i}".encode(), 2)
        first = await fifo.take()
        fifo.requeue(first)
        assert (await fifo.take()).payload == b"x0"
        assert [e.payload for e in fifo.unfinished()] == [b"x1", b"x2", b"x0"]
        assert (fifo.pending_entries, fifo.pending_items) == (3, 6)
        await fifo.close()
        assert not list(tmp_path.iterdir())

    run(scenario())


def test_append_is_refused_before_open_and_after_close(tmp_path: Path) -> None:
    async def scenario() -> None:
        fifo = DurableFifo(tmp_path / "q.sqlite3", name="q")
        with pytest.raises(FifoError, match="not open"):
            await fifo.append("logs", b"early", 1)
        await fifo.open()
        await fifo.close()
        with pytest.raises(FifoError, match="closed"):
            await fifo.append("logs", b"late", 1)
        assert fifo.pending_entries == 0

    run(scenario())


def test_sigkill_mid_append_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A child appends from 16 concurrent producers and confirms some entries; SIGKILL lands while commits
    are in flight. Every acknowledged, unconfirmed entry is there after recovery, intact and in append
    order; recovering twice gives the same result."""
    path = tmp_path / "q.sqlite3"
    child = subprocess.Popen([sys.executable, "-m", "tests.durable.crash_child", str(path)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    acked: set[int] = set()
    confirmed: set[int] = set()
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        while len(acked) < 400:
            line = child.stdout.readline()
            assert line, f"child exited early with {child.wait()}"
            kind, n = line.split()
            (acked if kind == "ACK" else confirmed).add(int(n))
            assert time.monotonic() < deadline, "child too slow to acknowledge"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:  # lines printed before the kill; a cut-off last line is not one
            for line in child.stdout.read().split("\n")[:-1]:
                kind, n = line.split()
                (acked if kind == "ACK" else confirmed).add(int(n))

    recovered = run(contents(path))
    numbers = [int(payload.split(b"-")[1]) for _, _, _, payload in recovered]
    for (_, tag, count, payload), n in zip(recovered, numbers, strict=True):
        assert (tag, count, payload) == ("traces", n % 7 + 1, f"entry-{n}-".encode() * 50)
    assert confirmed, "the child confirmed nothing: the test did not exercise deletes"
    assert acked - confirmed <= set(numbers), "an acknowledged entry was lost"
    assert numbers == sorted(numbers), "recovered out of append order"
    assert len(numbers) == len(set(numbers))
    assert run(contents(path)) == recovered
