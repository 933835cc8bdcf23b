"""The incident sink on its own: what it stores, counts, logs and audits for each incident change."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from detectors.incident_types import FieldChange, IncidentUpdate
from otlp_gateway.incidents.records import IncidentLinks
from otlp_gateway.incidents.settings import IncidentSettings
from otlp_gateway.incidents.sink import IncidentSink
from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.base import ScoreBucket, StreamInfo
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.streams.incidents import IncidentBook, IncidentChange, change_of
from otlp_gateway.streams.ring import RingItem
from otlp_gateway.streams.routing import StreamKey
from otlp_gateway.telemetry.metrics import GatewayMetrics

T0 = 1_764_000_000 * 10**9


def key(service: str = "cart", name: str = "POST /cart") -> StreamKey:
    return StreamKey(f"traces/{service}/{name}", "traces", service, name)


def update(seq: int = 0, status: str = "open", windows: int = 1, severity: str = "medium",
           closed: int | None = None) -> IncidentUpdate:
    return IncidentUpdate(
        seq=seq, status=status, opened_offset=500, opened_time_ns=T0,  # type: ignore[arg-type]
        last_anomalous_offset=500 + 10 * windows, last_anomalous_time_ns=T0 + windows * 10**9,
        closed_time_ns=closed, anomalous_windows=windows,
        min_p_value=1e-8, severity=severity,  # type: ignore[arg-type]
        fields=(FieldChange("http.response.status_code", "new_value", "200 (100 %)", "503 (31 %)",
                            "never seen in 400 reference events", 84.5),),
        summary="cart POST /cart: 31 % of spans now ERROR with http.response.status_code=503 (new)",
        evidence_offsets=(505, 507))


class Changes:
    """IncidentChanges as the shard thread makes them (one book per stream, offset_base 1000)."""

    def __init__(self) -> None:
        self.books: dict[str, IncidentBook] = {}

    def __call__(self, k: StreamKey, u: IncidentUpdate, actor: str | None = None) -> IncidentChange:
        book = self.books.setdefault(k.stream_id, IncidentBook())
        items = [RingItem(1000 + o, bytes([o % 256]) * 16, bytes([o % 256]) * 8, T0 + o, o - 500, 3)
                 for o in u.evidence_offsets]
        return change_of(k, "balanced", 1000, book, u, items, actor)


@pytest.fixture
def parts(tmp_path: Path):
    async def make(metrics: GatewayMetrics | None = None,
                   **settings: float) -> tuple[IncidentSink, SqliteStore, AnomalyWriter]:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        await store.migrate()
        metrics = metrics or GatewayMetrics()
        writer = AnomalyWriter(store, tmp_path / "spool", StoreSettings(flush_interval_seconds=0.02), metrics)
        await writer.start()
        sink = IncidentSink(writer, store, metrics, IncidentSettings(**settings),
                            IncidentLinks(lambda: "https://ui.example/"))
        await sink.start()
        await asyncio.wait_for(sink.seeded.wait(), 10)
        return sink, store, writer

    return make


def _gauge(sink: IncidentSink, service: str, severity: str, signal: str = "traces") -> float:
    return sink.metrics._m.registry.get_sample_value(
        "driftlock_incidents_open", {"signal": signal, "service": service, "severity": severity}) or 0.0


def _total(sink: IncidentSink, service: str, severity: str) -> float:
    return sink.metrics._m.registry.get_sample_value(
        "driftlock_incidents_total", {"signal": "traces", "service": service, "severity": severity}) or 0.0


async def _close(sink: IncidentSink, store: SqliteStore, writer: AnomalyWriter) -> None:
    await sink.shutdown(1)
    await writer.shutdown(1)
    await store.close()


def test_records_carry_stream_offsets_ids_and_evidence(parts) -> None:
    change = Changes()

    async def body() -> None:
        sink, store, writer = await parts()
        [row] = sink.handle_changes([change(key(), update())])
        assert row.opened_offset == 1500 and row.last_anomalous_offset == 1510  # offset_base added
        assert row.id.startswith("inc_") and row.severity == "medium" and row.profile == "balanced"
        assert row.evidence[0] == {"trace_id": "f9" * 16, "span_id": "f9" * 8,  # offset 505 = 0xf9 + 256
                                   "time_unix_nano": str(T0 + 505),
                                   "text": "span 'POST /cart' at 2025-11-24T16:00:00Z"}
        assert row.fields[0]["now"] == "503 (31 %)" and row.fields[0]["bits"] == 84.5
        assert await writer.flush(10)
        assert (await store.get_incident(row.id)) is not None
        await _close(sink, store, writer)

    asyncio.run(body())


def test_open_incidents_are_counted_under_their_current_severity(parts,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    change = Changes()

    async def body() -> None:
        sink, store, writer = await parts()
        with caplog.at_level(logging.INFO, logger="otlp_gateway.incidents"):
            sink.handle_changes([change(key(), update(windows=1, severity="medium"))])
            sink.handle_changes([change(key(), update(windows=4, severity="critical"))])
            assert (_gauge(sink, "cart", "medium"), _gauge(sink, "cart", "critical")) == (0, 1)
            assert _total(sink, "cart", "medium") == 1 and _total(sink, "cart", "critical") == 0
            done = update(status="resolved", windows=4, severity="critical", closed=T0 + 60 * 10**9)
            [closed] = sink.handle_changes([change(key(), done)])
            assert _gauge(sink, "cart", "critical") == 0 and sink.open_incidents() == []
            # a late update of the closed incident changes nothing
            sink.handle_changes([change(key(), update(windows=3, severity="critical"))])
            assert _gauge(sink, "cart", "critical") == 0 and sink.open_incidents() == []
        ours = [r for r in caplog.records if r.name == "otlp_gateway.incidents"]
        assert [r.levelname for r in ours] == ["WARNING", "INFO"]
        assert "resolved after 60.0 s (4 anomalous windows)" in ours[1].getMessage()
        assert await writer.flush(10)
        stored = await store.get_incident(closed.id)
        assert stored is not None and stored.status == "resolved" and stored.anomalous_windows == 4
        await _close(sink, store, writer)

    asyncio.run(body())


def test_the_service_label_is_capped(parts) -> None:
    change = Changes()

    async def body() -> None:
        sink, store, writer = await parts(GatewayMetrics(max_services=2))
        for service in ("cart", "checkout", "payments", "search"):
            sink.handle_changes([change(key(service), update())])
        assert _gauge(sink, "cart", "medium") == _gauge(sink, "checkout", "medium") == 1
        assert _gauge(sink, "other", "medium") == 2 and _total(sink, "other", "medium") == 2
        assert _gauge(sink, "payments", "medium") == 0
        await _close(sink, store, writer)

    asyncio.run(body())


def test_a_restarted_sink_knows_the_open_incidents_from_the_store(parts, caplog) -> None:
    change = Changes()

    async def body() -> None:
        sink, store, writer = await parts()
        [a] = sink.handle_changes([change(key("cart"), update())])
        sink.handle_changes([change(key("search"), update())])
        await _close(sink, store, writer)

        sink2, store2, writer2 = await parts()
        search = change.books[key("search").stream_id].id_of(0)
        assert {r.id for r in sink2.open_incidents()} == {a.id, search}
        assert _gauge(sink2, "cart", "medium") == 1
        assert _total(sink2, "cart", "medium") == 0  # counted open, not opened again
        assert sink2.open_incident_of(key("cart").stream_id) == a.id
        with caplog.at_level(logging.INFO, logger="otlp_gateway.incidents"):
            sink2.handle_changes([change(key("cart"), update(status="resolved", closed=T0))])
        assert _gauge(sink2, "cart", "medium") == 0
        assert any(a.id in r.getMessage() and "resolved" in r.getMessage() for r in caplog.records)
        await _close(sink2, store2, writer2)

    asyncio.run(body())


def test_an_acceptance_the_detector_decides_is_audited_and_an_operators_is_not_repeated(parts,
                                                                                        caplog) -> None:
    change = Changes()

    async def body() -> None:
        sink, store, writer = await parts()
        sink.handle_changes([change(key("cart"), update())])
        sink.handle_changes([change(key("cart"), update(status="accepted", closed=T0 + 3600 * 10**9))])
        [b] = sink.handle_changes([change(key("search"), update())])
        await sink.shutdown(1)  # waits for the audit write
        entries, _ = await store.query_audit(None, None, 10, None)
        assert [(e.actor, e.action, e.before["status"], e.after["status"]) for e in entries] == \
            [("detector", "incident.accept", "open", "accepted")]  # type: ignore[index]
        # an operator closes it through the API (the store first), then the detector takes the action
        assert await writer.flush(10)
        closed = await store.act_on_incident(b.id, "false_positive", "key:eve", dt.datetime.now(dt.UTC))
        assert closed is not None
        with caplog.at_level(logging.INFO, logger="otlp_gateway.incidents"):
            sink.operator_acted(closed, "false_positive", "key:eve")
            taken = update(status="false_positive", closed=T0)
            sink.handle_changes([change(key("search"), taken, "key:eve")])
        lines = [r.getMessage() for r in caplog.records if b.id in r.getMessage() and r.levelname == "INFO"]
        assert len(lines) == 1 and "marked a false positive by key:eve" in lines[0]
        assert _gauge(sink, "search", "medium") == 0
        await writer.shutdown(1)
        await store.close()

    asyncio.run(body())


def test_score_buckets_are_coalesced_before_they_are_written(parts) -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    async def body() -> None:
        sink, store, writer = await parts(score_flush_interval_seconds=3600)
        for windows in (1, 2, 3):
            sink.handle([SimpleNamespace(incidents=[], scores=[ScoreBucket("s", t, windows, 0, 0.5, 1.0)])])
        later = ScoreBucket("s", t + dt.timedelta(seconds=10), 1, 1, 1e-5, 5.0)
        sink.handle([SimpleNamespace(incidents=[], scores=[later])])
        assert sink.flush_scores() == 2 and sink.flush_scores() == 0
        assert await writer.flush(10)
        series = await store.score_series("s", t, t + dt.timedelta(minutes=1))
        assert [(b.windows, b.anomalous) for b in series] == [(3, 0), (1, 1)]
        await _close(sink, store, writer)

    asyncio.run(body())


def test_false_incident_rates_declared_and_measured(parts) -> None:
    change = Changes()

    async def body() -> None:
        sink, store, writer = await parts(rate_refresh_interval_seconds=0.05)
        registry = sink.metrics._m.registry

        def rate(kind: str, profile: str) -> float | None:
            return registry.get_sample_value(f"driftlock_false_incident_rate_{kind}", {"profile": profile})

        assert (rate("declared", "sensitive"), rate("declared", "balanced"), rate("declared", "strict")) == \
            (10, 1, 0.1)
        await store.upsert_stream(StreamInfo(key().stream_id, "traces", "cart", "POST /cart", "active",
                                             "balanced", {}, 2_000_000, dt.datetime.now(dt.UTC)))
        [row] = sink.handle_changes([change(key(), update())])
        assert await writer.flush(10)
        await store.act_on_incident(row.id, "false_positive", "key:x", dt.datetime.now(dt.UTC))

        async def measured() -> float | None:
            while rate("measured", "balanced") is None:
                await asyncio.sleep(0.02)
            return rate("measured", "balanced")

        assert await asyncio.wait_for(measured(), 10) == pytest.approx(0.5)  # 1 per 2 million events
        await _close(sink, store, writer)

    asyncio.run(body())


def test_a_change_of_an_unknown_seq_gets_a_new_id_per_detector() -> None:
    """The id names the stream, the number and the opening offset: a new detector of the stream (offsets
    continue, numbers restart) never reuses one."""
    book_a, book_b = IncidentBook(), IncidentBook()
    a = change_of(key(), "balanced", 0, book_a, update(), [])
    b = change_of(key(), "balanced", 5000, book_b, update(), [])
    assert a.incident_id != b.incident_id and book_a.open_id == a.incident_id
    closed = change_of(key(), "balanced", 0, book_a, dataclasses.replace(update(), status="resolved"), [])
    assert closed.incident_id == a.incident_id and book_a.open_id is None and book_a.id_of(0) == a.incident_id
    assert IncidentBook.load(book_a.dump()).id_of(0) == a.incident_id


def test_nothing_is_seeded_while_the_store_is_down(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqliteStore(tmp_path / "s.db")  # never opened
        writer = AnomalyWriter(store, tmp_path / "spool", StoreSettings(), GatewayMetrics())
        sink = IncidentSink(writer, store, GatewayMetrics(), IncidentSettings(), IncidentLinks(lambda: "x"))
        await sink.start()
        await asyncio.sleep(0.05)
        assert not sink.seeded.is_set()
        await sink.shutdown(0.1)

    asyncio.run(body())


def test_gateways_sharing_a_store_follow_each_others_incidents(parts, tmp_path: Path) -> None:
    change = Changes()

    async def body() -> None:
        a, store, writer = await parts()
        metrics_b = GatewayMetrics()
        b = IncidentSink(writer, store, metrics_b, IncidentSettings(), IncidentLinks(lambda: "x"))
        await b.start()
        await b.seeded.wait()
        a.handle_changes([change(key("cart"), update())])
        assert await writer.flush(10)
        await b.reconcile()  # (its own refresh task may have followed the store first)
        assert [r.stream_id for r in b.open_incidents()] == [key("cart").stream_id]  # opened on the other
        assert _gauge(b, "cart", "medium") == 1 and _total(b, "cart", "medium") == 0
        assert b.resendable_incidents() == [] and len(a.resendable_incidents()) == 1  # its owner re-sends
        a.handle_changes([change(key("cart"), update(status="resolved", closed=T0))])
        assert await writer.flush(10)
        await b.reconcile()  # closed there: dropped here
        assert _gauge(b, "cart", "medium") == 0 and b.open_incidents() == []
        # an operator's close answered by gateway B reaches gateway A's series as well
        [other] = a.handle_changes([change(key("search"), update())])
        assert await writer.flush(10)
        assert await store.act_on_incident(other.id, "accept", "key:x", dt.datetime.now(dt.UTC)) is not None
        await a.reconcile()
        assert _gauge(a, "search", "medium") == 0 and a.open_incidents() == []
        await b.shutdown(1)
        await _close(a, store, writer)

    asyncio.run(body())


def test_an_incident_not_yet_written_is_kept_open(parts, tmp_path: Path) -> None:
    change = Changes()

    async def body() -> None:
        _, store, writer = await parts()
        unwritten: list[object] = []
        sink = IncidentSink(SimpleNamespace(submit=unwritten.extend), store, GatewayMetrics(),
                            IncidentSettings(), IncidentLinks(lambda: "x"))
        [opened] = sink.handle_changes([change(key(), update())])
        await sink.reconcile()  # the store does not know it (its row is still in the writer's hands)
        assert [r.id for r in sink.open_incidents()] == [opened.id] and unwritten
        await writer.shutdown(1)
        await store.close()

    asyncio.run(body())
