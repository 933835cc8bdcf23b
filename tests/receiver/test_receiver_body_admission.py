"""Bounded body reading / inflation and the admission controller, without a server."""

from __future__ import annotations

import asyncio
import gzip
import tracemalloc
import zlib

import pytest

from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.http_body import BadCompression, BodyTooLarge, ClientDisconnected, read_body
from otlp_gateway.receiver.settings import AdmissionSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.otlp_payloads import gzip_bomb

MiB = 1024 * 1024


def _receive_from(body: bytes, chunk: int = 64 * 1024, disconnect_after: int | None = None):
    pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)] or [b""]

    async def receive():
        if disconnect_after is not None and receive.sent >= disconnect_after:
            return {"type": "http.disconnect"}
        index = receive.sent
        receive.sent += 1
        return {"type": "http.request", "body": pieces[index], "more_body": index + 1 < len(pieces)}

    receive.sent = 0
    return receive


def _read(body: bytes, wbits: int | None, limit: int, **kw) -> bytes:
    return asyncio.run(read_body(_receive_from(body, **kw), wbits, limit))


def test_plain_gzip_deflate_and_multi_member_bodies_inflate():
    data = bytes(range(256)) * 1000
    assert _read(data, None, MiB) == data
    assert _read(gzip.compress(data), 31, MiB) == data
    assert _read(zlib.compress(data), 15, MiB) == data
    assert _read(gzip.compress(data[:1000]) + gzip.compress(data[1000:]), 31, MiB) == data
    assert _read(b"", 31, MiB) == b""


def test_a_gzip_bomb_is_stopped_while_inflating():
    bomb = gzip_bomb(1024 * MiB)  # 1 GiB of zeros in about 1 MB of gzip
    assert len(bomb) < 2 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decompressed body exceeds the limit of 1048576 bytes"):
            _read(bomb, 31, MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"inflation was not bounded: peak {peak} bytes"


def test_wire_limit_and_bad_streams():
    with pytest.raises(BodyTooLarge, match="body exceeds the limit of 1000 bytes"):
        _read(bytes(5000), None, 1000)
    with pytest.raises(BadCompression, match="not valid gzip"):
        _read(b"this is not gzip at all", 31, MiB)
    with pytest.raises(BadCompression, match="truncated"):
        _read(gzip.compress(bytes(range(256)) * 100)[:-20], 31, MiB)
    with pytest.raises(ClientDisconnected):
        _read(bytes(300_000), None, MiB, disconnect_after=2)


def _controller(items: int, nbytes: int) -> tuple[AdmissionController, GatewayMetrics]:
    metrics = GatewayMetrics()
    settings = AdmissionSettings(max_inflight_items=items, max_inflight_bytes=nbytes, retry_after_seconds=0.5)
    return AdmissionController(settings, metrics), metrics


def test_admission_bounds_items_and_bytes_and_publishes_gauges():
    controller, metrics = _controller(100, 1000)
    first = controller.try_admit(60, 400)
    assert first is not None
    assert controller.try_admit(50, 100) is None          # items would exceed
    assert controller.try_admit(10, 700) is None          # bytes would exceed
    second = controller.try_admit(40, 600)
    assert second is not None and controller.saturated
    assert metrics.registry.get_sample_value("driftlock_ingest_inflight_items") == 100
    assert metrics.registry.get_sample_value("driftlock_ingest_inflight_bytes") == 1000
    first.release()
    first.release()  # idempotent
    assert (controller.inflight_items, controller.inflight_bytes) == (40, 600)
    with second:
        pass
    assert (controller.inflight_items, controller.inflight_bytes) == (0, 0)
    assert controller.retry_after == 0.5


def test_a_request_larger_than_the_budget_is_admitted_alone():
    controller, _ = _controller(10, 100)
    big = controller.try_admit(50, 5000)
    assert big is not None
    assert controller.try_admit(1, 1) is None
    big.release()
    assert controller.try_admit(1, 1) is not None
