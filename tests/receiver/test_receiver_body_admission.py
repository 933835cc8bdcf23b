"""Bounded body reading / inflation and the admission controller, without a server."""

from __future__ import annotations

import asyncio
import gc
import gzip
import time
import tracemalloc
import zlib

import cramjam
import lz4.frame
import pytest

from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.http_body import (
    BadCompression,
    BodyTooLarge,
    ClientDisconnected,
    NoRoom,
    read_body,
    zstd,
)
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


def _read(body: bytes, encoding: str, limit: int, **kw) -> bytes:
    return asyncio.run(read_body(_receive_from(body, **kw), encoding, limit))


def test_plain_gzip_deflate_and_multi_member_bodies_inflate():
    data = bytes(range(256)) * 1000
    assert _read(data, "", MiB) == data
    assert _read(gzip.compress(data), "gzip", MiB) == data
    assert _read(zlib.compress(data), "deflate", MiB) == data
    assert _read(gzip.compress(data[:1000]) + gzip.compress(data[1000:]), "gzip", MiB) == data
    assert _read(b"", "gzip", MiB) == b""


def test_a_gzip_bomb_is_stopped_while_inflating():
    bomb = gzip_bomb(1024 * MiB)  # 1 GiB of zeros in about 1 MB of gzip
    assert len(bomb) < 2 * MiB
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="decompressed body exceeds the limit of 1048576 bytes"):
            _read(bomb, "gzip", MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"inflation was not bounded: peak {peak} bytes"


def test_inflating_runs_off_the_event_loop():
    """A bomb inflates to the whole limit (64 MiB here: 15-250 ms of CPU, by machine): the event loop's
    thread, which serves every client of both receivers, must not pay for it (CPU time of that thread,
    against the same inflation done inline)."""
    limit = 64 * MiB
    bomb = gzip_bomb(256 * MiB)
    inline = time.thread_time()
    zlib.decompressobj(31).decompress(bomb, limit + 1)
    inline = time.thread_time() - inline

    async def loop_thread_cpu() -> float:
        # the least of three reads on one loop: the first also pays one-time costs (the executor's
        # thread, first calls) that are the loop's but not the inflation's, and a busy machine adds a few
        # ms to any one read
        spent = []
        for _ in range(3):
            start = time.thread_time()
            with pytest.raises(BodyTooLarge, match="decompressed body exceeds the limit"):
                await read_body(_receive_from(bomb), "gzip", limit)
            spent.append(time.thread_time() - start)
        return min(spent)

    gc.disable()  # a collection of the suite's heap would land on whichever thread allocates: not this test's
    try:
        on_loop = asyncio.run(loop_thread_cpu())
    finally:
        gc.enable()
    assert inline > 0.01, f"the bomb inflated in {inline:.3f} s CPU: not a bomb"
    # what stays on the loop is a few ms (awaiting the thread per chunk; freeing the inflated output, which
    # read_body does at once on purpose, and which grows with the limit: 12 ms at 256 MiB in a full run);
    # inflating there would cost at least the inline figure
    assert on_loop < inline / 2, f"the loop's thread spent {on_loop:.3f} s CPU (inline: {inline:.3f} s)"


def test_wire_limit_and_bad_streams():
    with pytest.raises(BodyTooLarge, match="body exceeds the limit of 1000 bytes"):
        _read(bytes(5000), "", 1000)
    with pytest.raises(BadCompression, match="not valid gzip"):
        _read(b"this is not gzip at all", "gzip", MiB)
    with pytest.raises(BadCompression, match="truncated"):
        _read(gzip.compress(bytes(range(256)) * 100)[:-20], "gzip", MiB)
    with pytest.raises(ClientDisconnected):
        _read(bytes(300_000), "", MiB, disconnect_after=2)


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


# --- every Content-Encoding the collector's HTTP server accepts, each with its bomb stopped while decoding

def _snappy_block(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(data))


def _snappy_framed(data: bytes) -> bytes:
    return bytes(cramjam.snappy.compress(data))


ENCODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "zlib": zlib.compress,
    "zstd": lambda data: zstd.compress(data),
    "lz4": lambda data: lz4.frame.compress(data),
    "snappy": _snappy_block,
    "x-snappy-framed": _snappy_framed,
}


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_each_encoding_decodes_in_any_chunking(encoding):
    data = bytes(range(256)) * 3000 + b"tail"
    encoded = ENCODERS[encoding](data)
    for chunk in (1, 7, 4096, 64 * 1024):
        if chunk == 1 and len(encoded) > 20_000:
            encoded_small = ENCODERS[encoding](data[:5000])
            assert _read(encoded_small, encoding, MiB, chunk=chunk) == data[:5000]
            continue
        assert _read(encoded, encoding, MiB, chunk=chunk) == data


