"""The persistent spool: restart and SIGKILL during a downstream outage lose nothing acknowledged."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from otlp_gateway.exporter.queue import SPOOL_FILE_NAME
from tests.exporter.support import (
    SPANS_PER_CRASH_BATCH,
    batch,
    eventually,
    new_exporter,
    run,
    sample,
    traces_payload,
)
from tests.fixtures.downstream import RecordingDownstream, ThreadedDownstream

REPO = Path(__file__).resolve().parents[2]


def test_spool_survives_shutdown_during_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE)
            first, _ = new_exporter(ds.endpoint, tmp_path)
            await first.start()
            batches = [batch(signal, f"restart-{i}") for i in range(4) for signal in ("traces", "logs")]
            for b in batches:
                await first.consume(b)
            await ds.wait_for(lambda: ds.attempts["traces"] >= 2, what="failing attempts")
            await first.shutdown(grace=0.1)
            assert ds.requests["traces"] == [] and ds.requests["logs"] == []

            second, metrics = new_exporter(ds.endpoint, tmp_path)
            await second.start()
            assert sample(metrics, "otelcol_exporter_queue_size") == 8
            ds.clear_failures()
            await ds.wait_for(lambda: len(ds.requests["traces"]) + len(ds.requests["logs"]) == 8,
                              what="the 8 spooled requests")
            for signal in ("traces", "logs"):
                assert sorted(ds.requests[signal]) == sorted(b.payload for b in batches if b.signal == signal)
            await eventually(lambda: sample(metrics, "otelcol_exporter_queue_size") == 0)
            await second.shutdown(grace=1)

            third, _ = new_exporter(ds.endpoint, tmp_path)
            await third.start()
            assert third.queue is not None and third.queue.pending_requests == 0, "delivered rows deleted"
            await third.shutdown(grace=1)

    with caplog.at_level(logging.INFO, logger="otlp_gateway.exporter"):
        run(scenario())
    assert any("8 requests recovered" in r.getMessage() for r in caplog.records)


def test_payloads_beyond_the_memory_budget_are_read_back_from_disk(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE)
            exporter, _ = new_exporter(ds.endpoint, tmp_path, queue={"capacity_bytes": 1, "consumers": 2})
            await exporter.start()
            batches = [batch("metrics", f"spilled-{i}") for i in range(10)]
            for b in batches:
                await exporter.consume(b)
            ds.clear_failures()
            await ds.wait_for(lambda: len(ds.requests["metrics"]) == 10)
            assert sorted(ds.requests["metrics"]) == sorted(b.payload for b in batches)
            await exporter.shutdown(grace=1)

    run(scenario())


def test_unreadable_spool_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool_file = tmp_path / "export-spool" / SPOOL_FILE_NAME
    spool_file.parent.mkdir()
    spool_file.write_bytes(b"this is not a sqlite database" * 100)

    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            exporter, _ = new_exporter(ds.endpoint, tmp_path)
            await exporter.start()
            await exporter.consume(batch("logs", "fresh"))
            await ds.wait_for(lambda: len(ds.requests["logs"]) == 1)
            await exporter.shutdown(grace=1)

    with caplog.at_level(logging.ERROR, logger="otlp_gateway.exporter"):
        run(scenario())
    assert any("moved aside" in r.getMessage() for r in caplog.records)
    assert list(spool_file.parent.glob(f"{SPOOL_FILE_NAME}.corrupt-*"))


def test_sigkill_during_outage_loses_nothing_acknowledged(tmp_path: Path,
                                                          downstream: ThreadedDownstream) -> None:
    downstream.fail_with(grpc.StatusCode.UNAVAILABLE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-m", "tests.exporter.crash_child", downstream.endpoint,
                              str(tmp_path)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    acked: list[int] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 30
        while len(acked) < 300:
            line = child.stdout.readline()
            assert line, f"child exited early with {child.wait()}"
            acked.append(int(line.split()[1]))
            assert time.monotonic() < deadline, "child too slow to acknowledge"
        # Killed while its clients are mid-consume (commits in flight) and the downstream is down.
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
        if child.stdout is not None:  # acks printed before the kill; a cut-off last line is not one
            acked += [int(line.split()[1]) for line in child.stdout.read().split("\n")[:-1]]
    assert downstream.requests["traces"] == []
    assert downstream.attempts["traces"] > 0

    downstream.clear_failures()
    expected = {traces_payload(f"crash-{n}", SPANS_PER_CRASH_BATCH) for n in acked}

    async def recover() -> None:
        exporter, _ = new_exporter(downstream.endpoint, tmp_path)
        await exporter.start()
        await downstream.wait_for_async(lambda: expected <= set(downstream.requests["traces"]), timeout=20,
                                        what=f"all {len(expected)} acknowledged batches")
        await exporter.shutdown(grace=1)

    run(recover())
    assert expected <= set(downstream.requests["traces"])
