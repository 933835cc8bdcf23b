"""Anomaly rows: write, read back, filter, paginate, idempotent rewrite, status changes (both backends)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import pytest

from otlp_gateway.store import InvalidCursorError
from otlp_gateway.store.base import AnomalyFilter, AnomalyRecord, anomaly_id
from tests.store.support import T0, StoreTarget, make_record, run


def _key(rec: AnomalyRecord) -> tuple[str, int]:
    return rec.stream_id, rec.window_start_offset


def test_round_trip_keeps_every_field(store_target: StoreTarget) -> None:
    rec = make_record(1, 7)
    rec.is_drift = True

    async def body() -> None:
        async with store_target.opened() as store:
            assert await store.write_anomalies([rec]) == 1
            got = await store.get_anomaly(rec.id)
            assert got is not None
            assert dataclasses.asdict(got) == dataclasses.asdict(rec)
            assert got.detected_at.tzinfo is not None
            assert await store.get_anomaly(anomaly_id("stream-1", 8)) is None

    run(body())


def test_rewrite_is_idempotent_on_stream_and_window(store_target: StoreTarget) -> None:
    rows = [make_record(s, o) for s in range(3) for o in range(0, 50, 10)]

    async def body() -> None:
        async with store_target.opened() as store:
            assert await store.write_anomalies(rows) == len(rows)
            # A replay (spool drain after a crash) and a batch holding the same window twice.
            assert await store.write_anomalies(rows) == 0
            changed = make_record(0, 0)
            changed.score = 99.0
            assert await store.write_anomalies([changed, changed, make_record(9, 1)]) == 1
            page = await store.query_anomalies(AnomalyFilter(), 100, None)
            assert len(page.items) == len(rows) + 1
            assert len({_key(r) for r in page.items}) == len(page.items)
            first = await store.get_anomaly(anomaly_id("stream-0", 0))
            assert first is not None and first.score != 99.0  # the first write wins

    run(body())


def test_filters(store_target: StoreTarget) -> None:
    rows = [make_record(s, o, signal="logs" if o % 20 else "traces") for s in range(3) for o in range(40)]

    async def body() -> None:
        async with store_target.opened() as store:
            await store.write_anomalies(rows)
            ten = dt.timedelta(minutes=10)
            flts = {
                "stream": (AnomalyFilter(stream_id="stream-2"), lambda r: r.stream_id == "stream-2"),
                "service": (AnomalyFilter(service="cart"), lambda r: r.service == "cart"),
                "signal": (AnomalyFilter(signal="traces"), lambda r: r.signal == "traces"),
                "severity": (AnomalyFilter(severity="high"), lambda r: r.severity == "high"),
                "range": (AnomalyFilter(since=T0 + ten, until=T0 + 2 * ten),
                          lambda r: T0 + ten <= r.detected_at < T0 + 2 * ten),
                "combined": (AnomalyFilter(stream_id="stream-1", severity="low",
                                           since=T0 + dt.timedelta(minutes=5)),
                             lambda r: r.stream_id == "stream-1" and r.severity == "low"
                             and r.detected_at >= T0 + dt.timedelta(minutes=5)),
            }
            for name, (flt, keep) in flts.items():
                page = await store.query_anomalies(flt, 1000, None)
                expected = {r.id for r in rows if keep(r)}
                assert expected, name
                assert {r.id for r in page.items} == expected, name
                assert page.next_cursor is None

            target = rows[5].id
            await store.set_anomaly_status(target, "confirmed")
            page = await store.query_anomalies(AnomalyFilter(status="confirmed"), 10, None)
            assert [r.id for r in page.items] == [target]

    run(body())


def test_keyset_pagination_walks_everything_once_newest_first(store_target: StoreTarget) -> None:
    # Several rows share a detected_at, so the id tie-break matters.
    rows = [make_record(s, o, minute=o // 3) for s in range(4) for o in range(25)]

    async def body() -> None:
        async with store_target.opened() as store:
            await store.write_anomalies(rows)
            seen: list[AnomalyRecord] = []
            cursor = None
            pages = 0
            while True:
                page = await store.query_anomalies(AnomalyFilter(service="checkout"), 7, cursor)
                pages += 1
                seen.extend(page.items)
                assert len(page.items) <= 7
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            expected = sorted((r for r in rows if r.service == "checkout"),
                              key=lambda r: (r.detected_at, r.id), reverse=True)
            assert [r.id for r in seen] == [r.id for r in expected]
            assert pages == math.ceil(len(expected) / 7)
            # A row written after the walk began but older than the cursor appears on a later page.

    run(body())


def test_bad_cursor_and_limit_are_value_errors(store_target: StoreTarget) -> None:
    async def body() -> None:
        async with store_target.opened() as store:
            for cursor in ("not-a-cursor", "W10", "WyJ4IiwxXQ"):
                with pytest.raises(InvalidCursorError):
                    await store.query_anomalies(AnomalyFilter(), 10, cursor)
            with pytest.raises(ValueError, match="limit"):
                await store.query_anomalies(AnomalyFilter(), 0, None)

    run(body())


def test_set_status(store_target: StoreTarget) -> None:
    rec = make_record(2, 3)

    async def body() -> None:
        async with store_target.opened() as store:
            await store.write_anomalies([rec])
            updated = await store.set_anomaly_status(rec.id, "false_positive")
            assert updated is not None and updated.status == "false_positive"
            got = await store.get_anomaly(rec.id)
            assert got is not None and got.status == "false_positive"
            assert await store.set_anomaly_status("0" * 32, "dismissed") is None

    run(body())


def test_non_finite_figures_are_stored_as_null(store_target: StoreTarget) -> None:
    rec = make_record(3, 1)
    rec.figures = {**rec.figures, "ncd": float("nan"), "delta_bits": float("inf")}

    async def body() -> None:
        async with store_target.opened() as store:
            assert await store.write_anomalies([rec]) == 1
            got = await store.get_anomaly(rec.id)
            assert got is not None
            assert got.figures["ncd"] is None and got.figures["delta_bits"] is None
            assert got.figures["entropy_window"] == 5.25

    run(body())
