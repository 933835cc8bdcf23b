"""AnomalyWriter: batching, spool while the store is unreachable, bounds, dead letters (both backends)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from otlp_gateway.durable import DurableFifo
from otlp_gateway.store import AnomalyWriter, SqliteStore
from otlp_gateway.store.base import AnomalyFilter
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.writer import REJECTED_FILE, SPOOL_FILE_NAME
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.store.support import StoreTarget, make_record, run, wait_until


def _value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def _all_ids(store: object) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.query_anomalies(AnomalyFilter(), 1000, cursor)  # type: ignore[attr-defined]
        ids.extend(r.id for r in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return ids


FAST_RETRY = {"initial_interval_seconds": 0.01, "max_interval_seconds": 0.05}


async def _spooled_rows(spool_dir: Path) -> int:
    """Rows held in a (closed) anomaly spool, read by opening it as the writer would."""
    fifo = DurableFifo(spool_dir / SPOOL_FILE_NAME, name="check")
    await fifo.open()
    rows = fifo.pending_items
    await fifo.close()
    return rows


def _settings(target: StoreTarget, **changes: object) -> StoreSettings:
    fast = {"batch_max_rows": 100, "flush_interval_seconds": 0.05}
    return target.settings.model_copy(update={**fast, **changes})


def test_writes_everything_once_in_batches(store_target: StoreTarget, tmp_path: Path) -> None:
    rows = [make_record(s, o) for s in range(5) for o in range(240)]

    async def body() -> None:
        async with store_target.opened() as store:
            writer = AnomalyWriter(store, tmp_path / "spool", _settings(store_target), store_target.metrics)
            await writer.start()
            for i in range(0, len(rows), 7):
                writer.submit(rows[i:i + 7])
            writer.submit(rows[:50])  # replayed rows: idempotent
            assert await writer.flush(30)
            ids = await _all_ids(store)
            assert sorted(ids) == sorted(r.id for r in rows)
            await writer.shutdown(5)
            await writer.shutdown(5)  # idempotent
        m = store_target.metrics
        assert _value(m, "driftlock_store_anomalies_written_total", backend=store_target.backend) == len(rows)
        assert _value(m, "driftlock_store_spool_rows") == 0
        assert _value(m, "driftlock_store_write_failures_total") == 0

    run(body())


def test_a_few_rows_are_written_on_the_flush_timer_without_an_explicit_flush(
        store_target: StoreTarget, tmp_path: Path) -> None:
    rows = [make_record(1, o) for o in range(3)]  # far fewer than a batch

    async def body() -> None:
        async with store_target.opened() as store:
            writer = AnomalyWriter(store, tmp_path / "spool", _settings(store_target), store_target.metrics)
            await writer.start()
            writer.submit([make_record(0, 0)])
            assert await writer.flush(10)  # the writer is now idle, waiting without a timeout
            writer.submit(rows)
            ids: list[str] = []

            async def written() -> bool:
                ids[:] = [i for i in await _all_ids(store) if i != make_record(0, 0).id]
                return len(ids) == len(rows)

            for _ in range(200):  # 10 s at most; the timer is 0.05 s
                if await written():
                    break
                await asyncio.sleep(0.05)
            assert sorted(ids) == sorted(r.id for r in rows)
            await writer.shutdown(5)

    run(body())


def test_spools_while_store_is_down_and_drains_after_restart(tmp_path: Path) -> None:
    """Unreachable store: rows go to disk, survive a writer restart, and are written exactly once."""
    settings = StoreSettings(batch_max_rows=20, flush_interval_seconds=0.02, retry=FAST_RETRY)
    spool_dir = tmp_path / "spool"
    rows = [make_record(1, o) for o in range(130)]
    metrics = GatewayMetrics()

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")  # not opened: every call fails as unavailable
        writer = AnomalyWriter(store, spool_dir, settings, metrics)
        await writer.start()
        writer.submit(rows[:100])
        await wait_until(lambda: _value(metrics, "driftlock_store_spool_rows") == 100, 10, "rows spooled")
        assert not await writer.flush(0.3)
        assert _value(metrics, "driftlock_store_write_failures_total") > 0
        writer.submit(rows[100:])
        await writer.shutdown(0.2)  # store still down: the rest goes to the spool too
        assert await _spooled_rows(spool_dir) == 130

        await store.open()
        await store.migrate()
        writer2 = AnomalyWriter(store, spool_dir, settings, metrics)
        await writer2.start()
        writer2.submit(rows[:10])  # duplicates of spooled rows
        assert await writer2.flush(30)
        assert sorted(await _all_ids(store)) == sorted(r.id for r in rows)
        await writer2.shutdown(1)
        await store.close()
        assert await _spooled_rows(spool_dir) == 0

    run(body())
    assert _value(metrics, "driftlock_store_anomalies_written_total", backend="sqlite") == 130
    assert _value(metrics, "driftlock_store_spool_rows") == 0


def test_spool_bound_refuses_and_counts(tmp_path: Path) -> None:
    settings = StoreSettings(batch_max_rows=5, flush_interval_seconds=0.01, spool_max_rows=12,
                             retry=FAST_RETRY)
    metrics = GatewayMetrics()
    rows = [make_record(2, o) for o in range(30)]

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")
        writer = AnomalyWriter(store, tmp_path / "spool", settings, metrics)
        await writer.start()
        writer.submit(rows)
        await wait_until(lambda: _value(metrics, "driftlock_store_spool_refused_rows_total") == 18, 10,
                         "refusals counted")
        assert _value(metrics, "driftlock_store_spool_rows") == 12
        await store.open()
        await store.migrate()
        assert await writer.flush(30)
        assert sorted(await _all_ids(store)) == sorted(r.id for r in rows[:12])
        await writer.shutdown(1)
        writer.submit(rows[:1])  # after shutdown: refused and counted, never raises
        await store.close()

    run(body())
    assert _value(metrics, "driftlock_store_spool_refused_rows_total") == 19


def test_rows_the_database_refuses_are_dead_lettered(store_target: StoreTarget, tmp_path: Path) -> None:
    good = [make_record(3, o) for o in range(6)]
    bad = make_record(3, 100)
    bad.severity = "apocalyptic"  # type: ignore[assignment]  # violates the CHECK constraint

    async def body() -> None:
        async with store_target.opened() as store:
            writer = AnomalyWriter(store, tmp_path / "spool", _settings(store_target), store_target.metrics)
            await writer.start()
            writer.submit([*good[:3], bad, *good[3:]])
            assert await writer.flush(30)
            assert sorted(await _all_ids(store)) == sorted(r.id for r in good)
            await writer.shutdown(1)
        lines = (tmp_path / "spool" / REJECTED_FILE).read_text().splitlines()
        assert len(lines) == 1
        entry = json.loads(lines[0])
        assert entry["record"]["id"] == bad.id and "RowRejectedError" in entry["reason"]
        assert _value(store_target.metrics, "driftlock_store_rejected_rows_total") == 1

    run(body())


def test_memory_is_bounded_when_the_store_lags(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """More queued rows than ``memory_max_rows``: the excess goes to disk, and still lands exactly once."""
    settings = StoreSettings(batch_max_rows=10, flush_interval_seconds=0.01)
    metrics = GatewayMetrics()
    rows = [make_record(5, o) for o in range(500)]

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        await store.migrate()
        writer = AnomalyWriter(store, tmp_path / "spool", settings, metrics, memory_max_rows=50)
        await writer.start()
        with caplog.at_level(logging.WARNING, logger="otlp_gateway.store.writer"):
            writer.submit(rows)
            assert await writer.flush(60)
        assert any("store lags behind: 500 rows queued (bound 50)" in r.getMessage() for r in caplog.records)
        assert sorted(await _all_ids(store)) == sorted(r.id for r in rows)
        await writer.shutdown(1)
        await store.close()

    run(body())
    assert _value(metrics, "driftlock_store_anomalies_written_total", backend="sqlite") == 500
