"""Forwarding is never held to detection's pace: once detection is behind (more requests in it than twice
its shard threads, or the oldest there longer than ``detection.budget_ms``), a new request is forwarded at
once, counted as ``reason="backlog"``, and the receivers stop extracting its events while decoding (the
stage extracts them afterwards, off the forwarding path). Every event is still scored, in arrival order:
the anomalies are those of a run where detection kept up.

Detection is held up by keeping its one shard thread busy while requests arrive.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from otlp_gateway.otlp.codec import ExtractionOptions
from otlp_gateway.otlp.extract import Extraction
from otlp_gateway.otlp.signals import SIGNAL_SPECS
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.ingest import IngestCore
from otlp_gateway.receiver.settings import AdmissionSettings
from tests.detection.support import chunks, log_phase, open_run, summary
from tests.fixtures.waiting import wait_until
from tests.otlp.otlp_data import logs_request

TIMEOUT = 30.0


def _requests() -> list[bytes]:
    normal, tail, _ = log_phase(7)
    return [logs_request(c).SerializeToString() for c in chunks(normal + tail, [112])]  # 10 requests


async def _ingest_all(tmp_path: Path, name: str, requests: list[bytes], held: bool
                      ) -> tuple[list, dict[str, float], list[object]]:
    """Every request through a receiver's ``IngestCore`` into a real stage (one shard thread): with ``held``
    two, then the others at once, while the shard thread is busy until the forwarded requests are
    checked; otherwise one after the other (detection never behind). Returns the anomalies, the counters,
    and each forwarded batch's extraction as the receiver made it, in forwarding order."""
    run = await open_run(tmp_path / f"{name}.db", workers=1)
    decoder = DecodePool(1, ExtractionOptions.of(run.stage.settings))
    await asyncio.wrap_future(decoder.warm_up())
    admission = AdmissionController(AdmissionSettings(), run.metrics)
    core = IngestCore("grpc", run.stage, run.metrics, admission, None, None, decoder)
    gate = threading.Event()
    if held:
        run.stage._shards.submit(0, gate.wait)  # the one shard thread is busy
    try:
        calls = []
        if held:
            def ingest(body: bytes) -> asyncio.Task:
                return asyncio.create_task(core.ingest(SIGNAL_SPECS["logs"], body))

            calls += [ingest(body) for body in requests[:2]]  # as many as the stage takes without delay
            await asyncio.to_thread(wait_until, lambda: len(run.stage._inflight) == 2, timeout=TIMEOUT,
                                    what="the first two requests to reach detection")
            calls += [ingest(body) for body in requests[2:]]
            await asyncio.to_thread(wait_until, lambda: len(run.consumer.batches) == len(requests) - 2,
                                    timeout=TIMEOUT, what="the requests behind the backlog to be forwarded")
            assert not any(c.done() for c in calls[:2]), "the first two wait for their decisions"
            assert not run.stage.wants_events(len(requests[0]))
            gate.set()
        else:
            for body in requests:
                await core.ingest(SIGNAL_SPECS["logs"], body)
        await asyncio.wait_for(asyncio.gather(*calls), TIMEOUT)
        records = await run.stored()
        counters = {name: run.metric(metric, labels) for name, (metric, labels) in {
            "scored": ("driftlock_detector_events_total", {"stream_type": "logs"}),
            "dropped": ("driftlock_detector_dropped_events_total", {"stream_type": "logs"}),
            "backlog": ("driftlock_annotation_skipped_total", {"signal": "logs", "reason": "backlog"}),
        }.items()}
        return records, counters, [b.extraction for b in run.consumer.batches]
    finally:
        gate.set()
        decoder.close()
        await run.close()


def test_requests_behind_the_backlog_go_out_at_once_unextracted_and_are_still_scored(tmp_path: Path) -> None:
    requests = _requests()
    items = 1120

    async def scenario() -> None:
        reference, counters, extractions = await _ingest_all(tmp_path, "one-by-one", requests, held=False)
        assert counters["backlog"] == 0 and all(isinstance(e, Extraction) for e in extractions)
        assert reference, "the injected error template was detected"

        records, counters, extractions = await _ingest_all(tmp_path, "held", requests, held=True)
        assert counters["backlog"] == len(requests) - 2
        assert counters["scored"] == items and counters["dropped"] == 0
        # forwarded first: the ones behind the backlog, as decoded without extraction; the two held last
        assert all(e is None for e in extractions[:-2])
        assert all(isinstance(e, Extraction) for e in extractions[-2:])
        assert summary(records) == summary(reference)

    asyncio.run(scenario())
