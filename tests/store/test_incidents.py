"""Incidents, the operator's actions and the streams' score series in the store (SQLite and Postgres)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.base import (
    AuditEntry,
    IncidentFilter,
    IncidentRecord,
    ScoreBucket,
    StreamInfo,
    incident_id,
)
from otlp_gateway.store.errors import InvalidCursorError
from otlp_gateway.store.settings import StoreSettings
from tests.store.support import T0, StoreTarget, make_record, run


def make_incident(stream: int, seq: int, *, minute: float = 0.0, status: str = "open", windows: int = 3,
                  service: str = "checkout", signal: str = "traces", severity: str = "high",
                  profile: str = "balanced", stream_id: str | None = None) -> IncidentRecord:
    opened = T0 + dt.timedelta(minutes=minute)
    return IncidentRecord(
        stream_id=stream_id or f"stream-{stream}", seq=seq, opened_offset=1000 * seq + 40, signal=signal,
        service=service, name="POST /cart", profile=profile, status=status,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        opened_at=opened, last_anomalous_at=opened + dt.timedelta(seconds=10 * windows),
        last_anomalous_offset=1000 * seq + 40 + 10 * windows,
        resolved_at=None if status == "open" else opened + dt.timedelta(minutes=5),
        anomalous_windows=windows, min_p_value=1e-7,
        summary="cart POST /cart: 31 % of spans now ERROR with error.type=RedisTimeout (new)",
        fields=[{"field": "error.type", "change": "new_value", "before": "never seen", "now": "RedisTimeout",
                 "unusual": "never seen in 400 reference events", "bits": 12.5, "example": None}],
        evidence=[{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
                   "time_unix_nano": "1764072000000000000", "text": "span POST /cart"}])


def test_the_id_is_deterministic_and_names_stream_number_and_opening():
    a = make_incident(1, 0)
    assert a.id == incident_id("stream-1", 0, 40) and a.id.startswith("inc_") and len(a.id) == 20
    assert make_incident(1, 0).id == a.id
    assert make_incident(1, 1).id != a.id and make_incident(2, 0).id != a.id
    assert incident_id("stream-1", 0, 41) != a.id  # a new detector numbers from 0 again, at new offsets


def test_upserts_are_idempotent_and_only_move_forward(store_target: StoreTarget) -> None:
    opened = make_incident(1, 0, windows=2)
    grown = dataclasses.replace(opened, anomalous_windows=5, severity="critical",
                                last_anomalous_offset=opened.last_anomalous_offset + 30)
    closed = dataclasses.replace(grown, status="resolved", resolved_at=T0 + dt.timedelta(minutes=3))

    async def body() -> None:
        async with store_target.opened() as store:
            await store.upsert_incidents([opened, opened])  # a replayed request
            page = await store.query_incidents(IncidentFilter(), 10, None)
            assert [r.id for r in page.items] == [opened.id]
            await store.upsert_incidents([grown])
            await store.upsert_incidents([opened])  # an older update arriving late changes nothing
            got = await store.get_incident(opened.id)
            assert got is not None and got.anomalous_windows == 5 and got.severity == "critical"
            await store.upsert_incidents([closed])
            await store.upsert_incidents([grown, opened])  # late open updates never reopen it
            got = await store.get_incident(opened.id)
            assert got is not None and got.status == "resolved" and got.resolved_at == closed.resolved_at
            accepted = dataclasses.replace(closed, status="accepted")
            await store.upsert_incidents([accepted])  # a closed incident never changes again
            got = await store.get_incident(opened.id)
            assert got is not None and got.status == "resolved"
            assert got.fields == opened.fields and got.evidence == opened.evidence
            assert got.summary == opened.summary and got.min_p_value == pytest.approx(1e-7)

    run(body())


def test_list_orders_open_first_then_newest_and_pages_by_cursor(store_target: StoreTarget) -> None:
    rows = [make_incident(s, 0, minute=s, status="open" if s % 3 == 0 else "resolved") for s in range(14)]
    rows.append(make_incident(99, 0, minute=5, status="open"))  # same opened time as stream-5: id breaks it

    async def body() -> None:
        async with store_target.opened() as store:
            await store.upsert_incidents(rows)
            seen: list[IncidentRecord] = []
            cursor = None
            while True:
                page = await store.query_incidents(IncidentFilter(), 4, cursor)
                seen.extend(page.items)
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            expected = sorted(rows, key=lambda r: (not r.is_open, -r.opened_at.timestamp(),
                                                   [-ord(c) for c in r.id]))
            assert [r.id for r in seen] == [r.id for r in expected]
            assert all(r.is_open for r in seen[:6]) and not any(r.is_open for r in seen[6:])
            with pytest.raises(InvalidCursorError):
                await store.query_incidents(IncidentFilter(), 4, "bm90LWEtY3Vyc29y")

    run(body())


def test_filters(store_target: StoreTarget) -> None:
    rows = [make_incident(1, 0, minute=0, service="cart", severity="low"),
            make_incident(2, 0, minute=10, service="checkout", signal="logs"),
            make_incident(3, 0, minute=20, service="checkout", status="false_positive"),
            make_incident(3, 1, minute=30, service="checkout")]

    async def body() -> None:
        async with store_target.opened() as store:
            await store.upsert_incidents(rows)

            async def ids(**kwargs: object) -> set[str]:
                page = await store.query_incidents(IncidentFilter(**kwargs), 100, None)  # type: ignore[arg-type]
                return {r.id for r in page.items}

            assert await ids(service="cart") == {rows[0].id}
            assert await ids(signal="logs") == {rows[1].id}
            assert await ids(status="false_positive") == {rows[2].id}
            assert await ids(severity="low") == {rows[0].id}
            assert await ids(stream_id="stream-3") == {rows[2].id, rows[3].id}
            assert await ids(since=T0 + dt.timedelta(minutes=10), until=T0 + dt.timedelta(minutes=30)) == \
                {rows[1].id, rows[2].id}
            assert await ids(status="open", service="checkout") == {rows[1].id, rows[3].id}
            assert await store.open_incident_ids(["stream-1", "stream-3", "stream-7"]) == \
                {"stream-1": rows[0].id, "stream-3": rows[3].id}
            assert await store.open_incident_ids([]) == {}

    run(body())


def test_operator_actions_apply_to_open_incidents_only(store_target: StoreTarget) -> None:
    row = make_incident(4, 0)
    at = T0 + dt.timedelta(hours=1)

    async def body() -> None:
        async with store_target.opened() as store:
            await store.upsert_incidents([row])
            acked = await store.act_on_incident(row.id, "acknowledge", "key:alice", at)
            assert acked is not None and acked.status == "open"
            assert acked.acknowledged_by == "key:alice" and acked.acknowledged_at == at
            closed = await store.act_on_incident(row.id, "false_positive", "key:bob", at, pending=True)
            assert closed is not None and closed.status == "false_positive" and closed.closed_by == "key:bob"
            assert closed.resolved_at == at and closed.pending_action == "false_positive"
            assert closed.acknowledged_by == "key:alice"
            # not applicable any more: no row (the API answers 409)
            assert await store.act_on_incident(row.id, "resolve", "key:bob", at) is None
            assert await store.act_on_incident(row.id, "acknowledge", "key:bob", at) is None
            assert await store.act_on_incident("inc_0000000000000000", "accept", "key:bob", at) is None
            # the detector's own closing update arriving afterwards keeps the operator's verdict
            await store.upsert_incidents([dataclasses.replace(row, status="resolved", resolved_at=at)])
            got = await store.get_incident(row.id)
            assert got is not None and got.status == "false_positive" and got.closed_by == "key:bob"
            assert [r.id for r in await store.pending_incident_actions("stream-4")] == [row.id]
            assert [r.id for r in await store.pending_incident_actions()] == [row.id]
            assert await store.pending_incident_actions("stream-5") == []
            await store.clear_pending_action(row.id)
            assert await store.pending_incident_actions() == []

    run(body())


def test_close_in_event_time_newest_score_and_an_incidents_audit_trail(store_target: StoreTarget) -> None:
    row = make_incident(5, 0)
    acted = T0 + dt.timedelta(days=7)  # the wall clock, a week after the events
    in_event_time = row.last_anomalous_at + dt.timedelta(minutes=2)

    async def body() -> None:
        async with store_target.opened() as store:
            await store.upsert_incidents([row])
            assert await store.latest_score(row.stream_id) is None
            await store.write_scores([ScoreBucket(row.stream_id, in_event_time - dt.timedelta(seconds=s),
                                                  4, 0, 0.2, 1.0) for s in (0, 30, 10)])
            await store.write_scores([ScoreBucket("stream-6", acted, 4, 0, 0.2, 1.0)])  # another stream's
            latest = await store.latest_score(row.stream_id)
            assert latest is not None and latest.bucket_start == in_event_time
            closed = await store.act_on_incident(row.id, "resolve", "key:bob", acted, closed_at=in_event_time)
            assert closed is not None and closed.resolved_at == in_event_time and closed.updated_at == acted
            for n, target in enumerate([f"incident:{row.id}", "incident:other", f"incident:{row.id}"]):
                await store.append_audit(AuditEntry(actor="key:bob", action="incident.resolve",
                                                    target=target, before=None, after=None,
                                                    at=acted + dt.timedelta(seconds=n)))
            trail, cursor = await store.query_audit(None, None, 1, None, target=f"incident:{row.id}")
            assert [e.at for e in trail] == [acted + dt.timedelta(seconds=2)] and cursor is not None
            rest, cursor = await store.query_audit(None, None, 10, cursor, target=f"incident:{row.id}")
            assert [e.at for e in rest] == [acted] and cursor is None

    run(body())


def test_false_incident_counts_per_profile(store_target: StoreTarget) -> None:
    async def body() -> None:
        async with store_target.opened() as store:
            for i, (profile, events) in enumerate([("balanced", 600_000), ("balanced", 400_000),
                                                   ("strict", 50_000)]):
                await store.upsert_stream(StreamInfo(f"stream-{i}", "traces", "svc", "n", "active", profile,
                                                     {}, events, T0))
            await store.upsert_incidents([make_incident(0, 0, status="false_positive"),
                                          make_incident(1, 0, status="false_positive"),
                                          make_incident(1, 1, status="resolved"),
                                          make_incident(2, 0, status="false_positive", profile="strict")])
            assert await store.false_incident_counts() == {"balanced": (2, 1_000_000), "strict": (1, 50_000)}

    run(body())


def test_anomaly_rows_carry_their_incident(store_target: StoreTarget) -> None:
    async def body() -> None:
        async with store_target.opened() as store:
            inside, outside = make_record(1, 10), make_record(1, 20)
            inside.incident_id = make_incident(1, 0).id
            await store.write_anomalies([inside, outside])
            got_in, got_out = await store.get_anomaly(inside.id), await store.get_anomaly(outside.id)
            assert got_in is not None and got_in.incident_id == inside.incident_id
            assert got_out is not None and got_out.incident_id is None

    run(body())


def test_score_buckets_are_cumulative_and_read_as_a_series(store_target: StoreTarget) -> None:
    def bucket(i: int, windows: int, stream: str = "s") -> ScoreBucket:
        return ScoreBucket(stream, T0 + dt.timedelta(seconds=10 * i), windows, windows // 3, 10.0 ** -windows,
                           float(windows))

    async def body() -> None:
        async with store_target.opened() as store:
            await store.write_scores([bucket(0, 4), bucket(1, 2), bucket(2, 7), bucket(0, 1, "other")])
            await store.write_scores([bucket(1, 5)])  # the bucket grew
            await store.write_scores([bucket(1, 3)])  # an older state replayed late: ignored
            series = await store.score_series("s", T0 + dt.timedelta(seconds=10),
                                              T0 + dt.timedelta(minutes=1))
            assert [(b.bucket_start, b.windows) for b in series] == [(bucket(1, 0).bucket_start, 5),
                                                                     (bucket(2, 0).bucket_start, 7)]
            assert series[0].anomalous == 1 and series[0].min_p == pytest.approx(1e-5)
            assert series[0].max_score == 5
            result = await store.prune_unseen(T0 + dt.timedelta(seconds=15))
            assert result.score_buckets == 3  # s@0, s@10, other@0
            remaining = await store.score_series("s", T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1))
            assert [b.windows for b in remaining] == [7]

    run(body())


def test_the_writer_spools_incidents_and_scores_while_the_store_is_down(store_target: StoreTarget, tmp_path):
    """One writer path for every row kind: spooled in order, drained once the store is back, replays are
    harmless."""
    opened = make_incident(7, 0, windows=2)
    closed = dataclasses.replace(opened, status="resolved", anomalous_windows=4, resolved_at=T0)
    buckets = [ScoreBucket("stream-7", T0, 3, 1, 1e-4, 4.0), ScoreBucket("stream-7", T0, 6, 2, 1e-6, 6.0)]
    anomaly = make_record(7, 5)
    anomaly.incident_id = opened.id
    settings = StoreSettings(batch_max_rows=3, flush_interval_seconds=0.02,
                             retry={"initial_interval_seconds": 0.05, "max_interval_seconds": 0.1})

    async def body() -> None:
        down = store_target.new_store()  # never opened: every write fails as unavailable
        writer = AnomalyWriter(down, tmp_path / "spool", settings, store_target.metrics)
        await writer.start()
        writer.submit([opened, buckets[0], anomaly, closed, buckets[1]])
        assert not await writer.flush(0.3)
        await writer.shutdown(0.1)
        assert writer.pending_rows == 5
        async with store_target.opened() as store:
            writer2 = AnomalyWriter(store, tmp_path / "spool", settings, store_target.metrics)
            await writer2.start()
            writer2.submit([opened])  # a replay of the oldest update after the close
            assert await writer2.flush(30)
            await writer2.shutdown(1)
            got = await store.get_incident(opened.id)
            assert got is not None and got.status == "resolved" and got.anomalous_windows == 4
            series = await store.score_series("stream-7", T0, T0 + dt.timedelta(seconds=10))
            assert [b.windows for b in series] == [6]
            stored = await store.get_anomaly(anomaly.id)
            assert stored is not None and stored.incident_id == opened.id

    run(body())
    backend = store_target.backend
    written = store_target.metrics.registry.get_sample_value(
        "driftlock_store_incident_rows_written_total", {"backend": backend, "table": "incidents"})
    assert written is not None and written >= 2