def test_snappy_accepts_the_framed_format_too_and_concatenated_frames_decode():
    data = b"otlp " * 50_000
    assert _read(_snappy_framed(data), "snappy", MiB) == data  # what collectors before v0.125 sent
    assert _read(zstd.compress(data[:1000]) + zstd.compress(data[1000:]), "zstd", MiB) == data
    assert _read(lz4.frame.compress(data[:7]) + lz4.frame.compress(data[7:]), "lz4", MiB) == data


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_each_encodings_bomb_is_stopped_while_decoding(encoding):
    zeros = bytes(64 * MiB)
    bomb = ENCODERS[encoding](zeros)
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match="exceeds the limit of 1048576 bytes"):
            _read(bomb, encoding, MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the compressed input itself is up to ~3 MiB for the weakest codec (snappy); output stops at ~1 MiB
    assert peak < len(bomb) + 16 * MiB, f"{encoding}: decoding was not bounded: peak {peak} bytes"


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_each_encoding_refuses_garbage_and_truncation(encoding):
    with pytest.raises(BadCompression, match=r"not valid|truncated"):
        _read(b"\x00\x01\x02 this is not compressed at all " * 20, encoding, MiB)
    encoded = ENCODERS[encoding](bytes(range(256)) * 400)
    with pytest.raises(BadCompression, match=r"not valid|truncated"):
        _read(encoded[:-9], encoding, MiB)


def test_a_zstd_window_beyond_8_mib_is_refused():
    params = zstd.CompressionParameter
    wide = zstd.compress(bytes(range(256)) * 80_000, options={params.window_log: 25})
    with pytest.raises(BadCompression, match="zstd"):
        _read(wide, "zstd", 64 * MiB)


# --- bytes in transit

def test_a_body_being_read_holds_its_bytes_and_gives_them_back():
    controller, metrics = _controller(100, 1000)
    with controller.open_transit() as transit:
        assert transit.hold(600)
        assert controller.inflight_bytes == 600 and controller.transit_bytes == 600
        assert controller.try_admit(1, 500) is None  # the upload holds its share against others
        admitted = controller.try_admit(2, 700, transit)  # the complete body takes its bytes over
        assert admitted is not None
        assert (controller.inflight_bytes, controller.transit_bytes) == (700, 0)
        assert not transit.hold(800)  # taken over: nothing more to hold
    admitted.release()
    assert (controller.inflight_items, controller.inflight_bytes) == (0, 0)
    assert metrics.registry.get_sample_value("driftlock_ingest_transit_bytes") == 0


def test_stalled_uploads_cannot_take_more_than_the_transit_share():
    metrics = GatewayMetrics()
    settings = AdmissionSettings(max_inflight_items=100, max_inflight_bytes=1000, max_transit_bytes=400)
    controller = AdmissionController(settings, metrics)
    first, second = controller.open_transit(), controller.open_transit()
    assert first.hold(300)
    assert not second.hold(200)  # 500 in transit would pass the share
    assert second.hold(100)
    assert controller.try_admit(5, 500) is not None  # arrived requests still have room
    first.release()
    second.release()
    assert controller.transit_bytes == 0 and controller.inflight_bytes == 500


def test_read_body_stops_when_hold_refuses():
    offered: list[int] = []

    def hold(nbytes: int) -> bool:
        offered.append(nbytes)
        return nbytes <= 200_000

    with pytest.raises(NoRoom):
        asyncio.run(read_body(_receive_from(bytes(500_000)), "", MiB, hold))
    assert offered == [65_536, 131_072, 196_608, 262_144]


def test_an_arrived_body_holds_its_bytes_outside_the_transit_share_until_admitted():
    metrics = GatewayMetrics()
    settings = AdmissionSettings(max_inflight_items=100, max_inflight_bytes=1000, max_transit_bytes=400)
    controller = AdmissionController(settings, metrics)
    waiting = controller.hold_arrived(600)  # a gRPC request waiting for a decode thread
    assert waiting is not None
    assert (controller.inflight_bytes, controller.transit_bytes) == (600, 0)
    assert controller.hold_arrived(500) is None  # 1100 would pass the budget
    uploading = controller.open_transit()
    assert uploading.hold(300)
    uploading.arrived()  # read to its end: out of the transit share, still held
    assert (controller.inflight_bytes, controller.transit_bytes) == (900, 0)
    assert controller.open_transit().hold(100)  # the share is free for another upload
    admitted = controller.try_admit(3, 600, waiting)
    assert admitted is not None and controller.inflight_bytes == 1000
    waiting.release()  # taken over: a no-op
    uploading.release()
    admitted.release()
    assert controller.inflight_bytes == 100  # the other upload's


def test_a_body_larger_than_the_budget_is_held_when_nothing_else_is():
    controller, _ = _controller(100, 1000)
    alone = controller.hold_arrived(5000)
    assert alone is not None and controller.inflight_bytes == 5000
    assert controller.hold_arrived(1) is None
    alone.release()
    assert controller.inflight_bytes == 0
