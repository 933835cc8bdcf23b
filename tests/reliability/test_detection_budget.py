"""Ingest never waits on detection longer than ``detection.budget_ms``: past it a request is forwarded as
received, scored afterwards in arrival order, and its anomalies stored; only its annotation is lost
(counted). The results are the same as without the budget, whatever the request boundaries.

Detection is held up the way a first start holds it up: the extraction thread is busy (there, compiling
the kernels) while requests arrive.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from tests.detection.support import annotated_logs, chunks, log_phase, open_run, span_phase, summary
from tests.otlp.otlp_data import logs_request, traces_request

FORWARD_TIMEOUT = 30.0
"""The detection thread stays blocked for the whole wait: forwarding at all proves it did not wait."""


def test_a_request_past_the_budget_is_forwarded_as_received_and_its_anomalies_still_stored(
        tmp_path: Path) -> None:
    normal, tail, injected = log_phase(7)

    async def scenario(blocked: bool) -> tuple[list, bool]:
        # the reference run waits as long as detection takes; the other one 200 ms at most
        run = await open_run(tmp_path / f"b{blocked}.db", budget_ms=200 if blocked else 60_000)
        await run.feed("logs", [logs_request(c) for c in chunks(normal, [100])])
        await run.stage.drain()  # (the first requests may pass the budget while kernels load)
        labels = {"signal": "logs", "reason": "budget"}
        skipped_before = run.metric("driftlock_annotation_skipped_total", labels)
        gate = threading.Event()
        if blocked:
            run.stage._extraction.submit(gate.wait)
        tail_request = logs_request(tail)
        feeding = asyncio.create_task(run.feed("logs", [tail_request]))
        await asyncio.wait_for(feeding, FORWARD_TIMEOUT)
        forwarded = run.consumer.batches[-1]
        skipped = run.metric("driftlock_annotation_skipped_total", labels) - skipped_before
        if blocked:
            assert forwarded.payload == tail_request.SerializeToString()  # as received: unannotated
            assert skipped == 1
            assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == len(normal)
            gate.set()
        else:
            assert skipped == 0
        records = await run.stored()  # detection caught up
        scored = run.metric("driftlock_detector_events_total", {"stream_type": "logs"})
        assert scored == len(normal) + len(tail)
        was_annotated = bool(annotated_logs(forwarded.payload))
        await run.close()
        return records, was_annotated

    on_time, annotated = asyncio.run(scenario(blocked=False))
    late, late_annotated = asyncio.run(scenario(blocked=True))
    assert on_time and annotated and not late_annotated
    assert {e["span_id"] for r in late for e in r.evidence} <= injected
    assert summary(late) == summary(on_time)


def test_a_zero_budget_gives_the_same_anomalies_whatever_the_request_boundaries(tmp_path: Path) -> None:
    """Every request is forwarded at once and scored behind it, concurrently: still one stream order."""
    normal, tail, _ = span_phase(11)
    everything = normal + tail

    async def scenario(db: str, sizes: list[int], budget_ms: float) -> list:
        run = await open_run(tmp_path / db, budget_ms=budget_ms)
        await run.feed("traces", [traces_request(c) for c in chunks(everything, sizes)], concurrent=True)
        records = await run.stored()
        await run.close()
        return records

    waited = asyncio.run(scenario("waited.db", [240], 60_000))
    assert waited
    assert summary(asyncio.run(scenario("zero.db", [37, 512, 3, 101], 0))) == summary(waited)


def test_a_bystander_is_forwarded_while_another_request_holds_detection(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "by.db", budget_ms=100)
        gate = threading.Event()
        run.stage._extraction.submit(gate.wait)
        normal, _, _ = log_phase(3)
        # the held-up request and, behind it in the detection order, a bystander's small one
        held = asyncio.create_task(run.feed("logs", [logs_request(normal[:500])]))
        bystander = asyncio.create_task(run.feed("logs", [logs_request(normal[500:501])]))
        await asyncio.wait_for(asyncio.gather(held, bystander), FORWARD_TIMEOUT)
        assert len(run.consumer.batches) == 2
        assert run.metric("driftlock_annotation_skipped_total", {"signal": "logs", "reason": "budget"}) == 2
        gate.set()
        await run.stage.drain()
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 501
        await run.close()

    asyncio.run(scenario())


def test_the_backlog_the_budget_allows_is_bounded_in_bytes(tmp_path: Path) -> None:
    """Requests forwarded past the budget wait for detection in memory: beyond ``queue_max_bytes`` the
    next ones are forwarded unscored and counted (an empty backlog still takes one of any size)."""

    async def scenario() -> None:
        normal, _, _ = log_phase(5)
        requests = [logs_request(c) for c in chunks(normal[:300], [100])]
        size = len(requests[0].SerializeToString())
        run = await open_run(tmp_path / "q.db", budget_ms=50, queue_max_bytes=size + size // 2)
        gate = threading.Event()
        run.stage._extraction.submit(gate.wait)
        await asyncio.wait_for(run.feed("logs", requests), FORWARD_TIMEOUT)
        assert len(run.consumer.batches) == 3  # every request forwarded
        # the first waits for detection; each later one would take the backlog past the bound: unscored
        assert run.metric("driftlock_detector_dropped_events_total", {"stream_type": "logs"}) == 200
        gate.set()
        await run.stage.drain()
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 100
        await run.close()

    asyncio.run(scenario())
