"""The data dir's size budget: measured, published, and a clear refusal of ingest while exhausted."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from otlp_gateway.durable import DataDirBudget, DataDirFullError
from otlp_gateway.durable.budget import REFUSAL_RETRY_AFTER_SECONDS, allocated_bytes
from otlp_gateway.errors import OverloadedError
from otlp_gateway.exporter import Exporter
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.durable.support import run
from tests.exporter.support import batch, sample, settings
from tests.fixtures.downstream import ThreadedDownstream
from tests.fixtures.otlp_payloads import trace_request
from tests.receiver.grpc_client import assert_retry_info, expect_refusal


def _fill(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x01" * size)


def test_allocated_bytes_counts_every_file_below(tmp_path: Path) -> None:
    _fill(tmp_path / "a", 10_000)
    _fill(tmp_path / "sub" / "deeper" / "b", 50_000)
    assert 60_000 <= allocated_bytes(tmp_path) <= 60_000 + 2 * 4096 * 2
    assert allocated_bytes(tmp_path / "missing") == 0


def test_exhausted_budget_refuses_with_a_hint_naming_it_and_recovers_when_space_is_freed(
        tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    changes: list[bool] = []

    async def scenario() -> None:
        budget = DataDirBudget(tmp_path, 100_000, metrics, interval=3600)
        budget.on_change(changes.append)
        await budget.start()
        budget.check()  # empty: fine
        _fill(tmp_path / "export-spool" / "big", 150_000)
        await budget.measure()
        with pytest.raises(DataDirFullError) as refused:
            budget.check()
        assert isinstance(refused.value, OverloadedError)  # retryable: UNAVAILABLE / 503 at the edges
        assert refused.value.retry_after == REFUSAL_RETRY_AFTER_SECONDS
        assert "data_dir_budget_bytes" in str(refused.value) and "100000 bytes" in str(refused.value)
        assert sample(metrics, "driftlock_data_dir_budget_bytes") == 100_000
        assert sample(metrics, "driftlock_data_dir_bytes") >= 150_000
        (tmp_path / "export-spool" / "big").unlink()
        await budget.measure()
        budget.check()
        await budget.shutdown()
        await budget.shutdown()

    run(scenario())
    assert changes == [True, False]


def test_zero_means_unlimited_but_still_measured(tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    _fill(tmp_path / "x", 50_000)

    async def scenario() -> None:
        budget = DataDirBudget(tmp_path, 0, metrics)
        await budget.start()
        budget.check()
        await budget.shutdown()

    run(scenario())
    assert sample(metrics, "driftlock_data_dir_bytes") >= 50_000


@pytest.mark.parametrize("forwarding", [True, False], ids=["forwarding", "detection-only"])
def test_exporter_refuses_and_counts_while_the_budget_is_exhausted(tmp_path: Path, forwarding: bool) -> None:
    _fill(tmp_path / "filler", 20_000)

    async def scenario() -> None:
        budget = DataDirBudget(tmp_path, 10_000, interval=3600)
        await budget.start()
        metrics = GatewayMetrics()
        endpoint = "grpc://127.0.0.1:9" if forwarding else None
        exporter = Exporter(settings(endpoint), tmp_path / "gw", metrics, budget=budget)
        await exporter.start()
        with pytest.raises(DataDirFullError, match="data_dir_budget_bytes"):
            await exporter.consume(batch("logs", "refused", items=3))
        assert sample(metrics, "otelcol_exporter_enqueue_failed_log_records_total") == 3
        assert exporter.queue is None or exporter.queue.pending_requests == 0
        await exporter.shutdown(grace=0)
        await budget.shutdown()

    run(scenario())


def test_gateway_refuses_ingest_over_budget_on_grpc_and_http_and_stays_up(
        downstream: ThreadedDownstream, threaded_gateway) -> None:
    gw = threaded_gateway(forward_to=downstream.endpoint, detection={"enabled": False},
                          data_dir_budget_bytes=4096)  # the store and spool files alone exceed it
    body = trace_request(5, seed=3).SerializeToString()

    refused = expect_refusal(gw.grpc_endpoint, body)
    assert refused.code() is grpc.StatusCode.UNAVAILABLE
    assert "data_dir_budget_bytes" in refused.details() and "4096 bytes" in refused.details()
    assert_retry_info(refused, REFUSAL_RETRY_AFTER_SECONDS)

    response = httpx.post(gw.http_url + "/v1/traces", content=body, timeout=10,
                          headers={"content-type": "application/x-protobuf"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(int(REFUSAL_RETRY_AFTER_SECONDS))

    api = httpx.Client(base_url=gw.api_url, timeout=10)
    assert api.get("/healthz").status_code == 200  # refusing, not crashed
    metrics = api.get("/metrics").text
    assert "driftlock_data_dir_budget_bytes 4096.0" in metrics
    used = next(float(line.split()[1]) for line in metrics.splitlines()
                if line.startswith("driftlock_data_dir_bytes "))
    assert used > 4096
    assert downstream.requests["traces"] == []
