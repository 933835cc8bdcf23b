"""Exporter against the real recording gRPC downstream: delivery, retries, drops, partial success."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import grpc
import pytest

from otlp_gateway.batch import SIGNALS
from otlp_gateway.errors import OverloadedError
from otlp_gateway.exporter.grpc_transport import LARGE_REQUEST_BYTES
from otlp_gateway.exporter.queue import SPOOL_FILE_NAME
from tests.exporter.support import batch, eventually, new_exporter, run, sample
from tests.fixtures.downstream import RecordingDownstream

ITEM_NOUN = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}


@pytest.mark.parametrize("persistent", [True, False], ids=["spool", "memory"])
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_delivers_all_three_signals_with_bytes_unchanged(tmp_path: Path, persistent: bool,
                                                         compression: str) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, compression=compression,
                                             queue={"persistent": persistent})
            await exporter.start()
            sent = {signal: [batch(signal, f"{signal}-{i}", items=3) for i in range(5)] for signal in SIGNALS}
            for signal in SIGNALS:
                for b in sent[signal]:
                    await exporter.consume(b)
            await ds.wait_for(lambda: all(len(ds.requests[s]) == 5 for s in SIGNALS), what="15 requests")
            for signal in SIGNALS:
                assert sorted(ds.requests[signal]) == sorted(b.payload for b in sent[signal])
            await eventually(lambda: sample(metrics, "otelcol_exporter_queue_size") == 0, what="empty queue")
            for signal in SIGNALS:
                assert sample(metrics, f"otelcol_exporter_sent_{ITEM_NOUN[signal]}_total") == 15
            assert sample(metrics, "driftlock_exporter_spool_bytes") == 0
            await exporter.shutdown(grace=1)

    run(scenario())


def test_outage_then_recovery_loses_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE)
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, queue={"consumers": 4})
            await exporter.start()
            batches = [batch("traces", f"outage-{i}") for i in range(30)]
            for b in batches:
                await exporter.consume(b)
            await ds.wait_for(lambda: ds.attempts["traces"] >= 60, what="retries during the outage")
            assert ds.requests["traces"] == []
            assert sample(metrics, "otelcol_exporter_queue_size") == 30
            ds.clear_failures()
            await ds.wait_for(lambda: len(ds.requests["traces"]) == 30, what="all 30 requests after recovery")
            assert sorted(ds.requests["traces"]) == sorted(b.payload for b in batches)
            assert sample(metrics, "driftlock_exporter_retries_total", signal="traces") >= 30
            assert not sample(metrics, "otelcol_exporter_send_failed_spans_total", reason="retries_exhausted")
            await exporter.shutdown(grace=1)

    run(scenario())


def test_retry_info_delay_is_honoured(tmp_path: Path) -> None:
    hint = 0.4

    async def scenario() -> float:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.RESOURCE_EXHAUSTED, times=1, retry_after=hint)
            exporter, metrics = new_exporter(ds.endpoint, tmp_path)
            await exporter.start()
            started = time.monotonic()
            await exporter.consume(batch("logs", "throttled"))
            await ds.wait_for(lambda: len(ds.requests["logs"]) == 1, what="delivery after the hint")
            elapsed = time.monotonic() - started
            assert ds.attempts["logs"] == 2
            assert sample(metrics, "driftlock_exporter_retries_total", signal="logs") == 1
            await exporter.shutdown(grace=1)
            return elapsed

    # Without the hint the retry would come after ~10 ms (initial interval 0.01 s).
    assert run(scenario()) >= hint


@pytest.mark.parametrize("code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_permanent_error_is_dropped_once_and_counted(tmp_path: Path, code: grpc.StatusCode,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """RESOURCE_EXHAUSTED without RetryInfo is permanent, as the OTLP spec says."""

    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(code, times=1, message="bad payload")
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, queue={"consumers": 1})
            await exporter.start()
            await exporter.consume(batch("metrics", "rejected", items=7))
            await eventually(lambda: sample(metrics, "otelcol_exporter_send_failed_metric_points_total",
                                            reason="permanent") == 7, what="the drop to be counted")
            # One consumer, FIFO: once the next request is delivered the first one had no retry.
            await exporter.consume(batch("metrics", "accepted", items=2))
            await ds.wait_for(lambda: len(ds.requests["metrics"]) == 1, what="the next request")
            await eventually(lambda: sample(metrics, "otelcol_exporter_sent_metric_points_total") == 2)
            assert ds.attempts["metrics"] == 2
            assert sample(metrics, "driftlock_exporter_retries_total", signal="metrics") == 0
            await exporter.shutdown(grace=1)

    with caplog.at_level(logging.ERROR, logger="otlp_gateway.exporter"):
        run(scenario())
    assert any(code.name in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)


def test_partial_success_is_counted_not_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.partial_success(rejected=3, message="3 spans had invalid trace ids", times=1)
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, queue={"consumers": 1})
            await exporter.start()
            await exporter.consume(batch("traces", "partial", items=10))
            await exporter.consume(batch("traces", "whole", items=5))
            await ds.wait_for(lambda: len(ds.requests["traces"]) == 2, what="both requests")
            await eventually(lambda: sample(metrics, "otelcol_exporter_sent_spans_total") == 12,
                             what="sent = 10 - 3 + 5")
            assert ds.attempts["traces"] == 2
            assert sample(metrics, "driftlock_exporter_partial_rejected_items_total", signal="traces") == 3
            assert sample(metrics, "driftlock_exporter_retries_total", signal="traces") == 0
            await exporter.shutdown(grace=1)

    with caplog.at_level(logging.WARNING, logger="otlp_gateway.exporter"):
        run(scenario())
    assert any("invalid trace ids" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("persistent", [True, False], ids=["spool", "memory"])
def test_full_queue_refuses_with_overloaded_and_counts(tmp_path: Path, persistent: bool) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE)
            exporter, metrics = new_exporter(ds.endpoint, tmp_path,
                                             queue={"capacity_requests": 3, "persistent": persistent})
            await exporter.start()
            accepted = [batch("logs", f"kept-{i}") for i in range(3)]
            for b in accepted:
                await exporter.consume(b)
            with pytest.raises(OverloadedError) as refused:
                await exporter.consume(batch("logs", "refused", items=9))
            assert refused.value.retry_after and refused.value.retry_after > 0
            assert sample(metrics, "otelcol_exporter_enqueue_failed_log_records_total") == 9
            assert sample(metrics, "otelcol_exporter_queue_size") == 3
            assert sample(metrics, "otelcol_exporter_queue_capacity") == 3
            ds.clear_failures()
            await ds.wait_for(lambda: len(ds.requests["logs"]) == 3, what="the three accepted requests")
            assert sorted(ds.requests["logs"]) == sorted(b.payload for b in accepted)
            await eventually(lambda: exporter.queue is not None and exporter.queue.pending_requests == 0)
            await exporter.consume(batch("logs", "after"))  # room again
            await exporter.shutdown(grace=1)

    run(scenario())


@pytest.mark.parametrize("persistent", [True, False], ids=["spool", "memory"])
def test_byte_bound_refuses_with_overloaded(tmp_path: Path, persistent: bool) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE)
            one = batch("traces", "sized", items=20)
            limit = {"spool_max_bytes": 2 * len(one.payload)} if persistent else {
                "capacity_bytes": 2 * len(one.payload)}
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, queue={"persistent": persistent, **limit})
            await exporter.start()
            await exporter.consume(one)
            await exporter.consume(batch("traces", "sizes", items=20))
            with pytest.raises(OverloadedError):
                await exporter.consume(batch("traces", "sizer", items=20))
            assert sample(metrics, "otelcol_exporter_enqueue_failed_spans_total") == 20
            await exporter.shutdown(grace=0)

    run(scenario())


def test_retries_exhausted_are_dropped_and_counted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE)
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, retry={"max_elapsed_seconds": 0.2})
            await exporter.start()
            await exporter.consume(batch("traces", "doomed", items=6))
            await eventually(lambda: sample(metrics, "otelcol_exporter_send_failed_spans_total",
                                            reason="retries_exhausted") == 6, what="the drop")
            assert ds.attempts["traces"] >= 2
            await eventually(lambda: sample(metrics, "otelcol_exporter_queue_size") == 0)
            await exporter.shutdown(grace=1)

    run(scenario())


def test_memory_queue_counts_what_shutdown_loses(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE)
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, queue={"persistent": False})
            await exporter.start()
            for i in range(4):
                await exporter.consume(batch("logs", f"lost-{i}", items=5))
            await exporter.shutdown(grace=0.05)
            assert sample(metrics, "otelcol_exporter_send_failed_log_records_total", reason="shutdown") == 20
            with pytest.raises(OverloadedError):
                await exporter.consume(batch("logs", "late"))
            await exporter.shutdown(grace=1)  # idempotent

    run(scenario())
    assert not (tmp_path / "export-spool").exists()


def test_headers_reach_downstream_and_never_the_logs(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    token = "s3cr3t-token-value"

    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE, times=2)
            exporter, _ = new_exporter(ds.endpoint, tmp_path, headers={"Authorization": f"Bearer {token}"})
            await exporter.start()
            await exporter.consume(batch("traces", "auth"))
            await ds.wait_for(lambda: len(ds.requests["traces"]) == 1)
            assert ds.metadata[0]["authorization"] == f"Bearer {token}"
            await exporter.shutdown(grace=1)

    with caplog.at_level(logging.DEBUG):
        run(scenario())
    assert caplog.records, "the exporter logs its start and the outage"
    assert all(token not in r.getMessage() for r in caplog.records)


def test_detection_only_without_endpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        exporter, metrics = new_exporter(None, tmp_path)
        assert not exporter.enabled
        await exporter.start()
        await exporter.consume(batch("traces", "kept-local", items=8))
        assert exporter.discarded_items == 8
        assert sample(metrics, "otelcol_exporter_sent_spans_total") == 0
        await exporter.shutdown(grace=1)

    with caplog.at_level(logging.INFO, logger="otlp_gateway.exporter"):
        run(scenario())
    assert any("detection only" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "export-spool").exists()


def test_consume_before_start_refuses_and_shutdown_without_start_is_safe(tmp_path: Path) -> None:
    async def scenario() -> None:
        exporter, metrics = new_exporter("grpc://127.0.0.1:9", tmp_path)
        with pytest.raises(OverloadedError, match="not started"):
            await exporter.consume(batch("logs", "early", items=2))
        assert sample(metrics, "otelcol_exporter_enqueue_failed_log_records_total") == 2
        await exporter.shutdown(grace=1)
        await exporter.shutdown(grace=1)

    run(scenario())


def test_concurrent_consumes_share_one_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        import asyncio

        async with RecordingDownstream() as ds:
            exporter, _ = new_exporter(ds.endpoint, tmp_path)
            await exporter.start()
            await asyncio.gather(*(exporter.consume(batch("logs", f"group-{i}")) for i in range(200)))
            assert exporter.queue is not None and exporter.queue.persistent
            commits = exporter.queue.fifo.commits
            assert 1 <= commits <= 20, commits
            await ds.wait_for(lambda: len(ds.requests["logs"]) == 200)
            await exporter.shutdown(grace=1)

    run(scenario())
    assert (tmp_path / "export-spool" / SPOOL_FILE_NAME).exists()


def test_large_gzip_requests_go_out_unchanged_and_their_failures_are_retried(tmp_path: Path) -> None:
    """Requests of LARGE_REQUEST_BYTES or more under gzip take the blocking channel (compressed off the
    event loop): same bytes downstream, same classification of the downstream's answers."""
    async def scenario() -> None:
        async with RecordingDownstream() as ds:
            ds.fail_with(grpc.StatusCode.UNAVAILABLE, times=1)
            exporter, metrics = new_exporter(ds.endpoint, tmp_path, compression="gzip")
            await exporter.start()
            large = batch("logs", "large-" + "x" * 2_000_000)
            assert len(large.payload) >= LARGE_REQUEST_BYTES
            await exporter.consume(large)
            await ds.wait_for(lambda: ds.requests["logs"] == [large.payload], what="the large request")
            assert ds.attempts["logs"] == 2
            assert sample(metrics, "driftlock_exporter_retries_total", signal="logs") == 1
            small = batch("logs", "small")
            await exporter.consume(small)
            await ds.wait_for(lambda: len(ds.requests["logs"]) == 2, what="the small request")
            assert ds.requests["logs"][1] == small.payload
            await exporter.shutdown(grace=1)

    run(scenario())
