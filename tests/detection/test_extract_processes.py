"""Requests the receivers forwarded without extracting them are extracted by the stage on worker
processes: the anomalies are those of extraction in the stage's thread (results depend only on the
bytes, not on the number of workers), and a worker that dies costs no request its scores."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.detection.support import chunks, log_phase, open_run, summary
from tests.fixtures.waiting import wait_until
from tests.otlp.otlp_data import logs_request

READY_TIMEOUT = 120.0  # a worker process imports the gateway and loads the kernels; the machine is shared


def _requests() -> list:
    normal, tail, _ = log_phase(11)
    return [logs_request(c) for c in chunks(normal + tail, [70, 150, 40])]


async def _run(tmp_path: Path, name: str, processes: int, kill_after: int | None = None
               ) -> tuple[list, int, float]:
    run = await open_run(tmp_path / f"{name}.db", extract_processes=processes)
    try:
        workers = run.stage.extract_processes
        if processes:
            assert workers is not None
            await asyncio.to_thread(wait_until, lambda: workers.ready, READY_TIMEOUT,
                                    "an extraction worker process to be ready")
        else:
            assert workers is None
        requests = _requests()
        for i, request in enumerate(requests):
            if kill_after is not None and i == kill_after:
                assert workers is not None
                for pid in workers.worker_pids():
                    os.kill(pid, signal.SIGKILL)
            await run.feed("logs", [request])
        records = await run.stored()
        scored = run.metric("driftlock_detector_events_total", {"stream_type": "logs"})
        return records, (workers.extracted if workers is not None else 0), scored
    finally:
        await run.close()


def test_extraction_on_worker_processes_finds_the_same_anomalies(tmp_path: Path) -> None:
    async def scenario() -> None:
        reference, _, scored = await _run(tmp_path, "thread", 0)
        assert reference, "the injected error template was detected"
        assert scored == 1120
        for processes in (1, 2):
            records, extracted, scored = await _run(tmp_path, f"processes-{processes}", processes)
            assert extracted == len(_requests()), "every request was extracted on a worker"
            assert scored == 1120
            assert summary(records) == summary(reference)

    asyncio.run(scenario())


def test_a_worker_that_dies_costs_no_request_its_scores(tmp_path: Path) -> None:
    async def scenario() -> None:
        reference, _, _ = await _run(tmp_path, "thread", 0)
        records, extracted, scored = await _run(tmp_path, "killed", 1, kill_after=3)
        assert 0 < extracted < len(_requests()), "some requests on the worker, some in the thread"
        assert scored == 1120
        assert summary(records) == summary(reference)

    asyncio.run(scenario())
