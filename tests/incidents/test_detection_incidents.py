"""Incidents through the real detection stage: stored with their evidence, linked from their anomaly rows
and annotated items, counted and logged; operators' actions reach the live detector, or wait in the store
until the stream loads. The detectors are the real engine (cbad with its incident tracker)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from otlp_gateway.otlp.annotate import INCIDENT_ID, PREFIX
from otlp_gateway.store.base import incident_id
from tests.incidents.support import STREAM, T0, fault_phase, open_incident_run


def _incident_marks(payload: bytes) -> dict[str, str]:
    """span id -> driftlock.incident.id of the forwarded log records that carry one."""
    req = ExportLogsServiceRequest.FromString(payload)
    out = {}
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                attrs = {a.key: a.value.string_value for a in rec.attributes}
                if INCIDENT_ID in attrs:
                    assert PREFIX + "id" in attrs  # the incident's id rides along with the anomaly's
                    out[rec.span_id.hex()] = attrs[INCIDENT_ID]
    return out


def test_an_incident_opens_is_stored_annotated_counted_and_resolves(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    normal, fault, after, injected = fault_phase()

    async def scenario() -> None:
        run = await open_incident_run(tmp_path / "a.db")
        await run.feed(normal)
        assert await run.incidents() == []
        with caplog.at_level(logging.INFO, logger="otlp_gateway.incidents"):
            await run.feed(fault, chunk=60)
            [opened] = await run.incidents()
            assert (opened.status, opened.stream_id, opened.signal, opened.service, opened.name) == \
                ("open", STREAM, "logs", "checkout", "app.orders")
            assert opened.id == incident_id(STREAM, 0, opened.opened_offset) and opened.seq == 0
            # the first event of the window that opened it: a window of 50 holding the first injected record
            assert 1020 - 49 <= opened.opened_offset <= 1020 and opened.anomalous_windows >= 1
            assert opened.opened_at.timestamp() == pytest.approx((T0 + opened.opened_offset * 10**6) / 1e9)
            # evidence: the blamed events' ids, looked up in the stream's ring
            blamed = {e["span_id"] for e in opened.evidence}
            assert blamed and blamed <= injected
            assert all(len(e["trace_id"]) == 32 and int(e["time_unix_nano"]) >= T0 for e in opened.evidence)
            # the burst's new template and its new attribute are named as fields; the summary leads with
            # the stream
            assert {"log.template", "exception.type"} <= {f["field"] for f in opened.fields}
            assert opened.summary.startswith("checkout app.orders: ")
            assert "IllegalStateException" in opened.summary
            # its anomalous windows name it, and so do the forwarded items they blame
            rows = await run.anomalies()
            assert rows and {r.incident_id for r in rows} == {opened.id}
            marks = _incident_marks(run.consumer.batches[-1].payload)
            assert marks and set(marks) <= injected and set(marks.values()) == {opened.id}
            labels = {"signal": "logs", "service": "checkout", "severity": opened.severity}
            assert run.metric("driftlock_incidents_open", **labels) == 1
            assert run.metric("driftlock_incidents_total", **labels) == 1
            [warning] = [r for r in caplog.records
                         if r.levelno == logging.WARNING and r.name == "otlp_gateway.incidents"]
            assert opened.id in warning.getMessage() and warning.incident_event == "opened"  # type: ignore[attr-defined]
            assert warning.incident_url == f"http://driftlock.example/incidents/{opened.id}"  # type: ignore[attr-defined]

            await run.feed(after)
            [resolved] = await run.incidents()
        assert resolved.id == opened.id and resolved.status == "resolved" and resolved.closed_by is None
        assert resolved.resolved_at is not None and resolved.resolved_at > resolved.last_anomalous_at
        assert run.metric("driftlock_incidents_open", **labels) == 0
        assert run.metric("driftlock_incidents_total", **labels) == 1
        infos = [r for r in caplog.records if r.levelno == logging.INFO and opened.id in r.getMessage()]
        assert [r.incident_event for r in infos] == ["resolved"]  # type: ignore[attr-defined]
        # every scored window is in the stream's score series, the anomalous ones counted
        series = await run.store.score_series(STREAM, opened.opened_at.replace(year=2000),
                                              opened.opened_at.replace(year=2100))
        assert sum(b.windows for b in series) == (1260 - 50) // 10 + 1  # one per hop once a window is full
        assert sum(b.anomalous for b in series) == len(await run.anomalies()) == resolved.anomalous_windows
        assert min(b.min_p for b in series) == pytest.approx(resolved.min_p_value)
        await run.close()

    asyncio.run(scenario())


def test_the_incident_does_not_depend_on_how_requests_were_split(tmp_path: Path) -> None:
    records = [r for phase in fault_phase()[:3] for r in phase]

    async def incidents_with(chunk: int, db: str) -> list[tuple]:
        run = await open_incident_run(tmp_path / db)
        await run.feed(records, chunk=chunk)
        found = [(i.id, i.status, i.opened_offset, i.anomalous_windows,
                  tuple(e["span_id"] for e in i.evidence)) for i in await run.incidents()]
        await run.close()
        return found

    async def scenario() -> None:
        assert await incidents_with(100, "a.db") == await incidents_with(37, "b.db") != []

    asyncio.run(scenario())


def test_an_operator_action_reaches_the_live_detector(tmp_path: Path) -> None:
    normal, fault, after, _ = fault_phase()

    async def scenario() -> None:
        run = await open_incident_run(tmp_path / "a.db")
        await run.feed([*normal, *fault])
        [opened] = await run.incidents()
        outcome = await run.control.incident_action(STREAM, opened.seq, "false_positive", actor="key:alice",
                                                    incident_id=opened.id)
        assert outcome == "applied"
        [closed] = await run.incidents()
        assert closed.status == "false_positive" and closed.closed_by == "key:alice"
        assert run.stage.streams.get(STREAM).detector.open_incident_seq is None  # type: ignore[union-attr]
        assert run.metric("driftlock_incidents_open", signal="logs", service="checkout",
                          severity=opened.severity) == 0
        # the same action again: the detector has no such open incident any more
        assert await run.control.incident_action(STREAM, opened.seq, "resolve", incident_id=opened.id) == \
            "not_applicable"
        # an incident number of an earlier detector of the stream is never taken for the current one's
        earlier = "inc_0000000000000000"
        outcome = await run.control.incident_action(STREAM, 0, "resolve", incident_id=earlier)
        assert outcome == "not_applicable"
        await run.feed(after)  # the false positive's pattern, still in the window, does not raise again
        later = {i.id: i for i in await run.incidents()}
        assert later[opened.id].status == "false_positive" and later[opened.id].closed_by == "key:alice"
        assert list(later) == [opened.id]
        await run.close()

    asyncio.run(scenario())


def test_an_action_on_a_stream_that_is_not_live_is_taken_when_it_loads(tmp_path: Path) -> None:
    normal, fault, after, _ = fault_phase()

    async def scenario() -> None:
        first = await open_incident_run(tmp_path / "a.db")
        await first.feed([*normal, *fault])
        [opened] = await first.incidents()
        await first.close()  # the stream's state (its open incident included) is snapshotted to the store

        second = await open_incident_run(tmp_path / "a.db")
        assert second.stage.streams.get(STREAM) is None
        # what the API does: the store first, then the stream's detector
        closed = await second.store.act_on_incident(opened.id, "accept", "key:bob", opened.opened_at,
                                                    pending=True)
        assert closed is not None and closed.status == "accepted"
        assert await second.control.incident_action(STREAM, opened.seq, "accept", actor="key:bob",
                                                    incident_id=opened.id) == "pending"
        assert [r.id for r in await second.store.pending_incident_actions(STREAM)] == [opened.id]
        await second.feed(after[:10])  # the stream loads: its detector takes the action first
        stream = second.stage.streams.get(STREAM)
        assert stream is not None
        assert stream.detector.open_incident_seq is None  # type: ignore[attr-defined]
        assert await second.store.pending_incident_actions() == []
        stored = {i.id: i for i in await second.incidents()}
        assert (stored[opened.id].status, stored[opened.id].closed_by) == ("accepted", "key:bob")
        await second.close()

    asyncio.run(scenario())


def test_an_action_answered_by_another_gateway_reaches_the_live_detector(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gateways share a store; the one where the stream is live takes the action within the refresh."""
    from otlp_gateway.streams import table

    monkeypatch.setattr(table, "PENDING_REFRESH_SECONDS", 0.05)
    normal, fault, _, _ = fault_phase()

    async def scenario() -> None:
        run = await open_incident_run(tmp_path / "a.db")
        await run.feed([*normal, *fault])
        [opened] = await run.incidents()
        # what the API of the other gateway did: the store, then its own table (where the stream is not live)
        closed = await run.store.act_on_incident(opened.id, "resolve", "key:carol", opened.opened_at,
                                                 pending=True)
        assert closed is not None

        async def taken() -> bool:
            while await run.store.pending_incident_actions():
                await asyncio.sleep(0.02)
            return True

        assert await asyncio.wait_for(taken(), 20)
        stream = run.stage.streams.get(STREAM)
        assert stream is not None and stream.detector.open_incident_seq is None  # type: ignore[attr-defined]
        await run.close()

    asyncio.run(scenario())
