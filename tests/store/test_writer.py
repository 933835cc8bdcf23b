"""AnomalyWriter: batching, spool while the store is unreachable, bounds, dead letters (both backends)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from otlp_gateway.store import AnomalyWriter, SqliteStore
from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.spool import REJECTED_FILE, AnomalySpool
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
    settings = StoreSettings(batch_max_rows=20, flush_interval_seconds=0.02)
    spool_dir = tmp_path / "spool"
    rows = [make_record(1, o) for o in range(130)]
    metrics = GatewayMetrics()

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")  # not opened: every call fails as unavailable
        writer = AnomalyWriter(store, spool_dir, settings, metrics, retry_initial_seconds=0.01,
                               retry_max_seconds=0.05)
        await writer.start()
        writer.submit(rows[:100])
        await wait_until(lambda: _value(metrics, "driftlock_store_spool_rows") == 100, 10, "rows spooled")
        assert not await writer.flush(0.3)
        assert _value(metrics, "driftlock_store_write_failures_total") > 0
        writer.submit(rows[100:])
        await writer.shutdown(0.2)  # store still down: the rest goes to the spool too
        reopened = AnomalySpool(spool_dir, 10**6, 20)
        reopened.open()
        assert reopened.rows == 130

        await store.open()
        await store.migrate()
        writer2 = AnomalyWriter(store, spool_dir, settings, metrics)
        await writer2.start()
        writer2.submit(rows[:10])  # duplicates of spooled rows
        assert await writer2.flush(30)
        assert sorted(await _all_ids(store)) == sorted(r.id for r in rows)
        await writer2.shutdown(1)
        await store.close()
        assert not list(spool_dir.glob("seg-*")) and not list(spool_dir.glob("active-*"))

    run(body())
    assert _value(metrics, "driftlock_store_anomalies_written_total", backend="sqlite") == 130
    assert _value(metrics, "driftlock_store_spool_rows") == 0


def test_spool_bound_refuses_and_counts(tmp_path: Path) -> None:
    settings = StoreSettings(batch_max_rows=5, flush_interval_seconds=0.01, spool_max_rows=12)
    metrics = GatewayMetrics()
    rows = [make_record(2, o) for o in range(30)]

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")
        writer = AnomalyWriter(store, tmp_path / "spool", settings, metrics, retry_initial_seconds=0.01)
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


def test_spool_drops_only_a_torn_final_line(tmp_path: Path) -> None:
    spool = AnomalySpool(tmp_path, 1000, 4)
    spool.open()
    rows: list[AnomalyRecord] = [make_record(4, o) for o in range(6)]
    assert spool.append(rows) == 6  # one sealed segment of 4, an active one of 2
    spool._active.write(b'{"id": "torn')  # type: ignore[union-attr]  # a crash mid-append
    spool._active.flush()  # type: ignore[union-attr]
    recovered = AnomalySpool(tmp_path, 1000, 4)
    recovered.open()
    assert recovered.rows == 6
    seen = []
    while (found := recovered.oldest()) is not None:
        segment, got = found
        seen.extend(r.id for r in got)
        recovered.remove(segment)
    assert seen == [r.id for r in rows]
    assert recovered.rows == 0


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
