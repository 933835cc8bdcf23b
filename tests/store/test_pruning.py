"""Pruning streams unseen for the retention: records and snapshots go (both backends), space comes back."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from otlp_gateway.durable import DataDirBudget
from otlp_gateway.store import sql_store
from otlp_gateway.store.base import StreamInfo, all_streams
from otlp_gateway.store.maintenance import StreamPruner
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import SqliteStore, migrate_sqlite_connection
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.store.support import StoreTarget, run

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
WEEK = dt.timedelta(days=7)


def _stream(stream_id: str, seen: dt.datetime, settings: dict | None = None) -> StreamInfo:
    return StreamInfo(stream_id=stream_id, signal="logs", service=stream_id, name="app.log", state="active",
                      profile="balanced", settings=settings or {}, events_seen=5, updated_at=seen)


def test_streams_unseen_for_the_retention_are_pruned(store_target: StoreTarget,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql_store, "PRUNE_BATCH_ROWS", 3)  # several batches per table
    old, recent = NOW - WEEK - dt.timedelta(hours=1), NOW - dt.timedelta(hours=1)

    async def body() -> None:
        async with store_target.opened() as store:
            for i in range(8):
                await store.upsert_stream(_stream(f"old-{i}", old))
                await store.save_state(f"old-{i}", b"snapshot" * 100, at=old)
            await store.upsert_stream(_stream("configured", old, {"window": 300}))  # an operator's choice
            await store.save_state("configured", b"s", at=old)
            await store.upsert_stream(_stream("recent", recent))
            await store.save_state("recent", b"fresh", at=recent)
            await store.save_state("orphan", b"no record", at=old)

            result = await store.prune_unseen(NOW - WEEK)
            assert (result.streams, result.snapshots) == (8, 10)
            assert [s.stream_id for s in await all_streams(store)] == ["configured", "recent"]
            assert await store.load_state("recent") == b"fresh"
            assert await store.load_state("old-3") is None and await store.load_state("configured") is None
            again = await store.prune_unseen(NOW - WEEK)
            assert (again.streams, again.snapshots) == (0, 0)

    run(body())


def test_pruner_counts_what_it_deleted_and_has_the_budget_measure_again(tmp_path: Path) -> None:
    metrics = GatewayMetrics()

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        await store.migrate()
        for i in range(5):
            await store.upsert_stream(_stream(f"s{i}", NOW - dt.timedelta(days=i * 3)))
            await store.save_state(f"s{i}", b"x", at=NOW - dt.timedelta(days=i * 3))
        budget = DataDirBudget(tmp_path, 0, metrics)  # never started: measured only when told to
        pruner = StreamPruner(store, StoreSettings(stream_retention_seconds=WEEK.total_seconds()), metrics,
                              budget=budget)
        result = await pruner.prune_once(now=NOW)  # s3 (9 days) and s4 (12 days) go
        assert (result.streams, result.snapshots) == (2, 2)
        assert budget.used_bytes > 0  # re-measured after freeing space
        assert await pruner.prune_once(now=NOW) == type(result)(0, 0)
        await store.close()

    run(body())
    for table, n in (("streams", 2), ("detector_state", 2)):
        assert metrics.registry.get_sample_value("driftlock_store_pruned_rows_total", {"table": table}) == n


def test_a_full_data_dir_prunes_streams_idle_past_the_pressure_retention_at_once(tmp_path: Path) -> None:
    """A flood of one-off streams two hours ago filled the budget: they go now, not in seven days; the
    stream still being fed and the one an operator configured stay."""
    metrics = GatewayMetrics()
    now = dt.datetime.now(dt.UTC)

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        await store.migrate()
        for i in range(20):
            await store.upsert_stream(_stream(f"flood-{i:02d}", now - dt.timedelta(hours=2)))
            await store.save_state(f"flood-{i:02d}", b"x" * 1000, at=now - dt.timedelta(hours=2))
        await store.upsert_stream(_stream("fed", now - dt.timedelta(minutes=1)))
        await store.upsert_stream(_stream("configured", now - dt.timedelta(hours=2), {"window": 300}))
        budget = DataDirBudget(tmp_path, 10**12, metrics, interval=3600)
        await budget.start()
        pruner = StreamPruner(store, StoreSettings(prune_interval_seconds=3600), metrics, budget=budget)
        await pruner.start()  # first pass: nothing is older than the 7-day retention
        await asyncio.sleep(0.2)
        assert len(await all_streams(store)) == 22
        budget.budget_bytes = 1  # the data dir is now over its budget
        await budget.measure()
        for _ in range(200):
            if len(await all_streams(store)) == 2:
                break
            await asyncio.sleep(0.05)
        assert [s.stream_id for s in await all_streams(store)] == ["configured", "fed"]
        assert await store.load_state("flood-03") is None
        await pruner.shutdown()
        await budget.shutdown()
        await store.close()

    run(body())
    assert metrics.registry.get_sample_value("driftlock_store_pruned_rows_total", {"table": "streams"}) == 20


def test_pruner_runs_periodically_and_survives_a_store_that_is_down(tmp_path: Path) -> None:
    metrics = GatewayMetrics()

    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")  # not open yet: the first passes fail and are retried
        pruner = StreamPruner(store, StoreSettings(prune_interval_seconds=0.05), metrics)
        await pruner.start()
        await asyncio.sleep(0.1)
        await store.open()
        await store.migrate()
        await store.upsert_stream(_stream("ancient", NOW - dt.timedelta(days=400)))
        for _ in range(200):
            if await store.get_stream("ancient") is None:
                break
            await asyncio.sleep(0.05)
        assert await store.get_stream("ancient") is None
        await pruner.shutdown()
        await pruner.shutdown()
        await store.close()

    run(body())


def _file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


@pytest.mark.parametrize("made_before_auto_vacuum", [False, True], ids=["new-file", "previous-file"])
def test_sqlite_gives_pruned_space_back_to_the_filesystem(tmp_path: Path,
                                                          made_before_auto_vacuum: bool) -> None:
    path = tmp_path / "s.db"
    if made_before_auto_vacuum:  # as the previous version created it: no auto-vacuum
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            migrate_sqlite_connection(conn)
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    snapshot = bytes(range(256)) * 48  # 12 KB, the size issue 11 measured per stream

    async def body() -> tuple[int, int]:
        store = SqliteStore(path)
        await store.open()
        await store.migrate()
        for i in range(1500):
            await store.upsert_stream(_stream(f"svc-{i:05d}", NOW - 2 * WEEK))
            await store.save_state(f"svc-{i:05d}", snapshot, at=NOW - 2 * WEEK)
        await store.upsert_stream(_stream("alive", NOW))
        full = _file_bytes(path)
        await store.prune_unseen(NOW - WEEK)
        assert [s.stream_id for s in await all_streams(store)] == ["alive"]
        await store.close()
        return full, _file_bytes(path)

    full, pruned = run(body(), timeout=120)
    assert full > 1500 * 12_000
    assert pruned < full / 10, f"{full} -> {pruned} bytes"
